import csv
import dataclasses
import io
import subprocess
import sys
from pathlib import Path

import pytest

from operators.gates.report import ValidationReport
from operators.report import (
    ConfigurationOutcome,
    comparison_rows,
    configuration_rows,
    format_table,
    mlperf_score,
    olympic_mean,
    plot_time_split,
    to_csv,
    to_markdown,
)
from tasks.plots import plot_curves, plot_scaling
from tasks.runtime.history import EpochRecord
from tasks.runtime.results import Target
from tests.conftest import make_training_record

pytestmark = pytest.mark.unit

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def result(world_size, tta, *, compute=1.0, communication=0.0, status="completed", algorithm="allreduce"):
    """A run's result with the figures the comparison reads (plotting reads a few more)."""
    reached = status == "completed" and tta is not None
    return make_training_record(
        world_size,
        status=status,
        reason=None if status == "completed" else "diverged: training loss is nan at epoch 1",
        task="t",
        algorithm=algorithm,
        reference_implementation=algorithm == "allreduce",
        goal_reached=reached,
        time_to_accuracy_s=tta,
        wall_time_to_accuracy_s=None if tta is None else tta + 1.0,
        train_time_s=compute + communication + 0.1,
        compute_s=compute,
        communication_s=communication,
        target=Target("top1", "max", 0.9),
        history=[
            EpochRecord(epoch=e, lr=0.1, train_loss=2.0 / e, validation_metric=0.3 * e, validation_loss=2.5 / e,
                        epoch_time_s=1.0, train_time_s=1.0, cumulative_train_time_s=float(e))
            for e in (1, 2, 3)
        ],
    )


def outcome(world_size, repeat, res, *, algorithm="allreduce", task="t", validation=None, failure_reason=None):
    return ConfigurationOutcome(
        config_id=f"{task}-{algorithm}-w{world_size}-r{repeat}", task=task, world_size=world_size,
        repeat=repeat, algorithm=algorithm, backend="gloo", launcher="local", output=f"/runs/w{world_size}",
        result=res, validation=validation, failure_reason=failure_reason)


@pytest.fixture
def scaling_outcomes():
    return [
        outcome(1, 0, result(1, 10.0, compute=8.0, communication=0.0)),
        outcome(1, 1, result(1, 14.0, compute=10.0, communication=0.0)),
        outcome(1, 2, result(1, 12.0, compute=9.0, communication=0.0)),
        outcome(2, 0, result(2, 7.0, compute=5.0, communication=2.0)),
        outcome(2, 1, result(2, 8.0, compute=4.0, communication=3.0)),
        outcome(2, 2, result(2, None, compute=6.0, communication=9.0)),  # target not reached
    ]


def test_olympic_mean_drops_the_fastest_and_slowest_of_five():
    assert olympic_mean([10.0, 1.0, 2.0, 3.0, 100.0]) == pytest.approx(5.0)  # mean of 2, 3, 10


def test_olympic_mean_of_three_is_the_median():
    assert olympic_mean([3.0, 1.0, 2.0]) == pytest.approx(2.0)


def test_olympic_mean_of_one_or_two_is_the_plain_mean():
    assert olympic_mean([1.0, 4.0]) == pytest.approx(2.5)
    assert olympic_mean([7.0]) == pytest.approx(7.0)


def test_olympic_mean_of_nothing_is_none():
    assert olympic_mean([]) is None


def test_mlperf_score_counts_one_run_that_missed_the_goal_as_the_slowest():
    assert mlperf_score([10.0, 1.0, 2.0, 3.0], not_converged=1) == pytest.approx(5.0)  # mean of 2, 3, 10
    assert mlperf_score([3.0, 1.0], not_converged=1) == pytest.approx(3.0)
    assert mlperf_score([3.0], not_converged=1) is None  # two runs: nothing can be dropped


def test_mlperf_score_has_no_score_with_two_runs_that_missed_the_goal():
    assert mlperf_score([1.0, 2.0, 3.0, 4.0, 5.0], not_converged=2) is None
    assert mlperf_score([], not_converged=2) is None


