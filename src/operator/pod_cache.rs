//! podtask's own pods as the pod watch last showed them: a `CachedPod` per pod, by namespace and name.
//!
//! In place of kube-runtime's reflector, whose store holds objects that carry a whole `ObjectMeta` and keys that
//! copy each object's name, namespace, uid and resourceVersion once more: here a pod costs its `CachedPod` and its
//! name, once. It follows the watch as the reflector does: a relist is gathered apart and replaces the cache once
//! complete, so a reconcile never sees a half-listed cache.
//!
//! A task's pods are found through a small index by owner (the task's UID), kept with the pods it points to, so a
//! reconcile costs what the task's own pods cost, whatever its status says.

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    sync::{Arc, Mutex, RwLock},
};

use kube::{ResourceExt, runtime::watcher::Event};

use super::cached_pod::{CachedPod, WatchedPod};
use crate::jiff::Timestamp;

#[derive(Default)]
pub struct PodCache {
    live: RwLock<Pods>,
    /// A relist in progress: the pods listed so far, in place of `live` once the list is complete.
    relist: Mutex<Option<Pods>>,
}

/// Pods by namespace, then name; and the names of each owner's pods.
#[derive(Default)]
struct Pods {
    by_name: HashMap<Box<str>, HashMap<Arc<str>, Arc<CachedPod>>>,
    /// The names of the pods each controlling owner has, by a hash of its namespace and UID: eight bytes per owner
    /// instead of its UID, and each name shared with `by_name`. A lookup checks each pod's owner, so two owners
    /// whose hashes collide only share a list.
    by_owner: HashMap<u64, Box<[Arc<str>]>>,
    hasher: RandomState,
}

impl Pods {
    fn insert(&mut self, namespace: &str, name: &str, pod: Arc<CachedPod>) {
        let owner = pod.controller().map(|uid| self.hasher.hash_one((namespace, uid)));
        let pods = match self.by_name.get_mut(namespace) {
            Some(pods) => pods,
            None => self.by_name.entry(namespace.into()).or_default(),
        };
        if let Some((key, cached)) = pods.get_key_value(name) {
            let before = cached.controller().map(|uid| self.hasher.hash_one((namespace, uid)));
            let key = key.clone();
            pods.insert(key.clone(), pod);
            if before != owner {
                unindex(&mut self.by_owner, before, &key);
                index(&mut self.by_owner, owner, key);
            }
            return;
        }
        let key: Arc<str> = name.into();
        pods.insert(key.clone(), pod);
        index(&mut self.by_owner, owner, key);
    }

    /// Removes the pod; the memory of a namespace's table goes with its pods (a table never shrinks by itself).
    fn remove(&mut self, namespace: &str, name: &str) {
        let Some(pods) = self.by_name.get_mut(namespace) else { return };
        if let Some((key, pod)) = pods.remove_entry(name) {
            let owner = pod.controller().map(|uid| self.hasher.hash_one((namespace, uid)));
            unindex(&mut self.by_owner, owner, &key);
        }
        if pods.is_empty() {
            self.by_name.remove(namespace);
        } else if pods.capacity() > 64 && pods.len() < pods.capacity() / 4 {
            pods.shrink_to_fit();
        }
        if self.by_owner.capacity() > 64 && self.by_owner.len() < self.by_owner.capacity() / 4 {
            self.by_owner.shrink_to_fit();
        }
    }

    fn get(&self, namespace: &str, name: &str) -> Option<&Arc<CachedPod>> {
        self.by_name.get(namespace)?.get(name)
    }

    /// The pods of `namespace` whose controlling owner has this UID.
    fn owned_by(&self, namespace: &str, uid: &str) -> Vec<(Arc<str>, Arc<CachedPod>)> {
        let Some(names) = self.by_owner.get(&self.hasher.hash_one((namespace, uid))) else { return vec![] };
        let Some(pods) = self.by_name.get(namespace) else { return vec![] };
        names
            .iter()
            .filter_map(|name| pods.get_key_value(name))
            .filter(|(_, pod)| pod.controller() == Some(uid))
            .map(|(name, pod)| (name.clone(), pod.clone()))
            .collect()
    }
}

fn index(by_owner: &mut HashMap<u64, Box<[Arc<str>]>>, owner: Option<u64>, name: Arc<str>) {
    let Some(owner) = owner else { return };
    let names = by_owner.entry(owner).or_default();
    *names = names.iter().cloned().chain([name]).collect();
}

fn unindex(by_owner: &mut HashMap<u64, Box<[Arc<str>]>>, owner: Option<u64>, name: &Arc<str>) {
    let Some(owner) = owner else { return };
    let Some(names) = by_owner.get_mut(&owner) else { return };
    if names.len() <= 1 {
        by_owner.remove(&owner);
    } else {
        *names = names.iter().filter(|n| !Arc::ptr_eq(n, name)).cloned().collect();
    }
}

