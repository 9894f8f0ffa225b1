"""The bench's pure parts: statistics, turn orders, goal verdicts and the report."""

from __future__ import annotations

import itertools
import json
import math
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # bench/ is a directory of the checkout, not installed
    sys.path.insert(0, str(ROOT))

from bench import goals, report, stats  # noqa: E402
from bench.series import (  # noqa: E402
    GOAL_N,
    HISTORY_PS,
    HISTORY_SPAWN,
    LIST_WITH_HISTORY,
    SLEEP,
    SPAWN_WITH_HISTORY,
    TRUE,
    WAIT_AFTER_INACTIVE,
    Contender,
    Machine,
    Run,
    Series,
    Unit,
    dumps,
    listing_at,
    loads,
    spawn_latency,
    with_history,
)
from bench.timing import balanced_orders  # noqa: E402

MACHINE = Machine(date="2025-01-01 00:00 UTC", cpu="Test CPU", cores=2, ram_gib=4.0,
                  kernel="6.1.0", systemd="systemd 252", python="3.11.2", orch="0.1.0")


def test_median_odd_and_even() -> None:
    assert stats.median([3.0, 1.0, 2.0]) == 2.0
    assert stats.median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert stats.median([7.0]) == 7.0


def test_percentile_is_nearest_rank() -> None:
    samples = [float(x) for x in range(1, 21)]  # 1..20
    assert stats.p95(samples) == 19.0  # ceil(0.95 * 20) = 19th smallest
    assert stats.percentile(samples, 50) == 10.0
    assert stats.percentile(samples, 100) == 20.0
    assert stats.percentile(samples, 1) == 1.0
    assert stats.p95([5.0]) == 5.0
    # Ten samples: the 95th percentile is the largest (rank ceil(9.5) = 10).
    assert stats.p95([float(x) for x in range(10)]) == 9.0


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=1),
       st.floats(min_value=0.5, max_value=100))
def test_percentile_is_a_sample_with_enough_below(samples: list[float], pct: float) -> None:
    value = stats.percentile(samples, pct)
    assert value in samples
    at_most = sum(1 for s in samples if s <= value)
    below = sum(1 for s in samples if s < value)
    assert at_most >= math.ceil(pct / 100 * len(samples)) - 1e-9
    assert below < math.ceil(pct / 100 * len(samples))


def test_statistics_refuse_nothing() -> None:
    with pytest.raises(ValueError):
        stats.median([])
    with pytest.raises(ValueError):
        stats.p95([])
    with pytest.raises(ValueError):
        stats.percentile([1.0], 0)


def test_ratio() -> None:
    assert stats.ratio(3.0, 2.0) == 1.5
    assert stats.ratio(1.0, 0.0) is None


def test_summary() -> None:
    summary = stats.Summary.of([1.0, 2.0, 3.0, 4.0])
    assert (summary.n, summary.median, summary.p95, summary.minimum, summary.maximum) == (
        4, 2.5, 4.0, 1.0, 4.0)


@pytest.mark.parametrize("count", range(1, 9))
def test_orders_are_balanced(count: int) -> None:
    orders = balanced_orders(count)
    assert all(sorted(order) == list(range(count)) for order in orders)
    follows = Counter((a, b) for order in orders for a, b in itertools.pairwise(order))
    assert len(follows) == count * (count - 1)  # every item right after every other...
    assert len(set(follows.values())) <= 1  # ...equally often


def _series(measure: str, contender: str, samples: list[float],
            reference: str | None = Contender.RAW, unit: Unit = Unit.MS) -> Series:
    return Series(measure, contender, unit, samples, reference=reference)


def _run(*series: Series) -> Run:
    return Run(machine=MACHINE, quick=False, duration_s=1.0, series=list(series))


def _verdict(run: Run, text: str, measure: str) -> goals.Verdict:
    [verdict] = [v for v in goals.verdicts(run)
                 if v.goal.text.startswith(text) and v.goal.measure == measure]
    return verdict


