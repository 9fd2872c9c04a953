"""A dataset preparer slow enough to be killed mid-build, in a module spawned processes import."""

from __future__ import annotations

import os
import time
from functools import partial
from pathlib import Path

import numpy as np

NAME, VERSION = "toy", "v1"


def _slow_build(scratch: Path, started: str, delay_s: float):
    Path(started).write_text(str(os.getpid()))
    time.sleep(delay_s)
    return {"x": np.arange(100, dtype=np.int64)}, {"note": "toy"}


def prepare_slowly(root: str, started: str, delay_s: float) -> None:
    """Prepare the toy dataset under `root`; a build writes `started` first, then takes `delay_s`."""
    from tasks.data.store import prepare_dataset

    prepare_dataset(Path(root), NAME, VERSION, partial(_slow_build, started=started, delay_s=delay_s),
                    log=lambda message: None)