impl PodCache {
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<CachedPod>> {
        self.live.read().expect("pod cache lock").get(namespace, name).cloned()
    }

    /// The pods of `namespace` that the owner with this UID controls (a task's pods), with their names: found
    /// through the owner index, at the cost of those pods alone.
    pub fn owned_by(&self, namespace: &str, uid: &str) -> Vec<(Arc<str>, Arc<CachedPod>)> {
        self.live.read().expect("pod cache lock").owned_by(namespace, uid)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.live.read().expect("pod cache lock").by_name.values().map(HashMap::len).sum()
    }

    /// One event of the pod watch, seen at `now`.
    pub fn apply(&self, event: &Event<WatchedPod>, now: Timestamp) {
        match event {
            Event::Apply(pod) => {
                let (namespace, name) = (pod.namespace().unwrap_or_default(), pod.name_any());
                let cached = self.cached(pod, &namespace, &name, now);
                self.live.write().expect("pod cache lock").insert(&namespace, &name, cached);
            }
            Event::Delete(pod) => {
                let (namespace, name) = (pod.namespace().unwrap_or_default(), pod.name_any());
                self.live.write().expect("pod cache lock").remove(&namespace, &name);
            }
            Event::Init => *self.relist.lock().expect("pod relist lock") = Some(Pods::default()),
            Event::InitApply(pod) => {
                let (namespace, name) = (pod.namespace().unwrap_or_default(), pod.name_any());
                let cached = self.cached(pod, &namespace, &name, now);
                let mut relist = self.relist.lock().expect("pod relist lock");
                relist.get_or_insert_default().insert(&namespace, &name, cached);
            }
            Event::InitDone => {
                let listed = self.relist.lock().expect("pod relist lock").take().unwrap_or_default();
                *self.live.write().expect("pod cache lock") = listed;
            }
        }
    }

    /// The pod as the cache keeps it, with the moment the cache first held it running (kept across a relist).
    fn cached(&self, pod: &WatchedPod, namespace: &str, name: &str, now: Timestamp) -> Arc<CachedPod> {
        let mut cached = CachedPod::from(pod);
        cached.note_running(self.get(namespace, name).as_deref(), now);
        Arc::new(cached)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::naming;
    use k8s_openapi::api::core::v1::Pod;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("a timestamp")
    }

