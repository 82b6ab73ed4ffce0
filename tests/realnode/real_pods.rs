//! The pods of real clusters: a sidecar injected at admission, a helper declared in the template, a native
//! sidecar, an out-of-memory kill, and a failing container's last lines once its pod is gone.

use std::time::Duration;

use kube::Api;
use serde_json::{Value, json};

use crate::harness::*;

/// A container that never ends by itself (it exits when told to stop).
const FOREVER: &str = "trap 'exit 0' TERM; while :; do sleep 1; done";

/// `template` with the proxy injector's label.
fn injected(script: &str) -> Value {
    let mut t = template(&image(), script);
    t["metadata"] = json!({"labels": {INJECT_LABEL: "true"}});
    t
}

/// The one pod of `task` as the watch saw it (its containers, their terminations, its deletion).
fn only_pod(env: &Env, task: &str) -> PodSeen {
    let pods = env.pods_seen(task);
    assert_eq!(pods.len(), 1, "exactly one pod for {task}: {pods:#?}");
    pods.into_iter().next().unwrap()
}

/// `main` of an injected-proxy pod exits 0 after 3 s: the task ends Succeeded with exit code 0 although the proxy
/// runs on, and the pod is deleted. Measures main's end → the task's end and → the pod gone.
#[tokio::test]
async fn injected_sidecar_does_not_hold_the_task_and_main_decides_success() {
    let env = Env::start_second_wave("injected_sidecar_ok").await;
    proxy_injector(&env).await;
    env.create("mesh", json!({"template": injected("sleep 3; exit 0"), "executionTimeout": "120s"})).await;
    let (t, ended) = env.wait_task("mesh", "the task to finish", Duration::from_secs(60), finished).await;
    assert_eq!(phase(&t), "Succeeded", "{}", yaml(&t));
    assert_eq!(t["status"]["exitCode"], 0, "{}", yaml(&t));
    env.wait_no_pods("mesh", Duration::from_secs(30)).await;
    let pod = wait_for("the pod's deletion seen", Duration::from_secs(10), async || {
        let p = only_pod(&env, "mesh");
        p.gone.is_some().then_some(p)
    })
    .await;
    assert!(pod.containers.contains(&"proxy".to_owned()), "the proxy was injected: {pod:#?}");
    let main = pod.terminated.get("main").unwrap_or_else(|| panic!("main seen terminated: {pod:#?}"));
    assert_eq!(main.exit_code, 0);
    let done = ts(&t["status"]["completionTime"]).expect("completionTime");
    let finished_at = main.finished_at.expect("main's finishedAt");
    println!(
        "MEASURE realnode: injected sidecar, main exit -> task Succeeded: {:.1} s (finishedAt -> completionTime, \
         whole seconds), {:.2} s (main's termination seen -> task's end seen)",
        secs_between(finished_at, done),
        secs_between(main.seen, ended)
    );
    println!(
        "MEASURE realnode: injected sidecar, main's termination seen -> pod gone: {:.2} s",
        secs_between(main.seen, pod.gone.unwrap())
    );
}

/// The same with `main` exiting 3: Failed/PodFailed with main's exit code, not the proxy's.
#[tokio::test]
async fn injected_sidecar_main_exit_code_fails_the_task() {
    let env = Env::start_second_wave("injected_sidecar_fail").await;
    proxy_injector(&env).await;
    env.create("mesh", json!({"template": injected("sleep 2; exit 3"), "executionTimeout": "120s"})).await;
    let t = env.wait_finished("mesh", Duration::from_secs(60), &mut vec![]).await;
    assert_eq!(phase(&t), "Failed", "{}", yaml(&t));
    assert_eq!(reason(&t), "PodFailed", "{}", yaml(&t));
    assert_eq!(t["status"]["exitCode"], 3, "{}", yaml(&t));
    assert_eq!(history(&t), [(1, "PodFailed".to_owned())], "{}", yaml(&t));
    env.wait_no_pods("mesh", Duration::from_secs(30)).await;
    assert!(only_pod(&env, "mesh").containers.contains(&"proxy".to_owned()), "the proxy was injected");
}

