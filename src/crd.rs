//! The `PodTask` custom resource: what users write (spec) and what podtask reports (status).
//!
//! Doc comments on these fields are what `kubectl explain podtask.spec...` prints: they are written for users.

use k8s_openapi::{
    api::core::v1::PodTemplateSpec,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
};
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{duration::Duration, engine::status, time_spec::TimeSpec};

/// Runs one pod to completion, reliably: an absolute deadline that is never extended, a startup timeout per
/// attempt, image-pull trouble treated as a retryable timeout rather than a hard failure, and no pod left behind.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
// The printer columns repeat `type_ = "string"`: clippy reads them as one attribute given twice.
#[allow(clippy::duplicated_attributes)]
#[kube(
    group = "podtask.dev",
    version = "v1alpha1",
    kind = "PodTask",
    plural = "podtasks",
    shortname = "pt",
    namespaced,
    status = "PodTaskStatus",
    derive = "PartialEq",
    doc = "A PodTask runs one pod to completion, with an absolute deadline, a startup timeout per attempt and retries for infrastructure failures.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Attempt", type_ = "integer", json_path = ".status.attempt"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.reason"),
    printcolumn(name = "Deadline", type_ = "string", format = "date-time", json_path = ".status.deadline"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct PodTaskSpec {
    /// The pod to run: a full pod template (metadata and spec), as in a Job. restartPolicy must be Never or
    /// left out; podtask sets Never and retries through spec.retry.
    // Shared, not inline: a template is a large struct even when empty, and the watch cache holds every task
    // with one empty template in common (controller::trim_task).
    pub template: std::sync::Arc<PodTemplateSpec>,

    /// Budget for the whole task, all attempts and backoff included, counted from the first attempt to launch
    /// its pod: the first pod create request, whether the API server accepted it or refused it (a full
    /// ResourceQuota, say) (e.g. 30m, 1h30m). When it runs out the pod is deleted and the task fails with
    /// DeadlineExceeded. Restarts of the operator never extend it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_timeout: Option<Duration>,

    /// Absolute time (RFC 3339, e.g. 2026-11-22T18:00:00Z) by which the task must be over. With
    /// executionTimeout too, the earlier wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<TimeSpec>,

    /// Per attempt: how long a pod may take from creation until it has started (scheduling, image pulls,
    /// container creation). Defaults to the operator's --default-startup-timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_timeout: Option<Duration>,

    /// How failed attempts are retried. By default infrastructure failures (image pull timeout, startup timeout,
    /// unschedulable, evicted, pod lost) are retried twice with backoff; a non-zero exit only when listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,

    /// What happens to a pod that finished: Delete (default), DeleteSucceeded (keep failed pods for
    /// debugging), or Keep. A pod that timed out or passed the deadline is always deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleanup: Option<CleanupPolicy>,

    /// Delete the PodTask itself this long after it finished (e.g. 1h). Unset: keep it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_after_finished: Option<Duration>,

    /// Rules, by exit code or pod condition, for what a failed attempt means: fail the task now, retry it,
    /// retry it without counting against retry.limit, or count it as success. The first matching rule wins;
    /// with no match, spec.retry decides. As a Job's podFailurePolicy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_failure_policy: Option<PodFailurePolicy>,

    /// The containers whose ends decide the task (by name, from template.spec.containers). Unset: every
    /// container the template lists. The task ends when these have all terminated: it succeeds when they all
    /// exited 0, and otherwise fails with the first non-zero exit code among them. Containers that admission
    /// adds to the pod (a service mesh's proxy, say) never decide; list only your main container here when the
    /// template itself carries a long-running helper (a log shipper, a database proxy). Whatever still runs in
    /// the pod when the outcome is known is stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 20), inner(length(min = 1, max = 63)))]
    pub deciding_containers: Option<Vec<String>>,
}

/// Rules for failed attempts, evaluated in order against each attempt whose pod failed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodFailurePolicy {
    /// The rules, first match wins (at most 20).
    #[schemars(length(max = 20))]
    pub rules: Vec<PodFailurePolicyRule>,
}

