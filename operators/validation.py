"""Great Expectations gates: one on every prepared dataset before training, one on every results bundle after.

Both gates turn what they check into small pandas DataFrames (never raw pixels, feature matrices or
token streams: one row per array, per sample, per class, per shard plan; one row per epoch, per run,
per rank; for task 0's all-reduce sweep one row per measured size and dtype) and validate each frame
against a GX 1.24 ``ExpectationSuite`` through an ephemeral data context's pandas data source. A gate's frames are its parts; the report gathers every part's
expectations into one verdict with one short failure line per failed expectation. The dataset gate
tells images, tabular features and token streams apart by the keys of the arrays it is given.

This module is imported by Airflow DAG code, so it imports only the standard library at module level:
great_expectations, pandas, numpy and jsonschema are imported where they are used. It never imports
airflow or torch.
"""

from __future__ import annotations

import json
import math
import os
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

# --- dataset gate -------------------------------------------------------------------------------------

# Class balance: every class's share of the training split must lie within
# [CLASS_SHARE_MIN_FACTOR / num_classes, CLASS_SHARE_MAX_FACTOR / num_classes], i.e. between half and
# twice its share under a perfectly balanced split (5% .. 20% for ten classes).
CLASS_SHARE_MIN_FACTOR = 0.5
CLASS_SHARE_MAX_FACTOR = 2.0

# Train/validation disjointness is checked on a content hash (BLAKE2b-128 of each image's bytes): a
# validation image whose bytes equal a training image's is a leak. Measured on the real data: the
# scikit-learn digits split (16 px, seed 0) has 0 of its 360 validation images byte-identical to any of
# its 1437 training images (there are no exact duplicates in the 1797 digits at all), and the
# synthetic-cifar10 look-alike has 0 of 200. Real CIFAR-10's known test/train "near-duplicates" are
# not byte-identical, so a hash does not see them. The gate tolerates up to 1% of validation images
# with a training twin (mostly=0.99): the real datasets pass with room, while copying 10% of validation
# from train (or any leak above 1%) fails.
VALIDATION_NOT_IN_TRAIN_MOSTLY = 0.99

PIXEL_MIN = 0.0
PIXEL_MAX = 255.0
IMAGE_DTYPES = ["uint8"]
LABEL_DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
SPLITS = (("train", "train"), ("validation", "val"))  # (split name, array key prefix)
_STATS_CHUNK = 4096  # images per chunk when summarising pixels (bounds memory on 50k-image memmaps)

# Dataset layouts, told apart by the keys of the arrays (tasks.data.catalog.load): a layout is chosen
# when any of its marker keys is present, and its suite then reports whichever of its arrays is missing.
# Keys of no layout, or of several, fail with one "layout:" line.
LAYOUTS: dict[str, tuple[str, ...]] = {  # layout -> the arrays it expects
    "images": ("train_images", "train_labels", "val_images", "val_labels"),
    "tabular": ("train_features", "train_labels", "val_features", "val_labels"),
    "tokens": ("train_tokens", "val_tokens"),  # and optionally test_tokens
}
_LAYOUT_MARKERS: dict[str, tuple[str, ...]] = {
    "images": ("train_images", "val_images"),
    "tabular": ("train_features", "val_features"),
    "tokens": ("train_tokens", "val_tokens", "test_tokens"),
}
_OPTIONAL_ARRAYS: dict[str, tuple[str, ...]] = {"tokens": ("test_tokens",)}

# Tabular (MLBench task 2a, logistic regression): binary labels, each class's share of the training split
# within [0.2, 0.8]. epsilon is balanced (about 50/50) and breast-cancer is 357/212 benign/malignant
# (62.7%/37.3%; the 80/20 split keeps it within a point or two), so both pass with room, while a split
# with one class under 20% (e.g. a badly filtered or sorted-then-truncated file) fails.
BINARY_CLASS_SHARE_MIN = 0.2
BINARY_CLASS_SHARE_MAX = 0.8
FEATURE_DTYPES = ["float16", "float32", "float64"]
BINARY_LABEL_DTYPES = ["float16", "float32", "float64", "bool", *LABEL_DTYPES]
# Rows are summarised (min, max, mean, L2 norm, finite flag, BLAKE2b-128 hash) a chunk of at most this many
# bytes of features at a time: a 400,000 x 2000 float32 memmap (3.2 GB) is read 2048 rows (16 MiB) at a time.
_TABULAR_CHUNK_BYTES = 16 * 2**20

# Token streams (MLBench task 3a, language modelling): 1-D integer token ids in [0, vocabulary_size).
# Validation (and test) must not be a copy of train: their first TOKEN_HEAD tokens (or as many as both
# streams have) must not equal train's. WikiText-2's splits are different articles, so they differ
# within a few tokens.
TOKEN_DTYPES = LABEL_DTYPES
TOKEN_HEAD = 10_000
TOKEN_SPLITS = (("train", "train"), ("validation", "val"), ("test", "test"))
_TOKEN_CHUNK = 2**22  # tokens per chunk when taking a stream's min/max (16 MiB of int32)

# --- result gate --------------------------------------------------------------------------------------

SWEEP_TOLERANCE = 1e-6  # relative: algbw and busbw are recomputed from the latency and must agree
TIME_TOLERANCE_S = 1e-6  # compute_s + communication_s may exceed train_time_s by float rounding only
ACCURACY_METRICS = frozenset({"top1", "top5", "accuracy"})  # target metrics that are fractions in [0, 1]
MAX_SCHEMA_FAILURE_LINES = 5
SUMMARY_FAILURES = 3  # failure lines quoted in summary()
EXAMPLES = 3  # unexpected values quoted in one failure line


@dataclass
class ValidationReport:
    """One gate's verdict on one dataset or one results bundle."""

    suite: str  # "dataset:<name>" or "result:<run id>"
    success: bool
    failures: list[str] = field(default_factory=list)  # one line per failed expectation
    statistics: dict = field(default_factory=dict)  # evaluated / successful / unsuccessful counts
    results: dict = field(default_factory=dict)  # GX validation results (describe_dict) per part

    def summary(self) -> str:
        evaluated = self.statistics.get("evaluated_expectations", 0)
        if self.success and not self.failures:
            return f"{self.suite}: all {evaluated} expectations passed"
        failed = self.statistics.get("unsuccessful_expectations", len(self.failures))
        quoted = "; ".join(self.failures[:SUMMARY_FAILURES])
        if len(self.failures) > SUMMARY_FAILURES:
            quoted += f"; ... ({len(self.failures) - SUMMARY_FAILURES} more)"
        return f"{self.suite}: {failed} of {evaluated} expectations failed: {quoted}"

    def to_dict(self) -> dict:
        return _jsonable({**asdict(self), "summary": self.summary()})


class ValidationFailed(Exception):
    """A gate failed; str(exc) is the report's summary and exc.report the whole report."""

    def __init__(self, report: ValidationReport):
        super().__init__(report.summary())
        self.report = report

    def __reduce__(self):  # picklable across processes (the default would pass the message as report)
        return (type(self), (self.report,))


