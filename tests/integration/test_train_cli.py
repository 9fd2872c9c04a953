"""End to end through the CLI: local launcher, gloo ranks, results bundle, resume, bad input."""

import json
import signal
import subprocess
import sys
import time

import jsonschema
import pytest
import torch

from tasks.runtime.results import load_schema
from tests.conftest import REPO, run_mlbench

pytestmark = pytest.mark.integration


def train(data_root, output, *extra, preset="smoke", world_size=2):
    return run_mlbench("train", "--task", "cifar10-resnet20", "--preset", preset, "--world-size", str(world_size),
                       "--backend", "gloo", "--output", str(output), "--data-root", str(data_root), *extra)


def mllog_events(path):
    events = []
    for line in path.read_text().splitlines():
        assert line.startswith(":::MLLOG "), line
        events.append(json.loads(line[len(":::MLLOG "):]))
    return events


def test_two_rank_smoke_run_writes_a_valid_bundle(data_root, tmp_path):
    done = train(data_root, tmp_path / "run")
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    jsonschema.validate(result, load_schema())
    assert result["status"] == "completed" and result["world_size"] == 2 and result["epochs_run"] == 3
    assert [r["rank"] for r in result["ranks"]] == [0, 1]
    assert result["steps"] == result["ranks"][0]["steps"] == result["ranks"][1]["steps"] > 0
    assert result["compute_s"] + result["communication_s"] <= result["train_time_s"] + 1e-6
    assert result["communication_s"] > 0  # a real all-reduce ran every step
    assert result["train_time_s"] < result["wall_time_s"]  # loader waits and evaluation are excluded
    assert len(result["history"]) == 3 and result["config"]["world_size"] == 2
    assert result["model"]["parameters"] == 272474 and result["provenance"]["torch"] == torch.__version__

    events = mllog_events(tmp_path / "run" / "mllog.log")
    keys = [e["key"] for e in events]
    for key in ("init_start", "init_stop", "run_start", "run_stop", "seed", "global_batch_size",
                "opt_base_learning_rate", "epoch_start", "epoch_stop", "eval_accuracy"):
        assert key in keys, key
    assert keys.count("eval_accuracy") == 3
    run_stop = next(e for e in events if e["key"] == "run_stop")
    assert run_stop["metadata"]["status"] == "aborted"  # the smoke target is out of reach in 3 epochs


def test_ddp_algorithm_runs_end_to_end_on_two_ranks(data_root, tmp_path):
    done = train(data_root, tmp_path / "ddp", "--algorithm", "ddp", "--set", "max_epochs=1")
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "ddp" / "result.json").read_text())
    jsonschema.validate(result, load_schema())
    assert result["algorithm"] == "ddp" and result["config"]["aggregation"] == "ddp"
    assert result["history"][0]["lr"] == 0.1  # the DDP variant's own schedule, not the reference's
    assert [r["steps"] for r in result["ranks"]] == [result["steps"]] * 2


def test_demo_reaches_its_target_within_a_minute_on_two_ranks(data_root, tmp_path):
    started = time.monotonic()
    done = train(data_root, tmp_path / "demo", preset="demo")
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "demo" / "result.json").read_text())
    assert result["goal_reached"] and result["final_validation_metric"] >= 0.95
    assert result["time_to_accuracy_s"] <= result["wall_time_to_accuracy_s"]
    assert elapsed < 60, f"demo took {elapsed:.1f}s"
    assert "goal reached" in done.stdout


def _final_state(run_dir):
    latest = json.loads((run_dir / "checkpoints" / "latest.json").read_text())["epoch"]
    return torch.load(run_dir / "checkpoints" / f"epoch-{latest:04d}-rank0.pt", weights_only=False)


