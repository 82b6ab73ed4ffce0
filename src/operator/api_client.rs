//! The client podtask talks to the API server with: kube's own middleware (base URI, credentials, extra headers,
//! retry of 429/503/504 answers) over a connection that speaks HTTP/2 when the server offers it, as client-go does.
//!
//! kube's default stack offers only HTTP/1.1, so every request in flight holds a TCP and TLS connection of its own:
//! with a hundred reconciles at once the operator kept ~120 connections open, ~5 MB of buffers and TLS state, and
//! the API server as many TLS sessions. Over HTTP/2 every request and watch is a stream of one connection.
//! Through an HTTP or SOCKS proxy podtask keeps kube's default stack (HTTP/1.1). Either way every request but a
//! watch is limited to `request_timeout::REQUEST_TIMEOUT`, and the whole client to `--kube-api-qps`.

use std::time::Duration;

use hyper_util::{
    client::legacy::{Client as HyperClient, connect::HttpConnector},
    rt::{TokioExecutor, TokioTimer},
};
use kube::client::{Body, ClientBuilder, ConfigExt, retry::RetryPolicy};
use tower::{BoxError, ServiceBuilder, ServiceExt as _, retry::RetryLayer};

use super::{
    request_count::CountLayer,
    request_timeout::{REQUEST_TIMEOUT, RequestTimeoutLayer},
    throttle::ThrottleLayer,
};

/// How often an idle HTTP/2 connection is pinged, and how long a ping may go unanswered before the connection is
/// dropped (and every request on it fails, to be retried on a new one): a dead connection (the network between
/// podtask and the API server dropping packets) is noticed within 10 s, and podtask's probe then finds the API
/// server again on a new connection. Kept, a connection whose packets were dropped for a while resumes only at
/// TCP's next retransmission, seconds after the network is back.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// A client for `config`, sending at most `qps` requests per second with bursts of `burst` (0: no limit), each
/// request counted by `count`.
pub fn build(config: kube::Config, qps: u32, burst: u32, count: CountLayer) -> Result<kube::Client, kube::Error> {
    let throttle = ThrottleLayer::new(qps, burst);
    // Inside the throttle: the time a request waits for its turn is not the API server's.
    let timeout = RequestTimeoutLayer::new(REQUEST_TIMEOUT);
    if config.proxy_url.is_some() {
        return Ok(ClientBuilder::try_from(config)?
            .with_layer(&timeout)
            .with_layer(&throttle)
            .with_layer(&count)
            .build());
    }
    let tls = config.rustls_client_config()?;
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http();
    let https = match &config.tls_server_name {
        Some(name) => https.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(
            name.clone().try_into().map_err(|e| kube::Error::Service(Box::new(e)))?,
        )),
        None => https,
    };
    let https = https.enable_all_versions().wrap_connector(tcp);
    let mut connector = hyper_timeout::TimeoutConnector::new(https);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    // HTTP/2 pings and the idle-connection pool need a timer.
    let http = HyperClient::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .http2_keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
        .http2_keep_alive_while_idle(true)
        .build::<_, Body>(connector);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.default_retry.then(|| RetryLayer::new(RetryPolicy::server_retry())))
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .service(http.map_err(BoxError::from));
    Ok(ClientBuilder::new(service, config.default_namespace.clone())
        .with_layer(&timeout)
        .with_layer(&throttle)
        .with_layer(&count)
        .build())
}

#[cfg(test)]
mod tests {
    use axum::{Router, routing::get};

    /// The stack answers a request: base URI, kube's middleware, the connection pool (over plain HTTP/1.1 here;
    /// HTTP/2 over TLS is exercised by every suite that runs the operator against the local cluster).
    #[tokio::test]
    async fn the_client_reaches_an_api_server() {
        let version = r#"{"major":"1","minor":"36","gitVersion":"v1.36.4","gitCommit":"","gitTreeState":"",
            "buildDate":"2026-01-01T00:00:00Z","goVersion":"go1.26","compiler":"gc","platform":"linux/amd64"}"#;
        let app = Router::new().route("/version", get(move || async move { version }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a local port");
        let addr = listener.local_addr().expect("its address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        let config = kube::Config::new(format!("http://{addr}").parse().expect("a URL"));
        let client = super::build(config, 10, 10, Default::default()).expect("a client");
        let info = client.apiserver_version().await.expect("an answer");
        assert_eq!(info.git_version, "v1.36.4");
    }
}
