"""Durations as systemd reads them: every option, setting and variable of orch that takes
a duration goes through parse_usec, a port of systemd's parse_time() (v252,
src/basic/time-util.c) with seconds as the unit of a bare number, so that orch accepts
exactly the time spans of systemd.time(7) and gets the same microseconds.
"""

from __future__ import annotations

import math

from orch import jsontext
from orch.errors import UsageError

USEC_INFINITY = 2**64 - 1  # systemd's usec_t maximum, which means "infinity"
# systemd's units in microseconds (src/basic/time-util.h), for parsing and for writing.
USEC_PER_SEC = 1_000_000
USEC_PER_MINUTE = 60 * USEC_PER_SEC
USEC_PER_HOUR = 60 * USEC_PER_MINUTE
USEC_PER_DAY = 24 * USEC_PER_HOUR
USEC_PER_WEEK = 7 * USEC_PER_DAY
USEC_PER_MONTH = 2_629_800 * USEC_PER_SEC
USEC_PER_YEAR = 31_557_600 * USEC_PER_SEC
_SEC = USEC_PER_SEC


def usec(seconds: float) -> int:
    """SECONDS as D-Bus carries a time span: in microseconds, USEC_INFINITY for math.inf.
    round: 249 us is 0.000249 s, which times 10**6 is 248.99999999999997."""
    return USEC_INFINITY if seconds == math.inf else round(seconds * USEC_PER_SEC)


# In extract_multiplier()'s order: the first suffix the text starts with wins, so the
# longer spellings come first ("ms" before "m", "months" before "m").
_UNITS: tuple[tuple[str, int], ...] = (
    ("seconds", USEC_PER_SEC), ("second", USEC_PER_SEC), ("sec", USEC_PER_SEC),
    ("s", USEC_PER_SEC),
    ("minutes", USEC_PER_MINUTE), ("minute", USEC_PER_MINUTE), ("min", USEC_PER_MINUTE),
    ("months", USEC_PER_MONTH), ("month", USEC_PER_MONTH), ("M", USEC_PER_MONTH),
    ("msec", 1000), ("ms", 1000), ("m", USEC_PER_MINUTE),
    ("hours", USEC_PER_HOUR), ("hour", USEC_PER_HOUR), ("hr", USEC_PER_HOUR),
    ("h", USEC_PER_HOUR),
    ("days", USEC_PER_DAY), ("day", USEC_PER_DAY), ("d", USEC_PER_DAY),
    ("weeks", USEC_PER_WEEK), ("week", USEC_PER_WEEK), ("w", USEC_PER_WEEK),
    ("years", USEC_PER_YEAR), ("year", USEC_PER_YEAR), ("y", USEC_PER_YEAR),
    ("usec", 1), ("us", 1), ("\u03bcs", 1), ("\u00b5s", 1),
)
_WHITESPACE = " \t\n\r"  # systemd's WHITESPACE
_C_SPACE = " \t\n\v\f\r"  # what strtoll() skips (isspace in the C locale)
_DIGITS = "0123456789"
_LLONG_MAX = 2**63 - 1  # the largest count strtoll() reads: any span under it parses
OUT_OF_RANGE = "out of range"  # what ValueError says of a span too long to count

_EXAMPLES = "90s, 30m, 1h30m, 2h 30min"
_SYNTAX = ("(as systemd.time(7) reads it: a bare number is seconds; units us, ms, s, "
           "min or m, h, d, w, M (month), y)")
EXPECTED = f"a duration such as {_EXAMPLES} or infinity {_SYNTAX}"
EXPECTED_FINITE = f"such as {_EXAMPLES} {_SYNTAX}"


def _skip(text: str, i: int, chars: str) -> int:
    while i < len(text) and text[i] in chars:
        i += 1
    return i


