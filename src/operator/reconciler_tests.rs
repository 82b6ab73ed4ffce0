//! The reconciler against a scripted API server (kube-rs's `tower_test` pattern): each test lists the requests one
//! reconcile must make, in order, asserts what they carry, and answers them; any other request fails the test.
//! Events may come at any point and are answered (and remembered) on the way.

use std::{future::Future, sync::Arc, time::Duration as StdDuration};

use http::{Method, Request, Response};
use k8s_openapi::api::core::v1::Pod;
use kube::core::DeserializeGuard;
use kube::{Client, client::Body, runtime::watcher};
use serde_json::{Value, json};
use tower_test::mock::{self, Handle, SendResponse};

use super::reconcile;
use crate::{
    crd::{Outcome, Phase, PodTask, PodTaskStatus, Reason},
    engine::{self, testing::*},
    jiff::Timestamp,
    operator::{
        context::{Context, Deleted, JustCreated, OwnWrites},
        error::Error,
        events::Publisher,
        metrics::Metrics,
        runner::Action,
    },
};

const POD: &str = "job-0f0f0-1";
const PODS: &str = "/api/v1/namespaces/ns/pods";
const POD_PATH: &str = "/api/v1/namespaces/ns/pods/job-0f0f0-1";
const TASK: &str = "/apis/podtask.dev/v1alpha1/namespaces/ns/podtasks/job";
const STATUS: &str = "/apis/podtask.dev/v1alpha1/namespaces/ns/podtasks/job/status";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/ns/events";

// ---- launching ----

#[tokio::test]
async fn a_new_task_creates_one_pod_then_reports_it() {
    let task = task(json!({}));
    let (result, events) = reconcile_against(task, vec![], t(0), |mut api| async move {
        let create = api.expect(Method::POST, PODS).await;
        let pod = &create.body;
        assert_eq!(pod["metadata"]["name"], POD, "deterministic name per attempt");
        assert_eq!(pod["metadata"]["namespace"], "ns");
        assert_eq!(pod["metadata"]["labels"]["podtask.dev/attempt"], "1");
        assert_eq!(pod["spec"]["restartPolicy"], "Never", "retries are podtask's job");
        let owner = &pod["metadata"]["ownerReferences"][0];
        assert_eq!((&owner["kind"], &owner["uid"]), (&json!("PodTask"), &json!(UID)));
        assert_eq!((&owner["controller"], &owner["blockOwnerDeletion"]), (&json!(true), &json!(true)));
        let stored = stored(create.body.clone(), "pod-uid-1");
        create.respond(201, &stored);
        assert_eq!(api.task_reads, 1, "the task is read fresh before the launch");
        // Only after the pod exists: kstatus reads a task without status as done, so it is reported at once.
        let put = api.expect(Method::PUT, STATUS).await;
        let status = written_status(&put.body);
        assert_eq!((status.phase, status.reason, status.attempt), (Phase::Starting, Some(Reason::PodCreated), 1));
        assert_eq!(status.observed_generation, Some(1));
        put.echo();
        api
    })
    .await;
    assert_eq!(result.expect("reconcile succeeds"), Action::requeue(StdDuration::from_secs(300)), "startup timeout");
    assert!(events.is_empty(), "the launch is no Event: the attempt's first report or its outcome is");
}

/// The cache still holds the task as it was before its last status write (attempt 1 launched), and the pod is
/// gone from the cache: the fresh read before a launch shows the truth, so attempt 1 is not launched again.
#[tokio::test]
async fn a_stale_cached_task_never_relaunches_an_attempt() {
    let task = task(json!({"executionTimeout": "10m"}));
    let pod = pod_at(&task, 1, t(0), running());
    let current = reported(task.clone(), std::slice::from_ref(&pod), t(1));
    let (result, _) = reconcile_against(task, vec![], t(5), |mut api| async move {
        api.task = serde_json::to_value(&current).expect("json");
        api.task.as_object_mut().unwrap().get_mut("metadata").unwrap()["resourceVersion"] = json!("7");
        // Deciding again on the fresh task: attempt 1 is under way and its pod is missing from the cache, so the
        // pod is read fresh (and found) rather than created.
        api.expect(Method::GET, POD_PATH).await.respond(200, &to_json(&pod));
        api
    })
    .await;
    assert!(result.is_ok(), "{result:?}");
}

