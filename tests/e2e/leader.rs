//! Two replicas with leader election, as the Helm chart deploys them: only the leader acts, and when it dies the
//! standby takes over the task in flight without launching anything twice.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use podtask::crd::Phase;
use serde_json::json;

use crate::harness::*;

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases.get_opt("podtask").await.ok().flatten()?.spec?.holder_identity
}

#[tokio::test]
async fn standby_takes_over_when_the_leader_is_killed() {
    let opts = OperatorOpts { leader_elect: Some("5s"), ..OperatorOpts::default() };
    let mut env = Env::start_with("standby_takes_over_when_the_leader_is_killed", opts).await;
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), &env.ns);
    let first = wait_for("a leader", Duration::from_secs(20), async || holder(&leases).await).await;
    assert_eq!(first, "e2e-operator-1");
    let mut standby = env.another_operator().await;

    env.create("handover", json!({"template": template("succeed", &[("run-for", "8s")])})).await;
    env.wait_task("handover", "Running", Duration::from_secs(20), |t| phase(t) == Phase::Running).await;
    assert_eq!(holder(&leases).await.as_deref(), Some("e2e-operator-1"), "the standby never took the lease");

    let killed = now();
    env.operator.kill();
    let second = wait_for("the standby to take the lease", Duration::from_secs(20), async || {
        holder(&leases).await.filter(|h| h != "e2e-operator-1")
    })
    .await;
    let failover = ms_between(killed, now());
    println!("MEASURE leader_failover_ms={failover} (lease duration 5s)");
    assert_eq!(second, "e2e-operator-2");

    let task = env.wait_finished("handover", Duration::from_secs(30)).await;
    assert_eq!(phase(&task), Phase::Succeeded, "{}", yaml(&task));
    assert_eq!(history(&task), [(1, "Completed".to_owned())]);
    env.wait_no_pods("handover", Duration::from_secs(10)).await;
    assert_eq!(env.pods_seen("handover").len(), 1, "one pod across the failover");
    let metrics = standby.metrics().await;
    assert!(metric_sum(&metrics, "podtask_api_writes_total") >= 1.0, "the new leader finished the task");
    standby.kill();
}