/// One rule: a requirement on the failed pod (its exit codes, or its conditions) and what to do when it holds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "(has(self.onExitCodes) ? 1 : 0) + (has(self.onPodConditions) ? 1 : 0) + (has(self.onTerminationReasons) ? 1 : 0) == 1",
    "message": "set exactly one of onExitCodes, onPodConditions or onTerminationReasons in each rule"
}]))]
pub struct PodFailurePolicyRule {
    /// Fail (the task fails now, no retry), Retry (counts against retry.limit, whatever retry.reasons says),
    /// RetryWithoutCounting (does not count against retry.limit; still bounded by the deadline and at most 100
    /// such retries), or Succeed (the task succeeds, as if the pod had exited 0).
    pub action: PodFailurePolicyAction,
    /// Match on the exit codes of the pod's containers (those that exited non-zero).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_exit_codes: Option<OnExitCodes>,
    /// Match when the pod has any of these conditions (e.g. DisruptionTarget: preempted, evicted or drained).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 20))]
    pub on_pod_conditions: Option<Vec<OnPodCondition>>,
    /// Match on why a deciding container (or an init container) ended, as the kubelet reports it: OOMKilled
    /// (it ran out of memory), Error, ContainerCannotRun, StartError, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_termination_reasons: Option<OnTerminationReasons>,
}

/// A requirement on why the pod's containers terminated, e.g. `{values: [OOMKilled]}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OnTerminationReasons {
    /// Only this container. Unset: any deciding container or init container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub container_name: Option<String>,
    /// The termination reasons (1 to 20), e.g. OOMKilled.
    #[schemars(length(min = 1, max = 20), extend("x-kubernetes-list-type" = "set"))]
    pub values: Vec<String>,
}

/// What a matching rule does with the failed attempt.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, strum::Display)]
pub enum PodFailurePolicyAction {
    Fail,
    Retry,
    RetryWithoutCounting,
    Succeed,
}

/// A requirement on the exit codes of the pod's containers that exited non-zero.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.operator != 'In' || !self.values.exists(v, v == 0)",
    "message": "exit code 0 means the pod succeeded: remove 0 from values when the operator is In"
}]))]
pub struct OnExitCodes {
    /// Only this container's exit code (init containers included). Unset: any container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    /// In: a container's exit code is one of values. NotIn: a container's non-zero exit code is not one of them.
    pub operator: ExitCodeOperator,
    /// The exit codes (1 to 255 distinct values).
    #[schemars(length(min = 1, max = 255), extend("x-kubernetes-list-type" = "set"))]
    pub values: Vec<i32>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ExitCodeOperator {
    In,
    NotIn,
}

/// A pod condition, e.g. `{type: DisruptionTarget}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OnPodCondition {
    /// The condition type, e.g. DisruptionTarget.
    #[serde(rename = "type")]
    #[schemars(length(min = 1, max = 316))]
    pub type_: String,
    /// True (default), False or Unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ConditionStatus>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema, strum::Display)]
pub enum ConditionStatus {
    #[default]
    True,
    False,
    Unknown,
}

/// How failed attempts are retried.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    /// Extra attempts after the first (0 means run once). Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_RETRY_LIMIT))]
    pub limit: Option<u32>,

    /// Wait between attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,

    /// Which attempt outcomes are retried. Default: ImagePullTimeout, StartupTimeout, Unschedulable, Evicted,
    /// PodLost. Add PodFailed to retry containers that exit non-zero, OOMKilled to retry out-of-memory kills.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 7))]
    pub reasons: Option<Vec<RetryReason>>,
}

/// The most extra attempts `retry.limit` may ask for.
pub const MAX_RETRY_LIMIT: u32 = 100;

/// Exponential backoff between attempts: initial × factor^(n-1), capped at max.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Backoff {
    /// Wait before the second attempt. Default 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial: Option<Duration>,
    /// Multiplier for each further attempt, 1 to 10. Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10))]
    pub factor: Option<u32>,
    /// Longest wait between attempts. Default 5m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Duration>,
}

/// An attempt outcome that may be retried.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum RetryReason {
    ImagePullTimeout,
    StartupTimeout,
    Unschedulable,
    Evicted,
    PodLost,
    PodFailed,
    OOMKilled,
}

