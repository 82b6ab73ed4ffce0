//! The reconciler: read (cache first, fresh where the contract demands), ask the core, carry out the plan.
//! No business rules live here.

use std::{sync::Arc, time::Duration as StdDuration};

use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::core::error_boundary::InvalidObject;
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, DynamicObject, PostParams, Preconditions},
};
use serde_json::json;
use tracing::{Instrument, debug, info, info_span, warn};

use super::{
    context::Context,
    error::{Error, short_error},
    metrics::{PullWait, WriteKind},
    permits::Urgency,
    runner::Action,
    watched::{Watched, key_of},
};
use crate::{
    crd::{Phase, PodTask, PodTaskStatus, Reason},
    engine::{self, Next, Observed, Plan, create_error::CreateError, pod::is_owned_by},
    jiff::Timestamp,
};

/// Wait after a write lost a race with a newer version of the task (the watch brings that version shortly).
const STALE_RETRY: StdDuration = StdDuration::from_millis(250);
/// Look again this soon after a failure of the whole API: the reconcile then waits until the API is usable.
const API_TROUBLE_RETRY: StdDuration = StdDuration::from_millis(200);
/// Wait after the first API error; it doubles with each further failure in a row, up to ERROR_RETRY_MAX.
const ERROR_RETRY: StdDuration = StdDuration::from_secs(1);
const ERROR_RETRY_MAX: StdDuration = StdDuration::from_secs(300);

/// Backoff after the `n`th consecutive failure (n ≥ 1): 1s, 2s, 4s, … 5m. Throttling (429) and an unwell API
/// server (5xx) are answered with growing waits, never a hot loop.
fn error_backoff(n: u32) -> StdDuration {
    ERROR_RETRY.saturating_mul(1 << n.saturating_sub(1).min(16)).min(ERROR_RETRY_MAX)
}

/// Reconcile one PodTask.
pub async fn reconcile(object: Arc<Watched>, ctx: Arc<Context>) -> Result<Action, Error> {
    // While the API server is down or throttling, every reconcile waits here (without a task-by-task backoff).
    ctx.api.usable().await;
    let urgency = match &object.0 {
        Ok(task) if engine::deadline::is_due(task, &ctx.pods_of(task), ctx.now()) => Urgency::DeadlineDue,
        _ => Urgency::Routine,
    };
    let key = key_of(&*object);
    if urgency == Urgency::Routine && ctx.own_writes.cache_behind(&key, object.meta().resource_version.as_deref()) {
        // The watch brings podtask's own last write in a moment (and with it, this reconcile again).
        debug!(task = %key, "the cache has not shown podtask's last status write yet");
        return Ok(Action::requeue(STALE_RETRY));
    }
    let _permit = ctx.permits.acquire(urgency).await;
    let _timer = ctx.metrics.time_reconcile();
    let span = info_span!("reconcile", task = %key);
    // Boxed: a reconcile waiting for its permit stays small (every task can be waiting at once).
    let result = match &object.0 {
        Ok(task) => Box::pin(reconcile_task(task, &ctx).instrument(span)).await,
        Err(invalid) => Box::pin(report_unreadable(invalid, &ctx).instrument(span)).await,
    };
    if result.is_ok() || object.meta().deletion_timestamp.is_some() {
        ctx.failures.clear(&key);
    }
    result
}

/// After a failed reconcile: look again later, never in a hot loop.
pub fn error_policy(object: Arc<Watched>, error: &Error, ctx: Arc<Context>) -> Action {
    let task = key_of(&*object);
    ctx.metrics.error(error.kind());
    match error {
        Error::Stale(_) => {
            debug!(%task, "stale read; retrying");
            Action::requeue(STALE_RETRY)
        }
        Error::Kube(e) => {
            if ctx.api.report(e).is_some() {
                // The whole API is in trouble (logged once by ApiHealth); the next reconcile waits for it.
                debug!(%task, error = %short_error(e), "reconcile failed with the API");
                return Action::requeue(API_TROUBLE_RETRY);
            }
            let wait = error_backoff(ctx.failures.record(&task));
            warn!(%task, error = %short_error(e), "reconcile failed; retrying in {wait:?}");
            Action::requeue(wait)
        }
    }
}

