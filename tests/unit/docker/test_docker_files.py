"""Static checks of docker/: compose stack, Dockerfiles, Kubernetes manifests.

Nothing here needs a Docker engine or a cluster: files are parsed, cross-checked against the
repository and pyproject.toml, and Kubernetes objects are validated against the Kubernetes OpenAPI
schemas shipped by `kubernetes-validate` (strict: unknown fields are errors).
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
DOCKER = REPO / "docker"
K8S = DOCKER / "k8s"
COMPOSE = DOCKER / "compose.yaml"
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
MANIFESTS = sorted(K8S.glob("*.yaml"))

NAMESPACE = "mlbench"
SUBSTITUTION = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(:?-[^}]*)?\}")
ONLY_SUBSTITUTION = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(:?-[^}]*)?\}$")


# ------------------------------------------------------------------------------------ helpers
def _pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _pinned(extra: str, package: str) -> str:
    """The requirement string for `package` in a pyproject extra."""
    for requirement in _pyproject()["project"]["optional-dependencies"][extra]:
        name = re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0]
        if name.lower() == package.lower():
            return requirement
    raise AssertionError(f"{package} not in the {extra!r} extra")


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per Dockerfile instruction; continuations joined, comments dropped."""
    result: list[tuple[str, str]] = []
    buffer = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not buffer):
            continue
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        if buffer.strip():
            keyword, _, rest = buffer.strip().partition(" ")
            result.append((keyword.upper(), rest.strip()))
        buffer = ""
    assert not buffer, f"{path.name}: dangling line continuation"
    return result


def _stages(path: Path) -> tuple[list[tuple[str, str]], list[list[tuple[str, str]]]]:
    """(instructions before the first FROM, [instructions of each stage, FROM first])."""
    preamble: list[tuple[str, str]] = []
    stages: list[list[tuple[str, str]]] = []
    for keyword, rest in _instructions(path):
        if keyword == "FROM":
            stages.append([(keyword, rest)])
        elif stages:
            stages[-1].append((keyword, rest))
        else:
            preamble.append((keyword, rest))
    assert stages, f"{path.name}: no FROM"
    return preamble, stages


def _args(instructions: list[tuple[str, str]]) -> dict[str, str | None]:
    values: dict[str, str | None] = {}
    for keyword, rest in instructions:
        if keyword == "ARG":
            name, sep, default = rest.partition("=")
            values[name.strip()] = default.strip().strip('"') if sep else None
    return values


def _all_args(path: Path) -> dict[str, str | None]:
    preamble, stages = _stages(path)
    values = _args(preamble)
    for stage in stages:
        values.update({k: v for k, v in _args(stage).items() if v is not None or k not in values})
    return values


def _copy_parts(rest: str) -> tuple[list[str], list[str], str]:
    """(flags, sources, destination) of a COPY/ADD in shell or JSON form."""
    parts = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
    flags = [p for p in parts if p.startswith("--")]
    paths = [p for p in parts if not p.startswith("--")]
    assert len(paths) >= 2, f"COPY without source and destination: {rest}"
    return flags, paths[:-1], paths[-1]


def _ignore_rules(dockerfile: Path) -> list[tuple[bool, re.Pattern[str]]]:
    """The Dockerfile-specific ignore file as (is_exception, regex) rules, in order."""
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore")
    assert ignore.exists(), f"{ignore.name} missing: the whole repository (.venv, .git) would be sent"
    rules = []
    for raw in ignore.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = line.lstrip("!").strip().strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**", i):
                regex += ".*"
                i += 2
                if pattern.startswith("/", i):
                    regex += "/?"
                    i += 1
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        rules.append((exception, re.compile(f"^{regex}$")))
    return rules


def _sent(rules: list[tuple[bool, re.Pattern[str]]], relative: str) -> bool:
    """Whether a path is in the build context: the last rule matching it or a parent decides."""
    parts = relative.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for exception, regex in rules:
        if any(regex.match(candidate) for candidate in candidates):
            excluded = not exception
    return not excluded


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _airflow_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose["services"].items() if name.startswith("airflow-")}


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _all_objects() -> list[dict[str, Any]]:
    return [d for path in MANIFESTS for d in _documents(path)]


def _is_kueue(obj: dict[str, Any]) -> bool:
    return obj["apiVersion"].startswith("kueue.x-k8s.io/")


