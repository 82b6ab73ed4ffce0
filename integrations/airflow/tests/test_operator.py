"""The operator's shell: Airflow arguments in Kubernetes model form, outcomes as Airflow exceptions, the trigger's
serialised form. No cluster: the end-to-end DAGs (hack/airflow-e2e.sh) run them against one."""

from __future__ import annotations

import json

import pytest
from airflow.providers.cncf.kubernetes.secret import Secret
from airflow.sdk.exceptions import AirflowException, AirflowSkipException, AirflowTaskTimeout
from kubernetes.client import models as k8s

from podtask_airflow.get_provider_info import get_provider_info
from podtask_airflow.mapping import UNSUPPORTED
from podtask_airflow.operators import PodTaskOperator
from podtask_airflow.triggers import PodTaskTrigger


def op(**kwargs) -> PodTaskOperator:
    return PodTaskOperator(task_id="t", image="busybox", namespace="ns", **kwargs)


def test_kubernetes_models_become_api_json():
    args = op(
        env_vars=[k8s.V1EnvVar(name="A", value="1")],
        container_resources=k8s.V1ResourceRequirements(limits={"memory": "1Gi"}),
        tolerations=[k8s.V1Toleration(key="k", operator="Exists")],
        volumes=[k8s.V1Volume(name="v", empty_dir=k8s.V1EmptyDirVolumeSource())],
        volume_mounts=[k8s.V1VolumeMount(name="v", mount_path="/v")],
        image_pull_secrets=[k8s.V1LocalObjectReference(name="reg")],
        affinity=k8s.V1Affinity(node_affinity=k8s.V1NodeAffinity()),
        secrets=[Secret("env", "TOKEN", "creds", "token"), Secret("volume", "/etc/creds", "creds")],
    ).build_args()
    assert args.env_vars == [{"name": "A", "value": "1"}]
    assert args.container_resources == {"limits": {"memory": "1Gi"}}
    assert args.tolerations == [{"key": "k", "operator": "Exists"}]
    assert args.volumes[0] == {"name": "v", "emptyDir": {}}
    assert args.volume_mounts[0] == {"name": "v", "mountPath": "/v"}
    assert args.image_pull_secrets == [{"name": "reg"}]
    assert args.affinity == {"nodeAffinity": {}}
    assert args.extra_env == [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}]
    assert [v["name"] for v in args.volumes][1].startswith("secretvol")
    assert args.volume_mounts[1]["mountPath"] == "/etc/creds"


def test_full_pod_spec_is_the_base_pod():
    pod = k8s.V1Pod(spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="base", image="app")]))
    assert op(full_pod_spec=pod).build_args().base_pod == {"spec": {"containers": [{"name": "base", "image": "app"}]}}


def test_pod_template_file_is_read(tmp_path):
    f = tmp_path / "pod.yaml"
    f.write_text("spec:\n  containers:\n  - name: base\n    image: app\n")
    assert op(pod_template_file=str(f)).build_args().base_pod == {
        "spec": {"containers": [{"name": "base", "image": "app"}]}
    }


@pytest.mark.parametrize("arg", sorted(UNSUPPORTED))
def test_kpo_arguments_without_a_podtask_meaning_are_refused_with_the_reason(arg):
    with pytest.raises(TypeError, match=arg):
        op(**{arg: 1})


def test_xcom_is_pushed_only_when_asked_as_in_kubernetes_pod_operator():
    assert op().do_xcom_push is False
    assert op(do_xcom_push=True).do_xcom_push is True


def test_skip_on_exit_code_accepts_an_int_or_a_collection():
    assert op(skip_on_exit_code=42).skip_on_exit_code == (42,)
    assert op(skip_on_exit_code=[1, 2]).skip_on_exit_code == (1, 2)
    assert op().skip_on_exit_code == ()


def finish(operator: PodTaskOperator, status: dict):
    operator.podtask_name = "pt"
    return operator._finish({}, status)


def test_success_returns_the_termination_message_as_xcom():
    status = {"phase": "Succeeded", "reason": "Completed", "terminationMessage": '{"rows": 3}'}
    assert finish(op(do_xcom_push=True), status) == {"rows": 3}
    assert finish(op(), status) is None


def test_skip_exit_code_skips():
    with pytest.raises(AirflowSkipException, match="exit code 42"):
        finish(op(skip_on_exit_code=42), {"phase": "Failed", "reason": "PodFailed", "exitCode": 42})


def test_deadline_exceeded_is_airflows_timeout():
    with pytest.raises(AirflowTaskTimeout, match="DeadlineExceeded"):
        finish(op(), {"phase": "Failed", "reason": "DeadlineExceeded", "message": "passed"})


@pytest.mark.parametrize("reason", ["PodFailed", "ImagePullTimeout", "Unschedulable", "InvalidSpec", "Forbidden"])
def test_other_failures_carry_podtasks_reason_and_message(reason):
    with pytest.raises(AirflowException, match=f"{reason}: what happened") as e:
        finish(op(), {"phase": "Failed", "reason": reason, "message": "what happened", "exitCode": 3})
    assert not isinstance(e.value, AirflowSkipException)


def test_resumed_events():
    o = op()
    with pytest.raises(AirflowException, match="deleted"):
        o.execute_complete({}, {"event": "gone", "name": "pt"})
    with pytest.raises(AirflowException, match="boom"):
        o.execute_complete({}, {"event": "error", "name": "pt", "message": "boom"})
    assert o.execute_complete({}, {"event": "finished", "name": "pt", "status": {"phase": "Succeeded"}}) is None


def test_resumed_without_an_event_runs_the_try_again(monkeypatch):
    o = op()
    monkeypatch.setattr(o, "execute", lambda context: "adopted")
    assert o.execute_complete({}) == "adopted"


def test_trigger_serialises_only_what_it_needs_and_round_trips():
    trigger = PodTaskTrigger("ns", "pt", {"kubernetes_conn_id": "k", "config_file": None}, 1.0, False)
    path, kwargs = trigger.serialize()
    assert path == "podtask_airflow.triggers.PodTaskTrigger"
    assert set(kwargs) == {"namespace", "name", "connection", "poll_interval", "get_logs", "container"}
    assert PodTaskTrigger(**kwargs).serialize() == (path, kwargs)


def test_provider_info_names_the_modules():
    info = get_provider_info()
    assert info["package-name"] == "airflow-provider-podtask"
    assert info["triggers"][0]["python-modules"] == ["podtask_airflow.triggers"]


def test_a_refused_create_names_the_api_servers_message_not_the_body():
    from kubernetes.client import ApiException

    from podtask_airflow.client import api_message

    e = ApiException(status=422, reason="Unprocessable Entity")
    e.body = json.dumps({"kind": "Status", "message": 'PodTask "x" is invalid: spec.deadline: bad', "details": {}})
    assert api_message(e) == 'HTTP 422 Unprocessable Entity: PodTask "x" is invalid: spec.deadline: bad'
    e.body = "not json"
    assert api_message(e) == "HTTP 422 Unprocessable Entity"
