"""PodTaskOperator: a KubernetesPodOperator whose pod is run by podtask."""

from __future__ import annotations

import time
from collections.abc import Container, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, ClassVar

import yaml
from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowSkipException, AirflowTaskTimeout
from kubernetes.client import ApiClient

from podtask_airflow.client import Connection, PodTasks, short_error
from podtask_airflow.mapping import (
    BASE_CONTAINER,
    UNSUPPORTED,
    Outcome,
    PodTaskArgs,
    TaskKey,
    Verdict,
    build_podtask,
    deadline,
    outcome,
    parse_time,
    podtask_name,
    report,
    running_pod,
    same_try,
    xcom_value,
)
from podtask_airflow.triggers import PodTaskTrigger

if TYPE_CHECKING:
    from airflow.providers.cncf.kubernetes.secret import Secret
    from airflow.sdk import Context
    from kubernetes.client import models as k8s

#: How long after the deadline Airflow itself gives up on a deferred task whose PodTask never reported (podtask
#: not running): podtask's own verdict comes well before.
DEFERRAL_GRACE = timedelta(minutes=2)


class PodTaskOperator(BaseOperator):
    """Run a container as a podtask PodTask, with KubernetesPodOperator's arguments.

    One PodTask per task instance try, named from (dag, task, run, map index, try): a worker that dies and runs
    the same try again adopts the PodTask instead of starting a second pod. ``execution_timeout`` becomes the
    PodTask's absolute ``deadline``, computed once from the task instance's start, so deferral, a triggerer
    restart or a worker crash never extend it.

    Outcomes: podtask's Succeeded is success (with ``do_xcom_push`` the termination message, JSON when it parses,
    is the XCom return value); an exit code in ``skip_on_exit_code`` skips the task; DeadlineExceeded raises
    ``AirflowTaskTimeout``; any other failure fails the task with podtask's reason and message.

    The arguments shared with KubernetesPodOperator mean the same thing; see docs/airflow.md for the migration
    table. podtask's own:

    :param retry: the PodTask's ``spec.retry`` (``limit``, ``backoff``, ``reasons``); podtask's default retries
        infrastructure failures (image pull timeout, startup timeout, unschedulable, evicted, pod lost) twice
        within one Airflow try.
    :param pod_failure_policy: the PodTask's ``spec.podFailurePolicy`` (a dict with ``rules``, or the list).
    :param cleanup: ``Delete``, ``DeleteSucceeded`` or ``Keep``; overrides ``on_finish_action``.
    :param ttl_after_finished: delete the PodTask itself this long after it finished (default ``24h``; None keeps
        it).
    :param deferrable: wait in the triggerer (default) rather than in a worker slot.
    :param poll_interval: seconds between reads of the PodTask's status.
    """

    template_fields: Sequence[str] = (
        "image",
        "cmds",
        "arguments",
        "env_vars",
        "labels",
        "annotations",
        "namespace",
        "config_file",
        "pod_template_file",
        "pod_template_dict",
        "container_resources",
        "volumes",
        "volume_mounts",
        "node_selector",
        "service_account_name",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"env_vars": "py", "pod_template_dict": "py"}

    def __init__(
        self,
        *,
        image: str | None = None,
        cmds: list[str] | None = None,
        arguments: list[str] | None = None,
        env_vars: list[k8s.V1EnvVar] | dict[str, str] | None = None,
        env_from: list[k8s.V1EnvFromSource] | None = None,
        secrets: list[Secret] | None = None,
        configmaps: list[str] | None = None,
        container_resources: k8s.V1ResourceRequirements | dict | None = None,
        ports: list[k8s.V1ContainerPort] | None = None,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        node_selector: dict[str, str] | None = None,
        tolerations: list[k8s.V1Toleration] | None = None,
        affinity: k8s.V1Affinity | dict | None = None,
        volumes: list[k8s.V1Volume] | None = None,
        volume_mounts: list[k8s.V1VolumeMount] | None = None,
        image_pull_secrets: list[k8s.V1LocalObjectReference] | str | None = None,
        image_pull_policy: str | None = None,
        service_account_name: str | None = None,
        automount_service_account_token: bool | None = None,
        init_containers: list[k8s.V1Container] | None = None,
        security_context: k8s.V1PodSecurityContext | dict | None = None,
        container_security_context: k8s.V1SecurityContext | dict | None = None,
        host_aliases: list[k8s.V1HostAlias] | None = None,
        hostnetwork: bool = False,
        dnspolicy: str | None = None,
        dns_config: k8s.V1PodDNSConfig | None = None,
        hostname: str | None = None,
        subdomain: str | None = None,
        schedulername: str | None = None,
        priority_class_name: str | None = None,
        runtime_class_name: str | None = None,
        termination_grace_period: int | None = None,
        pod_runtime_info_envs: list[k8s.V1EnvVar] | None = None,
        namespace: str | None = None,
        startup_timeout_seconds: int = 120,
        skip_on_exit_code: int | Container[int] | None = None,
        do_xcom_push: bool = False,
        on_finish_action: str = "delete_pod",
        termination_message_policy: str = "FallbackToLogsOnError",
        full_pod_spec: k8s.V1Pod | None = None,
        pod_template_file: str | None = None,
        pod_template_dict: dict | None = None,
        base_container_name: str | None = None,
        get_logs: bool = True,
        container_logs: Any = None,
        init_container_logs: Any = None,
        base_container_status_polling_interval: float | None = None,
        kubernetes_conn_id: str | None = KubernetesHook.default_conn_name,
        config_file: str | None = None,
        in_cluster: bool | None = None,
        cluster_context: str | None = None,
        deferrable: bool = True,
        poll_interval: float = 2.0,
        retry: dict[str, Any] | None = None,
        pod_failure_policy: dict[str, Any] | list[dict[str, Any]] | None = None,
        cleanup: str | None = None,
        ttl_after_finished: str | None = "24h",
        **kwargs: Any,
    ) -> None:
        refused = sorted(set(kwargs) & set(UNSUPPORTED))
        if refused:
            raise TypeError(
                "PodTaskOperator does not take "
                + "; ".join(f"{a} ({UNSUPPORTED[a]})" for a in refused)
                + ". See docs/airflow.md for the migration table."
            )
        if base_container_name not in (None, BASE_CONTAINER):
            raise TypeError(f"base_container_name must be {BASE_CONTAINER!r} (the container the arguments apply to)")
        # KubernetesPodOperator pushes XCom only when asked; BaseOperator's default is True
        super().__init__(do_xcom_push=do_xcom_push, **kwargs)
        self.image = image
        self.cmds = cmds
        self.arguments = arguments
        self.env_vars = env_vars
        self.env_from = env_from
        self.secrets = secrets or []
        self.configmaps = configmaps
        self.container_resources = container_resources
        self.ports = ports
        self.labels = labels
        self.annotations = annotations
        self.node_selector = node_selector
        self.tolerations = tolerations
        self.affinity = affinity
        self.volumes = volumes
        self.volume_mounts = volume_mounts
        self.image_pull_secrets = image_pull_secrets
        self.image_pull_policy = image_pull_policy
        self.service_account_name = service_account_name
        self.automount_service_account_token = automount_service_account_token
        self.init_containers = init_containers
        self.security_context = security_context
        self.container_security_context = container_security_context
        self.host_aliases = host_aliases
        self.hostnetwork = hostnetwork
        self.dnspolicy = dnspolicy
        self.dns_config = dns_config
        self.hostname = hostname
        self.subdomain = subdomain
        self.schedulername = schedulername
        self.priority_class_name = priority_class_name
        self.runtime_class_name = runtime_class_name
        self.termination_grace_period = termination_grace_period
        self.pod_runtime_info_envs = pod_runtime_info_envs
        self.namespace = namespace
        self.startup_timeout_seconds = startup_timeout_seconds
        if skip_on_exit_code is None:
            self.skip_on_exit_code: tuple[int, ...] = ()
        elif isinstance(skip_on_exit_code, int):
            self.skip_on_exit_code = (skip_on_exit_code,)
        else:
            self.skip_on_exit_code = tuple(skip_on_exit_code)  # type: ignore[arg-type]
        self.on_finish_action = on_finish_action
        self.termination_message_policy = termination_message_policy
        self.full_pod_spec = full_pod_spec
        self.pod_template_file = pod_template_file
        self.pod_template_dict = pod_template_dict
        self.get_logs = get_logs and container_logs is not False
        self.kubernetes_conn_id = kubernetes_conn_id
        self.config_file = config_file
        self.in_cluster = in_cluster
        self.cluster_context = cluster_context
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.retry = retry
        self.pod_failure_policy = pod_failure_policy
        self.cleanup = cleanup
        self.ttl_after_finished = ttl_after_finished
        self.podtask_name: str | None = None

    # --- what runs -----------------------------------------------------------------------------------------

    @property
    def connection(self) -> Connection:
        return Connection(self.kubernetes_conn_id, self.config_file, self.in_cluster, self.cluster_context)

    def _namespace(self) -> str:
        return self.namespace or self.connection.hook().get_namespace() or "default"

    def build_args(self) -> PodTaskArgs:
        """The arguments in the Kubernetes API's JSON form, for the pure mapping."""
        env_vars = self.env_vars if isinstance(self.env_vars, dict) else _json(self.env_vars)
        env_from = list(_json(self.env_from) or [])
        extra_env = list(_json(self.pod_runtime_info_envs) or [])
        volumes = list(_json(self.volumes) or [])
        mounts = list(_json(self.volume_mounts) or [])
        for secret in self.secrets:
            if secret.deploy_type == "env" and secret.key is None:
                env_from.append(_json(secret.to_env_from_secret()))
            elif secret.deploy_type == "env":
                extra_env.append(_json(secret.to_env_secret()))
            else:
                volume, mount = secret.to_volume_secret()
                volumes.append(_json(volume))
                mounts.append(_json(mount))
        return PodTaskArgs(
            image=self.image,
            cmds=self.cmds,
            arguments=self.arguments,
            env_vars=env_vars,
            env_from=env_from,
            extra_env=extra_env,
            configmaps=self.configmaps,
            container_resources=_json(self.container_resources),
            ports=_json(self.ports),
            labels=self.labels,
            annotations=self.annotations,
            node_selector=self.node_selector,
            tolerations=_json(self.tolerations),
            affinity=_json(self.affinity),
            volumes=volumes,
            volume_mounts=mounts,
            image_pull_secrets=self.image_pull_secrets
            if isinstance(self.image_pull_secrets, str)
            else _json(self.image_pull_secrets),
            image_pull_policy=self.image_pull_policy,
            service_account_name=self.service_account_name,
            automount_service_account_token=self.automount_service_account_token,
            init_containers=_json(self.init_containers),
            security_context=_json(self.security_context),
            container_security_context=_json(self.container_security_context),
            host_aliases=_json(self.host_aliases),
            hostnetwork=self.hostnetwork,
            dnspolicy=self.dnspolicy,
            dns_config=_json(self.dns_config),
            hostname=self.hostname,
            subdomain=self.subdomain,
            schedulername=self.schedulername,
            priority_class_name=self.priority_class_name,
            runtime_class_name=self.runtime_class_name,
            termination_grace_period=self.termination_grace_period,
            namespace=self._namespace(),
            startup_timeout_seconds=self.startup_timeout_seconds,
            skip_on_exit_code=self.skip_on_exit_code,
            do_xcom_push=self.do_xcom_push,
            on_finish_action=self.on_finish_action,
            termination_message_policy=self.termination_message_policy,
            base_pod=self._base_pod(),
            retry=self.retry,
            pod_failure_policy=self.pod_failure_policy,
            cleanup=self.cleanup,
            ttl_after_finished=self.ttl_after_finished,
        )

    def _base_pod(self) -> dict[str, Any] | None:
        if self.full_pod_spec is not None:
            return _json(self.full_pod_spec)
        if self.pod_template_dict is not None:
            return dict(self.pod_template_dict)
        if self.pod_template_file is not None:
            with open(self.pod_template_file) as f:
                return yaml.safe_load(f)
        return None

    # --- running -------------------------------------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        ti = context["ti"]
        key = TaskKey(ti.dag_id, ti.task_id, ti.run_id, ti.map_index, ti.try_number)
        args = self.build_args()
        name = podtask_name(key)
        self.podtask_name = name
        podtasks = PodTasks(self.connection, args.namespace)

        podtask = podtasks.get(name)
        if podtask is None:
            start = ti.start_date or datetime.now(timezone.utc)
            body = build_podtask(args, key, deadline(start, self.execution_timeout))
            podtask = podtasks.create(body) or podtasks.get(name)
            if podtask is None:
                raise AirflowException(f"PodTask {args.namespace}/{name} could be neither created nor read")
            self.log.info(
                "created PodTask %s/%s (deadline %s)", args.namespace, name, body["spec"].get("deadline", "none")
            )
        else:
            self.log.info(
                "adopting PodTask %s/%s of this try (deadline %s, phase %s)",
                args.namespace,
                name,
                podtask["spec"].get("deadline", "none"),
                (podtask.get("status") or {}).get("phase", "Pending"),
            )
        if not same_try(podtask, key):
            raise AirflowException(
                f"PodTask {args.namespace}/{name} exists but was not created for this task instance try; "
                "delete it if it is stale"
            )

        status = podtask.get("status") or {}
        if outcome(status).finished:
            return self._finish(context, status)
        if self.deferrable:
            self._defer(args.namespace, name, podtask["spec"].get("deadline"))
        return self._finish(context, self._wait(podtasks, name))

    def _defer(self, namespace: str, name: str, deadline_at: str | None) -> None:
        timeout = None
        if deadline_at:
            timeout = parse_time(deadline_at) - datetime.now(timezone.utc) + DEFERRAL_GRACE
        self.defer(
            trigger=PodTaskTrigger(
                namespace=namespace,
                name=name,
                connection=self.connection.to_dict(),
                poll_interval=self.poll_interval,
                get_logs=self.get_logs,
            ),
            method_name="execute_complete",
            timeout=timeout,
        )

    def _wait(self, podtasks: PodTasks, name: str) -> dict[str, Any]:
        followed: set[str] = set()
        followers = []
        while True:
            podtask = podtasks.get(name)
            if podtask is None:
                raise AirflowException(f"PodTask {podtasks.namespace}/{name} was deleted before it finished")
            status = podtask.get("status") or {}
            if outcome(status).finished:
                for t in followers:
                    t.join(timeout=5)
                return status
            pod = running_pod(status)
            if self.get_logs and pod and pod not in followed:
                followed.add(pod)
                followers.append(podtasks.follow_log(pod, BASE_CONTAINER, self._emitter(pod)))
            time.sleep(self.poll_interval)

    def _emitter(self, pod: str) -> Any:
        def emit(line: str) -> None:
            self.log.info("[%s] %s", pod, line)

        return emit

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resumed from PodTaskTrigger; without an event (the deferred try run again before its trigger fired),
        adopt the PodTask and wait again."""
        if event is None:
            return self.execute(context)
        self.podtask_name = event.get("name")
        kind = event.get("event")
        if kind == "gone":
            raise AirflowException(f"PodTask {event.get('name')} was deleted before it finished")
        if kind != "finished":
            raise AirflowException(f"waiting for PodTask {event.get('name')} failed: {event.get('message')}")
        return self._finish(context, event.get("status") or {})

    def _finish(self, context: Context, status: dict[str, Any]) -> Any:
        for line in report(status):
            self.log.info("%s", line)
        result: Outcome = outcome(status, self.skip_on_exit_code)
        if result.verdict is Verdict.SUCCEEDED:
            return xcom_value(result.termination_message) if self.do_xcom_push else None
        if result.verdict is Verdict.SKIPPED:
            raise AirflowSkipException(f"PodTask {self.podtask_name}: {result.message}")
        if result.verdict is Verdict.TIMED_OUT:
            raise AirflowTaskTimeout(f"PodTask {self.podtask_name}: {result.message}")
        raise AirflowException(f"PodTask {self.podtask_name} failed: {result.message}")

    def on_kill(self) -> None:
        """The task was killed (marked failed, timed out, its run stopped): delete the PodTask and its pod."""
        if not self.podtask_name:
            return
        try:
            podtasks = PodTasks(self.connection, self._namespace())
            current = podtasks.get(self.podtask_name)
            # a PodTask that is over has no pod to stop; it stays as the record of the try (ttl_after_finished)
            if current is not None and not outcome(current.get("status")).finished:
                podtasks.delete(self.podtask_name)
                self.log.info("deleted PodTask %s", self.podtask_name)
        except Exception as e:
            self.log.warning("could not delete PodTask %s: %s", self.podtask_name, short_error(e))


def _json(value: Any) -> Any:
    """A Kubernetes model object (or list/dict of them) in the API's JSON form; dicts pass through."""
    if value is None:
        return None
    return ApiClient().sanitize_for_serialization(value)
