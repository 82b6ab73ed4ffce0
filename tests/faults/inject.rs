//! Fault injection: operator replicas we can SIGKILL, control-plane components killed and restarted through
//! hack/cluster.sh, etcd compaction, and priority-and-fairness limits that throttle the operator's own user.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use podtask::jiff::Timestamp;
use serde_json::Value;

use crate::harness::{http_get, kubeconfig, kubectl, tail};

/// The user the operator runs as (its own client certificate), so that only the operator is throttled.
pub const OPERATOR_USER: &str = "podtask-faults";

// ---- the operator ----

/// The podtask binary the replicas run: PODTASK_FAULTS_BIN (hack/faults.sh sets the release build, as users run
/// it), else the test build's.
fn operator_bin() -> PathBuf {
    std::env::var_os("PODTASK_FAULTS_BIN").map_or_else(|| env!("CARGO_BIN_EXE_podtask").into(), PathBuf::from)
}

/// One replica of `podtask run`, SIGKILLed when dropped.
pub struct Replica {
    child: Option<Child>,
    args: Vec<String>,
    kubeconfig: PathBuf,
    pub identity: String,
    pub log: PathBuf,
    pub port: u16,
    pub starts: u32,
}

impl Replica {
    pub fn spawn(ns: &str, identity: &str, kubeconfig: &Path, leader_elect: bool, log: PathBuf) -> Self {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("port");
        // PODTASK_FAULTS_LOG_LEVEL: e.g. "info,podtask::operator::api_health=debug" to see every probe. By
        // default the watches' 410 relists are logged (debug lines of the controller), which the suite counts.
        let level = std::env::var("PODTASK_FAULTS_LOG_LEVEL")
            .unwrap_or_else(|_| "info,podtask::operator::controller=debug".into());
        let mut args: Vec<String> = [
            "run",
            "--namespaces",
            ns,
            "--log-format",
            "json",
            "--log-level",
            &level,
            "--default-startup-timeout",
            "30s",
            "--min-rate-limit-backoff",
            "2s",
            "--identity",
            identity,
        ]
        .map(String::from)
        .into();
        args.extend(["--http-addr".into(), format!("127.0.0.1:{port}")]);
        if leader_elect {
            args.extend(["--leader-elect", "--lease-namespace", ns, "--lease-duration", "5s"].map(String::from));
        }
        File::create(&log).expect("create the operator log");
        let mut r =
            Self { child: None, args, kubeconfig: kubeconfig.into(), identity: identity.into(), log, port, starts: 0 };
        r.start();
        r
    }

