"""`orch logs` against the real journal: lines journald split come back whole in every
format and for -n, a repeated field is shown rather than a crash, -f returns once the
session has ended with its last line printed, and a terminal gets a pager."""

from __future__ import annotations

import json
import os
import random
import select
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.conftest import ORCH, PYTHON, Orch, wait_for

# journald splits a stdout line at LineMax= (48 KiB unless journald.conf says otherwise).
LONG = 300 * 1024


def long_line(size: int, seed: int = 0) -> str:
    """About SIZE bytes of UTF-8 on one line that nothing could compress or dedupe away:
    random words of ASCII and multibyte letters, so that journald's cuts fall inside
    characters too."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789éøßλж漢字🙂"
    words: list[str] = []
    length = 0
    while length < size:
        word = "".join(rng.choice(letters) for _ in range(rng.randint(1, 12)))
        words.append(word)
        length += len(word.encode()) + 1
    return " ".join(words)


def same_text(got: str, want: str, what: str) -> None:
    """GOT is WANT, or a short message saying where they part (never a 1 MiB diff)."""
    if got != want:
        at = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b),
                  min(len(got), len(want)))
        pytest.fail(f"{what}: {len(got)} characters, expected {len(want)}; they part at "
                    f"{at}: {got[at:at + 40]!r} vs {want[at:at + 40]!r}")


def _owned(orch: Orch, path: Path, text: str) -> Path:
    path.write_text(text)
    os.chown(path, orch.uid, orch.uid)
    return path


def _journal_entries(orch: Orch, sid: str, program: str) -> list[dict[str, object]]:
    """The session's entries as journald stored them (root reads every journal)."""
    done = orch.machine.run(["journalctl", "--no-pager", "--quiet", "--all", "-o", "json",
                             f"SYSLOG_IDENTIFIER=orch-{program}-{sid[:8]}"])
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_a_line_journald_split_comes_back_whole_in_every_format(orch: Orch) -> None:
    line = long_line(LONG)
    data = _owned(orch, orch.state_dir.parent / "out.txt", f"{line}\nshort one\n")
    sid = orch.spawn("/bin/cat", str(data))
    assert orch("wait", sid).returncode == 0
    wait_for(lambda: "short one" in orch.logs_text(sid), what="the last line")
    assert len(_journal_entries(orch, sid, "cat")) > 2  # journald did split the line

    same_text(orch.logs_text(sid), f"{line}\nshort one\n", "-o cat")
    assert orch.ok("logs", "-o", "cat", "-n", "1", sid) == "short one\n"
    same_text(orch.ok("logs", "-o", "cat", "-n", "2", sid), f"{line}\nshort one\n", "-n 2")
    entries = [json.loads(e) for e in orch.ok("logs", "-o", "json", sid).splitlines()]
    assert len(entries) == 2
    same_text(entries[0]["MESSAGE"], line, "-o json")
    short = orch.ok("logs", sid).splitlines()
    assert short[0].startswith("-- invocation 1 ") and len(short) == 3
    same_text(short[1].split(": ", 1)[1], line, "-o short")


def test_a_repeated_field_is_shown_not_a_crash(orch: Orch) -> None:
    # A native journal entry of the session's own with MESSAGE given twice: journalctl's
    # JSON gives the field as a list.
    script = ("import os, socket\n"
              "ident = os.environ['ORCH_UNIT'].removesuffix('.service')\n"
              "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
              "s.sendto(f'SYSLOG_IDENTIFIER={ident}\\nMESSAGE=one\\nMESSAGE=two\\n'.encode(),"
              " '/run/systemd/journal/socket')\n")
    sid = orch.spawn(PYTHON, "-c", script)
    assert orch("wait", sid).returncode == 0
    wait_for(lambda: "two" in orch.logs_text(sid), what="the entry")
    assert orch.logs_text(sid) == "one\ntwo\n"
    short = orch("logs", sid)
    assert short.returncode == 0, short.stderr
    assert short.stdout.endswith(": one\ntwo\n")
    entries = [json.loads(e) for e in orch.ok("logs", "-o", "json", sid).splitlines()]
    assert entries[-1]["MESSAGE"] == ["one", "two"]