/// The watch cache keeps no pod template (controller::trim_task): the pod is built from the task read fresh before
/// the launch, so it runs what the user asked for.
#[tokio::test]
async fn a_launch_builds_its_pod_from_the_fresh_task_not_the_trimmed_cache() {
    let full = task(json!({"executionTimeout": "10m"}));
    let mut cached = DeserializeGuard(Ok(full.clone()));
    crate::operator::controller::trim_task(&mut cached);
    let cached = cached.0.expect("a readable task");
    assert_eq!(cached.spec.template, Default::default(), "the cache holds no template");
    let (result, _) = reconcile_against(cached, vec![], t(0), |mut api| async move {
        api.task = serde_json::to_value(&full).expect("json");
        let create = api.expect(Method::POST, PODS).await;
        assert_eq!(create.body["spec"]["containers"][0]["image"], "busybox", "the template's container");
        assert_eq!(create.body["metadata"]["labels"]["app"], "demo", "the template's labels");
        let stored = stored(create.body.clone(), "pod-uid-1");
        create.respond(201, &stored);
        api.expect(Method::PUT, STATUS).await.echo();
        api
    })
    .await;
    assert!(result.is_ok(), "{result:?}");
}

// ---- AlreadyExists ----

#[tokio::test]
async fn an_existing_pod_of_ours_is_adopted_not_created_again() {
    let task = task(json!({"executionTimeout": "10m"}));
    let existing = pod_at(&task, 1, t(0), running());
    let (result, _) = reconcile_against(task, vec![], t(3), |mut api| async move {
        api.expect(Method::POST, PODS).await.respond(409, &already_exists());
        api.expect(Method::GET, POD_PATH).await.respond(200, &to_json(&existing));
        let put = api.expect(Method::PUT, STATUS).await;
        let status = written_status(&put.body);
        assert_eq!((status.phase, status.reason, status.attempt), (Phase::Running, Some(Reason::Running), 1));
        assert_eq!(status.pod_name.as_deref(), Some(POD));
        put.echo();
        api
    })
    .await;
    assert_eq!(
        result.expect("reconcile succeeds"),
        Action::requeue(StdDuration::from_secs(565)),
        "when stopping must begin: the deadline minus the pod's 30s grace and the margin"
    );
}

#[tokio::test]
async fn a_namesake_pod_of_someone_else_is_never_touched_and_fails_the_task() {
    let task = task(json!({}));
    let mut stranger = pod_at(&task, 1, t(0), running());
    stranger.metadata.owner_references = None;
    stranger.metadata.uid = Some("stranger-uid".into());
    let (result, events) = reconcile_against(task, vec![], t(0), |mut api| async move {
        api.expect(Method::POST, PODS).await.respond(409, &already_exists());
        api.expect(Method::GET, POD_PATH).await.respond(200, &to_json(&stranger));
        let put = api.expect(Method::PUT, STATUS).await;
        let status = written_status(&put.body);
        assert_eq!((status.phase, status.reason), (Phase::Failed, Some(Reason::PodConflict)));
        assert!(status.message.as_deref().unwrap_or("").contains(POD), "names the pod: {:?}", status.message);
        put.echo();
        api // `done` fails on a DELETE of the stranger
    })
    .await;
    assert_eq!(result.expect("reconcile succeeds"), Action::await_change());
    assert!(events.iter().any(|e| e == "PodConflict"), "the user sees why: {events:?}");
}

// ---- the startup timeout: verdicts on a fresh read ----

#[tokio::test]
async fn a_pod_that_started_after_the_cache_saw_it_waiting_goes_on() {
    let task = task(json!({}));
    let waiting = pod_at(&task, 1, t(0), scheduled_waiting("ImagePullBackOff", "Back-off pulling image \"busybox\""));
    let task = reported(task, std::slice::from_ref(&waiting), t(10));
    assert_eq!(task.status.as_ref().unwrap().reason, Some(Reason::ImagePullBackOff));
    let started = pod_at(&task, 1, t(0), running());
    let (result, _) = reconcile_against(task, vec![waiting], t(301), |mut api| async move {
        api.expect(Method::GET, POD_PATH).await.respond(200, &to_json(&started));
        let put = api.expect(Method::PUT, STATUS).await;
        let status = written_status(&put.body);
        assert_eq!((status.phase, status.reason, status.attempt), (Phase::Running, Some(Reason::Running), 1));
        assert!(status.attempts.is_empty(), "the attempt goes on");
        put.echo();
        api // `done` fails on a DELETE
    })
    .await;
    assert_eq!(result.expect("reconcile succeeds"), Action::await_change());
}