/// A PodTask the API server accepted but podtask cannot read (possible under an older, looser CRD, or through the
/// pod template's metadata, which the schema leaves loose): fail it with InvalidSpec naming the problem, stop its
/// running pods, and carry on with every other task.
async fn report_unreadable(invalid: &InvalidObject, ctx: &Context) -> Result<Action, Error> {
    let meta = &invalid.metadata;
    let (ns, name) = (meta.namespace.clone().unwrap_or_default(), meta.name.clone().unwrap_or_default());
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &ns, &kube::discovery::ApiResource::erase::<PodTask>(&()));
    // Within podtask's RBAC: get on podtasks, update on podtasks/status.
    let mut current = api.get(&name).await?;
    let message = format!(
        "podtask cannot read this PodTask: {}. Correct that field (kubectl explain podtask), or delete the PodTask and create it again",
        unreadable_field(&current).unwrap_or_else(|| invalid.error.clone())
    );
    let status = current.data.get("status");
    let already = status.is_some_and(|s| {
        s["reason"] == "InvalidSpec"
            && s["message"] == message.as_str()
            && s["observedGeneration"] == json!(meta.generation)
    });
    if !already {
        // As every time in a status: whole seconds, UTC (what the schema admits).
        let now = json!(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(ctx.now()));
        let condition = |type_: &str| {
            json!({"type": type_, "status": "True", "reason": "InvalidSpec", "message": message,
                   "observedGeneration": meta.generation, "lastTransitionTime": now})
        };
        let mut status = current.data.get("status").and_then(|s| s.as_object()).cloned().unwrap_or_default();
        for (field, value) in [
            ("phase", json!("Failed")),
            ("reason", json!("InvalidSpec")),
            ("message", json!(message)),
            ("observedGeneration", json!(meta.generation)),
            ("completionTime", json!(now)),
            ("conditions", json!([condition("Failed"), condition("Stalled")])),
        ] {
            status.insert(field.into(), value);
        }
        current.data["status"] = status.into();
        current.metadata.managed_fields = None;
        let params = PostParams { field_manager: Some("podtask".into()), ..Default::default() };
        match api.replace_status(&name, &params, &current).await {
            Err(kube::Error::Api(s)) if s.code == 409 => return Err(Error::Stale(format!("{ns}/{name}"))),
            other => other?,
        };
        ctx.metrics.write(WriteKind::Status);
        warn!(error = %invalid.error, "PodTask cannot be read: failed it with InvalidSpec");
        let event = engine::Event {
            warning: true,
            reason: Reason::InvalidSpec.to_string(),
            note: message,
            action: "Reconcile",
            pod: None,
        };
        let regarding = ObjectReference {
            api_version: Some(PodTask::api_version(&()).into()),
            kind: Some(PodTask::kind(&()).into()),
            name: Some(name),
            namespace: Some(ns.clone()),
            uid: meta.uid.clone(),
            resource_version: meta.resource_version.clone(),
            ..Default::default()
        };
        publish_to(&regarding, &event, ctx).await;
    }
    // Its pods must not run on unsupervised.
    let uid = meta.uid.clone().unwrap_or_default();
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    for pod in ctx.pods.owned_by(&ns, &uid).into_iter().map(|(name, p)| p.to_pod(&ns, &name)) {
        let finished = matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"));
        if !finished && pod.metadata.deletion_timestamp.is_none() {
            delete_pod(&pods_api, &engine::PodDeletion::of(&pod), ctx).await?;
        }
    }
    Ok(Action::await_change())
}

/// Which field could not be read, and why (`spec.deadline: ...`).
fn unreadable_field(object: &DynamicObject) -> Option<String> {
    let value = serde_json::to_value(object).ok()?;
    let err = serde_path_to_error::deserialize::<_, PodTask>(value).err()?;
    Some(format!("{}: {}", err.path(), err.inner()))
}

