"""The Kubernetes job lifecycle against a fake of the two APIs it calls (`fake_cluster`): pods follow
a scripted timeline (one step per poll) and time is a fake clock, so every case runs instantly.
"""

from __future__ import annotations

import threading

import pytest

pytest.importorskip("kubernetes")
from kubernetes import client as k8s  # noqa: E402
from kubernetes.client.exceptions import ApiException  # noqa: E402

from operators.kubernetes.api import clients_from_hook  # noqa: E402
from operators.kubernetes.indexed_job import KubernetesJobLauncher  # noqa: E402
from operators.kubernetes.run_cleanup import cleanup_run, label_selector  # noqa: E402
from operators.kubernetes.spec import run_labels  # noqa: E402
from tasks.errors import ExitCode  # noqa: E402
from tests.unit.operators.kubernetes.fake_cluster import (  # noqa: E402
    DAG_ID,
    NS,
    PENDING,
    RUN_ID,
    RUNNING,
    SUCCEEDED,
    FakeCluster,
    PodState,
    all_ranks,
    assert_all_deleted,
    assert_log_followers_ended,
    conflict,
    failed,
    job_name,
    launcher_for,
    manifests,
    unschedulable,
)

pytestmark = pytest.mark.unit

# -------------------------------------------------------------------------------------- cases
def test_success_follows_rank0_and_deletes_everything():
    ms = manifests(2)
    name = job_name(ms)
    cluster = FakeCluster(
        [{}, all_ranks(2, PENDING), all_ranks(2, RUNNING), all_ranks(2, RUNNING), all_ranks(2, SUCCEEDED)],
        logs={0: ["epoch 1 loss 2.30", "epoch 2 loss 1.87", "goal reached"], 1: ["rank 1 says hi"]},
    )
    launcher, lines = launcher_for(cluster)

    outcome = launcher.run(ms)

    assert outcome.returncode == 0, outcome
    assert outcome.message == f"job {name}: all 2 ranks succeeded"
    assert (outcome.failed_ranks, outcome.pending, outcome.timed_out) == ([], {}, False)
    streamed = [line for line in lines if line.startswith("[rank 0] ")]
    assert streamed == ["[rank 0] epoch 1 loss 2.30", "[rank 0] epoch 2 loss 1.87", "[rank 0] goal reached"]
    assert not any("rank 1 says hi" in line for line in lines)  # only rank 0 is followed
    assert lines.index("[rank 0] goal reached") < lines.index(outcome.message)  # drained before the verdict
    creates = [m for m, _ in cluster.calls if m.startswith("create_")]
    assert creates == ["create_namespaced_service", "create_namespaced_job"]
    assert cluster.called("create_namespaced_job")[0]["body"] is ms[1]
    assert {c["label_selector"] for c in cluster.called("list_namespaced_pod")} == {f"mlbench.io/job={name}"}
    assert any("all 2 ranks running" in line for line in lines)
    assert_all_deleted(cluster, name)
    assert_log_followers_ended()


def test_rank0_log_is_shown_even_if_the_job_finished_between_polls():
    ms = manifests(2)
    cluster = FakeCluster([{}, all_ranks(2, SUCCEEDED)], logs={0: ["fast run", "goal reached"]})
    launcher, lines = launcher_for(cluster)

    outcome = launcher.run(ms)

    assert outcome.returncode == 0
    assert lines.index("[rank 0] goal reached") < lines.index(outcome.message)
    assert_all_deleted(cluster, job_name(ms))


def test_waits_for_every_rank_to_exist_before_judging():
    """Pods appear one at a time (the provider's listing race): never judged on a partial listing."""
    ms = manifests(4)
    cluster = FakeCluster([{}, {0: RUNNING}, {0: RUNNING, 1: RUNNING}, {0: RUNNING, 1: RUNNING, 2: RUNNING},
                           all_ranks(4, RUNNING), all_ranks(4, RUNNING), all_ranks(4, SUCCEEDED)])
    launcher, lines = launcher_for(cluster)

    outcome = launcher.run(ms)

    assert outcome.returncode == 0, outcome
    running_at = next(i for i, line in enumerate(lines) if "all 4 ranks running" in line)
    assert "after 20s" in lines[running_at]
    assert_all_deleted(cluster, job_name(ms))