#[tokio::test]
async fn a_pod_still_waiting_at_the_startup_timeout_is_recorded_then_deleted() {
    let task = task(json!({}));
    let waiting = pod_at(&task, 1, t(0), scheduled_waiting("ImagePullBackOff", "Back-off pulling image \"busybox\""));
    let task = reported(task, std::slice::from_ref(&waiting), t(10));
    let fresh = waiting.clone();
    let (result, _) = reconcile_against(task, vec![waiting], t(301), |mut api| async move {
        api.expect(Method::GET, POD_PATH).await.respond(200, &to_json(&fresh));
        let put = api.expect(Method::PUT, STATUS).await;
        let status = written_status(&put.body);
        assert_eq!((status.phase, status.reason), (Phase::Pending, Some(Reason::BackingOff)));
        let record = status.attempts.first().expect("the attempt is recorded");
        assert_eq!((record.attempt, record.outcome, record.reason), (1, Outcome::Failed, Reason::ImagePullTimeout));
        assert_eq!(status.next_attempt_time.map(|n| n.0), Some(t(311)), "default backoff 10s");
        put.echo();
        let delete = api.expect(Method::DELETE, POD_PATH).await;
        assert_eq!(delete.body["preconditions"]["uid"], "pod-uid-1", "never hits a namesake");
        let gone = deleting(&fresh);
        delete.respond(200, &gone);
        api
    })
    .await;
    assert_eq!(result.expect("reconcile succeeds"), Action::requeue(StdDuration::from_secs(10)), "next attempt");
}

// ---- the deadline ----

#[tokio::test]
async fn at_the_stop_time_the_task_fails_before_its_pod_is_deleted() {
    let task = task(json!({"executionTimeout": "10m"}));
    let pod = pod_at(&task, 1, t(0), running());
    let task = reported(task, std::slice::from_ref(&pod), t(10));
    assert_eq!(task.status.as_ref().unwrap().deadline.as_ref().map(|d| d.0), Some(t(600)));
    let fresh = pod.clone();
    let (result, _) = reconcile_against(task, vec![pod], t(590), |mut api| async move {
        api.expect(Method::GET, POD_PATH).await.respond(200, &to_json(&fresh));
        let put = api.expect(Method::PUT, STATUS).await;
        let status = written_status(&put.body);
        assert_eq!((status.phase, status.reason), (Phase::Failed, Some(Reason::DeadlineExceeded)));
        put.echo();
        // Only now: a failed delete must not leave the task looking alive.
        let delete = api.expect(Method::DELETE, POD_PATH).await;
        assert_eq!(delete.body["preconditions"]["uid"], "pod-uid-1");
        assert_eq!(delete.body.get("gracePeriodSeconds"), None, "graceful: the pod's own grace period applies");
        let gone = deleting(&fresh);
        delete.respond(200, &gone);
        api
    })
    .await;
    assert_eq!(result.expect("reconcile succeeds"), Action::await_change(), "no further attempt");
}

/// After the deadline itself (an API outage hid it): the delete goes first, on the condition that the pod is the
/// version the cache holds, and the status is written on that view. One request fewer; the cleanup's own delete
/// is not sent again.
#[tokio::test]
async fn an_overdue_stop_deletes_the_cached_version_first_then_writes_the_end() {
    let task = task(json!({"executionTimeout": "10m"}));
    let pod = pod_at(&task, 1, t(0), running());
    let task = reported(task, std::slice::from_ref(&pod), t(10));
    let cached = pod.clone();
    let (result, _, remembered) = reconcile_after(Memory::default(), task, vec![pod], t(605), |mut api| async move {
        let delete = api.expect(Method::DELETE, POD_PATH).await;
        assert_eq!(delete.body["preconditions"]["uid"], "pod-uid-1");
        assert_eq!(delete.body["preconditions"]["resourceVersion"], "1", "the version the cache holds");
        assert_eq!(delete.body.get("gracePeriodSeconds"), None, "graceful: the pod's own grace period applies");
        delete.respond(200, &deleting(&cached));
        let put = api.expect(Method::PUT, STATUS).await;
        let status = written_status(&put.body);
        assert_eq!((status.phase, status.reason), (Phase::Failed, Some(Reason::DeadlineExceeded)));
        assert!(status.message.as_deref().unwrap_or("").contains("stop of pod"), "{:?}", status.message);
        put.echo();
        api
    })
    .await;
    assert_eq!(result.expect("reconcile succeeds"), Action::await_change(), "no further attempt");
    assert!(remembered.delete, "the delete is remembered, so the next reconcile does not send it again");
}

/// The pod changed since the cache saw it (it finished just before the deadline): the delete is refused, the pod is
/// read fresh, and the task gets the outcome it really had.
#[tokio::test]
async fn an_overdue_stop_refused_for_a_changed_pod_reads_it_and_records_its_real_end() {
    let task = task(json!({"executionTimeout": "10m"}));
    let pod = pod_at(&task, 1, t(0), running());
    let task = reported(task, std::slice::from_ref(&pod), t(10));
    let mut done = pod_at(&task, 1, t(0), exited("Succeeded", 0, ""));
    done.metadata.resource_version = Some("2".into());
    let (result, _) = reconcile_against(task, vec![pod], t(605), |mut api| async move {
        let conflict = api_status(409, "Conflict", "Precondition failed: ResourceVersion in precondition: 1");
        api.expect(Method::DELETE, POD_PATH).await.respond(409, &conflict);
        api.expect(Method::GET, POD_PATH).await.respond(200, &to_json(&done));
        let put = api.expect(Method::PUT, STATUS).await;
        assert_eq!(written_status(&put.body).phase, Phase::Succeeded);
        put.echo();
        api.expect(Method::DELETE, POD_PATH).await.respond(200, &deleting(&done));
        api
    })
    .await;
    assert!(result.is_ok(), "{result:?}");
}

