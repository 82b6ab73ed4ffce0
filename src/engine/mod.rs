//! The pure decision core: what was observed in, a plan out. No client, no clock, no I/O.
//!
//! `decide` is the whole operator's judgement; the reconciler only reads, calls it, and carries out the plan.

pub mod classify;
pub mod create_error;
pub mod deadline;
mod decide;
pub mod failure_policy;
pub mod naming;
pub mod pod;
#[cfg(test)]
mod properties;
pub mod retry;
pub mod status;
#[cfg(test)]
pub(crate) mod testing;
pub mod trust;

use std::time::Duration as StdDuration;

use crate::jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;

pub use decide::decide;

use crate::crd::{PodTaskStatus, Reason};
use create_error::CreateError;

/// Operator-wide defaults that shape decisions (from flags).
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Startup timeout for tasks that don't set `spec.startupTimeout`.
    pub startup_timeout: StdDuration,
    /// How long a CreateContainerConfigError (missing Secret/ConfigMap) may last before the task fails.
    pub config_error_grace: StdDuration,
    /// The least wait before retrying an attempt that saw registry rate limiting.
    pub min_rate_limit_backoff: StdDuration,
    /// How long a pod reported as created (or starting normally) must have been running, or been waiting for
    /// something other than a node or its containers' creation, before podtask reports it: a short task is over
    /// before that, and a successful one takes two status writes (PodCreated, Succeeded), four API writes in all
    /// with its pod's create and delete.
    pub status_settle: StdDuration,
    /// How long after its creation a pod that is starting normally (`Scheduling`, `ContainerCreating`) is first
    /// reported as such; until then the status says `PodCreated`.
    pub quiet_progress: StdDuration,
    /// Wait before retrying a pod create refused by a ResourceQuota or by the operator's own RBAC.
    pub create_retry: StdDuration,
}

impl Config {
    /// The defaults (also the `podtask run` flags' defaults).
    pub const DEFAULT: Self = Self {
        startup_timeout: StdDuration::from_secs(300),
        config_error_grace: StdDuration::from_secs(30),
        min_rate_limit_backoff: StdDuration::from_secs(60),
        status_settle: StdDuration::from_secs(2),
        quiet_progress: StdDuration::from_secs(10),
        create_retry: StdDuration::from_secs(15),
    };
}

impl Default for Config {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What the engine saw: the task's pods (any attempt, owned by the task), whether they were just read fresh
/// from the API server rather than from the cache, and whether the API server just refused the next pod.
#[derive(Clone, Copy, Debug)]
pub struct Observed<'a> {
    pub pods: &'a [Pod],
    pub now: Timestamp,
    pub fresh: bool,
    pub create_refused: Option<&'a CreateError>,
}

impl<'a> Observed<'a> {
    /// The watch cache's view at `now`.
    pub fn cached(pods: &'a [Pod], now: Timestamp) -> Self {
        Self { pods, now, fresh: false, create_refused: None }
    }
}

/// The engine's answer: one or the other, never both.
#[derive(Clone, Debug, PartialEq)]
pub enum Next {
    /// A verdict is due on this pod (a timeout, the deadline, a missing pod): read it from the API server, not
    /// the cache, and decide again.
    ReadFresh(String),
    /// The deadline passed and the cache shows this pod still running: delete it on condition that it is still
    /// the version the cache saw (its UID and resourceVersion as preconditions), and decide again on that view,
    /// confirmed; if the API server refuses (the pod changed: it may have finished in time), read it fresh. One
    /// request where a read and a delete would be two, when deadlines pile up after an API outage.
    StopFirst(PodDeletion),
    /// Carry out this plan.
    Act(Box<Plan>),
}

/// What to do. The operator applies it in order: create, status, deletes, task deletion, events; then requeues.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub create: Option<Pod>,
    /// The status the task should have, when it differs from the current one (None: nothing to write).
    pub status: Option<PodTaskStatus>,
    pub delete: Vec<PodDeletion>,
    /// Pods that `cleanup` keeps but whose remaining containers (a sidecar) must stop: their
    /// activeDeadlineSeconds is lowered, and the kubelet stops them.
    pub stop: Vec<PodStop>,
    /// Delete the PodTask itself (ttlAfterFinished elapsed).
    pub delete_task: bool,
    pub events: Vec<Event>,
    /// Look again at this instant (deadline, startup deadline, next attempt, TTL), even if nothing changes.
    pub requeue_at: Option<Timestamp>,
    /// Set when a live pod is deleted because its deadline came: when stopping it was due (the deadline minus the
    /// pod's grace period), so the shell can measure its own enforcement lag.
    pub deadline_stop: Option<Timestamp>,
}

/// A pod to delete, with its UID as a precondition so a namesake is never hit (and, for `Next::StopFirst`, its
/// resourceVersion, so a pod that changed since the cache saw it is not hit either).
#[derive(Clone, Debug, PartialEq)]
pub struct PodDeletion {
    pub name: String,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

impl PodDeletion {
    /// The pod, whatever its version.
    pub fn of(pod: &Pod) -> Self {
        use kube::ResourceExt;
        Self { name: pod.name_any(), uid: pod.uid(), resource_version: None }
    }
}

/// A kept pod to stop: its activeDeadlineSeconds lowered to `active_deadline_seconds` (the API server lets it
/// only shrink), with its UID as a precondition.
#[derive(Clone, Debug, PartialEq)]
pub struct PodStop {
    pub name: String,
    pub uid: Option<String>,
    pub active_deadline_seconds: i64,
}

/// A Kubernetes Event about the task.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub warning: bool,
    pub reason: String,
    pub note: String,
    pub action: &'static str,
    /// The pod the event is about, if any (also keeps each attempt's events apart in `kubectl describe`).
    pub pod: Option<String>,
}

impl Event {
    fn about(reason: Reason, warning: bool, note: String, action: &'static str, pod: Option<String>) -> Self {
        Self { warning, reason: reason.to_string(), note, action, pod }
    }
}