    fn pod(name: &str, phase: &str) -> WatchedPod {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}")}, "status": {"phase": phase}}))
        .expect("a pod");
        super::super::cached_pod::watched(&pod)
    }

    fn seen_running(cache: &PodCache, name: &str) -> Option<String> {
        let pod = cache.get("ns", name)?.to_pod("ns", name);
        pod.metadata.annotations.and_then(|a| a.get(naming::NOTE_SEEN_RUNNING).cloned())
    }

    /// The cache marks a running pod with when it first held it running, and keeps that mark through the pod's
    /// later updates while it runs (and through a relist).
    #[test]
    fn the_cache_remembers_when_it_first_held_a_pod_running() {
        let cache = PodCache::default();
        cache.apply(&Event::Apply(pod("p", "Pending")), at("2026-01-01T10:00:00Z"));
        assert_eq!(seen_running(&cache, "p"), None);
        cache.apply(&Event::Apply(pod("p", "Running")), at("2026-01-01T10:00:03Z"));
        assert_eq!(seen_running(&cache, "p").as_deref(), Some("2026-01-01T10:00:03Z"));
        cache.apply(&Event::Apply(pod("p", "Running")), at("2026-01-01T10:00:09Z"));
        assert_eq!(seen_running(&cache, "p").as_deref(), Some("2026-01-01T10:00:03Z"), "kept while it runs");
        cache.apply(&Event::Init, at("2026-01-01T10:00:10Z"));
        cache.apply(&Event::InitApply(pod("p", "Running")), at("2026-01-01T10:00:10Z"));
        cache.apply(&Event::InitDone, at("2026-01-01T10:00:10Z"));
        assert_eq!(seen_running(&cache, "p").as_deref(), Some("2026-01-01T10:00:03Z"), "kept across a relist");
        cache.apply(&Event::Apply(pod("p", "Succeeded")), at("2026-01-01T10:00:11Z"));
        assert_eq!(seen_running(&cache, "p"), None);
    }

    /// A relist replaces the cache only once complete: until then reconciles read the pods as they were; after
    /// it, a pod the list no longer has is gone.
    #[test]
    fn a_relist_replaces_the_cache_once_complete() {
        let now = at("2026-01-01T10:00:00Z");
        let cache = PodCache::default();
        cache.apply(&Event::Init, now);
        cache.apply(&Event::InitApply(pod("a", "Running")), now);
        cache.apply(&Event::InitApply(pod("b", "Pending")), now);
        assert_eq!(cache.len(), 0, "not before the list is complete");
        cache.apply(&Event::InitDone, now);
        assert_eq!(cache.len(), 2);

        cache.apply(&Event::Init, now);
        cache.apply(&Event::InitApply(pod("b", "Running")), now);
        assert!(cache.get("ns", "a").is_some(), "the old cache until the relist is complete");
        cache.apply(&Event::InitDone, now);
        assert!(cache.get("ns", "a").is_none(), "deleted while the watch was away");
        assert!(cache.get("ns", "b").is_some_and(|p| p.is_running()));

        cache.apply(&Event::Delete(pod("b", "Running")), now);
        assert_eq!(cache.len(), 0);
        assert!(cache.live.read().unwrap().by_name.is_empty(), "an empty namespace's table goes too");
        assert!(cache.live.read().unwrap().by_owner.is_empty(), "and the owner index's entries");
    }

    /// The pod the engine reads back from the cache has every field the cache keeps, under its key.
    #[test]
    fn a_cached_pod_reads_back_with_its_key_and_owner() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "t-1", "namespace": "ns", "uid": "u1", "creationTimestamp": "2026-01-01T10:00:00Z",
                "labels": {naming::LABEL_ATTEMPT: "2", "app": "x"},
                "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "c", "uid": "other"},
                    {"apiVersion": "podtask.dev/v1alpha1", "kind": "PodTask", "name": "t", "uid": "task-uid", "controller": true}]}}))
        .expect("a pod");
        let cache = PodCache::default();
        cache.apply(&Event::Apply(super::super::cached_pod::watched(&pod)), at("2026-01-01T10:00:01Z"));
        let read = cache.get("ns", "t-1").expect("cached").to_pod("ns", "t-1");
        assert_eq!((read.metadata.name.as_deref(), read.metadata.namespace.as_deref()), (Some("t-1"), Some("ns")));
        assert_eq!(read.metadata.uid.as_deref(), Some("u1"));
        assert_eq!(read.metadata.creation_timestamp, pod.metadata.creation_timestamp);
        assert_eq!(crate::engine::pod::attempt_of(&read), Some(2));
        assert!(crate::engine::pod::is_owned_by(&read, "task-uid"));
        assert!(!crate::engine::pod::is_owned_by(&read, "other"), "only the controlling owner is kept");
        assert!(cache.owned_by("ns", "task-uid").iter().any(|(name, _)| &**name == "t-1"));
        assert!(cache.owned_by("elsewhere", "task-uid").is_empty());
        assert!(cache.owned_by("ns", "other").is_empty());
    }

    fn owned(name: &str, owner: Option<&str>) -> WatchedPod {
        let owners: Vec<serde_json::Value> = owner
            .into_iter()
            .map(|uid| serde_json::json!({"apiVersion": "podtask.dev/v1alpha1", "kind": "PodTask", "name": "t", "uid": uid, "controller": true}))
            .collect();
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"), "ownerReferences": owners},
            "status": {"phase": "Running"}}))
        .expect("a pod");
        super::super::cached_pod::watched(&pod)
    }

    fn names(cache: &PodCache, uid: &str) -> Vec<String> {
        let mut names: Vec<String> = cache.owned_by("ns", uid).into_iter().map(|(n, _)| n.to_string()).collect();
        names.sort();
        names
    }

    /// The owner index follows every change of the pods it points to: new pods, updates, a pod whose owner
    /// changes, deletions, and a relist (which rebuilds it with the pods).
    #[test]
    fn a_tasks_pods_are_found_by_owner() {
        let now = at("2026-01-01T10:00:00Z");
        let cache = PodCache::default();
        for (name, owner) in [("a-1", "A"), ("a-2", "A"), ("b-1", "B")] {
            cache.apply(&Event::Apply(owned(name, Some(owner))), now);
        }
        cache.apply(&Event::Apply(owned("orphan", None)), now);
        assert_eq!(names(&cache, "A"), ["a-1", "a-2"]);
        assert_eq!(names(&cache, "B"), ["b-1"]);
        cache.apply(&Event::Apply(owned("a-2", Some("A"))), now);
        assert_eq!(names(&cache, "A"), ["a-1", "a-2"], "an update is not a second entry");
        cache.apply(&Event::Apply(owned("a-2", Some("B"))), now);
        assert_eq!((names(&cache, "A"), names(&cache, "B")), (vec!["a-1".into()], vec!["a-2".into(), "b-1".into()]));
        cache.apply(&Event::Delete(owned("a-1", Some("A"))), now);
        assert!(names(&cache, "A").is_empty());
        cache.apply(&Event::Init, now);
        cache.apply(&Event::InitApply(owned("a-3", Some("A"))), now);
        assert_eq!(names(&cache, "B"), ["a-2", "b-1"], "the old index until the relist is complete");
        cache.apply(&Event::InitDone, now);
        assert_eq!((names(&cache, "A"), names(&cache, "B")), (vec!["a-3".into()], vec![]));
        cache.apply(&Event::Delete(owned("a-3", Some("A"))), now);
        assert!(cache.live.read().unwrap().by_owner.is_empty());
    }
}
