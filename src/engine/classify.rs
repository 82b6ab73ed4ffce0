//! What a pod is doing, in podtask's terms: started or not, and if not, what it is waiting for and whether that
//! can still get better (the table in the behaviour contract, row by row).

use k8s_openapi::api::core::v1::{ContainerStateTerminated, ContainerStatus, Pod};

use crate::crd::Reason;

/// Bound on the termination message podtask copies into status: the kubelet's own bound for the log lines it keeps
/// of a failed container (`FallbackToLogsOnError`), so those arrive whole.
pub const MAX_TERMINATION_MESSAGE: usize = 2048;

/// A pod's state as the decision core needs it.
#[derive(Clone, Debug, PartialEq)]
pub enum PodState {
    /// Not started yet: scheduling, pulling, creating containers.
    Waiting(Waiting),
    Running,
    Succeeded(Termination),
    Failed(Failure),
}

/// How the container that decided the outcome ended.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Termination {
    pub exit_code: Option<i32>,
    pub message: Option<String>,
    /// The kubelet's word for the end: Completed, Error, OOMKilled, ContainerCannotRun, ...
    pub reason: Option<String>,
    pub container: Option<String>,
}

impl Termination {
    /// The kernel killed the container for exceeding its memory limit.
    pub fn oom_killed(&self) -> bool {
        self.reason.as_deref() == Some("OOMKilled")
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Failure {
    /// A container exited non-zero.
    Exit(Termination),
    /// The kubelet enforced activeDeadlineSeconds (podtask's backstop while it was down).
    DeadlineExceeded,
    /// Evicted, preempted, or lost with its node: not the workload's fault.
    Evicted(String),
}

/// What an unstarted pod is waiting for.
#[derive(Clone, Debug, PartialEq)]
pub struct Waiting {
    pub class: WaitClass,
    pub reason: Reason,
    pub message: String,
}

/// How a wait can end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitClass {
    /// May still resolve: keep waiting until the startup timeout.
    Transient,
    /// Cannot resolve: fail now, no retry.
    Permanent,
    /// A missing Secret/ConfigMap: fail after the config-error grace unless it appears.
    ConfigError,
}

/// The containers whose ends decide a pod's outcome, by name: those the task's template lists (or names in
/// `decidingContainers`). Containers that admission added (a mesh's proxy) are not among them; nor are init
/// containers, native sidecars included. Empty: every container decides.
#[derive(Clone, Copy, Debug, Default)]
pub struct Deciding<'a>(pub &'a [String]);

impl Deciding<'_> {
    pub fn includes(&self, container: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|name| name == container)
    }

    /// The deciding containers' ends, once every one of them has terminated.
    fn ended<'c>(&self, containers: &'c [ContainerStatus]) -> Option<Vec<(&'c str, &'c ContainerStateTerminated)>> {
        let ended: Vec<_> = containers
            .iter()
            .filter(|c| self.includes(&c.name))
            .map(|c| Some((c.name.as_str(), c.state.as_ref()?.terminated.as_ref()?)))
            .collect::<Option<_>>()?;
        let all_listed = self.0.iter().all(|name| ended.iter().any(|(n, _)| n == name));
        (!ended.is_empty() && all_listed).then_some(ended)
    }
}

/// Classify a pod from its status: its outcome is its deciding containers' once they have all ended, whatever
/// other containers still run.
pub fn classify(pod: &Pod, deciding: Deciding<'_>) -> PodState {
    let status = pod.status.clone().unwrap_or_default();
    let containers = status.container_statuses.as_deref().unwrap_or_default();
    let inits = status.init_container_statuses.as_deref().unwrap_or_default();
    match status.phase.as_deref() {
        Some("Failed") => match pod_failure(status.reason.as_deref(), status.message.as_deref()) {
            Some(f) => PodState::Failed(f),
            None => match deciding.ended(containers) {
                Some(ended) => outcome(&ended),
                None => {
                    PodState::Failed(failure(status.reason.as_deref(), status.message.as_deref(), containers, inits))
                }
            },
        },
        phase => match deciding.ended(containers) {
            Some(ended) => outcome(&ended),
            None if phase == Some("Succeeded") => PodState::Succeeded(first_ended(containers)),
            None if phase == Some("Running") => PodState::Running,
            None => match waiting(pod) {
                Some(w) => PodState::Waiting(w),
                // Pending with every container already running or terminated: the phase will follow.
                None => PodState::Running,
            },
        },
    }
}

