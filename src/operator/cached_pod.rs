//! Pods as podtask's watch cache holds them: only the fields the engine reads.
//!
//! A `k8s_openapi` `Pod` is a large struct even with every field empty (its spec alone has dozens of optional
//! fields and nested structs held inline), and the cache holds one per pod podtask owns. `CachedPod` is read straight
//! from the watch (serde skips every other field, so no whole pod is ever built) and turned back into a `Pod` with
//! the same fields when a reconcile needs one.

use std::{borrow::Cow, collections::BTreeMap};

use k8s_openapi::{
    NamespaceResourceScope,
    api::core::v1::{
        ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, Pod,
        PodCondition, PodSpec, PodStatus,
    },
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time},
};
use kube::Resource;
use serde::{Deserialize, Serialize};

use crate::{engine::naming, jiff::Timestamp};

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct CachedPod {
    /// Without labels and annotations once trimmed: podtask's own are in `marks`.
    pub metadata: ObjectMeta,
    /// The labels and annotations of its own that podtask reads back, outside `metadata`: a map costs a node of
    /// some 500 bytes even for one entry.
    #[serde(skip)]
    marks: Vec<(&'static str, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<Spec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_grace_period_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<i64>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_statuses: Option<Vec<Container>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_container_statuses: Option<Vec<Container>>,
}

/// A pod condition without `lastProbeTime` and `observedGeneration`. Its type and status are nearly always one of
/// a few words every pod has: those are kept as the one shared copy, not a string of their own per pod.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type", deserialize_with = "interned")]
    pub type_: Cow<'static, str>,
    #[serde(deserialize_with = "interned")]
    pub status: Cow<'static, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "state")]
    pub state: Option<State>,
    #[serde(default)]
    pub ready: bool,
    #[serde(default)]
    pub restart_count: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<bool>,
}

/// The condition types and statuses the kubelet and the scheduler set.
const COMMON_WORDS: [&str; 9] = [
    "PodScheduled",
    "PodReadyToStartContainers",
    "Initialized",
    "ContainersReady",
    "Ready",
    "DisruptionTarget",
    "True",
    "False",
    "Unknown",
];

fn interned<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Cow<'static, str>, D::Error> {
    let word = Cow::<'de, str>::deserialize(d)?;
    Ok(COMMON_WORDS.iter().find(|w| **w == word).map_or_else(|| Cow::Owned(word.into_owned()), |w| Cow::Borrowed(*w)))
}

/// A container's state in a fraction of `ContainerState`'s size (which holds all three states inline): the one
/// state a container is in, a finished one's details boxed.
#[derive(Clone, Debug)]
pub enum State {
    Waiting(ContainerStateWaiting),
    Running(ContainerStateRunning),
    Terminated(Box<ContainerStateTerminated>),
    /// Not exactly one of the three (never seen from a kubelet): kept as it came.
    Other(Box<ContainerState>),
}

impl From<ContainerState> for State {
    fn from(s: ContainerState) -> Self {
        match s {
            ContainerState { waiting: Some(w), running: None, terminated: None } => Self::Waiting(w),
            ContainerState { waiting: None, running: Some(r), terminated: None } => Self::Running(r),
            ContainerState { waiting: None, running: None, terminated: Some(t) } => Self::Terminated(Box::new(t)),
            other => Self::Other(Box::new(other)),
        }
    }
}

impl From<&State> for ContainerState {
    fn from(s: &State) -> Self {
        match s {
            State::Waiting(w) => Self { waiting: Some(w.clone()), ..Self::default() },
            State::Running(r) => Self { running: Some(r.clone()), ..Self::default() },
            State::Terminated(t) => Self { terminated: Some((**t).clone()), ..Self::default() },
            State::Other(o) => (**o).clone(),
        }
    }
}

/// `Container::state` reads and writes as the API's `ContainerState`.
mod state {
    use super::{ContainerState, Deserialize, Serialize, State};

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<State>, D::Error> {
        Ok(Option::<ContainerState>::deserialize(d)?.map(State::from))
    }

    pub fn serialize<S: serde::Serializer>(state: &Option<State>, s: S) -> Result<S::Ok, S::Error> {
        state.as_ref().map(ContainerState::from).serialize(s)
    }
}

impl Resource for CachedPod {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Pod::kind(&())
    }
    fn group(_: &()) -> Cow<'_, str> {
        Pod::group(&())
    }
    fn version(_: &()) -> Cow<'_, str> {
        Pod::version(&())
    }
    fn plural(_: &()) -> Cow<'_, str> {
        Pod::plural(&())
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl CachedPod {
    /// Of the metadata too, only what podtask reads: the labels and annotations the engine reads back (moved to
    /// `marks`), the owner, the name, uid, times and resourceVersion (not managedFields, nor what the pod's
    /// template or others added).
    pub fn trim(&mut self) {
        self.metadata.managed_fields = None;
        let mut labels = self.metadata.labels.take().unwrap_or_default();
        let mut annotations = self.metadata.annotations.take().unwrap_or_default();
        let labels = READ_LABELS.iter().filter_map(|&k| labels.remove(k).map(|v| (k, v)));
        let annotations = READ_ANNOTATIONS.iter().filter_map(|&k| annotations.remove(k).map(|v| (k, v)));
        self.marks = labels.chain(annotations).collect();
    }

    /// Marks a running pod with the moment the cache first held it running (`naming::NOTE_SEEN_RUNNING`): kept
    /// from the version the cache holds (`before`) while the pod stays running, `now` when it has just started.
    pub fn note_running(&mut self, before: Option<&CachedPod>, now: Timestamp) {
        if self.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Running") {
            return;
        }
        let seen = before.and_then(|b| b.marks.iter().find(|(k, _)| *k == naming::NOTE_SEEN_RUNNING));
        let seen = seen.map_or_else(|| now.to_string(), |(_, v)| v.clone());
        self.marks.push((naming::NOTE_SEEN_RUNNING, seen));
        self.marks.shrink_to_fit();
    }
}

