"""What MLflow accepts: valid keys, texts cut at MLflow's limits (mlflow.utils.validation), and a
nested dict as dotted params. Values beyond the limits would be rejected or cut by MLflow itself."""

from __future__ import annotations

import json
import posixpath
import re
from typing import Any

__all__ = ["MAX_PARAM_VALUE", "MAX_TAG_VALUE", "mlflow_key", "text", "flatten_params", "tag_values"]

MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_KEY = 250
_TRUNCATED = "...[truncated]"


def mlflow_key(name: str) -> str:
    """A valid MLflow param/metric/tag key: alphanumerics _ - . space : / only, no path tricks.
    Idempotent: a valid key is its own key."""
    key = re.sub(r"[^\w.\- :/]", "_", str(name))[:MAX_KEY] or "_"
    if posixpath.normpath(key) != key or key in (".", "..") or key.startswith(("/", "..")):
        key = ("_" + key.replace("/", "_"))[:MAX_KEY]
    return key


def text(value: Any, limit: int) -> str:
    """`value` as MLflow text: strings as they are, dicts and lists as JSON, the rest `str()`; cut
    at `limit` characters with a `...[truncated]` mark."""
    if isinstance(value, str):
        out = value
    elif isinstance(value, (dict, list, tuple)):
        out = json.dumps(value, default=str)
    else:
        out = str(value)
    if len(out) > limit:
        out = out[: limit - len(_TRUNCATED)] + _TRUNCATED
    return out


def flatten_params(data: dict, prefix: str = "") -> dict[str, str]:
    """Nested dict -> `{"a.b.c": "value"}`: valid keys, lists (and empty dicts) as JSON strings,
    other scalars as `str()` (MLflow's own convention), values cut at MLflow's 6000 characters."""
    flat: dict[str, str] = {}
    for name, value in data.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict) and value:
            flat.update(flatten_params(value, key + "."))
        else:
            flat[mlflow_key(key)] = text(value, MAX_PARAM_VALUE)
    return flat


def tag_values(tags: dict[str, Any]) -> dict[str, str]:
    """Tags as MLflow takes them: valid keys, texts cut at 8000 characters, None values left out."""
    return {mlflow_key(k): text(v, MAX_TAG_VALUE) for k, v in tags.items() if v is not None}
