"""The web API's refusals, schema and page, without systemd: bad input is a 4xx with a
one-line JSON error, decided as the CLI decides it, before any manager is asked."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from orch import api
from orch.scope import Scope
from orch.web.access import MAX_BODY
from orch.web.app import create_app


@pytest.fixture
def client(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    config = isolated_env.parent / "config.toml"
    config.write_text('[hosts.h1]\naddress = "root@192.0.2.1"\n')
    monkeypatch.setenv("ORCH_CONFIG", str(config))
    return TestClient(create_app(Scope.USER))


def _error(answer: object, status: int) -> str:
    assert answer.status_code == status, answer.text  # type: ignore[attr-defined]
    body = answer.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"} and "\n" not in body["error"]
    return str(body["error"])


# Refused here, before any manager or host is asked. A number that is true or false comes
# with a command that cannot run, so that it would be refused there if not here.
BAD_SPAWNS = [
    ({}, "give argv"),
    ({"argv": ["sleep", "1"], "prompt": "hi"}, "give argv"),
    ({"argv": [], "prompt": "true"}, "give argv"),
    ({"argv": []}, "argv is empty"),
    ({"prompt": "hi"}, "prompt needs an agent provider"),
    ({"prompt": "true", "provider": "exec"}, "prompt needs an agent provider"),
    ({"argv": ["sleep"], "bogus": 1}, "body.bogus: Extra inputs are not permitted"),
    ({"argv": "sleep 1"}, "body.argv"),
    ({"argv": ["sleep"], "memory_max": "lots"}, "--memory-max: expected a size"),
    ({"argv": ["sleep"], "nice": 40}, "--nice: expected"),
    ({"argv": ["sleep"], "restart": "sometimes"}, "--restart: expected"),
    ({"argv": ["sleep"], "env": ["NOEQUALS"]}, "expected KEY=VALUE"),
    *(({"argv": ["no-such-program"], "persistent": lax}, "body.persistent: ")
      for lax in ("yes", "on", 1, "true")),  # as the config file refuses them
    *(({"argv": ["no-such-program"], key: True}, f"body.{key}: ")
      for key in ("timeout", "memory_max", "nice", "tasks_max", "max_turns")),
]


@pytest.mark.parametrize(("body", "says"), [
    *BAD_SPAWNS, ({"argv": ["sleep"], "profile": "nope"}, "nope")])
def test_a_bad_spawn_is_refused_in_one_line(client: TestClient, body: dict[str, object],
                                            says: str) -> None:
    assert says in _error(client.post("/api/sessions", json=body), 400)


def test_bad_parameters_are_refused_in_one_line(client: TestClient) -> None:
    assert "lines" in _error(client.get("/api/sessions/x/logs?lines=-1"), 400)
    assert "format" in _error(client.get("/api/sessions/x/logs?format=html"), 400)
    assert "body.message" in _error(client.post("/api/sessions/x/send", json={}), 400)
    assert "body.message" in _error(client.post("/api/sessions/x/send",
                                                json={"message": ""}), 400)
    assert "body.signal" in _error(client.post("/api/sessions/x/kill",
                                               json={"signal": True}), 400)
    assert "host" in _error(client.get("/api/sessions?host=a%20b"), 400)
    for garbage in ("garbage", "s=1;q=2", "s=zz", "s=1;"):
        assert "last-event-id" in _error(client.get(  # before the stream starts, not in it
            "/api/sessions/x/logs?follow=true", headers={"Last-Event-ID": garbage}), 400)
    assert "query.tag.1" in _error(client.get("/api/sessions?tag=a&tag="), 400)
    # A typo read as no filter listed every session; a bad position streamed from now.
    assert _error(client.get("/api/sessions?runing=true"), 400) == \
        "runing: no such query parameter here (it takes: host, running, tag)"
    assert client.get("/api/hosts?token=t").json() == ["h1"]  # the server's own
    assert client.get("/?from=bookmark").status_code == 200  # the page, not the API
    assert "last-event-id" in _error(client.get("/api/events",
                                                headers={"Last-Event-ID": "bogus"}), 400)
    assert _error(client.post("/api/sessions", json={}), 400) == \
        "give argv (a command) or prompt (with an agent provider): neither was given"


def test_an_unknown_host_is_not_found(client: TestClient) -> None:
    assert _error(client.get("/api/sessions?host=h9"), 404) == \
        "no host h9 in the configuration ([hosts.h9])"
    assert client.get("/api/hosts").json() == ["h1"]


def test_the_schema_describes_every_route_and_the_spawn_settings(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert set(schema["paths"]) == {
        "/api/hosts", "/api/providers", "/api/sessions", "/api/sessions/{ref}",
        "/api/sessions/{ref}/stop",
        "/api/sessions/{ref}/kill", "/api/sessions/{ref}/send", "/api/sessions/{ref}/logs",
        "/api/sessions/{ref}/interrupt",
        "/api/sessions/{ref}/transcript", "/api/events"}
    spawn = schema["components"]["schemas"]["SpawnBody"]["properties"]
    assert {"argv", "prompt", "memory_max", "provider", "queue", "timeout"} <= set(spawn)
    assert spawn["memory_max"]["description"].startswith("Memory limit")
    signal = schema["components"]["schemas"]["KillBody"]["properties"]["signal"]
    number, name = signal["anyOf"]
    assert (number["type"], number["minimum"], number["maximum"]) == ("integer", 1, 64)
    # The names as --signal takes them: term and sigkill too (what the schema says is
    # accepted; schemathesis holds the server to that).
    assert {"TERM", "SIGTERM", "term", "sigkill"} <= set(name["enum"])
    assert "NOPE" not in name["enum"]


def test_the_schema_says_each_answers_media_type_and_its_conflicts(
        client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    def types(path: str, method: str = "get") -> set[str]:
        return set(paths[path][method]["responses"]["200"]["content"])

    assert types("/api/sessions/{ref}/logs") == {"text/plain", "text/event-stream"}
    assert types("/api/sessions/{ref}/transcript") == {"text/plain"}
    assert types("/api/events") == {"text/event-stream"}
    assert types("/api/sessions/{ref}/stop", "post") == {"application/json"}
    for path in paths.values():  # an error is JSON, whatever the route's own answer
        for operation in path.values():
            for code, answer in operation["responses"].items():
                if code.startswith(("4", "5")):
                    assert set(answer["content"]) == {"application/json"}, (code, answer)
    for path, method in (("/api/sessions/{ref}/stop", "post"), ("/api/sessions/{ref}/kill",
                         "post"), ("/api/sessions/{ref}/logs", "get")):
        assert "409" in paths[path][method]["responses"]  # ended already; journalctl failed


def test_no_page_loads_scripts_from_elsewhere(client: TestClient) -> None:
    # /docs and /redoc would run a CDN's JavaScript on this origin, with its cookie.
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        _error(client.get(path), 404)
    assert client.get("/openapi.json").status_code == 200


def test_the_providers_are_the_built_in_ones_and_the_configurations(
        client: TestClient, isolated_env: Path) -> None:
    from orch.providers import BUILTIN

    assert client.get("/api/providers").json() == sorted(BUILTIN)
    config = isolated_env.parent / "config.toml"  # the client's
    config.write_text(config.read_text() + '[providers.myagent]\nbinary = "my-agent"\n'
                      'argv = ["run", "--", "{prompt!}"]\nresults = "text"\n')
    assert client.get("/api/providers").json() == sorted({*BUILTIN, "myagent"})
    config.write_text("[providers.bad\n")  # refused, naming the file, as /api/hosts is
    assert "config.toml: not valid TOML" in _error(client.get("/api/providers"), 409)
    assert _error(client.get("/api/hosts"), 409) == _error(client.get("/api/providers"), 409)


def test_the_frameworks_own_refusals_are_one_line_of_json(client: TestClient) -> None:
    assert _error(client.get("/api/nope"), 404)
    refused = client.delete("/api/hosts")
    assert _error(refused, 405) and refused.headers["allow"] == "GET"
    refused = client.delete("/api/sessions")  # two routes at one path: both methods
    assert _error(refused, 405) and refused.headers["allow"] == "GET, POST"
    json_type = {"content-type": "application/json"}
    for body, headers in ((b"[" * 100_000, json_type), (b"\xff\xfe", json_type),
                          (gzip.compress(b'{"argv": ["x"]}'),
                           {**json_type, "content-encoding": "gzip"})):
        _error(client.post("/api/sessions", content=body, headers=headers), 400)


def test_an_internal_error_is_one_line_of_json(client: TestClient,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug\nwith a second line")

    monkeypatch.setattr(api, "list_sessions", broken)
    answer = TestClient(client.app, raise_server_exceptions=False).get("/api/sessions")
    assert "server's log" in _error(answer, 500)


def test_a_body_over_the_limit_is_refused_before_it_is_read(client: TestClient) -> None:
    json_type = {"content-type": "application/json"}
    huge = {"argv": ["no-such-program"], "env": [f"K{i}=v" for i in range(200_000)]}
    assert "1 MiB" in _error(client.post("/api/sessions", json=huge), 413)

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it comes
        yield b'{"argv": ["x"], "description": "'
        for _ in range(MAX_BODY // 4096 + 1):
            yield b"x" * 4096
        yield b'"}'

    _error(client.post("/api/sessions", content=chunked(), headers=json_type), 413)
    within = b'{"argv": [], "description": "' + b" " * (MAX_BODY - 100) + b'"}'
    assert "argv is empty" in _error(client.post("/api/sessions", content=within,
                                                 headers=json_type), 400)


def test_another_hosts_events_are_refused_not_ignored(client: TestClient) -> None:
    assert "host" in _error(client.get("/api/events?host=h1"), 400)


def test_the_dashboard_is_one_page_with_no_outside_resource(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<title>orch</title>" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # nothing fetched


# Another host's orch, as the stand-in ssh runs it: `orch logs -f ...` says its words
# and a few lines, then ends as logs -f does (1: the session ended unsuccessfully); or,
# if the test wrote one, answers with remote-orch.answer.
FAKE_REMOTE_ORCH = """#!/bin/sh
echo "$@" > "$0.args"
if [ -e "$0.answer" ]; then cat "$0.answer"; exit 0; fi
if [ -e "$0.refusal" ]; then tail -n +2 "$0.refusal" >&2; exit "$(head -n 1 "$0.refusal")"; fi
case "$*" in *gone*) echo 'orch: no session gone' >&2; exit 4;; esac
printf 'id: c1\\ndata: first line\\n\\nid: c2\\ndata: second\\ndata: line\\n\\n'
case "$*" in *half*) printf 'id: c3\\ndata: cut'; exit 255;; esac
exit 1
"""


@pytest.fixture
def far_client(fake_ssh: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    remote = tmp_path / "bin" / "remote-orch"
    remote.write_text(FAKE_REMOTE_ORCH)
    remote.chmod(0o755)
    config = tmp_path / "config.toml"
    config.write_text(f'[hosts.h1]\naddress = "root@192.0.2.1"\norch = "{remote}"\n')
    monkeypatch.setenv("ORCH_CONFIG", str(config))
    return TestClient(create_app(Scope.USER))


def _events(text: str) -> list[dict[str, str]]:
    """The Server-Sent Events of TEXT, each as its fields, read as a browser reads them:
    a blank line ends an event (none, if it has no field), a comment line is skipped."""
    found: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    for line in text.split("\n"):
        if not line:
            if fields:
                found.append(fields)
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = fields[name] + "\n" + value if name in fields else value
    return found


def test_another_hosts_output_is_followed_through_its_orch(far_client: TestClient,
                                                            tmp_path: Path) -> None:
    answer = far_client.get("/api/sessions/abcd/logs?follow=true&host=h1&lines=5")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    # The host's own events, ids (its journal's cursors) and all, then the end.
    assert _events(answer.text) == [{"id": "c1", "data": "first line"},
                                    {"id": "c2", "data": "second\nline"},
                                    {"event": "end", "data": "{}"}]
    words = (tmp_path / "bin" / "remote-orch.args").read_text().split()
    assert words == ["logs", "-f", "--sse", "--no-pager", "-n", "5", "--", "abcd"]
    # Resumed: after the last event's cursor, on that host, not its last lines again.
    cursor = "s=1a;i=2b;b=3c;m=4d;t=5e;x=6f"  # as a journal's
    far_client.get("/api/sessions/abcd/logs?follow=true&host=h1&lines=5&format=cat",
                   headers={"Last-Event-ID": cursor})
    words = (tmp_path / "bin" / "remote-orch.args").read_text().split()
    assert words == ["logs", "-f", "--sse", "--no-pager", f"--after-cursor={cursor}",
                     "-o", "cat", "--", "abcd"]


def test_a_stream_cut_mid_event_ends_that_event_before_its_error(
        far_client: TestClient) -> None:
    answer = far_client.get("/api/sessions/half/logs?follow=true&host=h1")
    found = _events(answer.text)
    assert found[:2] == [{"id": "c1", "data": "first line"},
                         {"id": "c2", "data": "second\nline"}]
    assert found[2] == {"id": "c3", "data": "cut"}  # what came, ended by a blank line
    assert found[3]["event"] == "error" and found[3]["data"].startswith("host h1: ")
    assert found[4:] == [{"event": "end", "data": "{}"}]


def test_another_hosts_refusal_ends_its_stream_in_one_line(far_client: TestClient) -> None:
    answer = far_client.get("/api/sessions/gone/logs?follow=true&host=h1")
    assert _events(answer.text) == [{"event": "error", "data": "host h1: no session gone"},
                                    {"event": "end", "data": "{}"}]
    assert _error(far_client.get("/api/sessions/x/logs?follow=true&host=h9"), 404) == \
        "no host h9 in the configuration ([hosts.h9])"


def _answer(tmp_path: Path, answer: bytes) -> None:
    """What the fake remote orch answers from now on, whatever it is asked."""
    (tmp_path / "bin" / "remote-orch.answer").write_bytes(answer)


def _asked(tmp_path: Path) -> list[str]:
    """The words the fake remote orch was last run with."""
    return (tmp_path / "bin" / "remote-orch.args").read_text().split()


@pytest.mark.parametrize(("status", "said", "http"), [
    (2, "orch: no session matches 'nosuch'", 404),
    (2, "orch: 3 sessions are named 'x': ...; name one by its id", 400),
    (2, "orch: --memory-max '2Q': not a size", 400),
    (1, "orch: session abcd (sleep) has already ended: exited", 409),
    (3, "orch: cannot connect to the system manager", 503),
    (4, "orch: permission denied", 403),
    (255, "ssh: connect to host 192.0.2.1 port 22: Connection refused", 502),
    (70, "orch: internal error: ...", 502)])
def test_a_hosts_refusal_is_answered_as_a_local_one_would_be(
        far_client: TestClient, tmp_path: Path, status: int, said: str, http: int) -> None:
    # Its exit status says what kind (README, "Exit codes and errors"); before, all 502.
    (tmp_path / "bin" / "remote-orch.refusal").write_text(f"{status}\n{said}\n")
    refused = far_client.post("/api/sessions/abcd/stop?host=h1")
    assert _error(refused, http) == f"host h1: {said.removeprefix('orch: ')}"


@pytest.mark.parametrize("answer", [
    b"not json", b"", b"Welcome to h1\n[]\n", b"[1, 2, 3]", b'"a session"', b"\xff\xfe"])
def test_a_hosts_unreadable_answer_is_a_bad_gateway_in_one_line(
        far_client: TestClient, tmp_path: Path, answer: bytes) -> None:
    _answer(tmp_path, answer)
    for refused in (far_client.get("/api/sessions?host=h1"),
                    far_client.get("/api/sessions/abcd?host=h1"),
                    far_client.post("/api/sessions/abcd/send?host=h1", json={"message": "hi"})):
        assert _error(refused, 502).startswith("host h1: unreadable answer")


@pytest.mark.parametrize(("body", "says"), BAD_SPAWNS)
def test_a_bad_spawn_for_another_host_is_refused_before_it_goes_there(
        far_client: TestClient, tmp_path: Path, body: dict[str, object], says: str) -> None:
    assert says in _error(far_client.post("/api/sessions?host=h1", json=body), 400)
    assert not (tmp_path / "bin" / "remote-orch.args").exists()  # its orch never ran


def test_a_spawn_for_another_host_goes_there_whole(far_client: TestClient,
                                                   tmp_path: Path) -> None:
    _answer(tmp_path, b'{"id": "abcd"}')
    answer = far_client.post("/api/sessions?host=h1",
                             json={"prompt": "fix it", "provider": "claude", "timeout": 60})
    assert answer.status_code == 201 and answer.json() == {"id": "abcd"}
    assert _asked(tmp_path) == ["spawn", "--json", "--provider=claude", "--timeout=60", "--",
                                "fix", "it"]


@pytest.mark.parametrize("given", ["term", "sigkill", "SIGTERM", "HUP", 9, "15"])
def test_a_signal_is_read_as_orch_kill_reads_it(far_client: TestClient, tmp_path: Path,
                                                given: object) -> None:
    _answer(tmp_path, b'{"id": "abcd", "status": "killed"}')
    answer = far_client.post("/api/sessions/abcd/kill?host=h1", json={"signal": given})
    assert answer.status_code == 200, answer.text
    assert _asked(tmp_path) == ["kill", "--json", f"--signal={given}", "--", "abcd"]


def test_a_ref_or_result_like_an_option_is_no_option_on_the_host(far_client: TestClient,
                                                                  tmp_path: Path) -> None:
    # Before, they went before any "--": `--file=/x` was read there as kill's option.
    _answer(tmp_path, b'{"id": "abcd", "status": "killed"}')
    far_client.post("/api/sessions/--file=x/kill?host=h1", json={"result": "--help"})
    assert _asked(tmp_path) == ["kill", "--json", "--signal=TERM", "--", "--file=x", "--help"]
    _answer(tmp_path, b'{"id": "abcd", "sent": "sent"}')
    far_client.post("/api/sessions/-x/send?host=h1", json={"message": "-n 1"})
    assert _asked(tmp_path) == ["send", "--json", "--", "-x", "-n", "1"]


def test_a_name_with_a_slash_reaches_its_session_by_every_route(far_client: TestClient,
                                                                 tmp_path: Path) -> None:
    # Before, a name like fix/login (as %2F) matched no route: 404 for an existing session.
    _answer(tmp_path, b'{"id": "abcd", "status": "running"}')
    assert far_client.get("/api/sessions/fix%2Flogin?host=h1").status_code == 200
    assert _asked(tmp_path) == ["show", "--json", "--", "fix/login"]
    far_client.post("/api/sessions/fix%2Flogin/stop?host=h1")
    assert _asked(tmp_path) == ["stop", "--json", "--", "fix/login"]
    _answer(tmp_path, b'{"id": "abcd", "sent": "sent"}')
    far_client.post("/api/sessions/team%2Fa%2Fb/send?host=h1", json={"message": "go"})
    assert _asked(tmp_path) == ["send", "--json", "--", "team/a/b", "go"]
    far_client.get("/api/sessions/fix%2Flogin/transcript?host=h1")
    assert _asked(tmp_path)[-2:] == ["--", "fix/login"]
    # An action's name after a reference is that action, never part of a name.
    refused = far_client.get("/api/sessions/fix%2Flogin/stop?host=h1")
    assert _error(refused, 405) and refused.headers["allow"] == "POST"


@pytest.mark.parametrize("given", ["NOPE", 0, 65, "", "SIGNOPE"])
def test_a_bad_signal_is_refused_as_orch_kill_refuses_it(far_client: TestClient,
                                                         tmp_path: Path, given: object) -> None:
    refused = far_client.post("/api/sessions/abcd/kill?host=h1", json={"signal": given})
    assert _error(refused, 400) == f"signal {str(given)!r}: not a signal name or number"
    assert not (tmp_path / "bin" / "remote-orch.args").exists()


def test_another_hosts_transcript_is_that_hosts(far_client: TestClient,
                                               tmp_path: Path) -> None:
    _answer(tmp_path, b"the transcript\n")
    answer = far_client.get("/api/sessions/abcd/transcript?host=h1&lines=3")
    assert answer.status_code == 200 and answer.text == "the transcript\n"
    assert answer.headers["content-type"].startswith("text/plain")
    assert _asked(tmp_path) == ["logs", "--no-pager", "-n", "3", "-o", "transcript", "--",
                                "abcd"]