/// podtask's own labels and annotations of its pods that the engine reads (`engine::pod`).
const READ_LABELS: [&str; 1] = [naming::LABEL_ATTEMPT];
const READ_ANNOTATIONS: [&str; 3] =
    [naming::ANNOTATION_START_TIME, naming::ANNOTATION_CREATED_AT, naming::ANNOTATION_DEADLINE];
/// The annotations of the pod the engine sees: those it reads back, and the cache's own note.
const SEEN_ANNOTATIONS: [&str; 4] = [
    naming::ANNOTATION_START_TIME,
    naming::ANNOTATION_CREATED_AT,
    naming::ANNOTATION_DEADLINE,
    naming::NOTE_SEEN_RUNNING,
];

impl From<&CachedPod> for Pod {
    fn from(p: &CachedPod) -> Self {
        let containers = |list: &Option<Vec<Container>>| {
            list.as_ref().map(|list| {
                list.iter()
                    .map(|c| ContainerStatus {
                        name: c.name.clone(),
                        state: c.state.as_ref().map(ContainerState::from),
                        ready: c.ready,
                        restart_count: c.restart_count,
                        started: c.started,
                        ..ContainerStatus::default()
                    })
                    .collect()
            })
        };
        let marks = |keys: &[&str]| {
            let map: BTreeMap<String, String> =
                p.marks.iter().filter(|(k, _)| keys.contains(k)).map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
            (!map.is_empty()).then_some(map)
        };
        let mut metadata = p.metadata.clone();
        if !p.marks.is_empty() {
            metadata.labels = marks(&READ_LABELS);
            metadata.annotations = marks(&SEEN_ANNOTATIONS);
        }
        let conditions = |list: &Option<Vec<Condition>>| {
            list.as_ref().map(|list| {
                list.iter()
                    .map(|c| PodCondition {
                        type_: c.type_.clone().into_owned(),
                        status: c.status.clone().into_owned(),
                        reason: c.reason.clone(),
                        message: c.message.clone(),
                        last_transition_time: c.last_transition_time.clone(),
                        ..PodCondition::default()
                    })
                    .collect()
            })
        };
        Pod {
            metadata,
            spec: p.spec.as_ref().map(|s| PodSpec {
                node_name: s.node_name.clone(),
                termination_grace_period_seconds: s.termination_grace_period_seconds,
                active_deadline_seconds: s.active_deadline_seconds,
                ..PodSpec::default()
            }),
            status: p.status.as_ref().map(|s| PodStatus {
                phase: s.phase.clone(),
                reason: s.reason.clone(),
                message: s.message.clone(),
                start_time: s.start_time.clone(),
                conditions: conditions(&s.conditions),
                container_statuses: containers(&s.container_statuses),
                init_container_statuses: containers(&s.init_container_statuses),
                ..PodStatus::default()
            }),
        }
    }
}

/// A pod as the cache would hold it: what a watch would have delivered.
#[cfg(test)]
pub fn cached(pod: &Pod) -> CachedPod {
    let mut p: CachedPod = serde_json::from_value(serde_json::to_value(pod).expect("a pod is JSON")).expect("a pod");
    p.trim();
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cache marks a running pod with when it first held it running, and keeps that mark through the pod's
    /// later updates while it runs.
    #[test]
    fn the_cache_remembers_when_it_first_held_a_pod_running() {
        let at = |s: &str| -> Timestamp { s.parse().expect("a timestamp") };
        let pod = |phase: &str| -> CachedPod {
            let pod: Pod = serde_json::from_value(serde_json::json!({
                "metadata": {"name": "p", "namespace": "ns"}, "status": {"phase": phase}}))
            .expect("a pod");
            cached(&pod)
        };
        let seen =
            |p: &CachedPod| Pod::from(p).metadata.annotations.and_then(|a| a.get(naming::NOTE_SEEN_RUNNING).cloned());

        let mut pending = pod("Pending");
        pending.note_running(None, at("2026-01-01T10:00:00Z"));
        assert_eq!(seen(&pending), None);
        let mut running = pod("Running");
        running.note_running(Some(&pending), at("2026-01-01T10:00:03Z"));
        assert_eq!(seen(&running).as_deref(), Some("2026-01-01T10:00:03Z"));
        let mut update = pod("Running");
        update.note_running(Some(&running), at("2026-01-01T10:00:09Z"));
        assert_eq!(seen(&update).as_deref(), Some("2026-01-01T10:00:03Z"), "kept while it runs");
        let mut done = pod("Succeeded");
        done.note_running(Some(&update), at("2026-01-01T10:00:10Z"));
        assert_eq!(seen(&done), None);
    }

    /// What the cache saves: a whole `Pod` and a `CachedPod`, before any field is set (each field's content is on
    /// the heap either way).
    #[test]
    fn a_cached_pod_is_a_fraction_of_a_pod() {
        let (whole, cached) = (std::mem::size_of::<Pod>(), std::mem::size_of::<CachedPod>());
        let task = std::mem::size_of::<crate::crd::PodTask>();
        println!("MEASURE size_of Pod={whole} bytes, CachedPod={cached} bytes, PodTask={task} bytes");
        assert!(cached * 3 < whole, "Pod {whole} bytes, CachedPod {cached} bytes");
    }
}
