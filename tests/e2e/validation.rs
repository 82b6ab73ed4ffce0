//! Invalid PodTasks are refused by the API server when they are applied, with a message that says what to fix.

use std::{io::Write, process::Stdio, time::Duration};

use kube::{
    Api,
    api::{ApiResource, DynamicObject, PostParams},
};
use podtask::crd::{Phase, PodTask};
use serde_json::{Value, json};

use crate::harness::*;

fn valid_spec() -> Value {
    json!({
        "template": template("succeed", &[]),
        "executionTimeout": "10m",
        "startupTimeout": "1m",
        "retry": {"limit": 2, "backoff": {"initial": "1s", "factor": 2, "max": "1m"}, "reasons": ["PodLost"]},
        "cleanup": "Delete",
    })
}

fn object(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "podtask.dev/v1alpha1", "kind": "PodTask", "metadata": {"name": name}, "spec": spec
    }))
    .expect("a DynamicObject")
}

/// Create (dry run: the API server validates fully but stores nothing); the error message if refused.
async fn try_create(api: &Api<DynamicObject>, name: &str, spec: Value) -> Result<(), String> {
    let params = PostParams { dry_run: true, ..Default::default() };
    match api.create(&params, &object(name, spec)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) => Err(format!("{} {}: {}", s.code, s.reason, s.message)),
        Err(e) => panic!("create {name}: {e}"),
    }
}

