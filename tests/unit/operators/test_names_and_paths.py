"""Names built from what users and Airflow send (run ids, DAG ids, configuration ids) stay inside
their root on disk and are valid Kubernetes names, whatever they hold."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.kubernetes.spec import job_names, run_labels
from operators.planning import SAFE_NAME_MAX, safe_name
from operators.run_directory import RunDirectory
from tasks.settings import Settings

pytestmark = pytest.mark.unit

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
HOSTILE = st.text(min_size=0, max_size=400) | st.sampled_from([
    "..", ".", "../../etc/passwd", "/etc/passwd", "a/../../b", "manual__2026-11-30T09:45:00+00:00",
    "x" * 5000, "\x00", "rank\n0", "ü" * 300, "-leading-dash", "trailing.", "CAPS_and_under_score"])


@settings(max_examples=300, deadline=None)
@given(HOSTILE)
def test_a_run_id_becomes_one_safe_path_component_under_the_runs_root(run_id):
    name = safe_name(run_id)
    assert "/" not in name and "\x00" not in name and name not in (".", "..", "")
    assert len(name.encode()) <= SAFE_NAME_MAX
    root = Path("/srv/mlbench/runs")
    assert (root / name).resolve().parent == root


def test_long_run_ids_that_share_a_start_stay_apart():
    assert safe_name("a" * 300 + "1") != safe_name("a" * 300 + "2")
    assert safe_name("manual__2026-11-30T09:45:00+00:00") == "manual__2026-11-30T09_45_00_00_00"  # unchanged


def test_the_run_directory_of_a_hostile_id_is_inside_the_runs_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MLBENCH_HOME", str(tmp_path))
    for run_id in ("../../outside", "/etc", "a/b/../../../c", "..", "x" * 1000):
        directory = RunDirectory.of(run_id, Settings.from_env())
        assert directory.path.resolve().parent == Settings.from_env().runs_root.resolve(), run_id


@settings(max_examples=300, deadline=None)
@given(HOSTILE, HOSTILE, HOSTILE, st.integers(1, 4096))
def test_kubernetes_names_and_labels_are_always_valid(dag_id, run_id, config_id, world_size):
    names = job_names(dag_id, run_id, config_id, world_size)
    for name in (names.job, names.service, f"{names.job}-{world_size - 1}"):  # pod hostnames too
        assert len(name) <= 63 and DNS_LABEL.match(name), name
    for value in run_labels(dag_id, run_id).values():
        assert len(value) <= 63 and LABEL_VALUE.match(value), value
