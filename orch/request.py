"""What a spawn asks for, typed: the spawn settings of orch.settings with the layers
resolved ([spawn] < [profiles.NAME] < the command line's flags) and every value in its
unit (bytes, seconds, percent), as one frozen record.

The command line builds one with spawn_request() and hands it down; nothing below it
sees a setting's text again. Light at import, as orch.settings is: the configuration
machinery loads only when there is a file, a profile or an agent to read it for.
"""

from __future__ import annotations

import os

from orch.errors import UsageError
from orch.frozen import dataclass
from orch.settings import (
    SPAWN_SETTINGS,
    parse_duration_seconds,
    parse_percent,
    parse_size_bytes,
)
from orch.spec import Restart, SpawnOptions

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from orch.config import Config
    from orch.providers import AgentRequest
    from orch.scope import Scope

EXEC = "exec"  # the provider that runs the command as it is: no agent


@dataclass(frozen=True)
class SpawnRequest:
    """Every spawn setting (orch.settings.SPAWN_SETTINGS) as one spawn uses it: checked,
    converted, None or empty where nothing set it. Paths are as given, except add_dirs,
    which are made absolute (a sandbox and the agent need them so)."""

    provider: str | None = None
    model: str | None = None
    system_prompt: str | None = None
    auto_approve: bool = False
    interactive: bool = False
    tty: bool = False
    add_dirs: tuple[str, ...] = ()
    max_turns: int | None = None
    timeout_sec: float | None = None  # None: no limit (0 and infinity alike)
    memory_max: int | None = None  # bytes; None: no limit (infinity alike)
    cpu_quota: int | None = None  # percent of one CPU
    tasks_max: int | None = None  # None: no limit (infinity alike)
    nice: int | None = None
    restart: Restart = Restart.NO
    sandbox: bool = False
    worktree: bool = False
    persistent: bool = False
    env_files: tuple[str, ...] = ()
    secret_env: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    cwd: str | None = None
    queue: str | None = None
    priority: int = 0
    retries: int = 0
    retry_delay: float | None = None  # seconds
    limit_wait: float | None = None  # seconds

    @property
    def agent(self) -> str | None:
        """The agent provider to run, or None for a plain command (no provider, or exec)."""
        return None if self.provider in (None, EXEC) else self.provider

    def options(self) -> SpawnOptions:
        """How systemd is to run the session, as the record keeps it."""
        return SpawnOptions(timeout_sec=self.timeout_sec, memory_max=self.memory_max,
                            cpu_quota=self.cpu_quota, tasks_max=self.tasks_max,
                            nice=self.nice, restart=self.restart, sandbox=self.sandbox,
                            add_dirs=self.add_dirs, tty=self.tty, retries=self.retries,
                            retry_delay_sec=self.retry_delay,
                            limit_wait_sec=self.limit_wait)

    def agent_prompt(self, command: list[str] | tuple[str, ...]) -> str:
        """The one PROMPT argument an agent spawn takes; UsageError for any other count."""
        if len(command) != 1:
            raise UsageError(f"--provider {self.provider} takes one PROMPT argument "
                             f"(quote it), got {len(command)}")
        return command[0]

    def agent_request(self, prompt: str) -> AgentRequest:
        """What the agent is asked: PROMPT with this request's agent settings."""
        from orch.providers import AgentRequest

        return AgentRequest(prompt=prompt, model=self.model, system_prompt=self.system_prompt,
                            auto_approve=self.auto_approve, add_dirs=self.add_dirs,
                            max_turns=self.max_turns, interactive=self.interactive)


def config_for_spawn(scope: Scope, profile: str | None,
                     flags: Mapping[str, object]) -> Config | None:
    """SCOPE's configuration, read once for the whole spawn (settings, profile, the
    agent's provider); None when nothing needs it: no file, no --profile, and no agent
    asked for by FLAGS. Most spawns are that, and never load the TOML machinery."""
    if (profile is None and flags.get("provider") in (None, EXEC)
            and flags.get("queue") is None and not os.path.lexists(scope.config_path())):
        return None
    from orch import config

    return config.load(scope)