/// Succeeded when every deciding container exited 0, else failed with the first that did not.
fn outcome(ended: &[(&str, &ContainerStateTerminated)]) -> PodState {
    match ended.iter().find(|(_, t)| t.exit_code != 0) {
        Some((name, t)) => PodState::Failed(Failure::Exit(termination_of(name, t))),
        None => {
            let (name, t) = ended[0];
            PodState::Succeeded(termination_of(name, t))
        }
    }
}

fn termination_of(container: &str, t: &ContainerStateTerminated) -> Termination {
    Termination {
        exit_code: Some(t.exit_code),
        message: t.message.as_deref().map(bounded).filter(|m| !m.is_empty()),
        reason: t.reason.clone(),
        container: Some(container.to_owned()),
    }
}

/// The first container's end, of a pod that succeeded without naming its deciding containers' ends.
fn first_ended(containers: &[ContainerStatus]) -> Termination {
    let first = containers.iter().find_map(|c| Some((c.name.as_str(), c.state.as_ref()?.terminated.as_ref()?)));
    first.map(|(name, t)| termination_of(name, t)).unwrap_or_default()
}

/// A pod-level end that is not the workload's doing.
fn pod_failure(pod_reason: Option<&str>, pod_message: Option<&str>) -> Option<Failure> {
    match pod_reason? {
        "DeadlineExceeded" => Some(Failure::DeadlineExceeded),
        r @ ("Evicted"
        | "Preempting"
        | "NodeLost"
        | "Shutdown"
        | "NodeShutdown"
        | "Terminated"
        | "UnexpectedAdmissionError") => {
            Some(Failure::Evicted(pod_message.map_or_else(|| r.to_owned(), |m| format!("{r}: {m}"))))
        }
        _ => None,
    }
}

/// A failed pod whose deciding containers did not all end (an init container failed, or the pod failed before
/// they ran): the first container that exited non-zero, else the pod's own reason.
fn failure(
    pod_reason: Option<&str>,
    pod_message: Option<&str>,
    containers: &[ContainerStatus],
    inits: &[ContainerStatus],
) -> Failure {
    let terminated = || {
        containers
            .iter()
            .chain(inits)
            .filter_map(|c| Some((c.name.as_str(), c.state.as_ref().and_then(|s| s.terminated.as_ref())?)))
    };
    let pick = terminated().find(|(_, t)| t.exit_code != 0).or_else(|| terminated().next());
    if pick.is_none()
        && let Some(r) = pod_reason
    {
        // The pod failed without a container saying why (e.g. OutOfcpu at admission).
        return Failure::Evicted(pod_message.map_or_else(|| r.to_owned(), |m| format!("{r}: {m}")));
    }
    Failure::Exit(pick.map(|(name, t)| termination_of(name, t)).unwrap_or_default())
}

/// At most `MAX_TERMINATION_MESSAGE` bytes, keeping the end: a failed container's last log lines matter most.
fn bounded(message: &str) -> String {
    truncate_start(message.trim_end(), MAX_TERMINATION_MESSAGE)
}

/// At most `max` bytes of `s` (cut at a character boundary), with an ellipsis when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The last `max` bytes of `s` at most (cut at a character boundary), after an ellipsis when cut.
pub fn truncate_start(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &s[start..])
}

/// At most `max` bytes of `s`: its beginning and its end, an ellipsis between (an Event's note names the failure
/// first and ends with the container's last words).
pub fn truncate_middle(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let head = truncate(s, max / 3);
    let tail = truncate_start(s, max.saturating_sub(head.len()));
    format!("{}{}", head.trim_end_matches('…'), tail)
}

