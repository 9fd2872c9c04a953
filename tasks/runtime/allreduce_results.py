"""Task 0's results bundle (`result.json`), without torch: the Airflow side writes a failed record
when no rank could (its plot is `tasks.plots.plot_result`).

Its schema is `allreduce_result.schema.json` beside this module (documented in the README).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tasks.communication import CommunicationConfig
from tasks.runtime.results import run_identity, utc_now

SCHEMA_VERSION = "1.0"
SCHEMA_PATH = Path(__file__).with_name("allreduce_result.schema.json")


def base_result(config: CommunicationConfig) -> dict[str, Any]:
    """The fields known before measuring; a sweep that fails early still records these."""
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": config.kind,
        "status": "failed",
        "reason": None,
        **run_identity(config),
        "config": config.to_dict(),
        "config_hash": config.config_hash(),
        "provenance": {},
        "measurements": [],
        "ranks": [],
        "wall_time_s": 0.0,
        "started_at": utc_now(),
        "finished_at": utc_now(),
    }


def failed_result(config: CommunicationConfig, reason: str, provenance: dict | None = None) -> dict[str, Any]:
    return {**base_result(config), "reason": reason, "provenance": provenance or {}}