def spawn_request(config: Config | None, profile: str | None,
                  flags: Mapping[str, object]) -> SpawnRequest:
    """The request of one spawn: CONFIG's [spawn], overlaid by [profiles.PROFILE], overlaid
    by FLAGS (keyed by setting key, raw as the command line gives them; None for a flag
    not given). UsageError naming the flag for a bad value, or naming the file for an
    unknown PROFILE. CONFIG None stands for no configuration file (config_for_spawn)."""
    if config is not None:
        layers = config.spawn_defaults(profile)
    elif profile is not None:
        raise UsageError(f"--profile {profile}: no configuration was read to find it in")
    else:
        layers = {}
    for key, value in flags.items():
        if value is not None:
            layers[key] = SPAWN_SETTINGS[key].from_flag(value)
    request = _typed(layers)
    if request.tty and request.interactive:  # its input would go to no one
        raise UsageError("--tty and --interactive do not go together: --tty gives the "
                         "agent's own terminal (orch attach), --interactive a conversation "
                         "(orch send)")
    if flags.get("priority") is not None and request.queue is None:
        raise UsageError("--priority orders a queue: give --queue NAME (or spawn.queue)")
    if request.interactive and any(flags.get(k) is not None for k in ("retries", "retry_delay")):
        # Given, it would be dropped: a conversation's failed turn is not run again.
        raise UsageError("--retries and --interactive do not go together: a conversation "
                         "is not run again when the API fails a turn")
    if request.agent is None:  # a plain command: an agent's option would be dropped
        for key, value in flags.items():
            setting = SPAWN_SETTINGS[key]
            if setting.agent_only and value not in (None, False):
                given = "--provider exec runs a plain command: " \
                    if request.provider == EXEC else ""
                raise UsageError(f"{given}{setting.flag} is an agent's option: give "
                                 "--provider (claude, codex, ...) or leave it out")
    return request


def for_spawn(scope: Scope, profile: str | None, flags: Mapping[str, object]
              ) -> tuple[Config | None, SpawnRequest]:
    """The configuration a spawn of SCOPE reads (once: config_for_spawn) and the request
    FLAGS make over it (spawn_request): what `orch spawn`, `orch schedule add` and the
    web API's spawn each start from."""
    loaded = config_for_spawn(scope, profile, flags)
    return loaded, spawn_request(loaded, profile, flags)


def _typed(values: Mapping[str, object]) -> SpawnRequest:
    """The request from VALUES, checked settings as [spawn] holds them."""
    timeout = values.get("timeout")
    memory = values.get("memory_max")
    quota = values.get("cpu_quota")
    tasks = values.get("tasks_max")
    turns = values.get("max_turns")
    nice = values.get("nice")
    seconds = parse_duration_seconds(timeout) if isinstance(timeout, int | str) else 0.0
    return SpawnRequest(
        provider=_text(values, "provider"),
        model=_text(values, "model"),
        system_prompt=_text(values, "system_prompt"),
        auto_approve=values.get("auto_approve") is True,
        interactive=values.get("interactive") is True,
        tty=values.get("tty") is True,
        add_dirs=tuple(os.path.abspath(d) for d in _texts(values, "add_dirs")),
        max_turns=turns if isinstance(turns, int) else None,
        # 0 and infinity both mean no limit.
        timeout_sec=seconds if 0 < seconds < float("inf") else None,
        memory_max=parse_size_bytes(memory) if isinstance(memory, int | str) else None,
        cpu_quota=parse_percent(quota) if isinstance(quota, str) else None,
        tasks_max=tasks if isinstance(tasks, int) else None,  # "infinity": no limit
        nice=nice if isinstance(nice, int) else None,
        restart=Restart(str(values.get("restart") or Restart.NO)),
        sandbox=values.get("sandbox") is True,
        worktree=values.get("worktree") is True,
        persistent=values.get("persistent") is True,
        env_files=_texts(values, "env_files"),
        secret_env=_texts(values, "secret_env"),
        tags=_texts(values, "tags"),
        cwd=_text(values, "cwd"),
        queue=_text(values, "queue"),
        priority=priority if isinstance(priority := values.get("priority"), int) else 0,
        retries=retries if isinstance(retries := values.get("retries"), int) else 0,
        retry_delay=_seconds(values, "retry_delay"),
        limit_wait=_seconds(values, "limit_wait"),
    )


def _seconds(values: Mapping[str, object], key: str) -> float | None:
    value = values.get(key)
    return parse_duration_seconds(value) if isinstance(value, int | str) else None


def _text(values: Mapping[str, object], key: str) -> str | None:
    value = values.get(key)
    return value if isinstance(value, str) and value else None


def _texts(values: Mapping[str, object], key: str) -> tuple[str, ...]:
    value = values.get(key)
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()