def test_startup_timeout_names_each_rank_and_why():
    ms = manifests(4)
    name = job_name(ms)
    cluster = FakeCluster([{0: RUNNING, 1: RUNNING, 2: unschedulable()}])
    launcher, lines = launcher_for(cluster, startup=600)

    outcome = launcher.run(ms)

    assert outcome.returncode == 124 and outcome.timed_out
    assert outcome.message == (
        f"job {name}: 2 of 4 ranks not running after 600s: rank 2 Pending (Unschedulable: 0/3 nodes are "
        "available: 3 Insufficient nvidia.com/gpu); rank 3 not created yet"
    )
    assert outcome.pending == {2: "Pending (Unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu)",
                               3: "not created yet"}
    progress = [line for line in lines if "2/4 ranks running, 2 pending" in line]
    assert 15 <= len(progress) <= 20  # about every 30 s over 600 s, not every poll
    assert "rank 2 Pending (Unschedulable" in progress[0]
    assert_all_deleted(cluster, name)


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        pytest.param(
            PodState("Pending", events=(
                ("Normal", "Scheduled", "Successfully assigned elsewhere", 1),
                ("Warning", "FailedScheduling",
                 "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.", 50),
                ("Normal", "TriggeredScaleUp", "pod triggered scale-up", 20),
            )),
            "rank 1 Pending (FailedScheduling: 0/3 nodes are available: 3 node(s) didn't match Pod's node "
            "affinity/selector)",
            id="reason-only-in-an-event",
        ),
        pytest.param(
            PodState("Pending", waiting=("ImagePullBackOff", 'Back-off pulling image "mlbench/train:test"')),
            'rank 1 Pending (ImagePullBackOff: Back-off pulling image "mlbench/train:test")',
            id="image-pull-backoff",
        ),
        pytest.param(
            PodState("Pending", waiting=("ErrImagePull", "rpc error: code = NotFound\n desc = not found")),
            "rank 1 Pending (ErrImagePull: rpc error: code = NotFound desc = not found)",
            id="multi-line-message-becomes-one-line",
        ),
        pytest.param(
            PodState("Pending", waiting=("ContainerCreating", None), events=(
                ("Warning", "FailedMount", 'MountVolume.SetUp failed for volume "results": not found', 30),)),
            'rank 1 Pending (FailedMount: MountVolume.SetUp failed for volume "results": not found)',
            id="generic-waiting-reason-explained-by-event",
        ),
        pytest.param(PENDING, "rank 1 Pending", id="nothing-known"),
    ],
)
def test_startup_timeout_reasons(state, expected):
    ms = manifests(2)
    cluster = FakeCluster([{0: RUNNING, 1: state}])
    launcher, _ = launcher_for(cluster, startup=60)

    outcome = launcher.run(ms)

    assert outcome.returncode == 124
    assert outcome.message.endswith(f"1 of 2 ranks not running after 60s: {expected}")
    assert "\n" not in outcome.message
    assert list(outcome.pending) == [1]
    assert_all_deleted(cluster, job_name(ms))


def test_startup_timeout_survives_forbidden_events():
    ms = manifests(2)
    cluster = FakeCluster([{0: RUNNING, 1: PENDING}])
    cluster.fail("list_namespaced_event", lambda: ApiException(status=403, reason="Forbidden"))
    launcher, _ = launcher_for(cluster, startup=60)

    outcome = launcher.run(ms)

    assert outcome.returncode == 124 and outcome.pending == {1: "Pending"}
    assert_all_deleted(cluster, job_name(ms))


