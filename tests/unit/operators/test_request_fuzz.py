"""Property-based checks of everything a user types: a request (form or REST conf), a sweep file,
and `--set` overrides. Any value either validates or fails with one line naming the field, as a
UserError; never another exception, never a traceback."""

from __future__ import annotations

import dataclasses
import string

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from operators.request import BenchmarkRequest, InvalidRequest, validate_request
from operators.steps import load_sweep
from tasks.errors import UserError
from tasks.registry import TASKS, resolve

pytestmark = pytest.mark.unit

FIELDS = sorted(f.name for f in dataclasses.fields(BenchmarkRequest))
SCALARS = (st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=True)
           | st.text(max_size=20) | st.sampled_from(["demo", "smoke", "gloo", "nccl", "cpu", "gpu", "local",
                                                   "kubernetes", "cifar10-resnet20", "allreduce", "1,2", "warn"]))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)
VALID = {"tasks": ["cifar10-resnet20"], "preset": "demo", "world_sizes": [1, 2]}
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _checked(params):
    """Validate; a refusal must be one line that names one of the request's fields, or says that
    the field it names is not one."""
    try:
        return validate_request(params)
    except InvalidRequest as refusal:
        message = str(refusal)
        assert "\n" not in message and message.startswith("invalid request field "), message
        named = message.removeprefix("invalid request field ").split(":")[0].strip("'")
        assert named in FIELDS or "unknown field; valid fields:" in message, message
        return None


@FUZZ
@given(st.dictionaries(st.sampled_from(FIELDS + ["bogus", "worldsize"]), JSON, max_size=6))
def test_any_request_validates_or_names_its_field(params):
    _checked(params)


@FUZZ
@given(st.sampled_from(FIELDS), JSON)
def test_one_field_of_a_valid_request_replaced_by_anything(field, value):
    request = _checked({**VALID, field: value})
    if request is not None:  # what validates is a request the planner can use as it stands
        assert request.tasks and request.world_sizes and request.preset


@FUZZ
@given(st.text(max_size=200) | JSON.map(lambda value: yaml.safe_dump({"version": 1, "request": value})))
def test_a_sweep_file_holding_anything_is_read_or_refused_in_one_line(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("sweep") / "sweep.yaml"
    path.write_text(text)
    try:
        params = load_sweep(str(path))
    except InvalidRequest as refusal:
        assert str(refusal).startswith(f"sweep file {path}") or f"cannot read sweep file {path}" in str(refusal)
        return
    _checked(params)


def test_yaml_that_would_build_objects_is_refused_not_run(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("version: 1\nrequest: !!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(InvalidRequest, match="cannot read sweep file"):
        load_sweep(str(path))
    assert not (tmp_path / "pwned").exists()


FIELD_NAMES = st.sampled_from(["max_epochs", "optimizer.lr", "optimizer.momentum", "batch_size", "seed",
                               "lr_schedule.warmup_epochs", "data", "nope", "optimizer", "optimizer.lr.x", ""])
VALUES = st.text(alphabet=string.printable, max_size=16) | st.sampled_from(["1e9", "-1", "nan", "inf", "[1,2]", "0"])


@FUZZ
@given(st.sampled_from(sorted(TASKS)), st.dictionaries(FIELD_NAMES, VALUES, max_size=3))
def test_set_overrides_resolve_or_fail_in_one_line(task, overrides):
    try:
        resolve(task, "smoke", world_size=1, overrides=overrides)
    except UserError as refusal:
        assert "\n" not in str(refusal) and str(refusal), overrides
