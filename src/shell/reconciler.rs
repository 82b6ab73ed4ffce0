//! The reconciler: read (cache first, fresh where the contract demands), ask the core, carry out the plan.
//! No business rules live here.

use std::{sync::Arc, time::Duration as StdDuration};

use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, PostParams, Preconditions},
    runtime::{
        controller::Action,
        events::{Event as KubeEvent, EventType},
    },
};
use tracing::{debug, info, warn};

use super::{context::Context, error::Error};
use crate::{
    core::{self, Observed, Plan, create_error::CreateError, pod::is_owned_by},
    crd::{Phase, PodTask, PodTaskStatus, Reason},
    jiff::Timestamp,
};

/// Wait after a write lost a race with a newer version of the task (the watch brings that version shortly).
const STALE_RETRY: StdDuration = StdDuration::from_millis(250);
/// Wait after the first API error; it doubles with each further failure in a row, up to ERROR_RETRY_MAX.
const ERROR_RETRY: StdDuration = StdDuration::from_secs(1);
const ERROR_RETRY_MAX: StdDuration = StdDuration::from_secs(300);

/// Backoff after the `n`th consecutive failure (n ≥ 1): 1s, 2s, 4s, … 5m. Throttling (429) and an unwell API
/// server (5xx) are answered with growing waits, never a hot loop.
fn error_backoff(n: u32) -> StdDuration {
    ERROR_RETRY.saturating_mul(1 << n.saturating_sub(1).min(16)).min(ERROR_RETRY_MAX)
}

/// Reconcile one PodTask.
pub async fn reconcile(task: Arc<PodTask>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    ctx.metrics.reconciles.inc();
    let result = reconcile_inner(&task, &ctx).await;
    ctx.metrics.reconcile_duration.observe(started.elapsed().as_secs_f64());
    if result.is_ok() {
        ctx.failures.clear(&key(&task));
    }
    result
}

/// After a failed reconcile: look again later, never in a hot loop.
pub fn error_policy(task: Arc<PodTask>, error: &Error, ctx: Arc<Context>) -> Action {
    match error {
        Error::Stale(_) => {
            debug!(task = %key(&task), "stale read; retrying");
            ctx.metrics.error("stale");
            Action::requeue(STALE_RETRY)
        }
        Error::Kube(e) => {
            let wait = error_backoff(ctx.failures.record(&key(&task)));
            warn!(task = %key(&task), error = %e, "reconcile failed; retrying in {wait:?}");
            ctx.metrics.error("api");
            Action::requeue(wait)
        }
    }
}

async fn reconcile_inner(task: &PodTask, ctx: &Context) -> Result<Action, Error> {
    let ns = task.namespace().unwrap_or_default();
    let uid = task.uid().unwrap_or_default();
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let mut pods: Vec<Pod> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()) && is_owned_by(p, &uid))
        .map(|p| (*p).clone())
        .collect();

    let now = ctx.now();
    let mut plan = core::decide(task, Observed { pods: &pods, now, fresh: false }, &ctx.config);
    if let Some(name) = plan.verify.take() {
        // A verdict is due (timeout, deadline, missing pod): never on the cache's word.
        let fresh = pods_api.get_opt(&name).await?;
        pods.retain(|p| p.name_any() != name);
        pods.extend(fresh.filter(|p| is_owned_by(p, &uid)));
        plan = core::decide(task, Observed { pods: &pods, now: ctx.now(), fresh: true }, &ctx.config);
        if plan.verify.is_some() {
            return Ok(Action::requeue(STALE_RETRY));
        }
    }

    if let Some(pod) = plan.create.take() {
        match create_pod(&pods_api, &pod, &uid, ctx).await? {
            Created::Yes => {}
            Created::Adopted(existing) => {
                // Ours already (created before a restart, or the cache lagged): decide again with it in view.
                pods.retain(|p| p.name_any() != existing.name_any());
                pods.push(*existing);
                plan = core::decide(task, Observed { pods: &pods, now: ctx.now(), fresh: true }, &ctx.config);
                plan.create = None;
                plan.verify = None;
            }
            Created::Refused(error) => {
                plan = core::decide_create_failure(task, &error, ctx.now(), &ctx.config);
            }
        }
    }
    apply(task, plan, &pods_api, ctx).await
}

enum Created {
    Yes,
    Adopted(Box<Pod>),
    Refused(CreateError),
}

async fn create_pod(api: &Api<Pod>, pod: &Pod, task_uid: &str, ctx: &Context) -> Result<Created, Error> {
    let name = pod.name_any();
    match api.create(&PostParams::default(), pod).await {
        Ok(_) => {
            ctx.metrics.write("pod_create");
            ctx.metrics.attempts_started.inc();
            info!(pod = %name, attempt = core::pod::attempt_of(pod), "created pod");
            Ok(Created::Yes)
        }
        Err(kube::Error::Api(s)) if s.code == 409 => match api.get_opt(&name).await? {
            Some(existing) if is_owned_by(&existing, task_uid) => {
                info!(pod = %name, "pod already exists and is ours: adopting it");
                Ok(Created::Adopted(Box::new(existing)))
            }
            Some(_) => Ok(Created::Refused(CreateError::Conflict(format!(
                "pod {name} already exists and is not owned by this PodTask; podtask never touches it. Delete or rename it, then recreate the PodTask"
            )))),
            // Gone again between create and get (being deleted): try later.
            None => Ok(Created::Refused(CreateError::Transient(format!("pod {name} is being deleted")))),
        },
        Err(kube::Error::Api(s)) => {
            let error = core::create_error::classify(s.code, &s.reason, &s.message);
            warn!(pod = %name, code = s.code, reason = %s.reason, message = %s.message, "pod create refused");
            Ok(Created::Refused(error))
        }
        Err(e) => Err(e.into()),
    }
}