def test_killed_run_resumes_from_its_checkpoint_and_ends_like_an_uninterrupted_one(data_root, tmp_path):
    args = ("--deterministic", "--set", "max_epochs=4")
    assert train(data_root, tmp_path / "straight", *args).returncode == 0

    interrupted = tmp_path / "interrupted"
    cmd = [sys.executable, "-m", "tasks.cli", "train", "--task", "cifar10-resnet20", "--preset", "smoke",
           "--world-size", "2", "--output", str(interrupted), "--data-root", str(data_root), *args]
    launcher = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = interrupted / "checkpoints" / "latest.json"
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    launcher.send_signal(signal.SIGKILL)  # preemption: no chance to clean up
    launcher.wait()
    killed_at = json.loads(marker.read_text())["epoch"]
    assert killed_at < 4, "the run finished before it could be interrupted"
    assert not (interrupted / "result.json").exists()

    resumed = train(data_root, interrupted, *args)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming after epoch {killed_at}" in resumed.stdout
    a = json.loads((tmp_path / "straight" / "result.json").read_text())
    b = json.loads((interrupted / "result.json").read_text())
    assert b["resumes"] == 1 and b["epochs_run"] == a["epochs_run"] == 4
    for row_a, row_b in zip(a["history"], b["history"], strict=True):
        for key in ("lr", "train_loss", "validation_metric", "validation_loss"):
            assert row_a[key] == row_b[key], (row_a["epoch"], key)
    assert b["steps"] == a["steps"]  # step accounting continued instead of starting over
    # time accounting continued too: the cumulative clock never restarts at the resumed epoch
    cumulative = [row["cumulative_train_time_s"] for row in b["history"]]
    assert cumulative == sorted(cumulative)
    assert cumulative[-1] == pytest.approx(sum(row["train_time_s"] for row in b["history"]), rel=1e-6)
    assert b["train_time_s"] == pytest.approx(cumulative[-1])
    state_a, state_b = _final_state(tmp_path / "straight"), _final_state(interrupted)
    for name, tensor in state_a["model"].items():
        assert torch.equal(tensor, state_b["model"][name]), name


def test_resume_refuses_a_directory_of_another_configuration_and_keeps_its_record(data_root, tmp_path):
    assert train(data_root, tmp_path / "run", "--set", "max_epochs=1").returncode == 0
    before = {name: (tmp_path / "run" / name).read_text() for name in ("result.json", "config.json")}
    again = train(data_root, tmp_path / "run", "--set", "max_epochs=1", "--set", "optimizer.lr=0.5")
    assert "holds checkpoints of a different configuration" in _one_error_line(again)
    assert {name: (tmp_path / "run" / name).read_text() for name in before} == before


def test_diverging_run_stops_and_is_recorded_as_failed(data_root, tmp_path):
    done = train(data_root, tmp_path / "nan", "--set", "optimizer.lr=1e6")
    assert done.returncode == 4
    result = json.loads((tmp_path / "nan" / "result.json").read_text())
    jsonschema.validate(result, load_schema())
    assert result["status"] == "failed" and result["reason"].startswith("diverged: training loss is nan")
    assert "Traceback" not in done.stderr


def _one_error_line(done):
    lines = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("[data]")]
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--task", "imagenet"], "unknown task 'imagenet'; valid tasks: cifar10-resnet20"),
        (["--preset", "huge"],
         "unknown preset 'huge' for task cifar10-resnet20; valid presets: full, light, demo, smoke"),
        (["--world-size", "0"], "world size must be >= 1, got 0"),
        (["--backend", "nccl"], "needs a CUDA GPU, and none is visible here; valid on this machine: --backend gloo"),
        (["--set", "optimizer.lr"], "--set takes FIELD=VALUE"),
        (["--set", "optimizer.lr=fast"], "bad value 'fast' for 'optimizer.lr'"),
        (["--set", "schedule.milestones=5"], "bad value '5' for 'schedule.milestones'"),
        (["--set", "target_metric=bleu"], "valid: top1, top5, loss"),
        (["--timeout", "-1"], "expected seconds > 0"),
    ],
)
def test_bad_input_is_one_clear_line(data_root, tmp_path, args, message):
    if "nccl" in args and torch.cuda.is_available():
        pytest.skip("a GPU is visible, so nccl is valid here")
    options = {"--task": "cifar10-resnet20", "--preset": "smoke", "--world-size": "1"}
    options.update(zip(args[::2], args[1::2], strict=True))
    flat = [item for pair in options.items() for item in pair]
    done = run_mlbench("train", *flat, "--output", str(tmp_path / "out"), "--data-root", str(data_root))
    assert message in _one_error_line(done)


