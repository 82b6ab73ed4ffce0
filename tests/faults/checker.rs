//! The invariant checker: watches every pod and PodTask of the run's namespace from before the first task until
//! the end, keeps a book of what it saw (with the time it saw it), and at the end turns the book, the API server's
//! audit log of pod creates and the scenario each task was given into a list of violations.
//!
//! A watch can miss a short-lived object while it relists (after a 410 or an API restart); the audit log cannot, so
//! "one pod per attempt" and "no pod after the deadline" are checked on both.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    sync::{Arc, Mutex},
};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client, ResourceExt,
    runtime::{WatchStreamExt, utils::Backoff, watcher},
};
use podtask::{
    crd::{Phase, PodTask},
    engine::naming,
    jiff::{SignedDuration, Timestamp},
};
use serde_json::Value;

use crate::load::Scenario;

/// What the checker saw of one pod.
#[derive(Clone, Debug)]
pub struct PodRec {
    pub name: String,
    pub task: String,
    pub attempt: u32,
    pub created: Option<Timestamp>,
    /// The `podtask.dev/deadline` annotation the pod was created with.
    pub deadline: Option<String>,
    /// First sighting with a deletionTimestamp, or of its absence (deleted, or missing from a relist).
    pub ended: Option<Timestamp>,
}

/// What the checker saw of one PodTask.
#[derive(Clone, Debug, Default)]
pub struct TaskRec {
    /// Every distinct status.deadline ever seen.
    pub deadlines: BTreeSet<String>,
    /// First sighting of a terminal phase.
    pub terminal_seen: Option<Timestamp>,
    pub last: Option<PodTask>,
    /// Phases seen after a terminal one (a terminal phase must stay terminal).
    pub left_terminal: Vec<String>,
}

#[derive(Default)]
pub struct Book {
    pub pods: BTreeMap<String, PodRec>,
    pub tasks: BTreeMap<String, TaskRec>,
    /// Last time any task's status changed (recovery after a fault is measured from it).
    pub last_progress: Option<Timestamp>,
    pub watch_errors: u32,
    pub watch_gone: u32,
    /// Watch errors by kind (their first words).
    pub error_kinds: BTreeMap<String, u32>,
    /// uids seen during the relist in progress, per kind.
    relist_pods: Option<BTreeSet<String>>,
}

pub type SharedBook = Arc<Mutex<Book>>;

/// The checker reconnects every 200 ms while the API is away, so what it sees lags the API's return by little
/// (kube's default backoff grows to many seconds during a long outage).
struct Retry;

impl Iterator for Retry {
    type Item = std::time::Duration;
    fn next(&mut self) -> Option<Self::Item> {
        Some(std::time::Duration::from_millis(200))
    }
}

impl Backoff for Retry {
    fn reset(&mut self) {}
}

/// A fault window: the checker's and the operator's view may lag by its length.
#[derive(Clone, Debug)]
pub struct Window {
    pub what: String,
    pub from: Timestamp,
    pub to: Timestamp,
}

pub struct Checker {
    pub book: SharedBook,
    watches: Vec<tokio::task::JoinHandle<()>>,
}

impl Checker {
    pub fn start(client: &Client, ns: &str) -> Self {
        let book: SharedBook = Arc::default();
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        let tasks: Api<PodTask> = Api::namespaced(client.clone(), ns);
        let b = book.clone();
        let pod_watch = tokio::spawn(async move {
            let mut events = watcher(pods, watcher::Config::default()).backoff(Retry).boxed();
            while let Some(event) = events.next().await {
                let mut book = b.lock().expect("book");
                match event {
                    Ok(watcher::Event::Init) => book.relist_pods = Some(BTreeSet::new()),
                    Ok(watcher::Event::InitApply(p)) => {
                        if let Some(seen) = book.relist_pods.as_mut() {
                            seen.insert(p.uid().unwrap_or_default());
                        }
                        book.pod(&p, false);
                    }
                    Ok(watcher::Event::InitDone) => book.relist_done(),
                    Ok(watcher::Event::Apply(p)) => book.pod(&p, false),
                    Ok(watcher::Event::Delete(p)) => book.pod(&p, true),
                    Err(e) => book.error(&e),
                }
            }
        });
        let b = book.clone();
        let task_watch = tokio::spawn(async move {
            let mut events = watcher(tasks, watcher::Config::default()).backoff(Retry).boxed();
            while let Some(event) = events.next().await {
                let mut book = b.lock().expect("book");
                match event {
                    Ok(watcher::Event::InitApply(t) | watcher::Event::Apply(t)) => book.task(t),
                    Ok(_) => {}
                    Err(e) => book.error(&e),
                }
            }
        });
        Self { book, watches: vec![pod_watch, task_watch] }
    }