# --- logs -f ---------------------------------------------------------------------------

class Follower:
    """`orch logs -f ...` running, its output read as it comes."""

    def __init__(self, orch: Orch, *args: str) -> None:
        self.process = orch.machine.popen([ORCH, "logs", "-f", *args], user=orch.user,
                                          env=orch.env)
        self.out = ""

    def read_until(self, text: str, timeout: float = 30.0) -> None:
        """Read on until TEXT has been printed."""
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        while text not in self.out:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"logs -f did not print {text!r} in {timeout:g}s: {self.out!r}")
            if select.select([fd], [], [], remaining)[0]:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    break
                self.out += chunk.decode()

    def finish(self, timeout: float = 30.0) -> int:
        """Its exit status, once it returned by itself (a failure if not in TIMEOUT)."""
        try:
            rest, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()  # by its own PID
            self.process.communicate()
            pytest.fail(f"logs -f did not return in {timeout:g}s after the session ended")
        self.out += rest
        return self.process.returncode


@pytest.mark.parametrize(("fmt", "code", "status"),
                         [("cat", 0, 0), ("json", 3, 1), ("short", 0, 0)])
def test_follow_returns_with_the_last_line_once_the_session_ended(
        orch: Orch, fmt: str, code: int, status: int) -> None:
    # The last line is long and printed right before the program exits: journald has
    # it on another socket than the manager's word that the program ended.
    last = long_line(100 * 1024, seed=code)
    work = orch.state_dir.parent
    data = _owned(orch, work / "last.txt", last + "\n")
    go = work / "go"
    sid = orch.spawn("/bin/sh", "-c", f"echo first; while [ ! -e {go} ]; do sleep 0.05; done; "
                                      f"cat {data}; exit {code}")
    follower = Follower(orch, "-o", fmt, sid)
    follower.read_until("first")
    _owned(orch, go, "")
    assert follower.finish() == status
    lines = follower.out.splitlines()
    final = {"cat": lambda: lines[-1], "json": lambda: json.loads(lines[-1])["MESSAGE"],
             "short": lambda: lines[-1].split(": ", 1)[1]}[fmt]()
    same_text(final, last, f"the last line, -o {fmt}")


def test_follow_of_a_stopped_session_returns_as_wait_does(orch: Orch) -> None:
    sid = orch.spawn("/bin/sh", "-c", "echo ready; exec sleep 300")
    follower = Follower(orch, "-o", "cat", sid)
    follower.read_until("ready")
    orch.ok("stop", sid)
    assert follower.finish() == 1
    assert orch("wait", sid).returncode == 1
    assert follower.out == "ready\n"


def test_follow_of_an_ended_session_prints_it_all_and_returns_at_once(orch: Orch) -> None:
    sid = orch.spawn("/bin/sh", "-c", "echo one; echo two")
    assert orch("wait", sid).returncode == 0
    wait_for(lambda: "two" in orch.logs_text(sid), what="both lines")
    done = orch("logs", "-f", "-o", "cat", sid, timeout=30)
    assert (done.returncode, done.stdout) == (0, "one\ntwo\n")
    done = orch("logs", "-f", "-n", "1", "-o", "cat", sid, timeout=30)
    assert (done.returncode, done.stdout) == (0, "two\n")
    # --since as events reads it (before: "journalctl failed: Failed to parse timestamp").
    assert orch.ok("logs", "--since", "1h", "-o", "cat", sid) == "one\ntwo\n"
    assert orch.ok("logs", "--since", "2999-01-01T00:00", "-o", "cat", sid) == ""
    done = orch("logs", "--since", "1 fortnight", sid)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert done.stderr.startswith("orch: --since '1 fortnight': expected an ISO 8601 time")
    # More than journalctl can count (it took such a count for a match): every line.
    for follow in ([], ["-f"]):
        done = orch("logs", *follow, "-n", "99999999999", "-o", "cat", sid, timeout=30)
        assert (done.returncode, done.stdout, done.stderr) == (0, "one\ntwo\n", "")


