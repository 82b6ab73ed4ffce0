//! The real-node harness: a namespace per test on a cluster with one real node (kubelet + containerd), the
//! operator installed by Helm (not started here), images from the local registry, faults chosen by image name.
//!
//! PodTasks are read as JSON, so the assertions speak the API's field names, as a user's `kubectl get -o yaml`.

use std::{
    collections::BTreeMap,
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt;
use k8s_openapi::{
    api::core::v1::{Namespace, Pod, ServiceAccount},
    jiff::Timestamp,
};
use kube::{
    Api, Client, ResourceExt,
    api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, PostParams},
    runtime::watcher,
};
use serde_json::{Value, json};

pub const POLL: Duration = Duration::from_millis(250);
/// The registry the node pulls from directly.
pub const REGISTRY: &str = "127.0.0.1:5000";
/// The fault-injecting proxy in front of it (hack/faultproxy).
pub const FAULT_REGISTRY: &str = "127.0.0.1:5001";
pub const BUSYBOX: &str = "podtask-test/busybox:1";
/// Where the Helm release runs.
pub const OPERATOR_NS: &str = "podtask-system";
pub const LABEL_TASK: &str = "podtask.dev/task";

pub fn image() -> String {
    format!("{REGISTRY}/{BUSYBOX}")
}

/// An image behind the fault proxy: `mode` for `window` ("30s" or "forever") from its first request.
/// A fresh name per call, so every test has its own window, and fresh content (busybox with a label of its own):
/// containerd skips the manifest GET when it already holds the manifest a HEAD names, so a fault on manifest GETs
/// only bites on an image the node has never pulled.
pub fn faulty_image(mode: &str, window: &str) -> String {
    let nonce = unique();
    let repo = format!("podtask-test/u{nonce}:1");
    let crane = std::env::var("CRANE").unwrap_or_else(|_| "crane".into());
    let out = Command::new(&crane)
        .args(["mutate", "--insecure", "--label", &format!("podtask.test/nonce={nonce}")])
        .args([format!("{REGISTRY}/{BUSYBOX}"), "-t".into(), format!("{REGISTRY}/{repo}")])
        .output()
        .unwrap_or_else(|e| panic!("{crane} (set CRANE, see hack/realnode/test.sh): {e}"));
    assert!(out.status.success(), "crane mutate: {}", String::from_utf8_lossy(&out.stderr));
    format!("{FAULT_REGISTRY}/f/{mode}-{window}-{nonce}/{repo}")
}

pub fn unique() -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{:x}{n}", (nanos as u64) & 0xff_ffff)
}

/// A pod template with one busybox container running `script`; restricted-profile security settings.
pub fn template(image: &str, script: &str) -> Value {
    json!({
        "spec": {
            "terminationGracePeriodSeconds": 5,
            "containers": [{"name": "main", "image": image, "command": ["/bin/sh", "-c", script]}]
        }
    })
}

pub async fn client() -> Client {
    assert!(
        std::env::var_os("KUBECONFIG").is_some(),
        "KUBECONFIG is not set: run the tier with hack/realnode/test.sh (or hack/realnode/up.sh and its env)"
    );
    Client::try_default().await.expect("a kube client from KUBECONFIG")
}