def test_kueue_suspended_job_waits_for_admission():
    ms = manifests(2, pool="kueue-h100")
    assert ms[1]["spec"]["suspend"] is True
    suspended = {"job": {"suspend": True}, **all_ranks(2, RUNNING)}
    cluster = FakeCluster([suspended] * 8 + [{"job": {"suspend": False}, **all_ranks(2, RUNNING)},
                                             all_ranks(2, RUNNING), all_ranks(2, SUCCEEDED)])
    launcher, lines = launcher_for(cluster)

    outcome = launcher.run(ms)

    assert outcome.returncode == 0, outcome
    assert any("waiting for Kueue admission" in line for line in lines)
    assert_all_deleted(cluster, job_name(ms))


def test_kueue_never_admitting_times_out_with_that_reason():
    ms = manifests(2, pool="kueue-h100")
    cluster = FakeCluster([{"job": {"suspend": True}}])
    launcher, _ = launcher_for(cluster, startup=120)

    outcome = launcher.run(ms)

    assert outcome.returncode == 124
    assert "still suspended: waiting for Kueue admission" in outcome.message
    assert outcome.pending == {0: "not created yet", 1: "not created yet"}
    assert_all_deleted(cluster, job_name(ms))


def test_failed_rank_reports_exit_code_and_log_tail():
    ms = manifests(2)
    name = job_name(ms)
    rank1_log = [f"step {i}" for i in range(80)] + ["ValueError: learning rate must be positive"]
    cluster = FakeCluster([all_ranks(2, RUNNING), all_ranks(2, RUNNING), {0: RUNNING, 1: failed(2)}],
                          logs={0: ["rank 0 training"], 1: rank1_log}, hold_logs=True)
    launcher, lines = launcher_for(cluster)

    outcome = launcher.run(ms)

    assert outcome.returncode == ExitCode.RUN_FAILED
    assert outcome.failed_ranks == [1] and outcome.exit_codes == {1: 2}
    assert outcome.message == (f"job {name}: rank 1 failed (exit code 2, Error): "
                               "ValueError: learning rate must be positive")
    tails = [kw for kw in cluster.called("read_namespaced_pod_log") if not kw["follow"]]
    assert [t["tail_lines"] for t in tails] == [50]
    assert tails[0]["name"].startswith(f"{name}-1-") and tails[0]["container"] == "worker"
    assert "[rank 1] ValueError: learning rate must be positive" in lines
    assert "[rank 1] step 31" in lines and "[rank 1] step 30" not in lines  # exactly the last 50 lines
    assert_all_deleted(cluster, name)
    assert all(stream.closed.is_set() for stream in cluster.streams)
    assert_log_followers_ended()


def test_the_first_rank_to_fail_is_named_first():
    """Rank 2 is OOM-killed; rank 0 then fails on the broken collective: rank 2 is the cause."""
    ms = manifests(4)
    name = job_name(ms)
    oom = failed(137, "OOMKilled")
    consequence = PodState("Failed", exit_code=1, reason="Error", finished_s=120)
    cluster = FakeCluster([all_ranks(4, RUNNING), {0: consequence, 1: RUNNING, 2: oom, 3: RUNNING}],
                          logs={2: ["allocating", "Killed"], 0: ["NCCL error: remote process exited"]})
    launcher, _ = launcher_for(cluster)

    outcome = launcher.run(ms)

    assert outcome.failed_ranks == [0, 2] and outcome.exit_codes == {0: 1, 2: 137}
    assert outcome.message == (f"job {name}: rank 2 failed (exit code 137, OOMKilled): Killed; "
                               "rank 0 failed (exit code 1, Error)")
    assert_all_deleted(cluster, name)


@pytest.mark.parametrize("lag", [False, True], ids=["job-status-updated", "job-status-lagging"])
def test_rank_failing_during_startup_goes_straight_to_failure(lag):
    ms = manifests(4)
    cluster = FakeCluster([{0: PENDING, 1: PENDING},
                           {"job": {"lag": lag}, 0: PENDING, 1: failed(137, "OOMKilled")}])
    launcher, lines = launcher_for(cluster)

    outcome = launcher.run(ms)

    assert outcome.returncode == ExitCode.RUN_FAILED, outcome
    assert outcome.failed_ranks == [1] and not outcome.timed_out
    assert "rank 1 failed (exit code 137, OOMKilled)" in outcome.message
    assert cluster.now == 5  # detected at the first poll that saw it, not at the startup timeout
    assert_all_deleted(cluster, job_name(ms))