def test_ratio_goal_met_and_missed() -> None:
    true = spawn_latency(TRUE)
    run = _run(_series(true, Contender.RAW, [10.0, 10.0, 10.0]),
               _series(true, Contender.LIB, [12.0, 13.0, 99.0]),
               _series(true, Contender.SYSTEMD_RUN, [20.0]),
               _series(true, Contender.CLI, [61.0]))
    lib = _verdict(run, "library spawn", true)
    assert lib.met is True and lib.value == pytest.approx(1.3)
    cli = _verdict(run, "`orch spawn` CLI", true)
    assert cli.met is False and cli.value == pytest.approx(3.05)
    # Without its series, a goal is not measured rather than met.
    assert _verdict(run, "library spawn", spawn_latency(SLEEP)).met is None


def test_faster_goal_and_absolute_goal() -> None:
    listing = listing_at(GOAL_N)
    run = _run(_series(listing, Contender.PS, [100.0], reference=Contender.LIST_UNITS),
               _series(listing, Contender.LIST_UNITS, [40.0], reference=Contender.LIST_UNITS),
               _series(listing, Contender.SHOW_LOOP, [1900.0], reference=Contender.LIST_UNITS),
               _series(WAIT_AFTER_INACTIVE, Contender.WAIT, [5.0] * 19 + [80.0],
                       reference=None))
    faster = _verdict(run, "`orch ps` at 1000 >= 20", listing)
    assert faster.met is False and faster.value == pytest.approx(19.0)
    times = _verdict(run, "`orch ps` at 1000 <= 3", listing)
    assert times.met is True and times.value == pytest.approx(2.5)
    # p95 of 20 samples is the 19th smallest: the one slow return does not count...
    assert _verdict(run, "wait returns", WAIT_AFTER_INACTIVE).met is True
    # ...two do.
    slower = _run(_series(WAIT_AFTER_INACTIVE, Contender.WAIT, [5.0] * 18 + [80.0, 80.0],
                          reference=None))
    assert _verdict(slower, "wait returns", WAIT_AFTER_INACTIVE).met is False


def test_markdown_report() -> None:
    true = spawn_latency(TRUE)
    run = _run(_series(true, Contender.RAW, [5.0, 6.0]),
               _series(true, Contender.LIB, [9.0, 10.0]))
    text = report.markdown(run, goals.verdicts(run))
    lines = text.splitlines()
    assert lines[0].startswith("Machine: 2025-01-01 00:00 UTC")
    for part in ("Test CPU", "2 cores", "4.0 GiB", "6.1.0", "systemd 252", "3.11.2",
                 "orch 0.1.0"):
        assert part in lines[0]
    assert "| measure | contender | n | median | p95 | ratio to the reference | goal | met |" \
        in lines
    [lib] = [line for line in lines if "orch.spawn (library)" in line and line.startswith("|")]
    cells = [c.strip() for c in lib.strip("|").split("|")]
    assert cells[2:] == ["2", "9.50 ms", "10.0 ms", "1.73x raw StartTransientUnit",
                         "≤ 1.3x raw StartTransientUnit", "**no**"]
    assert any(line.startswith("- NO: library spawn") for line in lines)
    assert any(line.startswith("- N/A: `orch recover`") for line in lines)


def test_json_report_keeps_raw_samples() -> None:
    true = spawn_latency(TRUE)
    run = _run(_series(true, Contender.RAW, [5.0, 6.0]),
               _series(true, Contender.LIB, [9.0, 10.0]))
    data = json.loads(report.as_json(run, goals.verdicts(run)))
    lib = data["series"][1]
    assert lib["samples"] == [9.0, 10.0]
    assert lib["summary"]["median"] == 9.5
    assert lib["ratio_to_reference"] == pytest.approx(9.5 / 5.5)
    assert data["machine"]["cores"] == 2
    assert {g["met"] for g in data["goals"]} == {False, None}


def test_run_round_trips_and_rejects_unknown_fields() -> None:
    run = _run(_series(spawn_latency(TRUE), Contender.RAW, [1.0], reference=None))
    assert loads(dumps(run)) == run
    data = json.loads(dumps(run))
    data["series"][0]["extra"] = 1
    with pytest.raises(ValueError, match="unknown field 'extra'"):
        loads(json.dumps(data))


