//! The PodTasks as the task watch last showed them (trimmed: `controller::trim_task`), by namespace and name.
//!
//! In place of kube-runtime's reflector, which keeps each task as a whole `PodTask` (848 bytes before anything it
//! points to, most of it fields a task leaves empty) and keys it by copies of its name, namespace, uid and
//! resourceVersion: 1.8 KB per running task. Here a task is kept as the compact JSON of what the trimmed task holds
//! besides its name and namespace (the cache's keys, kept once), and read back into a `PodTask` when a reconcile
//! asks for it: some 0.7 KB (`footprint_tests::what_the_task_cache_keeps_per_task`) for a few microseconds per
//! read. Its phase is kept apart, for the phase gauge. A task podtask cannot read is kept as it came.
//!
//! It follows the watch as the reflector does: a relist is gathered apart and replaces the cache once complete, so
//! a reconcile never sees a half-listed cache.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock},
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{ResourceExt, core::DeserializeGuard, runtime::watcher::Event};
use serde::{Deserialize, Serialize};

use super::watched::Watched;
use crate::crd::{Phase, PodTask, PodTaskSpec, PodTaskStatus};

#[derive(Default)]
pub struct TaskCache {
    live: RwLock<Tasks>,
    /// A relist in progress: the tasks listed so far, in place of `live` once the list is complete.
    relist: Mutex<Option<Tasks>>,
}

/// Tasks by namespace, then name.
#[derive(Default)]
struct Tasks(HashMap<Box<str>, HashMap<Box<str>, Cached>>);

enum Cached {
    Readable { phase: Phase, stored: Box<str> },
    Unreadable(Arc<Watched>),
}

/// What the cache stores of a readable task: all of it but its name and namespace.
#[derive(Serialize, Deserialize)]
struct Stored<M, S, T> {
    metadata: M,
    spec: S,
    status: T,
}

impl Cached {
    fn of(task: &Watched) -> Self {
        let Ok(readable) = &task.0 else { return Self::Unreadable(Arc::new(task.clone())) };
        let metadata = ObjectMeta { name: None, namespace: None, ..readable.metadata.clone() };
        let stored = Stored { metadata: &metadata, spec: &readable.spec, status: &readable.status };
        match serde_json::to_string(&stored) {
            Ok(json) => Self::Readable { phase: phase_of(Some(readable)), stored: json.into() },
            // Not seen: what serde_json read it writes. Kept whole rather than lost.
            Err(_) => Self::Unreadable(Arc::new(task.clone())),
        }
    }

    fn task(&self, namespace: &str, name: &str) -> Option<Arc<Watched>> {
        match self {
            Self::Unreadable(task) => Some(task.clone()),
            Self::Readable { stored, .. } => {
                let Stored { mut metadata, spec, status }: Stored<ObjectMeta, PodTaskSpec, Option<PodTaskStatus>> =
                    serde_json::from_str(stored).ok()?;
                (metadata.name, metadata.namespace) = (Some(name.into()), Some(namespace.into()));
                Some(Arc::new(DeserializeGuard(Ok(PodTask { metadata, spec, status }))))
            }
        }
    }

    fn phase(&self) -> Phase {
        match self {
            Self::Readable { phase, .. } => *phase,
            Self::Unreadable(task) => phase_of(task.0.as_ref().ok()),
        }
    }
}

/// A task's phase for the gauge; a task podtask cannot read counts as Failed (its status says InvalidSpec).
pub fn phase_of(task: Option<&PodTask>) -> Phase {
    task.map_or(Phase::Failed, |t| t.status.as_ref().map(|s| s.phase).unwrap_or_default())
}

impl Tasks {
    fn insert(&mut self, task: &Watched) {
        let (namespace, name) = (task.namespace().unwrap_or_default(), task.name_any());
        let tasks = match self.0.get_mut(namespace.as_str()) {
            Some(tasks) => tasks,
            None => self.0.entry(namespace.into()).or_default(),
        };
        tasks.insert(name.into(), Cached::of(task));
    }

    /// Removes the task; the memory of a namespace's table goes with its tasks (a table never shrinks by itself).
    fn remove(&mut self, task: &Watched) {
        let namespace = task.namespace().unwrap_or_default();
        let Some(tasks) = self.0.get_mut(namespace.as_str()) else { return };
        tasks.remove(task.name_any().as_str());
        if tasks.is_empty() {
            self.0.remove(namespace.as_str());
        } else if tasks.capacity() > 64 && tasks.len() < tasks.capacity() / 4 {
            tasks.shrink_to_fit();
        }
    }
}

impl TaskCache {
    /// The task `namespace/name`, as the watch last showed it (trimmed).
    pub fn get(&self, key: &str) -> Option<Arc<Watched>> {
        let (namespace, name) = key.split_once('/')?;
        self.live.read().expect("task cache lock").0.get(namespace)?.get(name)?.task(namespace, name)
    }

    /// Every cached task's key, `namespace/name`.
    pub fn keys(&self) -> Vec<Arc<str>> {
        let live = self.live.read().expect("task cache lock");
        live.0.iter().flat_map(|(ns, tasks)| tasks.keys().map(move |name| format!("{ns}/{name}").into())).collect()
    }

