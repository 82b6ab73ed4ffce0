//! Builders for the core's table tests: a task, its pods in any state, and times.

use crate::jiff::Timestamp;
use k8s_openapi::{api::core::v1::Pod, apimachinery::pkg::apis::meta::v1::Time};
use serde_json::{Value, json};

use super::{Config, Event, Next, Observed, PodDeletion, PodStop, create_error::CreateError, decide, pod};
use crate::crd::{PodTask, PodTaskStatus};

pub const UID: &str = "0f0f0f0f-1111-2222-3333-444444444444";

pub fn ts(s: &str) -> Timestamp {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// Ten o'clock plus `secs` seconds: tests read as "at T+90".
pub fn t(secs: u64) -> Timestamp {
    super::deadline::after(ts("2026-01-01T10:00:00Z"), std::time::Duration::from_secs(secs))
}

/// A task named `job` in namespace `ns`; `spec` fields override the defaults.
pub fn task(spec: Value) -> PodTask {
    let mut base = json!({
        "template": {
            "metadata": {"labels": {"app": "demo"}, "annotations": {"kwok.podtask.dev/scenario": "succeed"}},
            "spec": {"containers": [{"name": "main", "image": "busybox"}]}
        }
    });
    if let (Some(b), Some(o)) = (base.as_object_mut(), spec.as_object()) {
        for (k, v) in o {
            b.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(json!({
        "apiVersion": "podtask.dev/v1alpha1", "kind": "PodTask",
        "metadata": {"name": "job", "namespace": "ns", "uid": UID, "generation": 1},
        "spec": base
    }))
    .expect("test task is valid")
}

pub fn with_status(mut task: PodTask, status: PodTaskStatus) -> PodTask {
    task.status = Some(status);
    task
}

/// The pod podtask would have created for `attempt` at `created`, with the given pod status.
pub fn pod_at(task: &PodTask, attempt: u32, created: Timestamp, status: Value) -> Pod {
    let mut p = pod::build(task, attempt, created, None, created);
    p.metadata.uid = Some(format!("pod-uid-{attempt}"));
    p.metadata.creation_timestamp = Some(Time(created));
    p.metadata.resource_version = Some("1".into());
    p.status = Some(serde_json::from_value(status).expect("test pod status is valid"));
    p
}

pub fn scheduled_waiting(reason: &str, message: &str) -> Value {
    json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}],
        "containerStatuses": [{"name": "main", "image": "busybox", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": reason, "message": message}}}]})
}

pub fn running() -> Value {
    json!({"phase": "Running", "conditions": [{"type": "PodScheduled", "status": "True"}],
        "containerStatuses": [{"name": "main", "image": "busybox", "imageID": "", "ready": true, "restartCount": 0,
            "state": {"running": {}}}]})
}

pub fn exited(phase: &str, code: i32, message: &str) -> Value {
    json!({"phase": phase, "containerStatuses": [{"name": "main", "image": "busybox", "imageID": "", "ready": false,
        "restartCount": 0, "state": {"terminated": {"exitCode": code, "message": message}}}]})
}

pub fn cfg() -> Config {
    Config::default()
}

/// A decision as the tests read it: what the engine asked for, and the status the task has afterwards.
#[derive(Clone, Debug, Default)]
pub struct Decided {
    /// Set when the engine asked for a fresh read of this pod instead of a plan.
    pub read_fresh: Option<String>,
    /// Set when the engine asked for this pod's delete on the cache's word instead of a plan.
    pub stop_first: Option<PodDeletion>,
    pub create: Option<Pod>,
    /// The task's status after the plan: the new one, or the old one when nothing is to be written.
    pub status: PodTaskStatus,
    pub writes_status: bool,
    pub delete: Vec<PodDeletion>,
    pub stop: Vec<PodStop>,
    pub delete_task: bool,
    pub events: Vec<Event>,
    pub requeue_at: Option<Timestamp>,
    pub deadline_stop: Option<Timestamp>,
}

fn decided(task: &PodTask, seen: Observed<'_>) -> Decided {
    let old = task.status.clone().unwrap_or_default();
    match decide(task, seen, &cfg()) {
        Next::ReadFresh(pod) => Decided { read_fresh: Some(pod), status: old, ..Decided::default() },
        Next::StopFirst(d) => Decided { stop_first: Some(d), status: old, ..Decided::default() },
        Next::Act(plan) => Decided {
            writes_status: plan.status.is_some(),
            status: plan.status.unwrap_or(old),
            create: plan.create,
            delete: plan.delete,
            stop: plan.stop,
            delete_task: plan.delete_task,
            events: plan.events,
            requeue_at: plan.requeue_at,
            deadline_stop: plan.deadline_stop,
            read_fresh: None,
            stop_first: None,
        },
    }
}

/// Decide from the cache's view.
pub fn cached(task: &PodTask, pods: &[Pod], now: Timestamp) -> Decided {
    decided(task, Observed::cached(pods, now))
}

/// Decide after a fresh read from the API server.
pub fn fresh(task: &PodTask, pods: &[Pod], now: Timestamp) -> Decided {
    decided(task, Observed { pods, now, fresh: true, create_refused: None })
}

/// Decide after the API server refused the next attempt's pod.
pub fn refused(task: &PodTask, error: &CreateError, now: Timestamp) -> Decided {
    decided(task, Observed { pods: &[], now, fresh: true, create_refused: Some(error) })
}
