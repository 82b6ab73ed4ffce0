//! The operator as users run it: installed by Helm (two replicas, restricted Pod Security), its image built here.
//! Tests named `disruptive_*` stop or kill operator pods: they run after the others, one at a time
//! (`Env::start_disruptive`).

use std::time::Duration;

use k8s_openapi::api::{apps::v1::Deployment, coordination::v1::Lease, core::v1::Pod};
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;

use crate::harness::*;

const RELEASE: &str = "podtask";

fn operator_image() -> String {
    std::env::var("PODTASK_REALNODE_IMAGE").expect("PODTASK_REALNODE_IMAGE: the operator image (hack/realnode/test.sh)")
}

/// The operator's pods, those being deleted included.
async fn operator_pods(env: &Env) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), OPERATOR_NS);
    pods.list(&ListParams::default().labels("app.kubernetes.io/name=podtask")).await.expect("operator pods").items
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn leader(env: &Env) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), OPERATOR_NS);
    leases.get_opt(RELEASE).await.ok()??.spec?.holder_identity
}

/// /metrics of an operator pod, scraped through the API server's pod proxy (the pod's own port, as Prometheus
/// would reach it).
fn scrape(pod: &str) -> String {
    let (ok, text) =
        kubectl(&["get", "--raw", &format!("/api/v1/namespaces/{OPERATOR_NS}/pods/{pod}:8080/proxy/metrics")]);
    assert!(ok, "scraping {pod}: {text}");
    text
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines().filter(|l| l.starts_with(name)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}

/// Two replicas from the local registry's image, admitted under the restricted Pod Security Standard, both
/// ready (probes pass), one holding the Lease, metrics served from the pods; and it runs a task to completion.
#[tokio::test]
async fn helm_installed_operator_is_ready_leads_once_and_serves_metrics() {
    let env = Env::start("helm_operator").await;
    let (_, label) = kubectl(&[
        "get",
        "ns",
        OPERATOR_NS,
        "-o",
        "jsonpath={.metadata.labels.pod-security\\.kubernetes\\.io/enforce}",
    ]);
    assert_eq!(label.trim(), "restricted");
    let pods = wait_for("exactly two operator pods, both ready", Duration::from_secs(90), async || {
        let pods = operator_pods(&env).await;
        (pods.len() == 2 && pods.iter().all(ready)).then_some(pods)
    })
    .await;
    for p in &pods {
        let c = &p.spec.as_ref().unwrap().containers[0];
        assert_eq!(c.image.as_deref(), Some(operator_image().as_str()));
        let sc = c.security_context.as_ref().expect("securityContext");
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.run_as_user, Some(65532));
    }
    let names: Vec<String> = pods.iter().map(|p| p.name_any()).collect();
    let holder = wait_for("a leader", Duration::from_secs(60), async || leader(&env).await).await;
    assert!(names.contains(&holder), "the lease holder {holder} is one of {names:?}");
    for p in &names {
        let text = scrape(p);
        assert!(text.contains("podtask_"), "podtask metrics from {p}:\n{text}");
    }
    env.create("hello", json!({"template": template(&image(), "echo hello")})).await;
    let t = env.wait_finished("hello", Duration::from_secs(60), &mut vec![]).await;
    assert_eq!(phase(&t), "Succeeded", "{}", yaml(&t));
}

/// `podtask run` in its image with an API server address nothing answers: it exits within ~10 s with a message
/// naming the address, and its text log carries no colour codes (stderr is not a terminal in a pod).
#[tokio::test]
async fn unreachable_api_server_fails_fast_naming_the_address() {
    let env = Env::start("unreachable_apiserver").await;
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "podtask-run"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "podtask", "image": operator_image(), "args": ["run", "--log-format", "text"],
                // a service IP nothing answers: the packets are dropped, as when no relay or kube-proxy serves it
                "env": [{"name": "KUBERNETES_SERVICE_HOST", "value": "10.96.0.2"},
                        {"name": "KUBERNETES_SERVICE_PORT", "value": "443"}]
            }]
        }
    }))
    .unwrap();
    env.pods().create(&PostParams::default(), &pod).await.expect("create the pod");
    let (started, finished) = wait_for("podtask run to exit", Duration::from_secs(90), async || {
        let p = env.pods().get("podtask-run").await.ok()?;
        let st = p.status?.container_statuses?.into_iter().next()?.state?.terminated?;
        Some((st.started_at?.0, st.finished_at?.0))
    })
    .await;
    let took = secs_between(started, finished);
    let (_, logs) = kubectl(&["logs", "-n", &env.ns, "podtask-run"]);
    println!("realnode: podtask run with an unreachable API server exited after {took:.0} s:\n{logs}");
    assert!(logs.contains("10.96.0.2"), "the message names the address tried:\n{logs}");
    assert!(took <= 15.0, "exited within ~10 s, not {took} s");
    assert!(!logs.contains('\u{1b}'), "no ANSI colour codes in the text log:\n{logs:?}");
}

