"""Agent providers: the argv each built-in gets, the template language, and provider
tables from a user's config.

The built-in argvs were tried offline against the installed CLIs (claude 2.1.197,
codex-cli 0.169.0, gemini 0.61.0, copilot 1.0.102): each accepted them; claude, codex
and gemini recorded prompts like HOSTILE (a leading "-", quotes, `$(...)`, `{model}`, a
newline) verbatim, and resumed the session given by id; copilot, lacking credentials,
stopped after parsing. ollama is not installed. orch/providers.py says what each flag is
and where it is documented.
"""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from orch.errors import UsageError
from orch.providers import (
    BUILTIN,
    AgentRequest,
    Item,
    ProviderSpec,
    build_argv,
    build_resume_argv,
    carried,
    find,
    placeholders,
    render,
    spec_from_table,
)
from orch.results import ResultFormat

HOSTILE = "-x '\"$(rm -rf /)\"' `id` {model} {prompt}\nsecond line\t; echo $HOME"
SID = "0cb916db-26aa-40f2-86b5-1ba81b225fd2"
WHERE = "/home/u/.config/orch/config.toml"


def full(**changes: object) -> AgentRequest:
    """A request with every option set; CHANGES unset the ones a provider lacks."""
    request = AgentRequest(prompt="fix the tests", model="M", system_prompt="be terse",
                           auto_approve=True, add_dirs=("/src/a", "/src/b"), max_turns=7,
                           provider_session_id=SID)
    return replace(request, **changes)  # type: ignore[arg-type]


# -- each built-in, fresh ----------------------------------------------------------

def test_claude_full_request() -> None:
    assert build_argv(BUILTIN["claude"], full()) == [
        "claude", "-p", "--output-format", "stream-json", "--verbose",
        "--model=M", "--append-system-prompt=be terse", "--max-turns=7",
        "--add-dir=/src/a", "--add-dir=/src/b", "--dangerously-skip-permissions",
        f"--session-id={SID}", "--", "fix the tests"]


def test_codex_full_request() -> None:
    request = full(system_prompt=None, max_turns=None, provider_session_id=None)
    assert build_argv(BUILTIN["codex"], request) == [
        "codex", "exec", "--json", "--skip-git-repo-check", "--model=M",
        "--add-dir=/src/a", "--add-dir=/src/b", "--dangerously-bypass-approvals-and-sandbox",
        "--", "fix the tests"]


def test_gemini_full_request() -> None:
    request = full(system_prompt=None, max_turns=None)
    assert build_argv(BUILTIN["gemini"], request) == [
        "gemini", "--prompt=fix the tests", "--output-format", "stream-json", "--skip-trust",
        "--model=M", "--include-directories=/src/a", "--include-directories=/src/b",
        "--yolo", f"--session-id={SID}"]


def test_copilot_full_request() -> None:
    request = full(system_prompt=None, max_turns=None)
    assert build_argv(BUILTIN["copilot"], request) == [
        "copilot", "--prompt=fix the tests", "--output-format", "json", "--model=M",
        "--add-dir=/src/a", "--add-dir=/src/b", "--allow-all-tools", f"--session-id={SID}"]


def test_ollama_full_request() -> None:
    request = AgentRequest(prompt="why is the sky blue", model="llama3.2")
    assert build_argv(BUILTIN["ollama"], request) == [
        "ollama", "run", "--nowordwrap", "--", "llama3.2", "why is the sky blue"]


@pytest.mark.parametrize(("name", "argv"), [
    ("claude", ["claude", "-p", "--output-format", "stream-json", "--verbose", "--", "hi"]),
    ("codex", ["codex", "exec", "--json", "--skip-git-repo-check", "--", "hi"]),
    ("gemini", ["gemini", "--prompt=hi", "--output-format", "stream-json", "--skip-trust"]),
    ("copilot", ["copilot", "--prompt=hi", "--output-format", "json"]),
])
def test_minimal_request_drops_every_optional_group(name: str, argv: list[str]) -> None:
    assert build_argv(BUILTIN[name], AgentRequest(prompt="hi")) == argv