def test_mlperf_score_without_misses_is_the_olympic_mean():
    assert mlperf_score([10.0, 1.0, 2.0, 3.0, 100.0], not_converged=0) == pytest.approx(5.0)
    assert mlperf_score([1.0, 4.0], not_converged=0) == pytest.approx(2.5)
    assert mlperf_score([], not_converged=0) is None


def test_comparison_rows_aggregate_repeats_and_compute_speedups(scaling_outcomes):
    rows = {row["world_size"]: row for row in comparison_rows(scaling_outcomes)}
    assert sorted(rows) == [1, 2]
    one, two = rows[1], rows[2]

    assert one["runs"] == 3 and one["goal_reached"] == 3 and one["hit_rate"] == 1.0
    assert one["tta_s"] == pytest.approx(12.0)  # olympic mean of 10, 12, 14
    assert one["compute_s"] == pytest.approx(9.0)
    assert one["speedup"] == pytest.approx(1.0) and one["efficiency"] == pytest.approx(1.0)

    assert two["runs"] == 3 and two["goal_reached"] == 2 and two["failed"] == 0
    assert two["hit_rate"] == pytest.approx(2 / 3)
    # MLPerf: the run that missed the goal is the slowest; it and the fastest (7) are dropped
    assert two["tta_s"] == pytest.approx(8.0)
    assert (two["tta_min_s"], two["tta_max_s"]) == (7.0, 8.0)
    assert two["speedup"] == pytest.approx(12.0 / 8.0)
    assert two["efficiency"] == pytest.approx(12.0 / 8.0 / 2)
    # compute and communication over the runs that reached the goal only
    assert two["compute_s"] == pytest.approx(4.5)
    assert two["communication_s"] == pytest.approx(2.5)
    assert two["compute_speedup"] == pytest.approx(9.0 / 4.5)
    assert two["compute_efficiency"] == pytest.approx(9.0 / 4.5 / 2)
    assert two["comm_share"] == pytest.approx(2.5 / 7.0)


def test_no_one_worker_baseline_means_no_speedup():
    rows = comparison_rows([outcome(2, 0, result(2, 5.0)), outcome(4, 0, result(4, 3.0))])
    assert [row["world_size"] for row in rows] == [2, 4]
    for row in rows:
        assert row["tta_s"] is not None
        assert row["speedup"] is None and row["efficiency"] is None
        assert row["compute_speedup"] is None and row["compute_efficiency"] is None


def test_baseline_that_missed_the_goal_gives_no_speedup():
    outcomes = [outcome(1, 0, result(1, None)), outcome(2, 0, result(2, 5.0))]
    rows = {r["world_size"]: r for r in comparison_rows(outcomes)}
    assert rows[1]["hit_rate"] == 0.0 and rows[1]["tta_s"] is None
    assert rows[2]["speedup"] is None and rows[2]["compute_speedup"] is None


def test_baselines_are_per_algorithm():
    rows = comparison_rows([
        outcome(1, 0, result(1, 10.0)),
        outcome(2, 0, result(2, 5.0)),
        outcome(2, 0, result(2, 4.0, algorithm="ddp"), algorithm="ddp"),
    ])
    by_key = {(r["algorithm"], r["world_size"]): r for r in rows}
    assert by_key[("allreduce", 2)]["speedup"] == pytest.approx(2.0)
    assert by_key[("ddp", 2)]["speedup"] is None


def test_failed_invalid_and_missing_configurations_count_as_runs_that_missed_the_goal():
    bad_validation = ValidationReport(
        "result", False, ["history: expect_column_values_to_not_be_null(train_loss): 1 of 3 unexpected"],
        {"evaluated_expectations": 9, "unsuccessful_expectations": 1})
    outcomes = [
        outcome(2, 0, result(2, 5.0)),
        outcome(2, 1, result(2, None, status="failed")),
        outcome(2, 2, result(2, 4.0), validation=bad_validation),
        outcome(2, 3, None, failure_reason="pod evicted"),
    ]
    assert [o.succeeded for o in outcomes] == [True, False, False, False]
    assert outcomes[1].failure_summary.startswith("diverged")
    assert "validation failed" in outcomes[2].failure_summary
    assert "expect_column_values_to_not_be_null" in outcomes[2].failure_summary
    assert outcomes[3].failure_summary == "pod evicted"
    (row,) = comparison_rows(outcomes)
    assert row["runs"] == 4 and row["goal_reached"] == 1 and row["failed"] == 3
    assert row["hit_rate"] == pytest.approx(0.25)
    assert row["tta_s"] is None and row["tta_min_s"] == pytest.approx(5.0)  # 3 misses: no MLPerf score


