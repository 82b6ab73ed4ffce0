//! A task whose pod a ResourceQuota refuses still runs out of time: its budget starts at the first create request,
//! refused or not, and is never extended while podtask retries the create.

use std::time::Duration;

use k8s_openapi::api::core::v1::ResourceQuota;
use kube::api::{Patch, PatchParams, PostParams};
use podtask::crd::Phase;
use serde_json::json;

use crate::harness::*;

const T: Duration = Duration::from_secs(40);

/// A quota of `pods` pods in the test's namespace, once the controller-manager has counted it (admission refuses
/// every pod until then).
async fn quota(env: &Env, pods: &str) -> kube::Api<ResourceQuota> {
    let api: kube::Api<ResourceQuota> = kube::Api::namespaced(env.client.clone(), &env.ns);
    let q = serde_json::from_value(json!({"metadata": {"name": "pods"}, "spec": {"hard": {"pods": pods}}}))
        .expect("a ResourceQuota");
    api.create(&PostParams::default(), &q).await.expect("create the ResourceQuota");
    counted(&api, pods).await;
    api
}

async fn counted(api: &kube::Api<ResourceQuota>, pods: &str) {
    wait_for("the quota counted", Duration::from_secs(30), async || {
        let q = api.get("pods").await.ok()?;
        let hard = q.status?.hard?;
        (hard.get("pods")?.0 == pods).then_some(())
    })
    .await;
}

/// Quota-blocked with executionTimeout, and with spec.deadline: Pending/QuotaExceeded with the quota's words, then
/// DeadlineExceeded when the budget runs out, no pod ever created, the deadline fixed from the first refusal.
#[tokio::test]
async fn a_quota_blocked_task_runs_out_of_time() {
    let env = Env::start("a_quota_blocked_task_runs_out_of_time").await;
    quota(&env, "0").await;
    let before = now();
    env.create("budget", json!({"template": template("succeed", &[]), "executionTimeout": "8s"})).await;
    let absolute = podtask::jiff::Timestamp::from_second(now().as_second() + 9).expect("a time");
    env.create("dated", json!({"template": template("succeed", &[]), "deadline": absolute.to_string()})).await;
    let mut waiting = vec![];
    for name in ["budget", "dated"] {
        let w = env
            .wait_task(name, "QuotaExceeded", T, |t| reason(t) == "QuotaExceeded" || phase(t) == Phase::Failed)
            .await;
        assert_eq!((phase(&w), reason(&w).as_str()), (Phase::Pending, "QuotaExceeded"), "{}", yaml(&w));
        assert!(message(&w).contains("exceeded quota"), "{}", message(&w));
        let start = status(&w).start_time.expect("the budget started at the refused create").0;
        assert!(ms_between(before, start) >= -1000, "startTime {start} before the task existed ({before})");
        waiting.push((name, status(&w).deadline.expect("a deadline while refused").0));
    }
    for (name, deadline) in waiting {
        let done = env.wait_finished(name, T).await;
        assert_eq!((phase(&done), reason(&done).as_str()), (Phase::Failed, "DeadlineExceeded"), "{}", yaml(&done));
        assert!(message(&done).contains("before the first attempt could start"), "{}", message(&done));
        assert!(message(&done).contains("exceeded quota"), "says what kept it from starting: {}", message(&done));
        assert_eq!(status(&done).deadline.map(|d| d.0), Some(deadline), "the deadline never moves");
        let ended = status(&done).completion_time.expect("completionTime").0;
        let late = ms_between(deadline, ended);
        println!("MEASURE quota_blocked_{name}: failed {late} ms after its deadline");
        assert!(late >= 0, "ended {late} ms before its deadline");
        assert!(env.pods_seen(name).is_empty(), "no pod was ever created");
    }
    // spec.deadline alone: the deadline is the date itself, whenever the first create was refused.
    let dated = env.task("dated").await;
    assert_eq!(status(&dated).deadline.map(|d| d.0), Some(absolute));
}

/// Quota freed in time: the task's pod is created at the next retry, and the task keeps the budget that started at
/// its first refused create.
#[tokio::test]
async fn a_task_whose_quota_is_freed_in_time_runs_with_its_original_budget() {
    let env = Env::start("a_task_whose_quota_is_freed_in_time_runs_with_its_original_budget").await;
    let quotas = quota(&env, "0").await;
    env.create("freed", json!({"template": template("succeed", &[]), "executionTimeout": "60s"})).await;
    let waiting = env.wait_task("freed", "QuotaExceeded", T, |t| reason(t) == "QuotaExceeded").await;
    let (start, deadline) =
        (status(&waiting).start_time.expect("startTime").0, status(&waiting).deadline.expect("deadline").0);
    quotas
        .patch("pods", &PatchParams::default(), &Patch::Merge(json!({"spec": {"hard": {"pods": "1"}}})))
        .await
        .expect("raise the quota");
    counted(&quotas, "1").await;
    let done = env.wait_finished("freed", T).await;
    assert_eq!((phase(&done), reason(&done).as_str()), (Phase::Succeeded, "Completed"), "{}", yaml(&done));
    assert_eq!(status(&done).start_time.map(|t| t.0), Some(start), "the start of the budget never moves");
    assert_eq!(status(&done).deadline.map(|t| t.0), Some(deadline), "nor the deadline");
    let seen = env.pods_seen("freed");
    assert_eq!(seen.len(), 1, "one pod: {seen:?}");
}
