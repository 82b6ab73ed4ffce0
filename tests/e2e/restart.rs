//! One pod per attempt across an operator crash.

use std::time::Duration;

use podtask::crd::Phase;
use serde_json::json;

use crate::harness::*;

/// Wait for the first pod in the namespace with tight polling (the point is to act right after its create).
async fn first_pod(env: &Env) -> k8s_openapi::api::core::v1::Pod {
    let pods = env.pods();
    let start = std::time::Instant::now();
    loop {
        let list = pods.list(&Default::default()).await.expect("list pods");
        if let Some(p) = list.items.into_iter().next() {
            return p;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no pod after 20s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The operator is SIGKILLed the moment its first pod exists (before it wrote any status); the restarted operator
/// adopts that pod instead of creating another, and the task succeeds with it.
#[tokio::test]
async fn operator_killed_after_creating_a_pod_adopts_it() {
    let mut env = Env::start("operator_killed_after_creating_a_pod_adopts_it").await;
    env.create("adopt", json!({"template": template("succeed", &[("run-for", "4s")])})).await;
    let pod = first_pod(&env).await;
    env.operator.kill();
    let uid = pod.metadata.uid.clone().expect("uid");
    let name = pod.metadata.name.clone().expect("name");
    let before = status(&env.task("adopt").await);
    println!("killed the operator with status phase {:?} attempt {}", before.phase, before.attempt);

    env.operator.restart().await;
    let task = env.wait_finished("adopt", Duration::from_secs(30)).await;
    assert_eq!(phase(&task), Phase::Succeeded, "{}", yaml(&task));
    let s = status(&task);
    assert_eq!(s.attempt, 1);
    assert_eq!(history(&task), [(1, "Completed".to_owned())]);
    assert_eq!(s.attempts[0].pod_name, name, "the pod created before the kill is the one that finished");
    assert_eq!(s.pod_name.as_deref(), Some(name.as_str()));

    env.wait_no_pods("adopt", Duration::from_secs(10)).await;
    let seen = env.pods_seen("adopt");
    let uids: Vec<&str> = seen.iter().map(|p| p.uid.as_str()).collect();
    assert_eq!(uids, [uid.as_str()], "exactly one pod ever existed: {seen:?}");
    assert_eq!(seen[0].phase.as_deref(), Some("Succeeded"), "it ran to completion: {seen:?}");
}

/// The operator is down right after creating the first pod, before any status write. An edit of the spec is
/// refused by the API server (the spec is immutable from creation), and the deadline the pod was launched with
/// (its `podtask.dev/deadline` annotation and activeDeadlineSeconds) holds after the restart.
#[tokio::test]
async fn spec_edit_before_the_first_status_write_does_not_move_the_deadline() {
    let mut env = Env::start("spec_edit_before_the_first_status_write_does_not_move_the_deadline").await;
    // A pod that stays Pending: podtask writes no status for it during its first second (the settle time).
    env.create(
        "edited",
        json!({"template": template("pull-never", &[]), "executionTimeout": "6s", "startupTimeout": "1m"}),
    )
    .await;
    let pod = first_pod(&env).await;
    env.operator.kill();
    let launched_with = pod.metadata.annotations.as_ref().and_then(|a| a.get("podtask.dev/deadline")).cloned();
    let launched_with = launched_with.expect("the pod carries its deadline");

    let mut task = env.task("edited").await;
    task.spec.execution_timeout = Some("1h".parse().expect("duration"));
    let refused = env.tasks().replace("edited", &kube::api::PostParams::default(), &task).await;
    assert!(matches!(refused, Err(kube::Error::Api(ref s)) if s.code == 422), "spec edit accepted: {refused:?}");

    env.operator.restart().await;
    let done = env.wait_finished("edited", Duration::from_secs(30)).await;
    assert_eq!((phase(&done), reason(&done).as_str()), (Phase::Failed, "DeadlineExceeded"), "{}", yaml(&done));
    let deadline = status(&done).deadline.map(|d| d.0.to_string());
    assert_eq!(deadline.as_deref(), Some(launched_with.as_str()), "the deadline the pod was launched with");
    env.wait_no_pods("edited", Duration::from_secs(10)).await;
}
