//! `podtask run`: flags, preflight checks, the HTTP endpoints, leader election, and the controllers.

use std::{net::SocketAddr, sync::Arc};

use clap::Args;
use futures::future;
use tokio::sync::watch;
use tracing::{error, info};

use super::{
    api_client,
    api_health::ApiHealth,
    clock::system_clock,
    controller::{self, Settings, TaskStores},
    error::StartupError,
    events::Publisher,
    http::{self, HttpState},
    leader::{self, LeaseSettings},
    metrics::Metrics,
    permits::Permits,
    preflight, request_count,
    telemetry::{self, LogFormat},
};
use crate::{duration::Duration, engine};

/// The engine's defaults, which the flags start from.
const DEFAULTS: engine::Config = engine::Config::DEFAULT;

/// How long the API server may take to answer the first request before `podtask run` gives up.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// How long in-flight reconciles may take to finish after SIGTERM before the process exits anyway.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);
/// How much longer the signal thread gives the runtime before it ends the process itself (all the runtime's
/// workers busy, say, so that not even its timers run).
const EXIT_MARGIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Settings of `podtask run`. Every flag can also be set through the environment variable shown.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Namespaces to watch, comma-separated. Empty: all namespaces.
    #[arg(long, env = "PODTASK_NAMESPACES", value_delimiter = ',', default_value = "")]
    pub namespaces: Vec<String>,

    /// Startup timeout for tasks that don't set spec.startupTimeout.
    #[arg(long, env = "PODTASK_DEFAULT_STARTUP_TIMEOUT", default_value_t = Duration::from(DEFAULTS.startup_timeout))]
    pub default_startup_timeout: Duration,

    /// How long a CreateContainerConfigError (missing Secret/ConfigMap) may last before the task fails.
    #[arg(long, env = "PODTASK_CONFIG_ERROR_GRACE", default_value_t = Duration::from(DEFAULTS.config_error_grace))]
    pub config_error_grace: Duration,

    /// Least wait before retrying an attempt whose image pull was rate-limited by the registry.
    #[arg(long, env = "PODTASK_MIN_RATE_LIMIT_BACKOFF", default_value_t = Duration::from(DEFAULTS.min_rate_limit_backoff))]
    pub min_rate_limit_backoff: Duration,

    /// PodTasks reconciled in parallel, operator-wide (across all watched namespaces). Half as many again are
    /// kept for tasks whose deadline is due, so enforcing a deadline never waits behind routine work.
    #[arg(long, env = "PODTASK_CONCURRENCY", default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,

    /// Average requests per second to the API server (client-side limit, as kube-controller-manager's
    /// --kube-api-qps); 0: no limit.
    #[arg(long, env = "PODTASK_KUBE_API_QPS", default_value_t = 500)]
    pub kube_api_qps: u32,

    /// Requests the client may send in a burst above --kube-api-qps.
    #[arg(long, env = "PODTASK_KUBE_API_BURST", default_value_t = 1000)]
    pub kube_api_burst: u32,

    /// Hold a Lease before reconciling, so that of several replicas only one acts.
    #[arg(long, env = "PODTASK_LEADER_ELECT", default_value_t = false)]
    pub leader_elect: bool,

    /// Name of the leader-election Lease.
    #[arg(long, env = "PODTASK_LEASE_NAME", default_value = "podtask")]
    pub lease_name: String,

    /// Namespace of the Lease (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// How long a lease holder that stopped renewing keeps the lease.
    #[arg(long, env = "PODTASK_LEASE_DURATION", default_value = "15s")]
    pub lease_duration: Duration,

    /// This replica's identity in the Lease and in Events (the pod name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// Address for /metrics, /healthz and /readyz.
    #[arg(long, env = "PODTASK_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,

    /// Log format.
    #[arg(long, env = "PODTASK_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Log level or filter (`info`, `debug`, `podtask=debug,kube=warn`).
    #[arg(long, env = "PODTASK_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Skip the RBAC self-check at startup.
    #[arg(long, env = "PODTASK_SKIP_RBAC_CHECK", default_value_t = false)]
    pub skip_rbac_check: bool,
}

impl RunArgs {
    fn scopes(&self) -> Vec<Option<String>> {
        let named: Vec<String> =
            self.namespaces.iter().map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()).collect();
        if named.is_empty() { vec![None] } else { named.into_iter().map(Some).collect() }
    }

    fn engine_config(&self) -> engine::Config {
        engine::Config {
            startup_timeout: self.default_startup_timeout.as_std(),
            config_error_grace: self.config_error_grace.as_std(),
            min_rate_limit_backoff: self.min_rate_limit_backoff.as_std(),
            ..DEFAULTS
        }
    }

    fn identity(&self) -> String {
        self.identity
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| format!("podtask-{}", std::process::id()))
    }
}

