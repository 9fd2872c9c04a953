"""Series and watched metrics: a failed or non-converging night is the worst point, not a gap."""

import math

import pytest

from operators.regressions.series import TRAINING_METRICS, LoggedRun, points, sweep_metrics

pytestmark = pytest.mark.unit
WATCHED = {m.name: m for m in TRAINING_METRICS}


def run(start, *, succeeded=True, goal=True, **metrics):
    return LoggedRun(run_id=f"r{start}", dag_run_id=f"night{start}", start_ms=start, succeeded=succeeded,
                     goal_reached=goal, metrics=metrics, git_sha=f"sha{start}")


def test_a_night_that_missed_its_target_is_the_worst_time_not_a_gap():
    runs = [run(2, goal=False, time_to_accuracy_s=1.0), run(1, time_to_accuracy_s=10.0),
            run(3, succeeded=False)]
    values = [p.value for p in points(runs, WATCHED["time_to_accuracy_s"])]
    assert values == [10.0, math.inf, math.inf]  # oldest first
    assert [p.value for p in points(runs, WATCHED["hit_rate"])] == [1.0, 0.0, 0.0]


def test_higher_is_better_metrics_are_worst_at_minus_infinity_and_derived_ones_need_their_inputs():
    runs = [run(1, throughput_samples_per_s=500.0, compute_s=3.0, communication_s=1.0), run(2, succeeded=False)]
    assert [p.value for p in points(runs, WATCHED["throughput_samples_per_s"])] == [500.0, -math.inf]
    assert [p.value for p in points(runs, WATCHED["comm_share"])] == [0.25]  # no share for a failed run
    assert WATCHED["throughput_samples_per_s"].direction == "higher" and WATCHED["comm_share"].direction == "lower"


def test_task_0_watches_bandwidth_and_latency_per_dtype():
    watched = {m.name: m.direction for m in sweep_metrics(("fp32",))}
    assert watched == {"peak_busbw_gbps_fp32": "higher", "small_message_latency_ms_fp32": "lower"}
    failed = run(1, succeeded=False, goal=None)
    assert [p.value for p in points([failed], sweep_metrics(("fp32",))[1])] == [math.inf]
