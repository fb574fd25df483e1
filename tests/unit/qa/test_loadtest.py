"""anoncodec.qa.loadtest: the step load, per-step statistics, capacity verdict and request log."""

from __future__ import annotations

import numpy as np
import pytest

from anoncodec.errors import ConfigError
from anoncodec.qa.loadtest import (
    ALL,
    CapacityReport,
    RequestRecord,
    StepLoad,
    find_capacity,
    percentile,
    read_requests_csv,
    render_table,
    step_breached,
    summarize_steps,
    write_requests_csv,
)


def test_step_load_is_a_staircase_that_stops():
    load = StepLoad(start_users=2, step_users=2, max_users=6, step_s=10, spawn_rate=5, settle_s=2)
    assert load.n_steps == 3 and load.duration_s == 30
    assert [load.tick(t) for t in (0, 9.9, 10, 25)] == [(2, 5), (2, 5), (4, 5), (6, 5)]
    assert load.tick(30) is None and load.tick(-1) is None
    assert load.window(1) == (12, 20)
    assert StepLoad.from_dict(load.to_dict()) == load


def test_max_users_between_steps_ends_on_the_last_full_step():
    load = StepLoad(start_users=1, step_users=2, max_users=4, step_s=5, settle_s=0)
    assert [load.users(s) for s in range(load.n_steps)] == [1, 3]


@pytest.mark.parametrize("kwargs", [
    {"start_users": 0}, {"step_users": 0}, {"max_users": 1, "start_users": 2}, {"step_s": 0},
    {"spawn_rate": 0}, {"settle_s": 60, "step_s": 60}, {"settle_s": -1},
])
def test_bad_staircases_are_refused(kwargs):
    with pytest.raises(ConfigError):
        StepLoad(**kwargs)


def test_percentile_matches_numpy():
    values = [5.0, 1.0, 9.0, 3.0, 7.0, 2.0]
    for q in (0, 50, 95, 99, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    assert percentile([], 50) is None
    with pytest.raises(ConfigError):
        percentile(values, 101)


def _records():
    # step 0 (1 user, window 1..10 s): 9 fast ok requests of "a", one request before the window
    # step 1 (2 users, window 11..20 s): slow requests of "a" and "b", one failure of "b"
    recs = [RequestRecord(0.5, "a", 100.0, True)]
    recs += [RequestRecord(1.0 + i, "a", 100.0 + i, True, 10) for i in range(9)]
    recs += [RequestRecord(11.0 + 0.7 * i, "a", 900.0, True) for i in range(12)]
    recs += [RequestRecord(11.5 + i, "b", 1500.0, i != 3, 20, "" if i != 3 else "boom") for i in range(9)]
    return recs


def test_steps_are_summarized_per_name_and_pooled():
    load = StepLoad(step_s=10, max_users=2, settle_s=1)
    rows = summarize_steps(_records(), load, names=["b", "a"])
    assert [(r.step, r.name) for r in rows] == [(0, "b"), (0, "a"), (0, ALL), (1, "b"), (1, "a"), (1, ALL)]
    step0_a = rows[1]
    assert (step0_a.users, step0_a.requests, step0_a.failures) == (1, 9, 0)  # 0.5 s falls in the settle time
    assert step0_a.rps == pytest.approx(1.0) and step0_a.p50_ms == pytest.approx(104)
    assert rows[0].requests == 0 and rows[0].p95_ms is None and not rows[0].within_slo(1e9)
    assert (rows[3].requests, rows[3].failures) == (9, 1)
    assert (rows[5].requests, rows[5].failures, rows[5].users) == (21, 1, 2)


def test_capacity_is_the_busiest_step_within_the_slo():
    load = StepLoad(step_s=10, max_users=2, settle_s=1)
    rows = summarize_steps(_records(), load)
    assert find_capacity(rows, slo_ms=1000, name="a").step == 1  # 900 ms p95, busier than step 0
    assert find_capacity(rows, slo_ms=500, name="a").step == 0
    assert find_capacity(rows, slo_ms=1e9, name="b") is None  # its only step had a failure
    assert find_capacity(rows, slo_ms=1e9).step == 0  # pooled step 1 had the failure


def test_early_stop_sees_failures_and_slow_steps():
    load = StepLoad(step_s=10, max_users=2, settle_s=1)
    recs = _records()
    assert not step_breached(recs, load, 0, slo_ms=1000)
    assert step_breached(recs, load, 0, slo_ms=50)
    assert step_breached(recs, load, 1, slo_ms=1e9)  # the failure
    assert not step_breached(recs[:3], load, 0, slo_ms=50, min_requests=3)  # too few to judge


def test_an_early_stop_drops_steps_that_never_ran():
    load = StepLoad(step_s=10, max_users=4, settle_s=1)
    rows = summarize_steps(_records(), load, until_s=20)
    assert max(r.step for r in rows) == 1


def test_request_log_round_trips(tmp_path):
    path = write_requests_csv(_records(), tmp_path / "sub" / "requests.csv")
    assert read_requests_csv(path) == [RequestRecord(round(r.start_s, 6), r.name, r.latency_ms, r.ok, r.bytes, r.error)
                                       for r in _records()]  # microsecond resolution
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ConfigError, match="columns"):
        read_requests_csv(tmp_path / "other.csv")
    with pytest.raises(ConfigError, match="does not exist"):
        read_requests_csv(tmp_path / "missing.csv")


def test_report_has_totals_capacity_and_a_table():
    report = CapacityReport.build(_records(), StepLoad(step_s=10, max_users=2, settle_s=1), slo_ms=1000,
                                  names=["a", "b"], meta={"server": "x"})
    assert report.totals == {"a": (22, 0), "b": (9, 1), ALL: (31, 1)} and report.failures == 1
    assert report.capacity["b"] is None and report.capacity["a"].step == 1
    d = report.to_dict()
    assert d["capacity"]["b"] is None and d["totals"][ALL] == {"requests": 31, "failures": 1}
    text = report.markdown()
    assert "capacity `a`: **1.33 req/s** at 2 users" in text and "no step had p95" in text
    table = render_table(report.steps, 1000).splitlines()
    assert len(table) == 2 + len(report.steps) and table[0].endswith("within SLO |")


def test_a_single_ensemble_has_no_pooled_rows_but_totals():
    recs = [r for r in _records() if r.name == "a"]
    report = CapacityReport.build(recs, StepLoad(step_s=10, max_users=2, settle_s=1), slo_ms=1000)
    assert {r.name for r in report.steps} == {"a"} and set(report.capacity) == {"a"}
    assert report.totals == {"a": (22, 0), ALL: (22, 0)} and report.failures == 0


def test_step_load_flags_are_defined_once_with_steploads_defaults():
    import argparse

    from anoncodec.qa.loadtest import add_step_load_arguments, step_load_argv, step_load_from

    parser = argparse.ArgumentParser()
    add_step_load_arguments(parser.add_argument)
    assert step_load_from(parser.parse_args([])) == StepLoad()
    options = parser.parse_args(["--max-users", "6", "--step-users", "2", "--step-seconds", "12.5"])
    load = step_load_from(options)
    assert (load.max_users, load.step_users, load.step_s) == (6, 2, 12.5)
    # what load_tests/run.py hands to the locustfile parses back to the same staircase
    assert step_load_from(parser.parse_args(step_load_argv(options))) == load
