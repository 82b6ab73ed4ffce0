//! Everything a reconcile needs, handed in from outside so tests can substitute any part.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::{
    Client,
    runtime::{events::Recorder, reflector::Store},
};

use super::metrics::Metrics;
use crate::{core, jiff::Timestamp};

/// The clock. Production reads the system time; tests set it.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(Timestamp::now)
}

pub struct Context {
    pub client: Client,
    /// podtask's own pods (label-selected), from the watch cache.
    pub pods: Store<Pod>,
    pub recorder: Recorder,
    pub config: core::Config,
    pub metrics: Arc<Metrics>,
    pub clock: Clock,
}

impl Context {
    pub fn now(&self) -> Timestamp {
        (self.clock)()
    }
}