def test_active_deadline_exceeded_is_a_timeout():
    ms = manifests(2)
    cluster = FakeCluster([all_ranks(2, RUNNING), all_ranks(2, RUNNING),
                           {"job": {"condition": ("Failed", "DeadlineExceeded",
                                                  "Job was active longer than specified deadline")}}])
    launcher, _ = launcher_for(cluster)

    outcome = launcher.run(ms)

    assert outcome.returncode == 124 and outcome.timed_out
    assert f"hit its activeDeadlineSeconds ({ms[1]['spec']['activeDeadlineSeconds']}s)" in outcome.message
    assert_all_deleted(cluster, job_name(ms))


def test_stop_request_stops_and_deletes():
    ms = manifests(2)
    stop = threading.Event()
    cluster = FakeCluster([all_ranks(2, RUNNING)], logs={0: ["training"]}, hold_logs=True)
    cluster.hooks[4] = stop.set
    launcher, lines = launcher_for(cluster)

    outcome = launcher.run(ms, stop=stop)

    assert outcome.returncode == 143
    assert outcome.message == f"job {job_name(ms)}: stopped on request"
    assert cluster.now == 20
    assert_all_deleted(cluster, job_name(ms))
    assert cluster.streams and all(stream.closed.is_set() for stream in cluster.streams)
    assert_log_followers_ended()
    assert not any("log stream ended" in line for line in lines)  # closing it ourselves is not an error


def test_run_timeout():
    ms = manifests(2)
    cluster = FakeCluster([{}, all_ranks(2, RUNNING)], logs={0: ["still training"]}, hold_logs=True)
    launcher, _ = launcher_for(cluster, run=100)

    outcome = launcher.run(ms)

    assert outcome.returncode == 124 and outcome.timed_out
    assert outcome.message == f"job {job_name(ms)}: timed out after 100s (2/2 ranks still running)"
    assert cluster.now == 100
    assert_all_deleted(cluster, job_name(ms))
    assert_log_followers_ended()


def test_leftover_job_and_service_are_replaced():
    """A previous Airflow try died: its Job and Service still exist (409); a retry starts clean."""
    ms = manifests(2)
    name = job_name(ms)
    cluster = FakeCluster([{}, all_ranks(2, RUNNING), all_ranks(2, SUCCEEDED)])
    cluster.add_job(ms[1], static=True)
    cluster.services[name] = ms[0]
    old_uid = cluster.jobs[name]["uid"]
    launcher, lines = launcher_for(cluster)

    outcome = launcher.run(ms)

    assert outcome.returncode == 0, outcome
    sequence = [m for m, _ in cluster.calls if m.startswith(("create_", "delete_"))]
    assert sequence[:5] == ["create_namespaced_service", "delete_namespaced_job", "delete_namespaced_service",
                            "create_namespaced_service", "create_namespaced_job"]
    assert cluster.deleted[0] == ("job", name, "Background")
    assert any("previous try" in line for line in lines)
    assert old_uid not in {p.metadata.owner_references[0].uid for p in cluster.pods.values()}
    assert_all_deleted(cluster, name)


@pytest.mark.parametrize("orphaned", [False, True], ids=["with-their-job", "orphaned"])
def test_leftover_pods_are_gone_before_the_new_job_starts(orphaned):
    """Pods of a previous try (even orphaned ones) must not run beside the new ranks."""
    ms = manifests(2)
    name = job_name(ms)
    cluster = FakeCluster([{}, all_ranks(2, RUNNING), all_ranks(2, SUCCEEDED)], grace_ticks=3)
    old = cluster.add_job(ms[1], static=True)
    cluster.services[name] = ms[0]
    old_pods = {cluster.add_pod(old, rank, RUNNING).metadata.name for rank in range(2)}
    if orphaned:
        del cluster.jobs[name], cluster.services[name]
    launcher, lines = launcher_for(cluster)

    outcome = launcher.run(ms)

    assert outcome.returncode == 0, outcome
    assert cluster.pods_at_job_create == [[]]  # created once, after the old pods were gone
    if orphaned:
        assert {kw["name"] for kw in cluster.called("delete_namespaced_pod")} == old_pods
    assert cluster.now >= 3 * 5  # it waited out their grace period
    assert any("2 pod(s) of a previous try still exist" in line for line in lines)
    assert_all_deleted(cluster, name)


