//! spec.podFailurePolicy on the real API server with kwok pods: each action, by exit code and by a disruption
//! condition; the matched rule is named in status and in the Event.

use std::time::Duration;

use podtask::crd::Phase;
use serde_json::{Value, json};

use crate::harness::*;

const T: Duration = Duration::from_secs(40);

fn rules() -> Value {
    json!({"rules": [
        {"action": "Fail", "onExitCodes": {"operator": "In", "values": [2]}},
        {"action": "Retry", "onExitCodes": {"operator": "In", "values": [75]}},
        {"action": "Succeed", "onExitCodes": {"containerName": "main", "operator": "In", "values": [99]}},
        {"action": "RetryWithoutCounting", "onPodConditions": [{"type": "DisruptionTarget"}]},
    ]})
}

/// PodFailed would be retried three times by spec.retry; the rules decide first.
fn spec(scenario: &str, exit_code: &str) -> Value {
    json!({
        "template": template(scenario, &[("run-for", "1s"), ("exit-code", exit_code)]),
        "retry": {"limit": 1, "reasons": ["PodFailed"], "backoff": {"initial": "1s"}},
        "podFailurePolicy": rules(),
    })
}

fn matched_rules(t: &podtask::crd::PodTask) -> Vec<String> {
    status(t).attempts.iter().map(|a| a.matched_rule.clone().unwrap_or_default()).collect()
}

#[tokio::test]
async fn exit_codes_fail_retry_or_succeed_by_rule() {
    let env = Env::start("exit_codes_fail_retry_or_succeed_by_rule").await;
    env.create("bad-input", spec("fail", "2")).await;
    env.create("try-again", spec("fail", "75")).await;
    env.create("nothing-to-do", spec("fail", "99")).await;
    env.create("no-rule", spec("fail", "3")).await;

    let bad = env.wait_finished("bad-input", T).await;
    assert_eq!((phase(&bad), reason(&bad).as_str()), (Phase::Failed, "PodFailed"), "{}", yaml(&bad));
    assert_eq!(history(&bad).len(), 1, "Fail: no retry although spec.retry would have retried");
    assert!(matched_rules(&bad)[0].starts_with("rules[0]: exit code 2 In [2] -> Fail"), "{:?}", matched_rules(&bad));

    let again = env.wait_finished("try-again", T).await;
    assert_eq!(phase(&again), Phase::Failed, "{}", yaml(&again));
    assert_eq!(history(&again).len(), 2, "Retry counts against retry.limit 1");
    assert!(matched_rules(&again).iter().all(|r| r.starts_with("rules[1]")), "{:?}", matched_rules(&again));

    let skip = env.wait_finished("nothing-to-do", T).await;
    assert_eq!((phase(&skip), reason(&skip).as_str()), (Phase::Succeeded, "Completed"), "{}", yaml(&skip));
    assert_eq!(status(&skip).exit_code, Some(99));
    assert_eq!(condition(&skip, "Complete").as_deref(), Some("True"), "kubectl wait --for=condition=Complete works");
    assert!(matched_rules(&skip)[0].contains("-> Succeed"));

    let plain = env.wait_finished("no-rule", T).await;
    assert_eq!(history(&plain).len(), 2, "no rule matched: spec.retry decides (PodFailed listed, limit 1)");
    assert!(matched_rules(&plain).iter().all(String::is_empty));

    let events = env.events_of("bad-input").await;
    let notes: Vec<String> = events.iter().filter_map(|e| e.note.clone()).collect();
    assert!(notes.iter().any(|n| n.contains("rules[0]")), "the Event names the rule: {notes:?}");
}

/// A pod disrupted (here: evicted, with the DisruptionTarget condition) is retried without counting: with
/// retry.limit 0, attempt 2 still starts.
#[tokio::test]
async fn a_disrupted_pod_is_retried_without_counting() {
    let env = Env::start("a_disrupted_pod_is_retried_without_counting").await;
    let mut s = spec("evict", "137");
    s["retry"] = json!({"limit": 0, "backoff": {"initial": "1s"}});
    env.create("drained", s).await;
    let task = env.wait_task("drained", "attempt 2 under way", T, |t| status(t).attempt >= 2).await;
    let st = status(&task);
    assert!(st.uncounted_attempts >= 1, "{}", yaml(&task));
    assert!(st.attempts[0].matched_rule.as_deref().unwrap_or("").contains("condition DisruptionTarget=True"));
    assert_eq!(st.attempts[0].reason.to_string(), "Evicted");
}

/// examples/exit-codes.yaml (applied by hack/demo.sh) reaches the outcome its comments promise.
#[tokio::test]
async fn the_exit_codes_example_keeps_its_promise() {
    let env = Env::start("the_exit_codes_example_keeps_its_promise").await;
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/exit-codes.yaml")).expect("read");
    let example: podtask::crd::PodTask = serde_norway::from_str(&text).expect("a PodTask");
    env.create("nothing-to-do", serde_json::to_value(&example.spec).expect("json")).await;
    let task = env.wait_finished("nothing-to-do", T).await;
    assert_eq!((phase(&task), reason(&task).as_str()), (Phase::Succeeded, "Completed"), "{}", yaml(&task));
    assert_eq!(status(&task).exit_code, Some(99));
    assert_eq!(history(&task).len(), 1);
    assert!(matched_rules(&task)[0].starts_with("rules[2]"), "{:?}", matched_rules(&task));
}
