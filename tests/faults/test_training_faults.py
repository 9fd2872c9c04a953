"""A run that diverges, through the pipeline's launch step: failed with its reason, and failed for
good (a retry would diverge the same way)."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.faults


def test_a_diverging_configuration_fails_for_good_with_its_reason(tmp_path, data_root, monkeypatch, measured):
    """Promise: NaN loss: the configuration is failed with `diverged: ...`, and the launch task
    raises AirflowFailException (no retry), not a retryable error."""
    from airflow.sdk.exceptions import AirflowFailException

    from operators import steps
    from operators.launch import launch_configuration
    from operators.planning import Configuration

    monkeypatch.setenv("MLBENCH_HOME", str(tmp_path))
    monkeypatch.setenv("MLBENCH_DATA_ROOT", str(data_root))
    run_id = "manual__2026-11-30T12:00:00+00:00"
    request = steps.validate_request_step(
        {"preset": "smoke", "world_sizes": [2], "overrides": {"optimizer.lr": "1e6"}}, run_id)
    steps.prepare_data_step(request, run_id)
    (planned,) = steps.plan_step(request, run_id)
    started = time.monotonic()
    summary = launch_configuration(Configuration.from_dict(planned), run_timeout_s=300, rendezvous_timeout_s=60)
    failed_after_s = time.monotonic() - started
    assert summary.status == "failed" and summary.reason.startswith("diverged: training loss is nan")
    assert not summary.retryable
    with pytest.raises(AirflowFailException, match="diverged"):
        summary.as_task_result()
    measured("NaN loss", outcome="failed for good (AirflowFailException), reason kept",
             failed_after_s=round(failed_after_s, 2))
