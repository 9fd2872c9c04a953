"""The typed result.json: records written in the documented layout, read back as their kind's
record, and one clear line for a document that does not fit."""

import dataclasses
import json
import math

import jsonschema
import pytest

from tasks.registry import resolve
from tasks.runtime.history import EpochRecord, MidEpochEvaluation
from tasks.runtime.results import (
    Provenance,
    ResultError,
    SweepResult,
    TrainingRankReport,
    TrainingResult,
    failed_result,
    load_schema,
    parse_result,
    read_result,
    write_result,
)
from tests.conftest import make_sweep_result, make_training_record

pytestmark = pytest.mark.unit


def completed_training(world_size=2):
    epochs = [EpochRecord(epoch=e, lr=0.1, train_loss=1.0 / e, validation_metric=0.4 * e, validation_loss=1.5 / e,
                          epoch_time_s=2.0, train_time_s=1.5, cumulative_train_time_s=1.5 * e, validation_top5=0.9)
              for e in (1, 2)]
    ranks = [TrainingRankReport(rank=r, hostname="h", device_name="cpu", train_time_s=3.0, compute_s=2.0,
                                communication_s=0.5, steps=10, phases_s={"forward": 1.0}) for r in range(world_size)]
    return make_training_record(
        world_size, status="completed", goal_reached=True, time_to_accuracy_s=3.0, wall_time_to_accuracy_s=4.0,
        train_time_s=3.0, wall_time_s=4.5, compute_s=2.0, communication_s=0.5, epochs_run=2, steps=10,
        final_validation_metric=0.8, best_validation_metric=0.8, history=epochs, ranks=ranks,
        provenance=Provenance(hostname="h", torch="2.13.0", device_name="cpu"))


def test_a_training_record_is_written_schema_valid_in_the_documented_order(tmp_path):
    record = completed_training()
    write_result(tmp_path, record)
    document = json.loads((tmp_path / "result.json").read_text())
    jsonschema.validate(document, load_schema())
    assert list(document)[:4] == ["schema_version", "status", "reason", "task"]
    assert list(document)[-2:] == ["started_at", "finished_at"]
    assert list(document["history"][0])[:7] == ["epoch", "lr", "train_loss", "train_metrics", "validation_metric",
                                                "validation_loss", "validation_top5"]
    assert "backends_unavailable" not in document["provenance"]  # a sweep's field only
    assert "mid_epoch_evaluations" not in document["history"][0]  # a field of runs that plan them only
    assert "stopped_at_step" not in document["history"][0]
    assert read_result(tmp_path) == record


def test_a_record_reads_back_as_its_tasks_kind():
    assert isinstance(parse_result(completed_training().to_dict()), TrainingResult)
    assert isinstance(parse_result(make_sweep_result(2)), SweepResult)


def test_a_failure_before_anything_ran_records_an_empty_provenance():
    record = failed_result(resolve("cifar10-resnet20", "smoke", world_size=2), "rank 1 exited with code 1")
    assert isinstance(record, TrainingResult) and record.reason == "rank 1 exited with code 1"
    assert record.to_dict()["provenance"] == {} and record.provenance_record.hostname is None
    assert record.reached_goal() is False


@pytest.mark.parametrize("corrupt, message", [
    (lambda d: d.pop("goal_reached"), "TrainingResult: missing field 'goal_reached'"),
    (lambda d: d.update(time_to_accuracy_s="fast"), "time_to_accuracy_s: expected float, got str"),
    (lambda d: d.update(epochs_run=True), "epochs_run: expected int, got bool"),
    (lambda d: d["history"][1].pop("lr"), "history[1]: missing field 'lr'"),
    (lambda d: d["ranks"][0].update(steps=None), "ranks[0].steps: expected int, got null"),
    (lambda d: d.update(target=[]), "target: expected an object, got list"),
])
def test_a_document_that_does_not_fit_is_refused_with_the_field_named(corrupt, message):
    document = completed_training().to_dict()
    corrupt(document)
    with pytest.raises(ResultError) as error:
        parse_result(document)
    assert message in str(error.value)


def test_unreadable_json_is_a_result_error(tmp_path):
    (tmp_path / "result.json").write_text("{not json")
    with pytest.raises(ResultError, match="not valid JSON"):
        read_result(tmp_path)