# --- public API ---------------------------------------------------------------------------------------


def validate_dataset(
    name: str,
    arrays: dict[str, Any],
    *,
    num_classes: int,
    shard_plans: dict[int, dict[str, list[int]]],
    vocabulary_size: int | None = None,
) -> ValidationReport:
    """Validate a prepared dataset (``tasks.data.catalog.load`` arrays) and its shard plans.

    The layout is told by the keys of ``arrays`` (see LAYOUTS): ``*_images`` -> images, ``*_features`` ->
    tabular, ``*_tokens`` -> tokens. Keys of no layout, or of more than one, fail with one line
    "layout: ..." naming the keys found and the layouts supported. ``vocabulary_size`` is used by the
    token layout only and defaults to ``num_classes`` (a language model's classes are its vocabulary).

    Images, parts and what they expect:
      arrays       one row per array: images uint8 4-D with one C/H/W across splits, labels integer
                   1-D, every array of a split as long as the split's images, no empty split;
      samples      one row per image (label, per-image pixel min/max/mean, content hash): labels in
                   0..num_classes-1 in both splits, every class present in train, pixel statistics
                   not null (NaN) and within [0, 255] (inf), and at most 1% of validation images
                   byte-identical to a training image (see VALIDATION_NOT_IN_TRAIN_MOSTLY);
      class_balance  one row per class: its share of train within [0.5/num_classes, 2/num_classes];
      shard_plans  one row per (world size, split) of ``tasks.runtime.sharding.shard_plan``: one shard
                   per rank, train shards all one size >= 1, validation sizes differing by at most 1,
                   totals not above the split's size; at least one plan.

    Tabular (train_features/val_features N x D float, train_labels/val_labels 0/1):
      arrays       features float 2-D with one D >= 1 across splits, labels 1-D float/integer/bool,
                   num_classes == 2, every array of a split as long as the split's features, no empty split;
      samples      one row per feature row (label, row min/max/mean/L2 norm, finite flag, content hash),
                   summarised a bounded chunk at a time: labels not null and in {0, 1}, both classes in
                   train, every row finite (no NaN/inf), at most 1% of validation rows byte-identical
                   to a training row;
      class_balance  one row per class: its share of train within [0.2, 0.8] (BINARY_CLASS_SHARE_*);
      shard_plans  as for images.

    Tokens (train_tokens, val_tokens, optional test_tokens):
      arrays       one row per stream: integer dtype, 1-D, non-empty, smallest and largest token id in
                   [0, vocabulary_size), and validation/test not a copy of train (first TOKEN_HEAD tokens);
      shard_plans  one row per (world size, split) of ``tasks.runtime.sharding.column_plan``, against the
                   streams' lengths in tokens: one entry per rank; training blocks all one size >= 1 and
                   together not above the stream; validation not sharded (every rank the same size, not
                   above the stream and more than half of it).
    """
    layout = _layout(arrays)
    suite = f"dataset:{name}"
    if layout is None:
        return _layout_failure(suite, arrays)
    if layout == "images":
        parts = _image_parts(arrays, int(num_classes), shard_plans)
    elif layout == "tabular":
        parts = _tabular_parts(arrays, int(num_classes), shard_plans)
    else:
        vocabulary = int(num_classes if vocabulary_size is None else vocabulary_size)
        parts = _token_parts(arrays, vocabulary, shard_plans)
    return _run_gate(suite, parts)


def validate_result(result: dict, *, expected_world_size: int, suite_name: str | None = None) -> ValidationReport:
    """Validate a parsed result.json: its JSON schema first, then GX expectations on its contents.

    A schema violation fails with "schema: ..." lines and skips the rest. Parts:
      history  one row per epoch: epochs exactly 1..epochs_run, losses not null (finite) and >= 0 (the
               validation loss and metric on evaluated epochs), an accuracy target's metric in [0, 1] and a
               perplexity >= 1,
               cumulative train time non-decreasing;
      run      one row: goal_reached agrees with the history's best metric against the target (and with
               time_to_accuracy_s being set), compute_s + communication_s <= train_time_s (+1e-6),
               time_to_accuracy_s <= wall_time_to_accuracy_s, train_time_s <= wall_time_s, world_size;
      ranks    one row per rank: exactly ranks 0..expected_world_size-1, once each, all with the same
               step count, each with compute + communication <= its train time.
    A failed (e.g. diverged) run is validated the same way: whatever is inconsistent is reported.
    """
    parts = {"history": lambda r, _k: _history_part(r), "run": _run_part, "ranks": _ranks_part}
    return _validate_bundle(result, expected_world_size, suite_name, "result.schema.json", parts)


def validate_communication_result(
    result: dict, *, expected_world_size: int, suite_name: str | None = None
) -> ValidationReport:
    """Validate task 0's result.json (an all-reduce sweep): its JSON schema
    (tasks/runtime/allreduce_result.schema.json) first, then GX expectations on its contents.

    A schema violation fails with "schema: ..." lines and skips the rest. Parts:
      measurements  one row per (dtype, size): latencies not null (finite) and > 0, p10 <= median <= p90,
                    bytes = elements x the dtype's size, algbw = bytes / median latency and busbw = algbw x
                    2(n-1)/n (relative error <= SWEEP_TOLERANCE), sizes strictly increasing per dtype; when
                    completed: exactly the configured sizes for each configured dtype;
      run           one row: world_size as planned, and as configured;
      ranks         one row per rank: exactly ranks 0..expected_world_size-1, once each, every rank measured
                    as many (dtype, size) pairs as rank 0 reports, and no rank saw a wrong sum.
    """
    parts = {"measurements": lambda r, _k: _measurements_part(r), "run": _sweep_run_part, "ranks": _sweep_ranks_part}
    return _validate_bundle(result, expected_world_size, suite_name, "allreduce_result.schema.json", parts)


def _validate_bundle(result: dict, expected_world_size: int, suite_name: str | None, schema_file: str,
                     parts: dict[str, Callable[[dict, int], tuple[Any, list[Any]]]]) -> ValidationReport:
    """The JSON schema first (a violation skips the rest), then each part's frame and expectations."""
    suite = suite_name or _default_result_suite(result)
    errors = _schema_errors(result, schema_file)
    if errors:
        return _schema_failure(suite, errors)
    return _run_gate(suite, [(name, *build(result, int(expected_world_size))) for name, build in parts.items()])


def _schema_failure(suite: str, errors: list[str]) -> ValidationReport:
    lines = [f"schema: {e}" for e in errors[:MAX_SCHEMA_FAILURE_LINES]]
    if len(errors) > MAX_SCHEMA_FAILURE_LINES:
        lines.append(f"schema: ... ({len(errors) - MAX_SCHEMA_FAILURE_LINES} more violations)")
    statistics = {
        "evaluated_expectations": 1,
        "successful_expectations": 0,
        "unsuccessful_expectations": 1,
        "success_percent": 0.0,
    }
    return ValidationReport(suite, False, lines, statistics, {"schema_errors": errors})


