//! What a dashboard sees: /metrics scraped while tasks run and after they finished, /healthz and /readyz.

use std::time::Duration;

use serde_json::json;

use crate::harness::*;

const T: Duration = Duration::from_secs(40);

/// The value of one sample (`name{labels} value`), 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn metrics_show_phases_outcomes_pull_waits_and_deadline_lag() {
    let env = Env::start("metrics_show_phases_outcomes_pull_waits_and_deadline_lag").await;
    assert_eq!(http_get(env.operator.port, "/healthz").await.map(|(c, _)| c), Some(200));
    assert_eq!(http_get(env.operator.port, "/readyz").await.map(|(c, _)| c), Some(200));

    env.create("ok", json!({"template": template("succeed", &[("run-for", "1s")])})).await;
    env.create("slow", json!({"template": template("run-forever", &[]), "executionTimeout": "5s"})).await;
    env.create(
        "throttled",
        json!({"template": template("pull-rate-limited", &[("pull-for", "3s"), ("run-for", "1s")]), "startupTimeout": "30s"}),
    )
    .await;

    // While they run: the phase gauge counts what is in flight.
    let during = wait_for("a task shown Running in podtask_tasks", T, async || {
        let m = env.operator.metrics().await;
        (sample(&m, "podtask_tasks{phase=\"Running\"}") >= 1.0).then_some(m)
    })
    .await;
    assert!(sample(&during, "podtask_reconciles_total") >= 1.0, "{during}");

    for name in ["ok", "slow", "throttled"] {
        env.wait_finished(name, T).await;
    }
    // One deadline enforced, promptly: the lag histogram holds it and its sum is small. It measures podtask's own
    // enforcement only: when the kubelet's activeDeadlineSeconds (set to the same instant) stopped the pod first,
    // there is nothing of podtask's to measure. The status is written before the pod's delete and the lag is
    // observed after it, so a task can read finished a moment before its figures are in: wait for them.
    let slow = env.task("slow").await;
    let by_kubelet = status(&slow).attempts[0].message.as_deref().unwrap_or("").contains("the kubelet stopped");
    let enforced = if by_kubelet { 0.0 } else { 1.0 };
    let m = wait_for("the finished tasks' figures in /metrics", T, async || {
        let m = env.operator.metrics().await;
        let outcomes = sample(&m, "podtask_task_outcomes_total{reason=\"Completed\"}")
            + sample(&m, "podtask_task_outcomes_total{reason=\"DeadlineExceeded\"}");
        let lags = sample(&m, "podtask_deadline_enforcement_lag_seconds_count");
        (outcomes >= 3.0 && lags >= enforced && metric_sum(&m, "podtask_api_writes_total") >= 9.0).then_some(m)
    })
    .await;
    println!("{}", m.lines().filter(|l| l.starts_with("podtask_")).collect::<Vec<_>>().join("\n"));

    assert_eq!(sample(&m, "podtask_tasks{phase=\"Succeeded\"}"), 2.0, "ok and throttled");
    assert_eq!(sample(&m, "podtask_tasks{phase=\"Failed\"}"), 1.0, "slow");
    assert_eq!(sample(&m, "podtask_tasks{phase=\"Running\"}"), 0.0);
    assert_eq!(sample(&m, "podtask_task_outcomes_total{reason=\"Completed\"}"), 2.0);
    assert_eq!(sample(&m, "podtask_task_outcomes_total{reason=\"DeadlineExceeded\"}"), 1.0);
    assert_eq!(sample(&m, "podtask_attempts_started_total"), 3.0, "one pod per task");
    assert!(sample(&m, "podtask_image_pull_waits_total{class=\"rate_limited\"}") >= 1.0, "throttled was seen waiting");
    assert_eq!(sample(&m, "podtask_leader"), 1.0);
    assert!(sample(&m, "podtask_reconcile_duration_seconds_count") >= 6.0);

    assert_eq!(
        sample(&m, "podtask_deadline_enforcement_lag_seconds_count"),
        enforced,
        "stopped by the kubelet: {by_kubelet}"
    );
    let lag = sample(&m, "podtask_deadline_enforcement_lag_seconds_sum");
    println!("MEASURE metrics_deadline_lag_s={lag:.3}");
    assert!((0.0..2.0).contains(&lag), "deadline lag {lag}s");
    assert!(metric_sum(&m, "podtask_api_writes_total") >= 9.0, "3 creates, status writes, 3 deletes");
    assert_eq!(sample(&m, "podtask_reconcile_errors_total{kind=\"api\"}"), 0.0, "no API errors");
}
