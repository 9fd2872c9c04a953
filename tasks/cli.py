"""`mlbench`: list tasks, prepare data, train locally, or run one rank (`worker`, used by pods).

Errors a user can fix are printed as one line, without a traceback, with a non-zero exit.
More commands come from the `mlbench.commands` entry-point group (pyproject.toml): each entry point
is a function that adds its subcommand to the parser, with a `handler`. `render` and `pools` come
that way from operators/cli.py; where operators/ is not installed (the training image) they are
simply absent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Callable, Sequence, get_args

from tasks.errors import ExitCode, UserError
from tasks.settings import Settings
from tasks.spec import Precision

DEFAULT_DATA_ROOT = Settings.from_env().data_root  # $MLBENCH_DATA_ROOT, else $MLBENCH_HOME/data
COMMAND_GROUP = "mlbench.commands"  # entry points adding more subcommands (operators/cli.py)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the problem (and exit code 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def world_size_argument(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"world size must be a whole number >= 1, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"world size must be >= 1, got {value}")
    return value


def number_argument(expected: str, valid: Callable[[float], bool]) -> Callable[[str], float]:
    """An argparse type: a float for which `valid` holds; the error says what was `expected`."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got '{text}'") from None
        if not valid(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value:g}")
        return value

    return parse


def between_zero_and_one(what: str) -> Callable[[str], float]:
    """An argparse type: a number strictly between 0 and 1; `what` names it in the error line."""
    return number_argument(f"{what} between 0 and 1", lambda value: 0 < value < 1)


positive_seconds = number_argument("seconds > 0", lambda value: value > 0)


def override_argument(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--set takes FIELD=VALUE (e.g. optimizer.lr=0.05), got '{text}'")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", required=True, help="task name (see `mlbench tasks`)")
    parser.add_argument("--preset", default="full", help="full, light, demo or smoke (default: full)")
    parser.add_argument("--algorithm", help="training algorithm (default: the task's reference)")
    parser.add_argument("--backend", default="gloo", help="gloo (CPU) or nccl (GPU); default gloo")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda for nccl, else cpu")
    parser.add_argument("--output", required=True, type=Path, help="run directory for the results bundle")
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT,
                        help=f"prepared datasets (default: $MLBENCH_DATA_ROOT or {DEFAULT_DATA_ROOT})")
    parser.add_argument("--set", dest="overrides", type=override_argument, action="append", default=[],
                        metavar="FIELD=VALUE", help="override a config field, e.g. --set max_epochs=5")
    parser.add_argument("--deterministic", action="store_true", help="deterministic kernels (tests)")
    parser.add_argument("--precision", choices=get_args(Precision),
                        help="autocast precision (default fp32; fp16 scales the loss dynamically)")
    parser.add_argument("--channels-last", action="store_true", default=None, help="NHWC memory format")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="mlbench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    tasks = sub.add_parser("tasks", help="list benchmark tasks, or show one resolved spec")
    tasks.add_argument("action", nargs="?", choices=("list", "show"), default="list")
    tasks.add_argument("name", nargs="?")
    tasks.add_argument("--preset", default="full")
    tasks.add_argument("--world-size", type=world_size_argument, default=1)
    tasks.add_argument("--algorithm")
    tasks.add_argument("--backend", default="gloo")

    prepare = sub.add_parser("prepare", help="download, verify and convert a task's dataset once")
    prepare.add_argument("--task", required=True)
    prepare.add_argument("--preset", default="full")
    prepare.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT)
    prepare.add_argument("--verify", action="store_true",
                         help="re-hash every file of an already prepared copy (by default only files whose "
                              "size or modification time changed are)")

    train = sub.add_parser("train", help="run a benchmark with N local ranks and wait for all")
    _add_run_arguments(train)
    train.add_argument("--world-size", type=world_size_argument, default=1, help="number of ranks (default 1)")
    train.add_argument("--timeout", type=positive_seconds, default=24 * 3600, help="whole-run limit in seconds")
    train.add_argument("--rendezvous-timeout", type=positive_seconds, default=300,
                       help="seconds a rank waits for its peers (rendezvous and each collective)")

    worker = sub.add_parser("worker", help="run one rank of a launched configuration; rank and peers come from "
                                           "the environment")
    worker.add_argument("--config", required=True, type=Path,
                        help="the resolved config.json its launcher wrote (`train`: OUTPUT/config.json)")
    worker.add_argument("--output", required=True, type=Path, help="run directory for the results bundle")
    worker.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT,
                        help=f"prepared datasets (default: $MLBENCH_DATA_ROOT or {DEFAULT_DATA_ROOT})")

    node = sub.add_parser("node", help="run this machine's ranks of a launched configuration (one per GPU) as "
                                       "local processes; node rank and peers come from the environment")
    node.add_argument("--config", required=True, type=Path, help="the resolved config.json its launcher wrote")
    node.add_argument("--output", required=True, type=Path, help="run directory for the results bundle")
    node.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT,
                      help=f"prepared datasets (default: $MLBENCH_DATA_ROOT or {DEFAULT_DATA_ROOT})")

    allreduce = sub.add_parser("allreduce", help="MLBench task 0: all-reduce latency and bandwidth by tensor size "
                                                  "(`train --task allreduce` with the sweep as options)")
    allreduce.add_argument("--preset", default="full", help="full (MLBench's sweep), light, demo or smoke")
    allreduce.add_argument("--world-size", type=world_size_argument, default=2)
    allreduce.add_argument("--backend", default="gloo", help="gloo (CPU) or nccl (GPU); default gloo")
    allreduce.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda for nccl, else cpu")
    allreduce.add_argument("--dtypes", help="comma list of fp32, fp16 (default: the preset's)")
    allreduce.add_argument("--min-elements", type=int)
    allreduce.add_argument("--max-elements", type=int)
    allreduce.add_argument("--count", type=int, help="log-spaced sizes (full preset: 80, as MLBench)")
    allreduce.add_argument("--repeats", type=int, help="timed calls per size (full preset: 100)")
    allreduce.add_argument("--warmup", type=int, help="untimed calls before them")
    allreduce.add_argument("--mlbench-calls", type=int,
                           help="calls per size of the MLBench-compatible pass (full preset: 100; 0: skip it)")
    allreduce.add_argument("--output", required=True, type=Path)
    allreduce.add_argument("--timeout", type=positive_seconds, default=6 * 3600)
    allreduce.add_argument("--rendezvous-timeout", type=positive_seconds, default=300)

    _add_plugin_commands(sub)
    return parser


