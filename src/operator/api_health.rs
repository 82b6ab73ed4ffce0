//! Whether the API server can be used right now, for the whole operator.
//!
//! When the API server is unreachable, failing (5xx) or throttling podtask (429), that is one fact about the
//! operator, not a thousand facts about its tasks: it is logged once when it starts and once when it ends, every
//! reconcile waits on it instead of backing off on its own (so nothing spins, and a deadline that passed meanwhile
//! is acted on as soon as the API answers again), and a 429's Retry-After pauses every request.
//!
//! "Answers again" means it can serve podtask's work, not merely that it is up: the probe reads a PodTask and a
//! pod of podtask's (a LIST of each, one item), which the API server can only answer from etcd. Without etcd it
//! still answers `/version` and `/healthz`, and after a restart of etcd it serves each resource again only once its
//! own etcd client for that resource has reconnected (on gRPC's backoff, seconds apart from one resource to the
//! next): a probe of `/version` declared the API back while every read of a pod still waited.
//!
//! The probe goes over a new connection: when the outage starts, and for every probe that starts while another
//! still waits or after one got no answer, the client's connection pool is replaced; probes overlap, so one that
//! hangs never delays the next. The probe that answers first gives its connection back to the whole client: a
//! newer pool without one would open a TLS connection per reconcile released at once (until ALPN says HTTP/2),
//! and a hundred due deadlines waited up to a second in the API server's TLS handshakes. A connection kept
//! through a network cut resumes only at TCP's next retransmission, and one kept through a stopped API server
//! until its HTTP/2 ping times out: probed over such a connection, the API server was found back 1.5–4 s after it
//! answered on a new one.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client, api::ListParams};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::{api_client::Reconnect, error::short_error, metrics::ApiSignals};
use crate::{crd::PodTask, engine::naming};

/// How often an unreachable API server is probed (two small LISTs, four times a second): work resumes within a
/// fraction of a second of its return.
const PROBE_EVERY: Duration = Duration::from_millis(250);
/// A probe that gets no answer in this time (a server still starting) counts as failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Probes waiting for an answer at once, at most (one started every `PROBE_EVERY`, each given `PROBE_TIMEOUT`).
const PROBES_IN_FLIGHT: usize = 4;
/// The pause after a 429 that did not say how long to wait.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
/// The longest pause a 429's Retry-After can impose.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq)]
enum State {
    Usable,
    /// Unreachable or failing since this instant; a prober is running.
    Down(Instant),
    /// Throttled: no requests before this instant.
    Paused(Instant),
}

/// What kind of failure an API error is, for the whole operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trouble {
    /// The API server did not answer, or answered 5xx: everything waits until it answers again.
    Down,
    /// 429: everything waits this long.
    Throttled(Duration),
}

/// Does this error concern the whole API rather than one task?
pub fn trouble(error: &kube::Error) -> Option<Trouble> {
    match error {
        kube::Error::Api(s) if s.code == 429 => {
            let after = s.details.as_ref().map(|d| Duration::from_secs(u64::from(d.retry_after_seconds)));
            Some(Trouble::Throttled(after.filter(|d| !d.is_zero()).unwrap_or(DEFAULT_RETRY_AFTER)))
        }
        kube::Error::Api(s) if (500..600).contains(&s.code) => Some(Trouble::Down),
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => Some(Trouble::Down),
        _ => None,
    }
}

/// The operator's view of the API server, shared by every reconcile and watch.
pub struct ApiHealth {
    probe: Probe,
    reconnect: Reconnect,
    state: watch::Sender<State>,
    signals: ApiSignals,
}

/// What the prober reads: PodTasks and podtask's pods in one watched scope (all namespaces, or one podtask may
/// read), as the watches and reconciles do.
struct Probe {
    tasks: Api<PodTask>,
    pods: Api<Pod>,
    pods_of_podtask: ListParams,
}

