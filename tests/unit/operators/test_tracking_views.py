"""The saved runs-table view: the envelope MLflow 3.17's UI reads, and when it is rewritten."""

import json

import pytest

from operators.tracking.views import (
    SHARED_VIEW_TAG_PREFIX,
    VIEW_KEY,
    VIEW_NAME,
    read_view_state,
    runs_view_state,
    save_runs_view,
    view_envelope,
)

pytestmark = pytest.mark.unit


def test_the_view_names_our_columns_in_mlflows_column_ids_and_sizes_them():
    state = runs_view_state(metrics=["time_to_accuracy_s"], params=["world_size"])
    assert state["selectedColumns"] == ["metrics.`time_to_accuracy_s`", "params.`world_size`"]
    # widths only apply to the columns of columnOrder, which starts with MLflow's own
    assert state["columnOrder"][:3] == ["attributes.`Run Name`", "runDateAndNestInfo", "duration"]
    assert set(state["columnWidths"]) <= set(state["columnOrder"])
    assert state["columnWidths"]["metrics.`time_to_accuracy_s`"] > state["columnWidths"]["params.`world_size`"]
    assert "runsExpanded" not in state and "runsPinned" not in state  # not part of a view in MLflow


def test_the_envelope_round_trips_compressed_like_the_ui_writes_it():
    state = runs_view_state(metrics=["a"], params=[])
    envelope = json.loads(view_envelope(state, created_at=1, updated_at=2))
    assert envelope["name"] == VIEW_NAME and (envelope["createdAt"], envelope["updatedAt"]) == (1, 2)
    assert envelope["state"].startswith("deflate;")
    assert read_view_state(json.dumps(envelope)) == state
    assert read_view_state(json.dumps({**envelope, "state": json.dumps(state)})) == state  # uncompressed too


class _Experiment:
    def __init__(self, tags):
        self.tags = tags


class _Client:
    """MLflow's client as far as saving a view goes: an experiment's tags, and a count of writes."""

    def __init__(self, tags=None):
        self.tags, self.writes = dict(tags or {}), 0

    def get_experiment(self, experiment_id):
        return _Experiment(self.tags)

    def set_experiment_tag(self, experiment_id, key, value):
        self.tags[key], self.writes = value, self.writes + 1


def test_the_view_is_rewritten_only_when_its_columns_change_and_keeps_its_creation_time():
    client = _Client()
    assert save_runs_view(client, "1", metrics=["a"], params=["p"]) == VIEW_KEY
    key = SHARED_VIEW_TAG_PREFIX + VIEW_KEY
    created = json.loads(client.tags[key])["createdAt"]
    save_runs_view(client, "1", metrics=["a"], params=["p"])
    assert client.writes == 1
    save_runs_view(client, "1", metrics=["a", "b"], params=["p"])
    assert client.writes == 2 and json.loads(client.tags[key])["createdAt"] == created
    assert read_view_state(client.tags[key])["selectedColumns"][:2] == ["metrics.`a`", "metrics.`b`"]


def test_a_view_that_cannot_be_read_is_replaced():
    client = _Client({SHARED_VIEW_TAG_PREFIX + VIEW_KEY: "not json"})
    save_runs_view(client, "1", metrics=["a"], params=[])
    assert read_view_state(client.tags[SHARED_VIEW_TAG_PREFIX + VIEW_KEY])["selectedColumns"] == ["metrics.`a`"]
