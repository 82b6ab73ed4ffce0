//! Whatever the API server accepts, podtask handles or reports on the task itself: the schema and the operator
//! agree on every value, one PodTask podtask cannot read never stops the others, and writes to a task are never
//! blocked by the task's own spec.

use std::time::Duration;

use kube::{
    Api,
    api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams},
};
use podtask::{
    crd::{Phase, PodTask},
    duration::Duration as SpecDuration,
    time_spec::{self, TimeSpec},
};
use serde_json::{Value, json};

use crate::harness::*;

/// Server-side dry run of a PodTask with `field` set to `value`: Ok if the API server accepts it.
async fn server_accepts(api: &Api<DynamicObject>, field: &str, value: &str) -> Result<(), String> {
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "podtask.dev/v1alpha1", "kind": "PodTask", "metadata": {"name": "edge"},
        "spec": {"template": template("succeed", &[]), field: value},
    }))
    .expect("a DynamicObject");
    match api.create(&PostParams { dry_run: true, ..Default::default() }, &object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) => Err(s.message),
        Err(e) => panic!("dry-run create: {e}"),
    }
}

/// Edge cases of both kinds of value go to the real API server and to podtask's parser: for durations the two
/// accept exactly the same set; every time the server accepts, podtask reads. A refusal says what to write.
#[tokio::test]
async fn the_schema_and_the_operator_accept_the_same_values() {
    let env = Env::start("the_schema_and_the_operator_accept_the_same_values").await;
    let api: Api<DynamicObject> =
        Api::namespaced_with(env.client.clone(), &env.ns, &ApiResource::erase::<PodTask>(&()));
    let durations = [
        "1ms",
        "1s",
        "90s",
        "5m",
        "1h30m",
        "1s500ms",
        "0001s",
        "999999h",
        "999999h9999999m99999999s9999999999ms",
        "1000000h",
        "5000000000s",
        "4294967296ms",
        "99999999999h",
        "1000000000h",
        "0s",
        "0h0m",
        "",
        " 5m",
        "5m ",
        "1.5h",
        "-5s",
        "+5s",
        "5d",
        "5M",
        "5m5m",
        "30m1h",
        "1h\u{200b}",
        "\u{0665}s",
        "\u{ff15}s",
        "5µs",
    ];
    let mut wrong = vec![];
    for value in durations {
        let server = server_accepts(&api, "executionTimeout", value).await;
        let podtask = value.parse::<SpecDuration>();
        println!(
            "executionTimeout {value:?}: server {:?}, podtask {:?}",
            server.as_ref().map_err(|_| "refused"),
            podtask
        );
        if server.is_ok() != podtask.is_ok() {
            wrong.push(format!("executionTimeout {value:?}: server {server:?}, podtask {podtask:?}"));
        }
        if let Err(message) = &server
            && !message.contains("must be a duration such as 90s")
            && !message.contains("longer than zero")
        {
            wrong.push(format!("executionTimeout {value:?}: the refusal does not say what to write: {message}"));
        }
    }
    let times = [
        "2026-11-22T23:00:00Z",
        "2026-11-22T23:00:00.5+05:30",
        "2026-11-22T23:00:00.123456789Z",
        "2026-11-22T23:00:00.1234567891234Z",
        "2030-01-01t00:00:00z",
        "2026-11-22 23:00:00Z",
        "2026-11-22T23:00Z",
        "2026-11-22T23:00:00",
        "2026-11-22T23:00:00.Z",
        "2026-11-22T24:00:00Z",
        "2016-12-31T23:59:60Z",
        "2024-02-29T00:00:00Z",
        "2100-02-29T00:00:00Z",
        "2000-02-29T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "1970-01-01T00:00:00Z",
        "0001-01-01T00:00:00Z",
        "9998-12-31T23:59:59-23:59",
        "9999-12-31T23:59:59+14:00",
        "2026-11-22T23:00:00+24:00",
        "\u{ff12}026-11-22T23:00:00Z",
    ];
    let pattern = regex::Regex::new(&time_spec::pattern()).expect("the schema's pattern");
    for value in times {
        let server = server_accepts(&api, "deadline", value).await;
        let podtask = TimeSpec(value.into()).timestamp();
        println!("deadline {value:?}: server {:?}, podtask {podtask:?}", server.as_ref().map_err(|_| "refused"));
        if server.is_ok() && podtask.is_err() {
            wrong.push(format!("deadline {value:?}: accepted by the server, unreadable by podtask: {podtask:?}"));
        }
        if server.is_ok() != pattern.is_match(value) {
            wrong.push(format!("deadline {value:?}: server {server:?} disagrees with the schema's pattern"));
        }
        if let Err(message) = &server
            && !message.contains("must be an RFC 3339 time such as")
        {
            wrong.push(format!("deadline {value:?}: the refusal does not say what to write: {message}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The largest budget the schema accepts runs: the pod's activeDeadlineSeconds is capped at the API's maximum
/// instead of making the pod invalid.
#[tokio::test]
async fn the_largest_budget_runs_with_a_capped_backstop() {
    let env = Env::start("the_largest_budget_runs_with_a_capped_backstop").await;
    env.create("huge", json!({"template": template("succeed", &[]), "executionTimeout": "999999h"})).await;
    let task = env.wait_finished("huge", Duration::from_secs(30)).await;
    assert_eq!(phase(&task), Phase::Succeeded, "{}", yaml(&task));
    let seen = env.pods_seen("huge");
    let pod = seen.first().expect("a pod was created");
    assert_eq!(pod.active_deadline_seconds, Some(i64::from(i32::MAX)));
    assert_eq!(pod.grace_seconds, Some(30), "the default grace fits such a budget");
}

/// A PodTask podtask cannot read (here: a pod template whose metadata has a creationTimestamp that is no time,
/// which the schema lets through as the API server ignores it for a pod) fails on its own with InvalidSpec naming
/// the field; the other tasks run; the operator restarted with it in scope is ready and reconciles new tasks;
/// SIGTERM ends the process within seconds; and the logs carry no pod template or env value. (A status can no
/// longer hold what podtask cannot read: the schema bounds it, see `status_edits`.)
#[tokio::test]
async fn an_unreadable_task_never_stops_the_others() {
    let mut env = Env::start("an_unreadable_task_never_stops_the_others").await;
    const SECRET: &str = "env-value-that-must-never-be-logged-7f3a";
    let mut with_env = template("run-forever", &[]);
    with_env["spec"]["containers"][0]["env"] = json!([{"name": "TOKEN", "value": SECRET}]);
    env.create("neighbour", json!({"template": with_env, "executionTimeout": "10m"})).await;
    let mut unreadable = template("run-forever", &[]);
    unreadable["metadata"]["creationTimestamp"] = json!("yesterday");
    env.create_raw("broken", json!({"template": unreadable, "executionTimeout": "10m"})).await;
    env.wait_task("neighbour", "running", Duration::from_secs(20), |t| phase(t) == Phase::Running).await;
    let api: Api<DynamicObject> =
        Api::namespaced_with(env.client.clone(), &env.ns, &ApiResource::erase::<PodTask>(&()));

    let reported = wait_for("broken reported InvalidSpec", Duration::from_secs(20), async || {
        let o = api.get("broken").await.ok()?;
        (o.data["status"]["reason"] == "InvalidSpec").then_some(o)
    })
    .await;
    let message = reported.data["status"]["message"].as_str().unwrap_or_default().to_owned();
    println!("unreadable task: {message}");
    assert!(message.contains("spec.template.metadata.creationTimestamp"), "names the field: {message}");
    assert_eq!(reported.data["status"]["phase"], "Failed");
    assert!(env.event_reasons("broken").await.iter().any(|r| r == "InvalidSpec"));
    env.wait_no_pods("broken", Duration::from_secs(20)).await;

    // The others carry on, now and after a restart.
    env.create("after", json!({"template": template("succeed", &[])})).await;
    assert_eq!(phase(&env.wait_finished("after", Duration::from_secs(30)).await), Phase::Succeeded);
    let restarted = std::time::Instant::now();
    env.operator.restart().await;
    println!("MEASURE ready after a restart with an unreadable task in scope: {} ms", restarted.elapsed().as_millis());
    env.create("after-restart", json!({"template": template("succeed", &[])})).await;
    assert_eq!(phase(&env.wait_finished("after-restart", Duration::from_secs(30)).await), Phase::Succeeded);
    assert_eq!(phase(&env.task("neighbour").await), Phase::Running, "untouched");

    let stopped = env.operator.terminate(Duration::from_secs(10));
    println!("MEASURE SIGTERM to exit: {} ms", stopped.as_millis());
    let log = std::fs::read_to_string(&env.operator.log).expect("the operator log");
    assert!(!log.contains(SECRET), "an env value reached the log");
    assert!(!log.contains("\"containers\""), "a pod template reached the log");
}

/// A task whose name is as long as Kubernetes allows still gets its Events.
#[tokio::test]
async fn a_task_with_the_longest_name_gets_events() {
    let env = Env::start("a_task_with_the_longest_name_gets_events").await;
    let name = format!("{}.{}", "a".repeat(200), "b".repeat(52));
    assert_eq!(name.len(), 253);
    env.create(&name, json!({"template": template("succeed", &[])})).await;
    assert_eq!(phase(&env.wait_finished(&name, Duration::from_secs(30)).await), Phase::Succeeded);
    let reasons = wait_for("events of the long-named task", Duration::from_secs(10), async || {
        let r = env.event_reasons(&name).await;
        r.iter().any(|r| r == "Completed").then_some(r)
    })
    .await;
    // one Event for a short success, its outcome (and a Running report's, should the pod have run 2 s on a busy
    // machine); none for the launch
    let besides_running: Vec<&String> = reasons.iter().filter(|r| *r != "Running").collect();
    assert_eq!(besides_running, ["Completed"], "{reasons:?}");
}

/// From the first status on, kstatus reads the task as in progress (observedGeneration set, Reconciling), so a
/// GitOps tool waiting on it never calls it ready before podtask has looked at it.
#[tokio::test]
async fn the_first_status_reads_in_progress() {
    let env = Env::start("the_first_status_reads_in_progress").await;
    env.create("first", json!({"template": template("run-forever", &[])})).await;
    let task = env.wait_task("first", "has a status", Duration::from_secs(10), |t| t.status.is_some()).await;
    let s = status(&task);
    assert_eq!(s.observed_generation, task.metadata.generation);
    assert_eq!(condition(&task, "Reconciling").as_deref(), Some("True"), "{}", yaml(&task));
    assert!(!s.phase.is_terminal());
}

/// Odd but accepted values in the pod template's metadata (which the API server ignores for a pod) never block
/// writes to the task: status is written and labels can change.
#[tokio::test]
async fn the_tasks_own_spec_never_blocks_writes_to_it() {
    let env = Env::start("the_tasks_own_spec_never_blocks_writes_to_it").await;
    let mut odd = template("succeed", &[]);
    odd["metadata"]["creationTimestamp"] = json!("2030-01-01t00:00:00z");
    env.create_raw("odd", json!({"template": odd, "deadline": "2030-01-01T00:00:00Z"})).await;
    let task = env.wait_finished("odd", Duration::from_secs(30)).await;
    println!("odd template metadata: {} {}", reason(&task), message(&task));
    assert_eq!(phase(&task), Phase::Succeeded, "{}", yaml(&task));
    // As `kubectl label` does it: a patch of the metadata alone.
    let patch = json!({"metadata": {"labels": {"team": "data"}}});
    env.tasks().patch("odd", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("a label change is accepted");
}

impl Env {
    /// Create a PodTask from raw JSON (for values podtask's own types would not produce).
    pub async fn create_raw(&self, name: &str, spec: Value) {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &self.ns, &ApiResource::erase::<PodTask>(&()));
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "podtask.dev/v1alpha1", "kind": "PodTask", "metadata": {"name": name}, "spec": spec,
        }))
        .expect("a DynamicObject");
        api.create(&PostParams::default(), &object).await.unwrap_or_else(|e| panic!("create {name}: {e}"));
    }
}

mod status_edits {
    //! podtask's own records, edited by someone else through `podtasks/status` (as `kubectl edit
    //! --subresource=status`, a restored backup or another controller would): the schema refuses what podtask would
    //! never write, and what it accepts is checked against podtask's own records, corrected with a Warning Event, and
    //! never stalls the operator. Each edit has a canary task running beside it; the operator's CPU over the next 30 s
    //! is measured, and SIGTERM still ends it within its bound.

    use std::time::Instant;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kube::ResourceExt;

    use super::*;

    /// The edited task (`name`, running its first pod) and a canary without a deadline, both running.
    async fn running_beside_a_canary(test: &str, name: &str, execution_timeout: &str) -> Env {
        let env = Env::start(test).await;
        env.create("canary", json!({"template": template("run-forever", &[])})).await;
        env.create(name, json!({"template": template("run-forever", &[]), "executionTimeout": execution_timeout}))
            .await;
        for task in ["canary", name] {
            env.wait_task(task, "running", Duration::from_secs(20), |t| phase(t) == Phase::Running).await;
        }
        env
    }

    /// A merge patch of the task's status, as `kubectl patch --subresource=status --type=merge` sends it.
    async fn patch_status(env: &Env, name: &str, status: Value) -> Result<(), String> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(env.client.clone(), &env.ns, &ApiResource::erase::<PodTask>(&()));
        let patch = json!({ "status": status });
        match api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) => Err(format!("{} {}", s.code, s.message)),
            Err(e) => panic!("patch the status of {name}: {e}"),
        }
    }

    fn time(t: &Time) -> String {
        serde_json::to_value(t).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
    }

    /// Wait for podtask's Warning Event about the correction of `field`; returns its note.
    async fn correction(env: &Env, name: &str, field: &str) -> String {
        wait_for(&format!("a StatusCorrected event about {field}"), Duration::from_secs(20), async || {
            let events = env.events_of(name).await;
            events
                .into_iter()
                .filter(|e| e.reason.as_deref() == Some("StatusCorrected") && e.type_.as_deref() == Some("Warning"))
                .filter_map(|e| e.note)
                .find(|note| note.starts_with(&format!("status.{field} was")))
        })
        .await
    }

    /// After the edit at `edited` (the operator's CPU then: `cpu_at_edit`): the operator's CPU over 30 s from the
    /// edit, the canary still running its first pod, and SIGTERM → exit within the bound.
    async fn quiet_and_stoppable(env: &mut Env, what: &str, edited: Instant, cpu_at_edit: f64) {
        let window = Duration::from_secs(30);
        tokio::time::sleep(window.saturating_sub(edited.elapsed())).await;
        let (used, elapsed) = (env.operator.cpu_seconds() - cpu_at_edit, edited.elapsed().as_secs_f64());
        println!(
            "MEASURE status edit ({what}): operator CPU {used:.2} s over the {elapsed:.0} s after the edit ({:.3} \
             core-seconds per second)",
            used / elapsed
        );
        // A bound that cannot flake: a worker spinning on the task would use a whole core.
        assert!(used / elapsed < 0.5, "the operator used {used:.1} s of CPU in {elapsed:.0} s after the edit");
        let canary = env.task("canary").await;
        assert_eq!((phase(&canary), status(&canary).attempt), (Phase::Running, 1), "{}", yaml(&canary));
        let pods = env.pods_of("canary").await;
        assert_eq!(pods.len(), 1, "the canary's first pod runs on");
        assert_eq!(pods[0].status.as_ref().and_then(|s| s.phase.as_deref()), Some("Running"));
        let stopped = env.operator.terminate(Duration::from_secs(10));
        println!("MEASURE status edit ({what}): SIGTERM to exit {} ms", stopped.as_millis());
    }

    /// An attempt number podtask never reaches is refused by the schema; one within it that podtask's pods and
    /// history do not support is corrected, and the running pod runs on.
    #[tokio::test]
    async fn an_attempt_number_never_stalls_the_operator() {
        let mut env = running_beside_a_canary("an_attempt_number_never_stalls_the_operator", "edited", "10m").await;
        let pod_uid = env.pods_of("edited").await[0].uid();
        let (edited, cpu) = (Instant::now(), env.operator.cpu_seconds());
        let refused = patch_status(&env, "edited", json!({"attempt": 2147483647})).await;
        println!("attempt 2147483647: {refused:?}");
        assert!(refused.as_ref().is_err_and(|m| m.starts_with("422") && m.contains("status.attempt")), "{refused:?}");
        patch_status(&env, "edited", json!({"attempt": 202})).await.expect("202 is within the schema");
        let note = correction(&env, "edited", "attempt").await;
        println!("correction: {note}");
        let task =
            env.wait_task("edited", "back at attempt 1", Duration::from_secs(20), |t| status(t).attempt == 1).await;
        assert_eq!(phase(&task), Phase::Running, "{}", yaml(&task));
        assert_eq!(env.pods_of("edited").await.iter().map(|p| p.uid()).collect::<Vec<_>>(), [pod_uid], "untouched");
        quiet_and_stoppable(&mut env, "attempt", edited, cpu).await;
    }

    /// A terminal phase written while the pod runs is not believed: the task follows its pod, which the rules still
    /// end (here: at the deadline) and delete, and the outcome comes from the pod.
    #[tokio::test]
    async fn a_terminal_phase_podtask_did_not_write_is_not_believed() {
        let mut env =
            running_beside_a_canary("a_terminal_phase_podtask_did_not_write_is_not_believed", "edited", "25s").await;
        let (edited, cpu) = (Instant::now(), env.operator.cpu_seconds());
        patch_status(&env, "edited", json!({"phase": "Succeeded"})).await.expect("the server accepts it");
        let note = correction(&env, "edited", "phase").await;
        println!("correction: {note}");
        assert!(note.contains("Succeeded") && note.contains("still there"), "{note}");
        let task = env.wait_finished("edited", Duration::from_secs(40)).await;
        assert_eq!((phase(&task), reason(&task).as_str()), (Phase::Failed, "DeadlineExceeded"), "{}", yaml(&task));
        assert_eq!(history(&task), [(1, "DeadlineExceeded".to_owned())]);
        env.wait_no_pods("edited", Duration::from_secs(20)).await;
        quiet_and_stoppable(&mut env, "phase", edited, cpu).await;
    }

    /// A deadline moved to 2999 is corrected from the pod's annotation at once, and the task ends at the real one,
    /// reporting it.
    #[tokio::test]
    async fn a_moved_deadline_is_corrected_from_the_pod() {
        let mut env = running_beside_a_canary("a_moved_deadline_is_corrected_from_the_pod", "edited", "25s").await;
        let deadline = status(&env.task("edited").await).deadline.expect("a deadline");
        let (edited, cpu) = (Instant::now(), env.operator.cpu_seconds());
        let beyond = patch_status(&env, "edited", json!({"deadline": "9999-12-31T23:59:59+14:00"})).await;
        assert!(beyond.as_ref().is_err_and(|m| m.contains("status.deadline")), "beyond what podtask reads: {beyond:?}");
        patch_status(&env, "edited", json!({"deadline": "2999-01-01T00:00:00Z"})).await.expect("accepted");
        let note = correction(&env, "edited", "deadline").await;
        println!("correction: {note}");
        assert!(note.contains("2999-01-01T00:00:00Z") && note.contains(&time(&deadline)), "{note}");
        let task = env.wait_finished("edited", Duration::from_secs(40)).await;
        assert_eq!((phase(&task), reason(&task).as_str()), (Phase::Failed, "DeadlineExceeded"), "{}", yaml(&task));
        assert_eq!(status(&task).deadline, Some(deadline.clone()), "the real deadline is reported");
        env.wait_no_pods("edited", Duration::from_secs(20)).await;
        quiet_and_stoppable(&mut env, "deadline", edited, cpu).await;
    }

    /// A first launch moved an hour later is corrected from the pod's annotation; the deadline does not move.
    #[tokio::test]
    async fn a_moved_start_time_is_corrected_from_the_pod() {
        let mut env = running_beside_a_canary("a_moved_start_time_is_corrected_from_the_pod", "edited", "25s").await;
        let before = status(&env.task("edited").await);
        let (start, deadline) = (before.start_time.expect("a start"), before.deadline.expect("a deadline"));
        let later = Time(podtask::engine::deadline::after(start.0, Duration::from_secs(3600)));
        let (edited, cpu) = (Instant::now(), env.operator.cpu_seconds());
        patch_status(&env, "edited", json!({"startTime": time(&later)})).await.expect("accepted");
        let note = correction(&env, "edited", "startTime").await;
        println!("correction: {note}");
        assert!(note.contains(&time(&later)) && note.contains(&time(&start)), "{note}");
        let task = env.wait_finished("edited", Duration::from_secs(40)).await;
        assert_eq!((phase(&task), reason(&task).as_str()), (Phase::Failed, "DeadlineExceeded"), "{}", yaml(&task));
        assert_eq!((status(&task).start_time, status(&task).deadline), (Some(start), Some(deadline)));
        env.wait_no_pods("edited", Duration::from_secs(20)).await;
        quiet_and_stoppable(&mut env, "startTime", edited, cpu).await;
    }
}
