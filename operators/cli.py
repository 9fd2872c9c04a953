"""`mlbench pools` and `mlbench render`: the Kubernetes commands of the `mlbench` CLI.

They live here, not in tasks/cli.py, because they need operators/ (pool profiles, planning,
manifest builders), which the training image does not ship. Each function below is an entry point
of the `mlbench.commands` group (pyproject.toml): it adds its subcommand to the `mlbench` parser
with its handler; tasks/cli.py loads the group and skips what cannot be imported.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tasks.cli import override_argument, world_size_argument
from tasks.settings import Settings


def add_pools_command(subparsers: argparse._SubParsersAction) -> None:
    pools = subparsers.add_parser("pools", help="list the Kubernetes node-pool profiles, one per line, name first")
    pools.set_defaults(handler=cmd_pools)


def add_render_command(subparsers: argparse._SubParsersAction) -> None:
    render = subparsers.add_parser("render", help="print the Kubernetes manifests a DAG run would create (YAML)")
    render.add_argument("--task", required=True)
    render.add_argument("--preset", default="full")
    render.add_argument("--world-size", type=world_size_argument, default=1)
    render.add_argument("--pool", required=True, help="node-pool profile (see `mlbench pools`)")
    render.add_argument("--image", help="training image (default: $MLBENCH_IMAGE or the pool's variant)")
    render.add_argument("--algorithm")
    render.add_argument("--set", dest="overrides", type=override_argument, action="append", default=[],
                        metavar="FIELD=VALUE")
    render.add_argument("--namespace", help="default: $MLBENCH_K8S_NAMESPACE or mlbench")
    render.add_argument("--dag-run-id", default="manual__render")
    render.set_defaults(handler=cmd_render)


def cmd_pools(args: argparse.Namespace) -> int:
    from operators.kubernetes.pools import load_pools

    for profile in load_pools(Settings.from_env().pools_file).values():
        gpus = f"{profile.gpus_per_pod} GPU" if profile.gpus_per_pod else "CPU"
        queue = f", kueue queue {profile.kueue_queue}" if profile.kueue_queue else ""
        print(f"{profile.name}  {gpus}/pod, {profile.cpu} CPU, {profile.memory}, {profile.backend}{queue}: "
              f"{profile.description}")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from operators.kubernetes.pools import get_pool
    from operators.kubernetes.spec import build_manifests, default_image, to_yaml
    from operators.launch import DEFAULT_RENDEZVOUS_S, rendezvous_timeout
    from operators.planning import plan_configurations
    from operators.request import validate_request

    settings = Settings.from_env()
    pool = get_pool(args.pool, settings.pools_file)
    request = validate_request({
        "tasks": [args.task], "preset": args.preset, "world_sizes": [args.world_size],
        "backend": pool.backend, "accelerator": pool.accelerator, "algorithm": args.algorithm,
        "launcher": "kubernetes", "pool": args.pool, "overrides": dict(args.overrides),
    })
    configuration = plan_configurations(request, run_id=args.dag_run_id, runs_root=Path("/results"),
                                        data_root=Path("/datasets"))[0]
    manifests = build_manifests(configuration, pool, image=args.image or default_image(pool, settings),
                                dag_id="mlbench_benchmark", dag_run_id=args.dag_run_id,
                                namespace=args.namespace or settings.k8s_namespace,
                                rendezvous_timeout_s=int(rendezvous_timeout(DEFAULT_RENDEZVOUS_S, settings)))
    sys.stdout.write(to_yaml(manifests))
    return 0
