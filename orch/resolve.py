"""Which session a reference names: an id, a unique id prefix, a unit name or a name."""

from __future__ import annotations

from collections.abc import Iterable

from orch.errors import Ambiguous, NotFound
from orch.session import Record

MIN_PREFIX = 4


def _listing(records: list[Record]) -> str:
    """The newest five of RECORDS, each by its short id, name and creation (local time,
    as every time orch prints)."""
    from orch.render import format_timestamp, parse_time  # a refusal's alone

    def created(record: Record) -> str:
        when = parse_time(record.created_at)
        return format_timestamp(when) if when else record.created_at

    newest = sorted(records, key=lambda r: r.created_at, reverse=True)
    shown = ", ".join(f"{r.id[:8]} ({r.name}, {created(r)})" for r in newest[:5])
    return shown + (f", and {len(newest) - 5} older" if len(newest) > 5 else "")


def resolve(ref: str, records: Iterable[Record]) -> Record:
    """The one record REF names; NotFound or Ambiguous (one line saying which) otherwise.

    Exact matches win over prefixes: a full id, then a unit name (`.service` may be
    left out, as systemctl allows), then a name. A name several sessions share is
    ambiguous, and so is a name that is also another session's id prefix: orch will
    not guess which one to stop or kill.
    """
    if not isinstance(ref, str):  # a library caller's: one line, not a traceback
        from orch.errors import UsageError

        raise UsageError(f"a session reference is a string (an id, a prefix, a name), "
                         f"not {type(ref).__name__}")
    pool = list(records)
    unit = ref if ref.endswith(".service") else f"{ref}.service"
    for record in pool:
        if record.id == ref or record.unit == unit:
            return record
    named = [r for r in pool if r.name == ref]
    if len(named) == 1:
        prefixed = [r for r in pool if r is not named[0] and len(ref) >= MIN_PREFIX
                    and r.id.startswith(ref.lower())]
        if prefixed:
            raise Ambiguous(f"{ref!r} names session {named[0].id[:8]} and is an id prefix "
                            f"of {len(prefixed)} other(s): {_listing(named + prefixed)}",
                            hint="name one by its full id")
        return named[0]
    if len(named) > 1:
        raise Ambiguous(f"{len(named)} sessions are named {ref!r}: {_listing(named)}",
                        hint="name one by its id")
    if len(ref) < MIN_PREFIX:
        raise NotFound(f"no session named {ref!r} (an id prefix needs at least "
                       f"{MIN_PREFIX} characters)")
    prefixed = [r for r in pool if r.id.startswith(ref.lower())]
    if len(prefixed) == 1:
        return prefixed[0]
    if len(prefixed) > 1:
        raise Ambiguous(f"id prefix {ref!r} matches {len(prefixed)} sessions: "
                        f"{_listing(prefixed)}", hint="give more characters of the id")
    raise NotFound(f"no session matches {ref!r}")
