//! Kubernetes Events about PodTasks (`events.k8s.io/v1`), named so that any accepted PodTask name fits.
//!
//! kube-runtime's `Recorder` names an Event `<object name>.<nanoseconds>`, which exceeds the 253 characters an
//! object name may have once the PodTask's own name is longer than about 236: every Event for such a task would
//! be refused. podtask publishes one Event per transition (no series to aggregate), so it creates them itself
//! with the name shortened.

use futures::StreamExt;
use k8s_openapi::{
    api::{core::v1::ObjectReference, events::v1::Event as KubeEvent},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
};
use kube::{Api, Client, api::PostParams};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc::{self, error::TrySendError};
use tracing::{Instrument, Span, debug, warn};

use crate::{engine, jiff::Timestamp};

/// The controller name Events carry.
pub const CONTROLLER: &str = "podtask";

/// The longest object name the API server accepts.
const MAX_NAME: usize = 253;

/// Events waiting to be sent, at most: a further Event is dropped and counted (`podtask_events_dropped_total`), as
/// client-go's event broadcaster does. Thousands of tasks changing at once never hold thousands of Events (and
/// their requests) in memory, nor let them crowd out the status writes and pod deletes they are about.
pub const QUEUE: usize = 4096;
/// Events being sent at once.
const SENDERS: usize = 32;

/// Publishes Events on behalf of one operator replica.
#[derive(Clone)]
pub struct Publisher {
    creator: Creator,
    queue: mpsc::Sender<Queued>,
    dropped: Counter,
}

/// Creates Events in the API server.
#[derive(Clone)]
struct Creator {
    client: Client,
    instance: String,
}

/// An Event waiting to be sent, with when it happened and the reconcile it came from.
struct Queued {
    event: engine::Event,
    regarding: ObjectReference,
    at: Timestamp,
    span: Span,
}

impl Publisher {
    /// A publisher and its senders (in the background, until every clone of the publisher is gone); `dropped`
    /// counts the Events that found the queue full.
    pub fn start(client: Client, instance: String, dropped: Counter) -> Self {
        let creator = Creator { client, instance };
        let (queue, mut waiting) = mpsc::channel::<Queued>(QUEUE);
        let senders = creator.clone();
        let send = move |q: Queued| {
            let creator = senders.clone();
            async move {
                if let Err(err) = creator.create(&q.event, &q.regarding, q.at).await {
                    let reason = &q.event.reason;
                    warn!(error = %super::reconciler::short_error(&err), %reason, "could not record event");
                }
            }
            .instrument(q.span)
        };
        tokio::spawn(futures::stream::poll_fn(move |cx| waiting.poll_recv(cx)).for_each_concurrent(SENDERS, send));
        Self { creator, queue, dropped }
    }

    /// Queue the Event `e` about `regarding` (a PodTask), to be sent in the background.
    pub fn queue(&self, e: &engine::Event, regarding: ObjectReference) {
        let q = Queued { event: e.clone(), regarding, at: Timestamp::now(), span: Span::current() };
        if let Err(TrySendError::Full(q)) = self.queue.try_send(q) {
            self.dropped.inc();
            debug!(reason = %q.event.reason, "event queue full; event dropped");
        }
    }

    /// Create the Event `e` about `regarding` (a PodTask) now.
    pub async fn publish(&self, e: &engine::Event, regarding: &ObjectReference) -> Result<(), kube::Error> {
        self.creator.create(e, regarding, Timestamp::now()).await
    }
}

impl Creator {
    async fn create(&self, e: &engine::Event, regarding: &ObjectReference, now: Timestamp) -> Result<(), kube::Error> {
        let namespace = regarding.namespace.clone().unwrap_or_else(|| "default".into());
        let event = KubeEvent {
            metadata: ObjectMeta {
                name: Some(event_name(regarding.name.as_deref().unwrap_or(CONTROLLER), now)),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            event_time: Some(MicroTime(now)),
            type_: Some(if e.warning { "Warning" } else { "Normal" }.into()),
            reason: Some(e.reason.clone()),
            note: Some(engine::classify::truncate_middle(&e.note, 1000)),
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

    /// However many Events come at once, at most QUEUE wait; the rest are counted as dropped.
    #[tokio::test]
    async fn a_full_event_queue_drops_and_counts() {
        let client = Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap();
        let dropped = Counter::default();
        let publisher = Publisher::start(client, "test".into(), dropped.clone());
        let event = engine::Event {
            warning: false,
            reason: "PodCreated".into(),
            note: "created pod t-1".into(),
            action: "Create",
            pod: Some("t-1".into()),
        };
        let regarding = ObjectReference { name: Some("t".into()), namespace: Some("ns".into()), ..Default::default() };
        // Nothing is sent while this test holds its one thread: the queue takes QUEUE Events, no more.
        for _ in 0..QUEUE + 100 {
            publisher.queue(&event, regarding.clone());
        }
        assert_eq!(dropped.get(), 100);
    }
}
