"""Node-pool profiles (operators/kubernetes/pools.yaml): where pods run and what they request."""

from __future__ import annotations

from dataclasses import dataclass
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
    kueue_queue: str | None = None
    priority_class: str | None = None

    @property
    def accelerator(self) -> str:
        return "gpu" if self.gpus_per_pod > 0 else "cpu"


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
        profiles[name] = profile
    return profiles


def get_pool(name: str, path: Path | None = None) -> PoolProfile:
    pools = load_pools(path)
    if name not in pools:
        raise UserError(f"unknown pool '{name}'; valid pools: {', '.join(pools)}")
    return pools[name]