/// What happens to a finished pod.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum CleanupPolicy {
    /// Delete every finished pod.
    #[default]
    Delete,
    /// Delete pods that succeeded; keep failed ones for `kubectl logs`.
    DeleteSucceeded,
    /// Keep finished pods (they are still deleted with the PodTask).
    Keep,
}

/// Where a task is in its life.
#[derive(
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    JsonSchema,
    strum::IntoStaticStr,
    strum::EnumIter,
)]
pub enum Phase {
    /// No pod yet, or waiting to start the next attempt.
    #[default]
    Pending,
    /// A pod exists and has not started yet (scheduling, pulling images, creating containers).
    Starting,
    Running,
    Succeeded,
    Failed,
}

impl Phase {
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed)
    }
}

/// Machine-readable reason for the current status or for how an attempt ended.
#[derive(
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    JsonSchema,
    strum::Display,
    strum::IntoStaticStr,
    strum::EnumIter,
)]
pub enum Reason {
    // In progress.
    /// The pod was created and has not reported anything yet.
    PodCreated,
    /// Waiting for the scheduler.
    Scheduling,
    /// The scheduler cannot place the pod (its message says why).
    Unschedulable,
    /// The kubelet is creating containers or running init containers.
    ContainerCreating,
    /// Image pulls are failing and being retried by the kubelet.
    ImagePullBackOff,
    /// The registry is rate-limiting or failing (429, 5xx, timeouts); a retry waits longer.
    ImagePullRateLimited,
    /// A Secret or ConfigMap the pod needs is missing; fails after the operator's grace period.
    CreateContainerConfigError,
    /// The container runtime failed to create a container; retried until the startup timeout.
    CreateContainerError,
    Running,
    /// Waiting before the next attempt (see status.nextAttemptTime).
    BackingOff,
    /// A ResourceQuota refused the pod; podtask retries the create.
    QuotaExceeded,
    /// The pod's node stopped answering: the pod may still be running there, or not; its state is unknown.
    NodeUnreachable,

    // Outcomes.
    Completed,
    /// The execution timeout or absolute deadline passed.
    DeadlineExceeded,
    /// The pod's images could not be pulled before the startup timeout.
    ImagePullTimeout,
    /// The pod did not start before the startup timeout.
    StartupTimeout,
    /// The image reference cannot be parsed.
    InvalidImageName,
    /// imagePullPolicy Never and the image is not on the node.
    ErrImageNeverPull,
    /// A container exited non-zero.
    PodFailed,
    /// A container of the task was killed for exceeding its memory limit (exit code 137).
    OOMKilled,
    /// The pod was evicted or preempted.
    Evicted,
    /// The pod disappeared or was deleted by someone else.
    PodLost,
    /// The API server rejected the pod as invalid.
    InvalidSpec,
    /// Admission (e.g. Pod Security) refused the pod.
    Forbidden,
    /// A pod with podtask's name exists and belongs to something else.
    PodConflict,
}

/// Status written by podtask. Never written by users.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodTaskStatus {
    /// Pending, Starting, Running, Succeeded or Failed.
    #[serde(default)]
    pub phase: Phase,
    /// Why the task is in this phase, machine-readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// Why the task is in this phase, for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = status::MESSAGE_MAX))]
    pub message: Option<String>,
    /// The current (or last) attempt, starting at 1. 0 before the first pod.
    #[serde(default)]
    #[schemars(range(max = status::MAX_ATTEMPTS))]
    pub attempt: u32,
    /// The current (or last) attempt's pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = status::POD_NAME_MAX))]
    pub pod_name: Option<String>,
    /// When the first attempt launched; the execution budget counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// The absolute deadline: computed once, never extended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Time>,
    /// When the current attempt must have started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_deadline: Option<Time>,
    /// When the next attempt starts, while backing off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_time: Option<Time>,
    /// When the task finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Exit code of the last attempt's main container, once it terminated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The last attempt's termination message (first 1024 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = status::DETAIL_MAX))]
    pub termination_message: Option<String>,
    /// Attempts retried by a RetryWithoutCounting rule of podFailurePolicy (they do not count against
    /// retry.limit).
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(max = status::MAX_UNCOUNTED_ATTEMPTS))]
    pub uncounted_attempts: u32,
    /// The most recent attempts (at most 20), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = status::HISTORY_LIMIT))]
    pub attempts: Vec<AttemptRecord>,
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Complete / Failed (as Jobs have, for `kubectl wait`), Reconciling / Stalled (kstatus, for Flux and kpt).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = status::CONDITIONS_MAX))]
    pub conditions: Vec<Condition>,
}

