"""Schedules: a spawn that a timer unit installed in the scope's unit directory runs on a
calendar (`orch schedule add NAME --on-calendar SPEC ...`). The unit files are the
schedule: they survive reboots, Persistent=true catches up on a run missed while the
machine was off, and the manager checks SPEC when it loads them.

The timer starts orch-schedule-NAME.service, a oneshot that runs `orch schedule fire`:
it spawns the session (tagged schedule:NAME) and, unless --overlap, waits for it to end,
so that the manager, which starts no second run of an active service, never lets two
firings overlap. The service's first line keeps the definition as JSON, for `list`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from orch import files, jsontext
from orch.errors import NotFound, OrchError, UsageError
from orch.frozen import dataclass
from orch.locate import session_path
from orch.scope import Scope, paths_passed_on
from orch.settings import NAME
from orch.unitfiles import unit_dir, word

TYPE_CHECKING = False
if TYPE_CHECKING:
    from orch.systemd import Manager

PREFIX = "orch-schedule-"
_DEFINITION = "# orch-schedule "


@dataclass(frozen=True)
class Schedule:
    """One schedule: NAME fires on ON_CALENDAR, spawning with SPAWN_ARGS (orch spawn's
    own words: options, then -- and the command or prompt)."""

    name: str
    on_calendar: str
    spawn_args: list[str]
    overlap: bool = False
    next_run: str | None = None  # from the manager: when the timer elapses next
    last_run: str | None = None

    @property
    def timer(self) -> str:
        return f"{PREFIX}{self.name}.timer"

    @property
    def service(self) -> str:
        return f"{PREFIX}{self.name}.service"

    def to_json(self) -> dict[str, object]:
        """As `orch schedule list --json` gives it."""
        return {"name": self.name, "on_calendar": self.on_calendar,
                "spawn_args": list(self.spawn_args), "overlap": self.overlap,
                "timer": self.timer, "next_run": self.next_run, "last_run": self.last_run}


def check_name(name: str) -> str:
    """NAME, if it can name a schedule (and its units); UsageError otherwise."""
    if not re.fullmatch(NAME, name) or len(name) > 64:
        raise UsageError(f"schedule name {name!r}: expected up to 64 letters, digits, "
                         "_ and -")
    return name


def render(schedule: Schedule, scope: Scope, orch: str) -> dict[str, str]:
    """The timer and service files of SCHEDULE for SCOPE, running ORCH."""
    definition = jsontext.dumps({"on_calendar": schedule.on_calendar,
                                 "spawn_args": schedule.spawn_args,
                                 "overlap": schedule.overlap}, ascii=False)
    # Its runs find programs where a spawn from here would, this orch first: the
    # manager's own PATH lacks the user's directories (~/.local/bin, npm's).
    values = {"PATH": session_path(os.environ.get("PATH")), **paths_passed_on()}
    env = "".join(f"Environment={word(f'{k}={v}')}\n" for k, v in values.items())
    fire = [orch, "schedule", "fire", f"--{scope}", *(["--overlap"] if schedule.overlap
                                                      else []), schedule.name,
            *schedule.spawn_args]
    return {
        schedule.timer: (
            f"[Unit]\nDescription=orch schedule {schedule.name}\n"
            "Documentation=man:orch(1)\n\n"
            f"[Timer]\nOnCalendar={schedule.on_calendar}\nPersistent=true\n\n"
            "[Install]\nWantedBy=timers.target\n"),
        schedule.service: (
            f"{_DEFINITION}{definition}\n"
            f"[Unit]\nDescription=orch schedule {schedule.name}: spawn a session\n"
            "Documentation=man:orch(1)\n\n"
            f"[Service]\nType=oneshot\n{env}"
            f"ExecStart={' '.join(word(w, exec_line=True) for w in fire)}\n"),
    }


def parse(name: str, service_text: str) -> Schedule | None:
    """The schedule a service file of ours defines (its first line); None if it is not
    one (a file of that name someone else wrote)."""
    first = service_text.split("\n", 1)[0]
    if not first.startswith(_DEFINITION):
        return None
    try:
        data = jsontext.loads(first.removeprefix(_DEFINITION))
        return Schedule(name, str(data["on_calendar"]), [str(w) for w in data["spawn_args"]],
                        bool(data.get("overlap", False)))
    except (ValueError, KeyError, TypeError):
        return None


def add(schedule: Schedule, scope: Scope, orch: str) -> Schedule:
    """Install SCHEDULE's units, have the manager load them (refusing a calendar it
    cannot parse: nothing is left behind then), enable and start its timer."""
    from orch.systemd import Manager

    directory = unit_dir(scope)
    if (directory / schedule.timer).exists():
        raise UsageError(f"schedule {schedule.name} exists already: `orch schedule remove "
                         f"{schedule.name}` first")
    _write(directory, render(schedule, scope, orch))
    try:
        with Manager(scope) as manager:
            manager.reload()
            state, _, _ = manager.unit_file_state(schedule.timer)
            if state == "loaded":
                manager.enable([schedule.timer])
                manager.start(schedule.timer)
                return _with_times(manager, schedule)
            _remove_files(directory, schedule)
            manager.reload()  # and the manager forgets the unit it could not use
    except BaseException:
        # All or nothing: files left by a manager that failed midway (gone, say) made
        # the next add say the schedule existed, though it never ran.
        _remove_files(directory, schedule)
        raise
    raise UsageError(f"--on-calendar {schedule.on_calendar!r}: the {scope} manager cannot "
                     f"use it ({state}); see systemd.time(7)")


def names(scope: Scope) -> list[str]:
    """The names of the schedules installed for SCOPE, from their files alone."""
    return sorted(path.name.removeprefix(PREFIX).removesuffix(".service")
                  for path in unit_dir(scope).glob(f"{PREFIX}*.service"))


def listed(scope: Scope) -> list[Schedule]:
    """Every schedule installed for SCOPE, by name, with its next and last run."""
    from orch.systemd import Manager

    found = []
    directory = unit_dir(scope)
    for path in sorted(directory.glob(f"{PREFIX}*.service")):
        name = path.name.removeprefix(PREFIX).removesuffix(".service")
        schedule = parse(name, _read(path))
        if schedule is not None:
            found.append(schedule)
    if not found:
        return []
    with Manager(scope) as manager:
        return [_with_times(manager, s) for s in found]


def find(name: str, scope: Scope) -> Schedule:
    """The schedule NAME of SCOPE; NotFound if there is none."""
    path = unit_dir(scope) / f"{PREFIX}{check_name(name)}.service"
    schedule = parse(name, _read(path)) if path.exists() else None
    if schedule is None:
        raise NotFound(f"no schedule {name} (orch schedule list shows them)")
    return schedule


def remove(name: str, scope: Scope) -> Schedule:
    """Stop and disable schedule NAME's timer (a run in progress goes on), remove its
    units, reload the manager, and have it forget a run that failed (a failed unit of
    the schedule's name stayed listed once its file was gone)."""
    from orch.systemd import Manager

    schedule = find(name, scope)
    with Manager(scope) as manager:
        manager.stop(schedule.timer)
        manager.disable([schedule.timer])
        _remove_files(unit_dir(scope), schedule)
        manager.reload()
        for unit in (schedule.service, schedule.timer):
            manager.reset_failed(unit)
    return schedule


def run_now(name: str, scope: Scope) -> None:
    """Start schedule NAME's service now, as its timer would, without waiting for the
    run. OrchError while a run is under way (its service active: the one that may not
    overlap, or an overlapping one's spawn), where the start would do nothing."""
    from orch.systemd import Manager

    schedule = find(name, scope)
    with Manager(scope) as manager:
        listed = manager.loaded(schedule.service).get(schedule.service)
        if listed is not None and listed[1][1] in ("activating", "active", "reloading"):
            raise OrchError(f"schedule {name}: a run is under way, and runs do not overlap; "
                            f"nothing started (orch ps --tag schedule:{name})")
        manager.start(schedule.service, wait=False)


def _with_times(manager: Manager, schedule: Schedule) -> Schedule:
    from orch.frozen import replace
    from orch.session import usec_to_iso

    _, next_usec, last_usec = manager.unit_file_state(schedule.timer)
    return replace(schedule, next_run=usec_to_iso(next_usec), last_run=usec_to_iso(last_usec))


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise OrchError(f"cannot read {path}: {err.strerror}") from None


def _write(directory: Path, texts: dict[str, str]) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in texts.items():
            # The spawn's words (a prompt, --env values) are the caller's alone; the
            # manager reads the files as root or as the user.
            files.write_atomically(directory / name, text.encode(), 0o600)
    except OSError as err:
        raise OrchError(f"cannot write units to {directory}: {err.strerror}") from None
    except files.WriteFailed as failed:
        raise OrchError(f"cannot write units: {failed}") from None


def _remove_files(directory: Path, schedule: Schedule) -> None:
    for unit in (schedule.timer, schedule.service):
        try:
            (directory / unit).unlink(missing_ok=True)
        except OSError as err:
            raise OrchError(f"cannot remove {directory / unit}: {err.strerror}") from None
