"""Rank identity from the environment, process-group set-up, and backend checks.

One rank reads who it is from environment variables, so the same command runs as a local
process, under torchrun, or in a Kubernetes Indexed Job pod (rank = completion index).
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

from tasks.errors import UserError

DEFAULT_RENDEZVOUS_TIMEOUT_S = 600


@dataclass(frozen=True)
class RankEnv:
    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int

    @classmethod
    def from_environ(cls, environ: dict[str, str] | None = None) -> RankEnv:
        env = dict(os.environ if environ is None else environ)
        rank_text = env.get("RANK", env.get("JOB_COMPLETION_INDEX"))
        missing = [
            name
            for name, value in (
                ("RANK (or JOB_COMPLETION_INDEX)", rank_text),
                ("WORLD_SIZE", env.get("WORLD_SIZE")),
                ("MASTER_ADDR", env.get("MASTER_ADDR")),
                ("MASTER_PORT", env.get("MASTER_PORT")),
            )
            if value in (None, "")
        ]
        if missing:
            raise UserError(
                f"a worker needs its rank from the environment; missing: {', '.join(missing)} "
                "(use `mlbench train` to launch local ranks)"
            )
        rank, world_size = _integer("RANK", rank_text), _integer("WORLD_SIZE", env["WORLD_SIZE"])
        local_rank = _integer("LOCAL_RANK", env.get("LOCAL_RANK", "0"))  # one rank per pod unless told otherwise
        port = _integer("MASTER_PORT", env["MASTER_PORT"])
        if world_size < 1 or not 0 <= rank < world_size:
            raise UserError(f"RANK must be in [0, WORLD_SIZE); got RANK={rank}, WORLD_SIZE={world_size}")
        return cls(rank, world_size, local_rank, env["MASTER_ADDR"], port)


@dataclass(frozen=True)
class NodeEnv:
    """One machine's share of a job (`mlbench node`): its node rank and how many ranks it starts."""

    node_rank: int
    local_world_size: int
    world_size: int
    master_addr: str
    master_port: int

    @classmethod
    def from_environ(cls, environ: dict[str, str] | None = None) -> NodeEnv:
        env = dict(os.environ if environ is None else environ)
        missing = next((name for name in ("LOCAL_WORLD_SIZE", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
                        if env.get(name) in (None, "")), None)
        if missing:
            raise UserError(f"a node needs {missing} in its environment (with WORLD_SIZE, LOCAL_WORLD_SIZE, "
                            "MASTER_ADDR, MASTER_PORT; NODE_RANK or JOB_COMPLETION_INDEX)")
        node_rank = _integer("NODE_RANK", env.get("NODE_RANK", env.get("JOB_COMPLETION_INDEX", "0")))
        local = _integer("LOCAL_WORLD_SIZE", env["LOCAL_WORLD_SIZE"])
        world_size, port = _integer("WORLD_SIZE", env["WORLD_SIZE"]), _integer("MASTER_PORT", env["MASTER_PORT"])
        master = env["MASTER_ADDR"]
        if local < 1 or world_size % local or not 0 <= node_rank < world_size // local:
            raise UserError(f"WORLD_SIZE ({world_size}) must be a multiple of LOCAL_WORLD_SIZE ({local}) and "
                            f"the node rank ({node_rank}) below their ratio")
        return cls(node_rank, local, world_size, master, port)


def _integer(name: str, text: str | None) -> int:
    """An integer environment variable, or one line naming it and what it held."""
    try:
        return int(str(text))
    except ValueError:
        raise UserError(f"{name} must be an integer; got {text!r}") from None


def float_setting(name: str, default: float) -> float:
    """A positive number of seconds from the environment, or one line naming it and what it held."""
    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise UserError(f"{name} must be a positive number of seconds; got {text!r}")
    return value


def rendezvous_timeout_s() -> float:
    return float_setting("MLBENCH_RENDEZVOUS_TIMEOUT_S", DEFAULT_RENDEZVOUS_TIMEOUT_S)


def check_backend(backend: str, device: str, local_world_size: int = 1) -> None:
    """Fail early, in one line, when this machine cannot run `backend` on `device`."""
    import torch
    import torch.distributed as dist

    if device == "cuda" and not torch.cuda.is_available():
        raise UserError(
            f"backend '{backend}' on device 'cuda' needs a CUDA GPU, and none is visible here; "
            "valid on this machine: --backend gloo (CPU)"
        )
    if backend == "nccl":
        if not dist.is_nccl_available():
            raise UserError("this torch build has no NCCL support; valid here: --backend gloo")
        if torch.cuda.device_count() < local_world_size:
            raise UserError(
                f"nccl needs one GPU per local rank: {local_world_size} ranks but "
                f"{torch.cuda.device_count()} GPU(s) visible"
            )
    if backend == "gloo" and not dist.is_gloo_available():
        raise UserError("this torch build has no gloo support; valid here: --backend nccl")


def init_process_group(env: RankEnv, backend: str) -> None:
    import torch.distributed as dist

    dist.init_process_group(
        backend=backend,
        init_method=f"tcp://{env.master_addr}:{env.master_port}",
        rank=env.rank,
        world_size=env.world_size,
        # Bounds rendezvous and any single collective wait: a missing peer fails the run.
        timeout=datetime.timedelta(seconds=rendezvous_timeout_s()),
    )
