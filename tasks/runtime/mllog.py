"""The MLPerf `:::MLLOG` event log of a run, written by rank 0 with MLPerf's own logger."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mlperf_logging.mllog import constants
from mlperf_logging.mllog.mllog import MLLogger


class RunLog:
    """Thin wrapper: a no-op on ranks other than 0, one file per run directory (appended on resume)."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.enabled = enabled
        self._logger: MLLogger | None = None
        if enabled:
            logger = logging.getLogger(f"mlbench.mllog.{path}")
            logger.propagate = False
            logger.setLevel(logging.INFO)
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            handler = logging.FileHandler(path)
            handler.setFormatter(logging.Formatter("%(message)s"))
            logger.addHandler(handler)
            self._handler = handler
            self._logger = MLLogger(logger=logger, default_stack_offset=2)

    def event(self, key: str, value: Any = None, **metadata: Any) -> None:
        if self._logger:
            self._logger.event(key=key, value=value, metadata=metadata or None)

    def start(self, key: str, value: Any = None, **metadata: Any) -> None:
        if self._logger:
            self._logger.start(key=key, value=value, metadata=metadata or None)

    def end(self, key: str, value: Any = None, **metadata: Any) -> None:
        if self._logger:
            self._logger.end(key=key, value=value, metadata=metadata or None)

    def close(self) -> None:
        if self._logger:
            self._handler.close()


__all__ = ["RunLog", "constants"]