/// Carry out a plan: status first (with the read's resourceVersion, so a stale cache can't overwrite newer
/// facts), then deletes, then events.
async fn apply(task: &PodTask, plan: Plan, pods_api: &Api<Pod>, ctx: &Context) -> Result<Action, Error> {
    let old = task.status.clone().unwrap_or_default();
    if plan.status != old {
        write_status(task, &plan.status, ctx).await?;
        observe_transition(task, &old, &plan.status, ctx);
    }
    for d in &plan.delete {
        let params = DeleteParams {
            preconditions: Some(Preconditions { uid: d.uid.clone(), resource_version: None }),
            ..Default::default()
        };
        match pods_api.delete(&d.name, &params).await {
            Ok(_) => {
                ctx.metrics.write("pod_delete");
                info!(task = %key(task), pod = %d.name, "deleted pod");
            }
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    if plan.status.reason == Some(Reason::DeadlineExceeded)
        && old.reason != Some(Reason::DeadlineExceeded)
        && let Some(deadline) = plan.status.deadline.as_ref()
    {
        let lag = ctx.now().duration_since(deadline.0).as_secs_f64().max(0.0);
        ctx.metrics.deadline_lag.observe(lag);
        info!(task = %key(task), lag_seconds = lag, "deadline enforced");
    }
    if plan.delete_task {
        let api: Api<PodTask> = Api::namespaced(ctx.client.clone(), &task.namespace().unwrap_or_default());
        let params = DeleteParams {
            preconditions: Some(Preconditions { uid: task.uid(), resource_version: None }),
            ..Default::default()
        };
        match api.delete(&task.name_any(), &params).await {
            Ok(_) => info!(task = %key(task), "ttlAfterFinished elapsed: deleted the PodTask"),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
        ctx.metrics.write("task_delete");
    }
    for e in &plan.events {
        publish(task, e, ctx).await;
    }
    Ok(match plan.requeue_at {
        Some(at) => Action::requeue(until(ctx.now(), at)),
        None => Action::await_change(),
    })
}

async fn write_status(task: &PodTask, status: &PodTaskStatus, ctx: &Context) -> Result<(), Error> {
    let api: Api<PodTask> = Api::namespaced(ctx.client.clone(), &task.namespace().unwrap_or_default());
    let mut updated = task.clone();
    updated.status = Some(status.clone());
    updated.metadata.managed_fields = None;
    match api
        .replace_status(
            &task.name_any(),
            &PostParams { field_manager: Some("podtask".into()), ..Default::default() },
            &updated,
        )
        .await
    {
        Ok(_) => {
            ctx.metrics.write("status");
            debug!(task = %key(task), phase = ?status.phase, reason = ?status.reason, "status written");
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 409 => Err(Error::Stale(key(task))),
        Err(e) => Err(e.into()),
    }
}

fn observe_transition(task: &PodTask, old: &PodTaskStatus, new: &PodTaskStatus, ctx: &Context) {
    if new.phase.is_terminal() && !old.phase.is_terminal() {
        let reason = new.reason.map(|r| r.to_string()).unwrap_or_default();
        ctx.metrics.outcomes.get_or_create(&super::metrics::ReasonLabel { reason: reason.clone() }).inc();
        info!(task = %key(task), attempt = new.attempt, pod = new.pod_name.as_deref().unwrap_or(""), phase = ?new.phase, %reason, message = new.message.as_deref().unwrap_or(""), "task finished");
    } else if (old.phase, old.reason, old.attempt) != (new.phase, new.reason, new.attempt) {
        info!(task = %key(task), attempt = new.attempt, pod = new.pod_name.as_deref().unwrap_or(""), phase = ?new.phase, reason = ?new.reason, "task progressed");
    }
    if new.phase == Phase::Starting && old.reason != new.reason {
        let class = match new.reason {
            Some(Reason::ImagePullBackOff) => Some("backoff"),
            Some(Reason::ImagePullRateLimited) => Some("rate_limited"),
            _ => None,
        };
        if let Some(class) = class {
            ctx.metrics.image_pull_waits.get_or_create(&super::metrics::ClassLabel { class: class.into() }).inc();
        }
    }
}

async fn publish(task: &PodTask, e: &core::Event, ctx: &Context) {
    let event = KubeEvent {
        type_: if e.warning { EventType::Warning } else { EventType::Normal },
        reason: e.reason.clone(),
        note: Some(core::classify::truncate(&e.note, 1000)),
        action: e.action.into(),
        secondary: e.pod.as_ref().map(|name| ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(name.clone()),
            namespace: task.namespace(),
            ..Default::default()
        }),
    };
    if let Err(err) = ctx.recorder.publish(&event, &task.object_ref(&())).await {
        warn!(task = %key(task), error = %err, "could not record event");
    }
}

/// Time from `now` until `at`, zero if past.
fn until(now: Timestamp, at: Timestamp) -> StdDuration {
    StdDuration::try_from(at.duration_since(now)).unwrap_or(StdDuration::ZERO)
}

fn key(task: &PodTask) -> String {
    format!("{}/{}", task.namespace().unwrap_or_default(), task.name_any())
}

#[cfg(test)]
#[test]
fn error_backoff_doubles_and_caps() {
    let waits: Vec<u64> = [1, 2, 3, 4, 9, 10, 50, u32::MAX].into_iter().map(|n| error_backoff(n).as_secs()).collect();
    assert_eq!(waits, [1, 2, 4, 8, 256, 300, 300, 300]);
}

#[cfg(test)]
#[path = "reconciler_tests.rs"]
mod tests;
