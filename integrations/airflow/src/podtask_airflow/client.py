"""Reading, creating and deleting PodTasks, and following their pods' logs, through the cncf-kubernetes hooks
(so ``kubernetes_conn_id``, ``config_file``, ``in_cluster`` and ``cluster_context`` mean what they mean there)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from airflow.providers.cncf.kubernetes.hooks.kubernetes import AsyncKubernetesHook, KubernetesHook
from kubernetes.client import ApiException
from kubernetes_asyncio import client as async_client

from podtask_airflow.mapping import GROUP, PLURAL, VERSION

#: Seconds a request may take before it is retried by the caller's next poll (never hang a worker or triggerer).
REQUEST_TIMEOUT = 30


@dataclass(frozen=True)
class Connection:
    """How to reach the cluster; serialisable, so the trigger can carry it."""

    kubernetes_conn_id: str | None = KubernetesHook.default_conn_name
    config_file: str | None = None
    in_cluster: bool | None = None
    cluster_context: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def hook(self) -> KubernetesHook:
        return KubernetesHook(**self.to_dict())

    def async_hook(self) -> AsyncKubernetesHook:
        return AsyncKubernetesHook(**self.to_dict())


class PodTasks:
    """PodTasks of one namespace, synchronously (the worker)."""

    def __init__(self, connection: Connection, namespace: str) -> None:
        self.hook = connection.hook()
        self.namespace = namespace

    def get(self, name: str) -> dict[str, Any] | None:
        try:
            return self.hook.custom_object_client.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name, _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def create(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """Create; None when one of that name exists already (the caller reads and adopts it)."""
        try:
            return self.hook.custom_object_client.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, body, _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as e:
            if e.status == 409:
                return None
            if e.status == 404:
                raise PodTaskApiError(
                    f"the PodTask CRD ({PLURAL}.{GROUP}) is not installed in this cluster: "
                    "install podtask (its Helm chart, or `podtask crd | kubectl apply -f -`)"
                ) from None
            raise PodTaskApiError(
                f"creating PodTask {self.namespace}/{body['metadata']['name']} was refused: {api_message(e)}"
            ) from None

    def delete(self, name: str) -> bool:
        """Delete the PodTask; its pods go with it (ownerReferences). False when it was already gone."""
        try:
            self.hook.custom_object_client.delete_namespaced_custom_object(
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                name,
                propagation_policy="Background",
                _request_timeout=REQUEST_TIMEOUT,
            )
            return True
        except ApiException as e:
            if e.status == 404:
                return False
            raise

    def follow_log(self, pod: str, container: str, emit: Callable[[str], None]) -> threading.Thread:
        """Follow a container's log in a daemon thread, each line to ``emit``; stops when the container ends or
        the pod goes. A log that can't be read (no kubelet to serve it) is reported once."""

        def run() -> None:
            try:
                resp = self.hook.core_v1_client.read_namespaced_pod_log(
                    pod,
                    self.namespace,
                    container=container,
                    follow=True,
                    _preload_content=False,
                    _request_timeout=(REQUEST_TIMEOUT, None),
                )
                if resp.status >= 400:
                    raise ApiException(status=resp.status, reason=resp.reason)
                pending = b""
                for chunk in resp.stream(4096):
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        emit(line.decode(errors="replace"))
                if pending:
                    emit(pending.decode(errors="replace"))
            except Exception as e:
                logging.getLogger(__name__).info("container log of pod %s not available: %s", pod, short_error(e))

        thread = threading.Thread(target=run, name=f"log-{pod}", daemon=True)
        thread.start()
        return thread


class AsyncPodTasks:
    """PodTasks of one namespace, from the triggerer's event loop."""

    def __init__(self, connection: Connection, namespace: str) -> None:
        self.hook = connection.async_hook()
        self.namespace = namespace

    async def get(self, name: str) -> dict[str, Any] | None:
        async with self.hook.get_conn() as api:
            try:
                return await async_client.CustomObjectsApi(api).get_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, PLURAL, name, _request_timeout=REQUEST_TIMEOUT
                )
            except async_client.ApiException as e:
                if e.status == 404:
                    return None
                raise

    async def delete(self, name: str) -> bool:
        async with self.hook.get_conn() as api:
            try:
                await async_client.CustomObjectsApi(api).delete_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    self.namespace,
                    PLURAL,
                    name,
                    propagation_policy="Background",
                    _request_timeout=REQUEST_TIMEOUT,
                )
                return True
            except async_client.ApiException as e:
                if e.status == 404:
                    return False
                raise

    async def follow_log(self, pod: str, container: str, emit: Callable[[str], None]) -> None:
        """Follow a container's log, each line to ``emit``, until the container ends or the pod goes."""
        try:
            async with self.hook.get_conn() as api:
                resp = await async_client.CoreV1Api(api).read_namespaced_pod_log(
                    pod, self.namespace, container=container, follow=True, _preload_content=False
                )
                if resp.status >= 400:  # the body is the API's error; not for the task log
                    raise async_client.ApiException(status=resp.status, reason=resp.reason)
                async for line in resp.content:
                    emit(line.decode(errors="replace").rstrip("\n"))
        except asyncio.CancelledError:
            raise
        except Exception as e:
            logging.getLogger(__name__).info("container log of pod %s not available: %s", pod, short_error(e))


class PodTaskApiError(RuntimeError):
    """The API server refused a request; the message says why, without the response body."""


def api_message(e: ApiException) -> str:
    """HTTP status and the API server's own message (a Status object's ``message``: which field is invalid,
    which permission is missing), not the raw body."""
    try:
        message = json.loads(e.body or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return f"{short_error(e)}: {message}" if message else short_error(e)


def short_error(e: Exception) -> str:
    """An API error without its response body (which may hold anything)."""
    status = getattr(e, "status", None)
    reason = getattr(e, "reason", None)
    if status is not None:
        return f"HTTP {status} {reason or ''}".strip()
    return type(e).__name__