def test_tables_render_every_row(scaling_outcomes):
    rows = comparison_rows(scaling_outcomes)
    text = format_table(rows)
    lines = text.splitlines()
    assert lines[0].startswith("configuration") and "speedup" in lines[0] and "comm share" in lines[0]
    assert len(lines) == 2 + len(rows)
    assert "2/3" in lines[-1] and "1.50x" in lines[-1] and "75%" in lines[-1]  # 12 s / 8 s (MLPerf score)

    markdown = to_markdown(rows).splitlines()
    assert markdown[0].startswith("| task | algorithm | world_size")
    assert len(markdown) == 2 + len(rows)

    parsed = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert len(parsed) == 2
    assert float(parsed[1]["speedup"]) == pytest.approx(1.5)
    assert parsed[0]["world_size"] == "1"

    configurations = configuration_rows(scaling_outcomes, {"t-allreduce-w1-r0": "abc"})
    assert len(configurations) == 6 and configurations[0]["run_id"] == "abc"
    assert "t-allreduce-w2-r2" in to_markdown(configurations)


def test_tables_without_speedup_show_dashes():
    text = format_table(comparison_rows([outcome(2, 0, result(2, None))]))
    cells = text.splitlines()[-1].split()
    assert cells[:3] == ["t", "allreduce", "w2"]
    assert cells[-5:] == ["-", "-", "-", "-", "0%"]  # tta, speedup, efficiency, compute speedup; comm share


def _assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 1000


def test_plots_write_png_files(tmp_path, scaling_outcomes):
    outcomes = [*scaling_outcomes, outcome(4, 0, None, failure_reason="launch failed"),
                outcome(2, 3, result(2, None, status="failed"))]
    rows = comparison_rows(outcomes)
    _assert_png(plot_scaling(rows, tmp_path / "plots" / "scaling.png"))
    _assert_png(plot_time_split(outcomes, tmp_path / "split.png"))
    _assert_png(plot_curves(scaling_outcomes[0].result, tmp_path / "curves.png"))


def test_plots_cope_with_nothing_to_show(tmp_path):
    _assert_png(plot_scaling(comparison_rows([outcome(2, 0, result(2, None))]), tmp_path / "scaling.png"))
    _assert_png(plot_time_split([outcome(2, 0, None, failure_reason="x")], tmp_path / "split.png"))
    diverged = dataclasses.replace(result(2, None, status="failed"), history=[])
    _assert_png(plot_curves(diverged, tmp_path / "curves.png"))


def test_importing_the_module_does_not_import_matplotlib():
    code = "import sys, operators.report; print('matplotlib' in sys.modules)"
    repo = Path(__file__).resolve().parents[3]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo, check=True)
    assert out.stdout.strip() == "False"


def on_pool(o, pool, price_per_hour):
    return dataclasses.replace(o, pool=pool, price_per_hour=price_per_hour)


def test_cost_to_accuracy_and_price_index_from_the_pools_price(scaling_outcomes):
    # 1 worker: $36/h; 2 workers: twice the nodes, $72/h. Wall time to accuracy is tta + 1 s.
    priced = [on_pool(o, "p5", 36.0 * o.world_size) for o in scaling_outcomes]
    rows = comparison_rows(priced)
    one, two = rows
    assert one["cost_usd"] == pytest.approx(13.0 * 36 / 3600)  # olympic mean of 11, 13, 15 s
    assert two["cost_usd"] == pytest.approx(9.0 * 72 / 3600)  # 8 and 9 s, the miss counted slowest
    assert two["price_index"] == pytest.approx(two["cost_usd"] / one["cost_usd"])
    lines = format_table(rows).splitlines()
    assert lines[0].endswith("cost to accuracy  price index")
    assert lines[-1].split()[-2:] == ["$0.18", "1.38x"]
    from operators.report.training import parent_metrics

    metrics = {key: value for key, value, _, _ in parent_metrics(rows, priced, 0)}
    assert metrics["cost_usd_w2"] == pytest.approx(0.18) and metrics["price_index_allreduce_w2"] > 1


