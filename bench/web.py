"""`orch serve` (issue 22): listing N live sessions through `GET /api/sessions` against
what `orch ps --json` does in-process (the listing and its JSON, without a process's
start), and how long a program's line takes to reach a client following its logs as
Server-Sent Events."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orch
from bench.context import ORCH, Bench
from bench.series import SSE_LATENCY, Contender, Series, Unit, serving_at
from bench.timing import round_robin, say

TOKEN = "bench-token-0123456789-abcdefghij"
# Prints a line each time a word is added to its file: the trigger of each sample.
ECHO = ("import sys, time\nseen = 0\nprint('ready', flush=True)\nwhile True:\n"
        "    n = len(open(sys.argv[1]).read().split())\n    while seen < n:\n"
        "        seen += 1\n        print(f'line {seen}', flush=True)\n    time.sleep(0.005)\n")


def _ms(seconds: float) -> float:
    return seconds * 1000.0


@contextmanager
def serving(bench: Bench, state: Path) -> Iterator[int]:
    """`orch serve` on a free loopback port over STATE, ended by its PID afterwards."""
    token_file = bench.work / "web-token"
    token_file.write_text(TOKEN + "\n")
    os.chmod(token_file, 0o600)
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = subprocess.Popen([ORCH, "serve", "--listen", f"127.0.0.1:{port}",
                               "--token-file", str(token_file)], env=bench.orch_env(state),
                              stderr=subprocess.PIPE, text=True)
    try:
        assert server.stderr is not None
        line = server.stderr.readline()
        if "serving" not in line:
            raise RuntimeError(f"orch serve did not start: {line}{server.stderr.read()}")
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)


def listing(bench: Bench, state: Path, n: int, rounds: int) -> list[Series]:
    """The web API's listing of the N sessions in STATE against the same in-process."""
    with serving(bench, state) as port:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Authorization": f"Bearer {TOKEN}"}

        def api(index: int) -> float:
            start = time.perf_counter()
            connection.request("GET", "/api/sessions", headers=headers)
            body = connection.getresponse().read()
            took = time.perf_counter() - start
            if index == 0 and len(json.loads(body)) != n:
                raise RuntimeError("the API lists another number of sessions")
            return _ms(took)

        def in_process(index: int) -> float:
            with bench.library(state):
                start = time.perf_counter()
                json.dumps([s.to_json() for s in orch.list_sessions()])
                return _ms(time.perf_counter() - start)

        api(0)  # the server's first answer loads what the next ones reuse
        say(f"web API at N={n}: {rounds} rounds")
        samples = round_robin({Contender.API_LIST: api, Contender.PS_IN_PROCESS: in_process},
                              rounds, progress=f"web N={n}")
        connection.close()
    return [Series(serving_at(n), contender, Unit.MS, values,
                   reference=Contender.PS_IN_PROCESS)
            for contender, values in samples.items()]


def sse_latency(bench: Bench, samples: int) -> list[Series]:
    """From a word added to a session's trigger file to its line at an SSE client, and,
    in the same samples, to the same line at `journalctl --follow` (what the journal
    itself takes to show a new line to any reader)."""
    state = bench.state("web-sse")
    trigger = bench.work / "sse-trigger"
    trigger.write_text("")
    with bench.library(state):
        session = orch.spawn(["/usr/bin/python3", "-c", ECHO, str(trigger)])
    found: list[float] = []
    journal: list[float] = []
    arrivals: list[float] = []
    follower = subprocess.Popen(
        ["journalctl", "--follow", "--lines", "0", "--output", "cat",
         f"SYSLOG_IDENTIFIER={session.unit.removesuffix('.service')}", f"_UID={os.getuid()}"],
        stdout=subprocess.PIPE, env=bench.base_env())

    def watch_journal() -> None:
        assert follower.stdout is not None
        for line in follower.stdout:
            if line.startswith(b"line "):
                arrivals.append(time.perf_counter())

    import threading

    reader = threading.Thread(target=watch_journal, daemon=True)
    reader.start()
    try:
        with serving(bench, state) as port:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            connection.request("GET", f"/api/sessions/{session.id}/logs?follow=true&format=cat",
                               headers={"Authorization": f"Bearer {TOKEN}"})
            stream = connection.getresponse()
            events = _events(stream)
            while next(events) != "ready":
                pass
            for index in range(samples):
                with trigger.open("a") as file:
                    file.write("x ")
                written = time.perf_counter()
                data = next(events)
                found.append(_ms(time.perf_counter() - written))
                if data != f"line {index + 1}":
                    raise RuntimeError(f"the stream said {data!r}")
                deadline = time.monotonic() + 10
                while len(arrivals) <= index and time.monotonic() < deadline:
                    time.sleep(0.001)  # the other reader's line: polled, with a deadline
                if len(arrivals) <= index:
                    raise RuntimeError("journalctl --follow missed a line")
                journal.append(_ms(arrivals[index] - written))
            connection.close()
    finally:
        follower.terminate()  # ours, by its PID
        follower.wait(timeout=30)
        with bench.library(state):
            orch.stop(session.id)
        bench.clear(state)
    note = ("each sample: a word added to the session's trigger file, until its line "
            "arrives (the session polls its file every 5 ms)")
    return [Series(SSE_LATENCY, Contender.SSE_LOGS, Unit.MS, found,
                   reference=Contender.JOURNAL_FOLLOW, detail={"note": note}),
            Series(SSE_LATENCY, Contender.JOURNAL_FOLLOW, Unit.MS, journal,
                   detail={"note": note + ", at `journalctl --follow -o cat`"})]


def _events(stream: http.client.HTTPResponse) -> Iterator[str]:
    """The data of each Server-Sent Event on STREAM, as they come."""
    buffer = b""
    while True:
        while b"\n\n" not in buffer:
            chunk = stream.read1(65536)
            if not chunk:
                return
            buffer += chunk
        raw, buffer = buffer.split(b"\n\n", 1)
        data = [line[6:] for line in raw.decode().split("\n") if line.startswith("data: ")]
        if data:
            yield "\n".join(data)
