//! How a task ends once its pod ran: success, non-zero exit, cleanup policies, a pod deleted by someone else,
//! and the PodTask itself deleted.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use kube::api::DeleteParams;
use podtask::crd::Phase;
use serde_json::json;

use crate::harness::*;

const T: Duration = Duration::from_secs(30);

/// A task whose pod succeeds: `Complete`, exit code 0, pod deleted (cleanup Delete by default), `kubectl wait`
/// works, and the number of API writes it took.
#[tokio::test]
async fn succeeding_task_is_complete_and_its_pod_deleted() {
    let env = Env::start("succeeding_task_is_complete_and_its_pod_deleted").await;
    let created = now();
    env.create("hello", json!({"template": template("succeed", &[("run-for", "1s")]), "startupTimeout": "5s"})).await;
    // What users run: kubectl wait on the Job-compatible condition.
    let waiter = Command::new("kubectl")
        .args(["wait", "--for=condition=Complete", "pt/hello", "-n", &env.ns, "--timeout=30s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl on PATH");

    let task = env.wait_finished("hello", T).await;
    let s = status(&task);
    assert_eq!(s.phase, Phase::Succeeded, "{}", yaml(&task));
    assert_eq!(reason(&task), "Completed");
    assert_eq!(s.exit_code, Some(0));
    assert_eq!(condition(&task, "Complete").as_deref(), Some("True"));
    assert_eq!(condition(&task, "Failed"), None);
    assert_eq!(s.attempt, 1);
    assert_eq!(history(&task), [(1, "Completed".to_owned())]);
    assert!(s.start_time.is_some() && s.completion_time.is_some());
    assert_eq!(s.observed_generation, task.metadata.generation);

    let out =
        tokio::task::spawn_blocking(move || waiter.wait_with_output()).await.expect("join").expect("kubectl wait runs");
    assert!(out.status.success(), "kubectl wait failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("condition met"));

    // The printer columns users see in `kubectl get pt`.
    let (ok, table) = kubectl(&["get", "pt", "hello", "-n", &env.ns]);
    assert!(ok, "{table}");
    let header: Vec<&str> = table.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(header, ["NAME", "PHASE", "ATTEMPT", "REASON", "DEADLINE", "AGE"], "{table}");
    let row: Vec<&str> = table.lines().nth(1).unwrap_or_default().split_whitespace().collect();
    assert_eq!(row[..4], ["hello", "Succeeded", "1", "Completed"], "{table}");

    env.wait_no_pods("hello", Duration::from_secs(10)).await;
    let seen = env.pods_seen("hello");
    assert_eq!(seen.len(), 1, "one pod: {seen:?}");
    let reasons = env.event_reasons("hello").await;
    // one Event for a short success, its outcome (and a Running report's, should the pod have run 2 s on a busy
    // machine); none for the launch
    let besides_running: Vec<&String> = reasons.iter().filter(|r| *r != "Running").collect();
    assert_eq!(besides_running, ["Completed"], "{reasons:?}");

    // API writes for one successful attempt: pod create, status at once (PodCreated), status (Succeeded), pod
    // delete. A Running write comes on top when the pod was still running after the operator's settle time (2s
    // from its creation), so the bound of 4 is asserted only when the pod finished well within it.
    let metrics = env.operator.metrics().await;
    let writes = metric_sum(&metrics, "podtask_api_writes_total");
    let by_kind: Vec<&str> = metrics.lines().filter(|l| l.starts_with("podtask_api_writes_total")).collect();
    let pod = &seen[0];
    let running_ms = pod.running_seen.map(|r| ms_between(pod.first_seen, r));
    let within_settle = ms_between(pod.first_seen, pod.deletion_seen.unwrap_or(pod.first_seen)) < 1700;
    println!(
        "MEASURE api_writes={writes} pod_running_after_ms={running_ms:?} (task created {}ms before the pod was seen) {by_kind:?}",
        ms_between(created, pod.first_seen)
    );
    assert!(writes >= 3.0, "at least create + final status + delete: {by_kind:?}");
    if within_settle {
        assert!(writes <= 4.0, "a short first-attempt success needs at most 4 writes: {by_kind:?}");
    }
}

/// Cleanup policies: `Keep` keeps a succeeded pod; `DeleteSucceeded` deletes a succeeded pod and keeps a failed
/// one (for `kubectl logs`).
#[tokio::test]
async fn cleanup_policies_keep_or_delete_finished_pods() {
    let env = Env::start("cleanup_policies_keep_or_delete_finished_pods").await;
    let ok = template("succeed", &[("run-for", "1s")]);
    let fail = template("fail", &[("run-for", "1s"), ("exit-code", "2")]);
    env.create("keep", json!({"template": ok, "cleanup": "Keep"})).await;
    env.create("ds-ok", json!({"template": ok, "cleanup": "DeleteSucceeded"})).await;
    env.create("ds-fail", json!({"template": fail, "cleanup": "DeleteSucceeded"})).await;

    let keep = env.wait_finished("keep", T).await;
    let ds_ok = env.wait_finished("ds-ok", T).await;
    let ds_fail = env.wait_finished("ds-fail", T).await;
    assert_eq!(phase(&keep), Phase::Succeeded);
    assert_eq!(phase(&ds_ok), Phase::Succeeded);
    assert_eq!((phase(&ds_fail), reason(&ds_fail).as_str()), (Phase::Failed, "PodFailed"));

    env.wait_no_pods("ds-ok", Duration::from_secs(10)).await;
    // The operator deletes a pod in the same reconcile that writes the final status; give it a window to (wrongly)
    // delete the kept ones.
    holds_for("the Keep pod and the failed DeleteSucceeded pod to stay", Duration::from_secs(3), async || {
        let kept = env.pods_of("keep").await;
        let failed = env.pods_of("ds-fail").await;
        kept.len() == 1
            && failed.len() == 1
            && kept.iter().chain(&failed).all(|p| p.metadata.deletion_timestamp.is_none())
    })
    .await;
    let kept = &env.pods_of("keep").await[0];
    assert_eq!(kept.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded"));
    let failed = &env.pods_of("ds-fail").await[0];
    assert_eq!(failed.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Failed"));
}

/// A container exiting non-zero: `Failed`/`PodFailed` with exit code and termination message, not retried by
/// default; retried when the policy lists PodFailed, with exactly one pod per attempt.
#[tokio::test]
async fn non_zero_exit_fails_and_is_retried_only_when_asked() {
    let env = Env::start("non_zero_exit_fails_and_is_retried_only_when_asked").await;
    let fail = template("fail", &[("run-for", "1s"), ("exit-code", "3"), ("message", "boom: out of cheese")]);
    env.create("once", json!({"template": fail, "retry": {"backoff": {"initial": "1s"}}})).await;
    env.create(
        "twice",
        json!({"template": fail, "retry": {"limit": 1, "reasons": ["PodFailed"], "backoff": {"initial": "1s"}}}),
    )
    .await;

    let once = env.wait_finished("once", T).await;
    let s = status(&once);
    assert_eq!((s.phase, reason(&once).as_str()), (Phase::Failed, "PodFailed"), "{}", yaml(&once));
    assert_eq!(s.exit_code, Some(3));
    assert_eq!(s.termination_message.as_deref(), Some("boom: out of cheese"));
    assert_eq!(history(&once), [(1, "PodFailed".to_owned())], "not retried by default");
    assert!(message(&once).contains("exited with 3"), "{}", message(&once));
    assert_eq!(condition(&once, "Failed").as_deref(), Some("True"));
    assert_eq!(condition(&once, "Stalled").as_deref(), Some("True"));

    let twice = env.wait_finished("twice", Duration::from_secs(40)).await;
    let s = status(&twice);
    assert_eq!((s.phase, reason(&twice).as_str()), (Phase::Failed, "PodFailed"), "{}", yaml(&twice));
    assert_eq!(history(&twice), [(1, "PodFailed".to_owned()), (2, "PodFailed".to_owned())]);
    assert_eq!(s.exit_code, Some(3));
    assert!(message(&twice).contains("after 2 attempts"), "{}", message(&twice));

    env.wait_no_pods("twice", Duration::from_secs(10)).await;
    let attempts: Vec<Option<u32>> = env.pods_seen("twice").iter().map(|p| p.attempt).collect();
    assert_eq!(attempts, [Some(1), Some(2)], "exactly one pod per attempt");
    assert_eq!(env.pods_seen("once").len(), 1);
}

/// Someone deletes the running pod: the attempt ends `PodLost` (recorded once), a new pod is created for
/// attempt 2, and the task succeeds with it.
#[tokio::test]
async fn pod_deleted_by_someone_else_is_retried_as_pod_lost() {
    let env = Env::start("pod_deleted_by_someone_else_is_retried_as_pod_lost").await;
    env.create(
        "lost",
        json!({"template": template("succeed", &[("run-for", "5s")]), "retry": {"backoff": {"initial": "1s"}}}),
    )
    .await;
    env.wait_task("lost", "Running", T, |t| phase(t) == Phase::Running).await;
    let first = env.pods_of("lost").await.pop().expect("attempt 1's pod");
    let first_name = first.metadata.name.clone().expect("name");
    env.pods().delete(&first_name, &DeleteParams::default()).await.expect("delete the pod");

    let task = env.wait_finished("lost", T).await;
    assert_eq!(phase(&task), Phase::Succeeded, "{}", yaml(&task));
    assert_eq!(history(&task), [(1, "PodLost".to_owned()), (2, "Completed".to_owned())], "{}", yaml(&task));
    let s = status(&task);
    assert_eq!(s.attempt, 2);
    assert_eq!(s.attempts[0].pod_name, first_name);
    assert_ne!(s.pod_name.as_deref(), Some(first_name.as_str()));

    env.wait_no_pods("lost", Duration::from_secs(10)).await;
    let seen = env.pods_seen("lost");
    let attempts: Vec<Option<u32>> = seen.iter().map(|p| p.attempt).collect();
    assert_eq!(attempts, [Some(1), Some(2)], "exactly one pod per attempt: {seen:?}");
    assert_eq!(seen[1].name, s.pod_name.clone().unwrap_or_default());
    let reasons = env.event_reasons("lost").await;
    assert!(reasons.iter().any(|r| r == "BackingOff"), "{reasons:?}");
}

/// Deleting the PodTask deletes its pod through the garbage collector (ownerReference), with either propagation;
/// foreground deletion is not stuck on the pod.
#[tokio::test]
async fn deleting_the_task_deletes_its_pod() {
    let env = Env::start("deleting_the_task_deletes_its_pod").await;
    for name in ["bg", "fg"] {
        env.create(name, json!({"template": template("run-forever", &[])})).await;
    }
    for name in ["bg", "fg"] {
        env.wait_task(name, "Running", T, |t| phase(t) == Phase::Running).await;
        let pod = env.pods_of(name).await.pop().expect("a pod");
        let owner = &pod.metadata.owner_references.as_ref().expect("owner references")[0];
        assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("PodTask", name));
        assert_eq!((owner.controller, owner.block_owner_deletion), (Some(true), Some(true)));
    }
    env.tasks().delete("bg", &DeleteParams::background()).await.expect("delete bg");
    env.tasks().delete("fg", &DeleteParams::foreground()).await.expect("delete fg");
    for name in ["bg", "fg"] {
        env.wait_no_pods(name, T).await;
        let api = env.tasks();
        wait_for(&format!("PodTask {name} to be gone"), T, async || {
            api.get_opt(name).await.ok().flatten().is_none().then_some(())
        })
        .await;
        assert_eq!(env.pods_seen(name).len(), 1);
    }
}

/// An evicted pod is an infrastructure failure: retried by default, and the task fails `Evicted` with the
/// kubelet's message once the retries are spent.
#[tokio::test]
async fn evicted_pod_is_retried() {
    let env = Env::start("evicted_pod_is_retried").await;
    env.create(
        "evicted",
        json!({"template": template("evict", &[("run-for", "1s")]), "retry": {"limit": 1, "backoff": {"initial": "1s"}}}),
    )
    .await;
    let task = env.wait_finished("evicted", T).await;
    assert_eq!((phase(&task), reason(&task).as_str()), (Phase::Failed, "Evicted"), "{}", yaml(&task));
    assert_eq!(history(&task), [(1, "Evicted".to_owned()), (2, "Evicted".to_owned())]);
    assert!(message(&task).contains("The node was low on resource: memory."), "{}", message(&task));
    assert!(message(&task).contains("after 2 attempts"), "{}", message(&task));
    env.wait_no_pods("evicted", Duration::from_secs(10)).await;
    let attempts: Vec<Option<u32>> = env.pods_seen("evicted").iter().map(|p| p.attempt).collect();
    assert_eq!(attempts, [Some(1), Some(2)]);
}

/// `ttlAfterFinished`: the PodTask deletes itself that long after it finished, not before.
#[tokio::test]
async fn finished_task_is_deleted_after_its_ttl() {
    let env = Env::start("finished_task_is_deleted_after_its_ttl").await;
    env.create("short-lived", json!({"template": template("succeed", &[("run-for", "1s")]), "ttlAfterFinished": "3s"}))
        .await;
    let done = env.wait_finished("short-lived", T).await;
    assert_eq!(phase(&done), Phase::Succeeded);
    let completed = status(&done).completion_time.expect("completionTime").0;
    let api = env.tasks();
    let gone_at = wait_for("the PodTask to delete itself", T, async || {
        api.get_opt("short-lived").await.ok().flatten().is_none().then(now)
    })
    .await;
    let after = ms_between(completed, gone_at);
    println!("MEASURE ttl_delete_after_ms={after} (ttlAfterFinished 3s, completionTime has whole seconds)");
    assert!(after >= 3000, "deleted {after}ms after completion, before its 3s TTL");
    assert!(after < 8000, "deleted {after}ms after completion");
}

/// A pod that failed, deleted by podtask when its task ends, disappears as under a kubelet, whose simulation
/// (the kwok stages) completes the deletion of a pod in any phase. Someone else's finalizer on the pod keeps it,
/// once deleted, Failed with a deletionTimestamp (as a pod that failed while the API server was away and was
/// deleted on its return), instead of the API server removing it at once.
#[tokio::test]
async fn a_failed_pod_deleted_by_podtask_disappears() {
    let env = Env::start("a_failed_pod_deleted_by_podtask_disappears").await;
    env.create("held", json!({"template": template("fail", &[("run-for", "3s"), ("exit-code", "2")])})).await;
    let pod = wait_for("the pod of held", T, async || env.pods_of("held").await.into_iter().next()).await;
    let name = pod.metadata.name.clone().expect("a name");
    let hold = json!({"metadata": {"finalizers": ["podtask.dev/e2e-hold"]}});
    env.pods()
        .patch(&name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&hold))
        .await
        .expect("add a finalizer");
    let task = env.wait_finished("held", T).await;
    assert_eq!((status(&task).phase, reason(&task).as_str()), (Phase::Failed, "PodFailed"), "{}", yaml(&task));
    env.wait_no_pods("held", Duration::from_secs(10)).await;
    let seen = env.pods_seen("held");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].phase.as_deref(), Some("Failed"), "the pod had failed before it was deleted: {seen:?}");
    assert!(seen[0].deletion_seen.is_some() && seen[0].gone.is_some(), "{seen:?}");
}
