"""Agent providers: how to turn a request ("run claude on this prompt with that model")
into the argv of the provider's own CLI.

A provider is data, so that a user's TOML config can add one or override a built-in:
its binary, an argv template for a fresh run, one for resuming its own conversation
(or none), and which parser in orch.results reads its output.

The templates' language is orch.argv_template's.

Every built-in hands the prompt over after `--` (or as `--prompt=...`), so that a prompt
starting with `-` stays a prompt, and passes free-text option values as `--flag=value`
for the same reason. A request option the template has no placeholder for is refused
("codex has no way to limit the number of turns (--max-turns)"), never silently dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import NoReturn

from orch.argv_template import FLAG, LIST, Item, placeholders, render
from orch.errors import UsageError
from orch.results import ResultFormat

# What each request option is called in errors: what a provider would need a flag for,
# and the option that asked for it.
_OPTIONS = {
    "prompt": ("take a prompt", "a prompt"),
    "model": ("choose the model", "--model"),
    "system_prompt": ("set a system prompt", "--system-prompt"),
    "max_turns": ("limit the number of turns", "--max-turns"),
    "add_dir": ("give access to more directories", "--add-dir"),
    "auto_approve": ("approve tool use automatically", "--auto-approve"),
    "provider_session_id": ("choose its session id", "a provider session id"),
}


@dataclass(frozen=True)
class ProviderSpec:
    """How to run one agent CLI, headless."""

    name: str
    binary: str  # executable name (looked up on PATH by the caller) or absolute path
    argv: tuple[Item, ...]  # template for a fresh run
    resume_argv: tuple[Item, ...] | None  # template to resume its conversation; None if it cannot
    results: ResultFormat  # which parser in orch.results reads its output
    # The directory under the home the agent keeps its own state in (config, sessions):
    # a sandbox must leave it writable, or the agent cannot run (claude then exits 0
    # printing nothing). state_env names the variable that puts all of it there;
    # state_home_env one that names another home to keep state_dir in.
    state_dir: str | None = None
    state_env: str | None = None
    state_home_env: str | None = None
    # Templates for a run that stays up between turns and takes each user message on its
    # standard input (orch.conversation), fresh and resumed: no prompt in them. None: the
    # provider takes no messages while it runs.
    live_argv: tuple[Item, ...] | None = None
    live_resume_argv: tuple[Item, ...] | None = None
    # Whether a conversation the model never answered can be resumed. gemini 0.61 lists
    # only conversations with a model turn ("No previous sessions found", exit 42) and
    # refuses a new one with the same id ("already exists"): such a run starts over.
    resumes_unanswered: bool = True
    # What the provider splits its directories option's value on (gemini's
    # --include-directories, on commas): a directory holding it cannot be passed.
    splits_dirs_on: str | None = None


@dataclass(frozen=True)
class AgentRequest:
    """What the caller asks of an agent, whichever provider runs it."""

    prompt: str | None
    model: str | None = None
    system_prompt: str | None = None
    auto_approve: bool = False
    add_dirs: tuple[str, ...] = ()
    max_turns: int | None = None
    # On resume: the conversation to continue. On a fresh run: the id the new
    # conversation should have, for providers that let the caller choose it.
    provider_session_id: str | None = None
    # Stay up between turns, taking each message on standard input (orch send).
    interactive: bool = False


_CLAUDE_ARGV: tuple[Item, ...] = (
    "-p", "--output-format", "stream-json", "--verbose",
    "--model={model}",
    "--append-system-prompt={system_prompt}",
    "--max-turns={max_turns}",
    "--add-dir={add_dir*}",
    ("--dangerously-skip-permissions", "{auto_approve?}"),
    "--session-id={provider_session_id}",  # must be a UUID
    "--", "{prompt!}",
)
_CLAUDE_RESUME_ARGV: tuple[Item, ...] = (
    "-p", "--resume={provider_session_id!}",
    "--output-format", "stream-json", "--verbose",
    "--model={model}",
    "--append-system-prompt={system_prompt}",
    "--max-turns={max_turns}",
    "--add-dir={add_dir*}",
    ("--dangerously-skip-permissions", "{auto_approve?}"),
    "--", "{prompt!}",
)


def _live_template(template: tuple[Item, ...]) -> tuple[Item, ...]:
    """TEMPLATE (claude's) for a run that takes its messages on standard input as
    stream-json, one per line, a turn each: the CLI stays up until its input ends
    (which orch's never does while the session runs). No prompt: it is the first
    message. A message sent during a turn is read at the turn's next step. Each message
    is echoed on its output (--replay-user-messages), so the transcript shows it."""
    return (*template[:template.index("--")], "--input-format", "stream-json",
            "--replay-user-messages")


# Built-ins. Checked against each CLI's --help (versions below) and its documentation;
# the offline runs these flags were tried with are described in the tests.
BUILTIN: dict[str, ProviderSpec] = {
    # Claude Code 2.1.197, `claude --help`; code.claude.com/docs/en/cli-reference and
    # .../headless. -p is a boolean (--print); the prompt is the positional argument.
    # stream-json needs --verbose under -p (the CLI refuses otherwise). --max-turns is
    # documented but hidden from --help. --append-system-prompt keeps Claude Code's own
    # system prompt (--system-prompt would replace it). --add-dir is variadic, hence
    # the `=` form. A resumed run needs a prompt ("Provide a prompt to continue").
    # As root, --dangerously-skip-permissions exits 1 unless the environment has
    # IS_SANDBOX=1 (anthropics/claude-code#3490): that is the caller's to set.
    "claude": ProviderSpec(
        name="claude",
        binary="claude",
        argv=_CLAUDE_ARGV,
        resume_argv=_CLAUDE_RESUME_ARGV,
        results=ResultFormat.CLAUDE_STREAM_JSON,
        state_dir=".claude",
        state_env="CLAUDE_CONFIG_DIR",
        # --input-format stream-json: one JSON user message per line on stdin, a turn
        # each; the CLI stays up until its input ends (which orch's never does while the
        # session runs). A message sent during a turn is read at the turn's next step.
        live_argv=_live_template(_CLAUDE_ARGV),
        live_resume_argv=_live_template(_CLAUDE_RESUME_ARGV),
    ),
    # codex-cli 0.171.0 (run end to end by tests/integration/test_codex.py), `codex exec
    # --help` and `codex exec resume --help`; developers.openai.com/codex/noninteractive.
    # exec runs in a read-only sandbox and never asks for approval; --full-auto is gone
    # since 0.169 (an unexpected argument), and `resume` has no --sandbox or --add-dir, so
    # auto-approve is the bypass flag, which both accept. --skip-git-repo-check: without
    # it exec refuses to run outside a trusted git repository. No flag for a system
    # prompt, turn limit or session id.
    "codex": ProviderSpec(
        name="codex",
        binary="codex",
        argv=(
            "exec", "--json", "--skip-git-repo-check",
            "--model={model}",
            "--add-dir={add_dir*}",
            ("--dangerously-bypass-approvals-and-sandbox", "{auto_approve?}"),
            "--", "{prompt!}",
        ),
        resume_argv=(
            "exec", "resume", "--json", "--skip-git-repo-check",
            "--model={model}",
            ("--dangerously-bypass-approvals-and-sandbox", "{auto_approve?}"),
            "--", "{provider_session_id!}", "{prompt!}",
        ),
        results=ResultFormat.CODEX_JSONL,
        state_dir=".codex",
        state_env="CODEX_HOME",
    ),
    # Gemini CLI 0.61.0, `gemini --help`; geminicli.com/docs/cli/headless and
    # .../trusted-folders. --prompt takes one value (`-p -x` is "Not enough arguments"),
    # hence `--prompt=`. stream-json is JSONL (json is one object printed at the end).
    # Headless gemini exits in an untrusted folder unless --skip-trust (or
    # GEMINI_CLI_TRUST_WORKSPACE=true). --include-directories splits its value on
    # commas. --resume takes a session UUID (or "latest" or an index), looked up among
    # the sessions of the current directory. No flag for a system prompt or turn limit.
    "gemini": ProviderSpec(
        name="gemini",
        binary="gemini",
        argv=(
            "--prompt={prompt!}", "--output-format", "stream-json", "--skip-trust",
            "--model={model}",
            "--include-directories={add_dir*}",
            ("--yolo", "{auto_approve?}"),
            "--session-id={provider_session_id}",
        ),
        resume_argv=(
            "--resume={provider_session_id!}",
            "--prompt={prompt!}", "--output-format", "stream-json", "--skip-trust",
            "--model={model}",
            "--include-directories={add_dir*}",
            ("--yolo", "{auto_approve?}"),
        ),
        results=ResultFormat.GEMINI_JSON,
        state_dir=".gemini",
        state_home_env="GEMINI_CLI_HOME",  # its docs: "creates a .gemini folder inside"
        resumes_unanswered=False,
        splits_dirs_on=",",
    ),
    # GitHub Copilot CLI 1.0.102, `copilot --help`; docs.github.com/en/copilot/reference/
    # copilot-cli-reference/cli-programmatic-reference. --output-format json prints one
    # event per line (its answer, each tool run, and a last `result` with the session's
    # id), tried offline against a scripted model (tests/unit/data/agents). --session-id
    # names the conversation at spawn. No flag for a system prompt or turn limit.
    "copilot": ProviderSpec(
        name="copilot",
        binary="copilot",
        argv=(
            "--prompt={prompt!}", "--output-format", "json",
            "--model={model}",
            "--add-dir={add_dir*}",
            ("--allow-all-tools", "{auto_approve?}"),
            "--session-id={provider_session_id}",
        ),
        resume_argv=(
            "--resume={provider_session_id!}",
            "--prompt={prompt!}", "--output-format", "json",
            "--model={model}",
            "--add-dir={add_dir*}",
            ("--allow-all-tools", "{auto_approve?}"),
        ),
        results=ResultFormat.COPILOT_JSONL,
        state_dir=".copilot",
        state_env="COPILOT_HOME",  # all of ~/.copilot (docs.github.com: config dir reference)
    ),
    # ollama `run MODEL [PROMPT]` (docs.ollama.com/cli; cmd/cmd.go). Not installed here,
    # so unverified by running. A one-shot completion, not an agent: no tools, no
    # directories, no approvals, no conversation to resume. The system prompt is a
    # Modelfile SYSTEM line or /set system in interactive mode, not a flag.
    "ollama": ProviderSpec(
        name="ollama",
        binary="ollama",
        argv=("run", "--nowordwrap", "--", "{model!}", "{prompt!}"),
        resume_argv=None,
        results=ResultFormat.TEXT,
    ),
    # Any command: the caller gives the argv itself (`orch spawn -- CMD [ARG...]`), so
    # there is no template and build_argv refuses.
    "exec": ProviderSpec(
        name="exec",
        binary="",
        argv=(),
        resume_argv=None,
        results=ResultFormat.TEXT,
    ),
}


def _request_values(spec: ProviderSpec, request: AgentRequest) -> dict[str, object]:
    return {
        "binary": spec.binary,
        "prompt": request.prompt,
        "model": request.model,
        "system_prompt": request.system_prompt,
        "max_turns": request.max_turns,
        "provider_session_id": request.provider_session_id,
        LIST: request.add_dirs,
        FLAG: request.auto_approve,
    }


def _asked(values: Mapping[str, object], name: str) -> bool:
    """Whether the request sets option NAME."""
    value = values.get(name)
    return bool(value) if name in (LIST, FLAG) else value not in (None, "")


def _build(spec: ProviderSpec, template: tuple[Item, ...], request: AgentRequest,
           resuming: bool) -> list[str]:
    """REQUEST rendered through TEMPLATE. A live template takes no prompt: the prompt
    is the first message on its input."""
    if not spec.binary:
        raise UsageError(f"provider {spec.name} has no binary")
    if request.max_turns is not None and (
            isinstance(request.max_turns, bool) or request.max_turns < 1):
        raise UsageError("--max-turns must be at least 1")
    if any(not directory for directory in request.add_dirs):
        raise UsageError("--add-dir needs a directory")
    split = spec.splits_dirs_on
    for directory in request.add_dirs:
        if split is not None and split in directory:
            raise UsageError(f"{spec.name} splits its directories on {split!r}, so "
                             f"--add-dir cannot give it {directory}")
    values = _request_values(spec, request)
    used = placeholders(template)
    when = " when resuming" if resuming else ""
    for name, (what, option) in _OPTIONS.items():
        if name == "prompt" and request.interactive:
            continue
        if _asked(values, name) and name not in used:
            template_key = "resume_argv" if resuming else "argv"
            why = f"({option})" if option.startswith("-") else \
                f"(its {template_key} has no {{{name}}})"
            raise UsageError(f"{spec.name} has no way to {what}{when} {why}")
    for name, suffixes in used.items():
        if "!" in suffixes and not _asked(values, name):
            raise UsageError(f"{spec.name} needs {_OPTIONS[name][1]}"
                             if name in _OPTIONS else f"{spec.name} needs {{{name}}}")
    return [spec.binary, *render(template, values)]


def build_argv(spec: ProviderSpec, request: AgentRequest) -> list[str]:
    """The argv of a fresh run of SPEC for REQUEST; argv[0] is spec.binary.

    UsageError when the request asks for something the provider has no flag for, or
    lacks something it needs (a prompt; ollama's model)."""
    if not spec.argv:
        raise UsageError(f"provider {spec.name} takes the command itself: "
                         "use `orch spawn -- CMD [ARG...]`")
    if request.interactive:
        return _build(spec, _live(spec, spec.live_argv), request, resuming=False)
    return _build(spec, spec.argv, request, resuming=False)


def _live(spec: ProviderSpec, template: tuple[Item, ...] | None) -> tuple[Item, ...]:
    if template is None:
        raise UsageError(f"{spec.name} takes no messages while it runs, so it cannot be "
                         "--interactive (claude can; --no-interactive overrides a default); "
                         "`orch send` resumes it once it ended")
    return template


def build_resume_argv(spec: ProviderSpec, request: AgentRequest) -> list[str]:
    """The argv continuing the provider's own conversation request.provider_session_id
    with request.prompt; argv[0] is spec.binary.

    UsageError if the provider cannot resume, or no session id is given."""
    if spec.resume_argv is None:
        raise UsageError(f"{spec.name} cannot resume a conversation")
    if not request.provider_session_id:
        raise UsageError(f"resuming {spec.name} needs its session id")
    if request.interactive:
        return _build(spec, _live(spec, spec.live_resume_argv), request, resuming=True)
    return _build(spec, spec.resume_argv, request, resuming=True)


def carried(spec: ProviderSpec, request: AgentRequest) -> AgentRequest:
    """REQUEST, a conversation's own, without the options SPEC's resume template cannot
    pass: the conversation began with them, and a resume of it (at its wake, at boot,
    by hand) is not refused for them (codex's `exec resume` has no --add-dir)."""
    template = spec.live_resume_argv if request.interactive else spec.resume_argv
    used = placeholders(template or ())
    return replace(
        request, model=request.model if "model" in used else None,
        system_prompt=request.system_prompt if "system_prompt" in used else None,
        max_turns=request.max_turns if "max_turns" in used else None,
        add_dirs=request.add_dirs if LIST in used else (),
        auto_approve=request.auto_approve and FLAG in used)


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_TABLE_KEYS = ("binary", "argv", "resume_argv", "results")


def _kind(value: object) -> str:
    """VALUE's TOML type, as an error names it."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _template(value: object, key: str, fail: _Fail) -> tuple[Item, ...]:
    """A template from its TOML form: an array of strings and arrays of strings."""
    if not isinstance(value, list | tuple):
        fail(key, f"expected an array of strings and arrays of strings, got {_kind(value)}")
    items: list[Item] = []
    for index, item in enumerate(value):
        if isinstance(item, str):
            items.append(item)
        elif (isinstance(item, list | tuple) and item
              and all(isinstance(word, str) for word in item)):
            items.append(tuple(item))
        else:
            fail(f"{key}[{index}]", "expected a string or a non-empty array of strings, "
                 f"got {_kind(item)}")
    try:
        placeholders(items)
    except UsageError as error:
        fail(key, error.message)
    return tuple(items)


def check_table_value(name: str, key: str, value: object, where: str) -> None:
    """Refuse (UsageError, one line) what `config set providers.NAME.KEY VALUE` would
    write that no spawn could use: a template with an unknown placeholder. (Whether the
    table is whole, binary and argv, is for a spawn to say: it is set a key at a time.)"""
    if key in ("argv", "resume_argv"):
        _template(value, key, _Fail(where, name))


class _Fail:
    """Raises the one-line error for a key of one provider's table."""

    def __init__(self, where: str, name: str) -> None:
        self.prefix = f"{where}: provider {name}"

    def __call__(self, key: str, problem: str) -> NoReturn:
        raise UsageError(f"{self.prefix}: {key}: {problem}")


def spec_from_table(name: str, table: Mapping[str, object], base: ProviderSpec | None,
                    where: str) -> ProviderSpec:
    """A provider from its TOML table (keys binary, argv, resume_argv, results), on top
    of BASE when it overrides one; without BASE, binary and argv are required and
    results defaults to text. `resume_argv = []` means it cannot resume.

    UsageError, one line naming WHERE (the file) and the key, for anything else."""
    fail = _Fail(where, name)
    if not _NAME.fullmatch(name):
        raise UsageError(f"{where}: provider {name!r}: a name is 1 to 64 letters, digits, "
                         "'-', '_' or '.', starting with a letter or digit")
    for key in table:
        if key not in _TABLE_KEYS:
            fail(key, f"unknown key (known: {', '.join(_TABLE_KEYS)})")
    if base is None:
        for key in ("binary", "argv"):
            if key not in table:
                fail(key, "required for a new provider")

    binary = base.binary if base is not None else ""
    if "binary" in table:
        value = table["binary"]
        if not isinstance(value, str):
            fail("binary", f"expected a string, got {_kind(value)}")
        if not value or "\x00" in value:
            fail("binary", "expected a program name or path")
        binary = value

    argv = base.argv if base is not None else ()
    if "argv" in table:
        argv = _template(table["argv"], "argv", fail)
        if not argv:
            fail("argv", "expected a non-empty array")

    resume_argv = base.resume_argv if base is not None else None
    if "resume_argv" in table:
        resume_argv = _template(table["resume_argv"], "resume_argv", fail) or None
        if resume_argv is not None and "provider_session_id" not in placeholders(resume_argv):
            fail("resume_argv", "a resume template must use {provider_session_id}")

    results = base.results if base is not None else ResultFormat.TEXT
    if "results" in table:
        value = table["results"]
        choices = [str(f) for f in ResultFormat]
        if not isinstance(value, str) or value not in choices:
            fail("results", f"expected one of {', '.join(choices)}, got "
                 + (repr(value) if isinstance(value, str) else _kind(value)))
        results = ResultFormat(value)

    if base is not None:  # what a table cannot say stays the built-in's
        return replace(base, binary=binary, argv=argv, resume_argv=resume_argv,
                       results=results)
    return ProviderSpec(name=name, binary=binary, argv=argv, resume_argv=resume_argv,
                        results=results)


def find(name: str, tables: Mapping[str, Mapping[str, object]], where: str) -> ProviderSpec:
    """Provider NAME: built in, or added or overridden by its table in TABLES (the
    [providers.NAME] tables of the configuration file WHERE, already read)."""
    table = tables.get(name)
    base = BUILTIN.get(name)
    if table is not None:
        return spec_from_table(name, table, base, where)
    if base is None:
        known = ", ".join(sorted({*BUILTIN, *tables}))
        raise UsageError(f"no provider named {name!r} (known: {known}; add one as "
                         f"[providers.{name}] in {where})")
    return base
