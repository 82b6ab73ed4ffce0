//! What a task costs the API server, counted rather than timed: a regression guard. A change that adds a request
//! per task fails here, however fast the machine.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::{StreamExt, stream};
use kube::runtime::watcher;
use podtask::crd::{Phase, PodTask, Reason};
use serde_json::json;

use crate::harness::{Env, template, wait_for};

const TASKS: usize = 100;

/// `podtask_api_requests_total` by "verb resource".
fn requests(metrics: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in metrics.lines().filter(|l| l.starts_with("podtask_api_requests_total{")) {
        let label = |name: &str| line.split(&format!("{name}=\"")).nth(1).and_then(|r| r.split('"').next());
        let (Some(verb), Some(resource)) = (label("verb"), label("resource")) else { continue };
        let n: f64 = line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
        *out.entry(format!("{verb} {resource}")).or_default() += n;
    }
    out
}

/// 100 one-pod tasks that succeed at once: each costs one pod create, two status writes (PodCreated, Succeeded),
/// one pod delete and one Event (the outcome); one read of the task before its launch. A task whose pod took long
/// enough to be reported on the way (running for the settle time, or a slow start) costs one status write and one
/// Event more, and a Running report one read of its pod: those reports are seen in the task's own history and
/// accounted for, nothing else is allowed.
#[tokio::test]
async fn a_hundred_short_tasks_cost_four_writes_and_one_event_each() {
    let env = Env::start("a_hundred_short_tasks_cost_four_writes_and_one_event_each").await;
    // every reason each task's status went through, from a watch (a watch delivers every change)
    let seen: Arc<Mutex<HashMap<String, Vec<Reason>>>> = Arc::default();
    let book = seen.clone();
    let watch = tokio::spawn(watcher(env.tasks(), watcher::Config::default()).for_each(move |event| {
        if let Ok(watcher::Event::Apply(t) | watcher::Event::InitApply(t)) = event {
            let reason = t.status.as_ref().and_then(|s| s.reason);
            let mut book = book.lock().expect("lock");
            let history = book.entry(t.metadata.name.clone().unwrap_or_default()).or_default();
            if let Some(reason) = reason.filter(|r| history.last() != Some(r)) {
                history.push(reason);
            }
        }
        async {}
    }));
    stream::iter(0..TASKS)
        .for_each_concurrent(16, |i| {
            let env = &env;
            async move {
                env.create(&format!("t-{i}"), json!({"template": template("succeed", &[("run-for", "0s")])})).await;
            }
        })
        .await;
    let tasks = env.tasks();
    let done: Vec<PodTask> = wait_for("all 100 tasks finished", Duration::from_secs(240), async || {
        let list = tasks.list(&Default::default()).await.ok()?.items;
        let finished = list.iter().filter(|t| crate::harness::phase(t).is_terminal()).count();
        (finished == TASKS).then_some(list)
    })
    .await;
    assert!(done.iter().all(|t| crate::harness::phase(t) == Phase::Succeeded), "all succeed");
    wait_for("every pod gone", Duration::from_secs(60), async || {
        env.pods().list(&Default::default()).await.ok()?.items.is_empty().then_some(())
    })
    .await;
    // Events leave from a queue in the background: wait until the last has been sent
    for _ in 0..40 {
        let sent = requests(&env.operator.metrics().await).get("create events").copied().unwrap_or(0.0);
        if sent >= TASKS as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let counts = requests(&env.operator.metrics().await);
    watch.abort();
    let histories = seen.lock().expect("lock").clone();
    let quiet = [Reason::PodCreated, Reason::Completed];
    let reported: Vec<(&String, &Vec<Reason>)> =
        histories.iter().filter(|(_, h)| h.iter().any(|r| !quiet.contains(r))).collect();
    let running_reports = reported.iter().filter(|(_, h)| h.contains(&Reason::Running)).count();
    let extra = reported.len() as f64;
    let n = TASKS as f64;
    let get = |key: &str| counts.get(key).copied().unwrap_or(0.0);
    let writes: f64 = counts
        .iter()
        .filter(|(k, _)| ["create", "update", "patch", "delete"].iter().any(|v| k.starts_with(&format!("{v} "))))
        // not per task: Events (counted apart), leader election, the start-up RBAC check
        .filter(|(k, _)| ![" events", " leases", " selfsubjectaccessreviews"].iter().any(|r| k.ends_with(r)))
        .map(|(_, v)| v)
        .sum();
    println!(
        "MEASURE per task: writes {:.2} without Events (status {:.2}), Events {:.2}, reads of tasks {:.2} and pods \
         {:.2}; {} of {TASKS} tasks reported on the way ({running_reports} Running); all requests {counts:?}",
        writes / n,
        get("update podtasks/status") / n,
        get("create events") / n,
        get("get podtasks") / n,
        get("get pods") / n,
        reported.len(),
    );
    assert_eq!(get("create pods"), n, "one pod per task: {counts:?}");
    assert_eq!(get("delete pods"), n, "each pod deleted once: {counts:?}");
    assert_eq!(get("update podtasks/status"), 2.0 * n + extra, "PodCreated and the outcome, plus {reported:?}");
    assert_eq!(get("create events"), n + extra, "the outcome's Event, plus the first report of {reported:?}");
    assert_eq!(writes, 4.0 * n + extra, "nothing else is written: {counts:?}");
    assert_eq!(get("get podtasks"), n, "one read of the task before its launch: {counts:?}");
    // A pod missing from the cache when its task's own status write comes back is read (at most once per task).
    assert!(get("get pods") <= n + running_reports as f64, "pod reads: {counts:?}");
    assert!(extra <= n / 10.0, "most short tasks are not reported on the way: {reported:?}");
}