async fn scale(env: &Env, replicas: i32) {
    let deploys: Api<Deployment> = Api::namespaced(env.client.clone(), OPERATOR_NS);
    deploys
        .patch(RELEASE, &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": replicas}})))
        .await
        .expect("scale the operator");
    wait_for(&format!("exactly {replicas} operator pods, all ready"), Duration::from_secs(120), async || {
        let pods = operator_pods(env).await;
        (pods.len() == replicas as usize && pods.iter().all(ready)).then_some(())
    })
    .await;
}

/// Run a task past its deadline with the operator scaled to 0 (for 15 s after the kubelet stopped the pod, so time
/// away and enforcement lag are easy to tell apart), scale back to 2: the kubelet's `DeadlineExceeded` on the pod,
/// the task's `DeadlineExceeded` on return. Returns the deadline-lag histogram's sum on the leader.
async fn operator_away_at_the_deadline(env: &Env) -> f64 {
    let tmpl = template(&image(), "trap 'exit 143' TERM; while :; do sleep 1; done");
    env.create("orphan", json!({"template": tmpl, "executionTimeout": "25s"})).await;
    let t = wait_for("the task Running", Duration::from_secs(60), async || {
        let t = env.task("orphan").await?;
        (phase(&t) == "Running").then_some(t)
    })
    .await;
    let deadline = ts(&t["status"]["deadline"]).expect("status.deadline");
    let pod = s(&t, "/status/podName").to_owned();
    scale(env, 0).await;
    let killed = wait_for("the kubelet to stop the pod", Duration::from_secs(60), async || {
        let p = env.pods().get(&pod).await.ok()?;
        let st = p.status?;
        (st.phase.as_deref() == Some("Failed")).then_some(st.reason.unwrap_or_default())
    })
    .await;
    let stopped = k8s_openapi::jiff::Timestamp::now();
    assert_eq!(killed, "DeadlineExceeded", "the kubelet's activeDeadlineSeconds stopped the pod");
    println!(
        "MEASURE realnode: operator at 0 replicas, deadline -> pod Failed/DeadlineExceeded (kubelet) seen: {:+.1} s",
        secs_between(deadline, stopped)
    );
    tokio::time::sleep(Duration::from_secs(15)).await;
    scale(env, 2).await;
    let t = env.wait_finished("orphan", Duration::from_secs(60), &mut vec![]).await;
    assert_eq!(phase(&t), "Failed", "{}", yaml(&t));
    assert_eq!(reason(&t), "DeadlineExceeded", "{}", yaml(&t));
    let holder = wait_for("a leader", Duration::from_secs(60), async || leader(env).await).await;
    let text = scrape(&holder);
    let sum = metric(&text, "podtask_deadline_enforcement_lag_seconds_sum");
    let count = metric(&text, "podtask_deadline_enforcement_lag_seconds_count");
    println!("realnode: deadline lag recorded after the return: sum {sum} s over {count}");
    sum
}

/// With the operator scaled to 0, the kubelet stops the pod at the deadline (activeDeadlineSeconds); scaled back,
/// the task reads DeadlineExceeded.
#[tokio::test]
async fn disruptive_operator_scaled_to_zero_kubelet_enforces_the_deadline() {
    let env = Env::start_disruptive("scaled_to_zero").await;
    operator_away_at_the_deadline(&env).await;
}

/// The same, and the deadline-lag metric doesn't count the time podtask was away while the kubelet acted.
#[tokio::test]
async fn disruptive_deadline_lag_excludes_time_the_operator_was_away() {
    let env = Env::start_disruptive("lag_while_away").await;
    let sum = operator_away_at_the_deadline(&env).await;
    assert!(sum <= 3.0, "the lag metric counts podtask's own lag only, not the time it was scaled to 0: {sum} s");
}

/// The leader's pod deleted while a task runs: the other replica takes the Lease and finishes the task; one pod
/// for the one attempt throughout.
#[tokio::test]
async fn disruptive_leader_pod_deleted_mid_task() {
    let env = Env::start_disruptive("leader_deleted").await;
    env.create("long", json!({"template": template(&image(), "sleep 25")})).await;
    wait_for("the task Running", Duration::from_secs(60), async || {
        let t = env.task("long").await?;
        (phase(&t) == "Running").then_some(())
    })
    .await;
    let old = wait_for("a leader", Duration::from_secs(60), async || leader(&env).await).await;
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), OPERATOR_NS);
    delete_pod(&pods, &old).await;
    let new =
        wait_for("another replica to lead", Duration::from_secs(60), async || leader(&env).await.filter(|h| *h != old))
            .await;
    println!("realnode: leader {old} deleted, {new} took over");
    let t = env.wait_finished("long", Duration::from_secs(90), &mut vec![]).await;
    assert_eq!(phase(&t), "Succeeded", "{}", yaml(&t));
    assert_eq!(history(&t), [(1, "Completed".to_owned())]);
    let seen = env.pods_seen("long");
    assert_eq!(seen.len(), 1, "one pod for the one attempt: {seen:?}");
}
