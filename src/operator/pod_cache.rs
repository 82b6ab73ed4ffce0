//! podtask's own pods as the pod watch last showed them: a `CachedPod` per pod, by namespace and name.
//!
//! In place of kube-runtime's reflector, whose store holds objects that carry a whole `ObjectMeta` and keys that
//! copy each object's name, namespace, uid and resourceVersion once more: here a pod costs its `CachedPod` and its
//! name, once. It follows the watch as the reflector does: a relist is gathered apart and replaces the cache once
//! complete, so a reconcile never sees a half-listed cache.

use std::{
    collections::HashMap,
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

/// Pods by namespace, then name.
#[derive(Default)]
struct Pods(HashMap<Box<str>, HashMap<Box<str>, Arc<CachedPod>>>);

impl Pods {
    fn insert(&mut self, namespace: &str, name: &str, pod: Arc<CachedPod>) {
        match self.0.get_mut(namespace) {
            Some(pods) => {
                pods.insert(name.into(), pod);
            }
            None => {
                self.0.insert(namespace.into(), HashMap::from([(name.into(), pod)]));
            }
        }
    }

    /// Removes the pod; the memory of a namespace's table goes with its pods (a table never shrinks by itself).
    fn remove(&mut self, namespace: &str, name: &str) {
        let Some(pods) = self.0.get_mut(namespace) else { return };
        pods.remove(name);
        if pods.is_empty() {
            self.0.remove(namespace);
        } else if pods.capacity() > 64 && pods.len() < pods.capacity() / 4 {
            pods.shrink_to_fit();
        }
    }

    fn get(&self, namespace: &str, name: &str) -> Option<&Arc<CachedPod>> {
        self.0.get(namespace)?.get(name)
    }
}

impl PodCache {
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<CachedPod>> {
        self.live.read().expect("pod cache lock").get(namespace, name).cloned()
    }

    /// Every pod of one namespace, with its name.
    pub fn in_namespace(&self, namespace: &str) -> Vec<(String, Arc<CachedPod>)> {
        let live = self.live.read().expect("pod cache lock");
        let pods = live.0.get(namespace).into_iter().flatten();
        pods.map(|(name, pod)| (name.to_string(), pod.clone())).collect()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.live.read().expect("pod cache lock").0.values().map(HashMap::len).sum()
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
        assert!(cache.live.read().unwrap().0.is_empty(), "an empty namespace's table goes too");
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
        assert!(cache.in_namespace("ns").iter().any(|(name, _)| name == "t-1"));
        assert!(cache.in_namespace("elsewhere").is_empty());
    }
}