@pytest.mark.parametrize("name", ["claude", "codex", "gemini", "copilot", "ollama"])
def test_hostile_prompt_reaches_the_program_as_one_verbatim_word(name: str) -> None:
    argv = build_argv(BUILTIN[name], AgentRequest(prompt=HOSTILE, model="M"))
    # The prompt is its own word after "--" (so its leading "-" is no option), or the
    # whole value of --prompt=.
    assert argv.count(HOSTILE) + argv.count(f"--prompt={HOSTILE}") == 1
    if HOSTILE in argv:
        assert argv.index(HOSTILE) == len(argv) - 1
        assert "--" in argv[:-1]


@pytest.mark.parametrize("name", ["claude", "codex", "gemini", "copilot", "ollama"])
@pytest.mark.parametrize("prompt", [None, ""])
def test_a_prompt_is_required(name: str, prompt: str | None) -> None:
    with pytest.raises(UsageError, match=f"^{name} needs a prompt$"):
        build_argv(BUILTIN[name], AgentRequest(prompt=prompt, model="M"))


def test_ollama_needs_a_model() -> None:
    with pytest.raises(UsageError, match=r"^ollama needs --model$"):
        build_argv(BUILTIN["ollama"], AgentRequest(prompt="hi"))


def test_exec_takes_the_command_itself() -> None:
    with pytest.raises(UsageError, match=r"orch spawn -- CMD"):
        build_argv(BUILTIN["exec"], AgentRequest(prompt="hi"))
    with pytest.raises(UsageError, match="exec cannot resume"):
        build_resume_argv(BUILTIN["exec"], AgentRequest(prompt="hi", provider_session_id=SID))


@pytest.mark.parametrize(("name", "change", "message"), [
    ("codex", {"system_prompt": "s"}, "codex has no way to set a system prompt (--system-prompt)"),
    ("codex", {"max_turns": 3}, "codex has no way to limit the number of turns (--max-turns)"),
    ("codex", {"provider_session_id": SID},
     "codex has no way to choose its session id (its argv has no {provider_session_id})"),
    ("gemini", {"system_prompt": "s"},
     "gemini has no way to set a system prompt (--system-prompt)"),
    ("gemini", {"max_turns": 3}, "gemini has no way to limit the number of turns (--max-turns)"),
    ("copilot", {"system_prompt": "s"},
     "copilot has no way to set a system prompt (--system-prompt)"),
    ("copilot", {"max_turns": 3},
     "copilot has no way to limit the number of turns (--max-turns)"),
    ("ollama", {"system_prompt": "s"},
     "ollama has no way to set a system prompt (--system-prompt)"),
    ("ollama", {"max_turns": 3}, "ollama has no way to limit the number of turns (--max-turns)"),
    ("ollama", {"add_dirs": ("/d",)},
     "ollama has no way to give access to more directories (--add-dir)"),
    ("ollama", {"auto_approve": True},
     "ollama has no way to approve tool use automatically (--auto-approve)"),
    ("ollama", {"provider_session_id": SID},
     "ollama has no way to choose its session id (its argv has no {provider_session_id})"),
])
def test_an_option_without_a_flag_is_refused(name: str, change: dict[str, object],
                                             message: str) -> None:
    request = replace(AgentRequest(prompt="hi", model="M"), **change)  # type: ignore[arg-type]
    with pytest.raises(UsageError) as caught:
        build_argv(BUILTIN[name], request)
    assert caught.value.message == message


@pytest.mark.parametrize("change", [{"max_turns": 0}, {"max_turns": -1}, {"add_dirs": ("",)}])
def test_malformed_options_are_refused(change: dict[str, object]) -> None:
    request = replace(AgentRequest(prompt="hi"), **change)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"--max-turns|--add-dir"):
        build_argv(BUILTIN["claude"], request)


# -- resuming ----------------------------------------------------------------------

def test_claude_resume() -> None:
    request = full(prompt="continue")
    assert build_resume_argv(BUILTIN["claude"], request) == [
        "claude", "-p", f"--resume={SID}", "--output-format", "stream-json", "--verbose",
        "--model=M", "--append-system-prompt=be terse", "--max-turns=7",
        "--add-dir=/src/a", "--add-dir=/src/b", "--dangerously-skip-permissions",
        "--", "continue"]