def _add_plugin_commands(subparsers: argparse._SubParsersAction) -> None:
    """Subcommands of other packages (the `mlbench.commands` group); one whose module cannot be
    imported (operators/ absent from the training image) is skipped; one whose function is gone (an
    install older than the code) is skipped with a one-line warning."""
    for entry_point in sorted(entry_points(group=COMMAND_GROUP), key=lambda e: e.name):
        try:
            add_command = entry_point.load()
        except ImportError:
            continue
        except AttributeError:
            print(f"warning: `mlbench {entry_point.name}` is unavailable: {entry_point.value} does not exist; "
                  "the installed entry points are older than the code (reinstall: make venv)", file=sys.stderr)
            continue
        add_command(subparsers)


def _overrides(args: argparse.Namespace) -> dict[str, str]:
    """`--set` fields plus the runtime flags, as `train` resolves them."""
    overrides = dict(args.overrides)
    if args.deterministic:
        overrides["runtime.deterministic"] = "true"
    if args.precision:
        overrides["runtime.precision"] = args.precision
    if args.channels_last:
        overrides["runtime.channels_last"] = "true"
    return overrides


def _resolve(args: argparse.Namespace, world_size: int):
    from tasks.registry import resolve

    return resolve(
        args.task, args.preset, world_size=world_size, backend=args.backend, device=args.device,
        algorithm=args.algorithm, overrides=_overrides(args),
    )


