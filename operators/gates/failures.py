"""One short line per failed expectation: what was checked, on which part and column, what was seen."""

from __future__ import annotations

import math
from typing import Any

EXAMPLES = 3  # unexpected values quoted in one failure line


def failure_line(part: str, result: Any) -> str:
    """``<expectation type> on <part>.<column> [<row condition>]: <observed> (expected <kwargs>)``."""
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
            examples = [f"{i}={_fmt(v)}" for i, v in zip(indices, values, strict=True)]
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
