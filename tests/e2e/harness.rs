//! The e2e harness: a namespace and a real `podtask run` per test, wait helpers that poll with a deadline, and a
//! dump of everything relevant (PodTasks, pods, events, the operator's log) when a test fails.
//!
//! Each test gets its own namespace and its own operator process watching only that namespace, so tests run in
//! parallel without seeing each other's tasks. The CRD is installed once per test binary.

use std::{
    collections::BTreeMap,
    fs::{self, File, OpenOptions},
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use futures::StreamExt;
use k8s_openapi::api::{
    core::v1::{Namespace, Pod, ServiceAccount},
    events::v1::Event,
};
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, PostParams},
    runtime::watcher,
};
use podtask::{
    crd::{Phase, PodTask},
    engine::naming,
    jiff::Timestamp,
};
use serde_json::{Value, json};

/// How often wait helpers poll. Modest: the machine has two cores shared with the control plane.
pub const POLL: Duration = Duration::from_millis(200);

/// The image every test pod names. Nothing is pulled: kwok simulates the kubelet.
pub const IMAGE: &str = "registry.example/podtask-e2e:1";

// ---- the cluster ----

/// The kubeconfig the suite runs against. Fails loudly when it is missing: an e2e suite that silently passes
/// without a cluster proves nothing.
pub fn kubeconfig() -> PathBuf {
    let path = std::env::var_os("KUBECONFIG").unwrap_or_else(|| {
        panic!(
            "KUBECONFIG is not set: the e2e suite needs a cluster.\n  \
             start the local one and run through it: hack/test-env.sh cargo test --features e2e --test e2e\n  \
             or: source ~/.cache/podtask/cluster/env (after hack/cluster.sh up)"
        )
    });
    let path = PathBuf::from(path);
    assert!(path.is_file(), "KUBECONFIG={} does not exist: start the cluster with hack/cluster.sh up", path.display());
    path
}

/// A client for the test cluster (one per test: a kube Client belongs to the runtime that built it).
pub async fn client() -> Client {
    kubeconfig();
    Client::try_default().await.expect("a kube client from KUBECONFIG")
}

