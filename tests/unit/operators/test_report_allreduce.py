"""Task 0 in the comparison report: latency and bus bandwidth per world size, not training columns."""

import pytest

from operators.report import (
    ConfigurationOutcome,
    communication_curves,
    communication_rows,
    configuration_rows,
    format_communication_table,
    format_tables,
    plot_communication,
    sweep_summary,
)
from operators.gates.report import ValidationReport
from tasks.runtime.results import SweepResult
from tests.conftest import make_sweep_result

pytestmark = pytest.mark.unit


def sweep(world_size, repeat=0, *, bandwidth=2.0, result="completed", validation=None):
    res = None if result is None else SweepResult.from_dict(
        make_sweep_result(world_size, status=result, bandwidth_gbps=bandwidth))
    return ConfigurationOutcome(
        config_id=f"allreduce__allreduce__w{world_size}__r{repeat}", task="allreduce", world_size=world_size,
        repeat=repeat, algorithm="allreduce", backend="gloo", launcher="local", output="/nowhere", result=res,
        validation=validation)


def test_rows_per_world_size_and_dtype_with_olympic_means_over_repeats():
    outcomes = [sweep(1), sweep(2, 0, bandwidth=1.0), sweep(2, 1, bandwidth=2.0), sweep(2, 2, bandwidth=100.0)]
    rows = {(r["world_size"], r["dtype"]): r for r in communication_rows(outcomes)}
    assert set(rows) == {(1, "fp32"), (1, "fp16"), (2, "fp32"), (2, "fp16")}
    w2 = rows[(2, "fp32")]
    assert w2["runs"] == 3 and w2["failed"] == 0
    assert (w2["small_message_elements"], w2["large_message_elements"]) == (1, 1000)
    # the olympic mean drops the 1 and 100 GB/s repeats: the 2 GB/s one is left
    alone = sweep(2, bandwidth=2.0).result.measurements
    largest = [m for m in alone if m.dtype == "fp32"][-1]
    assert w2["large_message_latency_ms"] == pytest.approx(largest.latency_median_s * 1e3)
    assert w2["peak_busbw_gbps"] == pytest.approx(largest.busbw_gbps) and w2["peak_busbw_elements"] == 1000
    assert w2["small_message_latency_ms"] == pytest.approx((50e-6 + 4 / 2e9) * 1e3)


def test_a_world_size_whose_runs_all_failed_still_has_a_row():
    rows = communication_rows([sweep(1), sweep(2, result="failed"), sweep(4, result=None)])
    failed = [r for r in rows if r["world_size"] in (2, 4)]
    assert [(r["dtype"], r["failed"], r["peak_busbw_gbps"]) for r in failed] == [("-", 1, None), ("-", 1, None)]
    text = format_communication_table(rows)
    assert "allreduce allreduce w2  -" in text and "0/1 ok" in text


def test_invalid_sweeps_are_left_out_of_the_curves():
    invalid = ValidationReport("s", False, ["x"])
    curves = communication_curves([sweep(2, 0, bandwidth=1.0), sweep(2, 1, bandwidth=50.0, validation=invalid)])
    only = sweep(2, bandwidth=1.0).result.measurements
    assert [p.busbw_gbps for p in curves[("allreduce", "allreduce", 2, "fp32")]] == pytest.approx(
        [m.busbw_gbps for m in only if m.dtype == "fp32"])


def test_table_shows_latency_and_bandwidth_with_sizes():
    text = format_communication_table(communication_rows([sweep(1), sweep(2)]))
    header = text.splitlines()[0]
    assert "small-message latency" in header and "peak busbw" in header and "time to accuracy" not in header
    assert "GB/s @ 1,000" in text and "ms @ 1" in text


def test_a_mixed_run_reports_a_table_per_kind(tmp_path):
    training = ConfigurationOutcome(config_id="c", task="cifar10-resnet20", world_size=1, repeat=0,
                                    algorithm="allreduce", backend="gloo", launcher="local", output="/x")
    text = format_tables([training, sweep(1)])
    assert "time to accuracy" in text and "peak busbw" in text
    assert "time to accuracy" not in format_tables([sweep(1)])


def test_configuration_rows_carry_the_headline_figures():
    (row,) = configuration_rows([sweep(2)], {"allreduce__allreduce__w2__r0": "abc"})
    assert row["run_id"] == "abc" and "tta_s" not in row and "goal_reached" not in row
    assert row == {**row, **sweep_summary(sweep(2).result)}
    assert set(sweep_summary(sweep(2).result)) == {
        "small_message_latency_ms_fp32", "peak_busbw_gbps_fp32",
        "small_message_latency_ms_fp16", "peak_busbw_gbps_fp16"}


def test_comparison_plot(tmp_path):
    data = plot_communication([sweep(1), sweep(2), sweep(4, result="failed")], tmp_path / "ar.png").read_bytes()
    assert data[:4] == b"\x89PNG" and len(data) > 1000
    assert plot_communication([], tmp_path / "none.png").exists()


def test_a_run_comparing_backends_keeps_them_apart(tmp_path):
    def on(backend, world_size, bandwidth):
        outcome = sweep(world_size, bandwidth=bandwidth)
        outcome.backend, outcome.compares_backends = backend, True
        outcome.config_id = f"allreduce__allreduce__{backend}__w{world_size}__r0"
        return outcome

    outcomes = [on("gloo", 2, 1.0), on("nccl", 2, 50.0)]
    rows = {(r["algorithm"], r["dtype"]): r for r in communication_rows(outcomes)}
    assert set(rows) == {("allreduce-gloo", "fp32"), ("allreduce-gloo", "fp16"),
                         ("allreduce-nccl", "fp32"), ("allreduce-nccl", "fp16")}
    assert rows[("allreduce-nccl", "fp32")]["peak_busbw_gbps"] > rows[("allreduce-gloo", "fp32")]["peak_busbw_gbps"]
    assert rows[("allreduce-gloo", "fp32")]["backend"] == "gloo"
    assert "allreduce allreduce-nccl w2" in format_communication_table(list(rows.values()))
    assert plot_communication(outcomes, tmp_path / "plot.png").stat().st_size > 10_000


def test_the_runs_table_view_shows_each_swept_dtypes_headline_figures():
    from operators.report import communication

    params, metrics = communication.table_columns([sweep(2), sweep(4, result=None)])
    assert params == ["world_size", "algorithm"]
    assert metrics == sorted(sweep_summary(sweep(2).result)) + ["wall_time_s"]
    logged = {name for name, *_ in communication.child_metrics(sweep(2).result)}
    assert set(metrics) <= logged