/// Each case breaks one thing in a valid PodTask; the API server must refuse it with a message that names the
/// field and says what is expected.
#[tokio::test]
async fn invalid_manifests_are_rejected_at_apply_time() {
    let env = Env::start("invalid_manifests_are_rejected_at_apply_time").await;
    let api: Api<DynamicObject> =
        Api::namespaced_with(env.client.clone(), &env.ns, &ApiResource::erase::<PodTask>(&()));
    try_create(&api, "valid", valid_spec()).await.expect("the unbroken PodTask is accepted");

    type Breaker = fn(&mut Value);
    let cases: &[(&str, Breaker, &[&str])] = &[
        (
            "bad-duration",
            |s| s["executionTimeout"] = json!("5 minutes"),
            &["spec.executionTimeout", "must be a duration such as 90s"],
        ),
        ("zero-duration", |s| s["startupTimeout"] = json!("0s"), &["spec.startupTimeout", "longer than zero"]),
        (
            "decimal-duration",
            |s| s["retry"]["backoff"]["initial"] = json!("1.5s"),
            &["spec.retry.backoff.initial", "no decimals"],
        ),
        ("negative-limit", |s| s["retry"]["limit"] = json!(-1), &["spec.retry.limit", "greater than or equal to 0"]),
        ("huge-limit", |s| s["retry"]["limit"] = json!(101), &["spec.retry.limit", "less than or equal to 100"]),
        (
            "restart-always",
            |s| s["template"]["spec"]["restartPolicy"] = json!("Always"),
            &["spec.template.spec.restartPolicy", "Unsupported value: \"Always\"", "supported values: \"Never\""],
        ),
        (
            "no-containers",
            |s| s["template"]["spec"]["containers"] = json!([]),
            &["spec.template.spec.containers", "should have at least 1 items"],
        ),
        (
            "no-pod-spec",
            |s| _ = s["template"].as_object_mut().map(|t| t.remove("spec")),
            &["spec.template.spec", "Required value"],
        ),
        ("no-template", |s| _ = s.as_object_mut().map(|t| t.remove("template")), &["spec.template", "Required"]),
        (
            "bad-cleanup",
            |s| s["cleanup"] = json!("Sometimes"),
            &["spec.cleanup", "Unsupported value: \"Sometimes\"", "\"DeleteSucceeded\""],
        ),
        (
            "bad-deadline",
            |s| s["deadline"] = json!("tomorrow at noon"),
            &["spec.deadline", "must be an RFC 3339 time such as"],
        ),
        (
            "bad-retry-reason",
            |s| s["retry"]["reasons"] = json!(["Timeout"]),
            &["spec.retry.reasons[0]", "Unsupported value: \"Timeout\"", "\"ImagePullTimeout\""],
        ),
        (
            "zero-factor",
            |s| s["retry"]["backoff"]["factor"] = json!(0),
            &["spec.retry.backoff.factor", "greater than or equal to 1"],
        ),
        ("bad-ttl", |s| s["ttlAfterFinished"] = json!("1 hour"), &["spec.ttlAfterFinished", "must be a duration"]),
        (
            "rule-with-both",
            |s| {
                s["podFailurePolicy"] = json!({"rules": [{"action": "Fail",
                    "onExitCodes": {"operator": "In", "values": [2]}, "onPodConditions": [{"type": "DisruptionTarget"}]}]})
            },
            &[
                "spec.podFailurePolicy.rules[0]",
                "set exactly one of onExitCodes, onPodConditions or onTerminationReasons",
            ],
        ),
        (
            "rule-in-zero",
            |s| {
                s["podFailurePolicy"] =
                    json!({"rules": [{"action": "Fail", "onExitCodes": {"operator": "In", "values": [0, 2]}}]})
            },
            &["spec.podFailurePolicy.rules[0].onExitCodes", "exit code 0 means the pod succeeded"],
        ),
        (
            "rule-bad-action",
            |s| {
                s["podFailurePolicy"] =
                    json!({"rules": [{"action": "Ignore", "onExitCodes": {"operator": "In", "values": [2]}}]})
            },
            &["spec.podFailurePolicy.rules[0].action", "Unsupported value: \"Ignore\"", "\"RetryWithoutCounting\""],
        ),
    ];
    let mut failures = vec![];
    for (name, breaks, wanted) in cases {
        let mut spec = valid_spec();
        breaks(&mut spec);
        match try_create(&api, name, spec).await {
            Ok(()) => failures.push(format!("{name}: accepted")),
            Err(msg) => {
                println!("{name}: {msg}");
                let missing: Vec<&&str> = wanted.iter().filter(|w| !msg.contains(**w)).collect();
                if !msg.starts_with("422") || !missing.is_empty() {
                    failures.push(format!("{name}: message lacks {missing:?}: {msg}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} cases wrong:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

/// A misspelt field is refused by `kubectl apply` (strict field validation) rather than silently dropped.
#[tokio::test]
async fn kubectl_apply_refuses_unknown_fields() {
    let env = Env::start("kubectl_apply_refuses_unknown_fields").await;
    let mut spec = valid_spec();
    spec["executionTimout"] = json!("5m");
    let manifest = serde_json::to_string(&object("typo", spec)).expect("json");
    let mut apply = std::process::Command::new("kubectl")
        .args(["apply", "--dry-run=server", "-n", &env.ns, "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl");
    apply.stdin.take().expect("stdin").write_all(manifest.as_bytes()).expect("write");
    let out = apply.wait_with_output().expect("kubectl apply");
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("kubectl apply with a typo: {stderr}");
    assert!(!out.status.success(), "a misspelt field was accepted");
    assert!(stderr.contains("unknown field \"spec.executionTimout\""), "{stderr}");
}

/// Once the task started, its spec cannot change (that would change what runs); the refusal says to delete and
/// recreate. Metadata (labels) can still change.
#[tokio::test]
async fn spec_is_immutable_once_the_task_started() {
    let env = Env::start("spec_is_immutable_once_the_task_started").await;
    env.create("fixed", json!({"template": template("run-forever", &[]), "executionTimeout": "1m"})).await;
    let started = env
        .wait_task("fixed", "started", Duration::from_secs(20), |t| {
            status(t).start_time.is_some() && phase(t) == Phase::Running
        })
        .await;

    let mut changed = started.clone();
    changed.spec.execution_timeout = Some("2m".parse().expect("duration"));
    let err = env.tasks().replace("fixed", &PostParams::default(), &changed).await.expect_err("spec change refused");
    let msg = match err {
        kube::Error::Api(s) => format!("{} {}", s.code, s.message),
        other => panic!("unexpected error: {other}"),
    };
    println!("spec change: {msg}");
    assert!(msg.starts_with("422"), "{msg}");
    assert!(msg.contains("spec cannot change once the PodTask exists"), "{msg}");
    assert!(msg.contains("delete the PodTask and create it again"), "{msg}");

    // Labels are not the spec: still editable (e.g. by GitOps tools).
    let mut labelled = env.task("fixed").await;
    labelled.metadata.labels.get_or_insert_default().insert("team".into(), "data".into());
    env.tasks().replace("fixed", &PostParams::default(), &labelled).await.expect("a label change is accepted");
}

/// The installed CRD and its admission policy can be applied again by another manager (Helm, Argo CD, a person
/// with `kubectl apply --server-side`) without a conflict: what `podtask crd` prints is what the API server stores.
#[tokio::test]
async fn the_crd_applies_again_under_another_manager() {
    let _env = Env::start("the_crd_applies_again_under_another_manager").await;
    let out = apply_crd(&["--field-manager=podtask-e2e-second"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "a second manager's apply of the same CRD conflicted: {stderr}");
}
