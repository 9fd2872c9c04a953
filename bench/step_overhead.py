"""What the runtime's timed training step costs over a minimal plain-PyTorch step.

Same model (ResNet-20), same batch, same optimizer settings, one process, world size 1. The two
loops alternate round by round so machine noise hits both alike; we compare medians. The last
line is `ratio=<plain_time/runtime_time>`: 1.0 means the runtime adds nothing. The ratio is the
median over rounds of each round's paired ratio, which cancels drifts that span several rounds.

On CUDA a third loop runs the runtime step with its device synchronization switched off, which
isolates what the per-phase synchronization costs.

    python bench/step_overhead.py                       # CPU, batch 128, fp32
    python bench/step_overhead.py --device cuda --batch-size 512 --precision bf16 --channels-last
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from tasks.data import catalog
from tasks.models import build_model
from tasks.registry import resolve
from tasks.runtime.distributed import RankEnv
from tasks.runtime.timing import StepTimer
from tasks.runtime.trainer import Trainer, configure_determinism


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=3, help="steps per loop per round")
    parser.add_argument("--warmup", type=int, default=3)
    return parser.parse_args()


def plain_loop(config, device: torch.device):
    """The minimal loop a user would write: no timing, no phases, no aggregation."""
    torch.manual_seed(config.seed)
    model = build_model(config.model.name, config.num_classes).to(device)
    if config.runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = config.optimizer
    optimizer = torch.optim.SGD(model.parameters(), lr=config.scaled_lr, momentum=opt.momentum,
                                weight_decay=opt.weight_decay, nesterov=opt.nesterov)
    criterion = torch.nn.CrossEntropyLoss()
    bf16 = config.runtime.precision == "bf16"

    def step(images: torch.Tensor, labels: torch.Tensor) -> None:
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        if config.runtime.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = criterion(model(images), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def time_steps(step, batch, steps: int, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step(*batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main() -> None:
    args = parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda needs a CUDA GPU and none is visible here; use --device cpu")
    # Batches are random tensors of CIFAR shape; the generated CIFAR-format dataset only tells the
    # trainer what it builds (ResNet-20 for 10 classes), so no download is needed.
    overrides = {"batch_size": str(args.batch_size), "runtime.precision": args.precision,
                 "runtime.channels_last": str(args.channels_last).lower(), "data.dataset": "synthetic-cifar10"}
    backend = "nccl" if args.device == "cuda" else "gloo"
    config = resolve("cifar10-resnet20", "full", world_size=1, backend=backend, device=args.device,
                     overrides=overrides)
    configure_determinism(config)
    device = torch.device("cuda:0" if args.device == "cuda" else "cpu")
    env = RankEnv(rank=0, world_size=1, local_rank=0, master_addr="127.0.0.1", master_port=0)
    with tempfile.TemporaryDirectory() as tmp:
        catalog.prepare("synthetic-cifar10", Path(tmp), log=lambda _m: None)
        trainer = Trainer(config, env, Path(tmp), Path(tmp), log=lambda _m: None)
        trainer.build()
        loops = {"plain": plain_loop(config, device), "runtime": lambda x, y: trainer.train_step(x, y)}
        if device.type == "cuda":
            unsynced = Trainer(config, env, Path(tmp), Path(tmp), log=lambda _m: None)
            unsynced.build()
            unsynced.timer = StepTimer(sync=None)
            loops["runtime-nosync"] = lambda x, y: unsynced.train_step(x, y)

        generator = torch.Generator().manual_seed(0)
        images = torch.randn(args.batch_size, 3, 32, 32, generator=generator)
        labels = torch.randint(0, 10, (args.batch_size,), generator=generator)
        batch = (images, labels)
        for step in loops.values():
            time_steps(step, batch, args.warmup, device)

        samples: dict[str, list[float]] = {name: [] for name in loops}
        for round_index in range(args.rounds):
            order = list(loops) if round_index % 2 == 0 else list(reversed(loops))
            for name in order:
                samples[name].append(time_steps(loops[name], batch, args.steps, device))

    print(f"device={args.device} torch={torch.__version__} threads={torch.get_num_threads()} "
          f"batch={args.batch_size} precision={args.precision} channels_last={args.channels_last} "
          f"rounds={args.rounds} steps/round={args.steps}")
    medians = {name: statistics.median(values) for name, values in samples.items()}
    for name, median in medians.items():
        spread = max(samples[name]) - min(samples[name])
        print(f"{name:15s} median {median * 1e3:8.2f} ms/step  spread {spread * 1e3:7.2f} ms  "
              f"{args.batch_size / median:9.1f} images/s")
    def paired(numerator: str, denominator: str) -> float:
        return statistics.median(a / b for a, b in zip(samples[numerator], samples[denominator], strict=True))

    if "runtime-nosync" in medians:
        print(f"sync_cost_ratio={paired('runtime-nosync', 'runtime'):.4f}  (unsynced/synced step time)")
    print(f"ratio={paired('plain', 'runtime'):.4f}")


if __name__ == "__main__":
    main()
