//! Wiring: watches (PodTasks, and podtask's own pods by label), the controller loop, graceful shutdown.

use std::sync::Arc;

use futures::{Stream, StreamExt, TryStreamExt, future};
use kube::{
    Api, Client, Resource,
    runtime::{WatchStreamExt, watcher},
};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::{
    api_health::ApiHealth,
    cached_pod::WatchedPod,
    clock::Clock,
    context::Context,
    error::short_error,
    events::Publisher,
    metrics::Metrics,
    permits::{Permits, Urgency},
    pod_cache::PodCache,
    reconciler::{error_policy, reconcile},
    runner,
    task_cache::TaskCache,
    wakeups::Wakeups,
    watched::{Watched, key_of},
};
use crate::{
    crd::PodTask,
    engine::{self, naming},
};

/// The task caches of every watched scope (for the phase gauge).
pub type TaskStores = Arc<std::sync::Mutex<Vec<Arc<TaskCache>>>>;

/// What the controller needs from `podtask run`.
pub struct Settings {
    /// None: all namespaces.
    pub namespace: Option<String>,
    pub config: engine::Config,
    /// Reconciles in flight at once, shared by every scope of the operator.
    pub permits: Arc<Permits>,
    /// The API server's health, shared by every scope.
    pub api: Arc<ApiHealth>,
    /// The Events of every scope, sent in the background.
    pub events: Publisher,
}

/// Watches one scope (a namespace or the whole cluster) and reconciles until `shutdown` resolves.
/// `ready` turns true once both watch caches have synced.
pub async fn run_scope(
    client: Client,
    settings: Settings,
    metrics: Arc<Metrics>,
    clock: Clock,
    ready: watch::Sender<bool>,
    tasks_store: TaskStores,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    // Tasks are read through DeserializeGuard: one PodTask podtask cannot read is reported on itself and never
    // fails the LIST or the watch that carries every other task.
    let (tasks_api, pods_api): (Api<Watched>, Api<WatchedPod>) = match &settings.namespace {
        Some(ns) => (Api::namespaced(client.clone(), ns), Api::namespaced(client.clone(), ns)),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };

    // Readiness comes from each watch's first complete list (InitDone), not from `Store::wait_until_ready`:
    // kube-runtime wakes only one of several concurrent waiters, so a second one could hang and leave /readyz
    // unready forever.
    let (tasks_synced_tx, mut tasks_synced) = watch::channel(false);
    let (pods_synced_tx, mut pods_synced) = watch::channel(false);

    // Only podtask's pods, and of each only what the engine reads (CachedPod): the cache stays proportional to
    // podtask's own work and small per pod. It takes each event before the controller does, as a reflector would.
    let pods = Arc::new(PodCache::default());
    let pod_selector = format!("{}={}", naming::LABEL_MANAGED_BY, naming::MANAGED_BY);
    let (cache, now) = (pods.clone(), clock.clone());
    let pod_watch = watcher(pods_api, watcher::Config::default().labels(&pod_selector).any_semantic());
    let pod_stream = resume_with_api(pod_watch, settings.api.clone())
        .inspect_ok(move |e| cache.apply(e, now()))
        .inspect_ok(move |e| mark_synced(e, &pods_synced_tx))
        .touched_objects();

    let tasks = Arc::new(TaskCache::default());
    let wakeups = Arc::new(Wakeups::default());
    // The reconciles a task asked for after a failure or a lost race (runner::Action::requeue), kept apart from its
    // wakeup (its deadline, say), which a failing reconcile leaves as it was.
    let retries = Arc::new(Wakeups::default());
    let (forget, forget_retry, cache, listed) = (wakeups.clone(), retries.clone(), tasks.clone(), tasks.clone());
    let task_watch = watcher(tasks_api, watcher::Config::default().any_semantic());
    let task_stream = resume_with_api(task_watch, settings.api.clone())
        .modify(trim_task)
        .inspect_ok(move |e| cache.apply(e))
        // A deleted task's wakeups go with it.
        .inspect_ok(move |e| {
            if let watcher::Event::Delete(task) = e {
                forget.set(&key_of(task), None);
                forget_retry.set(&key_of(task), None);
            }
        })
        .inspect_ok(move |e| mark_synced(e, &tasks_synced_tx))
        .map(move |event| futures::stream::iter(tasks_to_reconcile(event, &listed)))
        .flatten();
    // A pod's event is its task's: the PodTask that controls it.
    let pod_stream = pod_stream.filter_map(|pod| future::ready(pod.ok().and_then(|pod| owning_task(&pod))));
    let triggers = futures::stream::select_all([
        task_stream.boxed(),
        pod_stream.boxed(),
        wakeups.clone().due(clock.clone()).boxed(),
        retries.clone().due(clock.clone()).boxed(),
    ]);
    tasks_store.lock().expect("store list lock").push(tasks.clone());

    let ctx = Arc::new(Context {
        client,
        pods,
        events: settings.events,
        config: settings.config,
        metrics,
        clock,
        failures: Default::default(),
        own_writes: Default::default(),
        deleted: Default::default(),
        just_created: Default::default(),
        wakeups,
        permits: settings.permits.clone(),
        api: settings.api.clone(),
    });

    let scope = settings.namespace.clone().unwrap_or_else(|| "all namespaces".into());
    tokio::spawn(async move {
        let tasks = tasks_synced.wait_for(|s| *s).await.is_ok();
        let pods = pods_synced.wait_for(|s| *s).await.is_ok();
        if tasks && pods {
            info!(%scope, "watch caches synced");
            let _ = ready.send(true);
        }
    });

    let (cache, due_ctx) = (tasks.clone(), ctx.clone());
    let urgency = move |key: &str| match cache.get(key).as_deref().map(|t| &t.0) {
        Some(Ok(task)) if engine::deadline::is_due(task, &due_ctx.pods_of(task), due_ctx.now()) => Urgency::DeadlineDue,
        _ => Urgency::Routine,
    };
    let work = move |key: Arc<str>| {
        let (cache, ctx, retries) = (tasks.clone(), ctx.clone(), retries.clone());
        async move {
            let Some(task) = cache.get(&key) else {
                // The task is gone: so are its error backoff record and its wakeups.
                ctx.failures.clear(&key);
                ctx.wakeups.set(&key, None);
                retries.set(&key, None);
                return;
            };
            let action = match reconcile(task.clone(), ctx.clone()).await {
                Ok(action) => action,
                Err(error) => error_policy(task, &error, ctx.clone()),
            };
            retries.set(&key, action.requeue_after().map(|wait| ctx.now() + wait));
        }
    };
    runner::run(triggers, settings.permits.limits(), urgency, work, shutdown).await;
    info!("controller stopped");
}