def test_logs_go_on_after_a_cursor_and_follow_as_events_keyed_by_cursor(orch: Orch) -> None:
    sid = orch.spawn("/bin/sh", "-c", "echo one; echo two; echo three")
    assert orch("wait", sid).returncode == 0
    wait_for(lambda: "three" in orch.logs_text(sid), what="the three lines")
    entries = orch.ok("logs", "-o", "json", sid).splitlines()
    cursors = [json.loads(entry)["__CURSOR"] for entry in entries]
    assert orch.ok("logs", "-o", "cat", "--after-cursor", cursors[0], sid) == "two\nthree\n"
    # As `orch serve` on another host asks for them: each line an event, its id its cursor.
    done = orch("logs", "-f", "--sse", "-o", "cat", "--after-cursor", cursors[0], sid,
                timeout=30)
    assert (done.returncode, done.stdout) == (
        0, f"id: {cursors[1]}\ndata: two\n\nid: {cursors[2]}\ndata: three\n\n")
    for wrong, says in ((["-n", "1", "--after-cursor", cursors[0]], "do not go together"),
                        (["--sse"], "--sse goes with -f"),
                        # Before, journalctl's words, and exit 1.
                        (["--after-cursor", "xyz"], "--after-cursor: not a cursor of this")):
        refused = orch("logs", *wrong, sid)
        assert refused.returncode == 2 and says in refused.stderr, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1


# --- the pager -------------------------------------------------------------------------

def _on_a_terminal(orch: Orch, *args: str, env: dict[str, str]) -> str:
    """Run `orch ARGS` with its stdout a terminal (a pseudo-terminal of the test's);
    what it wrote there."""
    master, slave = os.openpty()
    assignments = ["=".join(item) for item in {**orch.env, **env}.items()]
    process = subprocess.Popen([*orch.machine.prefix, "env", *assignments, ORCH, *args],
                               stdin=subprocess.DEVNULL, stdout=slave,
                               stderr=subprocess.PIPE, cwd="/")
    os.close(slave)
    out = b""
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not select.select([master], [], [], 0.5)[0]:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 1 << 16)
            except OSError:  # EIO: every writer of the terminal has closed it
                break
            if not chunk:
                break
            out += chunk
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()  # by its own PID
            process.wait()
        os.close(master)
    return out.decode().replace("\r\n", "\n")


def test_on_a_terminal_logs_go_through_the_pager(root_orch: Orch) -> None:
    work = root_orch.state_dir.parent
    called = work / "pager-called"
    pager = work / "pager"
    pager.write_text(f"#!/bin/sh\necho \"LESS=$LESS\" > {called}\nexec cat\n")
    pager.chmod(0o755)
    sid = root_orch.spawn("/bin/echo", "paged line")
    assert root_orch("wait", sid).returncode == 0
    wait_for(lambda: "paged line" in root_orch.logs_text(sid), what="the line")

    shown = _on_a_terminal(root_orch, "logs", "-o", "cat", sid,
                           env={"SYSTEMD_PAGER": str(pager)})
    assert shown == "paged line\n"
    assert called.read_text() == "LESS=FRSXMK\n"
    called.unlink()

    shown = _on_a_terminal(root_orch, "logs", "--no-pager", "-o", "cat", sid,
                           env={"PAGER": str(pager)})
    assert shown == "paged line\n" and not called.exists()
    assert root_orch("logs", "-o", "cat", sid, env={"PAGER": str(pager)}).stdout \
        == "paged line\n"
    assert not called.exists()  # stdout a pipe: no pager
