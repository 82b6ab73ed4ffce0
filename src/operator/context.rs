//! Everything a reconcile needs, handed in from outside so tests can substitute any part.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Pod;
use kube::{Client, ResourceExt};

use super::{
    api_health::ApiHealth,
    cached_pod::{CachedPod, WatchedPod},
    clock::Clock,
    events::Publisher,
    metrics::Metrics,
    permits::Permits,
    pod_cache::PodCache,
    wakeups::Wakeups,
};
use crate::{
    crd::PodTask,
    engine::{self, naming, pod::is_owned_by},
    jiff::Timestamp,
};

pub struct Context {
    pub client: Client,
    /// podtask's own pods (label-selected), from the watch cache, as the engine reads them.
    pub pods: Arc<PodCache>,
    pub events: Publisher,
    pub config: engine::Config,
    pub metrics: Arc<Metrics>,
    pub clock: Clock,
    /// Consecutive failed reconciles per task, for the error backoff.
    pub failures: Failures,
    /// Reconciles in flight, operator-wide (across watched namespaces), due deadlines first.
    pub permits: Arc<Permits>,
    /// Whether the API server can be used now, operator-wide.
    pub api: Arc<ApiHealth>,
    /// podtask's own status writes the task cache has not shown yet.
    pub own_writes: OwnWrites,
    /// podtask's own pod deletes the pod cache may not have shown yet.
    pub deleted: Deleted,
    /// podtask's own pod creates the pod cache may not have shown yet.
    pub just_created: JustCreated,
    /// When each task wants its next reconcile.
    pub wakeups: Arc<Wakeups>,
}

/// Consecutive failures per task (namespace/name): the error backoff doubles with each, and resets on success.
#[derive(Default)]
pub struct Failures(std::sync::Mutex<std::collections::HashMap<String, u32>>);

impl Failures {
    /// Record one more failure; returns how many in a row.
    pub fn record(&self, key: &str) -> u32 {
        let mut map = self.0.lock().expect("failure map lock");
        let n = map.entry(key.to_owned()).or_default();
        *n = n.saturating_add(1);
        *n
    }

    pub fn clear(&self, key: &str) {
        self.0.lock().expect("failure map lock").remove(key);
    }
}

/// What podtask's own requests changed, for a short while: what the watch caches may not show yet.
struct Recent<V> {
    entries: std::sync::Mutex<std::collections::HashMap<String, (V, Instant)>>,
    keep: Duration,
}

impl<V: Clone> Recent<V> {
    fn new(keep: Duration) -> Self {
        Self { entries: Default::default(), keep }
    }

    fn remember(&self, key: &str, value: V) {
        let mut map = self.entries.lock().expect("recent map lock");
        if map.len() >= 1024 {
            // Entries no lookup came for (their task was deleted first, say): nothing will look them up again.
            map.retain(|_, (_, at)| at.elapsed() < self.keep);
        }
        map.insert(key.to_owned(), (value, Instant::now()));
    }

    /// The value remembered for `key`, if it is recent (an old one is forgotten).
    fn recall(&self, key: &str) -> Option<V> {
        let mut map = self.entries.lock().expect("recent map lock");
        match map.get(key) {
            Some((value, at)) if at.elapsed() < self.keep => Some(value.clone()),
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        }
    }

    fn forget(&self, key: &str) {
        self.entries.lock().expect("recent map lock").remove(key);
    }
}

/// How long a reconcile waits for the task cache to show podtask's own last status write before it goes ahead
/// anyway (a watch that is slow, or restarted and skipped that version).
pub const CATCH_UP: Duration = Duration::from_secs(2);

/// podtask's last status write per task (namespace/name): the resourceVersion it produced. A reconcile woken by a
/// pod event moments after that write would otherwise decide on the version it replaced, and its own write would
/// be refused with 409 Conflict: one wasted write, and a retry.
pub struct OwnWrites(Recent<String>);

impl Default for OwnWrites {
    fn default() -> Self {
        Self(Recent::new(CATCH_UP))
    }
}