/// One pass: read (the cache) → decide → (read fresh → decide, when the engine asks) → act. A create that the
/// API server refuses, or that finds the pod already there, is one more observation to decide on; so is a task
/// that changed since the cache saw it (read before every launch, so a stale cache never relaunches an attempt).
async fn reconcile_task(cached: &PodTask, ctx: &Context) -> Result<Action, Error> {
    let ns = cached.namespace().unwrap_or_default();
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let mut task = std::borrow::Cow::Borrowed(cached);
    let mut seen = Seen::from_cache(cached, ctx);
    // Each round learns something new (a fresh pod or task, a refusal, an adopted pod), so four always suffice.
    for _ in 0..4 {
        match engine::decide(&task, seen.observed(ctx.now()), &ctx.config) {
            Next::ReadFresh(pod) if !seen.fresh => seen.read_fresh(&pods_api, &pod).await?,
            Next::StopFirst(deletion) if !seen.fresh => seen.stop_first(&pods_api, &deletion, ctx).await?,
            // Still undecided on a fresh read: the watch has not caught up; look again shortly.
            Next::ReadFresh(_) | Next::StopFirst(_) => break,
            Next::Act(plan) if plan.create.is_none() => {
                match act(&task, *plan, &pods_api, ctx).await {
                    // The cache lags (a watch that is slow to come back, after throttling say): nothing is left to
                    // it, not a deadline and not a finished task's cleanup. Decide again on the task as it is now.
                    Err(Error::Stale(_)) if !seen.task_fresh => {
                        seen.task_fresh = true;
                        debug!("the status write lost a race: deciding again on a fresh read");
                        match read_task(&task, ctx).await? {
                            Some(fresh) => task = std::borrow::Cow::Owned(fresh),
                            None => return Ok(Action::await_change()),
                        }
                    }
                    done => return done,
                }
            }
            Next::Act(_) if !seen.task_fresh => {
                seen.task_fresh = true;
                // The cache holds no pod template (controller::trim_task): the pod is built from this read.
                match read_task(&task, ctx).await? {
                    Some(fresh) => {
                        if fresh.resource_version() != task.resource_version() {
                            debug!("the cached task was stale: deciding again on a fresh read before launching");
                        }
                        task = std::borrow::Cow::Owned(fresh);
                    }
                    None => return Ok(Action::await_change()),
                }
            }
            Next::Act(mut plan) => {
                let pod = plan.create.take().expect("a plan with a pod to create");
                match create_pod(&pods_api, &pod, &seen.uid, ctx).await? {
                    Created::Yes => return act(&task, *plan, &pods_api, ctx).await,
                    Created::Adopted(existing) => seen.adopt(*existing),
                    Created::Refused(error) => seen.refused = Some(error),
                }
            }
        }
    }
    Ok(Action::requeue(STALE_RETRY))
}

/// The task as the API server has it now; None if it is gone (or is another object of the same name).
async fn read_task(task: &PodTask, ctx: &Context) -> Result<Option<PodTask>, Error> {
    let api: Api<PodTask> = Api::namespaced(ctx.client.clone(), &task.namespace().unwrap_or_default());
    Ok(api.get_opt(&task.name_any()).await?.filter(|fresh| fresh.uid() == task.uid()))
}

/// What this reconcile has observed so far.
struct Seen {
    uid: String,
    pods: Vec<Pod>,
    /// The pods were read from the API server, not the cache.
    fresh: bool,
    /// The task was read from the API server (before a launch).
    task_fresh: bool,
    refused: Option<CreateError>,
}

impl Seen {
    /// The task's pods from the watch cache.
    fn from_cache(task: &PodTask, ctx: &Context) -> Self {
        Self {
            uid: task.uid().unwrap_or_default(),
            pods: ctx.pods_of(task),
            fresh: false,
            task_fresh: false,
            refused: None,
        }
    }

    fn observed(&self, now: Timestamp) -> Observed<'_> {
        Observed { pods: &self.pods, now, fresh: self.fresh, create_refused: self.refused.as_ref() }
    }

    async fn read_fresh(&mut self, api: &Api<Pod>, name: &str) -> Result<(), Error> {
        let fresh = api.get_opt(name).await?;
        self.pods.retain(|p| p.name_any() != name);
        self.pods.extend(fresh.filter(|p| is_owned_by(p, &self.uid)));
        self.fresh = true;
        Ok(())
    }

    /// The pod's stop is overdue on the cache's word: delete it if it is still the version the cache holds (the
    /// cache's view is then as good as a fresh read); read it fresh if it changed since.
    async fn stop_first(&mut self, api: &Api<Pod>, d: &engine::PodDeletion, ctx: &Context) -> Result<(), Error> {
        match send_delete(api, d, ctx).await? {
            Refused::No => self.fresh = true,
            Refused::Changed => return self.read_fresh(api, &d.name).await,
            Refused::Gone => {
                self.pods.retain(|p| p.name_any() != d.name);
                self.fresh = true;
            }
        }
        Ok(())
    }

    /// Ours already (created before a restart, or the cache lagged): decide again with it in view.
    fn adopt(&mut self, pod: Pod) {
        self.pods.retain(|p| p.name_any() != pod.name_any());
        self.pods.push(pod);
        self.fresh = true;
    }
}