/// The tasks a watch event asks to reconcile: a task that changed; after a complete list, every task. Not each
/// task of a list as it comes: the cache shows a list only once it is complete (until then it shows the one before),
/// and a task that is not in the cache is a task that is gone.
fn tasks_to_reconcile(event: Result<watcher::Event<Watched>, watcher::Error>, cache: &TaskCache) -> Vec<Arc<str>> {
    match event {
        Ok(watcher::Event::Apply(task)) => vec![key_of(&task).into()],
        Ok(watcher::Event::InitDone) => cache.keys(),
        _ => vec![],
    }
}

/// The key of the PodTask that controls `pod`, if one does.
fn owning_task(pod: &WatchedPod) -> Option<Arc<str>> {
    let owner = pod.metadata.owner_references.as_ref()?.iter().find(|o| o.controller == Some(true))?;
    let is_task = owner.kind == PodTask::kind(&()) && owner.api_version == PodTask::api_version(&());
    is_task.then(|| format!("{}/{}", pod.metadata.namespace.as_deref().unwrap_or_default(), owner.name).into())
}

/// When a failed watch tries again.
#[derive(Debug, PartialEq, Eq)]
enum Retry {
    /// The whole API is in trouble (ApiHealth knows): as soon as it answers again (or its 429 pause is over).
    WhenUsable,
    /// 410 Gone: relist now.
    Now,
    /// Something else: after a backoff of this watch's own.
    Backoff,
}

/// A watch of the controller's that never pauses the controller and comes back with the API server.
///
/// kube-runtime would back a failing watch off for up to 30 s (plus as much again of jitter), and its Controller
/// (which podtask used before `runner`) paused *every* trigger for as long after any trigger's error: the wakeups
/// of due deadlines too, which then waited for up to a minute after the API server's return. Here no error reaches
/// the controller loop: a failure of the whole API goes to ApiHealth (logged once) and the watch starts again the
/// moment its probe finds the API back; a 410 Gone relists at once; any other failure waits kube's default
/// backoff (0.8 s doubling to 30 s), logged.
fn resume_with_api<S, T>(watch: S, api: Arc<ApiHealth>) -> impl Stream<Item = Result<T, watcher::Error>> + Send
where
    S: Stream<Item = Result<T, watcher::Error>> + Send + 'static,
    T: Send + 'static,
{
    let state = (Box::pin(watch), api, watcher::DefaultBackoff::default());
    futures::stream::unfold(state, |(mut watch, api, mut backoff)| async move {
        loop {
            match watch.next().await? {
                Ok(event) => {
                    kube::runtime::utils::Backoff::reset(&mut backoff);
                    return Some((Ok(event), (watch, api, backoff)));
                }
                Err(error) => match watch_failed(&error, &api) {
                    Retry::WhenUsable => api.usable().await,
                    Retry::Now => {}
                    Retry::Backoff => {
                        let wait = backoff.next().unwrap_or(std::time::Duration::from_secs(30));
                        debug!(?wait, "watch: retrying after a backoff");
                        tokio::time::sleep(wait).await;
                    }
                },
            }
        }
    })
}