def test_unwritable_output_is_one_clear_line(data_root, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    done = train(data_root, blocker / "run", world_size=1)
    assert f"cannot write to output directory {blocker / 'run'}" in _one_error_line(done)


def test_corrupt_download_fails_its_checksum_and_says_so(tmp_path):
    from tasks.data.cifar10 import write_cifar10_archive

    archive = tmp_path / "cifar-10-python.tar.gz"
    write_cifar10_archive(archive, train_per_batch=10, test_size=10)
    done = run_mlbench("train", "--task", "cifar10-resnet20", "--preset", "full", "--output", str(tmp_path / "o"),
                       "--data-root", str(tmp_path / "root"), "--set", f"data.url={archive.as_uri()}",
                       "--set", "data.md5=00000000000000000000000000000000")
    line = _one_error_line(done)
    assert "checksum mismatch" in line and "md5" in line
    assert done.returncode == 3


RANK_ENV = {"RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29599", "PATH": "/usr/bin"}


def launched(output, world_size=1, task="cifar10-resnet20"):
    """What a launcher leaves before it starts the ranks: the resolved config in OUTPUT/config.json."""
    from tasks.registry import resolve
    from tasks.runtime.bundle import prepare_output

    output.mkdir(parents=True, exist_ok=True)
    prepare_output(resolve(task, "smoke", world_size=world_size), output)
    return output / "config.json"


def worker(output, config, data_root, env):
    return run_mlbench("worker", "--config", str(config), "--output", str(output), "--data-root", str(data_root),
                       env=env)


def test_worker_without_prepared_data_says_how_to_prepare(tmp_path):
    output = tmp_path / "o"
    done = worker(output, launched(output), tmp_path / "empty", RANK_ENV)
    assert "is not prepared" in _one_error_line(done)
    result = json.loads((tmp_path / "o" / "result.json").read_text())
    assert result["status"] == "failed" and "not prepared" in result["reason"]


def test_worker_without_rank_environment_says_what_is_missing(tmp_path):
    output = tmp_path / "o"
    done = worker(output, launched(output), tmp_path / "data", {"PATH": "/usr/bin"})
    assert "missing: RANK (or JOB_COMPLETION_INDEX), WORLD_SIZE, MASTER_ADDR, MASTER_PORT" in _one_error_line(done)


def test_worker_refuses_a_config_for_another_world_size(tmp_path):
    output = tmp_path / "o"
    config = launched(output, world_size=2)
    done = worker(output, config, tmp_path / "data", RANK_ENV)
    assert _one_error_line(done) == (f"error: WORLD_SIZE is 1 but {config} is a config for 2 rank(s); "
                                     "start as many ranks as the config names")
    assert done.returncode == 2


@pytest.mark.parametrize("content, message", [
    (None, "cannot read the run's config"),
    ("{not json", "is not a resolved run config (JSONDecodeError"),
    ('{"task": "cifar10-resnet20"}', "is not a resolved run config (TypeError"),
    ('{"task": "cifar10-resnet20", "colour": "red"}', "unknown config field 'colour' in RunConfig"),
    ('{"task": "x"}', "unknown task 'x'; valid tasks: cifar10-resnet20"),
])
def test_worker_without_a_readable_config_is_one_clear_line(tmp_path, content, message):
    config = tmp_path / "config.json"
    if content is not None:
        config.write_text(content)
    done = worker(tmp_path / "o", config, tmp_path / "data", RANK_ENV)
    assert message in _one_error_line(done) and done.returncode == 2


def test_every_rank_runs_the_config_the_launcher_recorded(data_root, tmp_path):
    """`train` resolves once (here with an override and a runtime flag) and every rank reads that
    config.json: the bundle reports exactly it."""
    done = train(data_root, tmp_path / "run", "--set", "max_epochs=1", "--deterministic")
    assert done.returncode == 0, done.stderr
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())
    assert recorded["max_epochs"] == 1 and recorded["runtime"]["deterministic"] is True
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["config"] == recorded and result["epochs_run"] == 1