/// The pod is gone already: the deadline passed, so that is what ended it.
#[tokio::test]
async fn an_overdue_stop_of_a_pod_already_gone_records_the_deadline() {
    let task = task(json!({"executionTimeout": "10m"}));
    let pod = pod_at(&task, 1, t(0), running());
    let task = reported(task, std::slice::from_ref(&pod), t(10));
    let (result, _) = reconcile_against(task, vec![pod], t(605), |mut api| async move {
        let gone = api_status(404, "NotFound", "pods \"job-0f0f0-1\" not found");
        api.expect(Method::DELETE, POD_PATH).await.respond(404, &gone);
        let put = api.expect(Method::PUT, STATUS).await;
        let status = written_status(&put.body);
        assert_eq!((status.phase, status.reason), (Phase::Failed, Some(Reason::DeadlineExceeded)));
        put.echo();
        api
    })
    .await;
    assert!(result.is_ok(), "{result:?}");
}

// ---- no reconcile storms ----

#[tokio::test]
async fn nothing_changed_means_no_request_and_a_requeue_at_the_deadline() {
    let task = task(json!({"executionTimeout": "10m"}));
    let pod = pod_at(&task, 1, t(0), running());
    let task = reported(task, std::slice::from_ref(&pod), t(10));
    assert_eq!(task.status.as_ref().unwrap().phase, Phase::Running);
    let (result, _) = reconcile_against(task, vec![pod], t(20), |api| async move { api.silent().await }).await;
    assert_eq!(
        result.expect("reconcile succeeds"),
        Action::requeue(StdDuration::from_secs(548)),
        "T+568: 600 - 30s grace - 2s margin"
    );
}

/// A pod event wakes the task moments after podtask's own status write, before the watch has brought that
/// version: deciding on the version it replaced would only have the next write refused (409), so the reconcile
/// makes no request and looks again shortly (the watch brings the write, and this reconcile, sooner).
#[tokio::test]
async fn a_reconcile_waits_for_the_cache_to_show_its_own_last_write() {
    let task = task(json!({"executionTimeout": "10m"}));
    let pod = pod_at(&task, 1, t(0), running());
    let mut task = reported(task, std::slice::from_ref(&pod), t(10));
    task.metadata.resource_version = Some("41".into());
    let done = pod_at(&task, 1, t(0), exited("Succeeded", 0, ""));
    let memory = Memory::default();
    memory.own_writes.wrote("ns/job", "42".into());
    let (result, ..) = reconcile_after(memory, task, vec![done], t(30), |api| async move { api.silent().await }).await;
    assert_eq!(result.expect("reconcile succeeds"), Action::requeue(StdDuration::from_millis(250)));
}

#[test]
fn the_cache_catches_up_with_an_own_write_once_it_shows_that_version() {
    let own_writes = OwnWrites::default();
    own_writes.wrote("ns/job", "42".into());
    assert!(own_writes.cache_behind("ns/job", Some("41")));
    assert!(!own_writes.cache_behind("ns/job", Some("42")));
    assert!(!own_writes.cache_behind("ns/job", Some("41")), "caught up once: the record is gone");
    assert!(!own_writes.cache_behind("ns/other", Some("1")));
}

#[tokio::test]
async fn a_status_write_that_lost_a_race_stops_the_reconcile() {
    let task = task(json!({"executionTimeout": "10m"}));
    let pod = pod_at(&task, 1, t(0), running());
    let task = reported(task, std::slice::from_ref(&pod), t(10));
    let done = pod_at(&task, 1, t(0), exited("Succeeded", 0, ""));
    let (result, _) = reconcile_against(task, vec![done], t(30), |mut api| async move {
        let conflict = api_status(
            409,
            "Conflict",
            "Operation cannot be fulfilled on podtasks.podtask.dev \"job\": the object has been modified; please apply your changes to the latest version and try again",
        );
        api.expect(Method::PUT, STATUS).await.respond(409, &conflict);
        // decided again on a fresh read of the task, which loses the race too here
        api.expect(Method::PUT, STATUS).await.respond(409, &conflict);
        assert_eq!(api.task_reads, 1, "one fresh read after the first conflict");
        api // `done` fails on the DELETE that a stale view must not issue
    })
    .await;
    assert!(matches!(result, Err(Error::Stale(ref key)) if key == "ns/job"), "{result:?}");
}

