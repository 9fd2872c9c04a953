"""`mlbench compare`'s pure part: configurations paired, differences, significance, Markdown and JSON;
no MLflow store (the runs are built as records)."""

import dataclasses
import json

import pytest
from scipy import stats

from operators.compare import BenchmarkSide, ConfigurationKey, RunSample, compare, to_markdown
from operators.compare.pairing import Side, significance
from operators.compare.samples import HIT_RATE, Figure, run_figures
from tasks.runtime.results import Provenance, SweepResult
from tests.conftest import make_sweep_result, make_training_record

pytestmark = pytest.mark.unit

KEY = ConfigurationKey("cifar10-resnet20", "allreduce", 2, "gloo")
_ids = iter(range(10_000))


def run(tta=None, *, world_size=2, status="completed", throughput=100.0, lr=None, sha="aaaaaaa", seed=42,
        failure=None):
    """A configuration run of 1a at `world_size`: reaches the target iff `tta` is given."""
    record = make_training_record(
        world_size, status=status, goal_reached=tta is not None, time_to_accuracy_s=tta,
        wall_time_to_accuracy_s=tta + 1.0 if tta is not None else None, throughput_samples_per_s=throughput,
        compute_s=5.0, communication_s=1.0, seed=seed, provenance=Provenance(git_sha=sha))
    if lr is not None:
        record = dataclasses.replace(record, config={**record.config, "optimizer": {**record.config["optimizer"],
                                                                                    "lr": lr}})
    number = next(_ids)
    key = dataclasses.replace(KEY, world_size=world_size)
    return RunSample(f"run{number:04d}", f"config{number}", key, True, record, failure)


def side(*samples, name="A"):
    return BenchmarkSide(name, f"manual__{name}", (f"parent-{name}",), tuple(samples))


def figure(comparison, name, configuration=0):
    return next(f for f in comparison.configurations[configuration].figures if f.figure.name == name)


def test_a_faster_side_with_repeats_is_significantly_better_by_welchs_test():
    a = [run(10.0), run(10.4), run(9.8)]
    b = [run(8.0), run(8.3), run(7.9)]
    tta = figure(compare(side(*a), side(*b, name="B")), "time_to_accuracy_s")
    assert tta.a.mean == pytest.approx(10.0666, rel=1e-4) and tta.b.n == 3
    assert tta.difference == pytest.approx(8.0666 - 10.0666, rel=1e-4)
    assert tta.percent == pytest.approx(100 * -2.0 / 10.0666, rel=1e-3)
    expected = stats.ttest_ind([10.0, 10.4, 9.8], [8.0, 8.3, 7.9], equal_var=False).pvalue
    assert tta.significance.test == "Welch's t-test" and tta.significance.p_value == pytest.approx(expected)
    assert tta.significance.significant and tta.verdict == "better"


def test_higher_is_better_figures_and_overlapping_runs():
    a = [run(10.0, throughput=100.0), run(10.0, throughput=101.0), run(10.0, throughput=99.0)]
    b = [run(10.0, throughput=90.0), run(10.0, throughput=89.0), run(10.0, throughput=91.0)]
    comparison = compare(side(*a), side(*b, name="B"))
    assert figure(comparison, "throughput_samples_per_s").verdict == "worse"
    overlapping = compare(side(run(10.0), run(12.0)), side(run(11.0), run(11.5), name="B"))
    assert figure(overlapping, "time_to_accuracy_s").verdict == "no significant difference"
    identical = figure(comparison, "time_to_accuracy_s")  # 10.0 on every run of both sides
    assert identical.verdict == "same" and identical.significance.note == "every run on each side has the same value"


def test_one_run_a_side_is_shown_but_not_tested():
    tta = figure(compare(side(run(10.0)), side(run(9.0), name="B")), "time_to_accuracy_s")
    assert tta.difference == pytest.approx(-1.0) and tta.significance.p_value is None
    assert tta.verdict == "not tested" and tta.significance.note == "needs at least 2 runs a side"


def test_hit_rate_counts_missed_failed_and_missing_runs_and_takes_fishers_test():
    missing = RunSample("gone", "config-gone", KEY, True, None, "launch failed: rendezvous timeout")
    a = [run(10.0), run(11.0), run(10.5)]
    b = [run(None), run(None, status="failed"), missing]
    comparison = compare(side(*a), side(*b, name="B"))
    hits = figure(comparison, "hit_rate")
    assert hits.a.values == (1.0, 1.0, 1.0) and hits.b.values == (0.0, 0.0, 0.0)
    assert hits.significance.test == "Fisher's exact test" and hits.significance.p_value == pytest.approx(0.1)
    assert hits.verdict == "no significant difference"  # 3 runs a side cannot show it at 0.05
    tta = figure(comparison, "time_to_accuracy_s")
    assert tta.b.n == 0 and tta.difference is None and tta.verdict == "-"
    assert figure(comparison, "throughput_samples_per_s").b.n == 1  # only the completed run that missed
    assert comparison.configurations[0].failed_b == 2
    assert significance(HIT_RATE, Side((1.0,) * 8), Side((0.0,) * 8)).significant


