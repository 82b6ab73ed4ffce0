"""PodTaskTrigger: waits in the triggerer until a PodTask is over, without holding a worker slot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from podtask_airflow.client import AsyncPodTasks, Connection, short_error
from podtask_airflow.mapping import BASE_CONTAINER, outcome, running_pod

#: After this many failed reads in a row the trigger gives up and hands the error to the task.
MAX_READ_ERRORS = 10


class PodTaskTrigger(BaseTrigger):
    """Polls one PodTask's status until podtask says it is over, following its pods' logs meanwhile.

    Serialises only the PodTask's namespace and name, how to reach the cluster, and how to poll: the deadline
    and everything else live in the PodTask itself, so a triggerer restart loses nothing.

    :param namespace: the PodTask's namespace.
    :param name: the PodTask's name.
    :param connection: ``Connection.to_dict()``.
    :param poll_interval: seconds between reads of the PodTask.
    :param get_logs: follow the container's log into the task log.
    :param container: the container whose log is followed.
    """

    def __init__(
        self,
        namespace: str,
        name: str,
        connection: dict[str, Any],
        poll_interval: float = 2.0,
        get_logs: bool = True,
        container: str = BASE_CONTAINER,
    ) -> None:
        super().__init__()
        self.namespace = namespace
        self.name = name
        self.connection = connection
        self.poll_interval = poll_interval
        self.get_logs = get_logs
        self.container = container

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "namespace": self.namespace,
                "name": self.name,
                "connection": self.connection,
                "poll_interval": self.poll_interval,
                "get_logs": self.get_logs,
                "container": self.container,
            },
        )

    def _podtasks(self) -> AsyncPodTasks:
        return AsyncPodTasks(Connection(**self.connection), self.namespace)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        podtasks = self._podtasks()
        followed: set[str] = set()
        log_tasks: list[asyncio.Task[None]] = []
        errors = 0
        try:
            while True:
                try:
                    podtask = await podtasks.get(self.name)
                    errors = 0
                except Exception as e:
                    errors += 1
                    self.log.warning(
                        "reading PodTask %s/%s failed (%d): %s", self.namespace, self.name, errors, short_error(e)
                    )
                    if errors >= MAX_READ_ERRORS:
                        yield TriggerEvent({"event": "error", "name": self.name, "message": short_error(e)})
                        return
                    await asyncio.sleep(self.poll_interval)
                    continue
                if podtask is None:
                    yield TriggerEvent({"event": "gone", "name": self.name})
                    return
                status = podtask.get("status") or {}
                if status.get("phase") in ("Succeeded", "Failed"):
                    await _drain(log_tasks)
                    yield TriggerEvent({"event": "finished", "name": self.name, "status": status})
                    return
                pod = running_pod(status)
                if self.get_logs and pod and pod not in followed:
                    followed.add(pod)
                    emit = _emitter(self.log, pod)
                    log_tasks.append(asyncio.create_task(podtasks.follow_log(pod, self.container, emit)))
                await asyncio.sleep(self.poll_interval)
        finally:
            for t in log_tasks:
                t.cancel()

    async def on_kill(self) -> None:
        """A user marked the deferred task failed or cleared it: delete the PodTask, and so its pod."""
        podtasks = self._podtasks()
        current = await podtasks.get(self.name)
        if current is not None and not outcome(current.get("status")).finished and await podtasks.delete(self.name):
            self.log.info("deleted PodTask %s/%s", self.namespace, self.name)


def _emitter(log: Any, pod: str) -> Any:
    def emit(line: str) -> None:
        log.info("[%s] %s", pod, line)

    return emit


async def _drain(tasks: list[asyncio.Task[None]], timeout: float = 5.0) -> None:
    """Give log followers a moment to print the last lines (their streams end with the container)."""
    pending = [t for t in tasks if not t.done()]
    if pending:
        await asyncio.wait(pending, timeout=timeout)
