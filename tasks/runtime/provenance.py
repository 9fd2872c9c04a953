"""Where a result came from: versions, hardware, code and image, recorded with every run."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

from tasks.runtime.results import Provenance


def code_version() -> str | None:
    """Git sha of the code that ran: from the image build (MLBENCH_GIT_SHA) or the checkout."""
    if os.environ.get("MLBENCH_GIT_SHA"):
        return os.environ["MLBENCH_GIT_SHA"]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: str, local_rank: int = 0) -> str:
    import torch

    if device == "cuda":
        return torch.cuda.get_device_name(local_rank)
    return cpu_model()


def collect(device: str, local_rank: int = 0) -> Provenance:
    import torch

    nccl = None
    if torch.cuda.is_available():
        try:
            nccl = ".".join(str(v) for v in torch.cuda.nccl.version())
        except (AttributeError, RuntimeError):
            nccl = None
    return Provenance(
        hostname=socket.gethostname(),
        python=sys.version.split()[0],
        platform=platform.platform(),
        torch=torch.__version__,
        cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version() if torch.cuda.is_available() else None,
        nccl=nccl,
        device_name=device_name(device, local_rank),
        cpu_count=os.cpu_count(),
        torch_threads=torch.get_num_threads(),
        git_sha=code_version(),
        image=os.environ.get("MLBENCH_IMAGE"),
        node_type=os.environ.get("MLBENCH_NODE_TYPE"),
    )
