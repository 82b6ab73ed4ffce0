//! Pods that have trouble starting: image pulls (rate-limited, never recovering, invalid names), a missing
//! Secret, and a pod no node can take.

use std::{collections::BTreeSet, time::Duration};

use podtask::crd::Phase;
use serde_json::json;

use crate::harness::*;

/// A rate-limited pull that recovers within the startup timeout: the task shows ImagePullRateLimited while
/// waiting, then succeeds on its first attempt.
#[tokio::test]
async fn rate_limited_pull_that_recovers_succeeds_in_one_attempt() {
    let env = Env::start("rate_limited_pull_that_recovers_succeeds_in_one_attempt").await;
    env.create(
        "pull",
        json!({"template": template("pull-rate-limited", &[("pull-for", "3s"), ("run-for", "1s")]), "startupTimeout": "12s"}),
    )
    .await;
    let api = env.tasks();
    let mut reasons = BTreeSet::new();
    let mut messages = vec![];
    let task = wait_for("the task to finish (recording reasons)", Duration::from_secs(30), async || {
        let t = api.get("pull").await.ok()?;
        if phase(&t) == Phase::Starting {
            reasons.insert(reason(&t));
            messages.push(message(&t));
        }
        phase(&t).is_terminal().then_some(t)
    })
    .await;
    assert!(reasons.contains("ImagePullRateLimited"), "reasons seen while starting: {reasons:?}");
    let rate_limited = messages.iter().find(|m| m.contains("toomanyrequests")).cloned();
    assert!(rate_limited.is_some(), "the registry's words reach the message: {messages:?}");
    assert_eq!(phase(&task), Phase::Succeeded, "{}", yaml(&task));
    assert_eq!(history(&task), [(1, "Completed".to_owned())], "one attempt");
    let events = env.event_reasons("pull").await;
    assert!(events.iter().any(|r| r == "ImagePullRateLimited"), "{events:?}");
}

/// Pulls that never recover: each attempt ends ImagePullTimeout with its pod deleted, attempts are spaced by the
/// backoff (nextAttemptTime shown while backing off), and the task fails naming the attempts. A rate-limited pull
/// waits at least the operator's minimum rate-limit backoff before its retry.
#[tokio::test]
async fn pull_that_never_recovers_times_out_each_attempt_with_backoff() {
    let env = Env::start_with(
        "pull_that_never_recovers_times_out_each_attempt_with_backoff",
        OperatorOpts { min_rate_limit_backoff: "4s", ..OperatorOpts::default() },
    )
    .await;
    // Not found (no rate-limit wording): ordinary backoff 1s, 2s.
    env.create(
        "missing",
        json!({
            "template": template("pull-backoff-never", &[]),
            "startupTimeout": "3s",
            "retry": {"limit": 2, "backoff": {"initial": "1s", "factor": 2}}
        }),
    )
    .await;
    // Rate-limited: the retry waits at least 4s although the policy says 1s.
    env.create(
        "throttled",
        json!({
            "template": template("pull-never", &[]),
            "startupTimeout": "3s",
            "retry": {"limit": 1, "backoff": {"initial": "1s"}}
        }),
    )
    .await;

    let api = env.tasks();
    let mut backing_off = vec![];
    let task = wait_for("missing to finish (recording backoff)", Duration::from_secs(45), async || {
        let t = api.get("missing").await.ok()?;
        let s = status(&t);
        if s.phase == Phase::Pending && s.next_attempt_time.is_some() {
            backing_off.push((s.attempt, reason(&t), s.next_attempt_time.map(|n| n.0)));
        }
        phase(&t).is_terminal().then_some(t)
    })
    .await;
    assert_eq!((phase(&task), reason(&task).as_str()), (Phase::Failed, "ImagePullTimeout"), "{}", yaml(&task));
    let timeout = || "ImagePullTimeout".to_owned();
    assert_eq!(history(&task), [(1, timeout()), (2, timeout()), (3, timeout())]);
    assert!(message(&task).contains("after 3 attempts"), "{}", message(&task));
    assert_eq!(status(&task).next_attempt_time, None);
    let attempts_backing_off: BTreeSet<u32> = backing_off.iter().map(|(a, _, _)| *a).collect();
    assert_eq!(attempts_backing_off, BTreeSet::from([1, 2]), "nextAttemptTime while backing off: {backing_off:?}");
    assert!(backing_off.iter().all(|(_, r, _)| r == "BackingOff"), "{backing_off:?}");

    // Each retry starts no earlier than the end of the previous attempt plus its backoff (1s, then 2s).
    let s = status(&task);
    for (i, want) in [(1usize, 1i64), (2, 2)] {
        let ended = s.attempts[i - 1].end_time.clone().expect("endTime").0;
        let next = s.attempts[i].start_time.clone().expect("startTime").0;
        let gap = next.duration_since(ended).as_secs();
        assert!(gap >= want, "attempt {} started {gap}s after attempt {i} ended; backoff is {want}s", i + 1);
    }

    env.wait_no_pods("missing", Duration::from_secs(10)).await;
    let seen = env.pods_seen("missing");
    let attempts: Vec<Option<u32>> = seen.iter().map(|p| p.attempt).collect();
    assert_eq!(attempts, [Some(1), Some(2), Some(3)], "one pod per attempt: {seen:?}");
    for pair in seen.windows(2) {
        let deleted = pair[0].deletion_seen.expect("timed-out pod deleted");
        assert!(deleted <= pair[1].first_seen, "attempt {:?}'s pod deleted before the next pod", pair[0].attempt);
    }

    let throttled = env.wait_finished("throttled", Duration::from_secs(30)).await;
    assert_eq!((phase(&throttled), reason(&throttled).as_str()), (Phase::Failed, "ImagePullTimeout"));
    let s = status(&throttled);
    assert_eq!(s.attempts.len(), 2, "{}", yaml(&throttled));
    let ended = s.attempts[0].end_time.clone().expect("endTime").0;
    let next = s.attempts[1].start_time.clone().expect("startTime").0;
    let gap = next.duration_since(ended).as_secs();
    assert!(gap >= 4, "a rate-limited attempt's retry waited {gap}s, less than the 4s minimum");
    assert!(message(&throttled).contains("after 2 attempts"), "{}", message(&throttled));
}