/// Server-side apply what this build's `podtask crd` prints, with these further kubectl arguments.
pub fn apply_crd(args: &[&str]) -> std::process::Output {
    let crd = Command::new(env!("CARGO_BIN_EXE_podtask")).arg("crd").output().expect("run podtask crd");
    assert!(crd.status.success(), "podtask crd failed: {}", String::from_utf8_lossy(&crd.stderr));
    let mut apply = Command::new("kubectl")
        .args(["apply", "--server-side", "-f", "-"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl on PATH (source ~/.cache/podtask/cluster/env)");
    apply.stdin.take().expect("stdin").write_all(&crd.stdout).expect("write the CRD to kubectl");
    apply.wait_with_output().expect("kubectl apply")
}

/// Install (server-side apply) the CRD that this build of podtask prints, once per test binary, and wait until it
/// is Established.
pub fn ensure_crd() {
    static CRD: OnceLock<()> = OnceLock::new();
    CRD.get_or_init(|| {
        let out = apply_crd(&["--force-conflicts", "--field-manager=podtask-e2e"]);
        assert!(out.status.success(), "installing the CRD failed: {}", String::from_utf8_lossy(&out.stderr));
        let waited = Command::new(env!("CARGO_BIN_EXE_podtask"))
            .args(["crd", "wait"])
            .env("KUBECONFIG", kubeconfig())
            .output()
            .expect("podtask crd wait");
        assert!(
            waited.status.success(),
            "the CRD did not become Established: {}",
            String::from_utf8_lossy(&waited.stderr)
        );
    });
}

/// Run kubectl; (success, stdout + stderr).
pub fn kubectl(args: &[&str]) -> (bool, String) {
    let out =
        Command::new("kubectl").args(args).output().expect("kubectl on PATH (source ~/.cache/podtask/cluster/env)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Where operator logs go: target/e2e-logs/.
pub fn log_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target dir").join("e2e-logs");
    fs::create_dir_all(&dir).expect("create target/e2e-logs");
    dir
}

pub fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    format!("{:x}", (nanos as u64 ^ (u64::from(std::process::id()) << 40)) & 0xff_ffff)
}

// ---- waiting ----

/// Poll `check` every [`POLL`] until it returns `Some`, or panic after `timeout` naming `what`. The panic makes the
/// test's [`Env`] dump the PodTasks, pods, events and operator log.
pub async fn wait_for<T>(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A negative assertion needs a window: `check` must hold on every poll for `window`.
pub async fn holds_for(what: &str, window: Duration, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < window {
        assert!(check().await, "expected {what} to hold for {window:?}; it stopped after {:?}", start.elapsed());
        tokio::time::sleep(POLL).await;
    }
}

pub fn now() -> Timestamp {
    Timestamp::now()
}

/// Milliseconds from `a` to `b` (negative if `b` is earlier).
pub fn ms_between(a: Timestamp, b: Timestamp) -> i64 {
    b.duration_since(a).as_millis() as i64
}

// ---- the operator ----

/// Options of the operator process for one test.
#[derive(Clone, Debug)]
pub struct OperatorOpts {
    pub default_startup_timeout: &'static str,
    pub config_error_grace: &'static str,
    pub min_rate_limit_backoff: &'static str,
    /// Hold a Lease in the test namespace before reconciling (`--leader-elect`), with this lease duration.
    pub leader_elect: Option<&'static str>,
}

impl Default for OperatorOpts {
    fn default() -> Self {
        Self {
            default_startup_timeout: "8s",
            config_error_grace: "3s",
            min_rate_limit_backoff: "3s",
            leader_elect: None,
        }
    }
}

/// The real `podtask run` binary, watching one namespace; killed (SIGKILL) when dropped.
pub struct Operator {
    child: Option<Child>,
    args: Vec<String>,
    pub log: PathBuf,
    pub port: u16,
}

impl Operator {
    fn spawn(ns: &str, opts: &OperatorOpts, log: PathBuf, identity: String) -> Self {
        let port = free_port();
        let mut args: Vec<String> = vec![
            "run".into(),
            "--namespaces".into(),
            ns.into(),
            "--http-addr".into(),
            format!("127.0.0.1:{port}"),
            "--log-format".into(),
            "json".into(),
            "--log-level".into(),
            "info,podtask=debug,kube=debug".into(),
            "--default-startup-timeout".into(),
            opts.default_startup_timeout.into(),
            "--config-error-grace".into(),
            opts.config_error_grace.into(),
            "--min-rate-limit-backoff".into(),
            opts.min_rate_limit_backoff.into(),
            "--identity".into(),
            identity,
        ];
        if let Some(duration) = opts.leader_elect {
            args.extend(["--leader-elect", "--lease-namespace", ns, "--lease-duration", duration].map(String::from));
        }
        let _ = File::create(&log).expect("create the operator log");
        let mut op = Self { child: None, args, log, port };
        op.start();
        op
    }

    fn start(&mut self) {
        let log = OpenOptions::new().append(true).open(&self.log).expect("open the operator log");
        let err = log.try_clone().expect("clone the log handle");
        let child = Command::new(env!("CARGO_BIN_EXE_podtask"))
            .args(&self.args)
            .env("KUBECONFIG", kubeconfig())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .expect("start podtask run");
        self.child = Some(child);
    }

    /// Wait until /readyz says the watch caches synced.
    pub async fn wait_ready(&mut self) {
        let start = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(exit)) = child.try_wait()
            {
                panic!("podtask run exited ({exit}) before it was ready:\n{}", tail(&self.log, 40));
            }
            if let Some((200, _)) = http_get(self.port, "/readyz").await {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "podtask run not ready after 30s:\n{}",
                tail(&self.log, 40)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL: no graceful shutdown, nothing flushed — as when a node dies.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait up to `limit` for the process to exit (SIGKILL after that, and the test fails).
    /// Returns how long it took. The pid is our own child's, not yet reaped, so it cannot have been reused.
    pub fn terminate(&mut self, limit: Duration) -> Duration {
        let mut child = self.child.take().expect("the operator is running");
        let start = Instant::now();
        let sent = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill -TERM");
        assert!(sent.success(), "SIGTERM could not be sent");
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return start.elapsed();
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!("podtask run did not exit within {limit:?} of SIGTERM:\n{}", tail(&self.log, 30));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Start the same operator again (same flags, same port, log appended) and wait until it is ready.
    pub async fn restart(&mut self) {
        self.kill();
        let mut log = OpenOptions::new().append(true).open(&self.log).expect("open the operator log");
        let _ = writeln!(log, "---- e2e: operator restarted at {} ----", now());
        drop(log);
        self.start();
        self.wait_ready().await;
    }

    /// CPU time (user + system) the operator process has used so far, in seconds, from /proc.
    pub fn cpu_seconds(&self) -> f64 {
        let pid = self.child.as_ref().expect("the operator is running").id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the operator's /proc stat");
        // The fields after the command name (which is in parentheses): state is the first, utime the 12th.
        let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("").split_whitespace().collect();
        let ticks: f64 = fields.get(11..13).into_iter().flatten().filter_map(|f| f.parse::<f64>().ok()).sum();
        let per_second = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<f64>().ok())
            .unwrap_or(100.0);
        ticks / per_second
    }

    pub async fn metrics(&self) -> String {
        match http_get(self.port, "/metrics").await {
            Some((200, body)) => body,
            other => panic!("GET /metrics failed: {other:?}"),
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// A plain HTTP/1.1 GET on localhost: (status, body), None if the connection failed.
pub async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
        let mut raw = String::new();
        s.read_to_string(&mut raw).ok()?;
        let code = raw.split_whitespace().nth(1)?.parse().ok()?;
        let body = raw.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
        Some((code, body))
    })
    .await
    .ok()
    .flatten()
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ---- pods seen ----

/// Every pod that ever existed in the test namespace, as seen by a watch started before the first task.
#[derive(Clone, Debug)]
pub struct PodSeen {
    pub name: String,
    pub uid: String,
    pub task: Option<String>,
    pub attempt: Option<u32>,
    pub first_seen: Timestamp,
    /// First time the pod was seen in phase Running.
    pub running_seen: Option<Timestamp>,
    /// First time the pod was seen with a deletionTimestamp (or gone, if that was never seen).
    pub deletion_seen: Option<Timestamp>,
    pub gone: Option<Timestamp>,
    pub phase: Option<String>,
    /// spec.activeDeadlineSeconds and spec.terminationGracePeriodSeconds as created.
    pub active_deadline_seconds: Option<i64>,
    pub grace_seconds: Option<i64>,
}

type PodBook = Arc<Mutex<BTreeMap<String, PodSeen>>>;

fn record(book: &PodBook, pod: &Pod, deleted: bool) {
    let at = now();
    let uid = pod.uid().unwrap_or_default();
    let mut book = book.lock().expect("pod book");
    let entry = book.entry(uid.clone()).or_insert_with(|| PodSeen {
        name: pod.name_any(),
        uid,
        task: pod.labels().get(naming::LABEL_TASK).cloned(),
        attempt: pod.labels().get(naming::LABEL_ATTEMPT).and_then(|a| a.parse().ok()),
        first_seen: at,
        running_seen: None,
        deletion_seen: None,
        gone: None,
        phase: None,
        active_deadline_seconds: pod.spec.as_ref().and_then(|s| s.active_deadline_seconds),
        grace_seconds: pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds),
    });
    if let Some(phase) = pod.status.as_ref().and_then(|s| s.phase.clone()) {
        if phase == "Running" && entry.running_seen.is_none() {
            entry.running_seen = Some(at);
        }
        entry.phase = Some(phase);
    }
    if (deleted || pod.metadata.deletion_timestamp.is_some()) && entry.deletion_seen.is_none() {
        entry.deletion_seen = Some(at);
    }
    if deleted && entry.gone.is_none() {
        entry.gone = Some(at);
    }
}

// ---- the per-test environment ----

/// One test's world: a fresh namespace, a running operator watching only it, and a record of its pods. Dropping
/// it (also when the test panics) dumps diagnostics on failure, kills the operator and deletes the namespace.
pub struct Env {
    pub test: String,
    pub ns: String,
    pub client: Client,
    pub operator: Operator,
    opts: OperatorOpts,
    /// Further replicas started with [`Env::another_operator`] (their logs are dumped too).
    extra_logs: Vec<PathBuf>,
    pods_seen: PodBook,
    pod_watch: tokio::task::JoinHandle<()>,
}

impl Env {
    pub async fn start(test: &str) -> Self {
        Self::start_with(test, OperatorOpts::default()).await
    }

    pub async fn start_with(test: &str, opts: OperatorOpts) -> Self {
        let client = client().await;
        ensure_crd();
        let short: String = test.chars().filter(|c| c.is_ascii_alphanumeric()).take(30).collect();
        let ns = format!("e2e-{}-{}", short.to_ascii_lowercase(), unique_suffix());
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let namespace: Namespace = serde_json::from_value(json!({
            "metadata": {"name": ns, "labels": {"podtask.dev/e2e": "true"}}
        }))
        .expect("namespace");
        namespaces.create(&PostParams::default(), &namespace).await.expect("create the test namespace");
        // From here on the namespace is cleaned up by Drop, even if the rest of the setup fails.
        let log = log_dir().join(format!("{test}.log"));
        let operator = Operator::spawn(&ns, &opts, log, "e2e-operator-1".into());
        let pods_seen: PodBook = Arc::default();
        let book = pods_seen.clone();
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let pod_watch = tokio::spawn(async move {
            let mut events = watcher(pods, watcher::Config::default()).boxed();
            while let Some(event) = events.next().await {
                match event {
                    Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => record(&book, &p, false),
                    Ok(watcher::Event::Delete(p)) => record(&book, &p, true),
                    _ => {}
                }
            }
        });
        let mut env = Self { test: test.into(), ns, client, operator, opts, extra_logs: vec![], pods_seen, pod_watch };
        let accounts: Api<ServiceAccount> = Api::namespaced(env.client.clone(), &env.ns);
        wait_for("serviceaccount/default in the test namespace", Duration::from_secs(30), async || {
            accounts.get_opt("default").await.ok().flatten()
        })
        .await;
        env.operator.wait_ready().await;
        env
    }

    /// Start another replica of the operator with the same options (identity `e2e-operator-<n>`), ready.
    pub async fn another_operator(&mut self) -> Operator {
        let n = self.extra_logs.len() + 2;
        let log = log_dir().join(format!("{}.{n}.log", self.test));
        self.extra_logs.push(log.clone());
        let mut op = Operator::spawn(&self.ns, &self.opts, log, format!("e2e-operator-{n}"));
        op.wait_ready().await;
        op
    }

    pub fn tasks(&self) -> Api<PodTask> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Create a PodTask named `name` with this spec.
    pub async fn create(&self, name: &str, spec: Value) -> PodTask {
        let task: PodTask = serde_json::from_value(json!({
            "apiVersion": "podtask.dev/v1alpha1",
            "kind": "PodTask",
            "metadata": {"name": name, "namespace": self.ns},
            "spec": spec,
        }))
        .unwrap_or_else(|e| panic!("test PodTask {name} does not deserialize: {e}"));
        self.tasks()
            .create(&PostParams::default(), &task)
            .await
            .unwrap_or_else(|e| panic!("create PodTask {name}: {e}"))
    }

    pub async fn task(&self, name: &str) -> PodTask {
        self.tasks().get(name).await.unwrap_or_else(|e| panic!("get PodTask {name}: {e}"))
    }

    /// Wait until the task satisfies `pred`; returns it.
    pub async fn wait_task(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&PodTask) -> bool,
    ) -> PodTask {
        let api = self.tasks();
        wait_for(&format!("PodTask {name}: {what}"), timeout, async || {
            api.get_opt(name).await.ok().flatten().filter(|t| pred(t))
        })
        .await
    }

    /// Wait until the task reaches a terminal phase; returns it.
    pub async fn wait_finished(&self, name: &str, timeout: Duration) -> PodTask {
        self.wait_task(name, "finished (Succeeded or Failed)", timeout, |t| phase(t).is_terminal()).await
    }

    /// The pods that exist now for the task (by the task label podtask puts on them).
    pub async fn pods_of(&self, task: &str) -> Vec<Pod> {
        let selector = format!("{}={}", naming::LABEL_TASK, naming::task_label(task));
        self.pods().list(&ListParams::default().labels(&selector)).await.expect("list pods").items
    }

    /// Wait until no pod of the task exists any more.
    pub async fn wait_no_pods(&self, task: &str, timeout: Duration) {
        wait_for(&format!("the pods of {task} to be gone"), timeout, async || {
            self.pods_of(task).await.is_empty().then_some(())
        })
        .await;
        // The record of pods comes from a watch, which may hear of the last deletion a moment after the list above.
        wait_for(&format!("the watch to see the pods of {task} gone"), timeout, async || {
            self.pods_seen(task).iter().all(|p| p.gone.is_some()).then_some(())
        })
        .await;
    }

    /// Every pod of the task ever seen in this namespace, by attempt then first sighting.
    pub fn pods_seen(&self, task: &str) -> Vec<PodSeen> {
        let label = naming::task_label(task);
        let mut pods: Vec<PodSeen> = self
            .pods_seen
            .lock()
            .expect("pod book")
            .values()
            .filter(|p| p.task.as_deref() == Some(&label))
            .cloned()
            .collect();
        pods.sort_by_key(|p| (p.attempt, p.first_seen));
        pods
    }

    /// Events about the PodTask (events.k8s.io/v1, `regarding` the task), oldest first.
    pub async fn events_of(&self, task: &str) -> Vec<Event> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), &self.ns);
        let mut events: Vec<Event> = api
            .list(&ListParams::default())
            .await
            .expect("list events")
            .items
            .into_iter()
            .filter(|e| {
                e.regarding
                    .as_ref()
                    .is_some_and(|r| r.kind.as_deref() == Some("PodTask") && r.name.as_deref() == Some(task))
            })
            .collect();
        events.sort_by_key(|e| {
            e.event_time.as_ref().map(|t| t.0).or(e.metadata.creation_timestamp.as_ref().map(|t| t.0))
        });
        events
    }

    /// The reasons of the task's events, oldest first.
    pub async fn event_reasons(&self, task: &str) -> Vec<String> {
        self.events_of(task).await.into_iter().filter_map(|e| e.reason).collect()
    }

    fn dump(&self) {
        eprintln!("\n======== e2e diagnostics for {} (namespace {}) ========", self.test, self.ns);
        for args in [
            vec!["get", "podtasks", "-n", &self.ns, "-o", "yaml"],
            vec!["get", "pods", "-n", &self.ns, "-o", "wide", "--show-labels"],
            vec!["get", "pods", "-n", &self.ns, "-o", "yaml"],
            vec!["get", "events", "-n", &self.ns, "--sort-by=.metadata.creationTimestamp"],
        ] {
            let (_, text) = kubectl(&args);
            eprintln!("---- kubectl {} ----\n{text}", args.join(" "));
        }
        let seen: Vec<PodSeen> = self.pods_seen.lock().map(|b| b.values().cloned().collect()).unwrap_or_default();
        eprintln!("---- pods seen by the test's watch ----");
        for p in seen {
            eprintln!("{p:?}");
        }
        for log in std::iter::once(&self.operator.log).chain(&self.extra_logs) {
            eprintln!("---- operator log: {} (last 60 lines) ----", log.display());
            eprintln!("{}", tail(log, 60));
        }
        eprintln!("======== end of diagnostics; full operator log: {} ========\n", self.operator.log.display());
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump();
        }
        self.pod_watch.abort();
        self.operator.kill();
        if std::env::var_os("PODTASK_E2E_KEEP").is_some() {
            eprintln!("PODTASK_E2E_KEEP set: keeping namespace {}", self.ns);
            return;
        }
        // Not waiting: namespace deletion takes seconds, and nothing in a test namespace outlives the test.
        let (ok, text) = kubectl(&["delete", "namespace", &self.ns, "--wait=false", "--ignore-not-found"]);
        if !ok {
            eprintln!("could not delete namespace {}: {text}", self.ns);
        }
    }
}

