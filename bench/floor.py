"""The floor of a command-line tool written in Python on pystemd: a fresh process that
loads pystemd's D-Bus layer as orch does (orch.dbus, nothing else of orch) and makes the
one call the task needs; no argument parsing, no state file, no output but the answer.

    python bench/floor.py start UNIT PROGRAM [ARG...]   start a Type=exec unit, wait
                                                        for its start job (as the raw
                                                        contender and systemd-run do)
    python bench/floor.py list PATTERN                  ListUnitsByPatterns; print names

What this costs against systemd's C tools bounds the ratio any such tool can reach;
the bench reports it beside orch's (bench/README.md). Exits 1 if the job did not end
'done'.
"""

from __future__ import annotations

import os
import sys
import time

from orch.dbus import (
    DESTINATION,
    MANAGER_IFACE,
    MANAGER_PATH,
    load_pystemd,
    properties_args,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing would add its load time to the floor
    from collections.abc import Sequence
    from typing import Any

JOB_TIMEOUT_S = 30.0


def floor_properties(argv: Sequence[str]) -> list[tuple[str, str, Any]]:
    """The fewest properties that make the same kind of unit orch makes: a Type=exec
    service (its start job ends once the program was executed) that is collected when
    it ends."""
    return [
        ("Description", "s", b"orch bench floor"),
        ("Type", "s", b"exec"),
        ("ExecStart", "a(sasb)", [(argv[0].encode(), [a.encode() for a in argv], False)]),
        ("CollectMode", "s", b"inactive-or-failed"),
    ]


def _bus() -> Any:
    load_pystemd()
    from pystemd.dbuslib import DBusAddress

    path = f"{os.environ['XDG_RUNTIME_DIR']}/systemd/private"
    bus = DBusAddress(f"unix:path={path}".encode(), peer_to_peer=True)
    bus.open()
    return bus


def start(unit: str, argv: list[str]) -> int:
    bus = _bus()
    from pystemd.dbuslib import apply_signature  # after _bus() loaded it as orch does

    jobs: dict[bytes, bytes] = {}

    def on_job_removed(msg: Any, error: Any = None, userdata: Any = None) -> None:
        msg.process_reply(False)
        jobs[bytes(msg.body[1])] = bytes(msg.body[3])

    bus.match_signal(DESTINATION, MANAGER_PATH, MANAGER_IFACE, b"JobRemoved", on_job_removed)
    args = apply_signature(b"ss", [unit.encode(), b"fail"])
    args += properties_args(floor_properties(argv))
    args += [(ord("a"), b"(sa(sv))"), (-1, None)]
    job = bytes(bus.call_method(DESTINATION, MANAGER_PATH, MANAGER_IFACE,
                                b"StartTransientUnit", args).body)
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while job not in jobs and time.monotonic() < deadline:
        bus.wait(int((deadline - time.monotonic()) * 1_000_000) + 1)
        while not bus.process().is_empty():
            pass
    return 0 if jobs.get(job) == b"done" else 1


def list_units(pattern: str) -> int:
    bus = _bus()
    from pystemd.dbuslib import apply_signature  # after _bus() loaded it as orch does

    rows = bus.call_method(DESTINATION, MANAGER_PATH, MANAGER_IFACE, b"ListUnitsByPatterns",
                           apply_signature(b"asas", [[], [pattern.encode()]])).body
    sys.stdout.write("".join(bytes(row[0]).decode() + "\n" for row in rows))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["start"] and len(sys.argv) >= 4:
        sys.exit(start(sys.argv[2], sys.argv[3:]))
    if sys.argv[1:2] == ["list"] and len(sys.argv) == 3:
        sys.exit(list_units(sys.argv[2]))
    sys.exit(__doc__)