enum Created {
    Yes,
    Adopted(Box<Pod>),
    Refused(CreateError),
}

async fn create_pod(api: &Api<Pod>, pod: &Pod, task_uid: &str, ctx: &Context) -> Result<Created, Error> {
    let name = pod.name_any();
    match api.create(&PostParams::default(), pod).await {
        Ok(created) => {
            ctx.just_created.created(&created);
            ctx.metrics.write(WriteKind::PodCreate);
            ctx.metrics.attempts_started.inc();
            info!(pod = %name, attempt = engine::pod::attempt_of(pod), "created pod");
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
            let error = engine::create_error::from_api_refusal(s.code, &s.reason, &s.message);
            // The message goes to the task's status, not to the log: it can quote the pod spec.
            warn!(pod = %name, code = s.code, reason = %s.reason, "pod create refused");
            Ok(Created::Refused(error))
        }
        Err(e) => Err(e.into()),
    }
}

/// Carry out a plan (its pod, if any, is created already): status first (with the read's resourceVersion, so a
/// stale cache can't overwrite newer facts), then deletes, then events. A pod whose deadline came is deleted even
/// when the status write fails.
async fn act(task: &PodTask, plan: Plan, pods_api: &Api<Pod>, ctx: &Context) -> Result<Action, Error> {
    let old = task.status.clone().unwrap_or_default();
    let mut written = Ok(());
    if let Some(status) = &plan.status {
        written = write_status(task, status, ctx).await;
        match &written {
            Ok(()) => observe_transition(&old, status, ctx),
            // Never act on a view the API server calls stale: the pod could be deleted with its end unrecorded
            // and read as lost.
            Err(Error::Stale(_)) => return written.map(|()| Action::await_change()),
            // Refused otherwise: the deadline still holds, and the next reconcile records the outcome (a pod gone
            // after its deadline is DeadlineExceeded).
            Err(_) if plan.deadline_stop.is_some() => {}
            Err(_) => return written.map(|()| Action::await_change()),
        }
    }
    for d in &plan.delete {
        delete_pod(pods_api, d, ctx).await?;
    }
    for s in &plan.stop {
        stop_pod(pods_api, s, ctx).await?;
    }
    if let Some(due) = plan.deadline_stop {
        let lag = ctx.now().duration_since(due).as_secs_f64().max(0.0);
        ctx.metrics.deadline_lag.observe(lag);
        info!(lag_seconds = lag, "deadline enforced");
    }
    written?;
    if plan.delete_task {
        delete_task(task, ctx).await?;
    }
    for e in &plan.events {
        publish(task, e, ctx);
    }
    ctx.wakeups.set(&key_of(task), plan.requeue_at);
    Ok(Action::await_change())
}