def test_non_finite_epoch_figures_are_written_as_null():
    epoch = EpochRecord(epoch=1, lr=0.1, train_loss=math.nan, validation_metric=math.inf, validation_loss=None,
                        epoch_time_s=1.0, train_time_s=1.0, cumulative_train_time_s=1.0)
    assert dataclasses.asdict(epoch.finite()) == {**dataclasses.asdict(epoch), "train_loss": None,
                                                  "validation_metric": None}


def test_goal_reached_needs_a_completed_run_with_a_time_to_accuracy():
    record = completed_training()
    assert record.reached_goal() is True
    assert dataclasses.replace(record, time_to_accuracy_s=None).reached_goal() is False
    assert dataclasses.replace(record, status="failed").reached_goal() is False
    assert SweepResult.from_dict(make_sweep_result(2)).reached_goal() is None  # task 0 has no target


def _inside(step, metric, steps_in_epoch=10):
    return MidEpochEvaluation(step=step, steps_in_epoch=steps_in_epoch, validation_metric=metric,
                              validation_loss=2.0 - metric, cumulative_train_time_s=0.1 * step,
                              validation_metrics={"bleu_batch_average": metric + 1})


def test_evaluations_inside_an_epoch_come_first_and_one_that_ended_it_comes_once(tmp_path):
    whole = EpochRecord(epoch=1, lr=0.1, train_loss=1.0, validation_metric=0.5, validation_loss=1.5, epoch_time_s=2.0,
                        train_time_s=1.0, cumulative_train_time_s=1.0, validation_metrics={"bleu_batch_average": 1.5},
                        mid_epoch_evaluations=[_inside(3, 0.2), _inside(6, 0.3), _inside(9, 0.4)])
    assert [(e.step, e.position, e.metric) for e in whole.evaluations()] == [
        (3, 0.3, 0.2), (6, 0.6, 0.3), (9, 0.9, 0.4), (None, 1.0, 0.5)]
    assert whole.fraction_trained == 1.0
    ended = EpochRecord(epoch=2, lr=0.1, train_loss=0.8, validation_metric=0.9, validation_loss=1.1, epoch_time_s=1.0,
                        train_time_s=0.6, cumulative_train_time_s=1.6, validation_metrics={"bleu_batch_average": 1.9},
                        mid_epoch_evaluations=[_inside(3, 0.7), _inside(6, 0.9)], stopped_at_step=6)
    assert [(e.step, e.position, e.metric) for e in ended.evaluations()] == [(3, 1.3, 0.7), (6, 1.6, 0.9)]
    assert ended.fraction_trained == 0.6
    not_evaluated = EpochRecord(epoch=3, lr=0.1, train_loss=0.8, validation_metric=None, validation_loss=None,
                                epoch_time_s=1.0, train_time_s=0.6, cumulative_train_time_s=2.2,
                                mid_epoch_evaluations=[_inside(5, 0.1)])
    assert [e.step for e in not_evaluated.evaluations()] == [5]

    record = dataclasses.replace(completed_training(), history=[whole, ended])
    write_result(tmp_path, record)
    document = json.loads((tmp_path / "result.json").read_text())
    jsonschema.validate(document, load_schema())
    assert document["history"][1]["stopped_at_step"] == 6
    assert document["history"][1]["mid_epoch_evaluations"][1] == {
        "step": 6, "steps_in_epoch": 10, "validation_metric": 0.9, "validation_loss": 1.1,
        "cumulative_train_time_s": 0.6000000000000001, "validation_metrics": {"bleu_batch_average": 1.9}}
    assert read_result(tmp_path) == record


def test_non_finite_figures_inside_an_epoch_are_written_as_null():
    epoch = EpochRecord(epoch=1, lr=0.1, train_loss=1.0, validation_metric=0.5, validation_loss=1.0, epoch_time_s=1.0,
                        train_time_s=1.0, cumulative_train_time_s=1.0,
                        mid_epoch_evaluations=[dataclasses.replace(_inside(5, 0.5), validation_loss=math.nan)])
    assert epoch.finite().mid_epoch_evaluations[0].validation_loss is None