def test_leftovers_that_never_go_away_time_out():
    ms = manifests(2)
    cluster = FakeCluster([all_ranks(2, RUNNING)], grace_ticks=10_000)
    old = cluster.add_job(ms[1], static=True)
    cluster.add_pod(old, 0, RUNNING)
    launcher, _ = launcher_for(cluster, leftover_timeout_s=60)

    outcome = launcher.run(ms)

    assert outcome.returncode == 124
    assert "leftovers of a previous try still exist after 60s: 1 pod(s)" in outcome.message
    assert not cluster.called("create_namespaced_job")


def test_pods_of_another_job_with_the_same_label_are_ignored():
    """A terminating, failed pod of an older Job with the same name must not fail the new run."""
    ms = manifests(2)
    cluster = FakeCluster([{}, all_ranks(2, RUNNING), all_ranks(2, RUNNING), all_ranks(2, SUCCEEDED)])

    def stale_pod_appears():
        ghost = {"body": ms[1], "uid": "uid-of-an-older-job"}
        cluster.add_pod(ghost, 1, failed(143))

    cluster.hooks[1] = stale_pod_appears
    launcher, _ = launcher_for(cluster)

    outcome = launcher.run(ms)

    assert outcome.returncode == 0, outcome


def test_second_conflict_raises_and_still_cleans_up():
    ms = manifests(2)
    cluster = FakeCluster([all_ranks(2, RUNNING)])
    cluster.fail("create_namespaced_job", lambda: conflict("job", job_name(ms)))
    launcher, _ = launcher_for(cluster)

    with pytest.raises(ApiException) as raised:
        launcher.run(ms)

    assert raised.value.status == 409
    assert len(cluster.called("create_namespaced_job")) == 2
    assert job_name(ms) not in cluster.services


def test_api_error_mid_run_propagates_after_retries_and_deletes_everything():
    ms = manifests(2)
    cluster = FakeCluster([{}, all_ranks(2, RUNNING)], logs={0: ["x"]}, hold_logs=True)
    cluster.fail("list_namespaced_pod", lambda: ApiException(status=500, reason="Internal Server Error"),
                 from_tick=3)
    launcher, lines = launcher_for(cluster)

    with pytest.raises(ApiException) as raised:
        launcher.run(ms)

    assert raised.value.status == 500
    assert sum("API error while polling" in line for line in lines) == 3
    assert_all_deleted(cluster, job_name(ms))
    assert_log_followers_ended()


def test_non_transient_api_error_propagates_at_once():
    ms = manifests(2)
    cluster = FakeCluster([{}, all_ranks(2, RUNNING)])
    cluster.fail("read_namespaced_job", lambda: ApiException(status=403, reason="Forbidden"), from_tick=2)
    launcher, _ = launcher_for(cluster)

    with pytest.raises(ApiException):
        launcher.run(ms)

    assert cluster.now == 10
    assert_all_deleted(cluster, job_name(ms))


def test_a_transient_api_error_is_ridden_out():
    ms = manifests(2)
    cluster = FakeCluster([{}, all_ranks(2, RUNNING), all_ranks(2, RUNNING), all_ranks(2, SUCCEEDED)])
    cluster.fail("list_namespaced_pod", lambda: ApiException(status=503, reason="Service Unavailable"),
                 from_tick=1, times=2)
    launcher, _ = launcher_for(cluster)

    assert launcher.run(ms).returncode == 0


