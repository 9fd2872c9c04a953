"""Verdicts per configuration: every repeat of the judged night is judged together, the latest
night is shown against the nights just before it, and the report reads back as written."""

import math
import random

import pytest

from operators.regressions.compare import RegressionReport, judge, night_label
from operators.regressions.detector import DetectorSettings
from operators.regressions.series import TRAINING_METRICS, LoggedRun, SeriesKey

pytestmark = pytest.mark.unit
DAY_MS = 86_400_000
KEY = SeriesKey("cifar10-resnet20", "abc123", "cpu", "EPYC")


def night(index, tta, *, repeat=0, succeeded=True, goal=True):
    return LoggedRun(run_id=f"n{index}r{repeat}", dag_run_id=f"scheduled__{index}", start_ms=index * DAY_MS,
                     succeeded=succeeded, goal_reached=goal, git_sha=f"sha{index}",
                     metrics={"time_to_accuracy_s": tta, "epochs_run": 5.0})


def judged(runs, last):
    watched = tuple(m for m in TRAINING_METRICS if m.name in {"time_to_accuracy_s", "epochs_to_target"})
    verdicts, trends = judge("cifar10-resnet20__allreduce__w2", [r for r in runs if r.dag_run_id == last], KEY,
                             runs, watched, DetectorSettings())
    return {v.metric: v for v in verdicts}, trends


def test_a_night_with_two_repeats_is_one_verdict_naming_both_runs():
    rng = random.Random(1)
    runs = [night(i, 100 * (1 + rng.gauss(0, 0.02))) for i in range(1, 25)]
    runs += [night(24, 101.0, repeat=1)]
    verdicts, _ = judged(runs, "scheduled__24")
    tta = verdicts["time_to_accuracy_s"]
    assert tta.status == "ok" and tta.run_ids == ("n24r0", "n24r1") and tta.nights == 24
    assert tta.latest_value == pytest.approx((runs[23].metrics["time_to_accuracy_s"] + 101.0) / 2)
    assert tta.vs_recent_pct is not None and abs(tta.vs_recent_pct) < 10
    assert "vs the median of the nights before" in tta.line()


def test_a_slower_tail_is_a_regression_with_its_commits_and_the_report_round_trips(tmp_path):
    runs = [night(i, 100.0 + (i % 3)) for i in range(1, 21)] + [night(i, 130.0 + (i % 2)) for i in (21, 22, 23)]
    verdicts, trends = judged(runs, "scheduled__23")
    tta = verdicts["time_to_accuracy_s"]
    assert tta.is_regression and tta.magnitude_pct == pytest.approx(29.7, abs=1)
    assert (tta.commit_before, tta.commit_after) == ("sha20", "sha21")
    assert tta.first_seen == night_label(21 * DAY_MS) == "1970-01-22T00:00:00.000+00:00"
    assert verdicts["epochs_to_target"].status == "ok"
    report = RegressionReport(list(verdicts.values()), trends)
    assert RegressionReport.read(report.write(tmp_path).parent) == report
    assert "Regressions: 1 in 1 configuration(s) x 2 metric(s)" in report.section()
    assert "regression" in report.section() and "sha20 -> sha21" in report.section()
    assert [t["metric"] for t in report.trends_of("cifar10-resnet20__allreduce__w2")] == [
        "time_to_accuracy_s", "epochs_to_target"]


def test_a_failed_night_is_written_as_strict_json(tmp_path):
    runs = [night(i, 100.0 + (i % 3)) for i in range(1, 20)] + [night(20, 0.0, succeeded=False)]
    verdicts, trends = judged(runs, "scheduled__20")
    tta = verdicts["time_to_accuracy_s"]
    assert tta.is_regression and math.isinf(tta.latest_value) and tta.vs_recent_pct is None
    text = RegressionReport(list(verdicts.values()), trends).write(tmp_path).read_text()
    assert "Infinity" not in text and "NaN" not in text
    assert RegressionReport.read(tmp_path).verdicts[0].latest_value is None


def test_a_metric_the_judged_night_did_not_log_is_not_judged():
    runs = [night(i, 100.0) for i in range(1, 20)]
    runs.append(LoggedRun("n20r0", "scheduled__20", 20 * DAY_MS, True, True, {"epochs_run": 5.0}, "sha20"))
    verdicts, _ = judged(runs, "scheduled__20")
    assert set(verdicts) == {"epochs_to_target"}
