"""From Airflow's view of a task to a PodTask, and from a PodTask's status back to an Airflow outcome.

Pure functions over plain data (dicts in the Kubernetes API's JSON form, datetimes passed in): no client, no
clock, no Airflow import. The operator converts Kubernetes model objects to dicts before calling in here.
"""

from __future__ import annotations

import copy
import enum
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

GROUP = "podtask.dev"
VERSION = "v1alpha1"
PLURAL = "podtasks"
KIND = "PodTask"

#: The main container's name, as KubernetesPodOperator names it; a pod template's container of this name (else
#: its first container) is the one the operator's arguments apply to.
BASE_CONTAINER = "base"
#: Where a KubernetesPodOperator container writes its XCom; with do_xcom_push it becomes the container's
#: terminationMessagePath, so the kubelet hands the file's content to podtask without a sidecar.
XCOM_PATH = "/airflow/xcom/return.json"

#: Annotations on the PodTask naming the task instance try it runs (checked before adopting an existing one).
ANNOTATION_PREFIX = "airflow.podtask.dev/"
MAX_NAME = 63

ON_FINISH_TO_CLEANUP = {"delete_pod": "Delete", "delete_succeeded_pod": "DeleteSucceeded", "keep_pod": "Keep"}
CLEANUP_VALUES = ("Delete", "DeleteSucceeded", "Keep")

#: KubernetesPodOperator arguments PodTaskOperator refuses, with the reason (also the docs' migration table).
UNSUPPORTED: dict[str, str] = {
    "name": "PodTask names are derived from (dag, task, run, map index, try) so a re-run of a try adopts its PodTask",
    "random_name_suffix": "names are deterministic per try",
    "reattach_on_restart": "always on: a re-run of the same try adopts the existing PodTask",
    "durable": "always on: the PodTask and its deadline live in the API server",
    "active_deadline_seconds": "podtask sets activeDeadlineSeconds from the deadline; use execution_timeout",
    "schedule_timeout_seconds": "startup_timeout_seconds covers scheduling, pulls and container creation",
    "startup_check_interval_seconds": "podtask watches the pod; nothing to poll",
    "on_kill_action": "on_kill always deletes the PodTask, and so its pod",
    "is_delete_operator_pod": "removed from KubernetesPodOperator too; use on_finish_action or cleanup",
    "callbacks": "KubernetesPodOperator's callbacks receive its pod manager; podtask owns the pod",
    "progress_callback": "container output goes to the task log",
    "log_pod_spec_on_failure": "the PodTask (kubectl get pt NAME -o yaml) holds the spec",
    "log_events_on_failure": "podtask's reason and message say why an attempt failed",
    "log_events_on_startup": "podtask's status reason says what the pod waits for",
    "trigger_kwargs": "PodTaskTrigger takes no extra arguments",
    "xcom_sidecar_container_security_context": "no XCom sidecar: the XCom travels as the termination message",
    "logging_interval": "logs are followed while the pod runs",
    "log_formatter": "log lines are printed as the container wrote them",
    "container_name_log_prefix_enabled": "log lines carry the container name",
}


class PodTaskArgumentError(ValueError):
    """An operator argument that cannot become a PodTask; the message says which and why."""


@dataclass(frozen=True)
class TaskKey:
    """Which task instance try a PodTask runs."""

    dag_id: str
    task_id: str
    run_id: str
    map_index: int
    try_number: int

    def annotations(self) -> dict[str, str]:
        return {
            ANNOTATION_PREFIX + "dag-id": self.dag_id,
            ANNOTATION_PREFIX + "task-id": self.task_id,
            ANNOTATION_PREFIX + "run-id": self.run_id,
            ANNOTATION_PREFIX + "map-index": str(self.map_index),
            ANNOTATION_PREFIX + "try-number": str(self.try_number),
        }

    def labels(self) -> dict[str, str]:
        """KubernetesPodOperator's label keys, so selectors written for its pods keep working."""
        labels = {
            "dag_id": safe_label(self.dag_id),
            "task_id": safe_label(self.task_id),
            "run_id": safe_label(self.run_id),
            "try_number": str(self.try_number),
            ANNOTATION_PREFIX + "managed": "true",
        }
        if self.map_index >= 0:
            labels["map_index"] = str(self.map_index)
        return labels