    pub fn stop(&self) {
        for w in &self.watches {
            w.abort();
        }
    }
}

impl Book {
    fn error(&mut self, e: &watcher::Error) {
        self.watch_errors += 1;
        let text = e.to_string();
        *self.error_kinds.entry(text.chars().take(70).collect()).or_default() += 1;
        if text.contains("410") || text.contains("Expired") || text.contains("too old") {
            self.watch_gone += 1;
        }
    }

    fn pod(&mut self, p: &Pod, deleted: bool) {
        let at = Timestamp::now();
        let Some(task) = p.labels().get(naming::LABEL_TASK).cloned() else { return };
        let rec = self.pods.entry(p.uid().unwrap_or_default()).or_insert_with(|| PodRec {
            name: p.name_any(),
            task,
            attempt: p.labels().get(naming::LABEL_ATTEMPT).and_then(|a| a.parse().ok()).unwrap_or(0),
            created: p.creation_timestamp().map(|t| t.0),
            deadline: p.annotations().get(naming::ANNOTATION_DEADLINE).cloned(),
            ended: None,
        });
        if (deleted || p.metadata.deletion_timestamp.is_some()) && rec.ended.is_none() {
            rec.ended = Some(at);
        }
    }

    /// A pod missing from a complete relist was deleted while the watch was down.
    fn relist_done(&mut self) {
        let at = Timestamp::now();
        let Some(seen) = self.relist_pods.take() else { return };
        for (uid, rec) in &mut self.pods {
            if rec.ended.is_none() && !seen.contains(uid) {
                rec.ended = Some(at);
            }
        }
    }

    fn task(&mut self, t: PodTask) {
        let at = Timestamp::now();
        let rec = self.tasks.entry(t.name_any()).or_default();
        let status = t.status.clone().unwrap_or_default();
        if let Some(d) = &status.deadline {
            rec.deadlines.insert(d.0.to_string());
        }
        if status.phase.is_terminal() {
            rec.terminal_seen.get_or_insert(at);
        } else if rec.terminal_seen.is_some() {
            rec.left_terminal.push(format!("{:?}", status.phase));
        }
        let changed = rec.last.as_ref().and_then(|l| l.status.as_ref()) != t.status.as_ref();
        rec.last = Some(t);
        if changed {
            self.last_progress = Some(at);
        }
    }
}

/// One pod create the API server accepted, from its audit log.
#[derive(Clone, Debug)]
pub struct AuditedCreate {
    pub name: String,
    pub at: Timestamp,
}

/// The pod creates (HTTP 201) in `ns` recorded in the audit log.
/// LISTs of pods and PodTasks by the operator's user received at `since` or later: its watches' relists.
pub fn audited_relists(path: &Path, since: Timestamp) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["stage"] == "ResponseComplete" && e["verb"] == "list")
        .filter(|e| e["user"]["username"] == crate::inject::OPERATOR_USER)
        .filter(|e| e["responseStatus"]["code"] == 200)
        .filter(|e| {
            e["requestReceivedTimestamp"].as_str().and_then(|t| t.parse::<Timestamp>().ok()).is_some_and(|t| t >= since)
        })
        .count()
}

pub fn audited_creates(path: &Path, ns: &str) -> Vec<AuditedCreate> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["stage"] == "ResponseComplete" && e["verb"] == "create")
        .filter(|e| e["objectRef"]["resource"] == "pods" && e["objectRef"]["namespace"] == ns)
        .filter(|e| e["responseStatus"]["code"] == 201)
        .filter_map(|e| {
            Some(AuditedCreate {
                name: e["objectRef"]["name"].as_str()?.to_owned(),
                at: e["stageTimestamp"].as_str()?.parse().ok()?,
            })
        })
        .collect()
}

/// One of podtask's requests that enforce a task's end.
pub struct Enforcement {
    pub task: String,
    /// A delete of the task's pod (else a write of its status).
    pub pod_delete: bool,
    pub at: Timestamp,
}