def test_error_while_creating_the_job_deletes_the_service():
    ms = manifests(2)
    cluster = FakeCluster([{}])
    cluster.fail("create_namespaced_job", lambda: ApiException(status=422, reason="Unprocessable Entity"))
    launcher, _ = launcher_for(cluster)

    with pytest.raises(ApiException):
        launcher.run(ms)

    assert ("service", job_name(ms), None) in cluster.deleted and not cluster.services


def test_failed_cleanup_keeps_the_outcome():
    ms = manifests(2)
    cluster = FakeCluster([all_ranks(2, SUCCEEDED)])
    cluster.fail("delete_namespaced_job", lambda: ApiException(status=503, reason="Service Unavailable"))
    launcher, lines = launcher_for(cluster)

    outcome = launcher.run(ms)

    assert outcome.returncode == 0
    assert any("cleanup failed" in line for line in lines)
    assert ("service", job_name(ms), None) in cluster.deleted  # the other object was still deleted


def test_job_deleted_by_someone_else_is_a_failure():
    ms = manifests(2)
    cluster = FakeCluster([all_ranks(2, RUNNING)])
    cluster.hooks[2] = lambda: cluster.batch.delete_namespaced_job(job_name(ms), NS, propagation_policy="Background")
    launcher, _ = launcher_for(cluster)

    outcome = launcher.run(ms)

    assert outcome.returncode == ExitCode.RUN_FAILED and "disappeared" in outcome.message


def test_delete_is_idempotent_and_propagates_to_pods():
    ms = manifests(2)
    cluster = FakeCluster([all_ranks(2, RUNNING)])
    cluster.core.create_namespaced_service(NS, ms[0])
    cluster.batch.create_namespaced_job(NS, ms[1])
    launcher, lines = launcher_for(cluster)

    launcher.delete(ms)
    launcher.delete(ms)

    assert cluster.deleted == [("job", job_name(ms), "Background"), ("service", job_name(ms), None)]
    assert_all_deleted(cluster, job_name(ms))


def test_namespace_mismatch_is_refused_before_creating_anything():
    ms = manifests(2)
    cluster = FakeCluster([{}])
    launcher = KubernetesJobLauncher(cluster.core, cluster.batch, namespace="elsewhere", startup_timeout_s=1,
                                     run_timeout_s=1, clock=cluster.clock, sleep=cluster.sleep, log=lambda _: None)
    with pytest.raises(ValueError, match="namespace"):
        launcher.run(ms)
    assert not cluster.calls


def test_cleanup_run_deletes_everything_of_the_run_by_label():
    ours = [manifests(2), manifests(4)]
    theirs = manifests(2, run_id="manual__another-run")
    cluster = FakeCluster([all_ranks(4, RUNNING)])
    for ms in [*ours, theirs]:
        cluster.core.create_namespaced_service(NS, ms[0])
        cluster.batch.create_namespaced_job(NS, ms[1])
    total_ours = 2 + 2 + (2 + 4)  # jobs, services, pods
    selector = label_selector(run_labels(DAG_ID, RUN_ID))
    lines: list[str] = []

    deleted = cleanup_run(cluster.core, cluster.batch, namespace=NS, label_selector=selector, log=lines.append)

    assert deleted == total_ours == len(lines)
    assert {("job", job_name(ms), "Background") for ms in ours} <= set(cluster.deleted)
    for _ in range(3):
        cluster.tick += 1
        cluster.settle()
    assert set(cluster.jobs) == set(cluster.services) == {job_name(theirs)}
    assert all(p.metadata.labels["mlbench.io/job"] == job_name(theirs) for p in cluster.pods.values())
    assert cleanup_run(cluster.core, cluster.batch, namespace=NS, label_selector=selector, log=lines.append) == 0
    with pytest.raises(ValueError):
        cleanup_run(cluster.core, cluster.batch, namespace=NS, label_selector=" ")


def test_label_selector():
    assert label_selector({"app.kubernetes.io/name": "mlbench", "mlbench.io/dag-run": "r1"}) == \
        "app.kubernetes.io/name=mlbench,mlbench.io/dag-run=r1"
    with pytest.raises(ValueError):
        label_selector({})