@dataclass
class PodTaskArgs:
    """The operator's arguments, Kubernetes objects already in their API JSON form (camelCase dicts)."""

    image: str | None = None
    cmds: list[str] | None = None
    arguments: list[str] | None = None
    env_vars: list[dict[str, Any]] | dict[str, str] | None = None
    env_from: list[dict[str, Any]] | None = None
    container_resources: dict[str, Any] | None = None
    ports: list[dict[str, Any]] | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    node_selector: dict[str, str] | None = None
    tolerations: list[dict[str, Any]] | None = None
    affinity: dict[str, Any] | None = None
    volumes: list[dict[str, Any]] | None = None
    volume_mounts: list[dict[str, Any]] | None = None
    image_pull_secrets: list[dict[str, Any]] | str | None = None
    image_pull_policy: str | None = None
    service_account_name: str | None = None
    automount_service_account_token: bool | None = None
    init_containers: list[dict[str, Any]] | None = None
    security_context: dict[str, Any] | None = None
    container_security_context: dict[str, Any] | None = None
    host_aliases: list[dict[str, Any]] | None = None
    hostnetwork: bool = False
    dnspolicy: str | None = None
    dns_config: dict[str, Any] | None = None
    hostname: str | None = None
    subdomain: str | None = None
    schedulername: str | None = None
    priority_class_name: str | None = None
    runtime_class_name: str | None = None
    termination_grace_period: int | None = None
    configmaps: list[str] | None = None
    namespace: str = "default"
    startup_timeout_seconds: int | None = 120
    skip_on_exit_code: Sequence[int] = ()
    do_xcom_push: bool = False
    on_finish_action: str = "delete_pod"
    termination_message_policy: str = "FallbackToLogsOnError"
    #: A full pod (or pod template) to start from: full_pod_spec, pod_template_file or pod_template_dict.
    base_pod: dict[str, Any] | None = None
    # podtask's own
    retry: dict[str, Any] | None = None
    pod_failure_policy: dict[str, Any] | list[dict[str, Any]] | None = None
    cleanup: str | None = None
    ttl_after_finished: str | None = "24h"
    extra_env: list[dict[str, Any]] = field(default_factory=list)


# --- names -----------------------------------------------------------------------------------------------------


def podtask_name(key: TaskKey) -> str:
    """A DNS-1123 label (at most 63 characters) unique to the task instance try, the same on every call.

    Readable prefix (dag and task, sanitised) plus a hash of all five parts: run ids hold characters names can't,
    so the hash is what keeps two runs apart.
    """
    digest = _hash(f"{key.dag_id}\0{key.task_id}\0{key.run_id}\0{key.map_index}\0{key.try_number}", 10)
    tail = f"-{digest}-t{key.try_number}"
    prefix = _sanitise(f"{key.dag_id}-{key.task_id}")[: MAX_NAME - len(tail)].rstrip("-") or "task"
    return prefix + tail