#[tokio::test]
async fn a_refused_status_write_never_prevents_the_deadlines_pod_delete() {
    let task = task(json!({"executionTimeout": "10m"}));
    let pod = pod_at(&task, 1, t(0), running());
    let task = reported(task, std::slice::from_ref(&pod), t(10));
    let fresh = pod.clone();
    let (result, _) = reconcile_against(task, vec![pod], t(590), |mut api| async move {
        api.expect(Method::GET, POD_PATH).await.respond(200, &to_json(&fresh));
        let refusal = api_status(422, "Invalid", "PodTask.podtask.dev \"job\" is invalid");
        api.expect(Method::PUT, STATUS).await.respond(422, &refusal);
        let delete = api.expect(Method::DELETE, POD_PATH).await;
        delete.respond(200, &deleting(&fresh));
        api
    })
    .await;
    assert!(matches!(result, Err(Error::Kube(_))), "the status write is retried later: {result:?}");
}

/// The cache still shows a task as running after its end was written (its watch is slow to come back, after
/// throttling say): the write on that view is refused, and the fresh read shows the end, so the pod is deleted now
/// rather than whenever the watch returns.
#[tokio::test]
async fn a_finished_task_seen_stale_is_cleaned_up_from_a_fresh_read() {
    let task = task(json!({"executionTimeout": "10m"}));
    let pod = pod_at(&task, 1, t(0), running());
    let running_task = reported(task, std::slice::from_ref(&pod), t(10));
    let done = pod_at(&running_task, 1, t(0), exited("Succeeded", 0, ""));
    let finished = reported(running_task.clone(), std::slice::from_ref(&done), t(30));
    assert_eq!(finished.status.as_ref().unwrap().phase, Phase::Succeeded);
    let (result, _) = reconcile_against(running_task, vec![done.clone()], t(40), |mut api| async move {
        api.task = serde_json::to_value(&finished).expect("json");
        api.task["metadata"]["resourceVersion"] = json!("9");
        let conflict = api_status(409, "Conflict", "the object has been modified");
        api.expect(Method::PUT, STATUS).await.respond(409, &conflict);
        api.expect(Method::DELETE, POD_PATH).await.respond(200, &deleting(&done));
        assert_eq!(api.task_reads, 1);
        api
    })
    .await;
    assert!(result.is_ok(), "{result:?}");
}

/// A finished task's pod is deleted once: the next reconcile (woken by podtask's own status write, say) may still
/// find the pod alive in a cache that has not shown the deletion, and does not delete it again.
#[tokio::test]
async fn a_pod_is_deleted_once_however_slowly_the_cache_shows_it() {
    let task = task(json!({"executionTimeout": "10m"}));
    let pod = pod_at(&task, 1, t(0), running());
    let running_task = reported(task, std::slice::from_ref(&pod), t(10));
    let done = pod_at(&running_task, 1, t(0), exited("Succeeded", 0, ""));
    let deleted = done.clone();
    let finished = reported(running_task.clone(), std::slice::from_ref(&done), t(30));
    let (result, _, remembered) =
        reconcile_after(Memory::default(), running_task, vec![done.clone()], t(30), |mut api| async move {
            api.expect(Method::PUT, STATUS).await.echo();
            api.expect(Method::DELETE, POD_PATH).await.respond(200, &deleting(&deleted));
            api
        })
        .await;
    assert!(result.is_ok(), "{result:?}");
    assert!(remembered.delete, "the delete is remembered");
    // The next reconcile: the task as written, the pod cache not yet showing the deletion.
    let memory = Memory::default();
    memory.deleted.deleted("pod-uid-1");
    let (result, ..) =
        reconcile_after(memory, finished, vec![done], t(31), |api| async move { api.silent().await }).await;
    assert!(result.is_ok(), "{result:?}");
}

