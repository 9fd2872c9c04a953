"""`mlbench compare` and `mlbench rerun` against a real (temporary) SQLite MLflow store, through
`mlbench`'s main with the commands as pyproject.toml registers them (the installed metadata may
predate them). The rerun test logs a real smoke run of task 2a and reruns it locally."""

import dataclasses
import json
import os
import tomllib
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import tasks.cli
from operators.report import ConfigurationOutcome
from operators.tracking import log_benchmark
from tasks.registry import resolve
from tasks.runtime.results import Provenance, read_result
from tests.conftest import REPO, make_training_record

pytestmark = pytest.mark.integration

mlflow = pytest.importorskip("mlflow")

DAG_ID = "mlbench_benchmark"
TASK = "cifar10-resnet20"


@pytest.fixture(autouse=True)
def project_commands(monkeypatch):
    """`mlbench` with the `mlbench.commands` entry points of this checkout's pyproject.toml."""
    group = tasks.cli.COMMAND_GROUP
    table = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"][group]
    monkeypatch.setattr(tasks.cli, "entry_points",
                        lambda group: [EntryPoint(name, value, group) for name, value in table.items()])


def mlbench(capsys, *args):
    code = tasks.cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def outcome(config_id, world_size, repeat, tta, *, output="", lr=None):
    """A configuration of 1a's smoke preset that reached its target in `tta` seconds."""
    record = make_training_record(world_size, status="completed", goal_reached=True, time_to_accuracy_s=tta,
                                  wall_time_to_accuracy_s=tta + 0.5, throughput_samples_per_s=1000.0 * world_size,
                                  compute_s=tta * 0.8, communication_s=tta * 0.1, seed=42 + repeat,
                                  provenance=Provenance(git_sha="8fc85e4"))
    if lr is not None:
        record = dataclasses.replace(record, config={**record.config, "optimizer": {**record.config["optimizer"],
                                                                                    "lr": lr}})
    return ConfigurationOutcome(config_id=config_id, task=TASK, world_size=world_size, repeat=repeat,
                                algorithm="allreduce", backend="gloo", launcher="local", output=output, result=record)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Two DAG runs of 1a at 1 and 2 workers, 3 repeats each: the second faster at 2 workers."""
    base = tmp_path_factory.mktemp("compare")
    uri = f"sqlite:///{base}/mlflow.db"
    request = {"tasks": [TASK], "preset": "smoke", "world_sizes": [1, 2], "repeats": 3}
    answers = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLBENCH_HOME", str(base / "home"))
        for dag_run_id, ttas, lr in (("manual__baseline", (10.0, 10.4, 9.8), None),
                                     ("manual__change", (8.0, 8.3, 7.9), 0.05)):
            outcomes = [outcome(f"{TASK}__allreduce__w{k}__r{r}", k, r, tta * (1.5 if k == 1 else 1.0), lr=lr)
                        for k in (1, 2) for r, tta in enumerate(ttas)]
            answers[dag_run_id] = log_benchmark(outcomes, dag_id=DAG_ID, dag_run_id=dag_run_id, request=request,
                                                tracking_uri=uri)
    return {"uri": uri, "answers": answers}


def test_compare_two_dag_runs_as_markdown(store, capsys):
    code, out, err = mlbench(capsys, "compare", "manual__baseline", "manual__change", "--tracking-uri", store["uri"])
    assert code == 0, err
    assert out.startswith("## mlbench compare\n") and "- **A**: DAG run `manual__baseline`" in out
    assert "### cifar10-resnet20 · allreduce · 1 worker · gloo" in out
    assert "### cifar10-resnet20 · allreduce · 2 workers · gloo" in out
    row = next(line for line in out.splitlines() if line.startswith("| time to accuracy |")
               and "| 10.07 s ± 0.31 (n=3) |" in line)
    assert "| 8.067 s ± 0.21 (n=3) | -2 s | -19.9% | **better** (p = " in row
    assert "Config differs (A -> B): `optimizer.lr: 0.02 -> 0.05`" in out


def test_compare_parent_run_ids_as_json(store, capsys):
    parents = [store["answers"][name]["parent_runs"][TASK] for name in ("manual__baseline", "manual__change")]
    code, out, err = mlbench(capsys, "compare", *parents, "--format", "json", "--tracking-uri", store["uri"])
    assert code == 0, err
    data = json.loads(out)
    assert data["a"]["parent_run_ids"] == parents[:1] and data["b"]["dag_run_id"] == "manual__change"
    assert [c["key"]["world_size"] for c in data["configurations"]] == [1, 2]
    tta = next(f for f in data["configurations"][1]["figures"] if f["figure"]["name"] == "time_to_accuracy_s")
    assert sorted(tta["a"]["values"]) == [9.8, 10.0, 10.4] and tta["verdict"] == "better"
    assert tta["significance"]["test"] == "Welch's t-test" and tta["significance"]["p_value"] < 0.05


def test_compare_bad_input_is_one_line_naming_what_is_valid(store, capsys, tmp_path):
    code, out, err = mlbench(capsys, "compare", "manual__nope", "manual__change", "--tracking-uri", store["uri"])
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "no DAG run or parent run 'manual__nope'" in err and "recent DAG runs there: manual__change, " \
           "manual__baseline" in err
    child = store["answers"]["manual__baseline"]["child_runs"][f"{TASK}__allreduce__w2__r0"]
    code, out, err = mlbench(capsys, "compare", child, "manual__change", "--tracking-uri", store["uri"])
    assert code == 2 and err.count("\n") == 1
    assert f"run {child} is a configuration run" in err and "not a parent run" in err
    assert store["answers"]["manual__baseline"]["parent_runs"][TASK] in err  # where to look instead
    missing = f"sqlite:///{tmp_path}/none.db"
    code, out, err = mlbench(capsys, "compare", "a", "b", "--tracking-uri", missing)
    assert code == 2 and err.strip() == (f"error: no MLflow store at {missing} ({tmp_path}/none.db does not exist); "
                                         "give --tracking-uri or set MLFLOW_TRACKING_URI to the store the DAG runs "
                                         "were logged to")
    assert not (tmp_path / "none.db").exists()


def test_rerun_refuses_a_parent_run_and_names_its_configuration_runs(store, capsys, tmp_path):
    parent = store["answers"]["manual__baseline"]["parent_runs"][TASK]
    code, _, err = mlbench(capsys, "rerun", parent, "--output", str(tmp_path / "x"), "--tracking-uri", store["uri"])
    assert code == 2 and err.count("\n") == 1
    assert "is a benchmark run" in err and "not a configuration run" in err and f"{TASK}__allreduce__w1__r0" in err
    code, _, err = mlbench(capsys, "rerun", "f" * 32, "--trigger", "--tracking-uri", store["uri"])
    assert code == 2 and f"no run '{'f' * 32}'" in err


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory, data_root):
    """A real run of 2a's smoke preset as repeat 1 of a DAG run (seed + 1, one override), logged."""
    base = tmp_path_factory.mktemp("rerun")
    uri = f"sqlite:///{base}/mlflow.db"
    config = resolve("epsilon-logreg", "smoke", world_size=1, overrides={"max_epochs": "2", "seed": "43"})
    bundle = base / "runs" / "epsilon-logreg__model-averaging__w1__r1"
    assert tasks.cli.launch_locally(config, output=bundle, data_root=data_root, timeout_s=120,
                                    rendezvous_timeout_s=60) == 0
    result = read_result(bundle)
    done = ConfigurationOutcome(config_id=bundle.name, task=config.task, world_size=1, repeat=1,
                                algorithm=config.algorithm, backend="gloo", launcher="local", output=str(bundle),
                                result=result)
    request = {"tasks": [config.task], "preset": "smoke", "world_sizes": [1], "repeats": 2,
               "overrides": {"max_epochs": "2"}, "launcher": "local", "accelerator": "cpu", "pool": None}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLBENCH_HOME", str(base / "home"))
        answer = log_benchmark([done], dag_id=DAG_ID, dag_run_id="manual__rerun", request=request, tracking_uri=uri)
    return {"uri": uri, "run_id": answer["child_runs"][bundle.name], "result": result, "bundle": bundle}