/// When `task`'s end was enforced after `since`: the later of its first status write and its pod's first delete
/// (if any) after that moment. None without a status write.
pub fn enforced_at(audited: &[Enforcement], task: &str, since: Timestamp) -> Option<Timestamp> {
    let first = |delete: bool| {
        audited.iter().filter(|e| e.task == task && e.pod_delete == delete && e.at > since).map(|e| e.at).min()
    };
    let written = first(false)?;
    Some(first(true).map_or(written, |deleted| deleted.max(written)))
}

/// podtask's enforcement requests in `ns`, from the API server's audit log: every successful status write of a
/// PodTask and every successful delete of a pod, each with the task's name (a pod's is its name without the
/// `-<uid prefix>-<attempt>` podtask appends) and when the API server completed it.
pub fn audited_enforcement(path: &Path, ns: &str) -> Vec<Enforcement> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["stage"] == "ResponseComplete" && e["objectRef"]["namespace"] == ns)
        .filter(|e| e["responseStatus"]["code"].as_i64().is_some_and(|c| (200..=202).contains(&c)))
        .filter_map(|e| {
            let (verb, resource, name) = (&e["verb"], &e["objectRef"]["resource"], e["objectRef"]["name"].as_str()?);
            let (task, pod_delete) =
                if verb == "update" && resource == "podtasks" && e["objectRef"]["subresource"] == "status" {
                    (name.to_owned(), false)
                } else if verb == "delete" && resource == "pods" {
                    (name.rsplitn(3, '-').nth(2)?.to_owned(), true)
                } else {
                    return None;
                };
            Some(Enforcement { task, pod_delete, at: e["stageTimestamp"].as_str()?.parse().ok()? })
        })
        .collect()
}

/// How long a pod may outlive its task's terminal state, beyond the fault windows it overlaps.
pub const POD_AFTER_TERMINAL: SignedDuration = SignedDuration::from_secs(10);

/// Reasons the contract gives an attempt whose pod did not start in time. While the scheduler or kwok (the
/// kubelets) are down, or cut off from the API server, pods cannot start: such a verdict is then what a user
/// must see, not a fault of podtask's.
const STARTUP_VERDICTS: [&str; 3] = ["StartupTimeout", "Unschedulable", "ImagePullTimeout"];

/// An outcome other than the scenario's, explained: some attempt ended with a startup verdict while its pod's
/// startup overlapped a control-plane outage (a throttled operator alone never explains one).
fn explained_by_outage(task: &PodTask, pods: &[&PodRec], windows: &[Window]) -> Option<String> {
    let outages: Vec<Window> = windows.iter().filter(|w| w.what != "Throttle").cloned().collect();
    let status = task.status.as_ref()?;
    status.attempts.iter().find_map(|a| {
        let reason = a.reason.to_string();
        if !STARTUP_VERDICTS.contains(&reason.as_str()) {
            return None;
        }
        let pod = pods.iter().find(|p| p.attempt == a.attempt)?;
        let (from, to) = (pod.created?, a.end_time.as_ref().map(|t| t.0).or(pod.ended)?);
        let covered = overlap(&outages, from, to);
        (covered > SignedDuration::ZERO).then(|| {
            format!("attempt {} ended {reason}; {covered:#} of its startup was a control-plane outage", a.attempt)
        })
    })
}