/// The task's status write (attempt 1 launched) wakes a reconcile before the pod cache shows the new pod: the pod
/// is known from its create, so it is not read again from the API server (without the memory, the same reconcile
/// reads it: the second half).
#[tokio::test]
async fn a_pod_just_created_is_not_read_again_while_the_cache_catches_up() {
    let mut launched = task(json!({}));
    let written = Arc::new(std::sync::Mutex::new(None));
    let status = written.clone();
    let (result, _, remembered) =
        reconcile_after(Memory::default(), launched.clone(), vec![], t(0), |mut api| async move {
            let create = api.expect(Method::POST, PODS).await;
            let stored = stored(create.body.clone(), "pod-uid-1");
            create.respond(201, &stored);
            let put = api.expect(Method::PUT, STATUS).await;
            *status.lock().unwrap() = Some(written_status(&put.body));
            put.echo();
            api
        })
        .await;
    assert!(result.is_ok(), "{result:?}");
    let created = remembered.create.expect("the created pod is remembered");
    assert_eq!(engine::pod::attempt_of(&created.to_pod("ns", POD)), Some(1), "with the labels the engine reads");
    launched.status = written.lock().unwrap().take();
    assert_eq!(launched.status.as_ref().and_then(|s| s.reason), Some(Reason::PodCreated));

    // The next reconcile, one second later, with the pod cache still empty.
    let memory = Memory::default();
    memory.just_created.created(&created.to_pod("ns", POD));
    let (result, ..) =
        reconcile_after(memory, launched.clone(), vec![], t(1), |api| async move { api.silent().await }).await;
    assert!(result.is_ok(), "{result:?}");
    let (result, ..) = reconcile_after(Memory::default(), launched, vec![], t(1), |mut api| async move {
        let get = api.expect(Method::GET, POD_PATH).await;
        get.respond(200, &stored(serde_json::to_value(created.to_pod("ns", POD)).unwrap(), "pod-uid-1"));
        api
    })
    .await;
    assert!(result.is_ok(), "{result:?}");
}

/// A status whose attempt number is far beyond any podtask writes (possible only under an older, looser schema):
/// the reconcile costs what the task's one pod costs (found in the cache by its owner, not by walking attempt
/// numbers), corrects the number, and leaves the running pod alone.
#[tokio::test]
async fn a_huge_attempt_number_costs_no_more_than_the_pods_and_is_corrected() {
    let task = task(json!({"executionTimeout": "10m"}));
    let pod = pod_at(&task, 1, t(0), running());
    let mut task = reported(task, std::slice::from_ref(&pod), t(10));
    if let Some(s) = task.status.as_mut() {
        s.attempt = u32::MAX;
    }
    let (result, events) = reconcile_against(task, vec![pod], t(20), |mut api| async move {
        let put = api.expect(Method::PUT, STATUS).await;
        assert_eq!(put.body["status"]["attempt"], 1, "corrected to the attempt its pod shows");
        put.echo();
        api
    })
    .await;
    assert!(result.is_ok(), "{result:?}");
    assert!(events.iter().any(|r| r == engine::trust::CORRECTED), "{events:?}");
}

/// At the deadline, the status write loses a race with a newer version of the task: the pod is not deleted on a
/// view the API server called stale (its end would go unrecorded, and the next look would find it lost), and the
/// deadline is not left to a later reconcile either: the task is read fresh, and decided on again at once.
#[tokio::test]
async fn a_status_write_that_lost_a_race_at_the_deadline_is_decided_again_on_a_fresh_read() {
    let task = task(json!({"executionTimeout": "10m"}));
    let pod = pod_at(&task, 1, t(0), running());
    let task = reported(task, std::slice::from_ref(&pod), t(10));
    let fresh = pod.clone();
    let (result, _) = reconcile_against(task.clone(), vec![pod], t(590), |mut api| async move {
        api.task = serde_json::to_value(&task).expect("json");
        api.task["metadata"]["resourceVersion"] = json!("8");
        api.expect(Method::GET, POD_PATH).await.respond(200, &to_json(&fresh));
        let conflict = api_status(409, "Conflict", "the object has been modified");
        api.expect(Method::PUT, STATUS).await.respond(409, &conflict);
        let put = api.expect(Method::PUT, STATUS).await;
        assert_eq!(api.task_reads, 1, "the task was read fresh after the conflict");
        assert_eq!(put.body["metadata"]["resourceVersion"], "8", "written over the fresh version");
        assert_eq!(written_status(&put.body).reason, Some(Reason::DeadlineExceeded));
        put.echo();
        api.expect(Method::DELETE, POD_PATH).await.respond(200, &deleting(&fresh));
        api
    })
    .await;
    assert!(result.is_ok(), "{result:?}");
}

// ---- pod create refused ----

#[tokio::test]
async fn an_invalid_pod_fails_the_task_with_the_api_servers_message() {
    let message = "Pod \"job-0f0f0-1\" is invalid: spec.containers[0].image: Required value";
    let (result, _) = reconcile_against(task(json!({})), vec![], t(0), move |mut api| async move {
        api.expect(Method::POST, PODS).await.respond(422, &api_status(422, "Invalid", message));
        let put = api.expect(Method::PUT, STATUS).await;
        let status = written_status(&put.body);
        assert_eq!((status.phase, status.reason), (Phase::Failed, Some(Reason::InvalidSpec)));
        assert!(status.message.as_deref().unwrap_or("").contains(message), "{:?}", status.message);
        put.echo();
        api
    })
    .await;
    assert_eq!(result.expect("reconcile succeeds"), Action::await_change(), "no retry");
}