def test_codex_resume() -> None:
    request = AgentRequest(prompt="continue", model="M", auto_approve=True,
                           provider_session_id=SID)
    assert build_resume_argv(BUILTIN["codex"], request) == [
        "codex", "exec", "resume", "--json", "--skip-git-repo-check", "--model=M",
        "--dangerously-bypass-approvals-and-sandbox", "--", SID, "continue"]


def test_gemini_resume() -> None:
    request = full(prompt="continue", system_prompt=None, max_turns=None)
    assert build_resume_argv(BUILTIN["gemini"], request) == [
        "gemini", f"--resume={SID}", "--prompt=continue", "--output-format", "stream-json",
        "--skip-trust", "--model=M", "--include-directories=/src/a",
        "--include-directories=/src/b", "--yolo"]


def test_copilot_resume() -> None:
    request = full(prompt="continue", system_prompt=None, max_turns=None)
    assert build_resume_argv(BUILTIN["copilot"], request) == [
        "copilot", f"--resume={SID}", "--prompt=continue", "--output-format", "json", "--model=M",
        "--add-dir=/src/a", "--add-dir=/src/b", "--allow-all-tools"]


@pytest.mark.parametrize(("name", "argv"), [
    ("claude", ["claude", "-p", f"--resume={SID}", "--output-format", "stream-json",
                "--verbose", "--", "go on"]),
    ("codex", ["codex", "exec", "resume", "--json", "--skip-git-repo-check", "--", SID,
               "go on"]),
    ("gemini", ["gemini", f"--resume={SID}", "--prompt=go on", "--output-format",
                "stream-json", "--skip-trust"]),
    ("copilot", ["copilot", f"--resume={SID}", "--prompt=go on", "--output-format", "json"]),
])
def test_minimal_resume(name: str, argv: list[str]) -> None:
    request = AgentRequest(prompt="go on", provider_session_id=SID)
    assert build_resume_argv(BUILTIN[name], request) == argv


@pytest.mark.parametrize("name", ["claude", "codex", "gemini", "copilot"])
@pytest.mark.parametrize("session_id", [None, ""])
def test_resume_needs_the_session_id(name: str, session_id: str | None) -> None:
    with pytest.raises(UsageError, match=f"^resuming {name} needs its session id$"):
        build_resume_argv(BUILTIN[name], AgentRequest(prompt="go on",
                                                      provider_session_id=session_id))


@pytest.mark.parametrize("name", ["claude", "codex", "gemini", "copilot"])
def test_resume_needs_a_prompt(name: str) -> None:
    with pytest.raises(UsageError, match=f"^{name} needs a prompt$"):
        build_resume_argv(BUILTIN[name], AgentRequest(prompt=None, provider_session_id=SID))


def test_ollama_cannot_resume() -> None:
    request = AgentRequest(prompt="hi", model="M", provider_session_id=SID)
    with pytest.raises(UsageError, match=r"^ollama cannot resume a conversation$"):
        build_resume_argv(BUILTIN["ollama"], request)


def test_codex_resume_refuses_directories_it_cannot_add() -> None:
    request = AgentRequest(prompt="go on", add_dirs=("/d",), provider_session_id=SID)
    with pytest.raises(UsageError) as caught:
        build_resume_argv(BUILTIN["codex"], request)
    assert caught.value.message == (
        "codex has no way to give access to more directories when resuming (--add-dir)")


def test_a_conversation_is_resumed_with_what_its_resume_can_pass() -> None:
    # codex's `exec resume` has no --add-dir: a codex spawned with one was never
    # resumed (by hand, at its wake, at boot), its start refused.
    request = AgentRequest(prompt="go on", model="M", add_dirs=("/d",), auto_approve=True,
                           provider_session_id=SID)
    assert build_resume_argv(BUILTIN["codex"], carried(BUILTIN["codex"], request)) == [
        "codex", "exec", "resume", "--json", "--skip-git-repo-check", "--model=M",
        "--dangerously-bypass-approvals-and-sandbox", "--", SID, "go on"]
    assert carried(BUILTIN["gemini"], request) == request  # it passes them all