/// Everything the checker holds against the run (empty means every invariant held), and outcomes other than the
/// scenario's that a control-plane outage explains (`explained`, reported, not violations).
pub fn violations(
    book: &Book,
    scenarios: &BTreeMap<String, Scenario>,
    audit: Option<&[AuditedCreate]>,
    windows: &[Window],
    explained: &mut Vec<String>,
) -> Vec<String> {
    let mut v = Vec::new();
    if audit.is_some_and(<[AuditedCreate]>::is_empty) && !book.pods.is_empty() {
        v.push("the audit log holds no pod create of this run: was the API server started by hack/faults.sh?".into());
    }

    // At most one pod per (task, attempt), as watched.
    let mut per_attempt: BTreeMap<(&str, u32), Vec<&str>> = BTreeMap::new();
    for rec in book.pods.values() {
        per_attempt.entry((&rec.task, rec.attempt)).or_default().push(&rec.name);
    }
    for ((task, attempt), names) in &per_attempt {
        if names.len() > 1 {
            v.push(format!("task {task} attempt {attempt}: {} pods seen: {names:?}", names.len()));
        }
    }

    for (name, scenario) in scenarios {
        let Some(rec) = book.tasks.get(name) else {
            v.push(format!("task {name}: never seen by the checker"));
            continue;
        };
        let Some(task) = &rec.last else { continue };
        let status = task.status.clone().unwrap_or_default();

        // A deadline never changes once set.
        if rec.deadlines.len() > 1 {
            v.push(format!("task {name}: deadline changed: {:?}", rec.deadlines));
        }
        let deadline = rec.deadlines.iter().next().and_then(|d| d.parse::<Timestamp>().ok());

        // A terminal phase stays terminal.
        if !rec.left_terminal.is_empty() {
            v.push(format!("task {name}: left its terminal phase for {:?}", rec.left_terminal));
        }

        let pods: Vec<&PodRec> = book.pods.values().filter(|p| p.task == naming::task_label(name)).collect();

        // The outcome its scenario implies.
        let got = (status.phase, status.reason.map(|r| r.to_string()).unwrap_or_default(), status.attempts.len());
        if let Some(want) = scenario.expected()
            && !want.matches(&got)
        {
            if let Some(why) = explained_by_outage(task, &pods, windows) {
                explained.push(format!(
                    "task {name} ({scenario:?}): {:?}/{} after {} attempt(s): {why}",
                    got.0, got.1, got.2
                ));
            } else {
                v.push(format!(
                    "task {name} ({scenario:?}): expected {want:?}, got phase {:?} reason {} after {} attempt(s): {}",
                    got.0,
                    got.1,
                    got.2,
                    status.message.clone().unwrap_or_default()
                ));
            }
        }

        for pod in &pods {
            // No pod created after the task's deadline (creationTimestamp has whole seconds: lenient).
            if let (Some(d), Some(c)) = (deadline, pod.created)
                && c > d
            {
                v.push(format!("task {name}: pod {} created at {c}, after the deadline {d}", pod.name));
            }
            // The pod carries the task's deadline.
            if let (Some(d), Some(pd)) = (rec.deadlines.iter().next(), &pod.deadline)
                && pd != d
            {
                v.push(format!("task {name}: pod {} launched with deadline {pd}, the task has {d}", pod.name));
            }
            // No pod outlives the task's terminal state by more than a few seconds (fault windows excepted).
            if let Some(t) = rec.terminal_seen {
                match pod.ended {
                    None => v.push(format!("task {name}: pod {} still exists, task finished at {t}", pod.name)),
                    Some(end) if end > t => {
                        let lag = end.duration_since(t) - overlap(windows, t, end);
                        if lag > POD_AFTER_TERMINAL {
                            v.push(format!(
                                "task {name}: pod {} outlived the task's end by {lag:#} (beyond fault windows)",
                                pod.name
                            ));
                        }
                    }
                    Some(_) => {}
                }
            }
        }
        if rec.terminal_seen.is_none() && status.phase.is_terminal() {
            v.push(format!("task {name}: terminal without the checker seeing it"));
        }

        // The audit log: every accepted create of this task's pods.
        if let Some(audit) = audit {
            let uid = task.uid().unwrap_or_default();
            for attempt in 1..=status.attempt.max(1) + 1 {
                let pod = naming::pod_name(name, &uid, attempt);
                let creates: Vec<&AuditedCreate> = audit.iter().filter(|c| c.name == pod).collect();
                if creates.len() > 1 {
                    let at: Vec<String> = creates.iter().map(|c| c.at.to_string()).collect();
                    v.push(format!("task {name}: pod {pod} (attempt {attempt}) created {} times: {at:?}", at.len()));
                }
                for c in &creates {
                    if let Some(d) = deadline
                        && c.at > d
                    {
                        v.push(format!("task {name}: pod {pod} created at {} (audit), after the deadline {d}", c.at));
                    }
                }
                if attempt > status.attempt && !creates.is_empty() {
                    v.push(format!("task {name}: pod {pod} created for attempt {attempt} beyond the task's last"));
                }
            }
        }
    }
    v
}

/// How much of [from, to] the fault windows cover.
fn overlap(windows: &[Window], from: Timestamp, to: Timestamp) -> SignedDuration {
    windows
        .iter()
        .map(|w| {
            let a = w.from.max(from);
            let b = w.to.min(to);
            if b > a { b.duration_since(a) } else { SignedDuration::ZERO }
        })
        .sum()
}

/// The phase a finished task shows (for summaries).
pub fn outcome(t: &PodTask) -> (Phase, String) {
    let s = t.status.clone().unwrap_or_default();
    (s.phase, s.reason.map(|r| r.to_string()).unwrap_or_default())
}