def test_values_and_ratios_format() -> None:
    assert report.format_value(1234.5, Unit.MS) == "1234 ms"
    assert report.format_value(12.345, Unit.RATE) == "12.3 sessions/s"
    assert report.format_value(0.5, Unit.MIB) == "0.50 MiB"
    assert report.format_ratio(1.234) == "1.23x"
    assert report.format_ratio(23.45) == "23.4x"
    assert report.format_ratio(None) == "-"


def test_a_failed_measure_is_reported() -> None:
    run = Run(machine=MACHINE, quick=True, duration_s=1.0, series=[],
              failures=["CLI throughput: ChildFailed: orch spawn exited 3"])
    text = report.markdown(run, goals.verdicts(run))
    assert "1 measure(s) FAILED" in text.splitlines()[2]
    assert "- CLI throughput: ChildFailed: orch spawn exited 3" in text
    assert loads(dumps(run)).failures == run.failures


def test_floors_hold_the_floor_contender_to_the_goals_limits() -> None:
    sleep, listing = spawn_latency(SLEEP), listing_at(GOAL_N)
    run = _run(_series(sleep, Contender.SYSTEMD_RUN, [10.0, 10.0]),
               _series(sleep, Contender.FLOOR_START, [31.0, 31.0]),
               _series(sleep, Contender.CLI, [29.0]),
               _series(listing, Contender.LIST_UNITS, [10.0], reference=Contender.LIST_UNITS),
               _series(listing, Contender.FLOOR_LIST, [25.0], reference=Contender.LIST_UNITS),
               _series(listing, Contender.FLOOR_LIST_JSON, [32.0],
                       reference=Contender.LIST_UNITS))
    floors = {(v.goal.measure, v.goal.contender): v for v in goals.floor_verdicts(run)}
    start = floors[(sleep, Contender.FLOOR_START)]
    assert start.met is False and start.value == pytest.approx(3.1)
    assert start.goal.limit == 3.0 and start.goal.reference == Contender.SYSTEMD_RUN
    assert floors[(listing, Contender.FLOOR_LIST)].met is True
    assert floors[(spawn_latency(TRUE), Contender.FLOOR_START)].met is None
    with_json = floors[(listing, Contender.FLOOR_LIST_JSON)]
    assert with_json.met is False and with_json.value == pytest.approx(3.2)
    assert floors[(sleep, Contender.FLOOR_START_JSON)].met is None  # not in this run
    # The goals themselves still judge orch, not the floor.
    assert _verdict(run, "`orch spawn` CLI", sleep).met is True
    text = report.markdown(run, goals.verdicts(run), goals.floor_verdicts(run))
    assert any(line.startswith(f"- BEYOND: {Contender.FLOOR_START}, against the limit of: "
                               "`orch spawn` CLI") for line in text.splitlines())
    assert any(line.startswith(f"- WITHIN: {Contender.FLOOR_LIST}")
               for line in text.splitlines())
    data = json.loads(report.as_json(run, goals.verdicts(run), goals.floor_verdicts(run)))
    assert [f["met"] for f in data["floors"]] == [None, False, True, None, None, False]


