"""The CLI's cold start: wall time and peak RSS of `orch --version`, of `orch ps` on an
empty state and of a shell's completion request for a session reference (what Tab after
`orch show ` runs), beside the interpreter's own floor (`python -c pass`).

Peak RSS comes from GNU time (`/usr/bin/time -f %M`, which is wait4's ru_maxrss), in
runs of their own: a child forked by the bench itself would report the bench's own RSS
at least, since Linux carries the parent's high-water mark into the child through the
fork and exec."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench.context import ORCH, PYTHON, Bench
from bench.series import COLD_START, PEAK_RSS, Contender, Series, Unit
from bench.timing import round_robin, run_child, say

GNU_TIME = Path("/usr/bin/time")


def cold_start(bench: Bench, rounds: int) -> list[Series]:
    """Each contender ROUNDS times, interleaved: wall ms; then as many runs under GNU
    time for the peak RSS in MiB (left out, with a note, where GNU time is missing)."""
    empty = bench.state("empty")
    commands: dict[str, tuple[list[str], dict[str, str]]] = {
        Contender.PYTHON: ([PYTHON, "-c", "pass"], bench.base_env()),
        Contender.VERSION: ([ORCH, "--version"], bench.orch_env(empty)),
        Contender.PS_EMPTY: ([ORCH, "ps"], bench.orch_env(empty)),
        Contender.COMPLETE_REF: ([ORCH], {**bench.orch_env(empty), "_ORCH_COMPLETE":
                                          "complete_bash", "COMP_WORDS": "orch show ",
                                          "COMP_CWORD": "2"}),
    }

    def wall(argv: list[str], env: dict[str, str]) -> Callable[[int], float]:
        return lambda index: run_child(argv, env, bench.out("cold")).wall_s * 1000

    def peak(argv: list[str], env: dict[str, str]) -> Callable[[int], float]:
        report = bench.out("rss.txt")

        def turn(index: int) -> float:
            run_child([str(GNU_TIME), "-f", "%M", "-o", str(report), *argv], env,
                      bench.out("rss"))
            return int(report.read_text().split()[-1]) / 1024
        return turn

    say(f"cold start: {rounds} rounds of {len(commands)} contenders")
    walls = round_robin({name: wall(*command) for name, command in commands.items()},
                        rounds)
    series = [Series(COLD_START, name, Unit.MS, values, reference=Contender.PYTHON)
              for name, values in walls.items()]
    if not GNU_TIME.exists():
        say(f"cold start: no {GNU_TIME} (Debian's `time`): peak RSS not measured")
        return series
    peaks = round_robin({name: peak(*command) for name, command in commands.items()},
                        rounds)
    return series + [Series(PEAK_RSS, name, Unit.MIB, values, reference=Contender.PYTHON,
                            detail={"note": "GNU time's %M (ru_maxrss)"}
                            if name == Contender.PYTHON else {})
                     for name, values in peaks.items()]
