"""Damaged checkpoints, a hostile pickle, a full disk, prepared data changed underneath, and
preparers racing (one of them killed): clear reasons, nothing half-written, never a retry loop."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from tasks.errors import ExitCode
from tests.faults.preparers import NAME, VERSION, prepare_slowly
from tests.faults.conftest import REPO, checkpointed_epoch, processes_of, start, train_command, wait_for

pytestmark = pytest.mark.faults


def _train(data_root, output, env=None, epochs=8):
    return subprocess.run(train_command(data_root, output, epochs=epochs), capture_output=True, text=True,
                          timeout=600, cwd=REPO, env={**os.environ, **(env or {})})


def _killed_after(data_root, output, tmp_path, epoch: int) -> None:
    """A run preempted (launcher SIGKILLed) once `epoch` is checkpointed."""
    launcher = start(train_command(data_root, output), tmp_path / "first.log")
    wait_for(lambda: (checkpointed_epoch(output) or 0) >= epoch, 240, f"epoch {epoch} checkpointed")
    launcher.send_signal(signal.SIGKILL)
    launcher.wait()
    wait_for(lambda: not processes_of(output), 10, "ranks gone")


def test_a_truncated_newest_checkpoint_falls_back_to_the_one_before(data_root, tmp_path, measured):
    """Promise: the newest epoch's file of one rank truncated: every rank resumes from the previous
    complete epoch, saying why; the run completes."""
    output = tmp_path / "run"
    _killed_after(data_root, output, tmp_path, 2)
    newest = checkpointed_epoch(output)
    damaged = output / "checkpoints" / f"epoch-{newest:04d}-rank1.pt"
    damaged.write_bytes(damaged.read_bytes()[:1000])
    started = time.monotonic()
    done = _train(data_root, output)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"checkpoint epoch {newest}: epoch-{newest:04d}-rank1.pt is truncated" in done.stdout
    assert f"resuming after epoch {newest - 1}" in done.stdout
    measured("newest checkpoint truncated", outcome=f"resumed after epoch {newest - 1} of {newest}",
             epochs_lost=1, rerun_s=round(time.monotonic() - started, 2))


def test_no_intact_checkpoint_is_one_error_line_and_no_retry(data_root, tmp_path, measured):
    """Promise: latest.json names files that are gone (and the previous epoch's too): one error line
    naming them and the way out, exit code 2 (bad input: Airflow does not retry it)."""
    output = tmp_path / "run"
    _killed_after(data_root, output, tmp_path, 1)
    for path in (output / "checkpoints").glob("*.pt"):
        path.unlink()
    started = time.monotonic()
    done = _train(data_root, output)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == ExitCode.BAD_INPUT, done.stderr[-2000:]
    assert len(errors) == 1 and "no complete checkpoint in" in errors[0] and "rank0.pt is missing" in errors[0]
    assert f"delete {output / 'checkpoints'}" in errors[0]
    measured("latest.json names missing files", outcome="exit 2, one line, not retried",
             failed_after_s=round(time.monotonic() - started, 2))


class Planted:
    def __reduce__(self):
        return (os.system, (f"touch {Path.cwd() / 'planted-ran'}",))


def test_a_planted_pickle_is_refused_and_never_runs(data_root, tmp_path, measured, monkeypatch):
    """Promise: a checkpoint replaced by a pickle that runs code when loaded is refused with one
    line, before any of it runs; exit code 2."""
    monkeypatch.chdir(tmp_path)
    output = tmp_path / "run"
    _killed_after(data_root, output, tmp_path, 1)
    epoch = checkpointed_epoch(output)
    for rank in (0, 1):
        torch.save({"model": {}, "state": Planted()}, output / "checkpoints" / f"epoch-{epoch:04d}-rank{rank}.pt")
    done = _train(data_root, output)
    assert done.returncode == ExitCode.BAD_INPUT, done.stderr[-2000:]
    assert "refusing to load" in done.stderr and "it holds objects other than tensors" in done.stderr
    assert not (tmp_path / "planted-ran").exists()
    measured("checkpoint replaced by a hostile pickle", outcome="refused (weights_only), exit 2, nothing ran")


# A full disk, injected into the ranks only: a sitecustomize that Python imports at start-up.
DISK_FULL = '''
import errno, os
if os.environ.get("RANK") is not None and os.environ.get("MLBENCH_FULL_DISK_AT"):
    import torch
    _save, _at = torch.save, os.environ["MLBENCH_FULL_DISK_AT"]
    def save(obj, f, *args, **kwargs):
        if _at in str(f):
            open(f, "wb").write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device", str(f))
        return _save(obj, f, *args, **kwargs)
    torch.save = save
'''


def test_a_full_disk_while_checkpointing_keeps_the_previous_checkpoint(data_root, tmp_path, measured):
    """Promise: ENOSPC while writing epoch 2's checkpoint: the run fails with that reason in its
    bundle (exit 2, no retry loop), epoch 1's checkpoint stays valid, no partial file is left."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(DISK_FULL)
    output = tmp_path / "run"
    started = time.monotonic()
    done = _train(data_root, output, env={"PYTHONPATH": str(hook), "MLBENCH_FULL_DISK_AT": "epoch-0002-rank1"})
    assert done.returncode == ExitCode.BAD_INPUT, done.stderr[-2000:]
    reason = json.loads((output / "result.json").read_text())["reason"]
    assert "No space left on device" in reason, reason
    assert checkpointed_epoch(output) == 1
    from tasks.runtime.checkpoint import resumable_epoch

    config_hash = json.loads((output / "checkpoints" / "latest.json").read_text())["config_hash"]
    assert resumable_epoch(output / "checkpoints", config_hash, 2) == (1, [])
    assert not list((output / "checkpoints").glob("*.tmp"))
    measured("disk full while checkpointing", outcome="failed with ENOSPC in the bundle; epoch 1 intact",
             failed_after_s=round(time.monotonic() - started, 2))


FULL_DISK_FOR_THE_BUNDLE = '''
import errno, os, pathlib
if os.environ.get("RANK") == "0":
    _write_text = pathlib.Path.write_text
    def write_text(self, *args, **kwargs):
        if self.name == "result.json.tmp":
            _write_text(self, "{")  # a partial file, as a full disk leaves it
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return _write_text(self, *args, **kwargs)
    pathlib.Path.write_text = write_text
'''


def test_a_full_disk_while_writing_the_bundle_is_the_recorded_reason(data_root, tmp_path, measured):
    """Promise: ENOSPC when rank 0 writes result.json: the run fails, and the bundle (written by the
    launcher) says it was the disk; the last checkpoint stays valid; no partial file is left."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(FULL_DISK_FOR_THE_BUNDLE)
    output = tmp_path / "run"
    started = time.monotonic()
    done = _train(data_root, output, env={"PYTHONPATH": str(hook)}, epochs=2)
    assert done.returncode == ExitCode.RUN_FAILED, done.stderr[-2000:]
    reason = json.loads((output / "result.json").read_text())["reason"]
    assert reason.startswith("rank 0 exited with code 4") and "No space left on device" in reason, reason
    assert not (output / "result.json.tmp").exists()
    assert checkpointed_epoch(output) == 2
    measured("disk full while writing the bundle", outcome="failed; the launcher's record names ENOSPC",
             failed_after_s=round(time.monotonic() - started, 2))


def test_the_stop_request_of_on_kill_stops_every_rank(data_root, tmp_path, measured):
    """Promise: the Airflow task killed during launch (the operator's on_kill sets the launcher's
    stop event): every rank is gone, the run is recorded as stopped."""
    from tasks.data import catalog
    from tasks.registry import resolve
    from tasks.runtime.local_job import launch_local

    config = resolve("cifar10-resnet20", "smoke", world_size=2, backend="gloo", device="cpu",
                     overrides={"max_epochs": "8"})
    catalog.prepare_for(config.data, data_root)
    output, stop, outcome = tmp_path / "run", threading.Event(), {}
    output.mkdir()
    thread = threading.Thread(target=lambda: outcome.update(done=launch_local(
        config, output=output, data_root=data_root, timeout_s=600, rendezvous_timeout_s=60,
        echo_rank0=False, stop=stop)))
    thread.start()
    wait_for(lambda: checkpointed_epoch(output), 240, "epoch 1 checkpointed")
    stop.set()
    stopped = time.monotonic()
    thread.join(timeout=60)
    gone_s = time.monotonic() - stopped
    job, result = outcome["done"]
    assert job.returncode == ExitCode.TERMINATED and "stopped on request" in job.message
    assert processes_of(output) == {} and result.status == "failed"
    measured("Airflow task killed during a local launch", ranks_gone_s=round(gone_s, 2), left_running=0)


def test_a_prepared_file_changed_afterwards_is_rebuilt_before_training(tmp_path, measured):
    """Promise: a prepared array file changed on disk (content and time, as any write changes them)
    is caught by the verify path before a rank reads it, and rebuilt; training runs on clean data."""
    from tasks.data.store import read_manifest, verify_dataset

    data_root = tmp_path / "data"
    prepared = subprocess.run([sys.executable, "-m", "tasks.cli", "prepare", "--task", "cifar10-resnet20",
                               "--preset", "smoke", "--data-root", str(data_root)],
                              capture_output=True, text=True, cwd=REPO, timeout=300)
    assert prepared.returncode == 0, prepared.stderr
    manifest = next(data_root.glob("*/*/manifest.json"))
    name, version = manifest.parent.parent.name, manifest.parent.name
    target = manifest.parent / next(iter(read_manifest(data_root, name, version)["arrays"].values()))["file"]
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    done = _train(data_root, tmp_path / "run", epochs=1)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "failed verification" in done.stderr and "rebuilding" in done.stderr
    verify_dataset(data_root, name, version, full=True)
    measured("prepared data changed after preparation", outcome="detected by the verify path, rebuilt")


def test_racing_preparers_one_killed_mid_build_leave_one_whole_copy(tmp_path, measured, monkeypatch):
    """Promise: three processes prepare one dataset at once and the builder is killed halfway: the
    others wait, one of them builds, both end with the same verified copy, nothing half-written."""
    from tasks.data.store import verify_dataset

    monkeypatch.syspath_prepend(str(REPO))  # spawned children import this module by name
    context = multiprocessing.get_context("spawn")
    started = tmp_path / "first.pid"
    first = context.Process(target=prepare_slowly, args=(str(tmp_path), str(started), 30.0))
    first.start()
    wait_for(started.exists, 60, "the first preparer building")
    others = [context.Process(target=prepare_slowly, args=(str(tmp_path), str(tmp_path / f"b{i}.pid"), 0.2))
              for i in range(2)]
    for process in others:
        process.start()
    time.sleep(1.0)  # both are waiting on the lock
    os.kill(first.pid, signal.SIGKILL)
    killed = time.monotonic()
    for process in others:
        process.join(timeout=60)
    assert [process.exitcode for process in others] == [0, 0]
    recovered_s = time.monotonic() - killed
    assert len(list(tmp_path.glob("b*.pid"))) == 1  # exactly one of the two built
    verify_dataset(tmp_path, NAME, VERSION, full=True)
    assert not [p for p in (tmp_path / NAME).iterdir() if ".partial" in p.name]
    measured("preparer killed mid-build, two waiting", recovered_s=round(recovered_s, 2), builds_after_kill=1)