def check_dataset(
    name: str,
    arrays: dict[str, Any],
    *,
    num_classes: int,
    shard_plans: dict[int, dict[str, list[int]]],
    vocabulary_size: int | None = None,
) -> ValidationReport:
    """validate_dataset, raising ValidationFailed unless every expectation passed."""
    return _or_raise(
        validate_dataset(
            name, arrays, num_classes=num_classes, shard_plans=shard_plans, vocabulary_size=vocabulary_size
        )
    )


def check_result(result: dict, *, expected_world_size: int, suite_name: str | None = None) -> ValidationReport:
    """validate_result, raising ValidationFailed unless every expectation passed."""
    return _or_raise(validate_result(result, expected_world_size=expected_world_size, suite_name=suite_name))


def _or_raise(report: ValidationReport) -> ValidationReport:
    if not report.success:
        raise ValidationFailed(report)
    return report


# --- GX plumbing --------------------------------------------------------------------------------------

_GX_LOCK = threading.Lock()
_BATCH_DEFINITION: Any = None


def _batch_definition() -> Any:
    """The process's one whole-dataframe batch definition, on a lazily created ephemeral context.

    Every frame is passed in as a batch parameter, so one pandas asset serves every gate and part.
    """
    global _BATCH_DEFINITION
    if _BATCH_DEFINITION is None:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # no usage statistics from workers
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        asset = context.data_sources.add_pandas("mlbench-gates").add_dataframe_asset("frame")
        _BATCH_DEFINITION = asset.add_batch_definition_whole_dataframe("whole-frame")
    return _BATCH_DEFINITION


def _run_gate(suite_name: str, parts: list[tuple[str, Any, list[Any]]]) -> ValidationReport:
    import great_expectations as gx

    failures: list[str] = []
    totals = {"evaluated_expectations": 0, "successful_expectations": 0, "unsuccessful_expectations": 0}
    described: dict[str, Any] = {}
    with _GX_LOCK:
        batch_definition = _batch_definition()
        for part, frame, expectations in parts:
            suite = gx.ExpectationSuite(name=f"{suite_name}/{part}")
            for order, expectation in enumerate(expectations):
                expectation.meta = {**(expectation.meta or {}), "order": order}
                suite.add_expectation(expectation)
            batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
            validation = batch.validate(suite)
            described[part] = validation.describe_dict()
            for key in totals:
                totals[key] += int(validation.statistics.get(key, 0))
            ordered = sorted(validation.results, key=lambda r: (r.expectation_config.meta or {}).get("order", 0))
            failures += [_failure_line(part, r) for r in ordered if not r.success]
    evaluated = totals["evaluated_expectations"]
    totals["success_percent"] = 100.0 * totals["successful_expectations"] / evaluated if evaluated else 100.0
    return ValidationReport(suite_name, not failures, failures, totals, _jsonable(described))


def _where(column: str, value: Any) -> dict[str, Any]:
    """Restrict an expectation to the rows where column == value (a GX Condition, not a query string)."""
    from great_expectations.expectations.row_conditions import Column

    return {"row_condition": Column(column) == value}


def _failure_line(part: str, result: Any) -> str:
    config = result.expectation_config
    kwargs = dict(config.kwargs)
    if "column" in kwargs:
        target = f"{part}.{kwargs['column']}"
    elif "column_A" in kwargs:
        target = f"{part}.{kwargs['column_A']} vs {kwargs['column_B']}"
    else:
        target = f"table {part}"
    condition = kwargs.get("row_condition")
    if condition:
        from great_expectations.expectations.row_conditions import deserialize_row_condition

        condition = deserialize_row_condition(condition)
        if hasattr(condition, "column") and hasattr(condition, "parameter"):
            condition = f"{condition.column.name} {condition.operator} {condition.parameter!r}"
        target += f" [{condition!r}]" if not isinstance(condition, str) else f" [{condition}]"
    return f"{config.type} on {target}: {_observed(result)}{_expected(kwargs)}"


def _observed(result: Any) -> str:
    message = _exception_message(result.exception_info)
    if message:
        return f"error: {message}"
    info = result.result or {}
    if "unexpected_count" in info and "element_count" in info:
        text = f"{info['unexpected_count']} of {info['element_count']} unexpected"
        values = info.get("partial_unexpected_list") or []
        indices = info.get("partial_unexpected_index_list") or []
        if indices and len(indices) == len(values):
            examples = [f"{i}={_fmt(v)}" for i, v in zip(indices, values)]
        else:
            examples = [_fmt(v) for v in values]
        if examples:
            text += ", e.g. " + ", ".join(examples[:EXAMPLES])
        return text
    pieces = []
    if "observed_value" in info and info["observed_value"] is not None:
        pieces.append(f"observed {_fmt(info['observed_value'])}")
    if info.get("partial_missing_list"):
        pieces.append(f"missing {_fmt(list(info['partial_missing_list']))}")
    if info.get("partial_unexpected_list"):
        pieces.append(f"unexpected {_fmt(list(info['partial_unexpected_list']))}")
    if not pieces and "observed_value" in info:
        pieces.append("observed nothing (no values)")
    return ", ".join(pieces) or "failed"


def _expected(kwargs: dict[str, Any]) -> str:
    pieces = []
    if "value_set" in kwargs:
        values = list(kwargs["value_set"])
        pieces.append(f"set {_fmt(values)}" if len(values) <= 12 else f"a set of {len(values)} values")
    if kwargs.get("min_value") is not None or kwargs.get("max_value") is not None:
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        pieces.append(f"{'' if low is None else _fmt(low)}..{'' if high is None else _fmt(high)}")
    if "value" in kwargs:
        pieces.append(_fmt(kwargs["value"]))
    if kwargs.get("mostly") not in (None, 1, 1.0):
        pieces.append(f"mostly {_fmt(kwargs['mostly'])}")
    return f" (expected {', '.join(pieces)})" if pieces else ""


def _exception_message(info: Any) -> str | None:
    if not isinstance(info, dict):
        return None
    if info.get("raised_exception") and info.get("exception_message"):
        return str(info["exception_message"])
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception") and value.get("exception_message"):
            return str(value["exception_message"])
    return None


def _fmt(value: Any) -> str:
    if hasattr(value, "item") and not isinstance(value, (list, tuple, dict)):
        try:
            value = value.item()
        except (TypeError, ValueError):
            pass
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_fmt(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner})"
    return str(value)


