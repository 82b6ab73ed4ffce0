//! `spec.podFailurePolicy`: which rule, if any, matches a failed pod, by its exit codes or its conditions.

use k8s_openapi::api::core::v1::Pod;

use crate::crd::{ExitCodeOperator, OnExitCodes, OnPodCondition, PodFailurePolicy, PodFailurePolicyAction};

/// At most this many attempts are retried by RetryWithoutCounting rules: a hard cap, whatever the rules say.
pub const MAX_UNCOUNTED_RETRIES: u32 = 100;

/// The first rule that matched a failed pod.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleMatch {
    pub action: PodFailurePolicyAction,
    /// For status and Events: `rules[1]: exit code 75 In [75] -> RetryWithoutCounting`.
    pub description: String,
}

/// The first rule of `policy` that matches the failed `pod`.
pub fn first_match(policy: Option<&PodFailurePolicy>, pod: &Pod) -> Option<RuleMatch> {
    let rules = &policy?.rules;
    rules.iter().enumerate().find_map(|(i, rule)| {
        let matched = match (&rule.on_exit_codes, &rule.on_pod_conditions) {
            (Some(codes), _) => {
                exit_code_matches(codes, pod).map(|code| format!("exit code {code} {}", describe(codes)))
            }
            (None, Some(conditions)) => condition_matches(conditions, pod).map(|c| format!("condition {c}")),
            (None, None) => None,
        }?;
        Some(RuleMatch { action: rule.action, description: format!("rules[{i}]: {matched} -> {}", rule.action) })
    })
}

/// The non-zero exit code (of the named container, or of any) that satisfies the requirement.
fn exit_code_matches(req: &OnExitCodes, pod: &Pod) -> Option<i32> {
    let status = pod.status.as_ref()?;
    let containers = status.init_container_statuses.iter().flatten().chain(status.container_statuses.iter().flatten());
    containers
        .filter(|c| req.container_name.as_ref().is_none_or(|name| *name == c.name))
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref().map(|t| t.exit_code))
        .filter(|code| *code != 0)
        .find(|code| match req.operator {
            ExitCodeOperator::In => req.values.contains(code),
            ExitCodeOperator::NotIn => !req.values.contains(code),
        })
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
            let got = first_match(Some(&policy(rules)), &failed(json!(containers), conditions));
            assert_eq!(got.as_ref().map(|m| m.action), want, "case {i}: {got:?}");
        }
    }

    #[test]
    fn the_match_names_the_rule() {
        let p = policy(json!([{"action": "Fail", "onExitCodes": {"operator": "In", "values": [2]}},
            {"action": "RetryWithoutCounting", "onExitCodes": {"operator": "In", "values": [75, 76]}}]));
        let m = first_match(Some(&p), &failed(json!([exited("main", 75)]), json!([]))).expect("a match");
        assert_eq!(m.description, "rules[1]: exit code 75 In [75, 76] -> RetryWithoutCounting");
        assert_eq!(first_match(None, &failed(json!([exited("main", 75)]), json!([]))), None);
    }
}