def cmd_tasks(args: argparse.Namespace) -> int:
    from tasks.registry import TASKS, get_task, resolve, task_summary

    if args.action == "show" or args.name:
        if not args.name:
            raise UserError("`mlbench tasks show` needs a task name; valid tasks: " + ", ".join(TASKS))
        spec = get_task(args.name)
        config = resolve(spec.name, args.preset, world_size=args.world_size, backend=args.backend,
                         algorithm=args.algorithm)
        print(json.dumps({"summary": task_summary(spec), "resolved": config.to_dict(),
                          "config_hash": config.config_hash()}, indent=2))
        return 0
    rows = [task_summary(spec) for spec in TASKS.values()]
    header = ("task", "mlbench", "model", "dataset", "metric", "target", "light", "algorithms")
    table = [header] + [
        (r["name"], r["mlbench_id"], r["model"], r["dataset"], r["metric"], str(r["target_full"]),
         str(r["target_light"]), ",".join(r["algorithms"]))
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from tasks.data import catalog
    from tasks.registry import kind_of, resolve

    config = resolve(args.task, args.preset)
    if not kind_of(config.task).needs_data:
        print(f"task {config.task} needs no dataset: it all-reduces random tensors")
        return 0
    path = catalog.prepare_for(config.data, args.data_root, full_verify=args.verify)
    print(f"prepared {config.data.dataset} at {path}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    config = _resolve(args, args.world_size)
    return launch_locally(config, output=args.output, data_root=args.data_root, timeout_s=args.timeout,
                          rendezvous_timeout_s=args.rendezvous_timeout)


def launch_locally(config, *, output: Path, data_root: Path, timeout_s: float, rendezvous_timeout_s: float) -> int:
    """Start a resolved configuration's ranks on this machine (its dataset prepared first), wait for
    all, and print how it went; returns the exit code. `train`, `allreduce` and `rerun` end here."""
    from tasks.data import catalog
    from tasks.registry import kind_of
    from tasks.runtime.checkpoint import check_resumable
    from tasks.runtime.distributed import check_backend
    from tasks.runtime.local_job import launch_local
    from tasks.runtime.worker import ensure_writable_dir

    kind = kind_of(config.task)
    output = ensure_writable_dir(output.resolve())
    check_resumable(output / "checkpoints", config.config_hash())
    check_backend(config.backend, config.device, config.world_size)
    if kind.needs_data:
        catalog.prepare_for(config.data, data_root)
    print(f"[mlbench] launching {config.world_size} local rank(s) of {config.task} ({config.preset}); "
          f"logs in {output / 'logs'}", flush=True)
    outcome, result = launch_local(
        config, output=output, data_root=data_root.resolve(), timeout_s=timeout_s,
        rendezvous_timeout_s=rendezvous_timeout_s,
    )
    print(kind.finish_local_run(result, output))
    if outcome.returncode != 0:
        print(f"error: run failed: {result.reason or outcome.message}", file=sys.stderr)
        return outcome.exit_status
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from tasks.runtime.distributed import RankEnv
    from tasks.runtime.worker import ensure_writable_dir, read_launched_config, run_rank

    # Bundles live on a volume shared with Airflow (another uid, same group): keep them group-writable.
    os.umask(0o002)
    env = RankEnv.from_environ()
    config = read_launched_config(args.config, env.world_size)
    output = ensure_writable_dir(args.output)
    return run_rank(config, env, args.data_root, output)


def cmd_node(args: argparse.Namespace) -> int:
    """A pod's ranks: LOCAL_WORLD_SIZE local processes, rank i on GPU i (LOCAL_RANK), global rank
    NODE_RANK x LOCAL_WORLD_SIZE + i. Every rank stops when one fails; the exit code is the first
    failure's."""
    from tasks.runtime.distributed import NodeEnv
    from tasks.runtime.heartbeat import stall_timeout_s
    from tasks.runtime.local_job import build_local_job, run_local_job, worker_args

    os.umask(0o002)
    env = NodeEnv.from_environ()
    job = build_local_job(worker_args(str(args.config), str(args.output), str(args.data_root)), env.world_size,
                          args.output, master_port=env.master_port, master_addr=env.master_addr,
                          node_rank=env.node_rank, local_ranks=env.local_world_size)
    outcome = run_local_job(job, stall_timeout_s=stall_timeout_s())
    if outcome.returncode != ExitCode.OK:
        print(f"node {env.node_rank}: {outcome.message}", file=sys.stderr, flush=True)
        _lead_record_with(args.output, outcome.root_cause)
    return outcome.exit_status


def _lead_record_with(output: Path, root_cause: str | None) -> None:
    """Rank 0's failed record (in the shared output) leads with what this node saw first."""
    from tasks.runtime.bundle import lead_with_root_cause
    from tasks.runtime.results import ResultError, read_result

    if root_cause is None or not (output / "result.json").exists():
        return
    try:
        lead_with_root_cause(output, read_result(output), root_cause)
    except (ResultError, OSError):
        pass  # the pipeline reports an unreadable record itself


ALLREDUCE_OPTIONS = {"dtypes": "dtypes", "min_elements": "min_elements", "max_elements": "max_elements",
                     "count": "size_count", "repeats": "repeats", "warmup": "warmup",
                     "mlbench_calls": "mlbench_calls"}


def cmd_allreduce(args: argparse.Namespace) -> int:
    """Task 0 with its sweep as options: the same local launch as `mlbench train --task allreduce`."""
    from tasks.runtime.allreduce import backend_availability

    reason = backend_availability().get(args.backend)
    if reason:  # e.g. mpi: say why this machine cannot, before the registry lists what it accepts
        raise UserError(f"backend '{args.backend}' is not available here: {reason}")
    overrides = {field: str(getattr(args, option)) for option, field in ALLREDUCE_OPTIONS.items()
                 if getattr(args, option) is not None}
    from tasks.registry import resolve

    config = resolve("allreduce", args.preset, world_size=args.world_size, backend=args.backend,
                     device=args.device, overrides=overrides)
    return launch_locally(config, output=args.output, data_root=DEFAULT_DATA_ROOT, timeout_s=args.timeout,
                          rendezvous_timeout_s=args.rendezvous_timeout)


# Built-in commands; those added by `mlbench.commands` entry points set their own `handler`.
COMMANDS = {"tasks": cmd_tasks, "allreduce": cmd_allreduce, "prepare": cmd_prepare, "train": cmd_train,
            "worker": cmd_worker, "node": cmd_node}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        handler = COMMANDS.get(args.command) or args.handler
        return handler(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:  # output piped into `head` and closed early: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
