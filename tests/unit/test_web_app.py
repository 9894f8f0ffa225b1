"""The web API's refusals, schema and page, without systemd: bad input is a 4xx with a
one-line JSON error, decided as the CLI decides it, before any manager is asked."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from orch.scope import Scope
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


@pytest.mark.parametrize(("body", "says"), [
    ({}, "give argv"),
    ({"argv": ["sleep", "1"], "prompt": "hi"}, "give argv"),
    ({"argv": []}, "argv is empty"),
    ({"prompt": "hi"}, "prompt needs an agent provider"),
    ({"argv": ["sleep"], "bogus": 1}, "body.bogus: Extra inputs are not permitted"),
    ({"argv": "sleep 1"}, "body.argv"),
    ({"argv": ["sleep"], "memory_max": "lots"}, "--memory-max: expected a size"),
    ({"argv": ["sleep"], "nice": 40}, "--nice: expected"),
    ({"argv": ["sleep"], "restart": "sometimes"}, "--restart: expected"),
    ({"argv": ["sleep"], "env": ["NOEQUALS"]}, "expected KEY=VALUE"),
    ({"argv": ["sleep"], "profile": "nope"}, "nope"),
])
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
                                               json={"signal": "NOPE"}), 400)
    assert "host" in _error(client.get("/api/sessions?host=a%20b"), 400)


def test_an_unknown_host_is_not_found(client: TestClient) -> None:
    assert _error(client.get("/api/sessions?host=h9"), 404) == \
        "no host h9 in the configuration ([hosts.h9])"
    assert client.get("/api/hosts").json() == ["h1"]


def test_the_schema_describes_every_route_and_the_spawn_settings(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert set(schema["paths"]) == {
        "/api/hosts", "/api/sessions", "/api/sessions/{ref}", "/api/sessions/{ref}/stop",
        "/api/sessions/{ref}/kill", "/api/sessions/{ref}/send", "/api/sessions/{ref}/logs",
        "/api/sessions/{ref}/interrupt",
        "/api/sessions/{ref}/transcript", "/api/events"}
    spawn = schema["components"]["schemas"]["SpawnBody"]["properties"]
    assert {"argv", "prompt", "memory_max", "provider", "queue", "timeout"} <= set(spawn)
    assert spawn["memory_max"]["description"].startswith("Memory limit")


def test_the_dashboard_is_one_page_with_no_outside_resource(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<title>orch</title>" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # nothing fetched


# Another host's orch, as the stand-in ssh runs it: `orch logs -f ...` says its words
# and a few lines, then ends as logs -f does (1: the session ended unsuccessfully).
FAKE_REMOTE_ORCH = """#!/bin/sh
echo "$@" > "$0.args"
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
    assert words == ["logs", "-f", "--sse", "--no-pager", "-n", "5", "abcd"]
    # Resumed: after the last event's cursor, on that host, not its last lines again.
    far_client.get("/api/sessions/abcd/logs?follow=true&host=h1&lines=5&format=cat",
                   headers={"Last-Event-ID": "c2"})
    words = (tmp_path / "bin" / "remote-orch.args").read_text().split()
    assert words == ["logs", "-f", "--sse", "--no-pager", "--after-cursor", "c2",
                     "-o", "cat", "abcd"]


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
