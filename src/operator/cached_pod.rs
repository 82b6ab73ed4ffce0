//! Pods as podtask's watch cache holds them: only the fields the engine reads.
//!
//! A `k8s_openapi` `Pod` is a large struct even with every field empty (its spec alone has dozens of optional
//! fields and nested structs held inline), and the cache holds one per pod podtask owns. `CachedPod` is read straight
//! from the watch (serde skips every other field, so no whole pod is ever built) and turned back into a `Pod` with
//! the same fields when a reconcile needs one.

use std::borrow::Cow;

use k8s_openapi::{
    NamespaceResourceScope,
    api::core::v1::{ContainerState, ContainerStatus, Pod, PodCondition, PodSpec, PodStatus},
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time},
};
use kube::{Resource, ResourceExt};
use serde::{Deserialize, Serialize};

use crate::engine::naming;

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct CachedPod {
    pub metadata: ObjectMeta,
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
    pub conditions: Option<Vec<PodCondition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_statuses: Option<Vec<Container>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_container_statuses: Option<Vec<Container>>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ContainerState>,
    #[serde(default)]
    pub ready: bool,
    #[serde(default)]
    pub restart_count: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<bool>,
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
    /// Of the metadata too, only what podtask reads: its own labels and annotations, the owner, the name, uid,
    /// times and resourceVersion (not managedFields, nor what the pod's template or others added).
    pub fn trim(&mut self) {
        self.managed_fields_mut().clear();
        self.labels_mut().retain(|k, _| k.starts_with(naming::PREFIX));
        self.annotations_mut().retain(|k, _| k.starts_with(naming::PREFIX));
    }
}

impl From<&CachedPod> for Pod {
    fn from(p: &CachedPod) -> Self {
        let containers = |list: &Option<Vec<Container>>| {
            list.as_ref().map(|list| {
                list.iter()
                    .map(|c| ContainerStatus {
                        name: c.name.clone(),
                        state: c.state.clone(),
                        ready: c.ready,
                        restart_count: c.restart_count,
                        started: c.started,
                        ..ContainerStatus::default()
                    })
                    .collect()
            })
        };
        Pod {
            metadata: p.metadata.clone(),
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
                conditions: s.conditions.clone(),
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