/// One finished attempt.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptRecord {
    #[schemars(range(max = status::MAX_ATTEMPTS))]
    pub attempt: u32,
    #[schemars(length(max = status::POD_NAME_MAX))]
    pub pod_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Time>,
    /// Succeeded or Failed.
    pub outcome: Outcome,
    pub reason: Reason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = status::DETAIL_MAX))]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The podFailurePolicy rule that decided this attempt's fate, e.g. `rules[1]: exit code 75 In [75] ->
    /// RetryWithoutCounting`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = status::DETAIL_MAX))]
    pub matched_rule: Option<String>,
    /// For an attempt stopped at the deadline: when podtask asked its pod to stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_requested_time: Option<Time>,
    /// For an attempt stopped at the deadline: when podtask saw its pod gone (or finished). Unset while the stop
    /// is under way: until then the pod may still be running (on a node that stopped answering, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_gone_time: Option<Time>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Outcome {
    Succeeded,
    Failed,
}

/// The CustomResourceDefinition as `podtask crd` prints it and `crds/` holds it.
///
/// The pod template keeps its full schema (the API server validates it at apply time) but not the Kubernetes
/// documentation of every pod field: that alone would push the CRD past the 256 KiB that client-side
/// `kubectl apply` can store, and `kubectl explain pod.spec` already has it.
pub fn definition() -> CustomResourceDefinition {
    let mut crd = PodTask::crd();
    for version in &mut crd.spec.versions {
        if let Some(root) = version.schema.as_mut().and_then(|s| s.open_api_v3_schema.as_mut()) {
            let mut value = serde_json::to_value(&*root).expect("schema serializes");
            kubernetes_formats(&mut value);
            if let Some(status) = value.pointer_mut("/properties/status") {
                bound_status(status);
            }
            *root = serde_json::from_value(value).expect("schema deserializes");
        }
        let template = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
            .and_then(|root| root.properties.as_mut()?.get_mut("spec"))
            .and_then(|spec| spec.properties.as_mut()?.get_mut("template"));
        if let Some(template) = template {
            let keep = template.description.take();
            let mut value = serde_json::to_value(&*template).expect("schema serializes");
            strip_descriptions(&mut value);
            strip_date_time_formats(&mut value);
            template_bounds(&mut value);
            *template = serde_json::from_value(value).expect("schema deserializes");
            template.description = keep;
        }
    }
    crd
}

/// schemars writes `format: uint32` for unsigned fields, which Kubernetes does not know; `minimum: 0` already
/// says it.
fn kubernetes_formats(v: &mut serde_json::Value) {
    for_each_object(v, &mut |map| {
        if map.get("format").and_then(serde_json::Value::as_str) == Some("uint32") {
            map.insert("format".into(), "int32".into());
        }
    });
}

/// Bounds in the status schema that its types cannot carry: every time (podtask's own and the conditions') to
/// what podtask writes and can read back (`status::TIME_PATTERN`), and each condition's strings to what podtask
/// writes. Plain OpenAPI bounds, no CEL: the API server checks them on every status write at little cost.
fn bound_status(status: &mut serde_json::Value) {
    for_each_object(status, &mut |map| {
        if map.get("format").and_then(serde_json::Value::as_str) == Some("date-time") {
            map.insert("pattern".into(), status::TIME_PATTERN.into());
        }
    });
    if let Some(condition) = status.pointer_mut("/properties/conditions/items/properties") {
        for (field, max) in [("type", 316), ("reason", 1024), ("message", status::MESSAGE_MAX)] {
            if let Some(field) = condition.get_mut(field) {
                field["maxLength"] = max.into();
            }
        }
        if let Some(value) = condition.get_mut("status") {
            value["enum"] = serde_json::json!(["True", "False", "Unknown"]);
        }
        if let Some(generation) = condition.get_mut("observedGeneration") {
            generation["minimum"] = 0.into();
        }
    }
}

