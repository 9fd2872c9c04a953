"""A rank killed, a rank frozen, the launcher killed: each job ends fast, names its root cause,
leaves no process, and the next try resumes from the last checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from tests.faults.conftest import REPO, checkpointed_epoch, processes_of, rank_pid, start, train_command, wait_for

pytestmark = pytest.mark.faults


def _mid_epoch(output, after_epoch: int = 1) -> tuple[int, float]:
    """Wait until `after_epoch` is checkpointed and the next epoch is under way; (the checkpointed
    epoch, when its checkpoint was published)."""
    wait_for(lambda: (checkpointed_epoch(output) or 0) >= after_epoch, 240, f"epoch {after_epoch} checkpointed")
    epoch = checkpointed_epoch(output)
    saved_at = (output / "checkpoints" / "latest.json").stat().st_mtime
    time.sleep(0.5)  # into the next epoch
    return epoch, saved_at


def _resume(data_root, output, tmp_path, name):
    """The same command again, as an Airflow retry runs it: (exit code, epoch it resumed after, output)."""
    done = subprocess.run(train_command(data_root, output), capture_output=True, text=True, timeout=600,
                          cwd=REPO)
    resumed = [line for line in done.stdout.splitlines() if "resuming after epoch" in line]
    (tmp_path / f"{name}-resume.log").write_text(done.stdout + done.stderr)
    return done.returncode, int(resumed[0].split("resuming after epoch ")[1].split()[0]) if resumed else None, done


def test_a_rank_killed_mid_epoch_fails_the_job_naming_it_and_the_retry_resumes(data_root, tmp_path, measured):
    """Promise: the job fails within 60 s naming rank 1 and signal 9 (not rank 0's lost connection),
    in the log and the bundle; no process is left; the retry resumes from the checkpoint."""
    output, log = tmp_path / "run", tmp_path / "launcher.log"
    launcher = start(train_command(data_root, output), log)
    epoch, saved_at = _mid_epoch(output)
    victim = rank_pid(output, 1)
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    killed, lost_s = time.monotonic(), time.time() - saved_at
    launcher.wait(timeout=120)
    detected_s = time.monotonic() - killed
    left = processes_of(output)
    assert launcher.returncode == 128 + signal.SIGKILL
    text = log.read_text()
    assert "rank 1 was killed by signal 9 (SIGKILL)" in text, text[-2000:]
    reason = json.loads((output / "result.json").read_text())["reason"]
    assert reason.startswith("rank 1 was killed by signal 9 (SIGKILL)"), reason
    assert detected_s < 60
    assert left == {}

    code, resumed_after, done = _resume(data_root, output, tmp_path, "sigkill")
    assert code == 0, done.stderr[-2000:]
    assert resumed_after is not None and resumed_after >= epoch  # at most the epoch under way is lost
    result = json.loads((output / "result.json").read_text())
    assert result["status"] == "completed" and result["resumes"] == 1
    measured("rank SIGKILL mid-epoch", detection_s=round(detected_s, 2), left_running=len(left),
             lost_s=round(lost_s, 2), resumed_after_epoch=resumed_after, checkpointed_epoch_at_fault=epoch)


def test_a_frozen_rank_fails_the_job_within_the_stall_timeout_naming_it(data_root, tmp_path, measured):
    """Promise: a rank stopped by SIGSTOP inside a collective fails the job within the stall timeout
    (here 5 s, 120 s by default; the collective would wait 600 s) with a reason that says which rank
    stopped responding; no process is left."""
    output, log = tmp_path / "run", tmp_path / "launcher.log"
    launcher = start(train_command(data_root, output), log, env={"MLBENCH_STALL_TIMEOUT_S": "5"})
    _mid_epoch(output)
    victim = rank_pid(output, 1)
    assert victim is not None
    os.kill(victim, signal.SIGSTOP)
    stopped = time.monotonic()
    launcher.wait(timeout=120)
    detected_s = time.monotonic() - stopped
    left = processes_of(output)
    text = log.read_text()
    assert launcher.returncode == 4, text[-2000:]
    assert "rank 1 stopped responding: no heartbeat for" in text and "(its process is stopped)" in text, text[-2000:]
    reason = json.loads((output / "result.json").read_text())["reason"]
    assert reason.startswith("rank 1 stopped responding"), reason
    assert detected_s < 5 + 15  # the timeout, the next poll, and stopping the others
    assert left == {}
    measured("rank SIGSTOP in a collective", detection_s=round(detected_s, 2), stall_timeout_s=5,
             left_running=len(left))


def test_the_launcher_killed_takes_its_ranks_down_and_the_same_command_resumes(data_root, tmp_path, measured):
    """Promise: SIGKILL of the launcher: its ranks are gone within 5 s; the same command again
    resumes, losing at most the epoch that was under way."""
    output, log = tmp_path / "run", tmp_path / "launcher.log"
    launcher = start(train_command(data_root, output), log)
    epoch, saved_at = _mid_epoch(output)
    assert rank_pid(output, 0) and rank_pid(output, 1)
    launcher.send_signal(signal.SIGKILL)
    lost_s = time.time() - saved_at  # the training since the last checkpoint, which the resume redoes
    launcher.wait()
    gone_s = wait_for(lambda: not processes_of(output), 5, "every rank gone after its launcher's SIGKILL")

    code, resumed_after, done = _resume(data_root, output, tmp_path, "launcher")
    assert code == 0, done.stderr[-2000:]
    assert resumed_after is not None and resumed_after >= epoch
    measured("launcher SIGKILL", ranks_gone_s=round(gone_s, 2), lost_s=round(lost_s, 2),
             resumed_after_epoch=resumed_after, checkpointed_epoch_at_fault=epoch)