// ---- reading a PodTask ----

pub fn phase(t: &PodTask) -> Phase {
    t.status.as_ref().map(|s| s.phase).unwrap_or_default()
}

pub fn reason(t: &PodTask) -> String {
    t.status.as_ref().and_then(|s| s.reason).map(|r| r.to_string()).unwrap_or_default()
}

pub fn message(t: &PodTask) -> String {
    t.status.as_ref().and_then(|s| s.message.clone()).unwrap_or_default()
}

pub fn status(t: &PodTask) -> podtask::crd::PodTaskStatus {
    t.status.clone().unwrap_or_default()
}

pub fn condition(t: &PodTask, type_: &str) -> Option<String> {
    t.status.as_ref()?.conditions.iter().find(|c| c.type_ == type_).map(|c| c.status.clone())
}

/// The attempts history as (attempt, reason) pairs.
pub fn history(t: &PodTask) -> Vec<(u32, String)> {
    status(t).attempts.iter().map(|a| (a.attempt, a.reason.to_string())).collect()
}

pub fn yaml(t: &PodTask) -> String {
    serde_norway::to_string(t).unwrap_or_default()
}

// ---- building specs ----

/// A pod template for a kwok scenario; `knobs` are further `kwok.podtask.dev/*` annotations (without prefix).
pub fn template(scenario: &str, knobs: &[(&str, &str)]) -> Value {
    let mut annotations = serde_json::Map::new();
    annotations.insert("kwok.podtask.dev/scenario".into(), scenario.into());
    for (k, v) in knobs {
        annotations.insert(format!("kwok.podtask.dev/{k}"), (*v).into());
    }
    json!({
        "metadata": {"annotations": annotations, "labels": {"app": "podtask-e2e"}},
        "spec": {"containers": [{"name": "main", "image": IMAGE}]}
    })
}

/// Sum of a counter family in a Prometheus/OpenMetrics text exposition.
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' ')))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
