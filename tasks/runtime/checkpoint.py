"""Per-epoch checkpoints that a restarted run resumes from (Airflow retries, preempted nodes).

Each rank saves its own file (batch-norm statistics differ per rank); after a barrier, rank 0
publishes `latest.json`, so a crash mid-save never leaves a half-written checkpoint as the latest.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from tasks.errors import UserError


def _rank_file(directory: Path, epoch: int, rank: int) -> Path:
    return directory / f"epoch-{epoch:04d}-rank{rank}.pt"


def save_rank(directory: Path, epoch: int, rank: int, payload: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    target = _rank_file(directory, epoch, rank)
    tmp = target.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, target)


def publish(directory: Path, epoch: int, config_hash: str) -> None:
    """Mark `epoch` as the latest complete checkpoint (rank 0, after every rank has saved)."""
    tmp = directory / "latest.json.tmp"
    tmp.write_text(json.dumps({"epoch": epoch, "config_hash": config_hash}))
    os.replace(tmp, directory / "latest.json")


def prune(directory: Path, keep_epoch: int, rank: int) -> None:
    for path in directory.glob(f"epoch-*-rank{rank}.pt"):
        if path != _rank_file(directory, keep_epoch, rank):
            path.unlink(missing_ok=True)


def check_resumable(directory: Path, config_hash: str) -> int | None:
    """The epoch a run with this config would resume after (None: fresh start); refuses others' checkpoints."""
    marker = directory / "latest.json"
    if not marker.exists():
        return None
    latest = json.loads(marker.read_text())
    if latest["config_hash"] != config_hash:
        raise UserError(
            f"{directory} holds checkpoints of a different configuration (hash {latest['config_hash']}, "
            f"this run {config_hash}); use a fresh --output directory or delete that one"
        )
    return latest["epoch"]


def load_latest(directory: Path, rank: int, config_hash: str) -> dict[str, Any] | None:
    epoch = check_resumable(directory, config_hash)
    if epoch is None:
        return None
    latest = {"epoch": epoch}
    path = _rank_file(directory, latest["epoch"], rank)
    if not path.exists():
        raise UserError(f"checkpoint {path} is missing although latest.json names epoch {latest['epoch']}")
    return torch.load(path, map_location="cpu", weights_only=False)