impl Probe {
    fn new(client: Client, namespace: Option<&str>) -> Self {
        let (tasks, pods) = match namespace {
            Some(ns) => (Api::namespaced(client.clone(), ns), Api::namespaced(client, ns)),
            None => (Api::all(client.clone()), Api::all(client)),
        };
        let selector = format!("{}={}", naming::LABEL_MANAGED_BY, naming::MANAGED_BY);
        Self { tasks, pods, pods_of_podtask: ListParams::default().labels(&selector).limit(1) }
    }

    /// One read of each resource podtask's work needs (metadata only, one item), both answered from etcd.
    async fn storage_answers(&self) -> Result<(), kube::Error> {
        let one = ListParams::default().limit(1);
        let (tasks, pods) =
            tokio::join!(self.tasks.list_metadata(&one), self.pods.list_metadata(&self.pods_of_podtask));
        tasks.and(pods).map(|_| ())
    }
}

impl ApiHealth {
    /// A view whose outages no metric shows, probing all namespaces (tests).
    pub fn new(client: Client) -> std::sync::Arc<Self> {
        Self::with_signals(client, Reconnect::none(), ApiSignals::default(), None)
    }

    /// A view that reports outages and throttling through these metrics, probes the API server in `namespace`
    /// (None: all namespaces), one that podtask watches, and replaces the client's connections with `reconnect`.
    pub fn with_signals(
        client: Client,
        reconnect: Reconnect,
        signals: ApiSignals,
        namespace: Option<&str>,
    ) -> std::sync::Arc<Self> {
        let probe = Probe::new(client, namespace);
        std::sync::Arc::new(Self { probe, reconnect, state: watch::Sender::new(State::Usable), signals })
    }

