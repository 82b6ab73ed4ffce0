//! The node's own faults mid-task: the kubelet frozen (the node stops answering, its containers run on) and
//! resumed, a kubelet restart, a containerd restart. Each one disturbs every pod on the node, so they are
//! `disruptive_*`: run after the others, one at a time.

use std::time::Duration;

use k8s_openapi::{api::core::v1::Node, jiff::Timestamp};
use kube::Api;
use serde_json::{Value, json};

use crate::harness::*;

/// How long the kubelet stays frozen: long enough for the node lifecycle controller to call the node Unknown
/// (its grace period is 50 s) and for a deadline to pass meanwhile.
const FREEZE: Duration = Duration::from_secs(75);

async fn node_ready(env: &Env) -> String {
    let nodes: Api<Node> = Api::all(env.client.clone());
    let Ok(n) = nodes.get(NODE).await else { return "?".into() };
    n.status
        .and_then(|s| s.conditions)
        .and_then(|c| c.into_iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status)
        .unwrap_or_default()
}

async fn wait_node_ready(env: &Env) {
    wait_for("the node Ready", Duration::from_secs(120), async || (node_ready(env).await == "True").then_some(()))
        .await;
}

async fn wait_running(env: &Env, name: &str) -> Value {
    env.wait_task(name, &format!("{name} Running"), Duration::from_secs(60), |t| phase(t) == "Running").await.0
}

/// One line of a timeline: seconds since the freeze, what was seen.
struct Timeline {
    t0: Timestamp,
    lines: Vec<String>,
}

impl Timeline {
    fn at(&mut self, what: String) {
        let line = format!("{:+7.1} s  {what}", secs_between(self.t0, Timestamp::now()));
        println!("realnode: partition: {line}");
        self.lines.push(line);
    }
}

fn state(t: &Value) -> String {
    format!("{}/{}: {}", phase(t), reason(t), message(t))
}

