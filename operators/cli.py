"""`mlbench pools`, `mlbench render`, `mlbench compare` and `mlbench rerun`: the commands of the
`mlbench` CLI that need the Airflow side.

They live here, not in tasks/cli.py, because they need operators/ (pool profiles, planning,
manifest builders, MLflow), which the training image does not ship. Each function below is an entry point
of the `mlbench.commands` group (pyproject.toml): it adds its subcommand to the `mlbench` parser
with its handler; tasks/cli.py loads the group and skips what cannot be imported.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tasks.cli import (
    DEFAULT_DATA_ROOT,
    between_zero_and_one,
    launch_locally,
    override_argument,
    positive_seconds,
    world_size_argument,
)
from tasks.errors import UserError
from tasks.settings import Settings

DAG_ID = "mlbench_benchmark"  # the DAG `rerun --trigger` triggers


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
    render.add_argument("--path", choices=("pod", "job"),
                        help="pod: the single-node pod as the KubernetesPodOperator builds it (dry run); job: the "
                             "Indexed Job + Service (default: the path a DAG run takes for this world size)")
    render.set_defaults(handler=cmd_render)


def add_compare_command(subparsers: argparse._SubParsersAction) -> None:
    compare = subparsers.add_parser("compare", help="compare two benchmark DAG runs logged to MLflow, per "
                                                    "configuration (Markdown for a pull request, or JSON)")
    compare.add_argument("a", metavar="A", help="DAG run id (tag dag_run_id) or parent run id: the baseline")
    compare.add_argument("b", metavar="B", help="DAG run id or parent run id: compared against A")
    compare.add_argument("--format", choices=("markdown", "json"), default="markdown")
    compare.add_argument("--alpha", type=between_zero_and_one("a significance level"), default=0.05,
                         help="significance level (default 0.05)")
    compare.add_argument("--tracking-uri", help="MLflow store (default: $MLFLOW_TRACKING_URI, else "
                                                "$MLBENCH_HOME/mlflow.db)")
    compare.set_defaults(handler=cmd_compare)


def add_rerun_command(subparsers: argparse._SubParsersAction) -> None:
    rerun = subparsers.add_parser("rerun", help="run a logged configuration again, exactly as it was logged "
                                                "(locally, or as a new mlbench_benchmark DAG run)")
    rerun.add_argument("run_id", metavar="RUN_ID", help="MLflow id of a configuration run (a child run)")
    where = rerun.add_mutually_exclusive_group(required=True)
    where.add_argument("--output", type=Path, help="run it here, with local ranks, into this new run directory")
    where.add_argument("--trigger", action="store_true",
                       help=f"trigger the {DAG_ID} DAG with the equivalent request (`airflow dags trigger`)")
    rerun.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT,
                       help=f"prepared datasets (default: $MLBENCH_DATA_ROOT or {DEFAULT_DATA_ROOT})")
    rerun.add_argument("--timeout", type=positive_seconds, default=24 * 3600, help="whole-run limit in seconds")
    rerun.add_argument("--rendezvous-timeout", type=positive_seconds, default=300,
                       help="seconds a rank waits for its peers")
    rerun.add_argument("--tracking-uri", help="MLflow store (default: $MLFLOW_TRACKING_URI, else "
                                              "$MLBENCH_HOME/mlflow.db)")
    rerun.set_defaults(handler=cmd_rerun)


def add_track_command(subparsers: argparse._SubParsersAction) -> None:
    track = subparsers.add_parser("track", help="log a DAG run's run directory to MLflow (again): what the "
                                                "track step does, e.g. after the tracking server was down; "
                                                "runs are found again, nothing is duplicated")
    track.add_argument("--run-id", required=True, help="the DAG run id (its run directory under $MLBENCH_RUNS_ROOT)")
    track.add_argument("--dag-id", default=DAG_ID, help=f"the DAG it ran in (default {DAG_ID})")
    track.set_defaults(handler=cmd_track)


def cmd_track(args: argparse.Namespace) -> int:
    from operators.run_directory import RunDirectory
    from operators.steps import track_step

    directory = RunDirectory.of(args.run_id)
    if not directory.path.is_dir():
        raise UserError(f"no run directory for DAG run {args.run_id!r} at {directory.path}; "
                        "valid: the name of a directory under $MLBENCH_RUNS_ROOT")
    ids = track_step(args.run_id, dag_id=args.dag_id)
    print(json.dumps(ids, indent=2, sort_keys=True))
    return 0


def cmd_pools(args: argparse.Namespace) -> int:
    from operators.kubernetes.pools import load_pools

    for profile in load_pools(Settings.from_env().pools_file).values():
        gpus = f"{profile.gpus_per_node} GPU/node, {profile.gpus_per_pod}/pod" if profile.gpus_per_pod else "CPU"
        queue = f", kueue queue {profile.kueue_queue}" if profile.kueue_queue else ""
        price = (f", ${profile.price_per_node_hour:g}/node-hour" if profile.price_per_node_hour is not None
                 else ", no price")
        print(f"{profile.name}  {gpus}, {profile.cpu} CPU, {profile.memory}, {profile.backend}{queue}{price}; "
              f"world sizes {profile.valid_world_sizes()}: {profile.description}")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from operators.kubernetes.pod_operator import render_single_node_pod
    from operators.kubernetes.pools import get_pool, placement
    from operators.kubernetes.spec import build_manifests, to_yaml
    from operators.launch import DEFAULT_RENDEZVOUS_S, DEFAULT_RUN_TIMEOUT_S, launch_target
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
    path = args.path or ("pod" if placement(args.world_size, pool).single_node else "job")
    target = launch_target(configuration, settings, dag_id="mlbench_benchmark", run_timeout_s=DEFAULT_RUN_TIMEOUT_S,
                           rendezvous_timeout_s=DEFAULT_RENDEZVOUS_S, image=args.image, namespace=args.namespace)
    if path == "pod":
        sys.stdout.write(to_yaml([render_single_node_pod(configuration, image=target.image,
                                                         namespace=target.namespace)]))
        return 0
    manifests = build_manifests(configuration, target)
    sys.stdout.write(to_yaml(manifests))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Both sides read from MLflow, paired per configuration, printed as Markdown or JSON."""
    from operators.compare import compare, to_markdown
    from operators.tracking.lookup import benchmark_side, open_store

    store = open_store(args.tracking_uri)
    comparison = compare(benchmark_side(store, args.a), benchmark_side(store, args.b), alpha=args.alpha)
    if args.format == "json":
        print(json.dumps(comparison.to_dict(), indent=2))
    else:
        sys.stdout.write(to_markdown(comparison))
    return 0


