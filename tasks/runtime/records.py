"""Typed JSON records: a dataclass that is one JSON object of a result.json, written in its documented
layout (`to_dict`) and read back by type hint (`from_dict`), with `ResultError` naming the field of a
document that does not fit. The results (tasks.runtime.results) and the epoch history
(tasks.runtime.history) are such records. Torch-free.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import types
import typing
from typing import Any, ClassVar, TypeVar, Union, get_type_hints

RecordT = TypeVar("RecordT", bound="Record")


class ResultError(ValueError):
    """A result.json that is not a record of its kind (a missing field, a value of the wrong type)."""


def finite_number(value: Any) -> float | None:
    """`value` as a finite float, or None: None, bools, strings, NaN and infinities are not numbers here."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------
# Reading and writing records: one generic walk over the dataclass fields, by type hint
# ---------------------------------------------------------------------------------------------

class Record:
    """A dataclass that is one JSON object of result.json: `to_dict` and `from_dict` by type hint.

    Keys come in `LAYOUT` order (the documented layout; fields not named there follow in field
    order), and a field named in `OMIT_IF_NONE` is left out while it is None. Fields named in
    `OPTIONAL` may be absent from a document (they take their default).
    """

    LAYOUT: ClassVar[tuple[str, ...]] = ()
    OMIT_IF_NONE: ClassVar[frozenset[str]] = frozenset()
    OPTIONAL: ClassVar[frozenset[str]] = frozenset()

    def to_dict(self) -> dict[str, Any]:
        names = [f.name for f in dataclasses.fields(self)]  # type: ignore[arg-type]
        ordered = [name for name in self.LAYOUT if name in names] + [n for n in names if n not in self.LAYOUT]
        return {name: _plain(getattr(self, name)) for name in ordered
                if not (name in self.OMIT_IF_NONE and getattr(self, name) is None)}

    @classmethod
    def from_dict(cls: type[RecordT], data: Any, path: str = "") -> RecordT:
        """The record of a parsed JSON object; ResultError naming the field (`history[1].lr`) that does
        not fit. Every field must be present except those in `OPTIONAL`."""
        label = path or cls.__name__
        if not isinstance(data, dict):
            raise ResultError(f"{label}: expected an object, got {_type_name(data)}")
        hints = get_type_hints(cls)
        kwargs = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name in data:
                kwargs[f.name] = _typed(hints[f.name], data[f.name], f"{path}.{f.name}" if path else f.name)
            elif f.name not in cls.OPTIONAL:
                raise ResultError(f"{label}: missing field '{f.name}'")
        return cls(**kwargs)


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _typed(hint: Any, value: Any, where: str) -> Any:
    """`value` checked against `hint` (records rebuilt, lists walked; dicts and Any taken as they are)."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        return _typed(next(o for o in options if o is not type(None)), value, where)
    if isinstance(hint, type) and issubclass(hint, Record):
        return hint.from_dict(value, where)
    if origin is list:
        if not isinstance(value, list):
            raise ResultError(f"{where}: expected a list, got {_type_name(value)}")
        (item,) = typing.get_args(hint)
        return [_typed(item, entry, f"{where}[{index}]") for index, entry in enumerate(value)]
    expected = {float: (int, float), int: (int,), bool: (bool,), str: (str,), dict: (dict,)}.get(origin or hint)
    if expected is not None and (not isinstance(value, expected) or (hint is not bool and isinstance(value, bool))):
        raise ResultError(f"{where}: expected {getattr(origin or hint, '__name__', hint)}, got {_type_name(value)}")
    return value
