//! How real containers end: exit codes and termination messages, a missing Secret, and a container that ignores
//! SIGTERM when the deadline comes.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use crate::harness::*;

/// A container that exits 3 after writing a termination message: PodFailed, with both in status.
#[tokio::test]
async fn exit_code_and_termination_message_reach_status() {
    let env = Env::start("exit_code").await;
    let script = "printf 'boom: out of cheese' > /dev/termination-log; exit 3";
    env.create("fail", json!({"template": template(&image(), script)})).await;
    let t = env.wait_finished("fail", Duration::from_secs(60), &mut vec![]).await;
    assert_eq!(phase(&t), "Failed", "{}", yaml(&t));
    assert_eq!(reason(&t), "PodFailed", "{}", yaml(&t));
    assert_eq!(t["status"]["exitCode"], 3, "{}", yaml(&t));
    assert_eq!(s(&t, "/status/terminationMessage"), "boom: out of cheese", "{}", yaml(&t));
}

/// A Secret that doesn't exist: the kubelet reports CreateContainerConfigError; after the operator's grace (5 s in
/// this tier's Helm values) the task fails with the kubelet's message.
#[tokio::test]
async fn missing_secret_fails_after_the_grace_with_the_kubelets_message() {
    let env = Env::start("missing_secret").await;
    let mut tmpl = template(&image(), "true");
    tmpl["spec"]["containers"][0]["env"] =
        json!([{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "missing", "key": "token"}}}]);
    let created = env.create("secret", json!({"template": tmpl})).await;
    let mut seen = vec![];
    let t = env.wait_finished("secret", Duration::from_secs(60), &mut seen).await;
    assert_eq!(phase(&t), "Failed", "{}", yaml(&t));
    assert_eq!(reason(&t), "CreateContainerConfigError", "{}", yaml(&t));
    assert!(message(&t).contains(r#"secret "missing" not found"#), "{}", yaml(&t));
    let done = ts(&t["status"]["completionTime"]).expect("completionTime");
    assert!(secs_between(created, done) >= 4.0, "failed only after the grace: {} s", secs_between(created, done));
}

/// Processes on this host whose command line contains `marker` (the test runs on the node itself).
fn processes_with(marker: &str) -> Vec<u32> {
    let mut found = vec![];
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline"))
            && String::from_utf8_lossy(&cmd).contains(marker)
        {
            found.push(pid);
        }
    }
    found
}

/// What became of a container that ignores SIGTERM.
struct Stubborn {
    /// Seconds from `status.deadline` to the container's process being gone (negative: before the deadline).
    late: f64,
    /// Seconds from just before the task's creation to `status.deadline`.
    budget: f64,
}

/// The stubborn tasks' budget: long enough that a slow start on a busy node (pods created by the whole tier at
/// once) still leaves the container running well before its deadline.
const BUDGET: u32 = 40;

/// Run a SIGTERM-ignoring container with this grace under a 40 s budget until it is dead, watching its process in
/// /proc on the host (the test runs on the node); the task must end `DeadlineExceeded`.
async fn stubborn_container(env: &Env, name: &str, grace: u32) -> Stubborn {
    let marker = format!("podtask-marker-{}", unique());
    let script = format!("trap '' TERM; : {marker}; while :; do sleep 1; done");
    let mut tmpl = template(&image(), &script);
    tmpl["spec"]["terminationGracePeriodSeconds"] = json!(grace);
    let created = env.create(name, json!({"template": tmpl, "executionTimeout": format!("{BUDGET}s")})).await;
    let t = wait_for("the task Running", Duration::from_secs(60), async || {
        let t = env.task(name).await?;
        (phase(&t) == "Running").then_some(t)
    })
    .await;
    let deadline = ts(&t["status"]["deadline"]).expect("status.deadline");
    // the first launch is after `created`, so a budget kept to the sub-second puts the deadline at least 40 s later
    let budget = secs_between(created, deadline);
    println!("realnode: deadline - task creation: {budget:.3} s (budget {BUDGET} s)");
    let dead_at = tokio::task::spawn_blocking(move || {
        let mut seen = false;
        loop {
            let alive = !processes_with(&marker).is_empty();
            seen |= alive;
            if seen && !alive {
                return Timestamp::now();
            }
            let waited = secs_between(deadline, Timestamp::now());
            assert!(
                waited < f64::from(grace) + 15.0,
                "the container was still running {waited:.0} s after its deadline"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .expect("the /proc watcher");
    let late = secs_between(deadline, dead_at);
    // where the time went: podtask's delete (as the watch saw it) against the planned stop, then the kubelet
    let stop = env.pods_seen(name).into_iter().find_map(|p| p.deleting).map_or(String::new(), |(at, given)| {
        format!(
            "; delete seen at {:+.2} s with a {given} s grace, so the kubelet took {:+.2} s past the grace",
            secs_between(deadline, at),
            secs_between(at, dead_at) - given as f64
        )
    });
    println!(
        "MEASURE realnode: deadline -> container dead (SIGTERM ignored, terminationGracePeriodSeconds {grace}, budget {BUDGET} s): {late:+.2} s{stop}"
    );
    let t = env.wait_finished(name, Duration::from_secs(30), &mut vec![]).await;
    assert_eq!(reason(&t), "DeadlineExceeded", "{}", yaml(&t));
    Stubborn { late, budget }
}

/// A container that ignores SIGTERM is stopped at its deadline and killed once its grace is over: never later than
/// deadline + grace (+ 2 s).
#[tokio::test]
async fn sigterm_ignoring_container_is_killed_within_its_grace_after_the_deadline() {
    let env = Env::start("sigterm_ignored_grace").await;
    let Stubborn { late, .. } = stubborn_container(&env, "stubborn", 10).await;
    assert!(late <= 12.0, "the container outlived its deadline by {late:.2} s (grace 10 s)");
}

/// How many SIGTERM-ignoring tasks the deadline-margin test runs side by side: 3, or
/// PODTASK_REALNODE_MARGIN_RUNS (e.g. 20 for a longer measurement).
fn margin_runs() -> usize {
    std::env::var("PODTASK_REALNODE_MARGIN_RUNS").ok().and_then(|n| n.parse().ok()).unwrap_or(3)
}

/// The same with terminationGracePeriodSeconds 60, several tasks at once: podtask bounds the grace by what is left
/// of the budget and starts termination early enough (its stop margin) that each container is dead by its deadline
/// despite podtask's and the kubelet's lag; and the budget is not cut short by whole-second timestamps.
#[tokio::test]
async fn sigterm_ignoring_container_is_dead_by_the_deadline() {
    let env = Env::start("sigterm_ignored").await;
    let n = margin_runs();
    let names: Vec<String> = (0..n).map(|i| format!("stubborn-{i}")).collect();
    let runs = futures::future::join_all(names.iter().map(|name| stubborn_container(&env, name, 60))).await;
    let worst = runs.iter().map(|r| r.late).fold(f64::NEG_INFINITY, f64::max);
    let best = runs.iter().map(|r| r.late).fold(f64::INFINITY, f64::min);
    println!(
        "MEASURE realnode: deadline margin over {n} runs (SIGTERM ignored, grace 60 s, budget {BUDGET} s): container dead \
         {best:+.2} .. {worst:+.2} s relative to status.deadline (worst {worst:+.2} s)"
    );
    for Stubborn { late, budget } in runs {
        assert!(late <= 0.0, "a container outlived its deadline by {late:.2} s");
        assert!(budget >= f64::from(BUDGET), "the {BUDGET} s budget was cut to {budget:.3} s");
    }
}
