"""The report of a run: a markdown table and the same data as JSON (raw samples
included), with each goal's verdict. Pure: text in, text out."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from bench import stats
from bench.goals import Verdict
from bench.series import Run, Series, Unit, encode

COLUMNS = ("measure", "contender", "n", "median", "p95", "ratio to the reference", "goal",
           "met")


def format_value(value: float, unit: Unit) -> str:
    """VALUE in UNIT, with a precision that suits its size."""
    if abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}"


def format_ratio(value: float | None) -> str:
    """A ratio as the table shows it: 1.23x."""
    if value is None:
        return "-"
    return f"{value:.2f}x" if value < 10 else f"{value:.1f}x"


def reference_ratio(series: Series, run: Run) -> float | None:
    """SERIES' median over its reference's median in the same run (None: no reference,
    the series is the reference itself, or the reference has no samples)."""
    if series.reference is None:
        return None
    if series.reference == series.contender:
        return 1.0
    reference = run.find(series.measure, series.reference)
    if reference is None or not reference.samples or not series.samples:
        return None
    return stats.ratio(stats.median(series.samples), stats.median(reference.samples))


def _goal_cells(series: Series, verdicts: Sequence[Verdict]) -> tuple[str, str]:
    mine = [v for v in verdicts
            if v.goal.measure == series.measure and v.goal.contender == series.contender]
    if not mine:
        return "", ""
    goal = "; ".join(v.goal.short() for v in mine)
    if any(v.met is False for v in mine):
        met = "**no**"
    elif all(v.met for v in mine):
        met = "yes"
    else:
        met = "n/a"
    return goal, met


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def _verdict_value(verdict: Verdict, run: Run) -> str:
    if verdict.value is None:
        return "not measured"
    goal = verdict.goal
    if goal.kind.is_ratio:
        return format_ratio(verdict.value)
    series = run.find(goal.measure, goal.contender)
    return format_value(verdict.value, series.unit if series else Unit.MS)


def markdown(run: Run, verdicts: Sequence[Verdict], floors: Sequence[Verdict] = ()) -> str:
    """The report as markdown: the machine on the first line, then the table, then
    each goal with what was measured for it."""
    lines = [f"Machine: {run.machine.describe()}", ""]
    kind = "reduced run (BENCH_QUICK=1)" if run.quick else "full run"
    if run.failures:
        kind += f" in which {len(run.failures)} measure(s) FAILED (see the end)"
    lines += [f"{kind}, {run.duration_s:.0f} s; contenders interleaved round-robin (order "
              "balanced across rounds); ratio = median / the reference's median in the same "
              "run; how each contender is timed: bench/README.md.", ""]
    lines.append("| " + " | ".join(COLUMNS) + " |")
    lines.append("|" + "|".join("---" for _ in COLUMNS) + "|")
    for series in run.series:
        if not series.samples:
            continue
        summary = stats.Summary.of(series.samples)
        ratio = reference_ratio(series, run)
        reference = "" if series.reference in (None, series.contender) \
            else f" {series.reference}"
        goal, met = _goal_cells(series, verdicts)
        cells = [series.measure, series.contender, str(summary.n),
                 format_value(summary.median, series.unit),
                 format_value(summary.p95, series.unit),
                 (format_ratio(ratio) + reference) if ratio is not None else "-",
                 goal, met]
        lines.append("| " + " | ".join(_escape(c) for c in cells) + " |")
    lines += ["", "Goals (from the issue; ratios of medians from this run):", ""]
    for verdict in verdicts:
        aim = verdict.goal
        lines.append(f"- {verdict.says().upper()}: {aim.text} — measured "
                     f"{_verdict_value(verdict, run)} ({aim.short()}, on {aim.measure})")
    if floors:
        lines += ["", "Floors (not goals: bench/floor.py, a fresh Python process that loads "
                  "only pystemd's D-Bus layer and makes the one call; '+ JSON state' also "
                  "loads json, keeps a locked, durable JSON record before the start, or reads "
                  "the JSON records and prints the listing as JSON. Held against the same "
                  "limits: where one misses a limit, no Python CLI on pystemd that does that "
                  "much meets it here):", ""]
        for verdict in floors:
            aim = verdict.goal
            within = {None: "N/A", True: "WITHIN", False: "BEYOND"}[verdict.met]
            lines.append(f"- {within}: {aim.text} — measured {_verdict_value(verdict, run)} "
                         f"({aim.short()}, on {aim.measure})")
    notes: dict[tuple[str, str], list[str]] = {}
    for series in run.series:
        if series.detail.get("note"):
            notes.setdefault((series.contender, str(series.detail["note"])), []).append(
                series.measure)
    if notes:
        lines += ["", "Notes:", ""]
        lines += [f"- {contender} ({'; '.join(measures)}): {note}"
                  for (contender, note), measures in notes.items()]
    if run.failures:
        lines += ["", "Failed measures (their series are missing above):", ""]
        lines += [f"- {failure}" for failure in run.failures]
    return "\n".join(lines) + "\n"


def _verdicts_json(verdicts: Sequence[Verdict]) -> list[dict[str, Any]]:
    return [{"goal": v.goal.text, "measure": v.goal.measure,
             "contender": v.goal.contender, "reference": v.goal.reference,
             "kind": str(v.goal.kind), "stat": str(v.goal.stat),
             "limit": v.goal.limit, "value": v.value, "met": v.met}
            for v in verdicts]


def as_json(run: Run, verdicts: Sequence[Verdict], floors: Sequence[Verdict] = ()) -> str:
    """The report as JSON: the run (raw samples included), each series' summary and
    ratio, and each goal's verdict."""
    data: dict[str, Any] = encode(run)
    data["machine_line"] = run.machine.describe()
    for item, series in zip(data["series"], run.series, strict=True):
        if series.samples:
            summary = stats.Summary.of(series.samples)
            item["summary"] = {"n": summary.n, "median": summary.median, "p95": summary.p95,
                               "min": summary.minimum, "max": summary.maximum}
        item["ratio_to_reference"] = reference_ratio(series, run)
    data["goals"] = _verdicts_json(verdicts)
    data["floors"] = _verdicts_json(floors)
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"