def test_rerun_locally_runs_the_config_with_the_logged_hash(logged_run, data_root, capsys, tmp_path):
    client = mlflow.MlflowClient(logged_run["uri"])
    logged_hash = client.get_run(logged_run["run_id"]).data.tags["config_hash"]
    assert logged_hash == logged_run["result"].config_hash
    code, out, err = mlbench(capsys, "rerun", logged_run["run_id"], "--output", str(tmp_path / "again"),
                             "--data-root", str(data_root), "--tracking-uri", logged_run["uri"])
    assert code == 0, err
    assert "warning" not in err  # same checkout, same (no) image, same task version
    again = read_result(tmp_path / "again")
    assert again.config_hash == logged_hash and again.seed == 43 and again.completed
    assert f"config hash {logged_hash}" in out
    code, _, err = mlbench(capsys, "rerun", logged_run["run_id"], "--output", str(logged_run["bundle"]),
                           "--tracking-uri", logged_run["uri"])
    assert code == 2 and "already holds a finished run" in err


def test_rerun_trigger_sends_a_valid_request_with_the_logged_hash(logged_run, capsys, tmp_path, monkeypatch):
    from operators.request import config_overrides, device_for, validate_request

    fake = tmp_path / "bin" / "airflow"  # records its arguments; prints a log line and the run, as Airflow does
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {tmp_path}/argv\necho '[info] creating dag run'\n"
                    """echo '[{"dag_id": "mlbench_benchmark", "dag_run_id": "manual__2026", "state": "queued"}]'\n""")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("MLBENCH_GIT_SHA", "0" * 40)  # today's code differs from the recorded: one warning line
    code, out, err = mlbench(capsys, "rerun", logged_run["run_id"], "--trigger", "--tracking-uri", logged_run["uri"])
    assert code == 0, err
    assert err.count("\n") == 1 and err.startswith("warning: rerun of ") and f"git sha {'0' * 40}" in err
    assert out.splitlines()[-1] == f"[mlbench] triggered {DAG_ID}: DAG run manual__2026 (queued)"
    argv = Path(tmp_path / "argv").read_text().splitlines()
    assert argv[:3] == ["dags", "trigger", DAG_ID] and argv[3] == "--conf" and argv[5:] == ["--output", "json"]
    request = validate_request(json.loads(argv[4]))
    assert request.repeats == 1 and request.launcher == "local" and request.world_sizes == (1,)
    again = resolve(request.tasks[0], request.preset, world_size=1, backend=request.backend[0],
                    device=device_for(request), algorithm=request.algorithm,
                    overrides=config_overrides(request, request.tasks[0]))
    assert again.config_hash() == logged_run["result"].config_hash
