"""Conversations over a fake manager and real FIFOs: an interactive spawn's input, `send`
to a running conversation (idle or in a turn), --interrupt, resuming an ended agent,
the refusals; idle in ps and wait."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from orch import conversation
from orch.errors import OrchError, UsageError
from orch.providers import AgentRequest
from orch.results import AgentResult
from orch.runtime import Runtime
from orch.scope import Scope
from orch.session import Status
from orch.usecases import converse, query
from orch.usecases import spawn as spawning
from tests.unit.fakemanager import FakeManager, exited, put, running, started

INTERACTIVE = {"prompt": "hi", "interactive": True}


@pytest.fixture
def held(fake: FakeManager) -> Iterator[list[int]]:
    """The input descriptors the fake manager was handed, held as the real one does."""
    fds: list[int] = []

    def hold(unit: str, props: object) -> None:
        for name, _signature, value in props:  # type: ignore[attr-defined]
            if name == "StandardInputFileDescriptor":
                fds.append(os.dup(value))

    fake.on_submit = hold
    yield fds
    for fd in fds:
        os.close(fd)


def _lines(fd: int) -> list[dict[str, object]]:
    os.set_blocking(fd, False)
    data = os.read(fd, 1 << 20)
    return [json.loads(line) for line in data.decode().splitlines()]


def _idle(monkeypatch: pytest.MonkeyPatch, said: AgentResult | None) -> None:
    """The conversation waits, having said SAID; or (None) a turn is under way."""
    from orch.results import EMPTY

    monkeypatch.setattr(conversation, "idle_result",
                        lambda record: (said or EMPTY, said is not None))


DONE = AgentResult("conv-1", "the answer", False, {"input_tokens": 3}, 0.01)


def test_an_interactive_spawn_takes_its_prompt_as_its_first_message(
        fake: FakeManager, rt: Runtime, claude: Path, held: list[int]) -> None:
    session = spawning.spawn_agent(rt, "claude", AgentRequest(prompt="hello", interactive=True))
    record = rt.store.load()[session.id]
    assert record.agent["interactive"] is True
    assert "--input-format" in record.argv and "hello" not in record.argv
    # Its conversation's id is chosen now, so that it can be resumed even if cut off.
    assert record.provider_session_id and \
        f"--session-id={record.provider_session_id}" in record.argv
    path = conversation.input_path(Scope.USER, session.id)
    assert stat.S_ISFIFO(path.lstat().st_mode) and stat.S_IMODE(path.lstat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    [fd] = held
    assert _lines(fd) == [{"type": "user", "message": {"role": "user", "content": [
        {"type": "text", "text": "hello"}]}}]


def test_a_provider_without_live_input_is_refused_interactive(fake: FakeManager,
                                                              rt: Runtime) -> None:
    with pytest.raises(UsageError, match=r"^codex takes no messages while it runs"):
        spawning.spawn_agent(rt, "codex", AgentRequest(prompt="x", interactive=True))
    assert rt.store.load() == {}


def test_send_to_an_idle_conversation_is_its_next_message(
        fake: FakeManager, rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    record = started(fake, rt, "talk", provider="claude", agent=INTERACTIVE)
    agent_end = conversation.open_input(Scope.USER, record.id)  # as the agent holds it
    try:
        _idle(monkeypatch, DONE)
        sent = converse.send(rt, record.id, "and now?")
        assert sent.how == "sent" and sent.session.status is Status.IDLE
        assert sent.session.final_result == "the answer" and sent.session.result == "success"
        _idle(monkeypatch, None)  # a turn is under way
        assert converse.send(rt, "talk", "also this").how == "queued"
        assert converse.send(rt, "talk", None, interrupt=True).how == "interrupted"
        sent_lines = _lines(agent_end)
        assert [line["type"] for line in sent_lines] == ["user", "user", "control_request"]
        assert sent_lines[1]["message"] == {"role": "user", "content": [
            {"type": "text", "text": "also this"}]}
        assert sent_lines[2]["request"] == {"subtype": "interrupt"}
    finally:
        os.close(agent_end)


def test_send_refusals_are_one_line(fake: FakeManager, rt: Runtime,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    plain = started(fake, rt, "plain")
    with pytest.raises(UsageError, match=r"\(plain\) is not an agent session"):
        converse.send(rt, "plain", "hi")
    headless = started(fake, rt, "headless", provider="claude", agent={"prompt": "x"})
    with pytest.raises(UsageError, match=r"runs claude headless.*once it has ended"):
        converse.send(rt, headless.id, "hi")
    talk = started(fake, rt, "talk", provider="claude", agent=INTERACTIVE)
    _idle(monkeypatch, DONE)
    with pytest.raises(UsageError, match="waits for a message: there is no turn to interrupt"):
        converse.send(rt, "talk", None, interrupt=True)
    with pytest.raises(UsageError, match="give a message, or --interrupt"):
        converse.send(rt, "talk", "x", interrupt=True)
    with pytest.raises(UsageError, match=r"^the message is 300,000 bytes; an agent takes "
                                         r"at most 262,144$"):  # its own size, no envelope
        converse.send(rt, "talk", "x" * 300_000)
    with pytest.raises(UsageError, match="more than its input takes"):  # escaped, 6 times
        converse.send(rt, "talk", "\x01" * 200_000)
    for empty in ("", " \n"):  # the API refused it; the CLI started a turn on nothing
        with pytest.raises(UsageError, match=r"^the message is empty$"):
            converse.send(rt, "talk", empty)
    # Nobody holds its input: the agent is gone though the unit still runs.
    with pytest.raises(OrchError, match=r"\(talk\) is ending"):
        converse.send(rt, talk.id, "hi")
    assert plain.provider is None


def test_send_to_an_ended_conversation_resumes_it_with_the_message(
        fake: FakeManager, rt: Runtime, claude: Path, held: list[int]) -> None:
    record = put(rt, "talk", provider="claude", argv=[str(claude)], agent=INTERACTIVE,
                 provider_session_id="conv-1", invocation_id="a" * 32, final_result="x",
                 ended_at=rt.now_iso(), exit_code=0, result="success", program=str(claude))
    fake.add(record.unit, exited(running(), 0))
    with pytest.raises(UsageError, match="has ended: there is no turn to interrupt"):
        converse.send(rt, "talk", None, interrupt=True)
    sent = converse.send(rt, "talk", "pick it up")
    assert sent.how == "resumed" and sent.session.restarts == 1
    now = rt.store.load()[record.id]
    assert "--resume=conv-1" in now.argv and "pick it up" not in now.argv
    [fd] = held
    assert _lines(fd)[0]["message"] == {"role": "user", "content": [
        {"type": "text", "text": "pick it up"}]}


def test_ps_and_wait_see_a_conversation_waiting_for_its_next_message(
        fake: FakeManager, rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    record = started(fake, rt, "talk", provider="claude", agent=INTERACTIVE)
    other = started(fake, rt, "busy")
    _idle(monkeypatch, DONE)
    listed = {s.name: s.status for s in query.list_sessions(rt)}
    assert listed == {"talk": Status.IDLE, "busy": Status.RUNNING}
    outcome = query.wait(rt, [record.id], timeout=5)
    assert not outcome.timed_out and outcome.succeeded
    assert outcome.sessions[0].status is Status.IDLE
    # logs -f follows its next turns: only its end ends it (before, it ended at once).
    assert query.wait(rt, [record.id], timeout=0, to_the_end=True).timed_out
    _idle(monkeypatch, AgentResult("conv-1", "oops", True, None, None))
    assert not query.wait(rt, [record.id], timeout=5).succeeded
    _idle(monkeypatch, None)  # in a turn: not idle, and the wait times out
    assert query.wait(rt, [record.id], timeout=0).timed_out
    assert other.provider is None


def test_a_fifo_left_behind_is_reused_and_anything_else_replaced(fake: FakeManager) -> None:
    path = conversation.input_path(Scope.USER, "s1")
    os.close(conversation.open_input(Scope.USER, "s1"))
    inode = path.lstat().st_ino
    os.close(conversation.open_input(Scope.USER, "s1"))  # a crash's leftover: reused
    assert path.lstat().st_ino == inode
    path.unlink()
    path.write_text("not a fifo")
    os.close(conversation.open_input(Scope.USER, "s1"))
    assert stat.S_ISFIFO(path.lstat().st_mode)
    conversation.remove_input(Scope.USER, "s1")
    assert not path.exists()
    with pytest.raises(conversation.NotListening):
        conversation.deliver(Scope.USER, "s1", b"x\n")


def test_a_full_input_refuses_a_message_rather_than_cut_it(fake: FakeManager) -> None:
    fd = conversation.open_input(Scope.USER, "s2")
    try:
        message = conversation.user_message(conversation.ResultFormat.CLAUDE_STREAM_JSON,
                                             "y" * 200_000)
        with pytest.raises(OrchError, match="input is full"):
            for _ in range(100):
                conversation.deliver(Scope.USER, "s2", message)
        assert conversation.waiting(Scope.USER, "s2")
        data = os.read(fd, 1 << 22)
        assert len(data) % len(message) == 0  # whole messages only
    finally:
        os.close(fd)


def test_idle_is_read_from_the_output_the_quiet_mark_and_the_pipe(
        fake: FakeManager, rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    from orch import journal

    record = put(rt, "talk", provider="claude", agent=INTERACTIVE, invocation_id="b" * 32)
    said: list[str] = []
    monkeypatch.setattr(journal, "output_lines", lambda record: list(said))
    result = json.dumps({"type": "result", "subtype": "success", "is_error": False,
                         "result": "done", "session_id": "conv"})
    agent_end = conversation.open_input(Scope.USER, record.id)  # started with a message
    try:
        assert not conversation.idle_result(record)[1]  # taking its first message
        said[:] = [json.dumps({"type": "system", "subtype": "init"}), result]
        answer, idle = conversation.idle_result(record)
        assert idle and answer.final_result == "done"
        said.append(json.dumps({"type": "assistant", "message": {"content": []}}))
        assert not conversation.idle_result(record)[1]  # a new turn under way
        said[:] = [result]
        conversation.deliver(Scope.USER, record.id, b'{"type":"user"}\n')
        assert not conversation.idle_result(record)[1]  # a message waits in its input
    finally:
        os.close(agent_end)
    said.clear()
    agent_end = conversation.open_input(Scope.USER, record.id, quiet=True)  # at boot
    try:
        assert conversation.idle_result(record)[1]  # nothing to say, nothing sent
        conversation.deliver(Scope.USER, record.id, b'{"type":"user"}\n')
        os.read(agent_end, 100)  # the agent took it, and has not answered yet
        assert not conversation.idle_result(record)[1]
    finally:
        os.close(agent_end)


def test_a_turn_under_way_keeps_what_the_turns_before_it_cost(
        fake: FakeManager, rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    started(fake, rt, "talk", provider="claude", agent=INTERACTIVE)
    monkeypatch.setattr(conversation, "idle_result", lambda record: (DONE, False))
    [session] = query.list_sessions(rt)
    # Before, cost and tokens went blank (COST -) for as long as the next turn ran.
    assert session.status is Status.RUNNING and session.cost_usd == 0.01
    assert session.usage == {"input_tokens": 3} and session.final_result is None


def test_a_conversation_being_stopped_is_not_idle(fake: FakeManager, rt: Runtime,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from orch.session import Intent

    started(fake, rt, "talk", provider="claude", agent=INTERACTIVE, intent=Intent.KILL)
    _idle(monkeypatch, DONE)  # its agent's last words were a turn's result
    assert [s.status for s in query.list_sessions(rt)] == [Status.RUNNING]


def test_the_library_offers_send_and_every_turns_result() -> None:
    import orch
    from orch import api

    assert orch.send is api.send and orch.turn_results is api.turn_results
    assert {"send", "turn_results"} <= set(orch.__all__)


def test_orch_send_takes_the_message_from_its_argument_a_file_or_standard_input(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import io

    from orch import api, commands
    from orch.session import Session

    given: list[tuple[str | None, bool]] = []
    session = Session(id="5" * 36, name="talk", unit="orch-talk-55555555.service",
                      scope="user", status=Status.IDLE, main_pid=1, invocation_id=None,
                      argv=["claude"], cwd="/", tags=[], description="", created_at="",
                      started_at=None, ended_at=None, exit_code=None, exit_signal=None,
                      result=None, final_result=None, parent_id=None)

    def send(ref: str, message: str | None, scope: Scope, *,
             interrupt: bool = False) -> converse.Sent:
        given.append((message, interrupt))
        return converse.Sent(session, "queued" if message == "from a file" else "sent")

    monkeypatch.setattr(api, "send", send)
    note = tmp_path / "note.txt"
    note.write_text("from a file\n")
    assert commands.send("talk", file=str(note)) == 0
    assert "is in a turn; the agent reads the message at the turn's next step" in \
        capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("from standard input\n"))
    assert commands.send("talk", "-") == 0
    assert commands.send("talk", interrupt=True) == 0
    assert given == [("from a file", False), ("from standard input", False), (None, True)]
    assert capsys.readouterr().out == f"{session.id}\n" * 2
    for wrong in ({}, {"message": "x", "interrupt": True}, {"message": "x", "file": "f"}):
        with pytest.raises(UsageError, match="give one of: a MESSAGE, --file F, or --interrupt"):
            commands.send("talk", **wrong)  # type: ignore[arg-type]


def test_an_idle_resumed_conversation_costs_every_run_so_far(
        fake: FakeManager, rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    earlier = {"invocation_id": "a" * 32, "status": "stopped", "cost_usd": 0.0012,
               "usage": {"input_tokens": 3, "output_tokens": 4}}
    record = started(fake, rt, "talk", provider="claude", agent=INTERACTIVE,
                     history=[earlier], restarts=1)
    _idle(monkeypatch, AgentResult("conv-1", "again", False,
                                   {"input_tokens": 3, "output_tokens": 4}, 0.01))
    [session] = query.list_sessions(rt)
    # Before, the current run's alone, until the session ended.
    assert session.status is Status.IDLE and session.id == record.id
    assert session.usage == {"input_tokens": 6, "output_tokens": 8}
    assert session.cost_usd == pytest.approx(0.0112)


def test_a_message_of_exactly_the_limit_is_taken() -> None:
    from orch.results import ResultFormat

    line = conversation.user_message(ResultFormat.CLAUDE_STREAM_JSON,
                                     "b" * conversation.MAX_MESSAGE_BYTES)
    assert line.endswith(b"\n") and len(line) > conversation.MAX_MESSAGE_BYTES
