"""Node-pool profiles (operators/kubernetes/pools.yaml): where pods run and what they request, and
where a configuration of a given world size goes on a pool (`placement`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.errors import UserError

POOLS_FILE = Path(__file__).with_name("pools.yaml")


@dataclass(frozen=True)
class PoolProfile:
    name: str
    description: str
    node_selector: dict[str, str]
    tolerations: tuple[dict[str, Any], ...]
    gpus_per_pod: int
    cpu: str
    memory: str
    shm_size: str
    image_variant: str
    backend: str
    gpus_per_node: int = 0  # GPUs of one node of the pool; 0 for CPU pools
    kueue_queue: str | None = None
    priority_class: str | None = None
    nccl_env: dict[str, str] = field(default_factory=dict)  # the cloud's fast-network settings for NCCL
    extra_limits: dict[str, str] = field(default_factory=dict)  # e.g. EFA interfaces: vpc.amazonaws.com/efa
    price_per_node_hour: float | None = None  # USD; source and date in pools.yaml beside it
    price_source: str | None = None

    @property
    def accelerator(self) -> str:
        return "gpu" if self.gpus_per_pod > 0 else "cpu"

    @property
    def ranks_per_job_pod(self) -> int:
        """Ranks (one per GPU) in each pod of a multi-node Indexed Job: one per CPU pod."""
        return max(1, self.gpus_per_pod)

    def hourly_cost(self, world_size: int) -> float | None:
        """USD per hour of what `world_size` ranks occupy: the node price times their share of nodes
        (4 ranks on an 8-GPU node: half of it; 16 ranks: two nodes; one CPU pod per rank); None
        without a price."""
        if self.price_per_node_hour is None:
            return None
        nodes = world_size / self.gpus_per_node if self.gpus_per_node else world_size
        return self.price_per_node_hour * nodes

    def valid_world_sizes(self) -> str:
        """The world sizes this pool can place, in words (for error lines)."""
        if self.gpus_per_node == 0:
            return "any"
        single = "1 (one node)" if self.gpus_per_node == 1 else f"1 to {self.gpus_per_node} (one node)"
        if self.ranks_per_job_pod == 1:
            return f"{single}, or any size across nodes"
        return f"{single}, or a multiple of {self.ranks_per_job_pod} across nodes"


@dataclass(frozen=True)
class Placement:
    """Where one configuration runs on a pool.

    `single_node`: one pod with one GPU per rank, launched by the KubernetesPodOperator; its ranks
    are local processes, so NCCL uses NVLink / PCIe peer access and shared memory between them.
    Otherwise an Indexed Job of `pods` pods, `ranks_per_pod` ranks each (a whole node's GPUs on
    whole-node pools), node rank = completion index.
    """

    single_node: bool
    pods: int
    ranks_per_pod: int

    @property
    def gpus_per_pod(self) -> int:
        return self.ranks_per_pod


def placement(world_size: int, pool: PoolProfile) -> Placement:
    """Where a configuration of `world_size` ranks goes on `pool`; UserError if it cannot be placed."""
    if pool.gpus_per_node and world_size <= pool.gpus_per_node:
        return Placement(single_node=True, pods=1, ranks_per_pod=world_size)
    per_pod = pool.ranks_per_job_pod
    if world_size % per_pod:
        raise UserError(f"world size {world_size} does not fit pool '{pool.name}' ({pool.gpus_per_node} GPUs per node, "
                        f"{per_pod} per pod across nodes); valid: {pool.valid_world_sizes()}")
    return Placement(single_node=False, pods=world_size // per_pod, ranks_per_pod=per_pod)


def load_pools(path: Path | None = None) -> dict[str, PoolProfile]:
    import yaml

    path = path or POOLS_FILE  # Settings.pools_file overrides it
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        detail = " ".join(str(exc).split())  # YAML errors span lines; ours are one line
        raise UserError(f"cannot read pool profiles {path}: {detail}") from None
    if not isinstance(document, dict) or document.get("version") != 1 or not isinstance(document.get("pools"), dict):
        raise UserError(f"pool profiles {path} must hold `version: 1` and a `pools:` mapping")
    profiles = {}
    known = set(PoolProfile.__dataclass_fields__) - {"name"}
    for name, raw in document["pools"].items():
        unknown = sorted(set(raw) - known)
        if unknown:
            raise UserError(f"pool '{name}' in {path}: unknown field '{unknown[0]}'; valid: {', '.join(sorted(known))}")
        try:
            profile = PoolProfile(name=name, **{**raw, "tolerations": tuple(raw.get("tolerations") or ())})
        except TypeError as exc:
            raise UserError(f"pool '{name}' in {path}: {exc}") from None
        if profile.image_variant not in ("cuda", "cpu") or profile.backend not in ("gloo", "nccl"):
            raise UserError(f"pool '{name}': image_variant must be cuda or cpu and backend gloo or nccl")
        if profile.gpus_per_pod < 0 or (profile.backend == "nccl" and profile.gpus_per_pod == 0):
            raise UserError(f"pool '{name}': nccl needs gpus_per_pod >= 1")
        if profile.gpus_per_pod and (profile.gpus_per_node < profile.gpus_per_pod
                                     or profile.gpus_per_node % profile.gpus_per_pod):
            raise UserError(f"pool '{name}': gpus_per_node ({profile.gpus_per_node}) must be a multiple of "
                            f"gpus_per_pod ({profile.gpus_per_pod}), at least 1 on a GPU pool")
        if profile.price_per_node_hour is not None and not (profile.price_per_node_hour > 0 and profile.price_source):
            raise UserError(f"pool '{name}': price_per_node_hour must be > 0 and come with price_source "
                            "(where and when the price was read)")
        profiles[name] = profile
    return profiles


def get_pool(name: str, path: Path | None = None) -> PoolProfile:
    pools = load_pools(path)
    if name not in pools:
        raise UserError(f"unknown pool '{name}'; valid pools: {', '.join(pools)}")
    return pools[name]
