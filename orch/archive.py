"""The archive's rules: which records it keeps, what a read of the live ones found, how
a change sees both, and how they join (orch.state keeps the files)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping

from orch.session import Record
from orch.stateformat import Log, Sessions, Snapshot


class Live:
    """The live records as one read found them: the snapshot's and the log's changes,
    the ids the log removed (which may be archived), and what the files said."""

    __slots__ = ("log", "records", "removed", "size", "snapshot")

    def __init__(self, records: Sessions, removed: set[str], snapshot: Snapshot,
                 size: int, log: Log) -> None:
        self.records = records
        self.removed = removed
        self.snapshot = snapshot
        self.size = size  # the snapshot's bytes (0: there is none)
        self.log = log


def archivable(record: Record) -> bool:
    """Whether RECORD belongs in the archive: its end is recorded, and neither Restart=
    nor its own timer (a run that waits out a usage limit or a retry delay) will run it
    again (a late exit hook, a resume or recover that does is still served)."""
    return record.result is not None and not record.restarting \
        and record.resumes_at is None


class Changing(MutableMapping[str, Record]):
    """The records a change sees: the live ones at once, the archived ones brought in by
    the first look that needs them (an id that is not live, or every record),
    so that a change of live records (a spawn's, its confirmation, an exit) never reads
    the history."""

    def __init__(self, live: Sessions, archived: Callable[[], Sessions]) -> None:
        self.records = dict(live)
        self._archived = archived
        self.fetched: Sessions | None = None  # the archived records, once read
        self.deleted: set[str] = set()  # ids removed before those were read
        self.touched: set[str] = set()  # ids set or removed: all a change can differ in

    def everything(self) -> Sessions:
        """Every record, the archived ones read now if not yet."""
        if self.fetched is None:
            self.fetched = self._archived()
            for session_id, record in self.fetched.items():
                if session_id not in self.deleted:
                    self.records.setdefault(session_id, record)  # the change's own win
        return self.records

    def __getitem__(self, key: str) -> Record:
        try:
            return self.records[key]
        except KeyError:
            return self.everything()[key]

    def __contains__(self, key: object) -> bool:
        return key in self.records or key in self.everything()

    def __setitem__(self, key: str, value: Record) -> None:
        self.records[key] = value
        self.deleted.discard(key)
        self.touched.add(key)

    def __delitem__(self, key: str) -> None:
        self.touched.add(key)
        if self.fetched is None and key in self.records:
            del self.records[key]
            self.deleted.add(key)  # an archived copy of it, if any, must not come back
        else:
            del self.everything()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.everything())

    def __len__(self) -> int:
        return len(self.everything())


def merged(archived: Sessions, live: Sessions, removed: set[str] | frozenset[str]
           ) -> Sessions:
    """Every record: the live ones over the archived ones that the log did not remove,
    in creation order."""
    if not archived:
        return dict(live)
    every = [r for i, r in archived.items() if i not in removed and i not in live]
    every += live.values()
    every.sort(key=lambda r: (r.created_at, r.id))
    return {r.id: r for r in every}
