"""500 live sessions in one user manager, run inside the box as their owner (see
test_load.py): spawned through the library, then ps, show, recover and reap through the
CLI, each timed; and, in the same run, the per-unit loop and `list-units` that the
benchmark holds `orch ps` against. Prints one JSON document.
Usage: load_run.py COUNT"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import orch
from orch.scope import Scope
from orch.systemd import Manager

ORCH = str(Path(sys.executable).parent / "orch")


def timed(argv: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    return time.perf_counter() - start, done


def main() -> None:
    count = int(sys.argv[1])
    label = f"load{time.monotonic_ns() % 100_000}"
    ids = [orch.spawn(["sleep", "600"], name=label).id for _ in range(count)]
    result: dict[str, object] = {"spawned": len(ids)}
    ps_s, ps = timed([ORCH, "ps", "--json"])
    listed = json.loads(ps.stdout) if ps.returncode == 0 else []
    result["ps_s"], result["ps_running"] = ps_s, sum(s["status"] == "running" for s in listed)
    units = [s["unit"] for s in listed]
    list_s, _ = timed(["systemctl", "--user", "list-units", f"orch-{label}-*"])
    loop_start = time.perf_counter()
    for unit in units:
        subprocess.run(["systemctl", "--user", "show", "-p", "MainPID", "-p", "ActiveState",
                        unit], capture_output=True, check=True)
    result["loop_s"], result["list_units_s"] = time.perf_counter() - loop_start, list_s
    show_s, show = timed([ORCH, "show", "--json", ids[count // 2]])
    result["show_s"] = show_s
    result["show_status"] = json.loads(show.stdout)["status"] if show.returncode == 0 else None
    recover_s, recover = timed([ORCH, "recover", "--json"])
    result["recover_s"], result["recover_exit"] = recover_s, recover.returncode
    if recover.returncode == 0:
        result["recover_counts"] = json.loads(recover.stdout)["counts"]
    reap_s, reap = timed([ORCH, "reap", "--all", "--older-than", "0"])
    result["reap_s"], result["reaped"] = reap_s, len(reap.stdout.split())
    with Manager(Scope.USER) as manager:
        result["units_left"] = len(manager.loaded(f"orch-{label}-*"))
    result["records_left"] = len(orch.list_sessions())
    result["errors"] = [d.stderr for d in (ps, show, recover, reap) if d.returncode != 0]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
