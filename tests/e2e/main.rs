//! End-to-end tests of podtask: the real operator binary against a real control plane (kube-apiserver, etcd,
//! controller-manager, scheduler) with kwok nodes, each test in its own namespace with its own operator.
//!
//! Run: `hack/test-env.sh cargo test --features e2e --test e2e` (or `source ~/.cache/podtask/cluster/env` first).
//! Operator logs: target/e2e-logs/<test>.log. Figures: `-- --nocapture 2>&1 | grep MEASURE`.
//! Keep the namespaces of a run for inspection: PODTASK_E2E_KEEP=1.
//! Tests run in parallel with cargo's default thread count (no `--test-threads` needed): each has its own namespace
//! and its own operator watching only that namespace; the whole suite takes about 50 s on two cores.

mod cli;
mod cost;
mod deadline;
mod failure_policy;
mod finishing;
mod hardening;
mod harness;
mod leader;
mod metrics;
mod quota;
mod restart;
mod sidecars;
mod startup;
mod validation;