fn watch_failed(error: &watcher::Error, api: &Arc<ApiHealth>) -> Retry {
    let api_error;
    let raw = match error {
        watcher::Error::InitialListFailed(e) | watcher::Error::WatchStartFailed(e) | watcher::Error::WatchFailed(e) => {
            e
        }
        watcher::Error::WatchError(status) if status.code == 410 => {
            debug!(code = status.code, reason = %status.reason, "watch ended by the API server; relisting");
            return Retry::Now;
        }
        watcher::Error::WatchError(status) => {
            api_error = kube::Error::Api(status.clone());
            &api_error
        }
        watcher::Error::NoResourceVersion => {
            warn!("a watch result had no resourceVersion");
            return Retry::Backoff;
        }
    };
    if api.report(raw).is_some() {
        return Retry::WhenUsable;
    }
    warn!(error = %short_error(raw), "watch failed; retrying");
    Retry::Backoff
}

/// What podtask never reads of a cached PodTask: managedFields, labels and annotations (kubectl's copy of the last
/// applied manifest is the whole spec again), the pod template, which only a launch needs (a launch reads the
/// task fresh from the API server first), and the conditions' reasons and messages, which every status write
/// derives again from the status (`engine::status::set_conditions` keeps only each condition's type, status and
/// lastTransitionTime). The API server keeps only the status of a status write, so nothing is lost.
pub(crate) fn trim_task(task: &mut Watched) {
    let meta = task.meta_mut();
    (meta.managed_fields, meta.labels, meta.annotations) = (None, None, None);
    if let Ok(task) = &mut task.0 {
        task.spec.template = EMPTY_TEMPLATE.clone();
        for c in task.status.iter_mut().flat_map(|s| s.conditions.iter_mut()) {
            (c.reason, c.message) = (String::new(), String::new());
        }
    }
}

/// The one template every cached PodTask has.
static EMPTY_TEMPLATE: std::sync::LazyLock<Arc<k8s_openapi::api::core::v1::PodTemplateSpec>> =
    std::sync::LazyLock::new(Default::default);

