//! `spec.podFailurePolicy`: which rule, if any, matches a failed pod, by its exit codes or its conditions.

use k8s_openapi::api::core::v1::Pod;

use super::classify::Deciding;
use crate::crd::{
    ExitCodeOperator, OnExitCodes, OnPodCondition, OnTerminationReasons, PodFailurePolicy, PodFailurePolicyAction,
};

/// At most this many attempts are retried by RetryWithoutCounting rules: a hard cap, whatever the rules say.
pub const MAX_UNCOUNTED_RETRIES: u32 = 100;

/// The first rule that matched a failed pod.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleMatch {
    pub action: PodFailurePolicyAction,
    /// For status and Events: `rules[1]: exit code 75 In [75] -> RetryWithoutCounting`.
    pub description: String,
}

/// The first rule of `policy` that matches the failed `pod`. Exit codes and termination reasons are those of its
/// init containers and its deciding containers (not of a sidecar that admission added).
pub fn first_match(policy: Option<&PodFailurePolicy>, pod: &Pod, deciding: Deciding<'_>) -> Option<RuleMatch> {
    let rules = &policy?.rules;
    rules.iter().enumerate().find_map(|(i, rule)| {
        let matched = if let Some(codes) = &rule.on_exit_codes {
            exit_code_matches(codes, pod, deciding).map(|code| format!("exit code {code} {}", describe(codes)))
        } else if let Some(conditions) = &rule.on_pod_conditions {
            condition_matches(conditions, pod).map(|c| format!("condition {c}"))
        } else if let Some(reasons) = &rule.on_termination_reasons {
            reason_matches(reasons, pod, deciding)
                .map(|(container, reason)| format!("container {container} terminated with {reason}"))
        } else {
            None
        }?;
        Some(RuleMatch { action: rule.action, description: format!("rules[{i}]: {matched} -> {}", rule.action) })
    })
}

/// The terminated containers a rule looks at, by name: init containers, then deciding containers.
fn ended<'p>(
    pod: &'p Pod,
    deciding: Deciding<'_>,
) -> impl Iterator<Item = (&'p str, &'p k8s_openapi::api::core::v1::ContainerStateTerminated)> {
    let status = pod.status.as_ref();
    let inits = status.and_then(|s| s.init_container_statuses.as_ref()).into_iter().flatten();
    let regular = status.and_then(|s| s.container_statuses.as_ref()).into_iter().flatten();
    inits
        .chain(regular.filter(move |c| deciding.includes(&c.name)))
        .filter_map(|c| Some((c.name.as_str(), c.state.as_ref()?.terminated.as_ref()?)))
}

/// The non-zero exit code (of the named container, or of any) that satisfies the requirement.
fn exit_code_matches(req: &OnExitCodes, pod: &Pod, deciding: Deciding<'_>) -> Option<i32> {
    ended(pod, deciding)
        .filter(|(name, _)| req.container_name.as_ref().is_none_or(|wanted| wanted == name))
        .map(|(_, t)| t.exit_code)
        .filter(|code| *code != 0)
        .find(|code| match req.operator {
            ExitCodeOperator::In => req.values.contains(code),
            ExitCodeOperator::NotIn => !req.values.contains(code),
        })
}

/// The container (the named one, or any) whose termination reason is one of the listed, with that reason.
fn reason_matches<'p>(req: &OnTerminationReasons, pod: &'p Pod, deciding: Deciding<'_>) -> Option<(&'p str, &'p str)> {
    ended(pod, deciding)
        .filter(|(name, _)| req.container_name.as_ref().is_none_or(|wanted| wanted == name))
        .find_map(|(name, t)| t.reason.as_deref().filter(|r| req.values.iter().any(|v| v == r)).map(|r| (name, r)))
}

fn describe(req: &OnExitCodes) -> String {
    let values: Vec<String> = req.values.iter().map(i32::to_string).collect();
    let op = match req.operator {
        ExitCodeOperator::In => "In",
        ExitCodeOperator::NotIn => "NotIn",
    };
    let container = req.container_name.as_ref().map(|c| format!(" (container {c})")).unwrap_or_default();
    format!("{op} [{}]{container}", values.join(", "))
}

