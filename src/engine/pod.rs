//! The pod podtask creates for one attempt.

use std::collections::BTreeMap;

use crate::jiff::Timestamp;
use k8s_openapi::{
    api::core::v1::Pod,
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use kube::{Resource, ResourceExt};

use super::{deadline, naming};
use crate::crd::PodTask;

/// The pod for `attempt`: the user's template with podtask's name, labels, annotations and owner added,
/// restartPolicy Never, and activeDeadlineSeconds no later than the task's deadline (the kubelet's backstop).
pub fn build(
    task: &PodTask,
    attempt: u32,
    first_start: Timestamp,
    task_deadline: Option<Timestamp>,
    now: Timestamp,
) -> Pod {
    let template = k8s_openapi::api::core::v1::PodTemplateSpec::clone(&task.spec.template);
    let meta = template.metadata.unwrap_or_default();
    let uid = task.uid().unwrap_or_default();

    let mut labels: BTreeMap<String, String> = meta.labels.unwrap_or_default();
    labels.insert(naming::LABEL_MANAGED_BY.into(), naming::MANAGED_BY.into());
    labels.insert(naming::LABEL_TASK.into(), naming::task_label(&task.name_any()));
    labels.insert(naming::LABEL_TASK_UID.into(), uid.clone());
    labels.insert(naming::LABEL_ATTEMPT.into(), attempt.to_string());

    let mut annotations = meta.annotations.unwrap_or_default();
    annotations.insert(naming::ANNOTATION_START_TIME.into(), first_start.to_string());
    annotations.insert(naming::ANNOTATION_CREATED_AT.into(), now.to_string());
    if let Some(d) = task_deadline {
        annotations.insert(naming::ANNOTATION_DEADLINE.into(), d.to_string());
    }
    annotations.insert(naming::ANNOTATION_DECIDING.into(), deciding_containers(task).join(","));

    let mut spec = template.spec.unwrap_or_default();
    spec.restart_policy = Some("Never".into());
    // A failed container's last log lines become its termination message, so they outlive the pod (which podtask
    // deletes): the kubelet reads them only when a container fails without writing a message of its own.
    for c in spec.containers.iter_mut().chain(spec.init_containers.iter_mut().flatten()) {
        c.termination_message_policy.get_or_insert_with(|| "FallbackToLogsOnError".into());
    }
    if let Some(d) = task_deadline {
        // Stopping starts a grace period before the deadline, so the pod is gone by then: podtask deletes it at
        // that moment, and the kubelet does the same on its own (activeDeadlineSeconds) if podtask is down.
        let grace = deadline::stop_grace(spec.termination_grace_period_seconds, d, now);
        spec.termination_grace_period_seconds = Some(grace);
        let budget = deadline::remaining_seconds(deadline::stop_at(d, grace), now);
        spec.active_deadline_seconds = Some(spec.active_deadline_seconds.map_or(budget, |own| own.min(budget)));
    }

    Pod {
        metadata: ObjectMeta {
            name: Some(naming::pod_name(&task.name_any(), &uid, attempt)),
            namespace: task.namespace(),
            labels: Some(labels),
            annotations: Some(annotations),
            // controller + blockOwnerDeletion: deleting the PodTask deletes its pods, foreground deletion waits.
            owner_references: task
                .controller_owner_ref(&())
                .map(|o| vec![OwnerReference { block_owner_deletion: Some(true), ..o }]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// The containers whose ends decide the task: `spec.decidingContainers`, else every container of the template.
pub fn deciding_containers(task: &PodTask) -> Vec<String> {
    if let Some(named) = &task.spec.deciding_containers {
        return named.clone();
    }
    let containers = task.spec.template.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default();
    containers.iter().map(|c| c.name.clone()).collect()
}

/// The containers whose ends decide this pod's outcome, as it was launched (none recorded: every container).
pub fn deciding_of(pod: &Pod) -> Vec<String> {
    let recorded = pod.annotations().get(naming::ANNOTATION_DECIDING);
    recorded.into_iter().flat_map(|names| names.split(',')).filter(|n| !n.is_empty()).map(str::to_owned).collect()
}

/// The node of a pod whose node has stopped answering: the node lifecycle controller has marked the running pod
/// not ready (a Ready condition turned False with no reason of the kubelet's), or the pod was lost with it.
pub fn unreachable_node(pod: &Pod) -> Option<&str> {
    let status = pod.status.as_ref()?;
    let node = pod.spec.as_ref()?.node_name.as_deref()?;
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let marked_not_ready = status.phase.as_deref() == Some("Running")
        && conditions.iter().any(|c| c.type_ == "Ready" && c.status != "True" && c.reason.is_none());
    let lost = status.reason.as_deref() == Some("NodeLost");
    (marked_not_ready || lost).then_some(node)
}

/// The activeDeadlineSeconds that makes the kubelet stop a started pod at once (its age plus a second), unless
/// it has one as short already.
pub fn seconds_to_stop_now(pod: &Pod, now: Timestamp) -> Option<i64> {
    let started = pod.status.as_ref()?.start_time.as_ref()?.0;
    let seconds = now.duration_since(started).as_secs().max(0) + 1;
    let current = pod.spec.as_ref().and_then(|s| s.active_deadline_seconds);
    current.is_none_or(|c| c > seconds).then_some(seconds)
}

/// Is the pod finished, as far as the API server knows (its phase is Succeeded or Failed)?
pub fn is_finished(pod: &Pod) -> bool {
    matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

/// The attempt number a pod of ours carries.
pub fn attempt_of(pod: &Pod) -> Option<u32> {
    pod.labels().get(naming::LABEL_ATTEMPT)?.parse().ok()
}

/// The first launch time a pod of ours carries (falls back to its creation time).
pub fn first_start_of(pod: &Pod) -> Option<Timestamp> {
    pod.annotations()
        .get(naming::ANNOTATION_START_TIME)
        .and_then(|s| s.parse().ok())
        .or_else(|| pod.creation_timestamp().map(|t| t.0))
}

/// When the pod was created: podtask's own record, else the API server's (whole seconds, rounded down, so one
/// second later: a timeout counted from it is never shorter than asked).
pub fn created_at(pod: &Pod) -> Option<Timestamp> {
    let recorded = pod.annotations().get(naming::ANNOTATION_CREATED_AT).and_then(|s| s.parse().ok());
    recorded.or_else(|| pod.creation_timestamp().map(|t| deadline::after(t.0, std::time::Duration::from_secs(1))))
}

/// When the pod was bound to a node (its `PodScheduled` condition turned true), if it has been.
pub fn scheduled_at(pod: &Pod) -> Option<Timestamp> {
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled" && c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0)
}

/// Since when the pod's containers have all been running: the latest start among its running containers (none
/// recorded: its creation), and no earlier than the watch cache first held it running (`NOTE_SEEN_RUNNING`).
pub fn running_since(pod: &Pod) -> Option<Timestamp> {
    let statuses = pod.status.as_ref().and_then(|s| s.container_statuses.as_ref());
    let started = statuses
        .into_iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.running.as_ref()?.started_at.as_ref().map(|t| t.0))
        .max();
    let seen = pod.annotations().get(naming::NOTE_SEEN_RUNNING).and_then(|s| s.parse().ok());
    started.or_else(|| created_at(pod)).max(seen)
}

/// When podtask must start stopping this pod for it to be gone by `deadline`: its grace period earlier.
pub fn stop_at(pod: &Pod, deadline: Timestamp) -> Timestamp {
    let grace = pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds);
    deadline::stop_at(deadline, grace.unwrap_or(deadline::DEFAULT_GRACE_SECONDS))
}

/// The task deadline a pod of ours was launched with (set when the task had one).
pub fn deadline_of(pod: &Pod) -> Option<Timestamp> {
    pod.annotations().get(naming::ANNOTATION_DEADLINE).and_then(|s| s.parse().ok())
}

/// Is this pod owned (as controller) by the task with this UID?
pub fn is_owned_by(pod: &Pod, task_uid: &str) -> bool {
    pod.owner_references().iter().any(|o| o.controller == Some(true) && o.uid == task_uid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testing::{task, ts};

    #[test]
    fn pod_carries_identity_owner_and_backstop() {
        let t = task(serde_json::json!({"executionTimeout": "10m"}));
        let start = ts("2026-01-01T10:00:00Z");
        let pod = build(&t, 2, start, Some(ts("2026-01-01T10:10:00Z")), ts("2026-01-01T10:04:00.5Z"));
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(pod.metadata.name.as_deref(), Some("job-0f0f0-2"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("ns"));
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(spec.termination_grace_period_seconds, Some(30), "Kubernetes' default grace fits the budget");
        assert_eq!(
            spec.active_deadline_seconds,
            Some(328),
            "remaining budget minus the grace and the margin, rounded up"
        );
        assert_eq!(created_at(&pod), Some(ts("2026-01-01T10:04:00.5Z")), "to the nanosecond");
        let labels = pod.labels();
        assert_eq!(labels["app"], "demo", "user labels kept");
        assert_eq!(labels[naming::LABEL_ATTEMPT], "2");
        assert_eq!(labels[naming::LABEL_TASK], "job");
        assert_eq!(labels[naming::LABEL_MANAGED_BY], "podtask");
        assert_eq!(pod.annotations()["kwok.podtask.dev/scenario"], "succeed", "user annotations kept");
        assert_eq!(first_start_of(&pod), Some(start));
        let owner = &pod.owner_references()[0];
        assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("PodTask", "job"));
        assert_eq!((owner.controller, owner.block_owner_deletion), (Some(true), Some(true)));
        assert!(is_owned_by(&pod, "0f0f0f0f-1111-2222-3333-444444444444"));
        assert!(!is_owned_by(&pod, "someone-else"));
        assert_eq!(attempt_of(&pod), Some(2));
    }

    #[test]
    fn a_huge_budget_is_capped_at_the_apis_maximum() {
        let t = task(serde_json::json!({"executionTimeout": "999999h"}));
        let now = ts("2026-01-01T10:00:00Z");
        let pod = build(&t, 1, now, Some(crate::jiff::Timestamp::MAX), now);
        assert_eq!(pod.spec.unwrap().active_deadline_seconds, Some(i64::from(i32::MAX)));
    }

    #[test]
    fn template_active_deadline_is_only_ever_shortened() {
        let t = task(serde_json::json!({"template": {"spec": {"activeDeadlineSeconds": 60, "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox"}]}}}));
        let now = ts("2026-01-01T10:00:00Z");
        let long = build(&t, 1, now, Some(ts("2026-01-01T11:00:00Z")), now);
        assert_eq!(long.spec.unwrap().active_deadline_seconds, Some(60));
        let short = build(&t, 1, now, Some(ts("2026-01-01T10:00:30Z")), now).spec.unwrap();
        assert_eq!(short.termination_grace_period_seconds, Some(3), "a tenth of what is left");
        assert_eq!(short.active_deadline_seconds, Some(25), "gone by the deadline, grace and margin included");
        let unbounded = build(&t, 1, now, None, now);
        assert_eq!(unbounded.spec.unwrap().active_deadline_seconds, Some(60));
    }

    #[test]
    fn a_failed_containers_last_lines_become_its_message_unless_the_template_says_otherwise() {
        let t = task(serde_json::json!({"template": {"spec": {"restartPolicy": "Never",
            "initContainers": [{"name": "setup", "image": "busybox"}],
            "containers": [{"name": "main", "image": "busybox"},
                {"name": "own", "image": "busybox", "terminationMessagePolicy": "File"}]}}}));
        let now = ts("2026-01-01T10:00:00Z");
        let spec = build(&t, 1, now, None, now).spec.unwrap();
        let policy = |c: &k8s_openapi::api::core::v1::Container| c.termination_message_policy.clone();
        assert_eq!(policy(&spec.containers[0]).as_deref(), Some("FallbackToLogsOnError"));
        assert_eq!(policy(&spec.containers[1]).as_deref(), Some("File"), "the template's choice is kept");
        assert_eq!(policy(&spec.init_containers.unwrap()[0]).as_deref(), Some("FallbackToLogsOnError"));
    }
}