def _k8s_version() -> str:
    utils = pytest.importorskip("kubernetes_validate.utils")
    return utils.latest_version()


# ------------------------------------------------------------------------------------ compose
def test_compose_parses_with_the_expected_services():
    compose = _compose()
    assert set(compose["services"]) == {
        "postgres", "mlflow-db", "mlflow", "airflow-init", "airflow-apiserver",
        "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
    }
    assert "x-airflow-common" in compose


def test_compose_build_files_exist_with_their_ignore_files():
    builds = 0
    for name, service in _compose()["services"].items():
        build = service.get("build")
        if build is None:
            continue
        builds += 1
        context = (COMPOSE.parent / build["context"]).resolve()
        assert context == REPO, f"{name}: the build context is the repository root"
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), f"{name}: {dockerfile} missing"
        assert dockerfile.with_name(dockerfile.name + ".dockerignore").is_file()
    assert builds >= 5  # mlflow and every Airflow service


def test_compose_named_volumes_are_declared():
    compose = _compose()
    declared = set(compose.get("volumes") or {})
    used = set()
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            if isinstance(volume, dict):
                if volume.get("type") == "volume":
                    used.add(volume["source"])
                continue
            source = volume.split(":", 1)[0]
            if source and not source.startswith((".", "/", "~", "$")):
                used.add(source)
    assert used <= declared, f"undeclared volumes: {used - declared}"
    assert {"datasets", "results", "mlflow-artifacts", "airflow-db", "mlflow-db"} <= declared