    pub fn start(&mut self) {
        let log = OpenOptions::new().append(true).open(&self.log).expect("open the operator log");
        let _ = writeln!(&log, "---- faults: start {} at {} ----", self.starts + 1, Timestamp::now());
        let err = log.try_clone().expect("log handle");
        let child = Command::new(operator_bin())
            .args(&self.args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .expect("start podtask run");
        self.child = Some(child);
        self.starts += 1;
    }

    /// SIGKILL (our own unreaped child: its pid cannot have been reused).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The process exited by itself (e.g. it lost the lease, or gave up on an unreachable API at startup).
    pub fn exited(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    /// Killed by us and not started again yet.
    pub fn is_down(&self) -> bool {
        self.child.is_none()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub async fn ready(&self) -> bool {
        matches!(http_get(self.port, "/readyz").await, Some((200, _)))
    }

    pub fn tail(&self, n: usize) -> String {
        tail(&self.log, n)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---- the control plane ----

fn state_dir() -> PathBuf {
    kubeconfig().parent().expect("the cluster state dir").to_path_buf()
}

fn cluster_sh() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/cluster.sh")
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().expect("run a command");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// SIGKILL one control-plane component (`hack/cluster.sh kill`, which checks /proc/<pid>/exe).
pub async fn kill_component(name: &'static str) {
    let (ok, out) =
        tokio::task::spawn_blocking(move || run(Command::new(cluster_sh()).args(["kill", name]))).await.expect("join");
    assert!(ok, "hack/cluster.sh kill {name} failed: {out}");
}

/// Start whatever is not running and wait until the cluster is healthy (`hack/cluster.sh up`).
pub struct Return {
    /// The API server's first answer to anything (`GET /version`): it serves requests from here on. In an etcd
    /// outage it never stopped answering this.
    pub answers: Timestamp,
    /// Its first answer that needed etcd (a LIST of PodTasks or of pods, limit 1).
    pub storage: Timestamp,
    /// When it answered both: it serves every resource podtask's work needs (after an etcd restart, each resource
    /// comes back when the API server's own etcd client for it has reconnected, seconds apart).
    pub storage_all: Timestamp,
    /// Its `/readyz` (which includes etcd and every post-start hook) first said ok.
    pub ready: Timestamp,
    /// The whole cluster (scheduler, controller-manager, kwok) was up.
    pub all_up: Timestamp,
}

/// When the API server first answers a LIST of PodTasks and of pods (limit 1), which it can only answer from
/// etcd (the suite's API server runs without a watch cache): (the first of the two, both).
async fn storage_ok() -> (Timestamp, Timestamp) {
    let (tasks, pods) =
        tokio::join!(first_ok("/apis/podtask.dev/v1alpha1/podtasks?limit=1"), first_ok("/api/v1/pods?limit=1"));
    (tasks.min(pods), tasks.max(pods))
}

/// When `path` first answers, asked every 50 ms over a new connection each time (a connection that hung in an
/// outage is never reused, so the figure is the server's, not the test client's).
async fn first_ok(path: &str) -> Timestamp {
    loop {
        if let Ok(client) = kube::Client::try_default().await {
            let probe = http::Request::get(path).body(Vec::new()).expect("a request");
            if let Ok(Ok(_)) = tokio::time::timeout(SECOND, client.request_text(probe)).await {
                return Timestamp::now();
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The pid of a running control-plane component, from hack/cluster.sh's pid file, checked against
/// /proc/<pid>/exe (never a pid that was reused by another program).
pub fn component_pid(name: &str) -> Option<u32> {
    let pid: u32 =
        std::fs::read_to_string(state_dir().join("pids").join(format!("{name}.pid"))).ok()?.trim().parse().ok()?;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let file = exe.file_name()?.to_string_lossy().into_owned();
    (file == name || file == format!("{name} (deleted)")).then_some(pid)
}

/// Kill a component and start it again (`hack/cluster.sh kill`, then `up` after `down_for`); the kill must have
/// produced a new process, or the fault did not happen.
/// With `expire_watches`, etcd's history is compacted past every revision anyone has seen while the API server
/// is down, so every watch that resumes gets 410 Gone.
pub async fn restart_component(name: &'static str, down_for: Duration, expire_watches: bool) -> (Timestamp, Return) {
    let before = component_pid(name).unwrap_or_else(|| panic!("{name} is not running"));
    let down = Timestamp::now();
    kill_component(name).await;
    if expire_watches {
        let rev = compact_etcd().await;
        println!("faults: compacted etcd at revision {rev}");
    }
    tokio::time::sleep(down_for).await;
    let back = cluster_up_fresh().await;
    let after = component_pid(name).unwrap_or_else(|| panic!("{name} did not start again"));
    assert_ne!(before, after, "{name} was killed but no new process runs");
    assert!(std::fs::metadata(format!("/proc/{before}")).is_err(), "the killed {name} (pid {before}) still runs");
    (down, back)
}

async fn cluster_up_fresh() -> Return {
    let up = async {
        let (ok, out) = tokio::task::spawn_blocking(|| run(Command::new(cluster_sh()).arg("up"))).await.expect("join");
        assert!(ok, "hack/cluster.sh up failed: {out}");
        Timestamp::now()
    };
    let (answers, (storage, storage_all), ready, all_up) =
        tokio::join!(first_ok("/version"), storage_ok(), first_ok("/readyz"), up);
    Return { answers, storage, storage_all, ready, all_up }
}

/// The kinds of API outage the outage test injects.
#[derive(Clone, Copy, Debug)]
pub enum OutageKind {
    KillApiServer,
    /// SIGSTOP: the API server's connections hang instead of failing.
    StopApiServer,
    /// iptables drops every packet to and from the API server's port (loopback only).
    DropApiServer,
    KillEtcd,
}

/// An outage in progress; ending it (or dropping it, on a panic) restores what it changed.
pub struct Outage {
    kind: OutageKind,
    pid: Option<u32>,
    rules: Option<DropRules>,
}

/// iptables rules dropping the API server's traffic on loopback; removed when dropped.
struct DropRules {
    port: String,
}

impl DropRules {
    fn args(&self, op: &str) -> [Vec<String>; 2] {
        ["--dport", "--sport"].map(|dir| {
            ["-w", op, "INPUT", "-i", "lo", "-p", "tcp", dir, &self.port, "-j", "DROP"].map(String::from).to_vec()
        })
    }
    fn insert(port: String) -> Self {
        let rules = Self { port };
        for args in rules.args("-I") {
            let (ok, out) = run(Command::new("iptables").args(&args));
            assert!(ok, "iptables {args:?}: {out}");
        }
        rules
    }
}

impl Drop for DropRules {
    fn drop(&mut self) {
        for args in self.args("-D") {
            let (ok, out) = run(Command::new("iptables").args(&args));
            if !ok {
                eprintln!("faults: could not remove the iptables rule {args:?}: {out}");
            }
        }
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        if let (OutageKind::StopApiServer, Some(pid)) = (self.kind, self.pid.take()) {
            let _ = run(Command::new("kill").args(["-CONT", &pid.to_string()]));
        }
    }
}

pub async fn outage_begin(kind: OutageKind) -> Outage {
    let mut outage = Outage { kind, pid: None, rules: None };
    match kind {
        OutageKind::KillApiServer | OutageKind::KillEtcd => {
            let name = if matches!(kind, OutageKind::KillEtcd) { "etcd" } else { "kube-apiserver" };
            outage.pid = Some(component_pid(name).unwrap_or_else(|| panic!("{name} is not running")));
            kill_component(name).await;
        }
        OutageKind::StopApiServer => {
            let pid = component_pid("kube-apiserver").expect("kube-apiserver is not running");
            let (ok, out) = run(Command::new("kill").args(["-STOP", &pid.to_string()]));
            assert!(ok, "kill -STOP {pid}: {out}");
            outage.pid = Some(pid);
        }
        OutageKind::DropApiServer => {
            let ports = std::fs::read_to_string(state_dir().join("ports")).expect("$STATE/ports");
            let port = ports.lines().find_map(|l| l.strip_prefix("kube-apiserver=")).expect("the API server's port");
            outage.rules = Some(DropRules::insert(port.trim().to_owned()));
        }
    }
    outage
}

/// End the outage and wait until the API server answers again (and the whole cluster is up). A killed component
/// must have been replaced by a new process.
pub async fn outage_end(mut outage: Outage) -> Return {
    match outage.kind {
        OutageKind::KillApiServer | OutageKind::KillEtcd => {
            let name = if matches!(outage.kind, OutageKind::KillEtcd) { "etcd" } else { "kube-apiserver" };
            let back = cluster_up_fresh().await;
            let before = outage.pid.take().expect("the killed pid");
            let after = component_pid(name).unwrap_or_else(|| panic!("{name} did not start again"));
            assert_ne!(before, after, "{name} was killed but no new process runs");
            back
        }
        OutageKind::StopApiServer => {
            drop(outage);
            let (answers, (storage, storage_all), ready) =
                tokio::join!(first_ok("/version"), storage_ok(), first_ok("/readyz"));
            Return { answers, storage, storage_all, ready, all_up: ready }
        }
        OutageKind::DropApiServer => {
            drop(outage.rules.take());
            let (answers, (storage, storage_all), ready) =
                tokio::join!(first_ok("/version"), storage_ok(), first_ok("/readyz"));
            Return { answers, storage, storage_all, ready, all_up: ready }
        }
    }
}

fn etcd_url(path: &str) -> String {
    let ports = std::fs::read_to_string(state_dir().join("ports")).expect("$STATE/ports");
    let port = ports.lines().find_map(|l| l.strip_prefix("etcd=")).expect("etcd port").trim().to_owned();
    format!("http://127.0.0.1:{port}{path}")
}

fn etcd_post(path: &str, body: &str) -> Value {
    let (ok, out) =
        run(Command::new("curl").args(["-sS", "--max-time", "10", "-X", "POST", &etcd_url(path), "-d", body]));
    assert!(ok, "etcd {path}: {out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("etcd {path} answered {out}: {e}"))
}

/// Write one key outside the API server's prefix, then compact etcd's history up to that write: every watch
/// resumed from any resourceVersion seen before gets 410 Gone and must relist. Returns the revision.
pub async fn compact_etcd() -> i64 {
    tokio::task::spawn_blocking(|| {
        // "L3BvZHRhc2stZmF1bHRzL21hcmtlcg==" is "/podtask-faults/marker", "MQ==" is "1"; the header carries the
        // store's revision after the write.
        let head = etcd_post("/v3/kv/put", r#"{"key":"L3BvZHRhc2stZmF1bHRzL21hcmtlcg==","value":"MQ=="}"#);
        let rev: i64 = head["header"]["revision"].as_str().and_then(|r| r.parse().ok()).expect("etcd revision");
        etcd_post("/v3/kv/compaction", &format!(r#"{{"revision":"{rev}","physical":true}}"#));
        rev
    })
    .await
    .expect("join")
}

// ---- the operator's own user, and throttling it ----

/// A kubeconfig for [`OPERATOR_USER`] (a client certificate signed by the cluster's CA, bound to cluster-admin).
pub fn operator_kubeconfig(dir: &Path) -> PathBuf {
    let pki = state_dir().join("pki");
    let key = dir.join("operator.key");
    let csr = dir.join("operator.csr");
    let crt = dir.join("operator.crt");
    let ext = dir.join("client.ext");
    std::fs::write(
        &ext,
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n",
    )
    .expect("write ext");
    for args in [
        vec!["genrsa", "-out", key.to_str().unwrap(), "2048"],
        vec![
            "req",
            "-new",
            "-key",
            key.to_str().unwrap(),
            "-subj",
            &format!("/CN={OPERATOR_USER}"),
            "-out",
            csr.to_str().unwrap(),
        ],
        vec![
            "x509",
            "-req",
            "-in",
            csr.to_str().unwrap(),
            "-CA",
            pki.join("ca.crt").to_str().unwrap(),
            "-CAkey",
            pki.join("ca.key").to_str().unwrap(),
            "-CAcreateserial",
            "-CAserial",
            dir.join("ca.srl").to_str().unwrap(),
            "-days",
            "2",
            "-sha256",
            "-extfile",
            ext.to_str().unwrap(),
            "-out",
            crt.to_str().unwrap(),
        ],
    ] {
        let (ok, out) = run(Command::new("openssl").args(&args));
        assert!(ok, "openssl {args:?}: {out}");
    }
    let b64 = |p: &Path| {
        let (ok, out) = run(Command::new("base64").args(["-w0", p.to_str().unwrap()]));
        assert!(ok, "base64: {out}");
        out
    };
    let admin: Value =
        serde_norway::from_str(&std::fs::read_to_string(kubeconfig()).expect("kubeconfig")).expect("yaml");
    let server = admin["clusters"][0]["cluster"]["server"].as_str().expect("server").to_owned();
    let ca = admin["clusters"][0]["cluster"]["certificate-authority-data"].as_str().expect("ca").to_owned();
    let config = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: podtask\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\n\
         users:\n- name: {OPERATOR_USER}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n\
         contexts:\n- name: podtask\n  context:\n    cluster: podtask\n    user: {OPERATOR_USER}\ncurrent-context: podtask\n",
        b64(&crt),
        b64(&key)
    );
    let path = dir.join("operator.kubeconfig");
    std::fs::write(&path, config).expect("write the operator kubeconfig");
    apply(&format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {{name: {OPERATOR_USER}}}\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}}\n\
         subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: {OPERATOR_USER}}}]\n"
    ));
    path
}

fn apply(yaml: &str) {
    let mut child = Command::new("kubectl")
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl");
    child.stdin.take().expect("stdin").write_all(yaml.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("kubectl apply");
    assert!(out.status.success(), "kubectl apply failed: {}\n{yaml}", String::from_utf8_lossy(&out.stderr));
}

/// A priority level with one seat and no queue for the operator's user: whatever exceeds it gets 429.
const THROTTLE: &str = "apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: PriorityLevelConfiguration
metadata: {name: podtask-faults}
spec:
  type: Limited
  limited:
    nominalConcurrencyShares: 1
    lendablePercent: 0
    limitResponse: {type: Reject}
---
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: FlowSchema
metadata: {name: podtask-faults}
spec:
  priorityLevelConfiguration: {name: podtask-faults}
  matchingPrecedence: 100
  distinguisherMethod: {type: ByUser}
  rules:
    - subjects: [{kind: User, user: {name: podtask-faults}}]
      resourceRules: [{verbs: ['*'], apiGroups: ['*'], resources: ['*'], namespaces: ['*'], clusterScope: true}]
      nonResourceRules: [{verbs: ['*'], nonResourceURLs: ['*']}]
";

pub async fn throttle_on() {
    tokio::task::spawn_blocking(|| apply(THROTTLE)).await.expect("join");
}

pub async fn throttle_off() {
    tokio::task::spawn_blocking(|| {
        let (ok, out) = kubectl(&[
            "delete",
            "flowschema.flowcontrol.apiserver.k8s.io/podtask-faults",
            "prioritylevelconfiguration.flowcontrol.apiserver.k8s.io/podtask-faults",
            "--ignore-not-found",
        ]);
        assert!(ok, "removing the throttle failed: {out}");
    })
    .await
    .expect("join");
}

/// Requests the API server rejected (429) for the throttle's priority level since it started.
pub async fn rejected_429() -> u64 {
    tokio::task::spawn_blocking(|| {
        let (ok, text) = kubectl(&["get", "--raw", "/metrics"]);
        if !ok {
            return 0;
        }
        text.lines()
            .filter(|l| l.starts_with("apiserver_flowcontrol_rejected_requests_total{"))
            .filter(|l| l.contains("priority_level=\"podtask-faults\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    })
    .await
    .expect("join")
}

pub const SECOND: Duration = Duration::from_secs(1);
