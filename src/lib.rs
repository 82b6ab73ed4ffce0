//! podtask: a Kubernetes operator that runs one pod per PodTask, reliably.
//!
//! `core` decides (pure, table-tested); everything else is the shell that reads, applies and reports.

pub mod crd;
pub mod duration;
pub mod engine;
pub use k8s_openapi::jiff;
pub mod operator;
pub mod rbac;
pub mod time_spec;
