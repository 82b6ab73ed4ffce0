//! The shell: everything that talks to the API server, the network or the process.

pub mod api_client;
pub mod api_health;
pub mod cached_pod;
pub mod clock;
pub mod context;
pub mod controller;
pub mod error;
pub mod events;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod permits;
pub mod pod_cache;
pub mod preflight;
pub mod reconciler;
pub mod request_count;
pub mod request_timeout;
pub mod run;
pub mod runner;
pub mod task_cache;
pub mod telemetry;
pub mod throttle;
pub mod wakeups;
pub mod watched;

#[cfg(test)]
mod footprint_tests;