pub async fn run(args: RunArgs) -> Result<(), StartupError> {
    telemetry::init(args.log_format, &args.log_level).map_err(StartupError::Config)?;
    let signalled = watch_signals()?;
    let scopes = args.scopes();
    let lease_ns = match (args.leader_elect, &args.lease_namespace) {
        (true, None) => {
            return Err(StartupError::Config("--leader-elect needs --lease-namespace (or POD_NAMESPACE)".into()));
        }
        (true, Some(ns)) => Some(ns.clone()),
        (false, _) => None,
    };

    let mut config = kube::Config::infer().await.map_err(|e| StartupError::Kubeconfig(e.to_string()))?;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    let server = config.cluster_url.to_string();
    let metrics = Arc::new(Metrics::default());
    let count = request_count::CountLayer::new(metrics.api_requests.clone());
    let (client, reconnect) = api_client::build(config, args.kube_api_qps, args.kube_api_burst, count)
        .map_err(|e| StartupError::Kubeconfig(e.to_string()))?;
    info!(%server, "checking the API server");
    preflight::check_api(&client, &scopes, &server).await?;
    if !args.skip_rbac_check {
        preflight::check_rbac(&client, &scopes, lease_ns.as_deref()).await?;
    }

    let stores: TaskStores = Arc::default();
    let (ready_tx, ready_rx) = watch::channel(false);
    let probe_stores = stores.clone();
    let probe_metrics = metrics.clone();
    let http_state = HttpState {
        metrics: metrics.clone(),
        ready: ready_rx,
        before_scrape: Arc::new(move || {
            let stores = probe_stores.lock().expect("store list lock");
            probe_metrics.count_phases(stores.iter().flat_map(|s| s.phases()));
        }),
    };
    let addr = args.http_addr;
    let http = tokio::spawn(async move { http::serve(addr, http_state).await });
    tokio::task::yield_now().await;
    if http.is_finished() {
        let e = http.await.map_err(|e| StartupError::Other(e.to_string()))?;
        return Err(StartupError::Config(format!("cannot serve on --http-addr {addr}: {e:?}")));
    }

    let identity = args.identity();
    if let Some(ns) = lease_ns {
        // A standby is healthy and ready while it waits: it is doing its job.
        let _ = ready_tx.send(true);
        let lease = LeaseSettings {
            name: args.lease_name.clone(),
            namespace: ns,
            identity: identity.clone(),
            duration: args.lease_duration.as_std(),
        };
        let mut signal = signalled.clone();
        let held = tokio::select! {
            held = leader::acquire(client.clone(), &lease) => held?,
            _ = signal.wait_for(|s| *s) => { info!("shutting down before becoming leader"); return Ok(()); }
        };
        let _ = ready_tx.send(false);
        tokio::spawn(leader::exit_when_lost(held, client.clone(), lease));
    }
    metrics.leader.set(1);

    info!(scopes = ?scopes, concurrency = args.concurrency, "podtask is reconciling");
    let permits = Arc::new(Permits::new(usize::from(args.concurrency)));
    let events = Publisher::start(client.clone(), identity.clone(), metrics.events_dropped.clone());
    // Probed in a scope podtask watches (the first), where its RBAC lets it list PodTasks and pods.
    let api = ApiHealth::with_signals(client.clone(), reconnect, metrics.api.clone(), scopes[0].as_deref());
    let (stop_tx, stop_rx) = watch::channel(false);
    let ready_tx = Arc::new(ready_tx);
    let mut synced = vec![];
    let controllers = scopes.into_iter().map(|scope| {
        let (tx, rx) = watch::channel(false);
        synced.push(rx);
        let mut stop = stop_rx.clone();
        let settings = Settings {
            namespace: scope,
            config: args.engine_config(),
            permits: permits.clone(),
            api: api.clone(),
            events: events.clone(),
        };
        controller::run_scope(
            client.clone(),
            settings,
            metrics.clone(),
            system_clock(),
            tx,
            stores.clone(),
            async move {
                let _ = stop.wait_for(|s| *s).await;
            },
        )
    });
    let all = future::join_all(controllers);
    tokio::spawn(async move {
        for mut rx in synced {
            let _ = rx.wait_for(|r| *r).await;
        }
        let _ = ready_tx.send(true);
    });
    let mut signal = signalled;
    let stopping = async move {
        let _ = signal.wait_for(|s| *s).await;
        info!("signal received: finishing in-flight reconciles, then exiting");
        let _ = stop_tx.send(true);
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        _ = all => {}
        _ = stopping => info!("in-flight work did not finish within {SHUTDOWN_GRACE:?}; exiting anyway"),
    }
    Ok(())
}

/// Waits for SIGTERM (or Ctrl-C) on a thread of its own, with a runtime of its own, so that nothing the operator's
/// workers do can keep it from hearing the signal: the receiver turns true then, and the process ends
/// `SHUTDOWN_GRACE` + `EXIT_MARGIN` later if it has not ended by itself (`run` gives up on in-flight work after
/// `SHUTDOWN_GRACE`).
fn watch_signals() -> Result<watch::Receiver<bool>, StartupError> {
    let (tx, rx) = watch::channel(false);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StartupError::Other(format!("cannot start the signal thread's runtime: {e}")))?;
    std::thread::Builder::new()
        .name("podtask-signals".into())
        .spawn(move || {
            runtime.block_on(async {
                shutdown_signal().await;
                let _ = tx.send(true);
                tokio::time::sleep(SHUTDOWN_GRACE + EXIT_MARGIN).await;
            });
            error!("still running {:?} after the signal: exiting now", SHUTDOWN_GRACE + EXIT_MARGIN);
            std::process::exit(1);
        })
        .map_err(|e| StartupError::Other(format!("cannot start the signal thread: {e}")))?;
    Ok(rx)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            error!(error = %e, "cannot listen for SIGTERM");
            return future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