def _jsonable(value: Any) -> Any:
    """A JSON-safe copy: numpy scalars as Python numbers, NaN/inf as null, unknown objects as strings."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item"):
        try:
            return _jsonable(value.item())
        except (TypeError, ValueError):
            pass
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return str(value)


# --- dataset layouts ----------------------------------------------------------------------------------


def _layout(arrays: Any) -> str | None:
    """The one layout whose marker keys ``arrays`` has, or None (no layout's keys, or several layouts')."""
    keys = set(arrays) if isinstance(arrays, dict) else set()
    found = [layout for layout, markers in _LAYOUT_MARKERS.items() if keys.intersection(markers)]
    return found[0] if len(found) == 1 else None


def _layout_failure(suite: str, arrays: Any) -> ValidationReport:
    keys = sorted(str(k) for k in arrays) if isinstance(arrays, dict) else []
    matched = [layout for layout, markers in _LAYOUT_MARKERS.items() if set(keys).intersection(markers)]
    supported = "; ".join(
        f"{layout} ({', '.join(LAYOUTS[layout])}"
        + "".join(f", optional {k}" for k in _OPTIONAL_ARRAYS.get(layout, ()))
        + ")"
        for layout in LAYOUTS
    )
    problem = f"mixes the {' and '.join(matched)} layouts" if matched else "matches no supported layout"
    line = f"layout: dataset arrays with keys {keys} {problem}; supported layouts: {supported}"
    statistics = {
        "evaluated_expectations": 1,
        "successful_expectations": 0,
        "unsuccessful_expectations": 1,
        "success_percent": 0.0,
    }
    return ValidationReport(suite, False, [line], statistics, {"layout": {"keys": keys, "matched": matched}})


def _link_duplicates(split: str, frame: Any, train_hashes: dict[str, int]) -> None:
    """Train: remember each hash's first row. Validation: duplicate_of names the training twin, if any."""
    if split == "train":
        for position, digest in enumerate(frame["hash"]):
            if digest is not None:
                train_hashes.setdefault(digest, position)
        frame["duplicate_of"] = None
    else:
        frame["duplicate_of"] = [
            f"train[{train_hashes[d]}]" if d is not None and d in train_hashes else None for d in frame["hash"]
        ]


def _labelled_parts(
    arrays: dict[str, Any],
    shard_plans: dict[int, dict[str, list[int]]],
    *,
    inputs: str,
    array_row: Callable[[str, str, str, Any, int], dict[str, Any]],
    sample_frame: Callable[[str, Any, Any], Any],
    balance_classes: int,
    expectations: tuple[list[Any], list[Any], list[Any]],
) -> list[tuple[str, Any, list[Any]]]:
    """The parts of a dataset of `<split>_<inputs>` plus `<split>_labels` (images or tabular rows)."""
    import pandas as pd

    split_sizes: dict[str, int] = {}
    array_rows, sample_frames = [], []
    train_hashes: dict[str, int] = {}
    for split, prefix in SPLITS:
        values, labels = arrays.get(f"{prefix}_{inputs}"), arrays.get(f"{prefix}_labels")
        split_sizes[split] = _length(values)
        for kind, array in ((inputs, values), ("labels", labels)):
            array_rows.append(array_row(f"{prefix}_{kind}", split, kind, array, split_sizes[split]))
        frame = sample_frame(split, values, labels)
        _link_duplicates(split, frame, train_hashes)
        sample_frames.append(frame)
    array_frame = pd.DataFrame(array_rows, index=pd.Index([r["name"] for r in array_rows], dtype=object))
    samples = pd.concat(sample_frames)
    array_expectations, sample_expectations, balance_expectations = expectations
    return [
        ("arrays", array_frame, array_expectations),
        ("samples", samples, sample_expectations),
        ("class_balance", _class_balance_frame(samples, balance_classes), balance_expectations),
        ("shard_plans", _shard_frame(shard_plans, split_sizes), _shard_expectations()),
    ]


def _image_parts(
    arrays: dict[str, Any], num_classes: int, shard_plans: dict[int, dict[str, list[int]]]
) -> list[tuple[str, Any, list[Any]]]:
    return _labelled_parts(
        arrays, shard_plans, inputs="images", array_row=_array_row, sample_frame=_sample_frame,
        balance_classes=num_classes,
        expectations=(_array_expectations(), _sample_expectations(num_classes), _balance_expectations(num_classes)),
    )


def _tabular_parts(
    arrays: dict[str, Any], num_classes: int, shard_plans: dict[int, dict[str, list[int]]]
) -> list[tuple[str, Any, list[Any]]]:
    return _labelled_parts(
        arrays, shard_plans, inputs="features",
        array_row=lambda name, split, kind, array, size: _tabular_array_row(name, split, kind, array, size, num_classes),
        sample_frame=_row_frame, balance_classes=2,
        expectations=(_tabular_array_expectations(), _row_expectations(), _binary_balance_expectations()),
    )


def _token_parts(
    arrays: dict[str, Any], vocabulary_size: int, shard_plans: dict[int, dict[str, list[int]]]
) -> list[tuple[str, Any, list[Any]]]:
    import pandas as pd

    train = arrays.get("train_tokens")
    rows = []
    for split, prefix in TOKEN_SPLITS:
        key = f"{prefix}_tokens"
        if split == "test" and key not in arrays:
            continue  # test is optional; train and validation are reported even when missing
        rows.append(_token_row(key, split, arrays.get(key), None if split == "train" else train))
    frame = pd.DataFrame(rows, index=pd.Index([r["name"] for r in rows], dtype=object))
    frame = frame.astype({"min_token": "float64", "max_token": "float64"})
    split_sizes = {split: _length(arrays.get(f"{prefix}_tokens")) for split, prefix in SPLITS}
    return [
        ("arrays", frame, _token_expectations(vocabulary_size)),
        ("shard_plans", _shard_frame(shard_plans, split_sizes), _token_shard_expectations()),
    ]


# --- dataset frames -----------------------------------------------------------------------------------


def _length(array: Any) -> int:
    shape = getattr(array, "shape", None)
    return int(shape[0]) if shape else 0


def _array_row(name: str, split: str, kind: str, array: Any, split_images: int) -> dict[str, Any]:
    shape = tuple(getattr(array, "shape", ()))
    four_d = kind == "images" and len(shape) == 4
    return {
        "name": name,
        "split": split,
        "kind": kind,
        "dtype": str(array.dtype) if array is not None and hasattr(array, "dtype") else "missing",
        "ndim": len(shape) if array is not None else None,
        "channels": shape[1] if four_d else None,
        "height": shape[2] if four_d else None,
        "width": shape[3] if four_d else None,
        "count": shape[0] if shape else (None if array is None else 0),
        "split_images": split_images,
    }


def _image_stats(images: Any) -> tuple[Any, Any, Any, list[str | None]]:
    """Per-image pixel min, max, mean (float64) and BLAKE2b-128 content hash, a chunk at a time."""
    import hashlib

    import numpy as np

    n = _length(images)
    mins, maxs, means = (np.full(n, np.nan) for _ in range(3))
    hashes: list[str | None] = [None] * n
    if n == 0:
        return mins, maxs, means, hashes
    for start in range(0, n, _STATS_CHUNK):
        chunk = np.ascontiguousarray(images[start : start + _STATS_CHUNK])
        flat = chunk.reshape(len(chunk), -1)
        stop = start + len(chunk)
        if flat.shape[1] and np.issubdtype(flat.dtype, np.number) and not np.issubdtype(flat.dtype, np.complexfloating):
            with np.errstate(invalid="ignore", over="ignore"):
                mins[start:stop] = flat.min(axis=1)
                maxs[start:stop] = flat.max(axis=1)
                means[start:stop] = flat.mean(axis=1, dtype=np.float64)
        for offset, row in enumerate(flat):
            hashes[start + offset] = hashlib.blake2b(row.tobytes(), digest_size=16).hexdigest()
    return mins, maxs, means, hashes