def _strtoll(text: str, start: int) -> tuple[int, int]:
    """strtoll(text + start, &end, 10): the value and where it stopped (START if no digit
    was read). ValueError on overflow (strtoll's ERANGE)."""
    i = _skip(text, start, _C_SPACE)
    sign = 1
    if i < len(text) and text[i] in "+-":
        sign = -1 if text[i] == "-" else 1
        i += 1
    end = _skip(text, i, _DIGITS)
    if end == i:
        return 0, start
    value = sign * int(text[i:end])
    if not -_LLONG_MAX - 1 <= value <= _LLONG_MAX:
        raise ValueError(OUT_OF_RANGE)
    return value, end


def _multiplier(text: str, i: int) -> tuple[int | None, int]:
    for suffix, usec in _UNITS:
        if text.startswith(suffix, i):
            return usec, i + len(suffix)
    return None, i


def parse_usec(text: str) -> int:
    """Microseconds in TEXT, a systemd time span ("90", "2h 30min", "1.5d", "infinity":
    USEC_INFINITY); ValueError for what systemd refuses. Step for step parse_time(), so
    that its quirks are ours too: "1h30" is 1 h 30 s, "5 6" is 11 s, ".5" is half a
    second, and digits beyond a unit's precision are dropped ("1.5us" is 1 us)."""
    p = _skip(text, 0, _WHITESPACE)
    if text.startswith("infinity", p):
        if _skip(text, p + len("infinity"), _WHITESPACE) != len(text):
            raise ValueError("text after infinity")
        return USEC_INFINITY
    usec = 0
    something = False
    while True:
        p = _skip(text, p, _WHITESPACE)
        if p == len(text):
            if not something:
                raise ValueError("no time span")
            return usec
        if text[p] == "-":  # no "-0"
            raise ValueError("negative")
        number, e = _strtoll(text, p)
        if number < 0:
            raise ValueError("negative")
        fraction = e < len(text) and text[e] == "."
        if fraction:
            p = _skip(text, e + 1, _DIGITS)
        elif e == p:
            raise ValueError("no number")
        else:
            p = e
        unit, s = _multiplier(text, _skip(text, p, _WHITESPACE))
        if unit is None and s == p and s < len(text):  # "12.34.56", "5x"
            raise ValueError("no unit")
        multiplier = unit or _SEC
        p = s
        if number >= USEC_INFINITY // multiplier:
            raise ValueError(OUT_OF_RANGE)
        k = number * multiplier
        if k >= USEC_INFINITY - usec:
            raise ValueError(OUT_OF_RANGE)
        usec += k
        something = True
        if fraction:
            m = multiplier // 10
            b = e + 1
            while b < len(text) and text[b] in _DIGITS:
                k = int(text[b]) * m
                if k >= USEC_INFINITY - usec:
                    raise ValueError(OUT_OF_RANGE)
                usec += k
                b += 1
                m //= 10
            if b == e + 1:  # "3.", "3.sec", "3. 1"
                raise ValueError("no digit after the point")


def _show(value: object) -> str:
    text = jsontext.dumps(str(value), ascii=False) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_seconds(value: str | int, what: str | None = None, *, zero: bool = True,
                  infinity: bool = True) -> float:
    """Seconds in VALUE, a time span or a whole number of seconds; math.inf for
    "infinity". UsageError in one line (naming WHAT, an option or variable, and listing
    the syntax) for anything systemd would refuse, and for 0 or infinity where the
    caller says they mean nothing (ZERO, INFINITY false)."""
    def refused(expected: str) -> UsageError:  # as a spawn setting's flag says it
        if what:
            return UsageError(f"{what}: expected {expected}, got {_show(value)}")
        return UsageError(f"{_show(value)}: expected {expected}")

    try:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ValueError("not a string or an int")
        usec = parse_usec(str(value))
    except ValueError as err:  # "or infinity" only where it means something
        if str(err) == OUT_OF_RANGE:  # well formed, but beyond what systemd counts
            raise refused(f"a duration below {_LLONG_MAX // USEC_PER_YEAR:,} years"
                          + ("" if not infinity else ", or infinity")) from None
        raise refused(EXPECTED if infinity else f"a duration {EXPECTED_FINITE}") from None
    # The bounds are named to a value that meets one: "abc" is no duration at all.
    if (usec == 0 and not zero) or (usec == USEC_INFINITY and not infinity):
        bounds = [text for text, refused in (("more than 0", not zero),
                                             ("less than infinity", not infinity)) if refused]
        raise refused(f"a duration {' and '.join(bounds)}, {EXPECTED_FINITE}")
    return math.inf if usec == USEC_INFINITY else usec / _SEC