/// The kubelet frozen for 75 s mid-task, then resumed. Task `runs` (main sleeps 60 s, so it exits while the node
/// is unreachable) is reported Running/NodeUnreachable naming the node while the node is lost, and Succeeded
/// after the kubelet is back. Task `late` (60 s budget) reaches its deadline while the node is lost: reported
/// Failed/DeadlineExceeded at once with the stop "requested", and told done once its pod is gone after the
/// resume. One pod per task throughout.
#[tokio::test]
async fn disruptive_kubelet_frozen_mid_task_then_resumed() {
    let env = Env::start_disruptive("kubelet_frozen").await;
    wait_node_ready(&env).await;
    env.create("runs", json!({"template": template(&image(), "sleep 60; exit 0"), "executionTimeout": "300s"})).await;
    let stubborn = "trap 'exit 143' TERM; while :; do sleep 1; done";
    env.create("late", json!({"template": template(&image(), stubborn), "executionTimeout": "60s"})).await;
    wait_running(&env, "runs").await;
    let late = wait_running(&env, "late").await;
    let late_deadline = ts(&late["status"]["deadline"]).expect("late's status.deadline");
    let late_pod = s(&late, "/status/podName").to_owned();

    let mut tl = Timeline { t0: Timestamp::now(), lines: vec![] };
    let frozen = Frozen::kubelet();
    tl.at(format!("kubelet frozen (late's deadline at {:+.1} s)", secs_between(tl.t0, late_deadline)));
    let (mut last_node, mut last_runs, mut last_late) = (String::new(), String::new(), String::new());
    let mut unreachable_seen = None;
    let mut runs_versions = std::collections::BTreeSet::new();
    let mut requested_while_pod_exists = None;
    while secs_between(tl.t0, Timestamp::now()) < FREEZE.as_secs_f64() {
        let node = node_ready(&env).await;
        if node != last_node {
            tl.at(format!("node Ready={node}"));
            last_node = node;
        }
        if let Some(t) = env.task("runs").await {
            runs_versions.insert(t["metadata"]["resourceVersion"].as_str().unwrap_or("").to_owned());
            if state(&t) != last_runs {
                last_runs = state(&t);
                tl.at(format!("runs {last_runs}"));
            }
            if reason(&t) == "NodeUnreachable" && unreachable_seen.is_none() {
                unreachable_seen = Some(t.clone());
            }
        }
        if let Some(t) = env.task("late").await
            && state(&t) != last_late
        {
            last_late = state(&t);
            tl.at(format!("late {last_late}"));
            let pod_exists = env.pods().get_opt(&late_pod).await.ok().flatten().is_some();
            if reason(&t) == "DeadlineExceeded" && pod_exists {
                requested_while_pod_exists = Some(t.clone());
            }
        }
        tokio::time::sleep(POLL).await;
    }
    drop(frozen);
    tl.at("kubelet resumed".into());
    let writes_while_frozen = runs_versions.len();

    let (runs, _) = env.wait_task("runs", "runs to finish after the resume", Duration::from_secs(120), finished).await;
    tl.at(format!("runs {}", state(&runs)));
    let (late_done, _) = env
        .wait_task("late", "late's pod gone and its message updated", Duration::from_secs(120), |t| {
            finished(t) && Some(message(t)) != requested_while_pod_exists.as_ref().map(message)
        })
        .await;
    tl.at(format!("late {}", state(&late_done)));
    for line in &tl.lines {
        println!("MEASURE realnode: partition timeline: {line}");
    }
    println!(
        "MEASURE realnode: partition: status versions of `runs` seen while frozen {FREEZE:?}: {writes_while_frozen}"
    );

    let t = unreachable_seen.unwrap_or_else(|| panic!("runs never said NodeUnreachable:\n{}", tl.lines.join("\n")));
    assert_eq!(phase(&t), "Running", "{}", yaml(&t));
    assert!(message(&t).contains(NODE), "the message names the node: {}", yaml(&t));
    assert!(writes_while_frozen < 20, "no status write storm: {writes_while_frozen} versions while frozen");
    assert_eq!(phase(&runs), "Succeeded", "{}", yaml(&runs));
    assert_eq!(runs["status"]["exitCode"], 0, "{}", yaml(&runs));

    let t = requested_while_pod_exists.unwrap_or_else(|| {
        panic!("late never reported DeadlineExceeded while its pod existed:\n{}", tl.lines.join("\n"))
    });
    assert_eq!(phase(&t), "Failed", "{}", yaml(&t));
    assert!(message(&t).contains("requested"), "the stop is reported as requested: {}", yaml(&t));
    let attempt = |t: &Value| t["status"]["attempts"].as_array().and_then(|a| a.last()).cloned().unwrap_or_default();
    assert!(attempt(&t)["stopRequestedTime"].is_string(), "the attempt says when the stop was asked: {}", yaml(&t));
    assert!(attempt(&t)["podGoneTime"].is_null(), "and not that the pod is gone: {}", yaml(&t));
    assert_eq!(reason(&late_done), "DeadlineExceeded", "{}", yaml(&late_done));
    assert!(attempt(&late_done)["podGoneTime"].is_string(), "done once the pod is gone: {}", yaml(&late_done));
    env.wait_no_pods("late", Duration::from_secs(30)).await;
    for task in ["runs", "late"] {
        let pods = env.pods_seen(task);
        assert_eq!(pods.len(), 1, "one pod for {task} throughout: {pods:#?}");
    }
    wait_node_ready(&env).await;
}

/// Restart a node daemon 3 s into a 20 s task: the task runs on, one pod, Succeeded in its first attempt.
async fn restart_mid_task(test: &str, action: &str) {
    let env = Env::start_disruptive(test).await;
    wait_node_ready(&env).await;
    env.create("steady", json!({"template": template(&image(), "sleep 20; exit 0"), "executionTimeout": "120s"})).await;
    wait_running(&env, "steady").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let t0 = Timestamp::now();
    node(action);
    wait_node_ready(&env).await;
    println!(
        "realnode: {action}: node Ready again {:.1} s after the restart began",
        secs_between(t0, Timestamp::now())
    );
    let mut seen = vec![];
    let t = env.wait_finished("steady", Duration::from_secs(90), &mut seen).await;
    assert_eq!(phase(&t), "Succeeded", "{}\nseen: {seen:#?}", yaml(&t));
    assert_eq!(t["status"]["exitCode"], 0, "{}", yaml(&t));
    assert_eq!(history(&t), [(1, "Completed".to_owned())], "{}", yaml(&t));
    let pods = env.pods_seen("steady");
    assert_eq!(pods.len(), 1, "one pod: {pods:#?}");
}

#[tokio::test]
async fn disruptive_kubelet_restart_mid_task() {
    restart_mid_task("kubelet_restart", "restart-kubelet").await;
}

#[tokio::test]
async fn disruptive_containerd_restart_mid_task() {
    restart_mid_task("containerd_restart", "restart-containerd").await;
}