def _sample_frame(split: str, images: Any, labels: Any) -> Any:
    import numpy as np

    mins, maxs, means, hashes = _image_stats(images)
    if labels is not None and getattr(labels, "ndim", 0) == 1 and np.issubdtype(labels.dtype, np.number):
        label_values = np.asarray(labels)
    else:  # not a 1-D numeric array: no usable labels (the arrays part says why)
        label_values = np.full(_length(labels), np.nan)
    return _per_sample_frame(split, label_values, {"pixel_min": mins, "pixel_max": maxs, "pixel_mean": means,
                                                   "hash": hashes})


def _per_sample_frame(split: str, label_values: Any, columns: dict[str, Any]) -> Any:
    """A split's rows, one per sample: its label and statistics, each column padded with nulls to the
    longest, so a split whose labels and samples differ in number shows it row by row."""
    import numpy as np
    import pandas as pd

    n = max(len(label_values), *(len(values) for values in columns.values()))

    def pad(values: Any) -> Any:
        missing = n - len(values)
        if not missing:
            return values
        if isinstance(values, list):
            return values + [None] * missing
        return np.concatenate([np.asarray(values, dtype=np.float64), np.full(missing, np.nan)])

    return pd.DataFrame(
        {"split": split, "label": pad(label_values), **{name: pad(values) for name, values in columns.items()}},
        index=pd.Index([f"{split}[{i}]" for i in range(n)], dtype=object),
    )


def _class_balance_frame(samples: Any, num_classes: int) -> Any:
    import numpy as np
    import pandas as pd

    labels = samples.loc[samples["split"] == "train", "label"].to_numpy(dtype=np.float64)
    valid = labels[np.isfinite(labels) & (labels == np.round(labels)) & (labels >= 0) & (labels < num_classes)]
    counts = np.bincount(valid.astype(np.int64), minlength=num_classes)[:num_classes]
    total = len(labels)
    shares = counts / total if total else np.full(num_classes, np.nan)
    return pd.DataFrame(
        {"class": np.arange(num_classes), "count": counts, "share": shares},
        index=pd.Index([f"class {k}" for k in range(num_classes)], dtype=object),
    )


def _shard_frame(shard_plans: dict[int, dict[str, list[int]]], split_sizes: dict[str, int]) -> Any:
    import pandas as pd

    rows, index = [], []
    for world_size, plan in sorted((shard_plans or {}).items()):
        for split, _ in SPLITS:
            sizes = [int(s) for s in (plan or {}).get(split, [])]
            rows.append(
                {
                    "world_size": int(world_size),
                    "split": split,
                    "ranks": len(sizes),
                    "distinct_sizes": len(set(sizes)),
                    "min_size": min(sizes) if sizes else None,
                    "max_size": max(sizes) if sizes else None,
                    "spread": max(sizes) - min(sizes) if sizes else None,
                    "total": sum(sizes),
                    "split_size": split_sizes[split],
                    "min_share": min(sizes) / split_sizes[split] if sizes and split_sizes[split] else None,
                }
            )
            index.append(f"w{world_size}/{split}")
    columns = [
        "world_size", "split", "ranks", "distinct_sizes", "min_size", "max_size", "spread", "total", "split_size",
        "min_share",
    ]
    return pd.DataFrame(rows, columns=columns, index=pd.Index(index, dtype=object))


def _array_expectations() -> list[Any]:
    import great_expectations.expectations as gxe

    images, labels = _where("kind", "images"), _where("kind", "labels")
    return [
        gxe.ExpectColumnValuesToBeInSet(column="dtype", value_set=IMAGE_DTYPES, **images),
        gxe.ExpectColumnValuesToBeInSet(column="ndim", value_set=[4], **images),
        *(gxe.ExpectColumnUniqueValueCountToBeBetween(column=c, min_value=1, max_value=1, **images)
          for c in ("channels", "height", "width")),
        gxe.ExpectColumnValuesToBeInSet(column="dtype", value_set=LABEL_DTYPES, **labels),
        gxe.ExpectColumnValuesToBeInSet(column="ndim", value_set=[1], **labels),
        gxe.ExpectColumnValuesToNotBeNull(column="count"),
        gxe.ExpectColumnValuesToBeBetween(column="count", min_value=1),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="count", column_B="split_images"),
    ]


def _sample_expectations(num_classes: int) -> list[Any]:
    import great_expectations.expectations as gxe

    stats = ("pixel_min", "pixel_max", "pixel_mean")
    return [
        gxe.ExpectColumnValuesToNotBeNull(column="label"),
        gxe.ExpectColumnValuesToBeBetween(column="label", min_value=0, max_value=num_classes - 1),
        gxe.ExpectColumnDistinctValuesToContainSet(
            column="label", value_set=list(range(num_classes)), **_where("split", "train")
        ),
        *(gxe.ExpectColumnValuesToNotBeNull(column=c) for c in stats),
        *(gxe.ExpectColumnValuesToBeBetween(column=c, min_value=PIXEL_MIN, max_value=PIXEL_MAX) for c in stats),
        gxe.ExpectColumnValuesToBeNull(
            column="duplicate_of", mostly=VALIDATION_NOT_IN_TRAIN_MOSTLY, **_where("split", "validation")
        ),
    ]


def _balance_expectations(num_classes: int) -> list[Any]:
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectColumnValuesToNotBeNull(column="share"),
        gxe.ExpectColumnValuesToBeBetween(
            column="share",
            min_value=CLASS_SHARE_MIN_FACTOR / num_classes,
            max_value=CLASS_SHARE_MAX_FACTOR / num_classes,
        ),
    ]


def _shard_expectations() -> list[Any]:
    import great_expectations.expectations as gxe

    train, validation = _where("split", "train"), _where("split", "validation")
    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="ranks", column_B="world_size"),
        gxe.ExpectColumnValuesToBeInSet(column="distinct_sizes", value_set=[1], **train),
        gxe.ExpectColumnValuesToBeBetween(column="min_size", min_value=1, **train),
        gxe.ExpectColumnValuesToBeBetween(column="spread", min_value=0, max_value=1, **validation),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="split_size", column_B="total", or_equal=True),
    ]


def _token_shard_expectations() -> list[Any]:
    """A language model's plan: equal blocks of training columns; validation replicated, not sharded."""
    import great_expectations.expectations as gxe

    train, validation = _where("split", "train"), _where("split", "validation")
    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="ranks", column_B="world_size"),
        *(gxe.ExpectColumnValuesToBeInSet(column="distinct_sizes", value_set=[1], **split)
          for split in (train, validation)),
        gxe.ExpectColumnValuesToBeBetween(column="min_size", min_value=1, **train),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="split_size", column_B="total", or_equal=True, **train),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="split_size", column_B="max_size", or_equal=True,
                                                    **validation),
        # whole: all of the stream but the remainder of its last row of columns (far more than half of it)
        gxe.ExpectColumnValuesToBeBetween(column="min_share", min_value=0.5, strict_min=True, **validation),
    ]


