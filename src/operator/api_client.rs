//! The client podtask talks to the API server with: kube's own middleware (base URI, credentials, extra headers,
//! retry of 429/503/504 answers) over a connection that speaks HTTP/2 when the server offers it, as client-go does.
//!
//! kube's default stack offers only HTTP/1.1, so every request in flight holds a TCP and TLS connection of its own:
//! with a hundred reconciles at once the operator kept ~120 connections open, ~5 MB of buffers and TLS state, and
//! the API server as many TLS sessions. Over HTTP/2 every request and watch is a stream of one connection.
//! Through an HTTP or SOCKS proxy podtask keeps kube's default stack (HTTP/1.1). Either way every request but a
//! watch is limited to `request_timeout::REQUEST_TIMEOUT`, and the whole client to `--kube-api-qps`.
//!
//! The connection pool can be replaced as a whole ([`Reconnect`]): when the API server stops answering, podtask
//! looks for it on a new connection rather than on one that may hang until TCP or an HTTP/2 ping gives up on it.

use std::{
    sync::{Arc, RwLock},
    task::{Context, Poll},
    time::Duration,
};

use hyper_util::{
    client::legacy::{Client as HyperClient, connect::HttpConnector},
    rt::{TokioExecutor, TokioTimer},
};
use kube::client::{Body, ClientBuilder, ConfigExt, retry::RetryPolicy};
use tower::{BoxError, Service, ServiceBuilder, retry::RetryLayer};

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
/// request counted by `count`; and the handle that replaces its connections.
pub fn build(
    config: kube::Config,
    qps: u32,
    burst: u32,
    count: CountLayer,
) -> Result<(kube::Client, Reconnect), kube::Error> {
    let throttle = ThrottleLayer::new(qps, burst);
    // Inside the throttle: the time a request waits for its turn is not the API server's.
    let timeout = RequestTimeoutLayer::new(REQUEST_TIMEOUT);
    if config.proxy_url.is_some() {
        let client =
            ClientBuilder::try_from(config)?.with_layer(&timeout).with_layer(&throttle).with_layer(&count).build();
        return Ok((client, Reconnect::none()));
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
    let builder = move || {
        HyperClient::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
            .http2_keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
            .http2_keep_alive_while_idle(true)
            .build::<_, Body>(connector.clone())
    };
    let pool = Arc::new(Swap { current: RwLock::new(builder()), fresh: Box::new(builder) });
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.default_retry.then(|| RetryLayer::new(RetryPolicy::server_retry())))
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .service(Pooled(pool.clone()));
    let client = ClientBuilder::new(service, config.default_namespace.clone())
        .with_layer(&timeout)
        .with_layer(&throttle)
        .with_layer(&count)
        .build();
    Ok((client, Reconnect(Some(pool))))
}

type Connector = hyper_timeout::TimeoutConnector<hyper_rustls::HttpsConnector<HttpConnector>>;
type Pool = HyperClient<Connector, Body>;

/// The client's connection pool, and how to make a new, empty one.
struct Swap {
    current: RwLock<Pool>,
    fresh: Box<dyn Fn() -> Pool + Send + Sync>,
}

/// Sends each request through the connection pool current at the time.
#[derive(Clone)]
struct Pooled(Arc<Swap>);

impl Service<http::Request<Body>> for Pooled {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = BoxError;
    type Future = futures::future::MapErr<
        hyper_util::client::legacy::ResponseFuture,
        fn(hyper_util::client::legacy::Error) -> BoxError,
    >;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // The pool takes every request; a connection is found or made once it is sent.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        use futures::TryFutureExt as _;
        let pool = self.0.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        pool.request(request).map_err(BoxError::from as fn(_) -> _)
    }
}

/// Replaces the client's connections: requests sent afterwards go over new ones, while requests and watches
/// already sent finish on theirs, which close once nothing uses them.
#[derive(Clone)]
pub struct Reconnect(Option<Arc<Swap>>);

impl Reconnect {
    /// For a client whose connections cannot be replaced (through a proxy; tests).
    pub fn none() -> Self {
        Self(None)
    }

    /// Requests sent from now on go over new connections (those of the pool returned).
    pub fn renew(&self) -> Connections {
        Connections(self.0.as_ref().map(|swap| {
            let fresh = (swap.fresh)();
            *swap.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = fresh.clone();
            fresh
        }))
    }

    /// The connections requests go over now.
    pub fn current(&self) -> Connections {
        Connections(
            self.0.as_ref().map(|swap| swap.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()),
        )
    }

    /// Requests go over these connections again (a pool that just answered, whose HTTP/2 connection every request
    /// can share). A pool with no connection yet opens one per request in flight until ALPN has told it the
    /// server speaks HTTP/2: a hundred reconciles released at once would each wait for a TLS handshake of its own.
    pub fn restore(&self, connections: &Connections) {
        if let (Some(swap), Some(pool)) = (&self.0, &connections.0) {
            *swap.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = pool.clone();
        }
    }
}

/// One pool of the client's connections (see [`Reconnect`]).
#[derive(Clone)]
pub struct Connections(Option<Pool>);

#[cfg(test)]
mod tests {
    use axum::{Router, routing::get};

    /// The stack answers a request: base URI, kube's middleware, the connection pool (over plain HTTP/1.1 here;
    /// HTTP/2 over TLS is exercised by every suite that runs the operator against the local cluster). Requests
    /// share a connection until the pool is renewed; the next request then opens a new one.
    #[tokio::test]
    async fn the_client_reaches_an_api_server_and_reconnects_when_told() {
        use axum::serve::ListenerExt as _;
        use std::sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        };
        let version = r#"{"major":"1","minor":"36","gitVersion":"v1.36.4","gitCommit":"","gitTreeState":"",
            "buildDate":"2026-01-01T00:00:00Z","goVersion":"go1.26","compiler":"gc","platform":"linux/amd64"}"#;
        let app = Router::new().route("/version", get(move || async move { version }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a local port");
        let addr = listener.local_addr().expect("its address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let counted = accepted.clone();
        let listener = listener.tap_io(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        let config = kube::Config::new(format!("http://{addr}").parse().expect("a URL"));
        let (client, reconnect) = super::build(config, 10, 10, Default::default()).expect("a client");
        for _ in 0..2 {
            let info = client.apiserver_version().await.expect("an answer");
            assert_eq!(info.git_version, "v1.36.4");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "the pool keeps its connection");
        let first = reconnect.current();
        let second = reconnect.renew();
        client.apiserver_version().await.expect("an answer on a new connection");
        assert_eq!(accepted.load(Ordering::SeqCst), 2, "a renewed pool opens a new connection");
        reconnect.renew();
        reconnect.restore(&first);
        client.apiserver_version().await.expect("an answer on the first connection");
        reconnect.restore(&second);
        client.apiserver_version().await.expect("an answer on the second connection");
        assert_eq!(accepted.load(Ordering::SeqCst), 2, "a restored pool goes on with its own connection");
    }
}