def test_hostile_values_stay_verbatim_on_resume() -> None:
    request = AgentRequest(prompt=HOSTILE, provider_session_id=SID)
    assert build_resume_argv(BUILTIN["codex"], request)[-3:] == ["--", SID, HOSTILE]
    assert f"--prompt={HOSTILE}" in build_resume_argv(BUILTIN["gemini"], request)


def test_every_builtin_template_is_valid_and_named_as_its_key() -> None:
    for name, spec in BUILTIN.items():
        assert spec.name == name
        placeholders(spec.argv)
        if spec.resume_argv is not None:
            assert "provider_session_id" in placeholders(spec.resume_argv)


# -- the template language ---------------------------------------------------------

def test_a_group_with_an_unset_scalar_is_dropped_whole() -> None:
    template: list[Item] = [
        "-x", ("--model", "{model}"), ("--turns", "{max_turns}", "{model}"), "{model}"]
    assert render(template, {}) == ["-x"]
    assert render(template, {"model": ""}) == ["-x"]
    assert render(template, {"model": "m"}) == ["-x", "--model", "m", "m"]
    assert render(template, {"model": "m", "max_turns": 3}) == [
        "-x", "--model", "m", "--turns", "3", "m", "m"]


def test_a_list_group_repeats_once_per_value() -> None:
    template: list[Item] = [("--dir", "{add_dir*}"), "-I{add_dir*}", "end"]
    assert render(template, {"add_dir": ["/a", "/b c"]}) == [
        "--dir", "/a", "--dir", "/b c", "-I/a", "-I/b c", "end"]
    assert render(template, {"add_dir": ()}) == ["end"]
    assert render(template, {}) == ["end"]


def test_a_list_group_with_an_unset_scalar_is_dropped() -> None:
    template: list[Item] = [("--dir={add_dir*}", "--model={model}")]
    assert render(template, {"add_dir": ["/a"]}) == []
    assert render(template, {"add_dir": ["/a"], "model": "m"}) == ["--dir=/a", "--model=m"]


def test_a_flag_group_is_kept_only_when_true_and_loses_its_token() -> None:
    template: list[Item] = [("--yes", "{auto_approve?}"), ("--mode=auto{auto_approve?}",), "run"]
    assert render(template, {"auto_approve": True}) == ["--yes", "--mode=auto", "run"]
    assert render(template, {"auto_approve": False}) == ["run"]
    assert render(template, {}) == ["run"]


def test_a_literal_empty_word_is_kept() -> None:
    assert render(["", "{model}"], {"model": "m"}) == ["", "m"]


def test_values_are_substituted_once_and_never_reexpanded() -> None:
    values = {"prompt": "{model} {system_prompt!} {nope}", "model": "{prompt}"}
    assert render(["{prompt}", "--m={model}"], values) == [
        "{model} {system_prompt!} {nope}", "--m={prompt}"]


def test_braces_that_are_not_placeholders_are_literal() -> None:
    assert render(['{"a": 1}', "{}", "{ model }", "x{1}"], {}) == [
        '{"a": 1}', "{}", "{ model }", "x{1}"]


def test_integer_values_become_words() -> None:
    assert render(["--max-turns={max_turns}"], {"max_turns": 12}) == ["--max-turns=12"]


@pytest.mark.parametrize("token", ["{foo}", "{add_dir}", "{model*}", "{model?}",
                                   "{auto_approve}", "{add_dir!}", "{auto_approve!}"])
def test_an_unknown_placeholder_is_refused_by_name(token: str) -> None:
    with pytest.raises(UsageError, match=re.escape(f"unknown placeholder {token} (known: ")):
        render(["ok", ("--x", f"a{token}b")], {"model": "m"})