/// Why an unstarted pod is not running, most decisive first: init containers, then containers, then scheduling.
fn waiting(pod: &Pod) -> Option<Waiting> {
    let status = pod.status.as_ref();
    let conditions = status.and_then(|s| s.conditions.as_deref()).unwrap_or_default();
    if let Some(c) = conditions.iter().find(|c| c.type_ == "PodScheduled" && c.status == "False") {
        let unschedulable = c.reason.as_deref() == Some("Unschedulable");
        return Some(Waiting {
            class: WaitClass::Transient,
            reason: if unschedulable { Reason::Unschedulable } else { Reason::Scheduling },
            message: c.message.clone().unwrap_or_else(|| "waiting for the scheduler".into()),
        });
    }
    let scheduled = conditions.iter().any(|c| c.type_ == "PodScheduled" && c.status == "True")
        || pod.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
    if !scheduled {
        return Some(Waiting {
            class: WaitClass::Transient,
            reason: Reason::Scheduling,
            message: "waiting for the scheduler".into(),
        });
    }
    let statuses = status
        .into_iter()
        .flat_map(|s| s.init_container_statuses.iter().flatten().chain(s.container_statuses.iter().flatten()));
    let mut all_started = true;
    let mut seen = 0;
    for cs in statuses {
        seen += 1;
        let state = cs.state.as_ref();
        if state.is_some_and(|s| s.running.is_some() || s.terminated.is_some()) {
            continue;
        }
        all_started = false;
        if let Some(w) = state.and_then(|s| s.waiting.as_ref()) {
            let reason = w.reason.as_deref().unwrap_or_default();
            let message = w.message.clone().unwrap_or_default();
            // PodInitializing / ContainerCreating say nothing specific: look further for a better reason.
            if matches!(reason, "" | "PodInitializing" | "ContainerCreating") {
                continue;
            }
            return Some(waiting_reason(&cs.name, reason, message));
        }
    }
    if seen > 0 && all_started {
        return None;
    }
    Some(Waiting {
        class: WaitClass::Transient,
        reason: Reason::ContainerCreating,
        message: "the kubelet is creating the pod's containers".into(),
    })
}

/// One row of the contract's table.
fn waiting_reason(container: &str, kubelet_reason: &str, message: String) -> Waiting {
    let (class, reason) = match kubelet_reason {
        // SignatureValidationFailed: CRI-O refused the image by its signature policy.
        "ErrImagePull"
        | "ImagePullBackOff"
        | "RegistryUnavailable"
        | "ErrImageInspect"
        | "SignatureValidationFailed" => {
            let reason =
                if is_rate_limited(&message) { Reason::ImagePullRateLimited } else { Reason::ImagePullBackOff };
            (WaitClass::Transient, reason)
        }
        "InvalidImageName" => (WaitClass::Permanent, Reason::InvalidImageName),
        "ErrImageNeverPull" => (WaitClass::Permanent, Reason::ErrImageNeverPull),
        "CreateContainerConfigError" => (WaitClass::ConfigError, Reason::CreateContainerConfigError),
        "CreateContainerError" | "RunContainerError" | "PreCreateHookError" | "PreStartHookError" => {
            (WaitClass::Transient, Reason::CreateContainerError)
        }
        // CrashLoopBackOff cannot happen with restartPolicy Never; anything unknown is treated as "still starting".
        _ => (WaitClass::Transient, Reason::ContainerCreating),
    };
    let detail = if message.is_empty() { kubelet_reason.to_owned() } else { format!("{kubelet_reason}: {message}") };
    Waiting { class, reason, message: format!("container {container}: {detail}") }
}

/// Registry throttling or trouble on the registry's side: worth a longer wait before the next attempt.
pub fn is_rate_limited(message: &str) -> bool {
    const MARKERS: [&str; 13] = [
        "toomanyrequests",
        "too many requests",
        "pull qps exceeded",
        "rate limit",
        "500 internal server error",
        "502 bad gateway",
        "503 service unavailable",
        "504 gateway timeout",
        "i/o timeout",
        "tls handshake timeout",
        "context deadline exceeded",
        "connection reset by peer",
        "client.timeout exceeded",
    ];
    let m = message.to_ascii_lowercase();
    MARKERS.iter().any(|marker| m.contains(marker)) || has_status_429(&m)
}

