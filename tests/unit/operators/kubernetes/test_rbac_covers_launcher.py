"""The launcher's Role grants every API call the launcher makes (derived from the source of
operators/kubernetes/: the job lifecycle, its diagnosis and logs, and the run cleanup)."""

import re

import pytest
import yaml

from tests.conftest import REPO

pytestmark = pytest.mark.unit
CALL = re.compile(r"\b(?:core|batch|core_v1|batch_v1|self\.core|self\.batch)\.((create|read|list|delete|patch|replace)"
                  r"_namespaced_([a-z_]+))")
VERB = {"create": "create", "read": "get", "list": "list", "delete": "delete", "patch": "patch", "replace": "update"}
RESOURCE = {"job": ("batch", "jobs"), "service": ("", "services"), "pod": ("", "pods"), "event": ("", "events"),
            "pod_log": ("", "pods/log"), "job_status": ("batch", "jobs/status")}


def needed_permissions():
    source = "\n".join(path.read_text() for path in sorted((REPO / "operators" / "kubernetes").glob("*.py")))
    needs = set()
    for method, action, kind in CALL.findall(source):
        assert kind in RESOURCE, f"map the API call {method} to its RBAC resource in this test"
        group, resource = RESOURCE[kind]
        needs.add((group, resource, VERB[action]))
    return needs


def granted_permissions():
    documents = list(yaml.safe_load_all((REPO / "docker" / "k8s" / "rbac.yaml").read_text()))
    role = next(d for d in documents if d and d["kind"] == "Role" and d["metadata"]["name"] == "mlbench-launcher")
    return {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}


# What the provider's KubernetesPodOperator does with a single-node pod (operators/kubernetes/pod_operator.py):
# create it, read and watch it, read its log and events, label it `already_checked`, delete it.
POD_OPERATOR_CALLS = {("", "pods", verb) for verb in ("create", "get", "list", "watch", "patch", "delete")} | {
    ("", "pods/log", "get"), ("", "events", "list")}


# IndexedJobTrigger's calls go through the provider's async hook and kubernetes_asyncio's API classes
TRIGGER_CALLS = {("batch", "jobs/status", "get"), ("", "pods", "list"), ("batch", "jobs", "delete"),
                 ("", "services", "delete")}


def test_the_job_triggers_calls_are_granted_to_the_role():
    missing = TRIGGER_CALLS - granted_permissions()
    assert not missing, f"rbac.yaml lacks {sorted(missing)}"


def test_the_pod_operators_calls_are_granted_to_the_role():
    missing = POD_OPERATOR_CALLS - granted_permissions()
    assert not missing, f"rbac.yaml lacks {sorted(missing)}"


def test_every_call_of_the_launcher_is_granted_to_its_role():
    needs = needed_permissions()
    assert len(needs) >= 8  # the scan found the launcher's calls
    missing = needs - granted_permissions()
    assert not missing, f"rbac.yaml lacks {sorted(missing)}"