/// A template that carries its own long-running helper names the container that decides.
#[tokio::test]
async fn deciding_containers_leave_a_template_helper_out() {
    let env = Env::start_second_wave("deciding_containers").await;
    let mut tmpl = template(&image(), "sleep 2; exit 0");
    tmpl["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "helper", "image": image(), "command": ["/bin/sh", "-c", FOREVER]}));
    env.create("helped", json!({"template": tmpl, "decidingContainers": ["main"], "executionTimeout": "120s"})).await;
    let t = env.wait_finished("helped", Duration::from_secs(60), &mut vec![]).await;
    assert_eq!(phase(&t), "Succeeded", "{}", yaml(&t));
    assert_eq!(t["status"]["exitCode"], 0, "{}", yaml(&t));
    env.wait_no_pods("helped", Duration::from_secs(30)).await;
    assert_eq!(env.pods_seen("helped").len(), 1);
}

/// A native sidecar (an init container with restartPolicy Always): the kubelet stops it after main; Succeeded.
#[tokio::test]
async fn native_sidecar_task_succeeds() {
    let env = Env::start_second_wave("native_sidecar").await;
    let mut tmpl = template(&image(), "sleep 2; exit 0");
    tmpl["spec"]["initContainers"] = json!([{
        "name": "proxy", "image": image(), "restartPolicy": "Always", "command": ["/bin/sh", "-c", FOREVER]
    }]);
    env.create("native", json!({"template": tmpl, "executionTimeout": "120s"})).await;
    let t = env.wait_finished("native", Duration::from_secs(60), &mut vec![]).await;
    assert_eq!(phase(&t), "Succeeded", "{}", yaml(&t));
    assert_eq!(t["status"]["exitCode"], 0, "{}", yaml(&t));
    env.wait_no_pods("native", Duration::from_secs(30)).await;
}

/// `cleanup: Keep` with an injected proxy: the pod stays for inspection, but nothing runs on in it.
#[tokio::test]
async fn kept_pod_has_its_sidecar_stopped() {
    let env = Env::start_second_wave("keep_sidecar").await;
    proxy_injector(&env).await;
    env.create("kept", json!({"template": injected("sleep 2; exit 0"), "cleanup": "Keep", "executionTimeout": "300s"}))
        .await;
    let (t, ended) = env.wait_task("kept", "the task to finish", Duration::from_secs(60), finished).await;
    assert_eq!(phase(&t), "Succeeded", "{}", yaml(&t));
    let name = s(&t, "/status/podName").to_owned();
    let pods: Api<k8s_openapi::api::core::v1::Pod> = env.pods();
    let stopped = wait_for("every container of the kept pod terminated", Duration::from_secs(60), async || {
        let p = pods.get(&name).await.ok()?;
        let st = p.status?;
        let all = st.container_statuses?;
        (all.len() == 2 && all.iter().all(|c| c.state.as_ref().is_some_and(|s| s.terminated.is_some())))
            .then(|| (st.phase.unwrap_or_default(), st.reason.unwrap_or_default()))
    })
    .await;
    println!(
        "MEASURE realnode: cleanup Keep, task end -> the kept pod's sidecar stopped: {:.1} s (pod {} {})",
        secs_between(ended, k8s_openapi::jiff::Timestamp::now()),
        stopped.0,
        stopped.1
    );
    // kept: it still exists a while later
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(pods.get_opt(&name).await.expect("get the kept pod").is_some(), "the pod is kept");
}

/// A container killed for exceeding its memory limit: OOMKilled in status (reason, message naming the container,
/// exit code 137), in the attempt, in a Warning Event and in `kubectl get podtasks`.
#[tokio::test]
async fn oom_killed_container_is_reported_as_oomkilled() {
    let env = Env::start_second_wave("oom_killed").await;
    // busybox tail keeps the last 150 MiB of an endless stream in memory: the container's main process
    // allocates until the kernel kills it at the limit
    let mut tmpl = template(&image(), "exec tail -c 150m /dev/zero");
    tmpl["spec"]["containers"][0]["resources"] = json!({"limits": {"memory": "20Mi"}});
    env.create("oom", json!({"template": tmpl})).await;
    let t = env.wait_finished("oom", Duration::from_secs(90), &mut vec![]).await;
    assert_eq!(phase(&t), "Failed", "{}", yaml(&t));
    assert_eq!(reason(&t), "OOMKilled", "{}", yaml(&t));
    assert_eq!(t["status"]["exitCode"], 137, "{}", yaml(&t));
    assert!(message(&t).contains("OOMKilled") && message(&t).contains("main"), "{}", yaml(&t));
    assert_eq!(history(&t), [(1, "OOMKilled".to_owned())], "{}", yaml(&t));
    env.wait_event("oom", "a Warning Event OOMKilled", |(ty, r, _)| ty == "Warning" && r == "OOMKilled").await;
    let (ok, table) = kubectl(&["get", "podtasks", "-n", &env.ns, "oom"]);
    assert!(ok && table.contains("OOMKilled"), "the Reason column:\n{table}");
    let pod = only_pod(&env, "oom");
    let main = &pod.terminated["main"];
    assert_eq!((main.exit_code, main.reason.as_str()), (137, "OOMKilled"), "the kubelet's words: {pod:#?}");
}

/// A container that prints 200 lines and exits 1, with the default cleanup: its pod is deleted, and its last lines
/// stay in status.terminationMessage and the failure Event.
#[tokio::test]
async fn failed_containers_last_lines_outlive_its_pod() {
    let env = Env::start_second_wave("last_lines").await;
    let script = "i=1; while [ $i -le 200 ]; do printf 'output line %03d of the task\\n' $i; i=$((i+1)); done; exit 1";
    env.create("talky", json!({"template": template(&image(), script)})).await;
    let t = env.wait_finished("talky", Duration::from_secs(60), &mut vec![]).await;
    assert_eq!(phase(&t), "Failed", "{}", yaml(&t));
    assert_eq!(t["status"]["exitCode"], 1, "{}", yaml(&t));
    env.wait_no_pods("talky", Duration::from_secs(30)).await;
    let t = env.task("talky").await.expect("the task");
    let words = s(&t, "/status/terminationMessage");
    let last = "output line 200 of the task";
    assert!(words.trim_end().ends_with(last), "the last line kept:\n{}", yaml(&t));
    assert!(words.contains("output line 150 of the task"), "the last lines kept:\n{words}");
    assert!(!words.contains("output line 100 of the task"), "at most the kubelet's 80 lines:\n{words}");
    assert!(words.len() <= 2048, "{} bytes", words.len());
    let kept = words.lines().filter(|l| l.starts_with("output line")).count();
    let note = env
        .wait_event("talky", "a Warning Event with the last line", |(ty, _, n)| ty == "Warning" && n.contains(last))
        .await;
    let in_event = note.2.lines().filter(|l| l.starts_with("output line")).count();
    println!(
        "MEASURE realnode: 200 lines then exit 1, pod deleted: {kept} last lines ({} bytes) in status.terminationMessage, \
         {in_event} in the Event's note ({} bytes)",
        words.len(),
        note.2.len()
    );
}