pub fn kubectl(args: &[&str]) -> (bool, String) {
    let out = Command::new("kubectl").args(args).output().expect("kubectl on PATH");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

pub async fn wait_for<T>(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

pub fn ts(v: &Value) -> Option<Timestamp> {
    v.as_str()?.parse().ok()
}

/// Seconds from `a` to `b` (negative when `b` is earlier).
pub fn secs_between(a: Timestamp, b: Timestamp) -> f64 {
    b.duration_since(a).as_secs_f64()
}

pub fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

pub fn phase(t: &Value) -> &str {
    s(t, "/status/phase")
}

pub fn reason(t: &Value) -> &str {
    s(t, "/status/reason")
}

pub fn message(t: &Value) -> &str {
    s(t, "/status/message")
}

pub fn finished(t: &Value) -> bool {
    matches!(phase(t), "Succeeded" | "Failed")
}

/// (attempt, reason) of each finished attempt.
pub fn history(t: &Value) -> Vec<(u64, String)> {
    t.pointer("/status/attempts")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|r| (r["attempt"].as_u64().unwrap_or(0), r["reason"].as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

pub fn yaml(v: &Value) -> String {
    serde_norway::to_string(v).unwrap_or_default()
}

fn podtask_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("podtask.dev", "v1alpha1", "PodTask"))
}

/// Every pod of the namespace ever seen, by uid: name, task label, first time seen Running, its containers'
/// terminations as first seen, and when its deletion was seen.
#[derive(Clone, Debug, Default)]
pub struct PodSeen {
    pub name: String,
    pub task: String,
    pub running: Option<Timestamp>,
    /// The regular containers of the pod as created (after admission).
    pub containers: Vec<String>,
    /// Container name → its termination, as first seen.
    pub terminated: BTreeMap<String, Terminated>,
    /// When the watch first saw the pod's deletion requested (deletionTimestamp set), and the grace it was given.
    pub deleting: Option<(Timestamp, i64)>,
    /// When the watch saw the pod deleted (gone from the API).
    pub gone: Option<Timestamp>,
}

#[derive(Clone, Debug)]
pub struct Terminated {
    pub exit_code: i32,
    pub reason: String,
    /// The kubelet's finishedAt (whole seconds).
    pub finished_at: Option<Timestamp>,
    /// When this watch first saw the termination.
    pub seen: Timestamp,
}

fn record(book: &mut BTreeMap<String, PodSeen>, p: &Pod, gone: bool) {
    let e: &mut PodSeen = book.entry(p.uid().unwrap_or_default()).or_default();
    e.name = p.name_any();
    e.task = p.labels().get(LABEL_TASK).cloned().unwrap_or_default();
    e.containers = p.spec.iter().flat_map(|s| s.containers.iter().map(|c| c.name.clone())).collect();
    let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
    if running && e.running.is_none() {
        e.running = Some(Timestamp::now());
    }
    let statuses = p.status.iter().flat_map(|s| s.container_statuses.iter().flatten());
    for c in statuses {
        let Some(t) = c.state.as_ref().and_then(|s| s.terminated.as_ref()) else { continue };
        e.terminated.entry(c.name.clone()).or_insert_with(|| Terminated {
            exit_code: t.exit_code,
            reason: t.reason.clone().unwrap_or_default(),
            finished_at: t.finished_at.as_ref().map(|f| f.0),
            seen: Timestamp::now(),
        });
    }
    if p.metadata.deletion_timestamp.is_some() && e.deleting.is_none() {
        e.deleting = Some((Timestamp::now(), p.metadata.deletion_grace_period_seconds.unwrap_or_default()));
    }
    if gone && e.gone.is_none() {
        e.gone = Some(Timestamp::now());
    }
}

/// Tests share the Helm-installed operator; the disruptive ones (scaling it to 0, deleting its leader) hold it
/// alone, after the others: readers take it first because every test starts at once and writers wait a moment.
static OPERATOR: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

enum OperatorUse {
    Shared(#[allow(dead_code)] tokio::sync::RwLockReadGuard<'static, ()>),
    Exclusive(#[allow(dead_code)] tokio::sync::RwLockWriteGuard<'static, ()>),
}

/// One test: its namespace (deleted at the end unless PODTASK_REALNODE_KEEP=1), dumped when the test fails.
pub struct Env {
    pub client: Client,
    pub ns: String,
    pods_seen: Arc<Mutex<BTreeMap<String, PodSeen>>>,
    watch: tokio::task::JoinHandle<()>,
    _operator: OperatorUse,
}

impl Env {
    pub async fn start(test: &str) -> Self {
        let guard = OperatorUse::Shared(OPERATOR.read().await);
        Self::start_with(test, guard).await
    }

    /// A test that starts its pods 15 s after the first wave: the pull tests, whose startup timeouts are short, get
    /// the node's first burst of pod starts to themselves (on a 2-core node a burst of 25 pods delays the kubelet's
    /// first pull attempt past a 10 s startup timeout).
    pub async fn start_second_wave(test: &str) -> Self {
        // the operator first, so that the disruptive tests still wait for this one
        let guard = OperatorUse::Shared(OPERATOR.read().await);
        tokio::time::sleep(Duration::from_secs(15)).await;
        Self::start_with(test, guard).await
    }

    /// Poll the task's Events until one matches.
    pub async fn wait_event(
        &self,
        task: &str,
        what: &str,
        check: impl Fn(&(String, String, String)) -> bool,
    ) -> (String, String, String) {
        wait_for(what, Duration::from_secs(20), async || self.typed_events(task).await.into_iter().find(|e| check(e)))
            .await
    }

    /// A test that disrupts the shared operator: runs alone, after the others.
    pub async fn start_disruptive(test: &str) -> Self {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let guard = OperatorUse::Exclusive(OPERATOR.write().await);
        Self::start_with(test, guard).await
    }

    async fn start_with(test: &str, operator: OperatorUse) -> Self {
        let client = client().await;
        let short: String = test.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(30).collect();
        let ns = format!("rn-{}-{}", short.replace('_', "-").trim_end_matches('-'), unique());
        let nss: Api<Namespace> = Api::all(client.clone());
        nss.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap())
            .await
            .expect("create the test namespace");
        let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
        wait_for("serviceaccount default", Duration::from_secs(30), async || sas.get_opt("default").await.ok()?).await;
        let pods_seen = Arc::new(Mutex::new(BTreeMap::new()));
        let book = pods_seen.clone();
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let watch = tokio::spawn(async move {
            let mut stream = watcher(pods, watcher::Config::default()).boxed();
            while let Some(Ok(ev)) = stream.next().await {
                match ev {
                    watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                        record(&mut book.lock().unwrap(), &p, false)
                    }
                    watcher::Event::Delete(p) => record(&mut book.lock().unwrap(), &p, true),
                    _ => {}
                }
            }
        });
        Env { client, ns, pods_seen, watch, _operator: operator }
    }

    pub fn tasks(&self) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.ns, &podtask_resource())
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Create a PodTask; returns the time just before the request.
    pub async fn create(&self, name: &str, spec: Value) -> Timestamp {
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "podtask.dev/v1alpha1", "kind": "PodTask",
            "metadata": {"name": name, "namespace": self.ns}, "spec": spec
        }))
        .expect("a PodTask object");
        let at = Timestamp::now();
        self.tasks().create(&PostParams::default(), &obj).await.expect("create the PodTask");
        at
    }

    pub async fn task(&self, name: &str) -> Option<Value> {
        let t = self.tasks().get_opt(name).await.ok()??;
        serde_json::to_value(t).ok()
    }

    /// Poll the task until it finishes; `seen` gets every (phase, reason, message) observed on the way.
    pub async fn wait_finished(
        &self,
        name: &str,
        timeout: Duration,
        seen: &mut Vec<(String, String, String)>,
    ) -> Value {
        wait_for(&format!("PodTask {name} to finish"), timeout, async || {
            let t = self.task(name).await?;
            let now = (phase(&t).to_owned(), reason(&t).to_owned(), message(&t).to_owned());
            if seen.last() != Some(&now) {
                seen.push(now);
            }
            finished(&t).then_some(t)
        })
        .await
    }

    /// The pods of a task ever seen.
    pub fn pods_seen(&self, task: &str) -> Vec<PodSeen> {
        self.pods_seen.lock().unwrap().values().filter(|p| p.task == task).cloned().collect()
    }

    /// Event reasons (and notes) of a task, events.k8s.io and core Events both.
    pub async fn events(&self, task: &str) -> Vec<(String, String)> {
        let (_, text) = kubectl(&[
            "get",
            "events",
            "-n",
            &self.ns,
            "--field-selector",
            &format!("involvedObject.name={task}"),
            "-o",
            "json",
        ]);
        let v: Value = serde_json::from_str(&text).unwrap_or_default();
        v["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        (e["reason"].as_str().unwrap_or("").to_owned(), e["message"].as_str().unwrap_or("").to_owned())
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The task's Events as (type, reason, note).
    pub async fn typed_events(&self, task: &str) -> Vec<(String, String, String)> {
        let (_, text) = kubectl(&[
            "get",
            "events",
            "-n",
            &self.ns,
            "--field-selector",
            &format!("involvedObject.name={task}"),
            "-o",
            "json",
        ]);
        let v: Value = serde_json::from_str(&text).unwrap_or_default();
        let field = |e: &Value, f: &str| e[f].as_str().unwrap_or("").to_owned();
        v["items"]
            .as_array()
            .map(|a| a.iter().map(|e| (field(e, "type"), field(e, "reason"), field(e, "message"))).collect())
            .unwrap_or_default()
    }

    /// Poll the task until `check` holds; returns the task and when it was seen so.
    pub async fn wait_task(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> (Value, Timestamp) {
        wait_for(what, timeout, async || {
            let t = self.task(name).await?;
            check(&t).then(|| (t, Timestamp::now()))
        })
        .await
    }

    pub async fn wait_no_pods(&self, task: &str, timeout: Duration) {
        let pods = self.pods();
        wait_for(&format!("no pods left for {task}"), timeout, async || {
            let l = pods.list(&ListParams::default().labels(&format!("{LABEL_TASK}={task}"))).await.ok()?;
            l.items.is_empty().then_some(())
        })
        .await;
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.watch.abort();
        if std::thread::panicking() {
            for what in ["podtasks", "pods", "events"] {
                let (_, text) = kubectl(&["get", what, "-n", &self.ns, "-o", "yaml"]);
                eprintln!("---- {what} in {} ----\n{text}", self.ns);
            }
            let (_, logs) =
                kubectl(&["logs", "-n", OPERATOR_NS, "-l", "app.kubernetes.io/name=podtask", "--tail=60", "--prefix"]);
            eprintln!("---- operator logs ----\n{logs}");
        }
        if std::env::var_os("PODTASK_REALNODE_KEEP").is_none() {
            let _ = kubectl(&["delete", "namespace", &self.ns, "--wait=false"]);
        }
    }
}

/// Delete with the pod's own grace period.
pub async fn delete_pod(pods: &Api<Pod>, name: &str) {
    pods.delete(name, &DeleteParams::default()).await.expect("delete pod");
}

/// The node's name (hack/realnode/lib.sh).
pub const NODE: &str = "realnode-0";

/// Run `hack/realnode/node.sh ACTION` (freeze, thaw, restart-kubelet, restart-containerd): the node's daemons,
/// signalled only when they are the processes up.sh started.
pub fn node(action: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/hack/realnode/node.sh");
    let out = Command::new(script).arg(action).output().expect("hack/realnode/node.sh");
    assert!(out.status.success(), "node.sh {action}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The kubelet frozen (SIGSTOP) until this is dropped, a failing test included.
pub struct Frozen;

impl Frozen {
    pub fn kubelet() -> Self {
        node("freeze");
        Frozen
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        node("thaw");
    }
}

/// Pods labelled with this get a never-ending `proxy` container at admission, as a service mesh injects its proxy
/// (a MutatingAdmissionPolicy; no webhook server).
pub const INJECT_LABEL: &str = "podtask.test/inject-proxy";

const INJECTOR: &str = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicy
metadata: {name: podtask-test-inject-proxy}
spec:
  failurePolicy: Fail
  reinvocationPolicy: Never
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods]}
    objectSelector:
      matchLabels: {podtask.test/inject-proxy: "true"}
  matchConditions:
  - {name: no-proxy-yet, expression: '!object.spec.containers.exists(c, c.name == "proxy")'}
  mutations:
  # a JSON patch: an apply configuration may not set atomic lists such as a container's command
  - patchType: JSONPatch
    jsonPatch:
      expression: >
        [JSONPatch{op: "add", path: "/spec/containers/-", value: Object.spec.containers{
          name: "proxy", image: "IMAGE",
          command: ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]}}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicyBinding
metadata: {name: podtask-test-inject-proxy}
spec:
  policyName: podtask-test-inject-proxy
"#;

/// Install the proxy injector (idempotent) and wait until the API server applies it to pods of `env`'s namespace
/// (a server-side dry run of a labelled pod comes back with the proxy).
pub async fn proxy_injector(env: &Env) {
    // once per test binary: tests starting together would race to create the same objects
    static INSTALLED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    INSTALLED.get_or_init(|| {
        let file = std::env::temp_dir().join(format!("podtask-injector-{}.yaml", unique()));
        std::fs::write(&file, INJECTOR.replace("IMAGE", &image())).expect("write the injector manifest");
        let (ok, out) = kubectl(&["apply", "--server-side", "--force-conflicts", "-f", file.to_str().unwrap()]);
        let _ = std::fs::remove_file(&file);
        assert!(ok, "install the MutatingAdmissionPolicy: {out}");
    });
    let probe: Pod = serde_json::from_value(json!({
        "metadata": {"name": "injector-probe", "labels": {INJECT_LABEL: "true"}},
        "spec": {"containers": [{"name": "main", "image": image()}]}
    }))
    .unwrap();
    let pods = env.pods();
    let dry = PostParams { dry_run: true, ..Default::default() };
    wait_for("the MutatingAdmissionPolicy to inject the proxy", Duration::from_secs(30), async || {
        let p = pods.create(&dry, &probe).await.ok()?;
        p.spec?.containers.iter().any(|c| c.name == "proxy").then_some(())
    })
    .await;
}