def test_a_pool_without_a_price_says_so_instead_of_guessing(scaling_outcomes):
    rows = comparison_rows([on_pool(o, "gke-t4", None) for o in scaling_outcomes])
    text = format_table(rows)
    assert text.splitlines()[2].split()[-3:] == ["no", "price", "-"]
    assert "no cost for pool(s) gke-t4: the profile has no price_per_node_hour" in text
    assert all(row["cost_usd"] is None and row["price_index"] is None for row in rows)
    assert "cost to accuracy" not in format_table(comparison_rows(scaling_outcomes))  # local runs: no column


def test_hourly_cost_is_the_share_of_nodes_a_configuration_occupies():
    import dataclasses

    from operators.kubernetes.pools import get_pool

    node = dataclasses.replace(get_pool("gke-a3-h100"), price_per_node_hour=80.0, price_source="test")
    assert [node.hourly_cost(k) for k in (1, 4, 8, 16)] == [10.0, 40.0, 80.0, 160.0]
    single = dataclasses.replace(get_pool("gke-t4"), price_per_node_hour=0.5, price_source="test")
    assert single.hourly_cost(4) == 2.0 and get_pool("gke-t4").hourly_cost(4) is None


def test_a_run_evaluating_inside_epochs_logs_every_evaluation_as_one_series(tmp_path):
    from operators.report.training import child_metrics
    from tasks.runtime.history import MidEpochEvaluation

    def inside(step, bleu):
        return MidEpochEvaluation(step=step, steps_in_epoch=10, validation_metric=bleu, validation_loss=5.0 - bleu / 10,
                                  cumulative_train_time_s=float(step), validation_metrics={"bleu_batch_average": bleu})

    whole = EpochRecord(epoch=1, lr=1e-3, train_loss=4.0, validation_metric=8.0, validation_loss=4.2, epoch_time_s=10.0,
                        train_time_s=8.0, cumulative_train_time_s=8.0, validation_metrics={"bleu_batch_average": 8.0},
                        mid_epoch_evaluations=[inside(3, 2.0), inside(6, 4.0), inside(9, 6.0)])
    ended = EpochRecord(epoch=2, lr=1e-3, train_loss=3.0, validation_metric=30.0, validation_loss=2.0,
                        epoch_time_s=5.0, train_time_s=4.0, cumulative_train_time_s=12.0,
                        validation_metrics={"bleu_batch_average": 30.0},
                        mid_epoch_evaluations=[inside(3, 12.0), inside(6, 30.0)], stopped_at_step=6)
    run = dataclasses.replace(make_training_record(1, status="completed"), target=Target("bleu", "max", 25.0),
                              history=[whole, ended], epochs_run=2, started_at="2026-01-01T00:00:00+00:00")
    points = child_metrics(run)
    series = [(step, value) for name, value, _, step in points if name == "evaluation_bleu"]
    assert series == [(30, 2.0), (60, 4.0), (90, 6.0), (100, 8.0), (130, 12.0), (160, 30.0)]
    assert [step for name, *_, step in points if name == "evaluation_bleu_batch_average"] == [30, 60, 90, 100, 130, 160]
    assert [step for name, *_, step in points if name == "validation_bleu"] == [1, 2]  # per epoch, as every task
    assert [value for name, value, *_ in points if name in ("epochs_run", "epochs_trained")] == [2, 1.6]
    stamps = [stamp for name, _, stamp, _ in points if name == "evaluation_loss"]
    assert stamps == sorted(stamps) and stamps[3] - stamps[0] == 7000  # 30 % and all of a 10 s epoch
    assert stamps[-1] - stamps[3] == 5000  # the second epoch ended at its stopping evaluation, 5 s on
    _assert_png(plot_curves(run, tmp_path / "curves.png", companions=("bleu_batch_average",)))
    plain = dataclasses.replace(run, history=[dataclasses.replace(whole, mid_epoch_evaluations=None)])
    assert not [name for name, *_ in child_metrics(plain) if name.startswith("evaluation_")]
