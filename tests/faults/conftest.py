"""The fault-injection suite: real ranks (the smoke preset, 2 gloo ranks) hit by the faults a
cluster produces. Each test states its promise, asserts it, and records what it measured in
`.mlbench/test-output/faults/measurements.json` (docs/reliability.md quotes them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from tests.conftest import REPO

OUTPUT = Path(os.environ.get("MLBENCH_TEST_OUTPUT", REPO / ".mlbench" / "test-output")) / "faults"
TASK = "cifar10-resnet20"


@pytest.fixture(scope="session")
def measured():
    """record(case, **figures): one row of the measurements file, written when the session ends."""
    rows: dict[str, dict] = {}
    yield lambda case, **figures: rows.__setitem__(case, figures)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    path = OUTPUT / "measurements.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**previous, **rows}, indent=2, sort_keys=True))


def train_command(data_root: Path, output: Path, *extra: str, epochs: int = 8) -> list[str]:
    return [sys.executable, "-m", "tasks.cli", "train", "--task", TASK, "--preset", "smoke", "--world-size", "2",
            "--backend", "gloo", "--output", str(output), "--data-root", str(data_root),
            "--set", f"max_epochs={epochs}", *extra]


def start(command: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as sink:
        return subprocess.Popen(command, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})})


def wait_for(condition: Callable[[], object], timeout_s: float, what: str) -> float:
    """Poll until `condition()` is true; returns the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            pytest.fail(f"{what}: not within {timeout_s:.0f}s")
        time.sleep(0.02)
    return time.monotonic() - started


def processes_of(output: Path) -> dict[int, dict[str, str]]:
    """pid -> environment of every live process working on `output` (a launcher or a rank)."""
    found = {}
    needle = str(output).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle not in (entry / "cmdline").read_bytes() or (entry / "stat").read_text().split()[2] == "Z":
                continue
            pairs = (entry / "environ").read_bytes().split(b"\0")
            environ = dict(item.split(b"=", 1) for item in pairs if b"=" in item)
        except OSError:
            continue
        found[int(entry.name)] = {k.decode(errors="replace"): v.decode(errors="replace") for k, v in environ.items()}
    return found


def rank_pid(output: Path, rank: int) -> int | None:
    return next((pid for pid, env in processes_of(output).items()
                 if env.get("RANK") == str(rank) and "MLBENCH_RENDEZVOUS_TIMEOUT_S" in env), None)


def checkpointed_epoch(output: Path) -> int | None:
    marker = output / "checkpoints" / "latest.json"
    try:
        return json.loads(marker.read_text())["epoch"]
    except (OSError, ValueError, KeyError):
        return None