def safe_label(value: str) -> str:
    """A label value: kept when already valid, else sanitised and shortened with a hash of the original."""
    if len(value) <= MAX_NAME and re.fullmatch(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?", value):
        return value
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", value).strip("-_.")
    return (cleaned[:52].rstrip("-_.") + "-" + _hash(value, 10)).lstrip("-")


def _sanitise(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _hash(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


# --- deadline --------------------------------------------------------------------------------------------------


def deadline(start: datetime, execution_timeout: timedelta | None) -> str | None:
    """The absolute deadline (RFC 3339, UTC, whole seconds rounded down) of a try that started at ``start``."""
    if execution_timeout is None:
        return None
    if execution_timeout <= timedelta(0):
        raise PodTaskArgumentError(f"execution_timeout must be positive, got {execution_timeout}")
    if start.tzinfo is None:
        raise PodTaskArgumentError("the task instance's start date has no time zone")
    end = (start + execution_timeout).astimezone(timezone.utc).replace(microsecond=0)
    return end.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def duration(seconds: int | float) -> str:
    """A podtask duration string (whole seconds, or milliseconds when fractional)."""
    if seconds <= 0:
        raise PodTaskArgumentError(f"a timeout must be positive, got {seconds}")
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


# --- the PodTask -----------------------------------------------------------------------------------------------


def build_podtask(args: PodTaskArgs, key: TaskKey, deadline_at: str | None) -> dict[str, Any]:
    """The PodTask manifest for one task instance try."""
    pod = _pod_template(args, key)
    spec: dict[str, Any] = {"template": pod}
    if deadline_at:
        spec["deadline"] = deadline_at
    if args.startup_timeout_seconds:
        spec["startupTimeout"] = duration(args.startup_timeout_seconds)
    if args.retry is not None:
        spec["retry"] = copy.deepcopy(args.retry)
    policy = _failure_policy(args.pod_failure_policy, args.skip_on_exit_code)
    if policy:
        spec["podFailurePolicy"] = policy
    spec["cleanup"] = _cleanup(args.cleanup, args.on_finish_action)
    if args.ttl_after_finished:
        spec["ttlAfterFinished"] = args.ttl_after_finished
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {
            "name": podtask_name(key),
            "namespace": args.namespace,
            "labels": {**(args.labels or {}), **key.labels()},
            "annotations": key.annotations(),
        },
        "spec": spec,
    }


def _cleanup(cleanup: str | None, on_finish_action: str) -> str:
    if cleanup is not None:
        if cleanup not in CLEANUP_VALUES:
            raise PodTaskArgumentError(f"cleanup must be one of {', '.join(CLEANUP_VALUES)}, got {cleanup!r}")
        return cleanup
    try:
        return ON_FINISH_TO_CLEANUP[on_finish_action]
    except KeyError:
        raise PodTaskArgumentError(
            f"on_finish_action must be one of {', '.join(ON_FINISH_TO_CLEANUP)}, got {on_finish_action!r}"
        ) from None


def _failure_policy(
    policy: dict[str, Any] | list[dict[str, Any]] | None, skip_on_exit_code: Sequence[int]
) -> dict[str, Any] | None:
    """podFailurePolicy, with the skip exit codes first: such an exit ends the task now, never retried."""
    rules: list[dict[str, Any]] = []
    if skip_on_exit_code:
        codes = sorted(set(skip_on_exit_code))
        if any(c <= 0 or c > 255 for c in codes):
            raise PodTaskArgumentError(f"skip_on_exit_code must be exit codes 1 to 255, got {codes}")
        rules.append(
            {
                "action": "Fail",
                "onExitCodes": {"containerName": BASE_CONTAINER, "operator": "In", "values": codes},
            }
        )
    if isinstance(policy, Mapping):
        rules.extend(copy.deepcopy(list(policy.get("rules", []))))
    elif policy is not None:
        rules.extend(copy.deepcopy(list(policy)))
    return {"rules": rules} if rules else None


def _pod_template(args: PodTaskArgs, key: TaskKey) -> dict[str, Any]:
    base = copy.deepcopy(args.base_pod or {})
    base.pop("apiVersion", None)
    base.pop("kind", None)
    base.pop("status", None)
    meta = base.get("metadata") or {}
    metadata = {
        "labels": {**(meta.get("labels") or {}), **(args.labels or {}), **key.labels()},
        "annotations": {**(meta.get("annotations") or {}), **(args.annotations or {})},
    }
    metadata = {k: v for k, v in metadata.items() if v}
    spec = base.get("spec") or {}
    spec["restartPolicy"] = "Never"
    spec.pop("activeDeadlineSeconds", None)
    containers = spec.setdefault("containers", [])
    index = next((i for i, c in enumerate(containers) if c.get("name") == BASE_CONTAINER), None)
    if index is None:
        if containers:
            index = 0
        else:
            containers.append({"name": BASE_CONTAINER})
            index = 0
    containers[index] = _container(containers[index], args)
    if not containers[index].get("image"):
        raise PodTaskArgumentError("no image: set image, or give a pod template whose main container has one")

    _set(spec, "nodeSelector", _merged(spec.get("nodeSelector"), args.node_selector))
    _extend(spec, "tolerations", args.tolerations)
    _set(spec, "affinity", args.affinity)
    _extend(spec, "volumes", args.volumes)
    _extend(spec, "imagePullSecrets", _pull_secrets(args.image_pull_secrets))
    _set(spec, "serviceAccountName", args.service_account_name)
    _set(spec, "automountServiceAccountToken", args.automount_service_account_token)
    _extend(spec, "initContainers", args.init_containers)
    _set(spec, "securityContext", args.security_context)
    _extend(spec, "hostAliases", args.host_aliases)
    if args.hostnetwork:
        spec["hostNetwork"] = True
    _set(spec, "dnsPolicy", args.dnspolicy)
    _set(spec, "dnsConfig", args.dns_config)
    _set(spec, "hostname", args.hostname)
    _set(spec, "subdomain", args.subdomain)
    _set(spec, "schedulerName", args.schedulername)
    _set(spec, "priorityClassName", args.priority_class_name)
    _set(spec, "runtimeClassName", args.runtime_class_name)
    _set(spec, "terminationGracePeriodSeconds", args.termination_grace_period)
    return {"metadata": metadata, "spec": spec}


def _container(container: dict[str, Any], args: PodTaskArgs) -> dict[str, Any]:
    c = dict(container)
    c.setdefault("name", BASE_CONTAINER)
    _set(c, "image", args.image)
    _set(c, "command", args.cmds)
    _set(c, "args", args.arguments)
    _extend(c, "env", _env(args.env_vars) + list(args.extra_env))
    env_from = list(args.env_from or []) + [{"configMapRef": {"name": n}} for n in args.configmaps or []]
    _extend(c, "envFrom", env_from)
    _set(c, "resources", args.container_resources)
    _extend(c, "ports", args.ports)
    _extend(c, "volumeMounts", args.volume_mounts)
    _set(c, "imagePullPolicy", args.image_pull_policy)
    _set(c, "securityContext", args.container_security_context)
    if args.do_xcom_push:
        c.setdefault("terminationMessagePath", XCOM_PATH)
    c.setdefault("terminationMessagePolicy", args.termination_message_policy)
    return c


def _env(env_vars: list[dict[str, Any]] | dict[str, str] | None) -> list[dict[str, Any]]:
    if env_vars is None:
        return []
    if isinstance(env_vars, Mapping):
        return [{"name": k, "value": str(v)} for k, v in env_vars.items()]
    return list(env_vars)


def _pull_secrets(value: list[dict[str, Any]] | str | None) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    if isinstance(value, str):  # KubernetesPodOperator's older form: "secret-a,secret-b"
        return [{"name": n.strip()} for n in value.split(",") if n.strip()]
    return list(value)


def _set(target: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        target[key] = copy.deepcopy(value)


def _extend(target: dict[str, Any], key: str, values: Iterable[Any] | None) -> None:
    values = list(values or [])
    if values:
        target[key] = list(target.get(key) or []) + copy.deepcopy(values)


def _merged(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any] | None:
    if a is None and b is None:
        return None
    return {**(a or {}), **(b or {})}


# --- outcomes --------------------------------------------------------------------------------------------------


class Verdict(enum.Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    SKIPPED = "skipped"
    TIMED_OUT = "timed_out"
    FAILED = "failed"


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    #: For humans: podtask's reason and message, or why the task is skipped.
    message: str
    reason: str | None = None
    exit_code: int | None = None
    termination_message: str | None = None

    @property
    def finished(self) -> bool:
        return self.verdict is not Verdict.RUNNING


def outcome(status: Mapping[str, Any] | None, skip_on_exit_code: Iterable[int] = ()) -> Outcome:
    """What a PodTask's status means for the Airflow task."""
    status = status or {}
    phase = status.get("phase") or "Pending"
    reason = status.get("reason")
    message = status.get("message") or ""
    exit_code = status.get("exitCode")
    term = status.get("terminationMessage")
    summary = f"{reason}: {message}" if reason else message
    if phase == "Succeeded":
        return Outcome(Verdict.SUCCEEDED, summary, reason, exit_code, term)
    if phase != "Failed":
        return Outcome(Verdict.RUNNING, summary or phase, reason, exit_code, term)
    if reason == "DeadlineExceeded":
        return Outcome(Verdict.TIMED_OUT, summary, reason, exit_code, term)
    if reason == "PodFailed" and exit_code is not None and exit_code in set(skip_on_exit_code):
        return Outcome(Verdict.SKIPPED, f"exit code {exit_code} is in skip_on_exit_code", reason, exit_code, term)
    return Outcome(Verdict.FAILED, summary or "PodTask failed", reason, exit_code, term)


def xcom_value(termination_message: str | None) -> Any:
    """The XCom return value: the termination message as JSON when it parses, else the text (None when empty)."""
    if termination_message is None or termination_message.strip() == "":
        return None
    try:
        return json.loads(termination_message)
    except ValueError:
        return termination_message


def same_try(podtask: Mapping[str, Any], key: TaskKey) -> bool:
    """Whether an existing PodTask of the expected name was created for this very task instance try."""
    annotations = (podtask.get("metadata") or {}).get("annotations") or {}
    return all(annotations.get(k) == v for k, v in key.annotations().items())


def running_pod(status: Mapping[str, Any] | None) -> str | None:
    """The pod whose log is worth following now: the current attempt's, once its containers run."""
    status = status or {}
    if status.get("phase") == "Running" and status.get("podName"):
        return status["podName"]
    return None


def report(status: Mapping[str, Any] | None) -> list[str]:
    """Lines for the task log once the PodTask is over: each attempt, and the last termination message (a failed
    container's last output, which outlives its pod)."""
    status = status or {}
    lines = []
    for a in status.get("attempts") or []:
        line = f"attempt {a.get('attempt')} (pod {a.get('podName')}): {a.get('outcome')} {a.get('reason')}"
        if a.get("exitCode") is not None:
            line += f", exit code {a['exitCode']}"
        if a.get("message"):
            line += f": {a['message']}"
        lines.append(line)
    if status.get("terminationMessage"):
        lines.append("termination message of the last attempt:")
        lines.extend("  " + t for t in str(status["terminationMessage"]).splitlines())
    return lines