/// HTTP status 429 named as a status, not any "429" in the text (an image digest can contain those digits):
/// a standalone 429 next to "status", "code", "http" or "response", or one the registry quotes as `429 ...`.
fn has_status_429(lowercase: &str) -> bool {
    const CONTEXT: [&str; 4] = ["status", "code", "http", "response"];
    let bytes = lowercase.as_bytes();
    lowercase.match_indices("429").any(|(at, _)| {
        let standalone = |i: Option<&u8>| i.is_none_or(|c| !c.is_ascii_alphanumeric());
        let before = at.checked_sub(1).and_then(|i| bytes.get(i));
        if !standalone(before) || !standalone(bytes.get(at + 3)) {
            return false;
        }
        let window = &lowercase[lowercase.floor_char_boundary(at.saturating_sub(24))..at];
        CONTEXT.iter().any(|c| window.contains(c)) || lowercase[at..].starts_with("429 ")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "main"}]}, "status": status}),
        )
        .unwrap()
    }

    fn scheduled(containers: serde_json::Value) -> Pod {
        pod(
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}], "containerStatuses": containers}),
        )
    }

    fn waiting_on(reason: &str, message: &str) -> Pod {
        scheduled(json!([{"name": "main", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": reason, "message": message}}}]))
    }

    fn expect_wait(p: &Pod) -> Waiting {
        match classify(p, Deciding::default()) {
            PodState::Waiting(w) => w,
            other => panic!("expected waiting, got {other:?}"),
        }
    }

    #[test]
    fn the_contract_table_row_by_row() {
        use Reason::*;
        use WaitClass::*;
        let rows: &[(&str, &str, WaitClass, Reason)] = &[
            ("ErrImagePull", "failed to pull image: not found", Transient, ImagePullBackOff),
            ("ImagePullBackOff", "Back-off pulling image \"x\"", Transient, ImagePullBackOff),
            ("ErrImagePull", "429 Too Many Requests", Transient, ImagePullRateLimited),
            ("ErrImagePull", "toomanyrequests: You have reached your pull rate limit", Transient, ImagePullRateLimited),
            ("ImagePullBackOff", "pull QPS exceeded", Transient, ImagePullRateLimited),
            ("ErrImagePull", "registry says: rate limit reached", Transient, ImagePullRateLimited),
            (
                "ErrImagePull",
                "received unexpected HTTP status: 503 Service Unavailable",
                Transient,
                ImagePullRateLimited,
            ),
            ("ErrImagePull", "dial tcp: i/o timeout", Transient, ImagePullRateLimited),
            ("ErrImagePull", "r/x@sha256:04291c: not found", Transient, ImagePullBackOff),
            ("SignatureValidationFailed", "image not signed by a trusted key", Transient, ImagePullBackOff),
            ("InvalidImageName", "couldn't parse image name", Permanent, InvalidImageName),
            ("ErrImageNeverPull", "image not present with pull policy Never", Permanent, ErrImageNeverPull),
            ("CreateContainerConfigError", "secret \"db\" not found", ConfigError, CreateContainerConfigError),
            ("CreateContainerError", "context deadline exceeded", Transient, CreateContainerError),
            ("SomethingNew", "", Transient, ContainerCreating),
        ];
        for (kubelet, message, class, reason) in rows {
            let w = expect_wait(&waiting_on(kubelet, message));
            assert_eq!((w.class, w.reason), (*class, *reason), "{kubelet} / {message}");
            assert!(w.message.contains(kubelet), "message {:?} should name the kubelet reason", w.message);
        }
    }

    #[test]
    fn container_creating_and_pod_initializing_are_transient() {
        for reason in ["ContainerCreating", "PodInitializing"] {
            let w = expect_wait(&waiting_on(reason, ""));
            assert_eq!((w.class, w.reason), (WaitClass::Transient, Reason::ContainerCreating));
        }
        let w = expect_wait(&scheduled(json!(null)));
        assert_eq!(w.reason, Reason::ContainerCreating);
    }

    #[test]
    fn unschedulable_surfaces_the_schedulers_message() {
        let p = pod(
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."}]}),
        );
        let w = expect_wait(&p);
        assert_eq!((w.class, w.reason), (WaitClass::Transient, Reason::Unschedulable));
        assert!(w.message.contains("didn't match Pod's node affinity"));
        let unscheduled = pod(json!({"phase": "Pending"}));
        assert_eq!(expect_wait(&unscheduled).reason, Reason::Scheduling);
    }

    #[test]
    fn init_containers_are_read_too() {
        let p = pod(json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}],
            "initContainerStatuses": [{"name": "init", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ImagePullBackOff", "message": "toomanyrequests"}}}],
            "containerStatuses": [{"name": "main", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "PodInitializing"}}}]}));
        let w = expect_wait(&p);
        assert_eq!(w.reason, Reason::ImagePullRateLimited);
        assert!(w.message.contains("container init"));
    }

    #[test]
    fn started_pods() {
        assert_eq!(classify(&pod(json!({"phase": "Running"})), Deciding::default()), PodState::Running);
        let all_running =
            scheduled(json!([{"name": "main", "image": "x", "imageID": "", "ready": true, "restartCount": 0,
            "state": {"running": {}}}]));
        assert_eq!(
            classify(&all_running, Deciding::default()),
            PodState::Running,
            "pending phase but running containers counts as started"
        );
    }

    #[test]
    fn finished_pods() {
        let done = |phase: &str, code: i32, reason: Option<&str>| {
            pod(
                json!({"phase": phase, "reason": reason, "message": reason.map(|_| "The node was low on resource: memory."),
                "containerStatuses": [{"name": "main", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": code, "message": "bye"}}}]}),
            )
        };
        assert_eq!(
            classify(&done("Succeeded", 0, None), Deciding::default()),
            PodState::Succeeded(Termination {
                exit_code: Some(0),
                message: Some("bye".into()),
                container: Some("main".into()),
                reason: None
            })
        );
        assert_eq!(
            classify(&done("Failed", 3, None), Deciding::default()),
            PodState::Failed(Failure::Exit(Termination {
                exit_code: Some(3),
                message: Some("bye".into()),
                container: Some("main".into()),
                reason: None
            }))
        );
        assert!(
            matches!(classify(&done("Failed", 137, Some("Evicted")), Deciding::default()), PodState::Failed(Failure::Evicted(m)) if m.contains("low on resource"))
        );
        assert_eq!(
            classify(&done("Failed", 137, Some("DeadlineExceeded")), Deciding::default()),
            PodState::Failed(Failure::DeadlineExceeded)
        );
        let no_containers =
            pod(json!({"phase": "Failed", "reason": "OutOfcpu", "message": "Node didn't have enough cpu"}));
        assert!(matches!(classify(&no_containers, Deciding::default()), PodState::Failed(Failure::Evicted(_))));
    }

    #[test]
    fn termination_message_keeps_its_end() {
        let long = format!("{}the last line", "x".repeat(5000));
        let kept = bounded(&long);
        assert_eq!(kept.chars().count(), MAX_TERMINATION_MESSAGE + 1);
        assert!(kept.starts_with('…') && kept.ends_with("the last line"), "{kept}");
        let multibyte = "é".repeat(2000);
        assert!(bounded(&multibyte).len() <= MAX_TERMINATION_MESSAGE + '…'.len_utf8());
        assert_eq!(bounded("short\n"), "short");
        let note = truncate_middle(&format!("container main exited with 1: {long}"), 1000);
        assert!(
            note.len() <= 1003 && note.starts_with("container main exited with 1: ") && note.ends_with("the last line")
        );
    }

    fn containers(states: serde_json::Value) -> Pod {
        pod(json!({"phase": "Running", "conditions": [{"type": "PodScheduled", "status": "True"}],
            "containerStatuses": states}))
    }

    fn ended(name: &str, code: i32, reason: &str) -> serde_json::Value {
        json!({"name": name, "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": code, "reason": reason}}})
    }

    fn running(name: &str) -> serde_json::Value {
        json!({"name": name, "image": "x", "imageID": "", "ready": true, "restartCount": 0,
            "state": {"running": {}}})
    }

    /// The task's own containers decide, whatever else runs in the pod (a sidecar admission added).
    #[test]
    fn deciding_containers_end_the_pod() {
        let main = ["main".to_owned()];
        let both = ["main".to_owned(), "worker".to_owned()];
        let cases: [(serde_json::Value, &[String], Option<i32>); 7] = [
            // main exited 0, the injected proxy runs on: succeeded
            (json!([ended("main", 0, "Completed"), running("istio-proxy")]), &main, Some(0)),
            // main exited 3: failed with main's code
            (json!([ended("main", 3, "Error"), running("istio-proxy")]), &main, Some(3)),
            // not every deciding container has ended: still running
            (json!([ended("main", 0, "Completed"), running("worker")]), &both, None),
            (json!([ended("main", 0, "Completed"), ended("worker", 2, "Error")]), &both, Some(2)),
            // a deciding container without a status yet: not over
            (json!([running("istio-proxy")]), &main, None),
            // every container decides when none are named (a pod launched before podtask recorded them)
            (json!([ended("main", 0, "Completed"), running("istio-proxy")]), &[], None),
            (json!([ended("main", 0, "Completed"), ended("istio-proxy", 0, "Completed")]), &[], Some(0)),
        ];
        for (i, (states, deciding, want)) in cases.into_iter().enumerate() {
            let got = classify(&containers(states), Deciding(deciding));
            let code = match &got {
                PodState::Succeeded(t) => t.exit_code,
                PodState::Failed(Failure::Exit(t)) => t.exit_code,
                PodState::Running => None,
                other => panic!("case {i}: {other:?}"),
            };
            assert_eq!(code, want, "case {i}: {got:?}");
            assert_eq!(matches!(got, PodState::Succeeded(_)), want == Some(0), "case {i}");
        }
        // A sidecar that fails after main succeeded does not fail the task.
        let failed_sidecar = pod(json!({"phase": "Failed", "containerStatuses":
            [ended("main", 0, "Completed"), ended("log-shipper", 1, "Error")]}));
        assert!(matches!(classify(&failed_sidecar, Deciding(&main)), PodState::Succeeded(_)));
    }

    #[test]
    fn an_out_of_memory_kill_says_so() {
        let oom = pod(json!({"phase": "Failed", "containerStatuses": [ended("main", 137, "OOMKilled")]}));
        let PodState::Failed(Failure::Exit(t)) = classify(&oom, Deciding::default()) else { panic!("a failure") };
        assert!(t.oom_killed());
        assert_eq!((t.exit_code, t.container.as_deref()), (Some(137), Some("main")));
        let plain = pod(json!({"phase": "Failed", "containerStatuses": [ended("main", 137, "Error")]}));
        let PodState::Failed(Failure::Exit(t)) = classify(&plain, Deciding::default()) else { panic!("a failure") };
        assert!(!t.oom_killed(), "137 alone is a SIGKILL, not necessarily memory");
    }

    /// An init container that failed: the pod failed before its deciding containers ran.
    #[test]
    fn a_failed_init_container_is_the_failure() {
        let p = pod(json!({"phase": "Failed", "initContainerStatuses": [ended("setup", 4, "Error")],
            "containerStatuses": [{"name": "main", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "PodInitializing"}}}]}));
        let main = ["main".to_owned()];
        let PodState::Failed(Failure::Exit(t)) = classify(&p, Deciding(&main)) else { panic!("a failure") };
        assert_eq!((t.exit_code, t.container.as_deref()), (Some(4), Some("setup")));
    }

    #[test]
    fn rate_limit_markers_are_case_insensitive_and_specific() {
        assert!(is_rate_limited("TOOMANYREQUESTS: slow down"));
        assert!(is_rate_limited("Too Many Requests"));
        assert!(!is_rate_limited("manifest unknown"));
        assert!(!is_rate_limited("pull access denied, repository does not exist"));
    }

    #[test]
    fn status_429_is_recognised_only_as_a_status() {
        let rate_limited = [
            "unexpected status from GET request to http://r/v2/x/manifests/v1: 429 Too Many Requests",
            "received unexpected HTTP status: 429",
            "failed to resolve: status code 429",
            "response 429 from registry",
        ];
        for m in rate_limited {
            assert!(is_rate_limited(m), "{m}");
        }
        let not_rate_limited = [
            "failed to resolve reference \"r/x@sha256:0a429b7e\": r/x@sha256:0a429b7e: not found",
            "r/x@sha256:429e00ff: manifest unknown",
            "image r/x:v4290 not found",
            "pulling r/app:429: not found",
        ];
        for m in not_rate_limited {
            assert!(!is_rate_limited(m), "{m}");
        }
    }
}
