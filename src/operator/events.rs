//! Kubernetes Events about PodTasks (`events.k8s.io/v1`), named so that any accepted PodTask name fits.
//!
//! kube-runtime's `Recorder` names an Event `<object name>.<nanoseconds>`, which exceeds the 253 characters an
//! object name may have once the PodTask's own name is longer than about 236: every Event for such a task would
//! be refused. podtask publishes one Event per transition (no series to aggregate), so it creates them itself
//! with the name shortened.

use k8s_openapi::{
    api::{core::v1::ObjectReference, events::v1::Event as KubeEvent},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
};
use kube::{Api, Client, api::PostParams};

use crate::{engine, jiff::Timestamp};

/// The controller name Events carry.
pub const CONTROLLER: &str = "podtask";

/// The longest object name the API server accepts.
const MAX_NAME: usize = 253;

/// Publishes Events on behalf of one operator replica.
#[derive(Clone)]
pub struct Publisher {
    client: Client,
    instance: String,
}

impl Publisher {
    pub fn new(client: Client, instance: String) -> Self {
        Self { client, instance }
    }

    /// Create the Event `e` about `regarding` (a PodTask).
    pub async fn publish(&self, e: &engine::Event, regarding: &ObjectReference) -> Result<(), kube::Error> {
        let namespace = regarding.namespace.clone().unwrap_or_else(|| "default".into());
        let now = Timestamp::now();
        let event = KubeEvent {
            metadata: ObjectMeta {
                name: Some(event_name(regarding.name.as_deref().unwrap_or(CONTROLLER), now)),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            event_time: Some(MicroTime(now)),
            type_: Some(if e.warning { "Warning" } else { "Normal" }.into()),
            reason: Some(e.reason.clone()),
            note: Some(engine::classify::truncate(&e.note, 1000)),
            action: Some(e.action.into()),
            regarding: Some(regarding.clone()),
            related: e.pod.as_ref().map(|name| ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..Default::default()
            }),
            reporting_controller: Some(CONTROLLER.into()),
            reporting_instance: Some(self.instance.clone()),
            ..Default::default()
        };
        Api::<KubeEvent>::namespaced(self.client.clone(), &namespace).create(&PostParams::default(), &event).await?;
        Ok(())
    }
}

/// `<object name>.<nanoseconds in hex>`, with the object name shortened (at a character that may end a DNS
/// label) so the whole stays within 253 characters.
pub fn event_name(object: &str, now: Timestamp) -> String {
    let suffix = format!(".{:x}", now.as_nanosecond());
    let room = MAX_NAME - suffix.len();
    let base = &object[..object.len().min(room)];
    let base = base.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    format!("{base}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_fit_for_any_task_name() {
        let now: Timestamp = "2026-11-22T10:00:00.123456789Z".parse().unwrap();
        assert!(event_name("hello", now).starts_with("hello."));
        for name in
            ["a".repeat(253), format!("{}.-b", "a".repeat(233)), format!("{}-{}", "x".repeat(236), "y".repeat(16))]
        {
            let e = event_name(&name, now);
            assert!(e.len() <= 253, "{} characters", e.len());
            assert!(!e.contains("-.") && !e.contains(".."), "every label ends alphanumeric: {e}");
        }
    }
}
