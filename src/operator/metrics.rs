//! Prometheus metrics: what operators of podtask graph and alert on.

use std::{fmt::Write as _, sync::atomic::AtomicI64};

use strum::IntoEnumIterator;

use super::error::ErrorKind;
use crate::crd::{Phase, Reason};

use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// A label value spelled by strum (`snake_case` for podtask's own kinds, the enum's name for API-visible ones).
macro_rules! label_value {
    ($($t:ty),*) => {$(
        impl EncodeLabelValue for $t {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
                encoder.write_str(self.into())
            }
        }
    )*};
}

/// Writes to the API server, by what was written.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, strum::IntoStaticStr, strum::EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum WriteKind {
    PodCreate,
    Status,
    PodDelete,
    /// A kept pod's activeDeadlineSeconds lowered, so its sidecars stop.
    PodStop,
    TaskDelete,
}

/// How a starting pod was seen waiting on an image pull.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, strum::IntoStaticStr, strum::EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum PullWait {
    Backoff,
    RateLimited,
}

label_value!(WriteKind, PullWait, ErrorKind, Phase, Reason);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabel {
    pub kind: WriteKind,
}

/// A request to the API server: its verb (get, list, watch, create, update, patch, delete) and resource.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabel {
    pub verb: String,
    pub resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabel {
    pub kind: ErrorKind,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    pub phase: Phase,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: Reason,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabel {
    pub class: PullWait,
}

const LAG_HELP: &str =
    "From the instant stopping a pod was due (its deadline minus its grace period) to podtask issuing the delete";
const PULL_WAITS_HELP: &str =
    "Times a starting pod was seen waiting on an image pull, by class (backoff, rate_limited)";
const API_REQUESTS_HELP: &str =
    "Requests sent to the API server, by verb and resource (every one: reconciles, watches, Events, probes, leases)";
const LEADER_HELP: &str = "1 while this replica holds the leader lease (or runs without election)";
const API_UNAVAILABLE_HELP: &str =
    "1 while the API server is unreachable or failing (5xx) and every reconcile waits for it to answer again";
const API_OUTAGES_HELP: &str = "Times the API server became unreachable or failing, as this replica saw it";
const API_THROTTLED_HELP: &str = "Times the API server throttled podtask (429) and every request paused";

/// What the operator-wide view of the API server reports (api_health.rs).
#[derive(Clone, Debug, Default)]
pub struct ApiSignals {
    pub unavailable: Gauge<i64, AtomicI64>,
    pub outages: Counter,
    pub throttled: Counter,
}

/// All of podtask's metrics, registered once.
pub struct Metrics {
    registry: Registry,
    pub reconciles: Counter,
    pub reconcile_errors: Family<ErrorLabel, Counter>,
    pub reconcile_duration: Histogram,
    pub tasks_by_phase: Family<PhaseLabel, Gauge<i64, AtomicI64>>,
    pub outcomes: Family<ReasonLabel, Counter>,
    pub deadline_lag: Histogram,
    pub image_pull_waits: Family<ClassLabel, Counter>,
    pub attempts_started: Counter,
    pub api_writes: Family<WriteLabel, Counter>,
    pub api_requests: Family<RequestLabel, Counter>,
    pub leader: Gauge<i64, AtomicI64>,
    pub events_dropped: Counter,
    pub api: ApiSignals,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("podtask");
        let reconciles = Counter::default();
        let reconcile_errors = Family::<ErrorLabel, Counter>::default();
        let reconcile_duration = Histogram::new([0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0]);
        let tasks_by_phase = Family::<PhaseLabel, Gauge<i64, AtomicI64>>::default();
        let outcomes = Family::<ReasonLabel, Counter>::default();
        let deadline_lag = Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0]);
        let image_pull_waits = Family::<ClassLabel, Counter>::default();
        let attempts_started = Counter::default();
        let api_writes = Family::<WriteLabel, Counter>::default();
        let api_requests = Family::<RequestLabel, Counter>::default();
        let leader = Gauge::<i64, AtomicI64>::default();
        let events_dropped = Counter::default();
        let api = ApiSignals::default();
        // Every known label value from the start, at 0: a series that appears only with its first event hides that
        // event from rate() and increase(), and dashboards and alerts could not tell "none" from "not exported".
        for kind in ErrorKind::iter() {
            let _ = reconcile_errors.get_or_create(&ErrorLabel { kind });
        }
        for class in PullWait::iter() {
            let _ = image_pull_waits.get_or_create(&ClassLabel { class });
        }
        for reason in Reason::iter() {
            let _ = outcomes.get_or_create(&ReasonLabel { reason });
        }
        for kind in WriteKind::iter() {
            let _ = api_writes.get_or_create(&WriteLabel { kind });
        }
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        registry.register("reconcile_errors", "Reconciles that failed, by error kind", reconcile_errors.clone());
        registry.register("reconcile_duration_seconds", "Time spent in one reconcile", reconcile_duration.clone());
        registry.register("tasks", "PodTasks by phase, as last seen by this replica", tasks_by_phase.clone());
        registry.register("task_outcomes", "Tasks that finished, by reason", outcomes.clone());
        registry.register("deadline_enforcement_lag_seconds", LAG_HELP, deadline_lag.clone());
        registry.register("image_pull_waits", PULL_WAITS_HELP, image_pull_waits.clone());
        registry.register("attempts_started", "Pods created, one per attempt", attempts_started.clone());
        registry.register("api_writes", "Writes to the API server, by kind", api_writes.clone());
        registry.register("api_requests", API_REQUESTS_HELP, api_requests.clone());
        registry.register("leader", LEADER_HELP, leader.clone());
        registry.register("events_dropped", "Events not sent because the event queue was full", events_dropped.clone());
        registry.register("api_unavailable", API_UNAVAILABLE_HELP, api.unavailable.clone());
        registry.register("api_outages", API_OUTAGES_HELP, api.outages.clone());
        registry.register("api_throttled", API_THROTTLED_HELP, api.throttled.clone());
        Self {
            registry,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            tasks_by_phase,
            outcomes,
            deadline_lag,
            image_pull_waits,
            attempts_started,
            api_writes,
            api_requests,
            leader,
            events_dropped,
            api,
        }
    }
}