/// What podtask requires of the pod template, as plain OpenAPI bounds: a pod spec with at least one container,
/// restartPolicy Never or left out. The API server evaluates every CEL rule of a PodTask on each write, status
/// writes included; as rules on the spec reading `self.template.spec...` they cost a fifth of the API server's CPU
/// for a status write (each step walks the pod template's schema), as bounds next to nothing.
fn template_bounds(template: &mut serde_json::Value) {
    push_required(template, "spec");
    if let Some(containers) = template.pointer_mut("/properties/spec/properties/containers") {
        containers["minItems"] = 1.into();
    }
    if let Some(policy) = template.pointer_mut("/properties/spec/properties/restartPolicy") {
        policy["enum"] = serde_json::json!(["Never"]);
    }
}

fn push_required(schema: &mut serde_json::Value, field: &str) {
    if let Some(map) = schema.as_object_mut() {
        let required = map.entry("required").or_insert_with(|| serde_json::json!([]));
        if let Some(list) = required.as_array_mut().filter(|l| !l.iter().any(|f| f == field)) {
            list.push(field.into());
        }
    }
}

fn strip_descriptions(v: &mut serde_json::Value) {
    for_each_object(v, &mut |map| {
        if map.get("description").is_some_and(serde_json::Value::is_string) {
            map.remove("description");
        }
    });
}

/// The pod template's metadata timestamps are ignored when a pod is created, but with `format: date-time` the API
/// server's CEL parses them when it compares the spec for the immutability rule: a value the schema let through
/// but CEL cannot parse (e.g. a lowercase `t`) would then refuse every later write to the PodTask, status
/// included. Without the format, the rule compares strings.
fn strip_date_time_formats(v: &mut serde_json::Value) {
    for_each_object(v, &mut |map| {
        if map.get("format").and_then(serde_json::Value::as_str) == Some("date-time") {
            map.remove("format");
        }
    });
}

/// Visit every JSON object in a schema, outermost first.
fn for_each_object(v: &mut serde_json::Value, f: &mut impl FnMut(&mut serde_json::Map<String, serde_json::Value>)) {
    match v {
        serde_json::Value::Object(map) => {
            f(map);
            map.values_mut().for_each(|child| for_each_object(child, f));
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|child| for_each_object(child, f)),
        _ => {}
    }
}

/// The CRD as YAML, with a header saying where it came from, followed by the admission policy that keeps a
/// PodTask's spec as it was created.
pub fn definition_yaml() -> String {
    let body = serde_norway::to_string(&definition()).expect("a CRD always serializes");
    format!(
        "# Generated by `podtask crd`; do not edit. Regenerate: cargo run -- crd > crds/podtasks.podtask.dev.yaml\n\
         {body}---\n{SPEC_POLICY}"
    )
}

/// The name of the ValidatingAdmissionPolicy (and its binding) that refuses a change of a PodTask's spec.
pub const SPEC_POLICY_NAME: &str = "podtasks.podtask.dev-immutable-spec";

/// A PodTask's spec cannot change once it exists. A rule of the CRD's schema would say so too, but the API server
/// evaluates such a rule on every write, status writes included (two per task, the deep comparison of a whole pod
/// template each time: about 5 % of the API server's CPU in a 1,000-task run); this policy matches updates of the
/// PodTask itself only, never of its status subresource. Its matchConstraints are one atomic value, so the API
/// server's defaults are written out: otherwise the stored value differs from the applied one and a second
/// server-side apply by another manager (Helm, Argo CD, a person with kubectl) conflicts on it.
const SPEC_POLICY: &str = r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: podtasks.podtask.dev-immutable-spec
spec:
  failurePolicy: Fail
  matchConstraints:
    matchPolicy: Equivalent
    namespaceSelector: {}
    objectSelector: {}
    resourceRules:
    - apiGroups:
      - podtask.dev
      apiVersions:
      - '*'
      operations:
      - UPDATE
      resources:
      - podtasks
      scope: '*'
  validations:
  - expression: object.spec == oldObject.spec
    message: 'spec cannot change once the PodTask exists (its pod may already be running, as with a Job''s template): delete the PodTask and create it again to run something else'
    reason: Invalid
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: podtasks.podtask.dev-immutable-spec
spec:
  policyName: podtasks.podtask.dev-immutable-spec
  validationActions:
  - Deny
"#;