def test_compose_airflow_services_share_executor_db_and_mlbench_settings():
    services = _airflow_services(_compose())
    assert set(services) == {"airflow-init", "airflow-apiserver", "airflow-scheduler",
                             "airflow-dag-processor", "airflow-triggerer"}
    environments = {name: _environment(s) for name, s in services.items()}
    reference = environments["airflow-scheduler"]
    for name, env in environments.items():
        assert env == reference, f"{name} has different Airflow settings"
    assert reference["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert reference["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert "@postgres:5432/" in reference["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert reference["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert reference["MLBENCH_DATA_ROOT"] == "/datasets"
    assert reference["MLBENCH_RUNS_ROOT"] == "/results"
    assert reference["MLBENCH_HOME"] == "/opt/airflow/mlbench"
    assert reference["GX_ANALYTICS_ENABLED"] == "False"
    execution_api = reference["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
    assert execution_api.startswith("http://airflow-apiserver:8080/")
    images = {s["image"] for s in services.values()}
    assert len(images) == 1, "every Airflow component runs the same image"
    for name, service in services.items():
        mounts = {v.split(":")[1] for v in service["volumes"]}
        assert {"/datasets", "/results"} <= mounts, name
        assert service["build"]["args"]["EXTRAS"] == "airflow,train"


def test_compose_mlflow_tracking_uri_points_at_the_mlflow_service():
    compose = _compose()
    mlflow = compose["services"]["mlflow"]
    command = mlflow["command"]
    port = command[command.index("--port") + 1]
    for name, service in _airflow_services(compose).items():
        uri = _environment(service)["MLFLOW_TRACKING_URI"]
        assert uri == f"http://mlflow:{port}", name
    assert "--serve-artifacts" in command
    assert command[command.index("--artifacts-destination") + 1] == "/mlflow-artifacts"
    assert command[command.index("--backend-store-uri") + 1].startswith("postgresql+psycopg2://")
    assert "@mlflow-db:5432/" in command[command.index("--backend-store-uri") + 1]
    allowed = command[command.index("--allowed-hosts") + 1].split(",")
    assert "mlflow:*" in allowed and "localhost:*" in allowed


def test_compose_dependencies_wait_on_health_and_init():
    services = _compose()["services"]
    for name, service in services.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            condition = spec["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck"
            if condition == "service_completed_successfully":
                assert services[dependency].get("restart") == "no", dependency
    for name in ("postgres", "mlflow-db", "mlflow", "airflow-apiserver", "airflow-scheduler",
                 "airflow-dag-processor", "airflow-triggerer"):
        assert "healthcheck" in services[name], name
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_compose_init_migrates_and_creates_the_local_pool_with_one_slot():
    command = " ".join(_compose()["services"]["airflow-init"]["command"])
    assert "airflow db migrate" in command
    assert re.search(r"airflow pools set mlbench_local 1\b", command)


def test_compose_has_no_literal_credentials():
    compose = _compose()
    secret_key = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$", re.IGNORECASE)
    for name, service in compose["services"].items():
        for key, value in _environment(service).items():
            if secret_key.search(key):
                assert ONLY_SUBSTITUTION.match(value), f"{name}: {key} is a literal, not ${{VAR:-default}}"
    for text in _strings(compose):
        for match in re.finditer(r"://[^:/@\s]+:([^@\s]+)@", text):
            assert ONLY_SUBSTITUTION.match(match.group(1)), f"literal password in {text!r}"
        # `password=...`, `--password ...` and the like, once every substitution is taken out.
        bare = SUBSTITUTION.sub("", text)
        assert not re.search(r"(?i)(password|passwd|pwd|secret)(\s*[=:]\s*|\s+)\S", bare), text


def test_compose_publishes_the_uis_on_localhost_by_default():
    services = _compose()["services"]
    assert services["airflow-apiserver"]["ports"] == ["${MLBENCH_BIND_ADDRESS:-127.0.0.1}:8080:8080"]
    assert services["mlflow"]["ports"] == ["${MLBENCH_BIND_ADDRESS:-127.0.0.1}:5000:5000"]


# ------------------------------------------------------------------------------------ Dockerfiles
def test_the_three_dockerfiles_exist():
    assert {p.name for p in DOCKERFILES} == {"train.Dockerfile", "airflow.Dockerfile", "mlflow.Dockerfile"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_copy_sources_exist_and_are_in_the_context(dockerfile: Path):
    rules = _ignore_rules(dockerfile)
    for keyword, rest in _instructions(dockerfile):
        if keyword not in ("COPY", "ADD"):
            continue
        flags, sources, _ = _copy_parts(rest)
        if any(flag.startswith("--from") for flag in flags):
            continue
        for source in sources:
            assert not source.startswith(("http://", "https://", "git@")), f"remote ADD: {source}"
            matches = list(REPO.glob(source))
            assert matches, f"{dockerfile.name}: COPY source {source} does not exist in the repository"
            for match in matches:
                relative = match.relative_to(REPO).as_posix()
                assert _sent(rules, relative), f"{dockerfile.name}: {relative} is excluded by its ignore file"
                if match.is_dir():
                    python_files = [p for p in match.rglob("*.py") if "__pycache__" not in p.parts]
                    assert python_files, relative
                    for path in python_files:
                        assert _sent(rules, path.relative_to(REPO).as_posix()), path


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_context_excludes_local_state(dockerfile: Path):
    rules = _ignore_rules(dockerfile)
    for path in (".venv/bin/python", ".git/config", ".mlbench/mlflow.db", "runs/x/result.json",
                 "tasks/__pycache__/cli.cpython-311.pyc", "mlbench_airflow.egg-info/PKG-INFO",
                 "docker/.env"):
        assert not _sent(rules, path), f"{dockerfile.name} would send {path}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_final_stage_runs_as_a_non_root_user(dockerfile: Path):
    _, stages = _stages(dockerfile)
    users = [rest for keyword, rest in stages[-1] if keyword == "USER"]
    assert users, f"{dockerfile.name}: the final stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), f"{dockerfile.name}: final USER is {users[-1]}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_has_no_secrets(dockerfile: Path):
    text = dockerfile.read_text()
    for keyword, rest in _instructions(dockerfile):
        if keyword in ("ENV", "ARG"):
            assert not re.search(r"(?i)(password|secret|token|api_key)", rest), f"{dockerfile.name}: {rest}"
    assert "PRIVATE KEY" not in text


def test_train_dockerfile_base_entrypoint_and_provenance():
    path = DOCKER / "train.Dockerfile"
    preamble, stages = _stages(path)
    global_args = _args(preamble)
    assert global_args["BASE_IMAGE"] == "nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04"
    assert stages[-1][0][1].split()[0] == "${BASE_IMAGE}", "the runtime stage is FROM ${BASE_IMAGE}"
    assert len(stages) >= 2, "multi-stage: builder and runtime"
    final = stages[-1]
    entrypoints = [rest for keyword, rest in final if keyword == "ENTRYPOINT"]
    assert entrypoints and json.loads(entrypoints[-1]) == ["mlbench"]
    assert json.loads([rest for keyword, rest in final if keyword == "CMD"][-1]) == ["--help"]
    env = " ".join(rest for keyword, rest in final if keyword == "ENV")
    for name in ("MLBENCH_GIT_SHA=${MLBENCH_GIT_SHA}", "MLBENCH_IMAGE=${MLBENCH_IMAGE}", "PYTHONUNBUFFERED=1"):
        assert name in env
    assert {"MLBENCH_GIT_SHA", "MLBENCH_IMAGE"} <= set(_args(final))
    assert [rest for keyword, rest in final if keyword == "USER"][-1] == "10001:10001"
    assert any(k == "WORKDIR" for k, _ in final)


def test_train_dockerfile_installs_torch_first_then_the_train_extra():
    path = DOCKER / "train.Dockerfile"
    args = _all_args(path)
    pin = _pinned("train", "torch")
    assert pin == f"torch=={args['TORCH_VERSION']}", "TORCH_VERSION must match pyproject's train extra"
    assert args["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cu128"
    runs = [rest for keyword, rest in _instructions(path) if keyword == "RUN"]
    torch_run = next(i for i, r in enumerate(runs) if '--index-url "${TORCH_INDEX_URL}"' in r)
    project_run = next(i for i, r in enumerate(runs) if '".[train]"' in r)
    assert torch_run < project_run
    assert "--constraint" in runs[project_run], "the project install must not replace the torch build"
    # The venv's interpreter exists in the runtime stage: copied from the stage that built the venv.
    _, stages = _stages(path)
    final = stages[-1]
    copied = [_copy_parts(rest) for keyword, rest in final if keyword == "COPY"]
    sources = {(flag, source) for flags, srcs, _ in copied for flag in flags for source in srcs}
    assert ("--from=cpython", "/usr/local/bin/python3.11") in sources
    assert ("--from=cpython", "/usr/local/lib/python3.11") in sources
    assert ("--from=builder", "/opt/mlbench/venv") in sources
    builder_from = next(s[0][1] for s in stages if s[0][1].endswith(" AS builder"))
    assert builder_from.split()[0] == "cpython", "the venv is built by the interpreter that is copied"


def test_train_image_holds_the_training_runtime_and_not_operators():
    """Pods run tasks/ only: operators/ (the Airflow side) is neither copied nor sent as context, and
    the package list is discovered, so `pip install .[train]` builds from tasks/ alone."""
    path = DOCKER / "train.Dockerfile"
    copied = [_copy_parts(rest) for keyword, rest in _instructions(path) if keyword == "COPY"]
    sources = {source for flags, srcs, _ in copied if not any(f.startswith("--from") for f in flags)
               for source in srcs}
    assert sources == {"pyproject.toml", "README.md", "tasks"}
    rules = _ignore_rules(path)
    for relative in ("operators/cli.py", "operators/kubernetes/pools.yaml", "dags/mlbench_benchmark.py"):
        assert not _sent(rules, relative), f"the training image's context would hold {relative}"
    for relative in ("pyproject.toml", "tasks/cli.py", "tasks/runtime/result.schema.json"):
        assert _sent(rules, relative), f"the training image's context lacks {relative}"
    setuptools = _pyproject()["tool"]["setuptools"]
    assert "tasks*" in setuptools["packages"]["find"]["include"], "packages are found, not listed"


def test_airflow_dockerfile_versions_match_pyproject():
    path = DOCKER / "airflow.Dockerfile"
    specifiers = pytest.importorskip("packaging.specifiers")
    args = _all_args(path)
    image = args["AIRFLOW_IMAGE"]
    assert image.startswith("apache/airflow:") and image.endswith("-python3.11")
    airflow_version = image.split(":", 1)[1].split("-")[0]
    airflow_pin = _pinned("airflow", "apache-airflow")
    assert airflow_version in specifiers.SpecifierSet(airflow_pin.split("apache-airflow", 1)[1])
    assert args["EXTRAS"] == "airflow"
    assert _pinned("train", "torch") == f"torch=={args['TORCH_VERSION']}"
    assert args["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    instructions = _instructions(path)
    copies = [_copy_parts(rest) for keyword, rest in instructions if keyword == "COPY"]
    assert any(srcs == ["dags"] and dest == "/opt/airflow/dags" for _, srcs, dest in copies)
    assert [rest for keyword, rest in instructions if keyword == "USER"][-1] == "airflow"
    install = next(rest for keyword, rest in instructions if keyword == "RUN" and "pip install" in rest
                   and "[${EXTRAS}]" in rest)
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in install, "pip must not move Airflow itself"
    assert install.index("torch==${TORCH_VERSION}") < install.index("[${EXTRAS}]")


def test_mlflow_dockerfile_matches_the_client_version():
    specifiers = pytest.importorskip("packaging.specifiers")
    args = _all_args(DOCKER / "mlflow.Dockerfile")
    pin = _pinned("airflow", "mlflow")
    assert args["MLFLOW_VERSION"] in specifiers.SpecifierSet(pin.split("mlflow", 1)[1])
    assert "psycopg2-binary" in (DOCKER / "mlflow.Dockerfile").read_text()
    assert _compose()["services"]["mlflow"]["image"].endswith(f":{args['MLFLOW_VERSION']}")


# ------------------------------------------------------------------------------------ Kubernetes
def test_manifest_files():
    assert {p.name for p in MANIFESTS} >= {"namespace.yaml", "rbac.yaml", "storage.yaml", "kueue.yaml"}


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifests_validate_against_the_kubernetes_schema(path: Path):
    utils = pytest.importorskip("kubernetes_validate.utils")
    version = _k8s_version()
    documents = _documents(path)
    assert documents, f"{path.name} is empty"
    for obj in documents:
        assert {"apiVersion", "kind", "metadata"} <= set(obj), path.name
        assert obj["metadata"].get("name"), path.name
        if _is_kueue(obj):
            continue  # CRDs: checked structurally below
        utils.validate(obj, version, strict=True)


def test_the_schema_validation_is_strict():
    utils = pytest.importorskip("kubernetes_validate.utils")
    typo = {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "x", "namespace": NAMESPACE}, "automountServiceAccountTokens": False}
    with pytest.raises(utils.ValidationError):
        utils.validate(typo, _k8s_version(), strict=True)


def test_namespaced_objects_live_in_the_mlbench_namespace():
    cluster_scoped = {"Namespace", "PriorityClass", "ResourceFlavor", "ClusterQueue"}
    objects = _all_objects()
    namespaces = [o for o in objects if o["kind"] == "Namespace"]
    assert [n["metadata"]["name"] for n in namespaces] == [NAMESPACE]
    assert namespaces[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for obj in objects:
        if obj["kind"] not in cluster_scoped:
            assert obj["metadata"].get("namespace") == NAMESPACE, f"{obj['kind']} {obj['metadata']['name']}"


def test_rbac_is_least_privilege_and_namespaced():
    objects = _all_objects()
    assert not [o for o in objects if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    accounts = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ServiceAccount"}
    assert set(accounts) == {"mlbench-launcher", "mlbench-worker"}
    assert accounts["mlbench-worker"]["automountServiceAccountToken"] is False

    roles = [o for o in objects if o["kind"] == "Role"]
    assert len(roles) == 1 and roles[0]["metadata"]["name"] == "mlbench-launcher"
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in roles[0]["rules"]:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], f"wildcard in {field}: {rule}"
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    assert granted == {
        ("batch", "jobs"): {"create", "get", "list", "watch", "delete"},
        ("batch", "jobs/status"): {"get"},  # the deferrable wait's trigger
        ("", "services"): {"create", "get", "list", "delete"},
        ("", "pods"): {"create", "get", "list", "watch", "delete", "patch"},  # + the KubernetesPodOperator's pods
        ("", "pods/log"): {"get"},
        ("", "events"): {"get", "list", "watch"},
    }

    bindings = [o for o in objects if o["kind"] == "RoleBinding"]
    assert len(bindings) == 1
    binding = bindings[0]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": "mlbench-launcher"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "mlbench-launcher",
                                    "namespace": NAMESPACE}]


def test_storage_claims():
    claims = {o["metadata"]["name"]: o for o in _all_objects() if o["kind"] == "PersistentVolumeClaim"}
    assert set(claims) == {"mlbench-datasets", "mlbench-results"}
    sizes = {"mlbench-datasets": "200Gi", "mlbench-results": "50Gi"}
    for name, claim in claims.items():
        assert claim["spec"]["accessModes"] == ["ReadWriteMany"], name
        assert claim["spec"]["resources"]["requests"]["storage"] == sizes[name]
        assert "storageClassName" not in claim["spec"], "left to the user (see the comment)"


def test_kueue_objects_are_well_formed():
    objects = [o for o in _all_objects() if _is_kueue(o)]
    for obj in objects:
        assert obj["apiVersion"] == "kueue.x-k8s.io/v1beta1"
    by_kind = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], []).append(obj)
    assert set(by_kind) == {"ResourceFlavor", "ClusterQueue", "LocalQueue"}

    (flavor,) = by_kind["ResourceFlavor"]
    assert flavor["metadata"]["name"] == "gpu-h100" and "namespace" not in flavor["metadata"]
    assert flavor["spec"]["nodeLabels"] and all(isinstance(v, str) for v in flavor["spec"]["nodeLabels"].values())

    (queue,) = by_kind["ClusterQueue"]
    assert queue["metadata"]["name"] == "mlbench-gpu" and "namespace" not in queue["metadata"]
    assert queue["spec"]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": NAMESPACE}
    quota: dict[str, Any] = {}
    for group in queue["spec"]["resourceGroups"]:
        covered = group["coveredResources"]
        for flavor_quota in group["flavors"]:
            assert flavor_quota["name"] == flavor["metadata"]["name"]
            names = [r["name"] for r in flavor_quota["resources"]]
            assert names == covered, "each flavor lists exactly the covered resources, in order"
            for resource in flavor_quota["resources"]:
                assert set(resource) <= {"name", "nominalQuota", "borrowingLimit", "lendingLimit"}
                quota[resource["name"]] = resource["nominalQuota"]
    assert quota["nvidia.com/gpu"] == 8
    assert {"cpu", "memory"} <= set(quota)

    (local,) = by_kind["LocalQueue"]
    assert local["metadata"]["name"] == "mlbench" and local["metadata"]["namespace"] == NAMESPACE
    assert local["spec"] == {"clusterQueue": "mlbench-gpu"}


def test_kueue_matches_the_pool_profiles():
    pools_file = REPO / "operators" / "kubernetes" / "pools.yaml"
    if not pools_file.exists():
        pytest.skip("no pool profiles yet")
    pools = yaml.safe_load(pools_file.read_text())["pools"]
    objects = _all_objects()
    local_queues = {o["metadata"]["name"] for o in objects if o["kind"] == "LocalQueue"}
    priority_classes = {o["metadata"]["name"] for o in objects if o["kind"] == "PriorityClass"}
    (flavor,) = [o for o in objects if o["kind"] == "ResourceFlavor"]
    for name, pool in pools.items():
        if pool.get("kueue_queue"):
            assert pool["kueue_queue"] in local_queues, f"pool {name}: no LocalQueue {pool['kueue_queue']}"
            assert flavor["spec"]["nodeLabels"].items() <= pool["node_selector"].items(), name
        if pool.get("priority_class"):
            assert pool["priority_class"] in priority_classes, f"pool {name}: no PriorityClass"


def test_prepare_job_is_the_only_writer_of_the_datasets_volume():
    jobs = [o for o in _all_objects() if o["kind"] == "Job"]
    assert len(jobs) == 1
    pod = jobs[0]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "mlbench-worker" and pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsUser"] == 10001 and pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["image"] == "mlbench-airflow/train:0.1.0-cpu"
    assert container["command"] == ["mlbench"] and container["args"][0] == "prepare"
    assert container["args"][container["args"].index("--data-root") + 1] == "/datasets"
    claims = {v["name"]: v["persistentVolumeClaim"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {"datasets": {"claimName": "mlbench-datasets"}}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert not mounts["/datasets"].get("readOnly", False)


# ------------------------------------------------------------------------------------ README
def test_readme_refers_only_to_files_that_exist():
    text = (DOCKER / "README.md").read_text()
    assert "placeholder" not in text.lower()
    for relative in set(re.findall(r"\((k8s/[\w.-]+|[\w.-]+\.(?:Dockerfile|yaml))\)", text)):
        assert (DOCKER / relative).exists(), relative
    for relative in set(re.findall(r"docker/[\w./-]+\.(?:yaml|Dockerfile)", text)):
        assert (REPO / relative).exists(), relative
