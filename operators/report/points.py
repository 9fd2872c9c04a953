"""Metric points as a run logs them: `(key, value, timestamp in ms, step)`.

The task kinds (`training`, `communication`) decide which points a run gets; `operators.tracking`
makes the keys valid for MLflow and logs them. Timestamps of a configuration's points come from
the run's own clock (`millis` of its `started_at` / `finished_at`), so the same result always
gives the same points.
"""

from __future__ import annotations

import datetime
import time
from typing import Any

from operators.report.outcome import ConfigurationOutcome

__all__ = ["Point", "millis", "now_ms", "configuration_counts"]

Point = tuple[str, float, int, int]


def millis(stamp: Any) -> int | None:
    """An ISO 8601 time (UTC if it names no zone) in ms since the epoch; None if it is not one."""
    if not isinstance(stamp, str):
        return None
    try:
        parsed = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return int(parsed.timestamp() * 1000)


def now_ms() -> int:
    return int(time.time() * 1000)


def configuration_counts(outcomes: list[ConfigurationOutcome]) -> dict[str, float]:
    """What every parent run counts: its configurations, and those that failed."""
    return {"configurations": float(len(outcomes)),
            "failed_configurations": float(sum(1 for o in outcomes if not o.succeeded))}
