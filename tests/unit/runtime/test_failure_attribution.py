"""Which rank a failed local job is blamed on, and how a silent rank is told from a busy one."""

import os
import time

import pytest

from tasks.errors import UserError
from tasks.runtime.distributed import float_setting
from tasks.runtime.heartbeat import heartbeat_file, process_state, silence_s
from tasks.runtime.local_job import JobOutcome, failure_message, root_cause

pytestmark = pytest.mark.unit

GLOO_LOST = "RuntimeError: [../third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection closed by peer"


def test_a_rank_killed_by_a_signal_is_blamed_over_the_peer_that_lost_its_connection():
    # the same poll saw rank 0 fail on the lost connection and rank 1 dead by SIGKILL
    assert root_cause({0: 4, 1: -9}, {0: GLOO_LOST, 1: "epoch 2 step 10"}) == 1


def test_a_rank_that_failed_on_its_own_is_blamed_over_one_that_lost_a_peer():
    assert root_cause({0: 4, 1: 4}, {0: GLOO_LOST, 1: "ValueError: bad shape"}) == 1
    assert root_cause({0: 4, 1: 4}, {0: "ValueError: bad shape", 1: GLOO_LOST}) == 0
    assert root_cause({2: 3, 1: 3}, {2: "x", 1: "y"}) == 1  # equals: the lowest rank


def test_the_message_names_the_signal_and_the_exit_status_is_128_plus_it():
    assert failure_message(1, -9, "step 3") == "rank 1 was killed by signal 9 (SIGKILL); its last line: step 3"
    assert failure_message(0, 4, "boom") == "rank 0 exited with code 4: boom"
    assert JobOutcome(-9, "").exit_status == 137 and JobOutcome(4, "").exit_status == 4


def test_silence_counts_from_the_last_beat_or_from_the_start(tmp_path):
    started = time.time() - 50
    assert 49 < silence_s(tmp_path, 0, started) < 52  # never beat
    beat = heartbeat_file(tmp_path, 0)
    beat.parent.mkdir()
    beat.touch()
    os.utime(beat, (started + 40, started + 40))
    assert 9 < silence_s(tmp_path, 0, started) < 12


def test_the_kernel_says_what_a_process_is_doing():
    assert process_state(os.getpid()) == "running"
    assert process_state(2**22 + 12345) is None


@pytest.mark.parametrize("text", ["0", "-1", "soon", "nan"])
def test_a_timeout_setting_that_is_not_a_positive_number_is_one_clear_error(monkeypatch, text):
    monkeypatch.setenv("MLBENCH_STALL_TIMEOUT_S", text)
    with pytest.raises(UserError, match=rf"MLBENCH_STALL_TIMEOUT_S must be a positive number of seconds; got '{text}'"):
        float_setting("MLBENCH_STALL_TIMEOUT_S", 120)
    monkeypatch.setenv("MLBENCH_STALL_TIMEOUT_S", "7.5")
    assert float_setting("MLBENCH_STALL_TIMEOUT_S", 120) == 7.5