def test_configurations_pair_by_identity_and_the_rest_is_listed():
    comparison = compare(side(run(10.0, world_size=1), run(6.0, world_size=2)),
                         side(run(9.0, world_size=2), run(5.0, world_size=4), name="B"))
    assert [c.key.world_size for c in comparison.configurations] == [2]
    assert [k.world_size for k in comparison.only_a] == [1] and [k.world_size for k in comparison.only_b] == [4]


def test_config_differences_are_named_and_the_seed_of_a_repeat_is_not_one():
    comparison = compare(side(run(10.0, seed=42), run(10.0, seed=43)),
                         side(run(9.0, lr=0.05, seed=42), run(9.0, lr=0.05, seed=43), name="B"))
    assert comparison.configurations[0].config_changes == ("optimizer.lr: 0.02 -> 0.05",)
    same = compare(side(run(10.0, seed=42)), side(run(9.0, seed=44), name="B"))
    assert same.configurations[0].config_changes == ()


def test_task0_compares_peak_bus_bandwidth_and_small_message_latency_per_dtype():
    def sweep(bandwidth):
        record = SweepResult.from_dict(make_sweep_result(2, bandwidth_gbps=bandwidth))
        return RunSample(f"sweep{next(_ids)}", "c", ConfigurationKey("allreduce", "allreduce", 2, "gloo"), False,
                         record)

    comparison = compare(side(sweep(2.0), sweep(2.1)), side(sweep(4.0), sweep(4.1), name="B"))
    names = [f.figure.name for f in comparison.configurations[0].figures]
    assert names == ["peak_busbw_gbps_fp32", "small_message_latency_ms_fp32", "peak_busbw_gbps_fp16",
                     "small_message_latency_ms_fp16"]  # no hit rate: task 0 has no target
    peak = figure(comparison, "peak_busbw_gbps_fp32")
    assert peak.b.mean > peak.a.mean and peak.verdict == "better"


def test_markdown_is_a_table_per_configuration_ready_for_a_pull_request():
    a = [run(tta, sha="1111111aaaa") for tta in (10.0, 10.4, 9.8)]
    b = [run(tta, lr=0.05, sha="2222222bbbb") for tta in (8.0, 8.3, 7.9)]
    comparison = compare(side(*a), side(*b, name="B"))
    text = to_markdown(comparison)
    assert text.startswith("## mlbench compare\n")
    assert "- **A**: DAG run `manual__A` (parent run `parent-A`; 3 configuration run(s); git `1111111aaaa`)" in text
    assert "### cifar10-resnet20 · allreduce · 2 workers · gloo" in text
    assert "| figure | A | B | B − A | % | significance |" in text
    row = next(line for line in text.splitlines() if line.startswith("| time to accuracy |"))
    assert "| 10.07 s ± 0.31 (n=3) | 8.067 s ± 0.21 (n=3) | -2 s | -19.9% | **better** (p = " in row
    assert row.endswith(", Welch) |")
    assert "| hit rate | 100% (3/3) | 100% (3/3) | 0 pp | 0.0% | no significant difference (p = 1, Fisher) |" in text
    assert "Config differs (A -> B): `optimizer.lr: 0.02 -> 0.05`" in text


def test_json_holds_every_figure_and_its_test():
    comparison = compare(side(run(10.0), run(10.4)), side(run(8.0), run(8.3), name="B"))
    data = json.loads(json.dumps(comparison.to_dict()))
    assert data["a"]["dag_run_id"] == "manual__A" and data["alpha"] == 0.05
    (configuration,) = data["configurations"]
    assert configuration["key"] == {"task": "cifar10-resnet20", "algorithm": "allreduce", "world_size": 2,
                                    "backend": "gloo"}
    tta = next(f for f in configuration["figures"] if f["figure"]["name"] == "time_to_accuracy_s")
    assert tta["a"]["values"] == [10.0, 10.4] and tta["significance"]["test"] == "Welch's t-test"
    assert tta["a"]["n"] == 2 and tta["a"]["mean"] == pytest.approx(10.2)
    assert tta["b"]["sd"] == pytest.approx(0.2121, rel=1e-3)
    assert tta["verdict"] in ("better", "no significant difference")


def test_run_figures_of_a_run_that_missed_the_target():
    figures = dict((f.name, v) for f, v in run_figures(run(None)))
    assert "time_to_accuracy_s" not in figures and figures["hit_rate"] == 0.0
    assert figures["throughput_samples_per_s"] == 100.0
    assert isinstance(HIT_RATE, Figure) and HIT_RATE.test == "fisher"


def test_markdown_shows_a_time_row_in_the_unit_of_its_larger_mean():
    fast = compare(side(run(0.0467), run(0.0468)), side(run(0.0902), run(0.0901), name="B"))
    row = next(line for line in to_markdown(fast).splitlines() if line.startswith("| time to accuracy |"))
    assert row.startswith("| time to accuracy | 46.75 ms ± 0.071 (n=2) | 90.15 ms ± 0.071 (n=2) | +43.4 ms | +92.8% |")
    sweep = SweepResult.from_dict(make_sweep_result(2))
    tiny = RunSample("s", "c", ConfigurationKey("allreduce", "allreduce", 2, "gloo"), False, sweep)
    latency = next(line for line in to_markdown(compare(side(tiny), side(tiny, name="B"))).splitlines()
                   if line.startswith("| small-message latency fp32 |"))
    assert latency == "| small-message latency fp32 | 50 µs (n=1) | 50 µs (n=1) | 0 µs | 0.0% | same |"