    /// Wait until the API server may be used: while it is down or has asked podtask to back off.
    pub async fn usable(&self) {
        let mut rx = self.state.subscribe();
        loop {
            let state = *rx.borrow_and_update();
            match state {
                State::Usable => return,
                State::Paused(until) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(until.into()) => {
                            self.state.send_if_modified(|s| {
                                let done = *s == State::Paused(until);
                                if done { *s = State::Usable; }
                                done
                            });
                        }
                        _ = rx.changed() => {}
                    }
                }
                State::Down(_) => {
                    if rx.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// A request failed. If the failure concerns the whole API, every reconcile now waits (and it is logged once).
    /// Returns what kind of failure it was; None for a failure of one request only.
    pub fn report(self: &std::sync::Arc<Self>, error: &kube::Error) -> Option<Trouble> {
        let trouble = trouble(error)?;
        match trouble {
            Trouble::Down => {
                let started = self.state.send_if_modified(|s| {
                    let starts = !matches!(s, State::Down(_));
                    if starts {
                        *s = State::Down(Instant::now());
                    }
                    starts
                });
                if started {
                    self.signals.outages.inc();
                    self.signals.unavailable.set(1);
                    warn!(error = %short_error(error), "the API server is unreachable or failing: every task waits until it answers");
                    tokio::spawn(self.clone().probe());
                }
            }
            Trouble::Throttled(after) => {
                let until = Instant::now() + after.min(MAX_RETRY_AFTER);
                let began = self.state.send_if_modified(|s| match s {
                    State::Usable => {
                        *s = State::Paused(until);
                        true
                    }
                    State::Paused(old) if *old < until => {
                        *s = State::Paused(until);
                        false
                    }
                    _ => false,
                });
                if began {
                    self.signals.throttled.inc();
                    warn!(retry_after = ?after, "the API server is throttling podtask (429): every request pauses");
                }
            }
        }
        Some(trouble)
    }

    /// Probe the API server until it serves PodTasks and pods again; then let every reconcile go on. Logs a line
    /// at 1, 2, 4, 8, … seconds of outage, not at every probe. A probe starts at once and then every
    /// `PROBE_EVERY`, without waiting for the one before: a probe that hangs (on a stopped server, behind dropped
    /// packets) holds up none of those after it, each of which goes over a new connection while one still waits.
    async fn probe(self: std::sync::Arc<Self>) {
        use futures::StreamExt as _;
        let mut next_log = Duration::from_secs(1);
        self.reconnect.renew();
        let mut probes = futures::stream::FuturesUnordered::new();
        let mut tick = tokio::time::interval(PROBE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A probe got no answer in time: its connection may still be the pool's.
        let mut hung = false;
        loop {
            let answer = tokio::select! {
                _ = tick.tick(), if probes.len() < PROBES_IN_FLIGHT => {
                    if !matches!(*self.state.borrow(), State::Down(_)) {
                        return;
                    }
                    let connections = if std::mem::take(&mut hung) || !probes.is_empty() {
                        self.reconnect.renew()
                    } else {
                        self.reconnect.current()
                    };
                    let this = self.clone();
                    probes.push(async move {
                        (tokio::time::timeout(PROBE_TIMEOUT, this.probe.storage_answers()).await, connections)
                    });
                    continue;
                }
                Some(answer) = probes.next() => answer,
            };
            let (answer, connections) = answer;
            let State::Down(since) = *self.state.borrow() else { return };
            hung |= answer.is_err();
            match answer.unwrap_or_else(|_| Err(kube::Error::Service("no answer within the probe timeout".into()))) {
                Ok(_) => {
                    // Everything goes on over the connection that answered (a newer pool may have none yet).
                    self.reconnect.restore(&connections);
                    info!(outage = ?since.elapsed(), "the API server answers again: resuming");
                    self.state.send_replace(State::Usable);
                    self.signals.unavailable.set(0);
                    return;
                }
                Err(e) if since.elapsed() >= next_log => {
                    warn!(outage_s = since.elapsed().as_secs(), error = %short_error(&e), "the API server is still unreachable");
                    next_log *= 2;
                }
                Err(e) => debug!(error = %short_error(&e), "API server probe failed"),
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use kube::core::{Status, response::StatusDetails};

    fn api_error(code: u16, retry_after: u32) -> kube::Error {
        let mut s = Status::failure("x", "y").with_code(code);
        s.details = Some(StatusDetails {
            name: String::new(),
            group: String::new(),
            kind: String::new(),
            uid: String::new(),
            causes: vec![],
            retry_after_seconds: retry_after,
        });
        kube::Error::Api(Box::new(s))
    }

    /// A LIST of one resource, as the API server answers it (`status` 200), or a failure.
    pub(crate) fn list_answer(status: u16) -> http::Response<kube::client::Body> {
        let body = if status == 200 {
            r#"{"apiVersion":"meta.k8s.io/v1","kind":"PartialObjectMetadataList","metadata":{},"items":[]}"#
        } else {
            r#"{"kind":"Status","apiVersion":"v1","status":"Failure","code":503}"#
        };
        http::Response::builder().status(status).body(kube::client::Body::from(body.as_bytes().to_vec())).unwrap()
    }

    /// Down: every caller waits (no request of theirs goes out) until a probe finds both PodTasks and podtask's
    /// pods served again (the API server serves each resource again once its own etcd client is back, seconds
    /// apart); then all go on.
    #[tokio::test(start_paused = true)]
    async fn an_outage_holds_every_reconcile_until_the_api_serves_podtasks_and_pods() {
        use http::Request;
        use kube::client::Body;
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, http::Response<Body>>();
        let signals = ApiSignals::default();
        let health =
            ApiHealth::with_signals(Client::new(service, "default"), Reconnect::none(), signals.clone(), Some("work"));
        assert_eq!(health.report(&api_error(503, 0)), Some(Trouble::Down));
        assert_eq!(health.report(&api_error(502, 0)), Some(Trouble::Down));
        assert_eq!((signals.unavailable.get(), signals.outages.get()), (1, 1), "one outage, shown while it lasts");
        let waiter = tokio::spawn({
            let health = health.clone();
            async move { health.usable().await }
        });
        // (PodTasks, pods): both fail; PodTasks are served but pods not yet; both are served.
        for (tasks, pods) in [(503, 503), (200, 503), (200, 200)] {
            for _ in 0..2 {
                let (request, reply) = handle.next_request().await.expect("a probe");
                let (path, query) = (request.uri().path().to_owned(), request.uri().query().unwrap_or("").to_owned());
                assert!(query.contains("limit=1"), "{query}");
                assert!(!waiter.is_finished(), "nobody goes on while the API is down");
                match path.as_str() {
                    "/apis/podtask.dev/v1alpha1/namespaces/work/podtasks" => reply.send_response(list_answer(tasks)),
                    "/api/v1/namespaces/work/pods" => {
                        assert!(query.contains("labelSelector=app.kubernetes.io%2Fmanaged-by%3Dpodtask"), "{query}");
                        reply.send_response(list_answer(pods))
                    }
                    other => panic!("only the prober talks to the API while it is down, and only of these: {other}"),
                }
            }
        }
        tokio::time::timeout(Duration::from_secs(5), waiter).await.expect("released").expect("no panic");
        assert_eq!(*health.state.borrow(), State::Usable);
        assert_eq!((signals.unavailable.get(), signals.outages.get()), (0, 1), "the outage is over");
    }

    /// A probe that hangs (a stopped API server, a network that drops packets) never holds up the next: the
    /// second probe, a quarter of a second later, finds the API back while the first still waits for an answer.
    #[tokio::test(start_paused = true)]
    async fn a_hanging_probe_does_not_delay_the_next() {
        let (service, mut handle) =
            tower_test::mock::pair::<http::Request<kube::client::Body>, http::Response<kube::client::Body>>();
        let health = ApiHealth::new(Client::new(service, "default"));
        let down_at = tokio::time::Instant::now();
        assert_eq!(health.report(&api_error(503, 0)), Some(Trouble::Down));
        let waiter = tokio::spawn({
            let health = health.clone();
            async move { health.usable().await }
        });
        // The first probe's two reads: never answered while the second probe goes.
        let hanging = [handle.next_request().await.expect("a probe"), handle.next_request().await.expect("a probe")];
        for _ in 0..2 {
            let (_, reply) = handle.next_request().await.expect("a second probe");
            reply.send_response(list_answer(200));
        }
        tokio::time::timeout(Duration::from_secs(5), waiter).await.expect("released").expect("no panic");
        let waited = down_at.elapsed();
        assert!(waited < PROBE_TIMEOUT, "resumed {waited:?} after the outage began: it waited for the hanging probe");
        assert_eq!(*health.state.borrow(), State::Usable);
        drop(hanging);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_pauses_everyone_for_its_retry_after() {
        let (service, _handle) =
            tower_test::mock::pair::<http::Request<kube::client::Body>, http::Response<kube::client::Body>>();
        let signals = ApiSignals::default();
        let health = ApiHealth::with_signals(Client::new(service, "default"), Reconnect::none(), signals.clone(), None);
        health.report(&api_error(429, 3));
        health.report(&api_error(429, 2));
        let start = tokio::time::Instant::now();
        health.usable().await;
        assert!(start.elapsed() >= Duration::from_secs(3), "waited {:?}", start.elapsed());
        assert_eq!((signals.throttled.get(), signals.unavailable.get()), (1, 0), "one pause, not an outage");
    }

    #[test]
    fn which_failures_concern_the_whole_api() {
        assert_eq!(trouble(&api_error(429, 7)), Some(Trouble::Throttled(Duration::from_secs(7))));
        assert_eq!(trouble(&api_error(429, 0)), Some(Trouble::Throttled(DEFAULT_RETRY_AFTER)));
        assert_eq!(trouble(&api_error(503, 0)), Some(Trouble::Down));
        // A request the API server held past podtask's limit (waiting for etcd, say).
        let held = kube::Error::Service(Box::new(super::super::request_timeout::NoAnswer(Duration::from_secs(10))));
        assert_eq!(trouble(&held), Some(Trouble::Down));
        for task_only in [404, 409, 422, 403] {
            assert_eq!(trouble(&api_error(task_only, 0)), None, "{task_only}");
        }
    }
}
