"""Dotted field overrides (`--set optimizer.lr=0.05`): the one language presets and users share.

A value arrives as text and is typed like the value it replaces: `true`/`false` for flags, a
whole number for an int, a number for a float, a JSON list for a tuple (a list of names may also
be written `a,b` or as one name), a JSON object for a free-form options mapping (it replaces the
mapping), `none` to clear an optional field. Fields computed at resolution (a config class's
`DERIVED` map) cannot be set; the error
says what to set instead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tasks.errors import UserError, quoted


def apply_overrides(values: dict[str, Any], overrides: Mapping[str, str], *, derived: Mapping[str, str],
                    owner: str, options_fields: tuple[str, ...] = ("options",)) -> None:
    """Set each dotted field of `values` (a nested dict) in place, in order."""
    for path, raw in overrides.items():
        apply_override(values, path, raw, derived=derived, owner=owner, options_fields=options_fields)


def apply_override(values: dict[str, Any], path: str, raw: str, *, derived: Mapping[str, str], owner: str,
                   options_fields: tuple[str, ...] = ("options",)) -> None:
    parts = path.split(".")
    if parts[0] in derived:
        raise UserError(f"{quoted(path)} cannot be set; it comes from {derived[parts[0]]}")
    node = values
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            raise UserError(f"unknown config field {quoted(path)} for task {owner}; "
                            "see `mlbench tasks show` for valid fields")
        node = node[part]
    leaf = parts[-1]
    replaces_options = leaf in options_fields and isinstance(node.get(leaf), dict)
    if leaf not in node or (isinstance(node[leaf], dict) and not replaces_options):
        settable = sorted(k for k, v in node.items() if not isinstance(v, dict) and k not in derived)
        raise UserError(f"unknown config field {quoted(path)} for task {owner}; valid: {', '.join(settable)}")
    node[leaf] = parse_like(path, raw, node[leaf])


def parse_like(path: str, raw: str, current: Any) -> Any:
    """`raw` typed like `current`; a UserError naming the field and the expected form otherwise."""
    try:
        return _parse(raw, current)
    except (ValueError, TypeError, json.JSONDecodeError):
        raise UserError(f"bad value {quoted(raw)} for {quoted(path)}: expected {_expected(current)}") from None


def _parse(raw: str, current: Any) -> Any:
    if isinstance(current, bool):
        if raw.lower() not in ("true", "false", "1", "0"):
            raise ValueError(raw)
        return raw.lower() in ("true", "1")
    if isinstance(current, int):
        return int(raw)
    if isinstance(current, float):
        return float(raw)
    if isinstance(current, (tuple, list)):
        return _parse_list(raw, names=bool(current) and all(isinstance(item, str) for item in current))
    if isinstance(current, dict):
        parsed = json.loads(raw)
        if not isinstance(parsed, dict):
            raise TypeError(raw)
        return parsed
    if current is None:
        return None if raw.lower() in ("none", "null", "") else _scalar(raw)
    return raw


def _parse_list(raw: str, *, names: bool) -> tuple[Any, ...]:
    """A JSON list (`[82,109]`); a list of names also as `fp32,fp16` or one name (`fp16`)."""
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError:
        parsed = None
    if isinstance(parsed, list):
        return tuple(parsed)
    if not names:
        raise TypeError(raw)
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _scalar(raw: str) -> Any:
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw


def _expected(current: Any) -> str:
    if isinstance(current, bool):
        return "true or false"
    if isinstance(current, int):
        return f"a whole number like {current!r}"
    if isinstance(current, float):
        return f"a number like {current!r}"
    if isinstance(current, (tuple, list)):
        return "a JSON list, e.g. [82,109]"
    if isinstance(current, dict):
        return 'a JSON object, e.g. {"hidden_size": 256}'
    return f"{type(current).__name__} like {current!r}"