# A time of day as journalctl and ISO 8601 write one: 9:05, 15:09:36, 15:09:36.5, with a
# zone or none. Compiled (and cached by re) when first used: --since needs it, not spawn.
_CLOCK = r"\d{1,2}:\d\d(?::\d\d(?:\.\d{1,6})?)?(?:Z|[+-]\d\d:?\d\d)?"
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _as_iso(words: str) -> str:
    """WORDS without what systemd adds to an ISO 8601 time when it writes one: a weekday
    before it and a zone's name after it (UTC, or the local zone's: local time)."""
    import time

    first, _, rest = words.partition(" ")
    if rest and first.isalpha() and first[:3].lower() in _WEEKDAYS:
        words = rest.strip()
    head, _, zone = words.rpartition(" ")
    if head and zone.upper() in ("UTC", "GMT"):
        return head + "+00:00"
    return head if head and zone in time.tzname else words


def _on_day(words: str) -> tuple[int, str] | None:
    """The days ago and the time of day (empty: midnight) that WORDS name: today or
    yesterday, alone or at a time, or a time of day alone (today's); None otherwise, or
    if the time is no time of day."""
    import re  # --since's alone: no command that takes no time loads it

    day, _, clock = words.partition(" ")
    if day.lower() in ("today", "yesterday"):
        clock = clock.strip()
        return (1 if day.lower() == "yesterday" else 0, clock) \
            if not clock or re.fullmatch(_CLOCK, clock) else None
    return (0, words) if re.fullmatch(_CLOCK, words) else None


def _unreadable(text: str) -> UsageError:
    return UsageError(f"--since {text!r}: expected an ISO 8601 time (2026-12-06T09:00, "
                      "15:09:36), a time span ago (1h, 30min, '2 min ago'), today or "
                      "yesterday")


def since_usec(text: str) -> int:
    """The realtime µs that --since TEXT names: an ISO 8601 time (local time where it
    gives no zone), as systemd writes one too ("Mon 2026-12-07 18:00:00 UTC", as `orch
    show` prints it), a time span ago (1h, 30min, "2 min ago", -1h), now, today or
    yesterday (local midnight, or at a time: "yesterday 18:00"), or a time of day today
    (15:09:36): the forms journalctl's --since and ISO 8601 share, read the same by
    every command. One line otherwise."""
    import time
    from datetime import datetime, timedelta
    from datetime import time as time_of_day

    words = _as_iso(text.strip())
    if words.lower() == "now":
        return int(time.time() * 1_000_000)
    day = _on_day(words)
    if day is not None:
        days_ago, clock = day
        try:  # 9:05 as 09:05, as ISO 8601 writes it
            at = time_of_day.fromisoformat("0" + clock if clock.index(":") == 1 else clock) \
                if clock else time_of_day()
        except ValueError:  # 25:00
            raise _unreadable(text) from None
        when = datetime.combine(datetime.now().date() - timedelta(days=days_ago), at)
        return int((when if when.tzinfo else when.astimezone()).timestamp() * 1_000_000)
    try:
        when = datetime.fromisoformat(words)
    except ValueError:
        span = words.removesuffix("ago").strip() if words.endswith(" ago") else \
            words.removeprefix("-")
        try:
            usec = parse_usec(span) if span and span[0].isdigit() else -1
        except ValueError:
            usec = -1
        if usec < 0 or usec == USEC_INFINITY:
            raise _unreadable(text) from None
        return int(time.time() * 1_000_000) - usec
    if when.tzinfo is None:
        when = when.astimezone()  # a local time, as people write one
    return int(when.timestamp() * 1_000_000)
