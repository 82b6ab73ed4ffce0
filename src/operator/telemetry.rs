//! Structured logs, as JSON for log pipelines or text for people.

use std::io::IsTerminal;

use clap::ValueEnum;

/// Appended to every log filter: kube's client module logs response bodies at WARN, and its request tracing logs
/// every failed request at ERROR (a line per request during an outage). podtask reports API trouble itself, once
/// for the whole operator (api_health), without bodies.
const QUIET_CLIENT: &str = "kube_client::client=error,kube_client::client::builder=off";
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

/// Install the global subscriber. `level` is a tracing filter: `info`, `debug`, or `podtask=debug,kube=warn`.
pub fn init(format: LogFormat, level: &str) -> Result<(), String> {
    // kube's client logs a whole response body at WARN when it cannot read it (a list of PodTasks: every pod
    // template, env values included). podtask reports those failures itself, without the body.
    let filter =
        EnvFilter::try_new(format!("{level},{QUIET_CLIENT}")).map_err(|e| format!("--log-level {level:?}: {e}"))?;
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Json => registry.with(fmt::layer().json().flatten_event(true).with_current_span(false)).try_init(),
        // Colours only on a terminal: never escape codes in files or `kubectl logs`.
        LogFormat::Text => {
            registry.with(fmt::layer().with_target(false).with_ansi(std::io::stdout().is_terminal())).try_init()
        }
    }
    .map_err(|e| e.to_string())
}
