"""One rank of a benchmark run: the program that runs in every local process and every pod."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback
from pathlib import Path

from tasks.communication import CommunicationConfig
from tasks.errors import ExitCode, UserError
from tasks.kinds import RankRunner
from tasks.registry import kind_of
from tasks.runtime.distributed import RankEnv, check_backend, init_process_group
from tasks.runtime.heartbeat import start_heartbeat
from tasks.runtime.results import failed_result, write_result
from tasks.spec import RunConfig


def ensure_writable_dir(path: Path, what: str = "output directory") -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-test-")  # unique: ranks probe at once
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"cannot write to {what} {path}: {exc.strerror or exc}; choose a writable path") from None
    return path


def read_launched_config(path: Path, world_size: int) -> RunConfig | CommunicationConfig:
    """The resolved config a launcher recorded (`config.json`, see `tasks.runtime.bundle.prepare_output`),
    for a rank of a job of `world_size` ranks (WORLD_SIZE): the two must agree."""
    from tasks.registry import config_from_dict

    try:
        data = json.loads(path.read_text())
        config = config_from_dict(data)
    except OSError as exc:
        raise UserError(f"cannot read the run's config {path}: {exc.strerror or exc}; a launcher writes it "
                        "(`mlbench train` writes OUTPUT/config.json)") from None
    except (ValueError, TypeError, AttributeError) as exc:
        detail = " ".join(str(exc).split())
        raise UserError(f"{path} is not a resolved run config ({type(exc).__name__}: {detail})") from None
    if config.world_size != world_size:
        raise UserError(f"WORLD_SIZE is {world_size} but {path} is a config for {config.world_size} rank(s); "
                        "start as many ranks as the config names")
    return config


def run_rank(config: RunConfig | CommunicationConfig, env: RankEnv, data_root: Path, output: Path) -> int:
    """Run one rank of the benchmark; returns the process exit code. Rank 0 always leaves a result.json."""
    start_heartbeat(output, env.rank)  # first: its launcher tells a stopped rank by its silence
    import torch
    import torch.distributed as dist

    threads = os.environ.get("OMP_NUM_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    runner = None
    try:
        check_backend(config.backend, config.device, int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
        if config.device == "cuda":  # before the process group, so NCCL binds this rank's GPU
            torch.cuda.set_device(env.local_rank)
        init_process_group(env, config.backend)
        runner = kind_of(config.task).make_runner(config, env, data_root, output)
        return runner.run_rank()
    except UserError as exc:
        _record_failure(config, env, output, runner, str(exc))
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    except Exception as exc:  # a crash is still a recorded run, with its reason
        traceback.print_exc()
        _record_failure(config, env, output, runner, f"rank {env.rank} crashed: {type(exc).__name__}: {exc}")
        return ExitCode.RUN_FAILED
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _record_failure(config: RunConfig | CommunicationConfig, env: RankEnv, output: Path,
                    runner: RankRunner | None, reason: str) -> None:
    """Rank 0 records why the run failed, with what its runner had measured by then."""
    if env.rank != 0:
        return
    try:
        result = runner.failure_record(reason) if runner is not None else failed_result(config, reason)
        write_result(output, result)
    except Exception:  # never mask the original failure
        traceback.print_exc()