def test_clients_from_hook_use_the_airflow_connection(monkeypatch):
    hooks = pytest.importorskip("airflow.providers.cncf.kubernetes.hooks.kubernetes")
    made = []

    def get_conn(self):
        made.append(self.conn_id)
        return k8s.ApiClient(k8s.Configuration())

    monkeypatch.setattr(hooks.KubernetesHook, "get_conn", get_conn)

    core, batch = clients_from_hook("my_cluster")

    assert isinstance(core, k8s.CoreV1Api) and isinstance(batch, k8s.BatchV1Api)
    assert core.api_client is batch.api_client
    assert made == ["my_cluster"]


# ------------------------------------------------------------------- conformance with the real client
def test_every_call_the_launcher_makes_is_accepted_by_the_real_client(monkeypatch):
    """Replays the calls of several scenarios through the real CoreV1Api/BatchV1Api (which reject
    unknown methods and keyword arguments), with the HTTP layer stubbed out: the fake cannot drift."""
    calls = []
    scenarios = [
        ([{}, all_ranks(2, RUNNING), all_ranks(2, SUCCEEDED)], {}),
        ([all_ranks(2, RUNNING), {0: RUNNING, 1: failed(1)}], {}),
        ([{0: RUNNING, 1: PodState("Pending", events=(("Warning", "FailedScheduling", "no", 1),))}], {"startup": 30}),
    ]
    for timeline, options in scenarios:
        cluster = FakeCluster(timeline, logs={0: ["a"], 1: ["b"]})
        ms = manifests(2)
        cluster.add_job(ms[1], static=True)
        cluster.services[job_name(ms)] = ms[0]
        launcher_for(cluster, **options)[0].run(ms)
        cleanup_run(cluster.core, cluster.batch, namespace=NS, label_selector="mlbench.io/job=x", log=lambda _: None)
        calls += cluster.calls
    api = k8s.ApiClient(k8s.Configuration())
    sent = []
    monkeypatch.setattr(api, "call_api", lambda path, method, *a, **kw: sent.append((method, path)))
    core, batch = k8s.CoreV1Api(api), k8s.BatchV1Api(api)

    for method, kwargs in calls:
        getattr(core if hasattr(core, method) else batch, method)(**kwargs)

    assert len(sent) == len(calls)
    assert {m for m, _ in calls} >= {
        "create_namespaced_service", "create_namespaced_job", "list_namespaced_pod",
        "read_namespaced_pod_log", "list_namespaced_event", "delete_namespaced_job", "delete_namespaced_service",
        "read_namespaced_job", "read_namespaced_service", "list_namespaced_job", "list_namespaced_service",
    }


def test_rank0_log_streams_over_real_http_and_stops_on_cleanup():
    """The real client against a local HTTP server: lines arrive while the pod runs (chunked), lines
    split across chunks are joined, and cleanup ends a stream that would otherwise never finish."""
    import http.server
    import socketserver

    from operators.kubernetes.job_logs import LogFollower

    release = threading.Event()
    paths = []

    class PodLog(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            paths.append(self.path)
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"epoch 1\nepo", b"ch 2\n"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.flush()
            release.wait(5)  # a running pod: the stream stays open

        def log_message(self, *args):
            pass

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), PodLog)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        configuration = k8s.Configuration()
        configuration.host = f"http://127.0.0.1:{server.server_address[1]}"
        core = k8s.CoreV1Api(k8s.ApiClient(configuration))
        got: list[str] = []
        both = threading.Event()

        def emit(line):
            got.append(line)
            if len(got) == 2:
                both.set()

        follower = LogFollower(core, NS, "pod-0", "worker", emit, prefix="[rank 0] ")
        follower.start()
        assert both.wait(5), got  # delivered while the stream is still open
        follower.finish(0)

        assert not follower.thread.is_alive()
        assert got == ["[rank 0] epoch 1", "[rank 0] epoch 2"]
        assert paths[0].startswith(f"/api/v1/namespaces/{NS}/pods/pod-0/log?")
        assert "follow=True" in paths[0] and "container=worker" in paths[0]
    finally:
        release.set()
        server.shutdown()
        server.server_close()
