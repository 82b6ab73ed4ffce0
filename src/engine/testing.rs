//! Builders for the core's table tests: a task, its pods in any state, and times.

use crate::jiff::Timestamp;
use k8s_openapi::{api::core::v1::Pod, apimachinery::pkg::apis::meta::v1::Time};
use serde_json::{Value, json};

use super::{Config, Observed, Plan, decide, pod};
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

/// Decide from the cache's view.
pub fn cached(task: &PodTask, pods: &[Pod], now: Timestamp) -> Plan {
    decide(task, Observed { pods, now, fresh: false }, &cfg())
}

/// Decide after a fresh read from the API server.
pub fn fresh(task: &PodTask, pods: &[Pod], now: Timestamp) -> Plan {
    decide(task, Observed { pods, now, fresh: true }, &cfg())
}