impl Metrics {
    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }

    pub fn write(&self, kind: WriteKind) {
        self.api_writes.get_or_create(&WriteLabel { kind }).inc();
    }

    pub fn error(&self, kind: ErrorKind) {
        self.reconcile_errors.get_or_create(&ErrorLabel { kind }).inc();
    }

    pub fn outcome(&self, reason: Reason) {
        self.outcomes.get_or_create(&ReasonLabel { reason }).inc();
    }

    pub fn pull_wait(&self, class: PullWait) {
        self.image_pull_waits.get_or_create(&ClassLabel { class }).inc();
    }

    /// Recount tasks by phase (from the watch cache, at scrape time).
    pub fn count_phases(&self, phases: impl Iterator<Item = Phase>) {
        let mut counts: std::collections::BTreeMap<Phase, i64> = Phase::iter().map(|p| (p, 0)).collect();
        for p in phases {
            *counts.entry(p).or_default() += 1;
        }
        for (phase, n) in counts {
            self.tasks_by_phase.get_or_create(&PhaseLabel { phase }).set(n);
        }
    }

    /// Counts a reconcile and records its duration when dropped, however the reconcile ends.
    pub fn time_reconcile(&self) -> ReconcileTimer<'_> {
        self.reconciles.inc();
        ReconcileTimer { metrics: self, started: std::time::Instant::now() }
    }
}

/// Records a reconcile's duration on drop.
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    started: std::time::Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics.reconcile_duration.observe(self.started.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dashboards and alerts query these before anything has happened: each family is exported at 0 for every
    /// label value it can take.
    #[test]
    fn labelled_counters_are_exported_at_zero_before_their_first_event() {
        let text = Metrics::default().render();
        for series in [
            r#"podtask_reconcile_errors_total{kind="api"} 0"#,
            r#"podtask_reconcile_errors_total{kind="stale"} 0"#,
            r#"podtask_image_pull_waits_total{class="backoff"} 0"#,
            r#"podtask_image_pull_waits_total{class="rate_limited"} 0"#,
            r#"podtask_api_writes_total{kind="pod_create"} 0"#,
            r#"podtask_api_writes_total{kind="status"} 0"#,
            r#"podtask_api_writes_total{kind="pod_delete"} 0"#,
            r#"podtask_api_writes_total{kind="task_delete"} 0"#,
            r#"podtask_task_outcomes_total{reason="Completed"} 0"#,
            r#"podtask_task_outcomes_total{reason="DeadlineExceeded"} 0"#,
            "podtask_api_unavailable 0",
            "podtask_api_outages_total 0",
            "podtask_api_throttled_total 0",
        ] {
            assert!(text.lines().any(|l| l == series), "{series} missing from:\n{text}");
        }
    }
}
