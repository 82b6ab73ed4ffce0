//! Prometheus metrics: what operators of podtask graph and alert on.

use std::sync::atomic::AtomicI64;

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    pub phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabel {
    pub class: String,
}

/// All of podtask's metrics, registered once.
pub struct Metrics {
    registry: Registry,
    pub reconciles: Counter,
    pub reconcile_errors: Family<KindLabel, Counter>,
    pub reconcile_duration: Histogram,
    pub tasks_by_phase: Family<PhaseLabel, Gauge<i64, AtomicI64>>,
    pub outcomes: Family<ReasonLabel, Counter>,
    pub deadline_lag: Histogram,
    pub image_pull_waits: Family<ClassLabel, Counter>,
    pub attempts_started: Counter,
    pub api_writes: Family<KindLabel, Counter>,
    pub leader: Gauge<i64, AtomicI64>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("podtask");
        let reconciles = Counter::default();
        let reconcile_errors = Family::<KindLabel, Counter>::default();
        let reconcile_duration = Histogram::new([0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0]);
        let tasks_by_phase = Family::<PhaseLabel, Gauge<i64, AtomicI64>>::default();
        let outcomes = Family::<ReasonLabel, Counter>::default();
        let deadline_lag = Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0]);
        let image_pull_waits = Family::<ClassLabel, Counter>::default();
        let attempts_started = Counter::default();
        let api_writes = Family::<KindLabel, Counter>::default();
        let leader = Gauge::<i64, AtomicI64>::default();
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        registry.register("reconcile_errors", "Reconciles that failed, by error kind", reconcile_errors.clone());
        registry.register("reconcile_duration_seconds", "Time spent in one reconcile", reconcile_duration.clone());
        registry.register("tasks", "PodTasks by phase, as last seen by this replica", tasks_by_phase.clone());
        registry.register("task_outcomes", "Tasks that finished, by reason", outcomes.clone());
        registry.register(
            "deadline_enforcement_lag_seconds",
            "From a task's deadline to podtask issuing the delete of its pod",
            deadline_lag.clone(),
        );
        registry.register(
            "image_pull_waits",
            "Times a starting pod was seen waiting on an image pull, by class (backoff, rate_limited)",
            image_pull_waits.clone(),
        );
        registry.register("attempts_started", "Pods created, one per attempt", attempts_started.clone());
        registry.register("api_writes", "Writes to the API server, by kind", api_writes.clone());
        registry.register(
            "leader",
            "1 while this replica holds the leader lease (or runs without election)",
            leader.clone(),
        );
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
            leader,
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

    pub fn write(&self, kind: &str) {
        self.api_writes.get_or_create(&KindLabel { kind: kind.to_owned() }).inc();
    }

    pub fn error(&self, kind: &str) {
        self.reconcile_errors.get_or_create(&KindLabel { kind: kind.to_owned() }).inc();
    }

    /// A task moved from phase `from` to phase `to`.
    /// Recount tasks by phase (from the watch cache, at scrape time).
    pub fn count_phases<'a>(&self, phases: impl Iterator<Item = &'a str>) {
        let mut counts = std::collections::BTreeMap::<&str, i64>::new();
        for p in ["Pending", "Starting", "Running", "Succeeded", "Failed"] {
            counts.insert(p, 0);
        }
        for p in phases {
            *counts.entry(p).or_default() += 1;
        }
        for (phase, n) in counts {
            self.tasks_by_phase.get_or_create(&PhaseLabel { phase: phase.to_owned() }).set(n);
        }
    }
}