def test_an_unknown_placeholder_is_refused_even_in_a_dropped_group() -> None:
    with pytest.raises(UsageError, match=r"\{modle\}"):
        render([("--m", "{model}", "{modle}")], {})
    spec = ProviderSpec("x", "x", ("{prompt!}", "{modle}"), None, ResultFormat.TEXT)
    with pytest.raises(UsageError, match=r"\{modle\}"):
        build_argv(spec, AgentRequest(prompt="hi"))


def test_a_required_placeholder_without_a_value_is_refused() -> None:
    with pytest.raises(UsageError, match=r"\{model!\} is required"):
        render(["{model!}"], {})


@pytest.mark.parametrize(("values", "template"), [
    ({"model": ["m"]}, ["{model}"]),
    ({"model": True}, ["{model}"]),
    ({"add_dir": "/a"}, ["{add_dir*}"]),
    ({"add_dir": [1]}, ["{add_dir*}"]),
    ({"auto_approve": "yes"}, ["{auto_approve?}"]),
])
def test_values_of_the_wrong_type_are_a_programming_error(values: dict[str, object],
                                                          template: list[str]) -> None:
    with pytest.raises(TypeError):
        render(template, values)


def test_binary_is_argv0_and_available_to_the_template() -> None:
    spec = ProviderSpec("wrap", "/opt/bin/agent", ("--self={binary}", "--", "{prompt!}"),
                        None, ResultFormat.TEXT)
    assert build_argv(spec, AgentRequest(prompt="p")) == [
        "/opt/bin/agent", "--self=/opt/bin/agent", "--", "p"]


def test_a_provider_without_a_binary_is_refused() -> None:
    spec = ProviderSpec("nobin", "", ("{prompt}",), None, ResultFormat.TEXT)
    with pytest.raises(UsageError, match="nobin has no binary"):
        build_argv(spec, AgentRequest(prompt="p"))


# -- provider tables from a user's config ------------------------------------------

def test_overriding_the_binary_keeps_the_rest() -> None:
    spec = spec_from_table("claude", {"binary": "/opt/claude/bin/claude"},
                           BUILTIN["claude"], WHERE)
    assert spec == replace(BUILTIN["claude"], binary="/opt/claude/bin/claude")
    assert build_argv(spec, AgentRequest(prompt="hi"))[0] == "/opt/claude/bin/claude"


def test_overriding_templates_and_results() -> None:
    spec = spec_from_table("gemini", {
        "argv": ["-p", "{prompt!}", "--output-format", "json", ["-m", "{model}"],
                 ["--approval-mode", "yolo", "{auto_approve?}"]],
        "resume_argv": [],
        "results": "gemini-json",
    }, BUILTIN["gemini"], WHERE)
    assert spec.binary == "gemini"
    assert spec.resume_argv is None
    assert spec.results is ResultFormat.GEMINI_JSON
    assert build_argv(spec, AgentRequest(prompt="hi", auto_approve=True)) == [
        "gemini", "-p", "hi", "--output-format", "json", "--approval-mode", "yolo"]
    with pytest.raises(UsageError, match="gemini cannot resume"):
        build_resume_argv(spec, AgentRequest(prompt="hi", provider_session_id=SID))


def test_a_new_provider_from_a_table() -> None:
    spec = spec_from_table("aider", {
        "binary": "aider",
        "argv": ["--yes-always{auto_approve?}", ["--model", "{model}"], "--message",
                 "{prompt!}"],
    }, None, WHERE)
    assert spec == ProviderSpec(
        "aider", "aider", ("--yes-always{auto_approve?}", ("--model", "{model}"),
                           "--message", "{prompt!}"), None, ResultFormat.TEXT)
    assert build_argv(spec, AgentRequest(prompt="do it", model="sonnet")) == [
        "aider", "--model", "sonnet", "--message", "do it"]
    with pytest.raises(UsageError, match="aider has no way to limit the number of turns"):
        build_argv(spec, AgentRequest(prompt="do it", max_turns=2))