/// ttlAfterFinished elapsed: delete the PodTask itself (its pods go with it).
async fn delete_task(task: &PodTask, ctx: &Context) -> Result<(), Error> {
    let api: Api<PodTask> = Api::namespaced(ctx.client.clone(), &task.namespace().unwrap_or_default());
    let params = DeleteParams {
        preconditions: Some(Preconditions { uid: task.uid(), resource_version: None }),
        ..Default::default()
    };
    match api.delete(&task.name_any(), &params).await {
        Ok(_) => info!("ttlAfterFinished elapsed: deleted the PodTask"),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    ctx.metrics.write(WriteKind::TaskDelete);
    Ok(())
}

async fn delete_pod(api: &Api<Pod>, d: &engine::PodDeletion, ctx: &Context) -> Result<(), Error> {
    if d.uid.as_deref().is_some_and(|uid| ctx.deleted.recently(uid)) {
        debug!(pod = %d.name, "deleted moments ago; the cache has not shown it yet");
        return Ok(());
    }
    send_delete(api, d, ctx).await.map(|_| ())
}

/// How the API server answered a pod's delete.
enum Refused {
    No,
    /// 409: the preconditions failed (another pod of that name, or, with a resourceVersion, the pod changed).
    Changed,
    /// 404.
    Gone,
}

/// Delete `d`'s pod with its preconditions (its UID, and its resourceVersion when set); a delete that is done is
/// remembered (`ctx.deleted`) and counted.
async fn send_delete(api: &Api<Pod>, d: &engine::PodDeletion, ctx: &Context) -> Result<Refused, Error> {
    let params = DeleteParams {
        preconditions: Some(Preconditions { uid: d.uid.clone(), resource_version: d.resource_version.clone() }),
        ..Default::default()
    };
    match api.delete(&d.name, &params).await {
        Ok(_) => {
            if let Some(uid) = &d.uid {
                ctx.deleted.deleted(uid);
            }
            ctx.metrics.write(WriteKind::PodDelete);
            info!(pod = %d.name, "deleted pod");
            Ok(Refused::No)
        }
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(Refused::Changed),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Refused::Gone),
        Err(e) => Err(e.into()),
    }
}

/// A kept pod whose task is over: lower its activeDeadlineSeconds so the kubelet stops what still runs in it (a
/// sidecar). The UID in the patch is a precondition: a namesake's is immutable, so the patch is refused.
async fn stop_pod(api: &Api<Pod>, s: &engine::PodStop, ctx: &Context) -> Result<(), Error> {
    let patch = json!({"metadata": {"uid": s.uid}, "spec": {"activeDeadlineSeconds": s.active_deadline_seconds}});
    match api.patch(&s.name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await {
        Ok(_) => {
            ctx.metrics.write(WriteKind::PodStop);
            info!(pod = %s.name, active_deadline_seconds = s.active_deadline_seconds, "stopping what still runs in a kept pod");
            Ok(())
        }
        // Gone, finished with a shorter deadline already, or a namesake: nothing to stop.
        Err(kube::Error::Api(e)) if matches!(e.code, 404 | 409 | 422) => Ok(()),
        Err(e) => Err(e.into()),
    }
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
        Ok(written) => {
            ctx.metrics.write(WriteKind::Status);
            if let Some(version) = written.metadata.resource_version {
                ctx.own_writes.wrote(&format!("{}/{}", task.namespace().unwrap_or_default(), task.name_any()), version);
            }
            debug!(phase = ?status.phase, reason = ?status.reason, "status written");
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 409 => {
            Err(Error::Stale(format!("{}/{}", task.namespace().unwrap_or_default(), task.name_any())))
        }
        Err(e) => Err(e.into()),
    }
}

fn observe_transition(old: &PodTaskStatus, new: &PodTaskStatus, ctx: &Context) {
    if new.phase.is_terminal() && !old.phase.is_terminal() {
        let reason = new.reason.map(|r| r.to_string()).unwrap_or_default();
        if let Some(r) = new.reason {
            ctx.metrics.outcome(r);
        }
        info!(attempt = new.attempt, pod = new.pod_name.as_deref().unwrap_or(""), phase = ?new.phase, %reason, message = new.message.as_deref().unwrap_or(""), "task finished");
    } else if (old.phase, old.reason, old.attempt) != (new.phase, new.reason, new.attempt) {
        info!(attempt = new.attempt, pod = new.pod_name.as_deref().unwrap_or(""), phase = ?new.phase, reason = ?new.reason, "task progressed");
    }
    if new.phase == Phase::Starting && old.reason != new.reason {
        let class = match new.reason {
            Some(Reason::ImagePullBackOff) => Some(PullWait::Backoff),
            Some(Reason::ImagePullRateLimited) => Some(PullWait::RateLimited),
            _ => None,
        };
        if let Some(class) = class {
            ctx.metrics.pull_wait(class);
        }
    }
}

/// Events are sent in the background: a reconcile (and its permit) never waits on one.
fn publish(task: &PodTask, e: &engine::Event, ctx: &Context) {
    ctx.events.queue(e, task.object_ref(&()));
}

async fn publish_to(regarding: &ObjectReference, e: &engine::Event, ctx: &Context) {
    if let Err(err) = ctx.events.publish(e, regarding).await {
        warn!(error = %short_error(&err), reason = %e.reason, "could not record event");
    }
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
