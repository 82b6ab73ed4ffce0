//! The absolute deadline: enforced at the exact time, backed by the pod's activeDeadlineSeconds, and never
//! extended by an operator restart.

use std::time::Duration;

use podtask::{crd::Phase, jiff::Timestamp};
use serde_json::json;

use crate::harness::*;

const T: Duration = Duration::from_secs(30);

fn deadline_of(t: &podtask::crd::PodTask) -> Option<Timestamp> {
    status(t).deadline.map(|d| d.0)
}

/// A pod that runs forever under `executionTimeout: 6s`: it carries activeDeadlineSeconds, and at the deadline the
/// task fails with DeadlineExceeded and the pod is deleted. Prints the enforcement lag.
#[tokio::test]
async fn execution_timeout_deletes_the_pod_at_the_deadline() {
    let env = Env::start("execution_timeout_deletes_the_pod_at_the_deadline").await;
    env.create("slow", json!({"template": template("run-forever", &[]), "executionTimeout": "6s"})).await;
    let running = env.wait_task("slow", "Running", T, |t| phase(t) == Phase::Running).await;
    let deadline = deadline_of(&running).expect("status.deadline while running");
    let start = status(&running).start_time.expect("status.startTime").0;
    assert_eq!(deadline.duration_since(start).as_secs(), 6, "deadline = first launch + executionTimeout");

    let pod = env.pods_of("slow").await.pop().expect("the running pod");
    let ads = pod.spec.as_ref().and_then(|s| s.active_deadline_seconds).expect("activeDeadlineSeconds (backstop)");
    assert!((1..=6).contains(&ads), "activeDeadlineSeconds {ads} should be the remaining budget (<= 6)");
    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(annotations.get("podtask.dev/deadline").map(String::as_str), Some(deadline.to_string().as_str()));

    let task = env.wait_finished("slow", Duration::from_secs(20)).await;
    assert_eq!((phase(&task), reason(&task).as_str()), (Phase::Failed, "DeadlineExceeded"), "{}", yaml(&task));
    assert_eq!(deadline_of(&task), Some(deadline), "the deadline never moves");
    assert_eq!(history(&task), [(1, "DeadlineExceeded".to_owned())]);
    env.wait_no_pods("slow", Duration::from_secs(10)).await;

    let seen = env.pods_seen("slow");
    assert_eq!(seen.len(), 1, "{seen:?}");
    let p = &seen[0];
    let delete_lag = ms_between(deadline, p.deletion_seen.expect("pod deletion seen"));
    let gone_lag = ms_between(deadline, p.gone.expect("pod gone"));
    println!(
        "MEASURE deadline_lag_ms={delete_lag} deadline_pod_gone_ms={gone_lag} (kwok removes a deleted pod after 500ms)"
    );
    assert!(delete_lag >= 0, "the pod was deleted {delete_lag}ms before the deadline");
    assert!(delete_lag < 3000, "the pod was deleted {delete_lag}ms after the deadline");
    let completion = status(&task).completion_time.expect("completionTime").0;
    assert!(completion >= deadline, "completionTime {completion} before the deadline {deadline}");
}

/// The operator is SIGKILLed while the pod runs and comes back after the deadline passed: status.deadline is the
/// same value throughout, and the restarted operator ends the task (DeadlineExceeded) and deletes the pod at once
/// instead of granting a fresh budget. The pod's activeDeadlineSeconds (kwok simulates the kubelet's enforcement)
/// may already have stopped it meanwhile; both paths end in DeadlineExceeded.
#[tokio::test]
async fn restarted_operator_enforces_the_original_deadline() {
    let mut env = Env::start("restarted_operator_enforces_the_original_deadline").await;
    env.create("budget", json!({"template": template("run-forever", &[]), "executionTimeout": "6s"})).await;
    let running = env.wait_task("budget", "Running", T, |t| phase(t) == Phase::Running).await;
    let deadline = deadline_of(&running).expect("status.deadline");
    env.operator.kill();

    // Wait (operator down) until the deadline is well past, watching that nothing moves the deadline.
    let past = podtask::core::deadline::after(deadline, Duration::from_secs(2));
    let api = env.tasks();
    wait_for("the deadline to pass while the operator is down", T, async || {
        let t = api.get("budget").await.ok()?;
        assert_eq!(deadline_of(&t), Some(deadline), "status.deadline moved while the operator was down");
        (now() > past).then_some(())
    })
    .await;
    let pod_before = env.pods_of("budget").await;
    let backstop = pod_before.iter().any(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed"));

    let restarted = now();
    env.operator.restart().await;
    let task = env.wait_finished("budget", Duration::from_secs(15)).await;
    assert_eq!((phase(&task), reason(&task).as_str()), (Phase::Failed, "DeadlineExceeded"), "{}", yaml(&task));
    assert_eq!(deadline_of(&task), Some(deadline), "the deadline never moves");
    assert_eq!(status(&task).attempt, 1, "no further attempt after the deadline");
    env.wait_no_pods("budget", Duration::from_secs(10)).await;

    let seen = env.pods_seen("budget");
    assert_eq!(seen.len(), 1, "{seen:?}");
    let enforce = ms_between(restarted, seen[0].deletion_seen.expect("pod deletion seen"));
    println!(
        "MEASURE restart_enforce_ms={enforce} (from spawning the restarted operator to the pod's deletion; kubelet backstop fired first: {backstop})"
    );
    assert!(enforce < 10_000, "the restarted operator took {enforce}ms to delete the pod");
}