@pytest.mark.parametrize(("table", "base", "key", "problem"), [
    ({"binary": "x", "argv": ["{prompt}"], "colour": "red"}, None, "colour", "unknown key"),
    ({"argv": ["{prompt}"]}, None, "binary", "required for a new provider"),
    ({"binary": "x"}, None, "argv", "required for a new provider"),
    ({"binary": 3}, "claude", "binary", "expected a string, got an integer"),
    ({"binary": ""}, "claude", "binary", "expected a program name or path"),
    ({"argv": "-p {prompt}"}, "claude", "argv", "expected an array"),
    ({"argv": []}, "claude", "argv", "expected a non-empty array"),
    ({"argv": ["-p", 3]}, "claude", "argv[1]", "got an integer"),
    ({"argv": ["-p", []]}, "claude", "argv[1]", "non-empty array of strings, got an array"),
    ({"argv": ["-p", ["-m", ["x"]]]}, "claude", "argv[1]", "got an array"),
    ({"argv": ["-p", "{promt}"]}, "claude", "argv", "unknown placeholder {promt}"),
    ({"resume_argv": {"a": 1}}, "claude", "resume_argv", "got a table"),
    ({"resume_argv": ["-r", "{prompt}"]}, "claude", "resume_argv",
     "must use {provider_session_id}"),
    ({"results": "xml"}, "claude", "results", "expected one of claude-stream-json, "
     "codex-jsonl, copilot-jsonl, gemini-json, text, got 'xml'"),
    ({"results": True}, "claude", "results", "got a boolean"),
])
def test_a_bad_table_is_refused_naming_the_file_and_key(
        table: dict[str, object], base: str | None, key: str, problem: str) -> None:
    with pytest.raises(UsageError) as caught:
        spec_from_table("claude", table, BUILTIN[base] if base else None, WHERE)
    message = caught.value.message
    assert message.startswith(f"{WHERE}: provider claude: {key}: ")
    assert problem in message
    assert "\n" not in message


@pytest.mark.parametrize("name", ["", "has space", "-dash", "a/b", "x" * 65])
def test_a_bad_provider_name_is_refused(name: str) -> None:
    with pytest.raises(UsageError, match=WHERE):
        spec_from_table(name, {"binary": "x", "argv": ["{prompt}"]}, None, WHERE)


# --- finding a provider among the built-ins and the config's tables ---------------------

def test_find_takes_a_built_in_as_it_is() -> None:
    assert find("claude", {}, WHERE) is BUILTIN["claude"]


def test_find_lets_a_table_override_or_add_one() -> None:
    tables: dict[str, dict[str, object]] = {
        "claude": {"binary": "/opt/claude"},
        "mine": {"binary": "mine", "argv": ["{prompt}"]}}
    assert find("claude", tables, WHERE) == replace(BUILTIN["claude"], binary="/opt/claude")
    assert find("mine", tables, WHERE).argv == ("{prompt}",)


def test_an_override_keeps_what_its_table_cannot_say() -> None:
    # Before, a [providers.gemini] table dropped what gemini needs when it resumes.
    tables: dict[str, dict[str, object]] = {"gemini": {"binary": "/opt/gemini"}}
    assert find("gemini", tables, WHERE) == replace(BUILTIN["gemini"], binary="/opt/gemini")
    assert find("gemini", tables, WHERE).resumes_unanswered is False


def test_find_an_unknown_provider_lists_the_known_and_names_the_file() -> None:
    with pytest.raises(UsageError) as caught:
        find("nope", {"mine": {"binary": "mine", "argv": ["{prompt}"]}}, WHERE)
    known = ", ".join(sorted({*BUILTIN, "mine"}))
    assert caught.value.message == (f"no provider named 'nope' (known: {known}; add one as "
                                    f"[providers.nope] in {WHERE})")


def test_a_directory_gemini_would_split_is_refused() -> None:
    # Before, gemini got --include-directories=/w/a,b and died: "/w/a" does not exist.
    request = AgentRequest(prompt="hi", add_dirs=("/w/a,b",))
    with pytest.raises(UsageError) as caught:
        build_argv(BUILTIN["gemini"], request)
    assert caught.value.message == (
        "gemini splits its directories on ',', so --add-dir cannot give it /w/a,b")
    assert "--add-dir=/w/a,b" in build_argv(BUILTIN["copilot"], request)