impl OwnWrites {
    /// podtask's status write to `key` produced `resource_version`.
    pub fn wrote(&self, key: &str, resource_version: String) {
        self.0.remember(key, resource_version);
    }

    /// Is the cached version of `key` older than podtask's own last write of it (and that write recent)?
    pub fn cache_behind(&self, key: &str, cached: Option<&str>) -> bool {
        match self.0.recall(key) {
            Some(written) if Some(written.as_str()) != cached => true,
            Some(_) => {
                self.0.forget(key);
                false
            }
            None => false,
        }
    }
}

/// How long podtask remembers a pod it deleted: longer than the pod cache takes to show the deletion.
pub const DELETED_RECENTLY: Duration = Duration::from_secs(10);

/// Pods (by UID) the API server accepted podtask's delete of: a reconcile whose cache still shows such a pod
/// alive does not delete it again (a wasted write, answered 404 once the pod is gone).
pub struct Deleted(Recent<()>);

impl Default for Deleted {
    fn default() -> Self {
        Self(Recent::new(DELETED_RECENTLY))
    }
}

impl Deleted {
    pub fn deleted(&self, uid: &str) {
        self.0.remember(uid, ());
    }

    pub fn recently(&self, uid: &str) -> bool {
        self.0.recall(uid).is_some()
    }
}

/// How long podtask remembers a pod it created, as the API server answered the create: longer than the pod cache
/// takes to show it.
pub const CREATED_RECENTLY: Duration = Duration::from_secs(10);

/// Pods (by namespace/name) podtask created moments ago, as the create's answer showed them. A reconcile woken by
/// the task's status write before the pod cache shows the new pod would otherwise read the pod fresh from the API
/// server, only to learn what the create already said.
pub struct JustCreated(Recent<Arc<CachedPod>>);

impl Default for JustCreated {
    fn default() -> Self {
        Self(Recent::new(CREATED_RECENTLY))
    }
}

impl JustCreated {
    pub fn created(&self, pod: &Pod) {
        let Ok(watched) = serde_json::to_value(pod).and_then(serde_json::from_value::<WatchedPod>) else {
            return;
        };
        let key = format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any());
        self.0.remember(&key, Arc::new(CachedPod::from(&watched)));
    }

    /// The pod `namespace/name` as its create showed it, if that was moments ago.
    pub fn get(&self, key: &str) -> Option<Arc<CachedPod>> {
        self.0.recall(key)
    }

    /// The pod cache shows it now.
    fn seen(&self, key: &str) {
        self.0.forget(key);
    }
}

impl Context {
    pub fn now(&self) -> Timestamp {
        (self.clock)()
    }

    /// The task's pods: those the watch cache holds (found by owner, at the cost of the task's own pods whatever its
    /// status says), and a pod podtask created moments ago as its create showed it, until the cache does (the
    /// current attempt's, or the next one's: created just before a status write).
    pub fn pods_of(&self, task: &PodTask) -> Vec<Pod> {
        let (ns, name, uid) = (task.namespace().unwrap_or_default(), task.name_any(), task.uid().unwrap_or_default());
        let mut pods: Vec<Pod> =
            self.pods.owned_by(&ns, &uid).iter().map(|(pod_name, p)| p.to_pod(&ns, pod_name)).collect();
        let attempt = task.status.as_ref().map_or(0, |s| s.attempt);
        for attempt in [attempt, attempt.saturating_add(1)].into_iter().filter(|a| *a > 0) {
            let pod_name = naming::pod_name(&name, &uid, attempt);
            let key = format!("{ns}/{pod_name}");
            if pods.iter().any(|p| p.metadata.name.as_deref() == Some(pod_name.as_str())) {
                self.just_created.seen(&key);
            } else if let Some(created) = self.just_created.get(&key) {
                pods.extend(Some(created.to_pod(&ns, &pod_name)).filter(|p| is_owned_by(p, &uid)));
            }
        }
        pods
    }
}
