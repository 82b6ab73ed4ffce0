//! Pods as podtask's watch cache holds them: only the fields the engine reads.
//!
//! A `k8s_openapi` `Pod` is a large struct even with every field empty (its spec alone has dozens of optional
//! fields and nested structs held inline), and the cache holds one per pod podtask owns. The pod watch reads each
//! pod as a `WatchedPod` (serde skips every other field, so no whole pod is ever built); the cache keeps of it a
//! `CachedPod`, without the rest of its metadata, and turns that back into a `Pod` with the same fields when a
//! reconcile needs one.

use std::{borrow::Cow, collections::BTreeMap};

use k8s_openapi::{
    NamespaceResourceScope,
    api::core::v1::{
        ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, Pod,
        PodCondition, PodSpec, PodStatus,
    },
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time},
};
use kube::Resource;
use serde::Deserialize;

use crate::{engine::naming, jiff::Timestamp};

/// A pod as the watch delivers it (kube-runtime's watcher needs a whole `ObjectMeta`): read, put in the cache as a
/// `CachedPod`, and dropped.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct WatchedPod {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: Option<Spec>,
    #[serde(default)]
    pub status: Option<Status>,
}

/// What the cache keeps of a pod. Its namespace and name are the cache's keys, not copied here; of its metadata
/// only what the engine reads.
#[derive(Clone, Debug, Default)]
pub struct CachedPod {
    uid: Box<str>,
    /// Its resourceVersion: the precondition of a delete on the cache's word (a stop that is overdue).
    version: Box<str>,
    created: Option<Time>,
    deleting: Option<Time>,
    /// The UID of the owner that controls the pod (`engine::pod::is_owned_by` reads no more of its owners).
    controller: Option<Box<str>>,
    /// The labels and annotations of its own that podtask reads back (a map costs a node of some 500 bytes even
    /// for one entry), and the cache's own note (`note_running`).
    marks: Box<[(&'static str, Box<str>)]>,
    spec: Option<Spec>,
    status: Option<Status>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    #[serde(default)]
    pub node_name: Option<String>,
    #[serde(default)]
    pub termination_grace_period_seconds: Option<i64>,
    #[serde(default)]
    pub active_deadline_seconds: Option<i64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    #[serde(default)]
    pub phase: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub start_time: Option<Time>,
    #[serde(default)]
    pub conditions: Option<Vec<Condition>>,
    #[serde(default)]
    pub container_statuses: Option<Vec<Container>>,
    #[serde(default)]
    pub init_container_statuses: Option<Vec<Container>>,
}

/// A pod condition: its type and status, and only for `PodScheduled` (and `Ready` while not True) its reason,
/// message and lastTransitionTime
/// (the only conditions whose details the engine reads: `engine::classify`, `engine::pod::scheduled_at` and
/// `unreachable_node`; a
/// failure policy's `onPodConditions` matches type and status). Its type and status are nearly always one of a
/// few words every pod has: those are kept as the one shared copy, not a string of their own per pod.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(from = "ApiCondition")]
pub struct Condition {
    pub type_: Cow<'static, str>,
    pub status: Cow<'static, str>,
    pub details: Option<Box<ConditionDetails>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionDetails {
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub last_transition_time: Option<Time>,
}

/// A condition as the API sends it, without `lastProbeTime` and `observedGeneration`.
#[derive(Deserialize)]
struct ApiCondition {
    #[serde(rename = "type", deserialize_with = "interned")]
    type_: Cow<'static, str>,
    #[serde(deserialize_with = "interned")]
    status: Cow<'static, str>,
    #[serde(flatten)]
    details: ConditionDetails,
}

impl From<ApiCondition> for Condition {
    fn from(c: ApiCondition) -> Self {
        // Ready's details only while it is not True: a reason-less False is the node lifecycle controller's
        // mark of a pod whose node stopped answering (`engine::pod::unreachable_node`).
        let keep = c.type_ == "PodScheduled" || (c.type_ == "Ready" && c.status != "True");
        let details = keep.then(|| Box::new(c.details));
        Self { type_: c.type_, status: c.status, details }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub name: String,
    #[serde(default, deserialize_with = "state")]
    pub state: Option<State>,
    #[serde(default)]
    pub ready: bool,
    #[serde(default)]
    pub restart_count: i32,
    #[serde(default)]
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

/// `Container::state` reads as the API's `ContainerState`.
fn state<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<State>, D::Error> {
    Ok(Option::<ContainerState>::deserialize(d)?.map(State::from))
}

impl Resource for WatchedPod {
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

/// The entries of `keys` that `map` has.
fn read<'a>(
    map: &'a Option<BTreeMap<String, String>>,
    keys: &'static [&'static str],
) -> impl Iterator<Item = (&'static str, Box<str>)> + 'a {
    keys.iter().filter_map(move |&k| map.as_ref().and_then(|m| m.get(k)).map(|v| (k, v.as_str().into())))
}

impl From<&WatchedPod> for CachedPod {
    fn from(p: &WatchedPod) -> Self {
        let m = &p.metadata;
        let controller = m.owner_references.iter().flatten().find(|o| o.controller == Some(true));
        Self {
            uid: m.uid.as_deref().unwrap_or_default().into(),
            version: m.resource_version.as_deref().unwrap_or_default().into(),
            created: m.creation_timestamp.clone(),
            deleting: m.deletion_timestamp.clone(),
            controller: controller.map(|o| o.uid.as_str().into()),
            marks: read(&m.labels, &READ_LABELS).chain(read(&m.annotations, &READ_ANNOTATIONS)).collect(),
            spec: p.spec.clone(),
            status: p.status.clone(),
        }
    }
}

impl CachedPod {
    /// The UID of the owner that controls the pod.
    pub fn controller(&self) -> Option<&str> {
        self.controller.as_deref()
    }

    pub fn is_running(&self) -> bool {
        self.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
    }

    /// Marks a running pod with the moment the cache first held it running (`naming::NOTE_SEEN_RUNNING`): kept
    /// from the version the cache holds (`before`) while the pod stays running, `now` when it has just started.
    pub fn note_running(&mut self, before: Option<&CachedPod>, now: Timestamp) {
        if !self.is_running() {
            return;
        }
        let seen = before.and_then(|b| b.marks.iter().find(|(k, _)| *k == naming::NOTE_SEEN_RUNNING));
        let seen = seen.map_or_else(|| now.to_string().into(), |(_, v)| v.clone());
        let mut marks = std::mem::take(&mut self.marks).into_vec();
        marks.push((naming::NOTE_SEEN_RUNNING, seen));
        self.marks = marks.into();
    }

    /// The pod as the engine reads it, with the fields the cache kept.
    pub fn to_pod(&self, namespace: &str, name: &str) -> Pod {
        let marks = |keys: &[&str]| {
            let map: BTreeMap<String, String> = self
                .marks
                .iter()
                .filter(|(k, _)| keys.contains(k))
                .map(|(k, v)| ((*k).to_owned(), v.to_string()))
                .collect();
            (!map.is_empty()).then_some(map)
        };
        let owner = |uid: &str| OwnerReference { uid: uid.to_string(), controller: Some(true), ..Default::default() };
        let metadata = ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            uid: (!self.uid.is_empty()).then(|| self.uid.to_string()),
            resource_version: (!self.version.is_empty()).then(|| self.version.to_string()),
            creation_timestamp: self.created.clone(),
            deletion_timestamp: self.deleting.clone(),
            owner_references: self.controller.as_deref().map(|uid| vec![owner(uid)]),
            labels: marks(&READ_LABELS),
            annotations: marks(&SEEN_ANNOTATIONS),
            ..ObjectMeta::default()
        };
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
        let conditions = |list: &Option<Vec<Condition>>| {
            list.as_ref().map(|list| {
                list.iter()
                    .map(|c| {
                        let details = c.details.as_deref().cloned().unwrap_or_default();
                        PodCondition {
                            type_: c.type_.clone().into_owned(),
                            status: c.status.clone().into_owned(),
                            reason: details.reason,
                            message: details.message,
                            last_transition_time: details.last_transition_time,
                            ..PodCondition::default()
                        }
                    })
                    .collect()
            })
        };
        Pod {
            metadata,
            spec: self.spec.as_ref().map(|s| PodSpec {
                node_name: s.node_name.clone(),
                termination_grace_period_seconds: s.termination_grace_period_seconds,
                active_deadline_seconds: s.active_deadline_seconds,
                ..PodSpec::default()
            }),
            status: self.status.as_ref().map(|s| PodStatus {
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

/// podtask's own labels and annotations of its pods that the engine reads (`engine::pod`).
const READ_LABELS: [&str; 1] = [naming::LABEL_ATTEMPT];
const READ_ANNOTATIONS: [&str; 4] = [
    naming::ANNOTATION_START_TIME,
    naming::ANNOTATION_CREATED_AT,
    naming::ANNOTATION_DEADLINE,
    naming::ANNOTATION_DECIDING,
];
/// The annotations of the pod the engine sees: those it reads back, and the cache's own note.
const SEEN_ANNOTATIONS: [&str; 5] =
    [READ_ANNOTATIONS[0], READ_ANNOTATIONS[1], READ_ANNOTATIONS[2], READ_ANNOTATIONS[3], naming::NOTE_SEEN_RUNNING];

/// A pod as the watch would deliver it.
#[cfg(test)]
pub fn watched(pod: &Pod) -> WatchedPod {
    serde_json::from_value(serde_json::to_value(pod).expect("a pod is JSON")).expect("a pod")
}

/// A pod as the engine would see it through the cache.
#[cfg(test)]
pub fn through_cache(pod: &Pod) -> Pod {
    use kube::ResourceExt;
    CachedPod::from(&watched(pod)).to_pod(&pod.namespace().unwrap_or_default(), &pod.name_any())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the cache saves: a whole `Pod` and a `CachedPod`, before any field is set (each field's content is on
    /// the heap either way).
    #[test]
    fn a_cached_pod_is_a_fraction_of_a_pod() {
        let (whole, cached) = (std::mem::size_of::<Pod>(), std::mem::size_of::<CachedPod>());
        let task = std::mem::size_of::<crate::crd::PodTask>();
        println!("MEASURE size_of Pod={whole} bytes, CachedPod={cached} bytes, PodTask={task} bytes");
        assert!(cached * 7 < whole, "Pod {whole} bytes, CachedPod {cached} bytes");
    }
}
