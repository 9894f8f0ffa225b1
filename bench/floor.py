"""The floor of a command-line tool written in Python on pystemd: a fresh process that
loads pystemd's D-Bus layer as orch does (orch.dbus, nothing else of orch) and makes the
one call the task needs; no argument parsing, no state file, no output but the answer.

    python bench/floor.py start UNIT PROGRAM [ARG...]   start a Type=exec unit, wait
                                                        for its start job (as the raw
                                                        contender and systemd-run do)
    python bench/floor.py list PATTERN                  ListUnitsByPatterns; print names
    python bench/floor.py start-json DIR UNIT PROGRAM [ARG...]
                                                        start, after appending a JSON
                                                        record to DIR/floor.log under a
                                                        lock, made durable (fdatasync)
    python bench/floor.py list-json STATE PATTERN       list, join with the records of
                                                        orch's snapshot STATE (a JSON
                                                        file), print one JSON object a
                                                        session

What this costs against systemd's C tools bounds the ratio any such tool can reach;
the bench reports it beside orch's (bench/README.md). The -json forms add the least of
what the issues ask of every such tool beyond the call: `json` loaded, a record kept in
a locked, durable JSON file before the start; the JSON records read back and the
listing printed as JSON. Exits 1 if the job did not end 'done'.
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


def _rows(pattern: str) -> list[Any]:
    bus = _bus()
    from pystemd.dbuslib import apply_signature  # after _bus() loaded it as orch does

    return list(bus.call_method(DESTINATION, MANAGER_PATH, MANAGER_IFACE,
                                b"ListUnitsByPatterns",
                                apply_signature(b"asas", [[], [pattern.encode()]])).body)


def list_units(pattern: str) -> int:
    sys.stdout.write("".join(bytes(row[0]).decode() + "\n" for row in _rows(pattern)))
    return 0


def start_json(directory: str, unit: str, argv: list[str]) -> int:
    import fcntl
    import json

    record = {"id": os.urandom(16).hex(), "unit": unit, "argv": argv, "cwd": os.getcwd()}
    fd = os.open(os.path.join(directory, "floor.log"),
                 os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held around the file only, not the call
        os.write(fd, (json.dumps({"set": record}) + "\n").encode())
        os.fdatasync(fd)
    finally:
        os.close(fd)
    status = start(unit, argv)
    print(record["id"])
    return status


def list_json(state: str, pattern: str) -> int:
    import json

    with open(state, "rb") as file:
        records = json.load(file)["sessions"]
    states = {bytes(row[0]).decode(): bytes(row[3]).decode() for row in _rows(pattern)}
    out = [{"id": r["id"], "name": r["name"], "unit": r["unit"],
            "status": states.get(r["unit"], "gone"), "argv": r["argv"]} for r in records]
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    command, args = sys.argv[1:2], sys.argv[2:]
    if command == ["start"] and len(args) >= 2:
        sys.exit(start(args[0], args[1:]))
    if command == ["list"] and len(args) == 1:
        sys.exit(list_units(args[0]))
    if command == ["start-json"] and len(args) >= 3:
        sys.exit(start_json(args[0], args[1], args[2:]))
    if command == ["list-json"] and len(args) == 2:
        sys.exit(list_json(args[0], args[1]))
    sys.exit(__doc__)