def test_start_up_budgets_are_ratios_to_the_floor_with_json_state() -> None:
    true, sleep, listing = spawn_latency(TRUE), spawn_latency(SLEEP), listing_at(GOAL_N)
    run = _run(_series(true, Contender.FLOOR_START_JSON, [50.0, 50.0]),
               _series(true, Contender.SYSTEMD_RUN, [10.0]),  # not the budget's reference
               _series(true, Contender.CLI, [62.0, 63.0]),
               _series(sleep, Contender.FLOOR_START_JSON, [50.0]),
               _series(sleep, Contender.CLI, [63.0]),
               _series(listing, Contender.FLOOR_LIST_JSON, [30.0], reference=Contender.LIST_UNITS),
               _series(listing, Contender.PS, [46.0], reference=Contender.LIST_UNITS))
    cli = _verdict(run, "budget: `orch spawn` CLI <= 1.25", true)
    assert cli.goal.reference == Contender.FLOOR_START_JSON
    assert cli.met is True and cli.value == pytest.approx(1.25)
    slow = _verdict(run, "budget: `orch spawn` CLI <= 1.25", sleep)
    assert slow.met is False and slow.value == pytest.approx(1.26)
    ps = _verdict(run, "budget: `orch ps --json` at 1000 <= 1.5", listing)
    assert ps.met is False and ps.value == pytest.approx(46.0 / 30.0)
    # The floor's listing at a smaller N does not stand in for N = 1000.
    smaller = _run(_series(listing_at(100), Contender.FLOOR_LIST_JSON, [30.0]),
                   _series(listing_at(100), Contender.PS, [31.0]))
    assert _verdict(smaller, "budget: `orch ps --json` at 1000", listing).met is None


def test_flat_cost_goals_compare_with_the_same_command_on_no_history() -> None:
    spawn_none = with_history(Contender.CLI, 0)
    spawn_full = with_history(Contender.CLI, HISTORY_SPAWN)
    ps_none = with_history(Contender.PS_RUNNING, 0)
    ps_full = with_history(Contender.PS_RUNNING, HISTORY_PS)
    run = _run(_series(SPAWN_WITH_HISTORY, spawn_none, [100.0, 90.0, 110.0],
                       reference=spawn_none),
               _series(SPAWN_WITH_HISTORY, spawn_full, [120.0, 119.0, 121.0],
                       reference=spawn_none),
               _series(LIST_WITH_HISTORY, ps_none, [80.0], reference=ps_none),
               _series(LIST_WITH_HISTORY, ps_full, [720.0], reference=ps_none))
    spawn = _verdict(run, "budget: `orch spawn` with 1000 ended sessions", SPAWN_WITH_HISTORY)
    assert spawn.goal.contender == spawn_full and spawn.goal.reference == spawn_none
    assert spawn.met is True and spawn.value == pytest.approx(1.2)
    ps = _verdict(run, "budget: `orch ps --running` with 10000 ended sessions", LIST_WITH_HISTORY)
    assert ps.met is False and ps.value == pytest.approx(9.0)
    # Without the run on no history there is nothing to hold the goal against.
    alone = _run(_series(SPAWN_WITH_HISTORY, spawn_full, [120.0], reference=spawn_none))
    assert _verdict(alone, "budget: `orch spawn` with 1000", SPAWN_WITH_HISTORY).met is None
    lines = report.markdown(run, goals.verdicts(run)).splitlines()
    [row] = [line for line in lines if line.startswith(f"| {LIST_WITH_HISTORY} | {ps_full} |")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[5:] == [f"9.00x {ps_none}", f"≤ 1.2x {ps_none}", "**no**"]
    assert any(line.startswith("- YES: budget: `orch spawn` with 1000 ended sessions")
               for line in lines)


def test_history_copies_an_ended_record_under_new_ids() -> None:
    from bench.history import ended_copies
    from orch.session import Record
    from orch.units import unit_name

    ended = Record(id="0b5a1c2e-1111-4222-8333-444455556666", name="true",
                   unit=unit_name("true", "0b5a1c2e-1111-4222-8333-444455556666"),
                   scope="user", argv=["/bin/true"], cwd="/", created_at="2025-01-01T00:00:00Z",
                   ended_at="2025-01-01T00:00:01Z", exit_code=0, result="success")
    copies = ended_copies(ended, 50)
    assert len({c.id for c in copies}) == 50 and ended.id not in {c.id for c in copies}
    assert all(c.unit == unit_name("true", c.id) for c in copies)
    assert all(c.ending() == ended.ending() and c.argv == ended.argv for c in copies)
    with pytest.raises(ValueError, match="no ending"):
        ended_copies(Record(id=ended.id, name="x", unit=ended.unit, scope="user",
                            argv=["/bin/true"], cwd="/"), 1)