def cmd_rerun(args: argparse.Namespace) -> int:
    """The logged config rebuilt (same hash), then run locally or triggered as a DAG run; one warning
    line first when today's code, image or task version is not what the run recorded."""
    from operators.rerun import check_request, drift_warning, rebuild_config, trigger_request
    from operators.tracking.lookup import logged_configuration, open_store
    from tasks.runtime.provenance import code_version

    logged = logged_configuration(open_store(args.tracking_uri), args.run_id)
    config = rebuild_config(logged)
    request = trigger_request(logged, config) if args.trigger else None
    if request is not None:
        check_request(request, config)
    warning = drift_warning(logged, git_sha=code_version(), image=_image_today(request))
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    if request is not None:
        return _trigger(request)
    if (args.output / "result.json").exists():
        raise UserError(f"{args.output} already holds a finished run (result.json); a rerun needs a new directory")
    print(f"[mlbench] rerun of {logged.run_id} ({logged.config_id}): config hash {config.config_hash()}", flush=True)
    return launch_locally(config, output=args.output, data_root=args.data_root, timeout_s=args.timeout,
                          rendezvous_timeout_s=args.rendezvous_timeout)


def _image_today(request: dict | None) -> str | None:
    """The image a rerun records: the pool's image for a Kubernetes DAG run, else $MLBENCH_IMAGE
    (what a local rank records)."""
    if request is None or request["launcher"] != "kubernetes":
        return os.environ.get("MLBENCH_IMAGE")
    from operators.kubernetes.pools import get_pool
    from operators.kubernetes.spec import default_image

    settings = Settings.from_env()
    return default_image(get_pool(request["pool"], settings.pools_file), settings)


def _trigger(request: dict) -> int:
    """`airflow dags trigger mlbench_benchmark --conf REQUEST`, with this environment's Airflow."""
    airflow = shutil.which("airflow") or str(Path(sys.executable).with_name("airflow"))
    conf = json.dumps(request, sort_keys=True)
    if not Path(airflow).exists():
        raise UserError(f"no `airflow` command here; install the airflow extra, or on the Airflow host run: "
                        f"airflow dags trigger {DAG_ID} --conf '{conf}'")
    print(f"[mlbench] triggering {DAG_ID} with {conf}", flush=True)
    done = subprocess.run([airflow, "dags", "trigger", DAG_ID, "--conf", conf, "--output", "json"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        raise UserError(f"`airflow dags trigger {DAG_ID}` failed (exit {done.returncode}): "
                        f"{lines[-1].strip() if lines else 'no output'}")
    # Airflow logs to stdout too; the new DAG run is its one JSON line
    runs = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("[{")]
    for run in (row for rows in runs for row in rows):
        print(f"[mlbench] triggered {DAG_ID}: DAG run {run.get('dag_run_id')} ({run.get('state')})")
    if not runs:
        sys.stdout.write(done.stdout)
    return 0