    /// Every cached task's phase.
    pub fn phases(&self) -> Vec<Phase> {
        self.live
            .read()
            .expect("task cache lock")
            .0
            .values()
            .flat_map(|tasks| tasks.values().map(Cached::phase))
            .collect()
    }

    /// One event of the task watch.
    pub fn apply(&self, event: &Event<Watched>) {
        match event {
            Event::Apply(task) => self.live.write().expect("task cache lock").insert(task),
            Event::Delete(task) => self.live.write().expect("task cache lock").remove(task),
            Event::Init => *self.relist.lock().expect("task relist lock") = Some(Tasks::default()),
            Event::InitApply(task) => {
                self.relist.lock().expect("task relist lock").get_or_insert_default().insert(task)
            }
            Event::InitDone => {
                let listed = self.relist.lock().expect("task relist lock").take().unwrap_or_default();
                *self.live.write().expect("task cache lock") = listed;
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.live.read().expect("task cache lock").0.values().map(HashMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testing::*;
    use serde_json::json;

    fn watched(task: &PodTask) -> Watched {
        let mut task = DeserializeGuard(Ok(task.clone()));
        super::super::controller::trim_task(&mut task);
        task
    }

    /// What the cache gives back is the trimmed task the watch brought, whatever its spec and status hold.
    #[test]
    fn a_task_comes_back_as_the_watch_brought_it() {
        let mut tasks = vec![
            task(json!({})),
            task(json!({"executionTimeout": "10m", "startupTimeout": "90s", "deadline": "2026-01-01T11:00:00Z",
                "retry": {"limit": 3, "reasons": ["PodFailed", "ImagePullTimeout"], "backoff": {"initial": "5s", "factor": 3, "max": "1m"}},
                "cleanup": "Keep", "ttlAfterFinished": "1h", "decidingContainers": ["main"],
                "podFailurePolicy": {"rules": [{"action": "Fail", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
                    {"action": "RetryWithoutCounting", "onPodConditions": [{"type": "DisruptionTarget"}]}]}})),
        ];
        // With a status, attempts and conditions; and being deleted.
        let mut reported = tasks[1].clone();
        if let crate::engine::Next::Act(plan) = crate::engine::decide(
            &reported,
            crate::engine::Observed { pods: &[], now: t(1), fresh: true, create_refused: None },
            &crate::engine::Config::default(),
        ) {
            reported.status = plan.status;
        }
        let status = reported.status.as_mut().expect("a status");
        status.attempts.push(serde_json::from_value(json!({"attempt": 1, "podName": "job-0f0f0-1", "outcome": "Failed",
            "reason": "PodFailed", "startTime": "2026-01-01T10:00:00Z", "endTime": "2026-01-01T10:01:00Z", "exitCode": 3,
            "message": "boom"})).expect("an attempt"));
        reported.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t(30)));
        tasks.push(reported);
        let cache = TaskCache::default();
        for (i, task) in tasks.iter().enumerate() {
            let mut task = watched(task);
            task.0.as_mut().expect("readable").metadata.name = Some(format!("job-{i}"));
            cache.apply(&Event::Apply(task.clone()));
            let back = cache.get(&format!("ns/job-{i}")).expect("cached");
            assert_eq!(back.0.as_ref().expect("readable"), task.0.as_ref().expect("readable"), "task {i}");
        }
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.phases().len(), 3);
    }

    /// A relist replaces the cache once complete (a task gone meanwhile goes with it, and nothing half-listed is
    /// seen); a deleted task goes; a task podtask cannot read is kept as it came, and counted as Failed.
    #[test]
    fn a_relist_replaces_the_cache_once_complete() {
        let cache = TaskCache::default();
        let named = |name: &str| {
            let mut t = watched(&task(json!({})));
            t.0.as_mut().expect("readable").metadata.name = Some(name.into());
            t
        };
        cache.apply(&Event::Apply(named("a")));
        cache.apply(&Event::Apply(named("b")));
        cache.apply(&Event::Init);
        cache.apply(&Event::InitApply(named("b")));
        cache.apply(&Event::InitApply(named("c")));
        assert!(
            cache.get("ns/a").is_some() && cache.get("ns/c").is_none(),
            "the old list until the new one is complete"
        );
        cache.apply(&Event::InitDone);
        let mut keys: Vec<String> = cache.keys().iter().map(|k| k.to_string()).collect();
        keys.sort();
        assert_eq!(keys, ["ns/b", "ns/c"]);
        cache.apply(&Event::Delete(named("b")));
        assert!(cache.get("ns/b").is_none());
        let unreadable: Watched =
            serde_json::from_value(json!({"apiVersion": "podtask.dev/v1alpha1", "kind": "PodTask",
            "metadata": {"name": "bad", "namespace": "ns"}, "spec": {"deadline": 7}}))
            .expect("a guard");
        assert!(unreadable.0.is_err());
        cache.apply(&Event::Apply(unreadable));
        assert!(cache.get("ns/bad").expect("kept").0.is_err());
        let mut phases = cache.phases();
        phases.sort();
        assert!(phases.contains(&Phase::Failed) && phases.len() == 2);
    }
}