/// The first listed condition the pod has, as `Type=Status`.
fn condition_matches(wanted: &[OnPodCondition], pod: &Pod) -> Option<String> {
    let have = pod.status.as_ref()?.conditions.as_deref().unwrap_or_default();
    wanted.iter().find_map(|w| {
        let status = w.status.unwrap_or_default().to_string();
        have.iter().any(|c| c.type_ == w.type_ && c.status == status).then(|| format!("{}={status}", w.type_))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(rules: serde_json::Value) -> PodFailurePolicy {
        serde_json::from_value(json!({ "rules": rules })).expect("a policy")
    }

    fn failed(containers: serde_json::Value, conditions: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "status": {"phase": "Failed",
            "containerStatuses": containers, "conditions": conditions}}))
        .expect("a pod")
    }

    fn exited(name: &str, code: i32) -> serde_json::Value {
        json!({"name": name, "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": code}}})
    }

    /// (rules, the pod's containers' exit codes, its DisruptionTarget condition, the action expected)
    type Row = (serde_json::Value, Vec<(&'static str, i32)>, bool, Option<PodFailurePolicyAction>);

    #[test]
    fn rule_table() {
        use PodFailurePolicyAction::*;
        let fail_on_2 = json!([{"action": "Fail", "onExitCodes": {"operator": "In", "values": [2]}}]);
        let cases: Vec<Row> = vec![
            (fail_on_2.clone(), vec![("main", 2)], false, Some(Fail)),
            (fail_on_2.clone(), vec![("main", 3)], false, None),
            (
                json!([{"action": "Retry", "onExitCodes": {"operator": "NotIn", "values": [1, 2]}}]),
                vec![("main", 75)],
                false,
                Some(Retry),
            ),
            (
                json!([{"action": "Retry", "onExitCodes": {"operator": "NotIn", "values": [1, 2]}}]),
                vec![("main", 2)],
                false,
                None,
            ),
            (
                json!([{"action": "Succeed", "onExitCodes": {"operator": "In", "values": [99]}}]),
                vec![("side", 0), ("main", 99)],
                false,
                Some(Succeed),
            ),
            // NotIn never matches a container that exited 0.
            (
                json!([{"action": "Fail", "onExitCodes": {"operator": "NotIn", "values": [3]}}]),
                vec![("side", 0), ("main", 3)],
                false,
                None,
            ),
            (
                json!([{"action": "Fail", "onExitCodes": {"containerName": "side", "operator": "In", "values": [2]}}]),
                vec![("main", 2)],
                false,
                None,
            ),
            (
                json!([{"action": "Fail", "onExitCodes": {"containerName": "main", "operator": "In", "values": [2]}}]),
                vec![("main", 2)],
                false,
                Some(Fail),
            ),
            (
                json!([{"action": "RetryWithoutCounting", "onPodConditions": [{"type": "DisruptionTarget"}]}]),
                vec![("main", 137)],
                true,
                Some(RetryWithoutCounting),
            ),
            (
                json!([{"action": "RetryWithoutCounting", "onPodConditions": [{"type": "DisruptionTarget"}]}]),
                vec![("main", 137)],
                false,
                None,
            ),
            (
                json!([{"action": "Fail", "onPodConditions": [{"type": "DisruptionTarget", "status": "False"}]}]),
                vec![("main", 1)],
                true,
                None,
            ),
            // First match wins.
            (
                json!([{"action": "Succeed", "onExitCodes": {"operator": "In", "values": [5]}},
                    {"action": "Fail", "onExitCodes": {"operator": "In", "values": [5]}}]),
                vec![("main", 5)],
                false,
                Some(Succeed),
            ),
        ];
        for (i, (rules, codes, disrupted, want)) in cases.into_iter().enumerate() {
            let containers: Vec<_> = codes.iter().map(|(n, c)| exited(n, *c)).collect();
            let conditions =
                if disrupted { json!([{"type": "DisruptionTarget", "status": "True"}]) } else { json!([]) };
            let got = first_match(Some(&policy(rules)), &failed(json!(containers), conditions), Deciding::default());
            assert_eq!(got.as_ref().map(|m| m.action), want, "case {i}: {got:?}");
        }
    }

    #[test]
    fn the_match_names_the_rule() {
        let p = policy(json!([{"action": "Fail", "onExitCodes": {"operator": "In", "values": [2]}},
            {"action": "RetryWithoutCounting", "onExitCodes": {"operator": "In", "values": [75, 76]}}]));
        let m = first_match(Some(&p), &failed(json!([exited("main", 75)]), json!([])), Deciding::default())
            .expect("a match");
        assert_eq!(m.description, "rules[1]: exit code 75 In [75, 76] -> RetryWithoutCounting");
        assert_eq!(first_match(None, &failed(json!([exited("main", 75)]), json!([])), Deciding::default()), None);
    }

    #[test]
    fn termination_reasons_and_deciding_containers() {
        let oom = |name: &str| {
            json!({"name": name, "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}})
        };
        let p = policy(json!([{"action": "Fail", "onTerminationReasons": {"values": ["OOMKilled"]}}]));
        let m = first_match(Some(&p), &failed(json!([oom("main")]), json!([])), Deciding::default()).expect("a match");
        assert_eq!(m.description, "rules[0]: container main terminated with OOMKilled -> Fail");
        let named = policy(
            json!([{"action": "Fail", "onTerminationReasons": {"containerName": "other", "values": ["OOMKilled"]}}]),
        );
        assert_eq!(first_match(Some(&named), &failed(json!([oom("main")]), json!([])), Deciding::default()), None);
        // A sidecar that admission added does not decide, neither by its reason nor by its exit code.
        let main_only = ["main".to_owned()];
        let sidecar_oom = failed(json!([exited("main", 0), oom("istio-proxy")]), json!([]));
        assert_eq!(first_match(Some(&p), &sidecar_oom, Deciding(&main_only)), None);
        let codes = policy(json!([{"action": "Fail", "onExitCodes": {"operator": "In", "values": [137]}}]));
        assert_eq!(first_match(Some(&codes), &sidecar_oom, Deciding(&main_only)), None);
        assert!(first_match(Some(&codes), &sidecar_oom, Deciding::default()).is_some(), "every container decides");
    }
}
