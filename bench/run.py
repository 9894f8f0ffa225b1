"""`make bench`: orch against systemd's own tools, side by side, in one run.

Run as root on the host: `python -m bench.run` (from the checkout). It uses the box
(booting one if systemd is not PID 1 and none runs; taking down only one it booted),
starts the test user's manager, and runs itself again inside the box as that user
(`--inner`) against that manager, with a private ORCH_STATE_DIR under /var/tmp. Then it
cleans up as that user (`--cleanup`: units stopped by name, `orch reap --all`), and
writes bench/results/latest.md and latest.json. BENCH_QUICK=1: the reduced run.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pwd
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if not __package__:
    # Run by path (the run inside the box, `python -P .../bench/run.py`): the checkout
    # goes last on the path, so `import orch` is the installed orch the CLI runs too,
    # not the checkout's orch/ (which may be changing meanwhile).
    sys.path.append(str(ROOT))
RESULTS = ROOT / "bench" / "results"
WORK_ROOT = Path("/var/tmp/orch-bench")
VENV_BIN = Path(sys.executable).parent
ORCH = str(VENV_BIN / "orch")
PYTHON = str(VENV_BIN / "python")
# This file by path, with no script directory or working directory on the path (-P).
SELF = [PYTHON, "-P", str(Path(__file__).resolve())]


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _quick() -> bool:
    return os.environ.get("BENCH_QUICK", "") not in ("", "0")


def _box_prefix() -> tuple[list[str], bool]:
    """How to run a command where the managers are, and whether we booted a box."""
    from orch import box

    if box.systemd_is_pid1():
        return [], False
    if box.running_box() is not None:
        return [ORCH, "box", "exec", "--"], False
    _say("bench: booting a box")
    subprocess.run([ORCH, "box", "up"], check=True)
    return [ORCH, "box", "exec", "--"], True


def _as_user(prefix: list[str], user: pwd.struct_passwd, argv: list[str],
             extra: dict[str, str] | None = None) -> list[str]:
    env = {"HOME": user.pw_dir, "XDG_RUNTIME_DIR": f"/run/user/{user.pw_uid}",
           "PATH": f"{VENV_BIN}:/usr/bin:/bin", "LANG": "C.UTF-8",
           "PYTHONDONTWRITEBYTECODE": "1", **(extra or {})}
    return [*prefix, "runuser", "-u", user.pw_name, "--", "env", "-i",
            *(f"{k}={v}" for k, v in env.items()), *argv]


def _git_commit() -> str:
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=False)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "orch"],
                           capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return ""
    return done.stdout.strip() + ("+dirty orch/" if dirty.stdout.strip() else "")


def _report(work: Path) -> None:
    from bench import goals, report, series

    run = series.loads((work / "run.json").read_text())
    commit = _git_commit()
    if commit:
        run = dataclasses.replace(run, machine=dataclasses.replace(
            run.machine, orch=f"{run.machine.orch} ({commit})"))
    verdicts, floors = goals.verdicts(run), goals.floor_verdicts(run)
    RESULTS.mkdir(parents=True, exist_ok=True)
    text = report.markdown(run, verdicts, floors)
    (RESULTS / "latest.md").write_text(text)
    (RESULTS / "latest.json").write_text(report.as_json(run, verdicts, floors))
    print(text)
    _say(f"bench: wrote {RESULTS / 'latest.md'} and latest.json")


def outer() -> int:
    """Host side: box, user manager, the run inside, cleanup, the report."""
    if os.geteuid() != 0:
        _say("bench: run as root (it boots or enters the box and acts as the test user)")
        return 2
    user = pwd.getpwnam(os.environ.get("BENCH_USER", "orch-test"))
    prefix, booted = _box_prefix()
    run_id = uuid.uuid4().hex[:8]
    WORK_ROOT.mkdir(mode=0o755, exist_ok=True)
    work = WORK_ROOT / run_id
    work.mkdir(mode=0o700)
    os.chown(work, user.pw_uid, user.pw_gid)
    code, reported = 1, False
    try:
        subprocess.run([*prefix, "systemctl", "start", f"user@{user.pw_uid}.service"],
                       check=True)
        inner = [*SELF, "--inner", str(work), run_id]
        code = subprocess.run(_as_user(prefix, user, inner,
                                       {"BENCH_QUICK": "1" if _quick() else "0"}),
                              cwd="/", check=False).returncode
    finally:
        subprocess.run(_as_user(prefix, user, [*SELF, "--cleanup", str(work), run_id]),
                       cwd="/", check=False)
        if (work / "run.json").exists():
            _report(work)
            reported = True
        shutil.rmtree(work, ignore_errors=True)
        if booted:
            subprocess.run([ORCH, "box", "down"], check=False)
    if code != 0:
        _say(f"bench: the run failed (exit {code}); "
             + ("the report says which measures" if reported else "no report written"))
    return code


def main(argv: list[str] | None = None) -> int:
    """Entry point (see the module's docstring)."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inner", nargs=2, metavar=("WORK", "RUN_ID"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--cleanup", nargs=2, metavar=("WORK", "RUN_ID"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inner:
        from bench import inner

        return inner.run(Path(args.inner[0]), args.inner[1], quick=_quick())
    if args.cleanup:
        from bench import inner

        inner.cleanup(Path(args.cleanup[0]), args.cleanup[1])
        return 0
    return outer()


if __name__ == "__main__":
    sys.exit(main())