#[tokio::test]
async fn an_exhausted_quota_keeps_the_task_pending_and_retries() {
    let message =
        "pods \"job-0f0f0-1\" is forbidden: exceeded quota: compute, requested: pods=1, used: pods=2, limited: pods=2";
    let (result, _) = reconcile_against(task(json!({})), vec![], t(0), move |mut api| async move {
        api.expect(Method::POST, PODS).await.respond(403, &api_status(403, "Forbidden", message));
        let put = api.expect(Method::PUT, STATUS).await;
        let status = written_status(&put.body);
        assert_eq!((status.phase, status.reason), (Phase::Pending, Some(Reason::QuotaExceeded)));
        assert!(status.message.as_deref().unwrap_or("").contains(message), "{:?}", status.message);
        put.echo();
        api
    })
    .await;
    assert_eq!(result.expect("reconcile succeeds"), Action::requeue(StdDuration::from_secs(15)));
}

#[tokio::test]
async fn an_api_server_error_on_create_starts_the_budget_and_is_retried() {
    let task = task(json!({"executionTimeout": "10m"}));
    let (result, _) = reconcile_against(task, vec![], t(0), |mut api| async move {
        let error = api_status(500, "InternalError", "etcdserver: request timed out");
        api.expect(Method::POST, PODS).await.respond(500, &error);
        // The first attempt to launch starts the budget: persisted, so no retry or restart extends it.
        let put = api.expect(Method::PUT, STATUS).await;
        let status = written_status(&put.body);
        assert_eq!((status.phase, status.reason, status.attempt), (Phase::Pending, None, 0));
        assert_eq!(status.start_time.map(|t| t.0), Some(t(0)));
        assert_eq!(status.deadline.map(|t| t.0), Some(t(600)));
        put.echo();
        api // `done` fails on a second create
    })
    .await;
    assert_eq!(result.expect("reconcile succeeds"), Action::requeue(StdDuration::from_secs(15)));
}

// ---- the harness ----

/// Reconcile `task` once at `now`, with `cache` in the pod cache, against the API server `script` plays.
/// Returns the reconcile's result and the reasons of the Events it recorded.
async fn reconcile_against<S, F>(
    task: PodTask,
    cache: Vec<Pod>,
    now: Timestamp,
    script: S,
) -> (Result<Action, Error>, Vec<String>)
where
    S: FnOnce(ApiServer) -> F,
    F: Future<Output = ApiServer> + Send + 'static,
{
    let (result, events, _) = reconcile_after(Memory::default(), task, cache, now, script).await;
    (result, events)
}

/// What podtask remembers of its own recent requests, going into a reconcile.
#[derive(Default)]
struct Memory {
    own_writes: OwnWrites,
    deleted: Deleted,
    just_created: JustCreated,
}

/// What a reconcile left in podtask's memory about attempt 1's pod.
struct Remembered {
    delete: bool,
    create: Option<Arc<crate::operator::cached_pod::CachedPod>>,
}

/// As `reconcile_against`, with podtask's earlier requests in `memory`; also says what the reconcile remembers of
/// the pod of attempt 1.
async fn reconcile_after<S, F>(
    memory: Memory,
    task: PodTask,
    cache: Vec<Pod>,
    now: Timestamp,
    script: S,
) -> (Result<Action, Error>, Vec<String>, Remembered)
where
    S: FnOnce(ApiServer) -> F,
    F: Future<Output = ApiServer> + Send + 'static,
{
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let api_client = client.clone();
    let pods = Arc::new(crate::operator::pod_cache::PodCache::default());
    for pod in cache {
        pods.apply(&watcher::Event::Apply(crate::operator::cached_pod::watched(&pod)), now);
    }
    let ctx = Arc::new(Context {
        events: Publisher::start(client.clone(), "test".into(), Default::default()),
        client,
        pods,
        config: engine::Config::default(),
        metrics: Arc::new(Metrics::default()),
        clock: Arc::new(move || now),
        failures: Default::default(),
        own_writes: memory.own_writes,
        deleted: memory.deleted,
        just_created: memory.just_created,
        wakeups: Default::default(),
        permits: Arc::new(crate::operator::permits::Permits::new(1)),
        api: crate::operator::api_health::ApiHealth::new(api_client),
    });
    let stored_task = serde_json::to_value(&task).expect("task JSON");
    let script = script(ApiServer { handle, events: vec![], task: stored_task, task_reads: 0 });
    let server = tokio::spawn(async move { script.await.done().await });
    // A guard against a script and a reconcile waiting on each other, not a timing claim.
    let result =
        tokio::time::timeout(StdDuration::from_secs(10), reconcile(Arc::new(DeserializeGuard(Ok(task))), ctx.clone()))
            .await
            .expect("the reconcile finished");
    // The wakeup the reconcile set is the requeue it asks for (held by podtask's wakeups, not kube-runtime's queue).
    let wakeup = ctx.wakeups.of("ns/job");
    let result = result.map(|action| match wakeup {
        Some(at) if action == Action::await_change() => {
            Action::requeue(StdDuration::try_from(at.duration_since(now)).unwrap_or_default())
        }
        _ => action,
    });
    let remembered =
        Remembered { delete: ctx.deleted.recently("pod-uid-1"), create: ctx.just_created.get(&format!("ns/{POD}")) };
    drop(ctx);
    // The reconcile dropped the client, so the server sees the end; its assertions fail the test first.
    let events = server.await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    (result, events, remembered)
}