/// InvalidImageName is permanent: the task fails at once, without a retry even though the policy allows some,
/// and the pod is deleted.
#[tokio::test]
async fn invalid_image_fails_at_once_without_retry() {
    let env = Env::start("invalid_image_fails_at_once_without_retry").await;
    env.create(
        "bad-image",
        json!({"template": template("invalid-image", &[]), "startupTimeout": "20s", "retry": {"limit": 3}}),
    )
    .await;
    let task = env.wait_finished("bad-image", Duration::from_secs(10)).await;
    assert_eq!((phase(&task), reason(&task).as_str()), (Phase::Failed, "InvalidImageName"), "{}", yaml(&task));
    assert_eq!(history(&task), [(1, "InvalidImageName".to_owned())]);
    assert!(message(&task).contains("invalid reference format"), "{}", message(&task));
    env.wait_no_pods("bad-image", Duration::from_secs(10)).await;
    holds_for("no second attempt", Duration::from_secs(2), async || env.pods_of("bad-image").await.is_empty()).await;
    assert_eq!(env.pods_seen("bad-image").len(), 1);
}

/// CreateContainerConfigError (a missing Secret) fails the task after the operator's grace (3s here), with the
/// kubelet's message.
#[tokio::test]
async fn config_error_fails_after_the_grace_with_the_kubelet_message() {
    let env = Env::start("config_error_fails_after_the_grace_with_the_kubelet_message").await;
    env.create("no-secret", json!({"template": template("config-error", &[]), "startupTimeout": "20s"})).await;
    let api = env.tasks();
    let mut waiting_reasons = BTreeSet::new();
    let task = wait_for("no-secret to finish", Duration::from_secs(20), async || {
        let t = api.get("no-secret").await.ok()?;
        if phase(&t) == Phase::Starting {
            waiting_reasons.insert(reason(&t));
        }
        phase(&t).is_terminal().then_some(t)
    })
    .await;
    assert_eq!(
        (phase(&task), reason(&task).as_str()),
        (Phase::Failed, "CreateContainerConfigError"),
        "{}",
        yaml(&task)
    );
    assert!(message(&task).contains("secret \"missing\" not found"), "{}", message(&task));
    assert!(waiting_reasons.contains("CreateContainerConfigError"), "shown while waiting: {waiting_reasons:?}");
    let s = status(&task);
    assert_eq!(s.attempts.len(), 1, "not retried");
    let created = s.attempts[0].start_time.clone().expect("pod creation").0;
    let done = s.completion_time.expect("completionTime").0;
    let waited = done.duration_since(created).as_secs();
    assert!((3..10).contains(&waited), "failed {waited}s after the pod was created; the grace is 3s");
    env.wait_no_pods("no-secret", Duration::from_secs(10)).await;
}

/// A nodeSelector no node matches: the task shows Unschedulable with the scheduler's message while waiting, then
/// the attempt ends Unschedulable at the startup timeout (no retry with limit 0).
#[tokio::test]
async fn unschedulable_pod_fails_after_the_startup_timeout() {
    let env = Env::start("unschedulable_pod_fails_after_the_startup_timeout").await;
    let mut tpl = template("succeed", &[]);
    tpl["spec"]["nodeSelector"] = json!({"podtask.dev/e2e": "nowhere"});
    env.create("nowhere", json!({"template": tpl, "startupTimeout": "5s", "retry": {"limit": 0}})).await;
    let waiting = env
        .wait_task("nowhere", "Starting/Unschedulable", Duration::from_secs(10), |t| reason(t) == "Unschedulable")
        .await;
    assert_eq!(phase(&waiting), Phase::Starting);
    assert!(message(&waiting).contains("didn't match Pod's node affinity/selector"), "{}", message(&waiting));
    assert!(status(&waiting).startup_deadline.is_some());

    let task = env.wait_finished("nowhere", Duration::from_secs(20)).await;
    assert_eq!((phase(&task), reason(&task).as_str()), (Phase::Failed, "Unschedulable"), "{}", yaml(&task));
    assert_eq!(history(&task), [(1, "Unschedulable".to_owned())]);
    assert!(message(&task).contains("startup timeout 5s"), "{}", message(&task));
    assert!(message(&task).contains("didn't match Pod's node affinity/selector"), "{}", message(&task));
    let s = status(&task);
    let waited =
        s.completion_time.expect("completionTime").0.duration_since(s.attempts[0].start_time.clone().expect("start").0);
    assert!(waited.as_secs() >= 5, "ended after {waited:?}, before the 5s startup timeout");
    env.wait_no_pods("nowhere", Duration::from_secs(10)).await;
}
