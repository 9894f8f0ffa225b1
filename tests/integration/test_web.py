"""`orch serve`'s API against real managers, as root on the system manager and as the
test user on theirs: the same sessions as the CLI, spawn, stop, kill, logs and events
as they come (Server-Sent Events, resumed with Last-Event-ID), and the refusals."""

from __future__ import annotations

import json
import sys
import time

from tests.integration.conftest import Orch
from tests.integration.web import TOKEN, serving
from tests.waiting import wait_for

ECHO_ON_SIGNAL = (  # prints a line each time the test touches its file
    "import os, sys, time\nseen = 0\nprint('ready', flush=True)\n"
    "while True:\n    n = len(open(sys.argv[1]).read().split())\n"
    "    while seen < n:\n        seen += 1\n        print(f'line {seen}', flush=True)\n"
    "    time.sleep(0.02)\n")


def test_the_api_serves_the_same_sessions_as_the_cli(orch: Orch) -> None:
    cli = orch.spawn("sleep", "300", opts=["--name", "from-cli"])
    with serving(orch) as server:
        assert server.url == f"http://{server.host}/?token={TOKEN}"
        listed = server.ok("GET", "/api/sessions")
        assert [s["id"] for s in listed] == [cli]
        assert listed[0] == {**orch.ps()[0], "cpu_usage_nsec": listed[0]["cpu_usage_nsec"],
                             "memory_current": listed[0]["memory_current"]}
        made = server.ok("POST", "/api/sessions", {"argv": ["sleep", "300"], "name": "from-web",
                                                   "tags": ["web"], "memory_max": "64M"}, 201)
        assert made["status"] == "running" and made["options"]["memory_max"] == 64 << 20
        assert {s["name"] for s in orch.ps("--tag", "web")} == {"from-web"}
        shown = server.ok("GET", "/api/sessions/from-web")
        assert shown["id"] == made["id"] and shown["processes"][0]["pid"] == shown["main_pid"]
        assert server.ok("POST", f"/api/sessions/{made['id']}/stop")["status"] == "stopped"
        killed = server.ok("POST", "/api/sessions/from-cli/kill", {"result": "enough"})
        assert killed["final_result"] == "enough"  # recorded before the signal
        wait_for(lambda: server.ok("GET", f"/api/sessions/{cli}")["status"] == "killed",
                 what="the kill to end it")


def test_bad_input_is_a_4xx_with_one_line(orch: Orch) -> None:
    with serving(orch) as server:
        for body, status, says in (
                ({"argv": ["/no/such/program"]}, 422, "/no/such/program"),
                ({"argv": ["sleep"], "cpu_quota": 50}, 400, "body.cpu_quota"),
                ({"argv": ["sleep"], "cpu_quota": "lots"}, 400, "--cpu-quota: expected"),
                ({"argv": ["sleep"], "after": ["nobody"]}, 404, "nobody")):
            answer = server.request("POST", "/api/sessions", body)
            assert answer.status == status, answer.body
            assert says in answer.json()["error"] and b"\n" not in answer.body.strip()
        assert server.request("GET", "/api/sessions/nobody").status == 404
        assert orch.ps() == []  # nothing was made of any of it


def test_refusals_no_token_wrong_token_foreign_host_or_origin(orch: Orch) -> None:
    with serving(orch) as server:
        assert server.request("GET", "/api/sessions", token=None).status == 401
        assert server.request("GET", "/api/sessions", token="x" * 32).status == 401
        foreign = server.request("GET", "/api/sessions", headers={"Host": "evil.example"})
        assert foreign.status == 403 and "Host" in foreign.json()["error"]
        cross = server.request("POST", "/api/sessions", {"argv": ["true"]},
                               headers={"Origin": "http://evil.example"})
        assert cross.status == 403 and orch.ps() == []
        opened = server.request("GET", f"/?token={TOKEN}", token=None)
        assert opened.status == 303 and opened.headers["location"] == "/"  # token gone
        cookie = opened.headers["set-cookie"].split(";")[0]
        page = server.request("GET", "/", token=None, headers={"Cookie": cookie})
        assert page.status == 200 and b"<title>orch</title>" in page.body
        assert server.request("GET", "/api/sessions", token=None,
                              headers={"Cookie": cookie}).status == 200


def test_serve_refuses_a_remote_address_unless_told(root_orch: Orch) -> None:
    done = root_orch("serve", "--listen", "0.0.0.0:8765")
    assert done.returncode == 2 and done.stdout == ""
    assert "--allow-remote" in done.stderr and done.stderr.count("\n") == 1


def test_logs_follow_as_events_and_resume_after_the_last_one(orch: Orch) -> None:
    trigger = orch.owned_file("trigger", "")
    sid = orch.spawn(sys.executable, "-c", ECHO_ON_SIGNAL, str(trigger),
                     opts=["--name", "echo"])
    wait_for(lambda: "ready" in orch.logs_text(sid), what="the program to start")
    with serving(orch) as server:
        assert server.request("GET", f"/api/sessions/{sid}/logs?format=cat").body == b"ready\n"
        with server.events(f"/api/sessions/{sid}/logs?follow=true&format=cat") as stream:
            first_id, _, data = stream.next()
            assert data == "ready" and first_id
            latencies = []
            for n in (1, 2, 3):
                trigger.write_text("x " * n)
                written = time.monotonic()
                _, _, data = stream.next()
                latencies.append(time.monotonic() - written)
                assert data == f"line {n}"
            assert max(latencies) < 2.0, latencies
        # Resumed after the first event: the rest, and nothing twice.
        with server.events(f"/api/sessions/{sid}/logs?follow=true&format=cat",
                           last_event_id=first_id) as stream:
            assert [stream.next()[2] for _ in range(3)] == ["line 1", "line 2", "line 3"]
            orch.ok("stop", sid)
            while (event := stream.next())[1] != "end":
                assert event[2] not in ("ready", "line 1")
        assert orch.show(sid)["status"] == "stopped"


def test_the_server_may_open_as_many_files_as_its_hard_limit(user_orch: Orch) -> None:
    # Each follower holds the journal's files open: at a soft limit of 1,024, some 25
    # followers at once made the rest fail (or, before, read a false end).
    with serving(user_orch, open_files=64) as server:
        limits = user_orch.machine.run(["cat", f"/proc/{server.pid}/limits"],
                                       user=user_orch.user).stdout
        [row] = [line.split() for line in limits.splitlines()
                 if line.startswith("Max open files")]
        soft, hard = row[3], row[4]
        assert soft == hard and int(hard) > 64, row
        assert server.ok("GET", "/api/sessions") == []


def test_events_stream_each_state_change_and_resume(orch: Orch) -> None:
    with serving(orch) as server, server.events("/api/events") as stream:
        sid = orch.spawn("/bin/true", opts=["--name", "evented"])
        seen = [stream.next() for _ in range(3)]
        assert [(json.loads(d)["session_id"], json.loads(d)["event"]) for _, _, d in seen] == [
            (sid, "spawned"), (sid, "started"), (sid, "ended")]
        with server.events("/api/events", last_event_id=seen[0][0]) as again:
            assert [json.loads(again.next()[2])["event"] for _ in range(2)] == [
                "started", "ended"]
