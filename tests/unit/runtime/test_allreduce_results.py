"""Task 0's results bundle: its own JSON schema, records for failures, and its plot."""

import json
import re

import jsonschema
import pytest

from tasks.registry import resolve
from tasks.plots import plot_result
from tasks.runtime.results import SCHEMA_PATH, SweepResult, failed_result, load_schema
from tests.conftest import make_sweep_result

pytestmark = pytest.mark.unit
SCHEMA = json.loads(SCHEMA_PATH.with_name("allreduce_result.schema.json").read_text())


def test_a_completed_sweep_is_schema_valid_and_not_a_training_result():
    result = make_sweep_result(2)
    jsonschema.validate(result, SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(result, load_schema())  # the training schema needs epochs and a target
    assert result["kind"] == "communication" and re.fullmatch(r"[0-9a-f]{16}", result["config_hash"])
    assert result["config"]["world_size"] == 2 and result["config"]["repeats"] >= 1


def test_a_failure_is_recorded_with_provenance_of_the_config():
    config = resolve("allreduce", "smoke", world_size=2)
    record = failed_result(config, "rank 1 exited with code 1: boom")  # dispatches on the config's kind
    assert isinstance(record, SweepResult)
    result = json.loads(json.dumps(record.to_dict()))  # as the pipeline reads it back
    jsonschema.validate(result, SCHEMA)
    assert result["status"] == "failed" and result["measurements"] == []
    assert result["config_hash"] == config.config_hash()


@pytest.mark.parametrize("corrupt, where", [
    (lambda r: r["measurements"][0].update(dtype="fp64"), "dtype"),
    (lambda r: r["measurements"][0].pop("busbw_gbps"), "busbw_gbps"),
    (lambda r: r["measurements"][0].update(extra=1), "extra"),
    (lambda r: r.update(kind="training"), "kind"),
    (lambda r: r["ranks"][0].pop("wrong_elements"), "wrong_elements"),
    (lambda r: r["config"].pop("sizes"), "sizes"),
])
def test_the_schema_rejects_malformed_bundles(corrupt, where):
    result = make_sweep_result(2)
    corrupt(result)
    with pytest.raises(jsonschema.ValidationError, match=where):
        jsonschema.validate(result, SCHEMA)


def test_a_sweep_reads_back_as_the_record_it_was_written_from():
    document = make_sweep_result(2)
    record = SweepResult.from_dict(document)
    assert record.to_dict() == document and list(record.to_dict()) == list(document)
    assert record.measurements[0].dtype == "fp32" and record.ranks[1].rank == 1


def test_plot_of_a_sweep_and_of_a_failed_one(tmp_path):
    ok, failed = (SweepResult.from_dict(make_sweep_result(2, status=s)) for s in ("completed", "failed"))
    assert plot_result(ok, tmp_path / "ok.png").read_bytes()[:4] == b"\x89PNG"
    assert plot_result(failed, tmp_path / "failed.png").read_bytes()[:4] == b"\x89PNG"
