//! Pods with a container that runs on after the task's own work is done (kwok stage
//! `podtask-pod-first-container-exits`: the first container ends, the others keep running, the pod stays Running).

use std::time::Duration;

use podtask::crd::Phase;
use serde_json::{Value, json};

use crate::harness::*;

const T: Duration = Duration::from_secs(30);

/// `main` ends after 1 s with `code`; `helper` runs on.
fn with_helper(code: &str) -> Value {
    let mut t = template("run-forever", &[("first-exits-after", "1s"), ("first-exit-code", code)]);
    t["spec"]["containers"].as_array_mut().unwrap().push(json!({"name": "helper", "image": IMAGE}));
    t
}

/// decidingContainers [main]: main's exit 0 ends the task while the helper runs; the pod is deleted.
#[tokio::test]
async fn deciding_container_ends_the_task_while_a_helper_runs() {
    let env = Env::start("deciding_container_ends_the_task_while_a_helper_runs").await;
    env.create("helped", json!({"template": with_helper("0"), "decidingContainers": ["main"]})).await;
    let task = env.wait_finished("helped", T).await;
    assert_eq!(phase(&task), Phase::Succeeded, "{}", yaml(&task));
    assert_eq!(status(&task).exit_code, Some(0), "{}", yaml(&task));
    env.wait_no_pods("helped", Duration::from_secs(10)).await;
}

/// The same with main exiting 3: Failed/PodFailed with main's code.
#[tokio::test]
async fn deciding_containers_exit_code_fails_the_task() {
    let env = Env::start("deciding_containers_exit_code_fails_the_task").await;
    env.create("helped", json!({"template": with_helper("3"), "decidingContainers": ["main"]})).await;
    let task = env.wait_finished("helped", T).await;
    assert_eq!(phase(&task), Phase::Failed, "{}", yaml(&task));
    assert_eq!(reason(&task), "PodFailed", "{}", yaml(&task));
    assert_eq!(status(&task).exit_code, Some(3), "{}", yaml(&task));
}

/// Without decidingContainers every container the template lists decides: main's end alone doesn't end the task.
#[tokio::test]
async fn every_template_container_decides_by_default() {
    let env = Env::start("every_template_container_decides_by_default").await;
    env.create("both", json!({"template": with_helper("0")})).await;
    env.wait_task("both", "Running", T, |t| phase(t) == Phase::Running).await;
    let pods = env.pods();
    wait_for("main terminated in the pod", T, async || {
        let p = pods.list(&Default::default()).await.ok()?.items.into_iter().next()?;
        let st = p.status?.container_statuses?;
        st.iter().any(|c| c.name == "main" && c.state.as_ref().is_some_and(|s| s.terminated.is_some())).then_some(())
    })
    .await;
    holds_for("the task Running while helper runs", Duration::from_secs(3), async || {
        phase(&env.task("both").await) == Phase::Running
    })
    .await;
}
