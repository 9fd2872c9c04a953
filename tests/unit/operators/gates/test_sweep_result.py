"""The results gate of task 0 (an all-reduce sweep): a good sweep passes; each corruption fails,
naming the expectation and the column it broke."""

import pytest

from operators.gates import validate_sweep_result, validate_training_result
from tests.conftest import make_sweep_result

pytestmark = pytest.mark.unit


def measurement(result, dtype, index):
    return [r for r in result["measurements"] if r["dtype"] == dtype][index]


def test_a_good_sweep_passes():
    for world_size in (1, 2, 4):
        report = validate_sweep_result(make_sweep_result(world_size), expected_world_size=world_size)
        assert report.success, report.failures
        assert report.statistics["evaluated_expectations"] >= 20


def test_a_failed_sweep_is_validated_for_what_it_has():
    report = validate_sweep_result(make_sweep_result(2, status="failed"), expected_world_size=2)
    assert report.success, report.failures


def test_a_training_result_fails_the_sweep_schema():
    report = validate_sweep_result({"status": "completed"}, expected_world_size=2)
    assert not report.success and report.failures[0].startswith("schema: (root): 'schema_version' is a required")
    assert not validate_training_result(make_sweep_result(2), expected_world_size=2).success


def _set(dtype, index, **values):
    return lambda r: measurement(r, dtype, index).update(values)


def _scale(field, factor):
    def corrupt(result):
        row = measurement(result, "fp32", 2)
        row[field] *= factor
    return corrupt


@pytest.mark.parametrize("corrupt, expected", [
    (_set("fp32", 1, latency_median_s=0.0, latency_p10_s=0.0),
     "expect_column_values_to_be_between on measurements.latency_median_s: 1 of 8 unexpected"),
    (_set("fp16", 0, latency_p90_s=float("inf")),
     "expect_column_values_to_not_be_null on measurements.latency_p90_s"),
    (_set("fp32", 3, latency_p10_s=1.0),
     "expect_column_pair_values_a_to_be_greater_than_b on measurements.latency_median_s vs latency_p10_s"),
    (_set("fp32", 3, latency_p90_s=1e-9),
     "expect_column_pair_values_a_to_be_greater_than_b on measurements.latency_p90_s vs latency_median_s"),
    (_scale("busbw_gbps", 1.01), "expect_column_values_to_be_between on measurements.busbw_relative_error"),
    (_scale("algbw_gbps", 2.0), "expect_column_values_to_be_between on measurements.algbw_relative_error"),
    (_set("fp16", 2, bytes=999), "expect_column_pair_values_to_be_equal on measurements.bytes vs expected_bytes"),
    (lambda r: r["measurements"].reverse(),
     "expect_column_values_to_be_increasing on measurements.elements [dtype == 'fp32']"),
    (lambda r: r["measurements"].pop(),
     "expect_table_row_count_to_equal on table measurements: observed 7 (expected 8)"),
    (lambda r: r["ranks"].pop(), "expect_table_row_count_to_equal on table ranks: observed 1 (expected 2)"),
    (lambda r: r["ranks"][1].update(rank=0), "expect_column_values_to_be_unique on ranks.rank"),
    (lambda r: r["ranks"][1].update(measurements=3), "expect_column_values_to_be_between on ranks.measurements"),
    (lambda r: r["ranks"][1].update(wrong_elements=5), "expect_column_values_to_be_in_set on ranks.wrong_elements"),
])
def test_each_corruption_fails_naming_its_expectation(corrupt, expected):
    result = make_sweep_result(2)
    corrupt(result)
    report = validate_sweep_result(result, expected_world_size=2, suite_name="result:allreduce__w2")
    assert not report.success
    assert any(line.startswith(expected) for line in report.failures), report.failures
    assert report.summary().startswith("result:allreduce__w2: ")


def test_a_sweep_planned_for_another_world_size_fails():
    report = validate_sweep_result(make_sweep_result(2), expected_world_size=4)
    assert "expect_column_pair_values_to_be_equal on run.world_size vs expected_world_size: 1 of 1 unexpected" in \
        "\n".join(report.failures)


def test_missing_sizes_of_a_dtype_are_named():
    result = make_sweep_result(2)
    result["measurements"] = [r for r in result["measurements"] if not (r["dtype"] == "fp16" and r["elements"] == 10)]
    report = validate_sweep_result(result, expected_world_size=2)
    assert any("expect_column_distinct_values_to_equal_set on measurements.elements [dtype == 'fp16']: missing [10]"
               in line for line in report.failures), report.failures


def test_a_completed_sweep_without_mlbenchs_figures_fails():
    result = make_sweep_result(2)
    result["mlbench_measurements"] = result["mlbench_measurements"][:-1]
    report = validate_sweep_result(result, expected_world_size=2)
    assert any("mlbench_measurements" in line and "row_count" in line for line in report.failures), report.failures
