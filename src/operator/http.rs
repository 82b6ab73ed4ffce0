//! `/metrics`, `/healthz`, `/readyz` on one port.

use std::{net::SocketAddr, sync::Arc};

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use tokio::sync::watch;

use super::metrics::Metrics;

/// What the probes and the scrape read.
#[derive(Clone)]
pub struct HttpState {
    pub metrics: Arc<Metrics>,
    /// True once watch caches synced (or, as a standby with leader election, once the lease is being watched).
    pub ready: watch::Receiver<bool>,
    /// Refreshes phase counts just before a scrape.
    pub before_scrape: Arc<dyn Fn() + Send + Sync>,
}

pub async fn serve(addr: SocketAddr, state: HttpState) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await
}

async fn metrics(State(p): State<HttpState>) -> impl IntoResponse {
    (p.before_scrape)();
    ([("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8")], p.metrics.render())
}

async fn readyz(State(p): State<HttpState>) -> impl IntoResponse {
    if *p.ready.borrow() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "watch caches not synced yet")
    }
}