/// The API server's side of the mock client.
struct ApiServer {
    handle: Handle<Request<Body>, Response<Body>>,
    /// Reasons of the Events recorded so far.
    events: Vec<String>,
    /// The task as the API server has it: the answer to a GET of the task (podtask reads it before a launch).
    task: Value,
    task_reads: usize,
}

/// One request the script expected, with its JSON body.
struct Call {
    body: Value,
    reply: SendResponse<Response<Body>>,
}

impl ApiServer {
    /// The next request must be `method path`.
    async fn expect(&mut self, method: Method, path: &str) -> Call {
        match self.next().await {
            Some((m, p, body, reply)) => {
                assert_eq!((&m, p.as_str()), (&method, path), "unexpected request; body: {body}");
                Call { body, reply }
            }
            None => panic!("the reconcile ended without {method} {path}"),
        }
    }

    /// The script is over: any further request but an Event fails the test. Returns the Events' reasons.
    async fn done(mut self) -> Vec<String> {
        if let Some((method, path, body, _)) = self.next().await {
            panic!("unexpected request {method} {path}: {body}");
        }
        self.events
    }

    /// Any request at all, Events included, fails the test.
    async fn silent(mut self) -> Self {
        if let Some((request, _)) = self.handle.next_request().await {
            panic!("expected no request, got {} {}", request.method(), request.uri());
        }
        self
    }

    /// The next request that is not an Event; Events are answered on the way, as the API server would.
    async fn next(&mut self) -> Option<(Method, String, Value, SendResponse<Response<Body>>)> {
        loop {
            let (request, reply) = self.handle.next_request().await?;
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.expect("request body");
            let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("JSON body") };
            let path = parts.uri.path().to_owned();
            if parts.method == Method::GET && path == TASK {
                self.task_reads += 1;
                let task = self.task.clone();
                respond(reply, 200, &task);
                continue;
            }
            if path == EVENTS || path.starts_with(&format!("{EVENTS}/")) {
                if let Some(reason) = body["reason"].as_str() {
                    self.events.push(reason.to_owned());
                }
                respond(reply, 201, &body);
                continue;
            }
            return Some((parts.method, path, body, reply));
        }
    }
}

impl Call {
    fn respond(self, code: u16, body: &Value) {
        respond(self.reply, code, body);
    }

    /// Accept a write: answer with what was sent, as stored.
    fn echo(self) {
        let mut stored = self.body.clone();
        stored["metadata"]["resourceVersion"] = json!("2");
        respond(self.reply, 200, &stored);
    }
}

fn respond(reply: SendResponse<Response<Body>>, code: u16, body: &Value) {
    let bytes = serde_json::to_vec(body).expect("response serializes");
    let response = Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(bytes))
        .expect("valid response");
    reply.send_response(response);
}

// ---- objects ----

/// `task` with the status the core reports for `pods` at `now`: what an earlier reconcile wrote.
fn reported(task: PodTask, pods: &[Pod], now: Timestamp) -> PodTask {
    let status = cached(&task, pods, now).status;
    assert_ne!(status, PodTaskStatus::default(), "the earlier reconcile reported something");
    with_status(task, status)
}

/// The status a PUT to the status subresource carries.
fn written_status(body: &Value) -> PodTaskStatus {
    let task: PodTask = serde_json::from_value(body.clone()).expect("a PodTask");
    task.status.expect("a status")
}

fn to_json(pod: &Pod) -> Value {
    serde_json::to_value(pod).expect("pod serializes")
}

/// `object` as the API server stores it on create.
fn stored(mut object: Value, uid: &str) -> Value {
    let meta = &mut object["metadata"];
    meta["uid"] = json!(uid);
    meta["resourceVersion"] = json!("1");
    meta["creationTimestamp"] = json!("2026-01-01T10:00:00Z");
    object
}

/// `pod` as the API server answers a graceful delete.
fn deleting(pod: &Pod) -> Value {
    let mut object = to_json(pod);
    object["metadata"]["deletionTimestamp"] = json!("2026-01-01T10:10:35Z");
    object["metadata"]["deletionGracePeriodSeconds"] = json!(30);
    object
}

fn already_exists() -> Value {
    api_status(409, "AlreadyExists", &format!("pods \"{POD}\" already exists"))
}

fn api_status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code})
}
