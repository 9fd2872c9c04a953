"""Per-epoch checkpoints that a restarted run resumes from (Airflow retries, preempted nodes).

Each rank saves its own file (batch-norm statistics differ per rank); after a barrier, rank 0
publishes `latest.json`, so a crash mid-save never leaves a half-written checkpoint as the latest.
The two newest complete epochs are kept: a resume whose latest files are damaged (truncated,
corrupted, deleted) falls back to the one before. Every rank reaches the same answer, since each
checks every rank's files in the shared directory.

Files are read with `torch.load(weights_only=True)`: the results volume is shared, and a pickle
planted there must not run code in the next training pod. What the trainer saves (state dicts,
numbers, strings, lists, dicts) loads under that rule; anything else is refused.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from tasks.errors import UserError

MARKER = "latest.json"


def _rank_file(directory: Path, epoch: int, rank: int) -> Path:
    return directory / f"epoch-{epoch:04d}-rank{rank}.pt"


def save_rank(directory: Path, epoch: int, rank: int, payload: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    target = _rank_file(directory, epoch, rank)
    tmp = target.with_suffix(".tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)  # a failed write (disk full) leaves no partial file behind


def _read_marker(directory: Path) -> dict[str, Any] | None:
    marker = directory / MARKER
    if not marker.exists():
        return None
    try:
        latest = json.loads(marker.read_text())
        int(latest["epoch"]), str(latest["config_hash"])
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{marker} is unreadable ({type(exc).__name__}); delete {directory} to start this "
                        "configuration afresh") from None
    return latest


def publish(directory: Path, epoch: int, config_hash: str) -> None:
    """Mark `epoch` as the latest complete checkpoint (rank 0, after every rank has saved); the
    epoch it replaces stays as the fall-back."""
    before = _read_marker(directory)
    previous = before["epoch"] if before and before["config_hash"] == config_hash and before["epoch"] != epoch else None
    tmp = directory / f"{MARKER}.tmp"
    tmp.write_text(json.dumps({"epoch": epoch, "previous": previous, "config_hash": config_hash}))
    os.replace(tmp, directory / MARKER)


def prune(directory: Path, rank: int) -> None:
    """Delete this rank's files of every epoch but the latest and the previous one."""
    latest = _read_marker(directory) or {}
    kept = [latest[key] for key in ("epoch", "previous") if isinstance(latest.get(key), int)]
    keep = {_rank_file(directory, epoch, rank) for epoch in kept}
    for path in directory.glob(f"epoch-*-rank{rank}.pt"):
        if path not in keep:
            path.unlink(missing_ok=True)


def _own_marker(directory: Path, config_hash: str) -> dict[str, Any] | None:
    """`latest.json` (None: fresh start); refuses another configuration's checkpoints."""
    latest = _read_marker(directory)
    if latest is not None and latest["config_hash"] != config_hash:
        raise UserError(
            f"{directory} holds checkpoints of a different configuration (hash {latest['config_hash']}, "
            f"this run {config_hash}); use a fresh --output directory or delete that one"
        )
    return latest


def check_resumable(directory: Path, config_hash: str) -> int | None:
    """The epoch a run with this config would resume after (None: fresh start); refuses others' checkpoints."""
    latest = _own_marker(directory, config_hash)
    return None if latest is None else int(latest["epoch"])


def _damage(path: Path) -> str | None:
    """Why `path` cannot be a checkpoint file (missing, truncated, a CRC mismatch), or None."""
    if not path.exists():
        return f"{path.name} is missing"
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        return f"{path.name} is truncated or not a checkpoint ({exc})"
    return f"{path.name} is corrupted (CRC mismatch in {bad})" if bad else None


def resumable_epoch(directory: Path, config_hash: str, world_size: int) -> tuple[int | None, list[str]]:
    """(the newest epoch whose files of every rank are intact, or None for a fresh start; what was
    wrong with the newer one, if the previous epoch is used). Raises UserError, naming the damaged
    files and the way out, when neither kept epoch is whole."""
    latest = _own_marker(directory, config_hash)  # read once: every rank reads the same file
    if latest is None:
        return None, []
    previous = latest.get("previous")
    problems: list[str] = []
    for candidate in [int(latest["epoch"])] + ([previous] if isinstance(previous, int) else []):
        files = [_rank_file(directory, candidate, rank) for rank in range(world_size)]
        damaged = [problem for problem in map(_damage, files) if problem]
        if not damaged:
            return candidate, problems
        problems.append(f"epoch {candidate}: " + "; ".join(damaged))
    raise UserError(f"no complete checkpoint in {directory} ({' / '.join(problems)}); delete {directory} to "
                    "start this configuration afresh")


def load_latest(directory: Path, rank: int, config_hash: str,
                world_size: int) -> tuple[dict[str, Any] | None, list[str]]:
    """(this rank's payload of the newest intact epoch, or None for a fresh start; what was wrong
    with a newer epoch that was skipped)."""
    epoch, skipped = resumable_epoch(directory, config_hash, world_size)
    if epoch is None:
        return None, []
    path = _rank_file(directory, epoch, rank)
    try:
        return torch.load(path, map_location="cpu", weights_only=True), skipped
    except pickle.UnpicklingError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise UserError(f"refusing to load {path}: it holds objects other than tensors and plain values "
                        f"({reason}); it was not written by mlbench. Delete {directory} to start afresh") from None