# --- tabular and token frames -------------------------------------------------------------------------


def _tabular_array_row(
    name: str, split: str, kind: str, array: Any, split_rows: int, num_classes: int
) -> dict[str, Any]:
    shape = tuple(getattr(array, "shape", ()))
    return {
        "name": name,
        "split": split,
        "kind": kind,
        "dtype": str(array.dtype) if array is not None and hasattr(array, "dtype") else "missing",
        "ndim": len(shape) if array is not None else None,
        "num_features": shape[1] if kind == "features" and len(shape) == 2 else None,
        "num_classes": num_classes if kind == "labels" else None,
        "count": shape[0] if shape else (None if array is None else 0),
        "split_rows": split_rows,
    }


def _row_stats(features: Any) -> tuple[Any, Any, Any, Any, list[bool | None], list[str | None]]:
    """Per-row min, max, mean, L2 norm (float64), finite flag and BLAKE2b-128 hash, a bounded chunk at a time.

    Reads at most _TABULAR_CHUNK_BYTES of features per chunk (plus one float64 copy of the chunk), so a
    memory-mapped matrix of any height is summarised in bounded memory. Non-finite statistics are NaN.
    """
    import hashlib

    import numpy as np

    n = _length(features)
    mins, maxs, means, norms = (np.full(n, np.nan) for _ in range(4))
    finite: list[bool | None] = [None] * n
    hashes: list[str | None] = [None] * n
    if n == 0:
        return mins, maxs, means, norms, finite, hashes
    width = int(np.prod(features.shape[1:], dtype=np.int64)) if features.ndim > 1 else 1
    numeric = np.issubdtype(features.dtype, np.number) and not np.issubdtype(features.dtype, np.complexfloating)
    rows_per_chunk = max(1, _TABULAR_CHUNK_BYTES // max(1, width * features.dtype.itemsize))
    for start in range(0, n, rows_per_chunk):
        chunk = np.ascontiguousarray(features[start : start + rows_per_chunk]).reshape(-1, width)
        stop = start + len(chunk)
        if width and numeric:
            finite[start:stop] = np.isfinite(chunk).all(axis=1).tolist()
            wide = chunk.astype(np.float64)
            with np.errstate(invalid="ignore", over="ignore"):
                mins[start:stop] = wide.min(axis=1)
                maxs[start:stop] = wide.max(axis=1)
                means[start:stop] = wide.mean(axis=1)
                norms[start:stop] = np.sqrt(np.einsum("ij,ij->i", wide, wide))
            del wide
        for offset, row in enumerate(chunk):
            hashes[start + offset] = hashlib.blake2b(row.tobytes(), digest_size=16).hexdigest()
    for values in (mins, maxs, means, norms):
        values[~np.isfinite(values)] = np.nan
    return mins, maxs, means, norms, finite, hashes


def _row_frame(split: str, features: Any, labels: Any) -> Any:
    import numpy as np

    mins, maxs, means, norms, finite, hashes = _row_stats(features)
    if labels is not None and getattr(labels, "ndim", 0) == 1 and (
        np.issubdtype(labels.dtype, np.number) or labels.dtype == np.bool_
    ) and not np.issubdtype(labels.dtype, np.complexfloating):
        label_values = np.asarray(labels, dtype=np.float64)
    else:  # not a 1-D numeric array: no usable labels (the arrays part says why)
        label_values = np.full(_length(labels), np.nan)
    return _per_sample_frame(split, label_values, {"feature_min": mins, "feature_max": maxs, "feature_mean": means,
                                                   "l2_norm": norms, "finite": finite, "hash": hashes})


def _token_row(name: str, split: str, tokens: Any, train: Any) -> dict[str, Any]:
    """One stream's summary: dtype, shape, smallest/largest id (chunked), and whether its head copies train's."""
    import numpy as np

    shape = tuple(getattr(tokens, "shape", ()))
    low = high = None
    numeric = tokens is not None and hasattr(tokens, "dtype") and (
        np.issubdtype(tokens.dtype, np.number) and not np.issubdtype(tokens.dtype, np.complexfloating)
    )
    if numeric and tokens.size:
        flat = tokens.reshape(-1)  # a view for the contiguous (memory-mapped) streams catalog.load returns
        lows, highs = [], []
        for start in range(0, len(flat), _TOKEN_CHUNK):
            chunk = flat[start : start + _TOKEN_CHUNK]
            lows.append(chunk.min())
            highs.append(chunk.max())
        low, high = np.min(lows).item(), np.max(highs).item()  # NaN (float tokens) propagates to null
    copy_of = None
    if (
        train is not None
        and numeric
        and len(shape) == 1
        and getattr(train, "ndim", 0) == 1
        and hasattr(train, "dtype")
        and np.issubdtype(train.dtype, np.number)
    ):
        k = min(TOKEN_HEAD, len(train), len(tokens))
        if k and np.array_equal(np.asarray(train[:k]), np.asarray(tokens[:k])):
            copy_of = f"train_tokens[:{k}]"
    return {
        "name": name,
        "split": split,
        "dtype": str(tokens.dtype) if tokens is not None and hasattr(tokens, "dtype") else "missing",
        "ndim": len(shape) if tokens is not None else None,
        "count": (int(np.prod(shape, dtype=np.int64)) if shape else 0) if tokens is not None else None,
        "min_token": low,
        "max_token": high,
        "copy_of": copy_of,
    }


def _tabular_array_expectations() -> list[Any]:
    import great_expectations.expectations as gxe

    features, labels = _where("kind", "features"), _where("kind", "labels")
    return [
        gxe.ExpectColumnValuesToBeInSet(column="dtype", value_set=FEATURE_DTYPES, **features),
        gxe.ExpectColumnValuesToBeInSet(column="ndim", value_set=[2], **features),
        gxe.ExpectColumnUniqueValueCountToBeBetween(column="num_features", min_value=1, max_value=1, **features),
        gxe.ExpectColumnValuesToBeBetween(column="num_features", min_value=1, **features),
        gxe.ExpectColumnValuesToBeInSet(column="dtype", value_set=BINARY_LABEL_DTYPES, **labels),
        gxe.ExpectColumnValuesToBeInSet(column="ndim", value_set=[1], **labels),
        gxe.ExpectColumnValuesToBeInSet(column="num_classes", value_set=[2], **labels),
        gxe.ExpectColumnValuesToNotBeNull(column="count"),
        gxe.ExpectColumnValuesToBeBetween(column="count", min_value=1),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="count", column_B="split_rows"),
    ]


def _row_expectations() -> list[Any]:
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectColumnValuesToNotBeNull(column="label"),
        gxe.ExpectColumnValuesToBeInSet(column="label", value_set=[0, 1]),
        gxe.ExpectColumnDistinctValuesToContainSet(column="label", value_set=[0, 1], **_where("split", "train")),
        gxe.ExpectColumnValuesToBeInSet(column="finite", value_set=[True]),
        gxe.ExpectColumnValuesToBeNull(
            column="duplicate_of", mostly=VALIDATION_NOT_IN_TRAIN_MOSTLY, **_where("split", "validation")
        ),
    ]


