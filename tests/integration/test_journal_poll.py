"""Following the journal through sd-journal (orch.journal_poll) against the real
journal: it gives every entry exactly as `journalctl --output json --all` does (fields
given twice, bytes that are not text, fields past journalctl's 4 KiB cut), reads on
after a cursor as --after-cursor does, and hears of a new entry as it comes."""

from __future__ import annotations

import json
import uuid

from tests.integration.conftest import PYTHON, Orch, wait_for

# Run in the box as the caller: what each reader gives for the entries of one identifier.
READERS = """
import json, sys, time
from orch import journal, journal_poll

ident, mode = sys.argv[1], sys.argv[2]
matches = [f"SYSLOG_IDENTIFIER={ident}"]
if mode == "compare":
    expected = journal._run(matches)
    def everything(cursor):
        poller, got = journal_poll.Poller(matches, cursor), []
        while batch := poller.read(0):
            got += batch
        poller.close()
        return got
    print(json.dumps({"journalctl": expected, "poller": everything(None),
                      "after": everything(expected[1]["__CURSOR"]),
                      "journalctl_after": journal._run(
                          [*matches, "--after-cursor", expected[1]["__CURSOR"]])}))
else:  # follow: from the last entry, then one more is logged and must come
    last = journal._run(matches)[-1]["__CURSOR"]
    poller = journal_poll.Poller(matches, last)
    assert poller.read(0) == []
    import subprocess
    subprocess.run(["logger", "--journald"], input=(
        f"SYSLOG_IDENTIFIER={ident}\\nMESSAGE=the newest\\n").encode(), check=True)
    deadline, got = time.monotonic() + 30, []
    while not got and time.monotonic() < deadline:
        got = poller.read(1.0)
    print(json.dumps([e["MESSAGE"] for e in got]))
"""


def _log(orch: Orch, fields: bytes) -> None:
    """Send one entry of FIELDS ("NAME=value" lines) to journald as the caller."""
    done = orch.machine.run(["sh", "-c", f"printf '{_printf(fields)}' | logger --journald"],
                            user=orch.user, env=orch.env)
    assert done.returncode == 0, done.stderr


def _printf(data: bytes) -> str:
    return "".join(f"\\{b:03o}" for b in data)


def _readers(orch: Orch, ident: str, mode: str) -> object:
    done = orch.machine.run([PYTHON, "-c", READERS, ident, mode], user=orch.user,
                            env=orch.env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_poller_reads_the_journal_as_journalctl_does(orch: Orch) -> None:
    ident = f"orch-poll-{uuid.uuid4().hex[:8]}"
    head = f"SYSLOG_IDENTIFIER={ident}\n".encode()
    _log(orch, head + b"MESSAGE=plain\n")
    _log(orch, head + b"MESSAGE=twice\nFOO=a\nFOO=b\nFOO=c\n")
    _log(orch, head + b"MESSAGE=not text \xff\xfe and a \x01\n")
    _log(orch, head + b"MESSAGE=" + b"long " * 2000 + b"\n")

    def all_logged() -> dict[str, list[dict[str, object]]] | None:
        found = _readers(orch, ident, "compare")
        assert isinstance(found, dict)
        return found if len(found["journalctl"]) == 4 else None

    found = wait_for(all_logged, 30, "journald to hold the four entries")
    assert found["poller"] == found["journalctl"]
    assert found["journalctl"][1]["FOO"] == ["a", "b", "c"]
    assert isinstance(found["journalctl"][2]["MESSAGE"], list)  # bytes, not text
    assert found["after"] == found["journalctl_after"] == found["journalctl"][2:]


def test_the_poller_hears_of_a_new_entry(orch: Orch) -> None:
    ident = f"orch-poll-{uuid.uuid4().hex[:8]}"
    _log(orch, f"SYSLOG_IDENTIFIER={ident}\nMESSAGE=first\n".encode())

    def logged() -> bool:
        shown = orch.machine.run(["journalctl", "-q", "-o", "cat", f"SYSLOG_IDENTIFIER={ident}"],
                                 user=orch.user, env=orch.env)
        return shown.stdout.strip() == "first"

    wait_for(logged, 30, "the first entry in the journal")
    assert _readers(orch, ident, "follow") == ["the newest"]
