"""Table tests of the Airflow-to-PodTask mapping (podtask_airflow.mapping): names, deadline, spec, outcomes."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from podtask_airflow.mapping import (
    PodTaskArgs,
    PodTaskArgumentError,
    TaskKey,
    Verdict,
    build_podtask,
    deadline,
    duration,
    outcome,
    podtask_name,
    report,
    running_pod,
    safe_label,
    same_try,
    xcom_value,
)

KEY = TaskKey("etl", "load", "manual__2026-12-04T15:10:44.123456+00:00", -1, 1)
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def spec(**kwargs):
    args = PodTaskArgs(**{"image": "busybox", **kwargs})
    return build_podtask(args, KEY, None)["spec"]


def container(**kwargs):
    return spec(**kwargs)["template"]["spec"]["containers"][0]


# --- names -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        KEY,
        TaskKey("etl", "load", "scheduled__2026-12-04T00:00:00+00:00", -1, 1),
        TaskKey("A_DAG.with.Dots", "Group.Task_ID", "r", 3, 2),
        TaskKey("d" * 250, "t" * 250, "r" * 250, 99999, 12),
        TaskKey("___", "!!!", "run", -1, 1),
    ],
)
def test_names_are_dns_labels_within_63_characters(key):
    name = podtask_name(key)
    assert len(name) <= 63
    assert NAME_RE.match(name), name
    assert name.endswith(f"-t{key.try_number}")


@pytest.mark.parametrize(
    "other",
    [
        TaskKey("etl", "load", KEY.run_id, -1, 2),  # next try
        TaskKey("etl", "load", KEY.run_id, 0, 1),  # mapped
        TaskKey("etl", "load", "manual__2026-12-04T15:10:44.123457+00:00", -1, 1),  # another run
        TaskKey("etl", "load2", KEY.run_id, -1, 1),
        TaskKey("etl-load", "", KEY.run_id, -1, 1),  # same readable prefix
    ],
)
def test_each_try_has_its_own_name_and_the_same_try_the_same_name(other):
    assert podtask_name(other) != podtask_name(KEY)
    assert podtask_name(KEY) == podtask_name(TaskKey(*KEY.__dict__.values()))


def test_name_keeps_dag_and_task_readable():
    assert podtask_name(KEY).startswith("etl-load-")


@pytest.mark.parametrize(
    ("value", "kept"),
    [("etl", True), ("my_dag.v2", True), ("manual__2026-12-04T15:10:44+00:00", False), ("x" * 64, False)],
)
def test_label_values(value, kept):
    label = safe_label(value)
    assert (label == value) == kept
    assert len(label) <= 63
    assert re.fullmatch(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?", label)


# --- deadline --------------------------------------------------------------------------------------------------

T0 = datetime(2026, 12, 4, 15, 10, 44, 900000, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("start", "timeout", "expected"),
    [
        (T0, None, None),
        (T0, timedelta(seconds=20), "2026-12-04T15:11:04Z"),
        (T0, timedelta(hours=1, minutes=30), "2026-12-04T16:40:44Z"),
        (T0.astimezone(timezone(timedelta(hours=2))), timedelta(minutes=1), "2026-12-04T15:11:44Z"),
        (datetime(2026, 12, 31, 23, 59, 30, tzinfo=timezone.utc), timedelta(minutes=1), "2027-01-01T00:00:30Z"),
    ],
)
def test_deadline_is_absolute_utc_from_the_start(start, timeout, expected):
    assert deadline(start, timeout) == expected


def test_deadline_never_moves_with_the_time_it_is_computed():
    # the same facts give the same deadline, however late it is computed (a re-run of the try)
    assert deadline(T0, timedelta(minutes=5)) == deadline(T0, timedelta(minutes=5))


@pytest.mark.parametrize(
    ("start", "timeout"),
    [(T0, timedelta(0)), (T0, timedelta(seconds=-1)), (datetime(2026, 1, 1), timedelta(seconds=1))],
)
def test_deadline_refuses_nonsense(start, timeout):
    with pytest.raises(PodTaskArgumentError):
        deadline(start, timeout)


@pytest.mark.parametrize(("seconds", "text"), [(120, "120s"), (1, "1s"), (1.5, "1500ms"), (600.0, "600s")])
def test_durations(seconds, text):
    assert duration(seconds) == text


# --- the PodTask -----------------------------------------------------------------------------------------------


def test_manifest_shape():
    task = build_podtask(PodTaskArgs(image="busybox", namespace="jobs"), KEY, "2026-12-04T15:11:04Z")
    assert task["apiVersion"] == "podtask.dev/v1alpha1"
    assert task["kind"] == "PodTask"
    assert task["metadata"]["name"] == podtask_name(KEY)
    assert task["metadata"]["namespace"] == "jobs"
    assert task["spec"]["deadline"] == "2026-12-04T15:11:04Z"
    assert task["spec"]["startupTimeout"] == "120s"
    assert task["spec"]["cleanup"] == "Delete"
    assert task["spec"]["ttlAfterFinished"] == "24h"
    assert "executionTimeout" not in task["spec"]
    pod = task["spec"]["template"]
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["containers"] == [
        {"name": "base", "image": "busybox", "terminationMessagePolicy": "FallbackToLogsOnError"}
    ]
    assert same_try(task, KEY)
    assert not same_try(task, TaskKey("etl", "load", KEY.run_id, -1, 2))


def test_labels_as_kubernetes_pod_operator_sets_them():
    labels = build_podtask(PodTaskArgs(image="x", labels={"team": "data"}), KEY, None)["spec"]["template"]["metadata"][
        "labels"
    ]
    assert labels["team"] == "data"
    assert labels["dag_id"] == "etl"
    assert labels["task_id"] == "load"
    assert labels["try_number"] == "1"
    assert "map_index" not in labels
    assert len(labels["run_id"]) <= 63


# (argument, value, where in the spec, expected)
CONTAINER_CASES = [
    ("cmds", ["sh", "-c"], "command", ["sh", "-c"]),
    ("arguments", ["echo hi"], "args", ["echo hi"]),
    ("env_vars", {"A": "1", "B": 2}, "env", [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]),
    ("env_vars", [{"name": "A", "value": "1"}], "env", [{"name": "A", "value": "1"}]),
    ("env_from", [{"secretRef": {"name": "s"}}], "envFrom", [{"secretRef": {"name": "s"}}]),
    ("configmaps", ["cm"], "envFrom", [{"configMapRef": {"name": "cm"}}]),
    ("container_resources", {"limits": {"memory": "1Gi"}}, "resources", {"limits": {"memory": "1Gi"}}),
    ("ports", [{"containerPort": 80}], "ports", [{"containerPort": 80}]),
    ("volume_mounts", [{"name": "v", "mountPath": "/v"}], "volumeMounts", [{"name": "v", "mountPath": "/v"}]),
    ("image_pull_policy", "Always", "imagePullPolicy", "Always"),
    ("container_security_context", {"runAsNonRoot": True}, "securityContext", {"runAsNonRoot": True}),
    ("do_xcom_push", True, "terminationMessagePath", "/airflow/xcom/return.json"),
    ("do_xcom_push", False, "terminationMessagePath", None),
    ("termination_message_policy", "File", "terminationMessagePolicy", "File"),
]


@pytest.mark.parametrize(("arg", "value", "field", "expected"), CONTAINER_CASES)
def test_container_arguments(arg, value, field, expected):
    assert container(**{arg: value}).get(field) == expected


POD_CASES = [
    ("node_selector", {"disk": "ssd"}, "nodeSelector", {"disk": "ssd"}),
    ("tolerations", [{"key": "k", "operator": "Exists"}], "tolerations", [{"key": "k", "operator": "Exists"}]),
    ("affinity", {"nodeAffinity": {}}, "affinity", {"nodeAffinity": {}}),
    ("volumes", [{"name": "v", "emptyDir": {}}], "volumes", [{"name": "v", "emptyDir": {}}]),
    ("image_pull_secrets", [{"name": "reg"}], "imagePullSecrets", [{"name": "reg"}]),
    ("image_pull_secrets", "a, b", "imagePullSecrets", [{"name": "a"}, {"name": "b"}]),
    ("service_account_name", "runner", "serviceAccountName", "runner"),
    ("automount_service_account_token", False, "automountServiceAccountToken", False),
    ("init_containers", [{"name": "i", "image": "x"}], "initContainers", [{"name": "i", "image": "x"}]),
    ("security_context", {"runAsUser": 1000}, "securityContext", {"runAsUser": 1000}),
    ("hostnetwork", True, "hostNetwork", True),
    ("hostnetwork", False, "hostNetwork", None),
    ("dnspolicy", "ClusterFirst", "dnsPolicy", "ClusterFirst"),
    ("schedulername", "custom", "schedulerName", "custom"),
    ("priority_class_name", "high", "priorityClassName", "high"),
    ("runtime_class_name", "gvisor", "runtimeClassName", "gvisor"),
    ("termination_grace_period", 5, "terminationGracePeriodSeconds", 5),
    ("hostname", "h", "hostname", "h"),
    ("subdomain", "s", "subdomain", "s"),
]


@pytest.mark.parametrize(("arg", "value", "field", "expected"), POD_CASES)
def test_pod_arguments(arg, value, field, expected):
    assert spec(**{arg: value})["template"]["spec"].get(field) == expected


def test_annotations_go_on_the_pod_where_the_kwok_scenarios_and_admission_read_them():
    meta = spec(annotations={"kwok.podtask.dev/scenario": "fail"})["template"]["metadata"]
    assert meta["annotations"] == {"kwok.podtask.dev/scenario": "fail"}


@pytest.mark.parametrize(
    ("kwargs", "field", "expected"),
    [
        ({"startup_timeout_seconds": 300}, "startupTimeout", "300s"),
        ({"startup_timeout_seconds": None}, "startupTimeout", None),
        ({"on_finish_action": "delete_pod"}, "cleanup", "Delete"),
        ({"on_finish_action": "delete_succeeded_pod"}, "cleanup", "DeleteSucceeded"),
        ({"on_finish_action": "keep_pod"}, "cleanup", "Keep"),
        ({"on_finish_action": "keep_pod", "cleanup": "Delete"}, "cleanup", "Delete"),
        ({"retry": {"limit": 0}}, "retry", {"limit": 0}),
        ({"ttl_after_finished": None}, "ttlAfterFinished", None),
        ({"ttl_after_finished": "1h"}, "ttlAfterFinished", "1h"),
        ({}, "podFailurePolicy", None),
        (
            {"skip_on_exit_code": [99, 42, 99]},
            "podFailurePolicy",
            {
                "rules": [
                    {"action": "Fail", "onExitCodes": {"containerName": "base", "operator": "In", "values": [42, 99]}}
                ]
            },
        ),
        (
            {"pod_failure_policy": [{"action": "Retry", "onExitCodes": {"operator": "In", "values": [75]}}]},
            "podFailurePolicy",
            {"rules": [{"action": "Retry", "onExitCodes": {"operator": "In", "values": [75]}}]},
        ),
        (
            {
                "skip_on_exit_code": [3],
                "pod_failure_policy": {
                    "rules": [{"action": "Succeed", "onExitCodes": {"operator": "In", "values": [3]}}]
                },
            },
            "podFailurePolicy",
            {
                "rules": [
                    {"action": "Fail", "onExitCodes": {"containerName": "base", "operator": "In", "values": [3]}},
                    {"action": "Succeed", "onExitCodes": {"operator": "In", "values": [3]}},
                ]
            },
        ),
    ],
)
def test_podtask_fields(kwargs, field, expected):
    assert spec(**kwargs).get(field) == expected


@pytest.mark.parametrize(
    "kwargs",
    [
        {"image": None},
        {"on_finish_action": "delete_everything"},
        {"cleanup": "delete"},
        {"skip_on_exit_code": [0]},
        {"skip_on_exit_code": [256]},
        {"startup_timeout_seconds": -5},
    ],
)
def test_bad_arguments_are_refused_with_a_reason(kwargs):
    with pytest.raises(PodTaskArgumentError):
        spec(**kwargs)


BASE_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "ignored", "labels": {"from": "template"}, "annotations": {"a": "1"}},
    "spec": {
        "restartPolicy": "OnFailure",
        "activeDeadlineSeconds": 60,
        "containers": [
            {"name": "sidecar", "image": "proxy"},
            {"name": "base", "image": "app:1", "env": [{"name": "T", "value": "1"}]},
        ],
        "volumes": [{"name": "t", "emptyDir": {}}],
        "nodeSelector": {"pool": "a"},
    },
}


def test_a_pod_template_is_the_base_and_the_arguments_apply_to_its_base_container():
    s = spec(
        base_pod=BASE_POD,
        image="app:2",
        env_vars={"A": "1"},
        volumes=[{"name": "v", "emptyDir": {}}],
        node_selector={"zone": "z"},
        annotations={"b": "2"},
    )
    pod = s["template"]
    assert pod["metadata"]["labels"]["from"] == "template"
    assert pod["metadata"]["annotations"] == {"a": "1", "b": "2"}
    assert "name" not in pod["metadata"]
    assert pod["spec"]["restartPolicy"] == "Never"
    assert "activeDeadlineSeconds" not in pod["spec"]
    sidecar, base = pod["spec"]["containers"]
    assert sidecar == {"name": "sidecar", "image": "proxy"}
    assert base["image"] == "app:2"
    assert base["env"] == [{"name": "T", "value": "1"}, {"name": "A", "value": "1"}]
    assert [v["name"] for v in pod["spec"]["volumes"]] == ["t", "v"]
    assert pod["spec"]["nodeSelector"] == {"pool": "a", "zone": "z"}
    assert BASE_POD["spec"]["restartPolicy"] == "OnFailure"  # the caller's template is not modified


def test_without_a_base_container_the_first_is_the_main_one():
    s = spec(base_pod={"spec": {"containers": [{"name": "main", "image": "x"}]}}, image=None, cmds=["run"])
    assert s["template"]["spec"]["containers"] == [
        {"name": "main", "image": "x", "command": ["run"], "terminationMessagePolicy": "FallbackToLogsOnError"}
    ]


# --- outcomes --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "skip", "verdict", "message"),
    [
        (None, (), Verdict.RUNNING, "Pending"),
        ({"phase": "Pending"}, (), Verdict.RUNNING, "Pending"),
        ({"phase": "Starting", "reason": "ImagePullRateLimited", "message": "429"}, (), Verdict.RUNNING, None),
        ({"phase": "Running", "reason": "Running"}, (), Verdict.RUNNING, None),
        ({"phase": "Succeeded", "reason": "Completed", "exitCode": 0}, (), Verdict.SUCCEEDED, None),
        (
            {"phase": "Failed", "reason": "DeadlineExceeded", "message": "deadline 15:11:04 passed"},
            (),
            Verdict.TIMED_OUT,
            "DeadlineExceeded: deadline 15:11:04 passed",
        ),
        ({"phase": "Failed", "reason": "PodFailed", "exitCode": 42}, (42,), Verdict.SKIPPED, None),
        (
            {"phase": "Failed", "reason": "PodFailed", "exitCode": 3, "message": "exited with 3: boom"},
            (42,),
            Verdict.FAILED,
            "PodFailed: exited with 3: boom",
        ),
        (
            {"phase": "Failed", "reason": "ImagePullTimeout", "message": "3 attempts"},
            (),
            Verdict.FAILED,
            "ImagePullTimeout: 3 attempts",
        ),
        ({"phase": "Failed", "reason": "Unschedulable", "message": "0/2 nodes"}, (1,), Verdict.FAILED, None),
        ({"phase": "Failed", "reason": "DeadlineExceeded", "exitCode": 42}, (42,), Verdict.TIMED_OUT, None),
        ({"phase": "Failed"}, (), Verdict.FAILED, "PodTask failed"),
    ],
)
def test_outcomes(status, skip, verdict, message):
    result = outcome(status, skip)
    assert result.verdict is verdict
    assert result.finished == (verdict is not Verdict.RUNNING)
    if message is not None:
        assert result.message == message


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (None, None),
        ("", None),
        ('{"rows": 3}', {"rows": 3}),
        ("[1, 2]", [1, 2]),
        ("42", 42),
        ("plain words", "plain words"),
        ("{broken", "{broken"),
    ],
)
def test_xcom_value(text, value):
    assert xcom_value(text) == value


@pytest.mark.parametrize(
    ("status", "pod"),
    [
        ({"phase": "Running", "podName": "p-1"}, "p-1"),
        ({"phase": "Starting", "podName": "p-1"}, None),
        ({"phase": "Running"}, None),
        (None, None),
    ],
)
def test_running_pod(status, pod):
    assert running_pod(status) == pod


def test_report_names_each_attempt_and_keeps_the_last_output():
    lines = report(
        {
            "attempts": [
                {"attempt": 1, "podName": "p-1", "outcome": "Failed", "reason": "ImagePullTimeout", "message": "429"},
                {"attempt": 2, "podName": "p-2", "outcome": "Failed", "reason": "PodFailed", "exitCode": 3},
            ],
            "terminationMessage": "line one\nline two",
        }
    )
    assert lines == [
        "attempt 1 (pod p-1): Failed ImagePullTimeout: 429",
        "attempt 2 (pod p-2): Failed PodFailed, exit code 3",
        "termination message of the last attempt:",
        "  line one",
        "  line two",
    ]