def _binary_balance_expectations() -> list[Any]:
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectColumnValuesToNotBeNull(column="share"),
        gxe.ExpectColumnValuesToBeBetween(
            column="share", min_value=BINARY_CLASS_SHARE_MIN, max_value=BINARY_CLASS_SHARE_MAX
        ),
    ]


def _token_expectations(vocabulary_size: int) -> list[Any]:
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectColumnValuesToBeInSet(column="dtype", value_set=TOKEN_DTYPES),
        gxe.ExpectColumnValuesToBeInSet(column="ndim", value_set=[1]),
        gxe.ExpectColumnValuesToNotBeNull(column="count"),
        gxe.ExpectColumnValuesToBeBetween(column="count", min_value=1),
        *(gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0, max_value=vocabulary_size - 1)
          for c in ("min_token", "max_token")),
        gxe.ExpectColumnValuesToBeNull(column="copy_of"),
    ]


# --- result frames ------------------------------------------------------------------------------------

_HISTORY_COLUMNS = (
    "lr", "train_loss", "validation_metric", "validation_loss", "epoch_time_s", "train_time_s",
    "cumulative_train_time_s",
)


def _default_result_suite(result: Any) -> str:
    if not isinstance(result, dict):
        return "result:?"
    return f"result:{result.get('task', '?')}__{result.get('algorithm', '?')}__w{result.get('world_size', '?')}"


def _schema_errors(result: Any, schema_file: str) -> list[str]:
    import importlib.resources

    import jsonschema

    schema = json.loads(importlib.resources.files("tasks.runtime").joinpath(schema_file).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(result), key=lambda e: [str(p) for p in e.absolute_path])
    lines = []
    for error in errors:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        message = error.message if len(error.message) <= 200 else error.message[:197] + "..."
        lines.append(f"{where}: {message}")
    return lines