/// A watch delivered its first complete list (and the reflector before this point stored it).
fn mark_synced<K>(event: &watcher::Event<K>, synced: &watch::Sender<bool>) {
    if matches!(event, watcher::Event::InitDone) {
        synced.send_replace(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Config, Next, Observed, decide, testing::*};
    use k8s_openapi::api::core::v1::Pod;
    use kube::{ResourceExt, core::DeserializeGuard};
    use serde_json::json;

    /// A watch that failed because the API server went away starts again the moment ApiHealth's probe finds it
    /// back (not after kube's backoff of up to a minute), a 410 Gone relists at once, and no error of a watch
    /// reaches the controller loop.
    #[tokio::test(start_paused = true)]
    async fn a_failed_watch_resumes_when_the_api_answers_and_its_errors_stay_out_of_the_controller() {
        use http::{Request, Response};
        use kube::client::Body;
        use tokio::time::{Duration, Instant};
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let api = ApiHealth::new(kube::Client::new(service, "default"));
        let gone = kube::core::Status::failure("too old resource version", "Expired").with_code(410);
        let events = vec![
            Err(watcher::Error::WatchFailed(kube::Error::Service("connection refused".into()))),
            Ok(1),
            Err(watcher::Error::WatchError(Box::new(gone))),
            Ok(2),
        ];
        let start = Instant::now();
        let seen = tokio::spawn(
            resume_with_api(futures::stream::iter(events), api.clone())
                .map(move |e| (e.map_err(|e| e.to_string()), start.elapsed()))
                .collect::<Vec<_>>(),
        );
        // The API server stays away for a minute: every probe fails, then one finds it back (a probe is two
        // requests, a LIST of PodTasks and one of pods).
        let back = loop {
            let (_, reply) = handle.next_request().await.expect("a probe");
            if start.elapsed() < Duration::from_secs(60) {
                assert!(!seen.is_finished(), "nothing goes on while the API is away");
                reply.send_error(kube::Error::Service("connection refused".into()));
            } else {
                reply.send_response(crate::operator::api_health::tests::list_answer(200));
                let (_, reply) = handle.next_request().await.expect("the probe's second request");
                reply.send_response(crate::operator::api_health::tests::list_answer(200));
                break start.elapsed();
            }
        };
        let seen = seen.await.expect("the watch ends");
        let oks: Vec<_> = seen.iter().map(|(e, _)| e.clone().expect("no error reaches the controller")).collect();
        assert_eq!(oks, [1, 2]);
        let resumed = seen[0].1;
        assert!(
            resumed >= back && resumed - back < Duration::from_millis(100),
            "back at {back:?}, resumed at {resumed:?}"
        );
        assert_eq!(seen[1].1, resumed, "a 410 relists at once");
    }

    /// The engine decides the same on a pod and a task as the caches keep them as on the whole ones, in every
    /// state and at every moment.
    #[test]
    fn the_engine_decides_the_same_on_a_trimmed_pod() {
        let task = task(json!({"executionTimeout": "10m", "retry": {"limit": 1, "reasons": ["PodFailed"]},
            "podFailurePolicy": {"rules": [{"action": "RetryWithoutCounting", "onPodConditions": [{"type": "DisruptionTarget"}]}]}}));
        let kubelet = json!({"hostIP": "10.0.0.1", "podIP": "10.1.0.7", "podIPs": [{"ip": "10.1.0.7"}], "qosClass": "BestEffort"});
        let with_kubelet_fields = |mut status: serde_json::Value| {
            for (k, v) in kubelet.as_object().unwrap() {
                status[k] = v.clone();
            }
            for c in status["containerStatuses"].as_array_mut().into_iter().flatten() {
                c["containerID"] = json!("containerd://0123456789abcdef");
                c["imageID"] = json!("docker.io/library/busybox@sha256:0123");
                c["lastState"] = json!({"terminated": {"exitCode": 1}});
            }
            status
        };
        let states = [
            running(),
            scheduled_waiting("ImagePullBackOff", "Back-off pulling image \"busybox\""),
            scheduled_waiting("ErrImagePull", "429 Too Many Requests: toomanyrequests"),
            scheduled_waiting("CreateContainerConfigError", "secret \"db\" not found"),
            scheduled_waiting("InvalidImageName", "bad name"),
            exited("Failed", 3, "boom"),
            exited("Succeeded", 0, "done"),
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "0/3 nodes are available"}]}),
            json!({"phase": "Failed", "reason": "Evicted", "message": "low on memory",
                "conditions": [{"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet"}]}),
            json!({"phase": "Pending", "initContainerStatuses": [{"name": "init", "image": "busybox", "imageID": "",
                "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff", "message": "x"}}}]}),
            // Two states at once (no kubelet sends that): kept as it came.
            json!({"phase": "Running", "containerStatuses": [{"name": "main", "image": "busybox", "imageID": "",
                "ready": false, "restartCount": 1, "state": {"waiting": {"reason": "CrashLoopBackOff"},
                "terminated": {"exitCode": 2, "reason": "Error"}}}]}),
        ];
        for state in states {
            let mut pod = pod_at(&task, 1, t(0), with_kubelet_fields(state.clone()));
            pod.labels_mut().insert("app".into(), "demo".into());
            pod.annotations_mut().insert("kwok.podtask.dev/run-for".into(), "1s".into());
            let trimmed = crate::operator::cached_pod::through_cache(&pod);
            assert!(trimmed.status.as_ref().unwrap().pod_ip.is_none() && !trimmed.labels().contains_key("app"));
            // Before the first status write, and after it.
            let mut reported = task.clone();
            let first = Observed { pods: std::slice::from_ref(&pod), now: t(1), fresh: true, create_refused: None };
            if let crate::engine::Next::Act(plan) = decide(&task, first, &Config::default()) {
                reported.status = plan.status;
            }
            for (task, now) in
                [&task, &reported].into_iter().flat_map(|k| [1, 45, 299, 301, 569, 601].map(|s| (k, t(s))))
            {
                for fresh in [false, true] {
                    let seen = |pods| Observed { pods, now, fresh, create_refused: None };
                    // As the task cache gives it back: trimmed as the watch trims it, stored and read back.
                    let mut watched = DeserializeGuard(Ok(task.clone()));
                    trim_task(&mut watched);
                    let cache = TaskCache::default();
                    cache.apply(&watcher::Event::Apply(watched));
                    let cached_task = cache.get(&key_of(task)).expect("cached").0.clone().expect("readable");
                    // The pod to create is built from the task read fresh before a launch, never from the cache.
                    let without_pod = |next| match next {
                        Next::Act(mut plan) => {
                            plan.create = plan.create.map(|_| Pod::default());
                            Next::Act(plan)
                        }
                        other => other,
                    };
                    let whole = without_pod(decide(task, seen(std::slice::from_ref(&pod)), &Config::default()));
                    let cached =
                        without_pod(decide(&cached_task, seen(std::slice::from_ref(&trimmed)), &Config::default()));
                    assert_eq!(format!("{cached:?}"), format!("{whole:?}"), "{state} at {now}, fresh {fresh}");
                }
            }
        }
    }
}