def _number(value: Any) -> float | None:
    """A finite float, or None: NaN/inf (and anything not a number) become null, so not-null catches them."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _history_part(result: dict) -> tuple[Any, list[Any]]:
    import great_expectations.expectations as gxe
    import pandas as pd

    config = result.get("config") or {}
    every = config.get("eval_every_epochs")
    every = every if isinstance(every, int) and every >= 1 else 1
    max_epochs = config.get("max_epochs")
    rows = []
    for row in result["history"]:
        epoch = int(row["epoch"])
        rows.append(
            {
                "epoch": epoch,
                "evaluated": epoch % every == 0 or epoch == max_epochs,
                **{c: _number(row.get(c)) for c in _HISTORY_COLUMNS},
            }
        )
    frame = pd.DataFrame(rows, columns=["epoch", "evaluated", *_HISTORY_COLUMNS])
    frame = frame.astype({"epoch": "int64", "evaluated": "bool", **{c: "float64" for c in _HISTORY_COLUMNS}})
    frame.index = pd.Index([f"epoch {e}" for e in frame["epoch"]], dtype=object)
    epochs_run = int(result["epochs_run"])
    evaluated = _where("evaluated", True)
    expectations = [
        gxe.ExpectTableRowCountToEqual(value=epochs_run),
        gxe.ExpectColumnValuesToBeIncreasing(column="epoch", strictly=True),
        gxe.ExpectColumnValuesToBeBetween(column="epoch", min_value=1, max_value=max(epochs_run, 1)),
        gxe.ExpectColumnValuesToNotBeNull(column="train_loss"),
        gxe.ExpectColumnValuesToBeBetween(column="train_loss", min_value=0),
        gxe.ExpectColumnValuesToNotBeNull(column="validation_loss", **evaluated),
        gxe.ExpectColumnValuesToBeBetween(column="validation_loss", min_value=0),
        gxe.ExpectColumnValuesToNotBeNull(column="validation_metric", **evaluated),
    ]
    if result["target"]["metric"] in ACCURACY_METRICS:
        expectations.append(gxe.ExpectColumnValuesToBeBetween(column="validation_metric", min_value=0, max_value=1))
    elif result["target"]["metric"] == "perplexity":  # exp of a cross-entropy, which is >= 0
        expectations.append(gxe.ExpectColumnValuesToBeBetween(column="validation_metric", min_value=1))
    expectations.append(gxe.ExpectColumnValuesToBeIncreasing(column="cumulative_train_time_s"))
    return frame, expectations


def _run_part(result: dict, expected_world_size: int) -> tuple[Any, list[Any]]:
    import great_expectations.expectations as gxe
    import pandas as pd

    mode = result["target"]["mode"]
    metrics = [m for m in (_number(r.get("validation_metric")) for r in result["history"]) if m is not None]
    best = (max(metrics) if mode == "max" else min(metrics)) if metrics else None
    train_time = _number(result["train_time_s"])
    compute, communication = _number(result["compute_s"]), _number(result["communication_s"])
    frame = pd.DataFrame(
        {
            "goal_reached": bool(result["goal_reached"]),
            "history_best_metric": best,
            "target_value": _number(result["target"]["value"]),
            "time_to_accuracy_s": _number(result["time_to_accuracy_s"]),
            "wall_time_to_accuracy_s": _number(result["wall_time_to_accuracy_s"]),
            "train_time_s": train_time,
            "train_time_s_with_tolerance": None if train_time is None else train_time + TIME_TOLERANCE_S,
            "compute_plus_communication_s": None if None in (compute, communication) else compute + communication,
            "wall_time_s": _number(result["wall_time_s"]),
            "world_size": int(result["world_size"]),
            "expected_world_size": expected_world_size,
        },
        index=pd.Index(["run"], dtype=object),
    )
    exact = ("goal_reached", "world_size", "expected_world_size")
    frame = frame.astype({c: "float64" for c in frame.columns if c not in exact})
    reached, missed = _where("goal_reached", True), _where("goal_reached", False)
    # mode "max": reached <=> best >= target; mode "min": reached <=> best <= target.
    better, worse = "history_best_metric", "target_value"
    if mode == "min":
        better, worse = worse, better
    return frame, [
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A=better, column_B=worse, or_equal=True, **reached),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A=worse, column_B=better, or_equal=False, ignore_row_if="either_value_is_missing", **missed
        ),
        gxe.ExpectColumnValuesToNotBeNull(column="time_to_accuracy_s", **reached),
        gxe.ExpectColumnValuesToBeNull(column="time_to_accuracy_s", **missed),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="train_time_s_with_tolerance", column_B="compute_plus_communication_s", or_equal=True
        ),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="wall_time_to_accuracy_s", column_B="time_to_accuracy_s", or_equal=True,
            ignore_row_if="either_value_is_missing",
        ),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="wall_time_s", column_B="train_time_s", or_equal=True),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="world_size", column_B="expected_world_size"),
    ]


def _ranks_part(result: dict, expected_world_size: int) -> tuple[Any, list[Any]]:
    import great_expectations.expectations as gxe
    import pandas as pd

    rows = []
    for entry in result["ranks"]:
        train_time = _number(entry.get("train_time_s"))
        compute, communication = _number(entry.get("compute_s")), _number(entry.get("communication_s"))
        rows.append(
            {
                "rank": int(entry["rank"]),
                "steps": int(entry["steps"]) if isinstance(entry.get("steps"), int) else None,
                "train_time_s_with_tolerance": None if train_time is None else train_time + TIME_TOLERANCE_S,
                "compute_plus_communication_s": None if None in (compute, communication) else compute + communication,
            }
        )
    columns = ["rank", "steps", "train_time_s_with_tolerance", "compute_plus_communication_s"]
    frame = pd.DataFrame(rows, columns=columns)
    frame = frame.astype({"train_time_s_with_tolerance": "float64", "compute_plus_communication_s": "float64"})
    frame.index = pd.Index([f"rank {r}" for r in frame["rank"]], dtype=object)
    return frame, [
        gxe.ExpectTableRowCountToEqual(value=expected_world_size),
        gxe.ExpectColumnValuesToBeUnique(column="rank"),
        gxe.ExpectColumnDistinctValuesToEqualSet(column="rank", value_set=list(range(expected_world_size))),
        gxe.ExpectColumnValuesToNotBeNull(column="steps"),
        gxe.ExpectColumnUniqueValueCountToBeBetween(column="steps", min_value=1, max_value=1),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="train_time_s_with_tolerance", column_B="compute_plus_communication_s", or_equal=True
        ),
    ]


# --- communication (task 0) result frames -------------------------------------------------------------


def _relative_error(value: float | None, expected: float | None, scale: float | None = None) -> float | None:
    """|value - expected| / scale (default: expected); None when either is missing or the scale is not > 0."""
    scale = expected if scale is None else scale
    if value is None or expected is None or scale is None or scale <= 0:
        return None
    return abs(value - expected) / scale


def _measurements_part(result: dict) -> tuple[Any, list[Any]]:
    import great_expectations.expectations as gxe
    import pandas as pd

    from tasks.communication import DTYPE_BYTES, bus_factor

    busbw_factor = bus_factor(int(result["world_size"]))
    rows = []
    for row in result["measurements"]:
        median = _number(row["latency_median_s"])
        algbw = _number(row["algbw_gbps"])
        recomputed_algbw = row["bytes"] / median / 1e9 if median else None
        rows.append({
            "dtype": row["dtype"],
            "elements": int(row["elements"]),
            "bytes": int(row["bytes"]),
            "expected_bytes": int(row["elements"]) * DTYPE_BYTES[row["dtype"]],  # tasks.communication
            "latency_p10_s": _number(row["latency_p10_s"]),
            "latency_median_s": median,
            "latency_p90_s": _number(row["latency_p90_s"]),
            "algbw_relative_error": _relative_error(algbw, recomputed_algbw),
            # relative to algbw, not to busbw itself: one rank's busbw is 0
            "busbw_relative_error": _relative_error(_number(row["busbw_gbps"]),
                                                    None if algbw is None else algbw * busbw_factor, scale=algbw),
        })
    numbers = ("latency_p10_s", "latency_median_s", "latency_p90_s", "algbw_relative_error", "busbw_relative_error")
    frame = pd.DataFrame(rows, columns=["dtype", "elements", "bytes", "expected_bytes", *numbers])
    frame = frame.astype({"elements": "int64", "bytes": "int64", "expected_bytes": "int64",
                          **{c: "float64" for c in numbers}})
    frame.index = pd.Index([f"{r['dtype']} {r['elements']}" for r in rows], dtype=object)
    config = result["config"]
    expectations: list[Any] = []
    for column in ("latency_p10_s", "latency_median_s", "latency_p90_s"):
        expectations += [
            gxe.ExpectColumnValuesToNotBeNull(column=column),
            gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0, strict_min=True),
        ]
    expectations += [
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="latency_median_s", column_B="latency_p10_s",
                                                    or_equal=True),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="latency_p90_s", column_B="latency_median_s",
                                                    or_equal=True),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="bytes", column_B="expected_bytes"),
        gxe.ExpectColumnValuesToBeBetween(column="algbw_relative_error", min_value=0, max_value=SWEEP_TOLERANCE),
        gxe.ExpectColumnValuesToBeBetween(column="busbw_relative_error", min_value=0, max_value=SWEEP_TOLERANCE),
        gxe.ExpectColumnValuesToNotBeNull(column="busbw_relative_error"),
        gxe.ExpectColumnValuesToBeInSet(column="dtype", value_set=list(config["dtypes"])),
    ]
    for dtype in config["dtypes"]:
        expectations.append(gxe.ExpectColumnValuesToBeIncreasing(column="elements", strictly=True,
                                                                 **_where("dtype", dtype)))
    if result["status"] == "completed":  # a failed sweep reports what it measured, maybe nothing
        expectations.append(gxe.ExpectTableRowCountToEqual(value=len(config["sizes"]) * len(config["dtypes"])))
        for dtype in config["dtypes"]:
            expectations.append(gxe.ExpectColumnDistinctValuesToEqualSet(
                column="elements", value_set=list(config["sizes"]), **_where("dtype", dtype)))
    return frame, expectations


def _sweep_run_part(result: dict, expected_world_size: int) -> tuple[Any, list[Any]]:
    import great_expectations.expectations as gxe
    import pandas as pd

    frame = pd.DataFrame(
        {"world_size": int(result["world_size"]), "expected_world_size": expected_world_size,
         "config_world_size": int(result["config"]["world_size"])},
        index=pd.Index(["run"], dtype=object),
    )
    return frame, [
        gxe.ExpectColumnPairValuesToBeEqual(column_A="world_size", column_B="expected_world_size"),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="world_size", column_B="config_world_size"),
    ]


def _sweep_ranks_part(result: dict, expected_world_size: int) -> tuple[Any, list[Any]]:
    import great_expectations.expectations as gxe
    import pandas as pd

    rows = [{"rank": int(r["rank"]), "measurements": int(r["measurements"]), "wrong_elements": int(r["wrong_elements"])}
            for r in result["ranks"]]
    frame = pd.DataFrame(rows, columns=["rank", "measurements", "wrong_elements"])
    frame.index = pd.Index([f"rank {r}" for r in frame["rank"]], dtype=object)
    expectations = [
        gxe.ExpectColumnValuesToBeInSet(column="wrong_elements", value_set=[0]),
    ]
    if result["status"] == "completed":  # ranks report only once everyone has measured
        measured = len(result["measurements"])
        expectations = [
            gxe.ExpectTableRowCountToEqual(value=expected_world_size),
            gxe.ExpectColumnValuesToBeUnique(column="rank"),
            gxe.ExpectColumnDistinctValuesToEqualSet(column="rank", value_set=list(range(expected_world_size))),
            gxe.ExpectColumnValuesToBeBetween(column="measurements", min_value=measured, max_value=measured),
            *expectations,
        ]
    return frame, expectations
