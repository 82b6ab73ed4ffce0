//! Checks before `podtask run` starts reconciling, so the common faults (wrong kubeconfig, CRD missing, RBAC)
//! stop it at once with a message that says what to do, instead of a crash loop of watch errors.

use k8s_openapi::api::authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec};
use kube::{
    Api, Client,
    api::{ListParams, PostParams},
};

use super::error::StartupError;
use crate::{
    crd::PodTask,
    rbac::{self, Rule},
};

/// Reachability and CRD presence, for each scope (None = cluster-wide).
pub async fn check_api(client: &Client, scopes: &[Option<String>], server: &str) -> Result<(), StartupError> {
    let unreachable = |why: String| StartupError::Unreachable(format!("{server}: {why}"));
    match tokio::time::timeout(FIRST_ANSWER, client.apiserver_version()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(unreachable(e.to_string())),
        Err(_) => return Err(unreachable(format!("no answer within {FIRST_ANSWER:?}"))),
    }
    for scope in scopes {
        let api: Api<PodTask> = match scope {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        // A CRD applied a moment ago takes a second or two to be served: look a few times before giving up.
        let mut missing_checks = 0;
        loop {
            match api.list_metadata(&ListParams::default().limit(1)).await {
                Err(kube::Error::Api(s)) if s.code == 404 && missing_checks < CRD_CHECKS => {
                    missing_checks += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
                result => break check_list(result)?,
            }
        }
    }
    Ok(())
}

/// Wait until the API server serves the PodTask CRD (condition Established), for `podtask crd wait`: the one way
/// podtask's scripts and tests wait for a CRD they just applied (right after an apply the CRD has no conditions
/// yet, so `kubectl wait` would fail at once).
pub async fn wait_crd_established(timeout: std::time::Duration) -> Result<(), String> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let client = Client::try_default().await.map_err(|e| format!("cannot load a Kubernetes configuration: {e}"))?;
    let api: Api<CustomResourceDefinition> = Api::all(client);
    let name = "podtasks.podtask.dev";
    let start = std::time::Instant::now();
    loop {
        let crd = api.get_opt(name).await.map_err(|e| format!("cannot read CRD {name}: {e}"))?;
        let conditions = crd.and_then(|c| c.status).and_then(|s| s.conditions).unwrap_or_default();
        if conditions.iter().any(|c| c.type_ == "Established" && c.status == "True") {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(format!("CRD {name} not Established after {timeout:?}"));
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// How long the API server may take to answer podtask's first request.
const FIRST_ANSWER: std::time::Duration = std::time::Duration::from_secs(8);

/// How many times a missing CRD is looked for (every 500ms) before `podtask run` gives up.
const CRD_CHECKS: u32 = 10;

fn check_list<T>(result: Result<T, kube::Error>) -> Result<(), StartupError> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Err(StartupError::CrdMissing),
        // Forbidden is reported with every other missing permission by check_rbac.
        Err(kube::Error::Api(s)) if s.code == 403 => Ok(()),
        Err(e) => Err(StartupError::Unreachable(e.to_string())),
    }
}

/// Ask the API server (SelfSubjectAccessReview) whether each needed verb is allowed; name every one that isn't.
pub async fn check_rbac(
    client: &Client,
    scopes: &[Option<String>],
    lease_ns: Option<&str>,
) -> Result<(), StartupError> {
    let mut checks: Vec<(&Rule, &str, Option<String>)> = vec![];
    let each_verb = |rules: &'static [Rule], ns: Option<String>| {
        let pairs = rules.iter().flat_map(|r| r.verbs.iter().map(move |v| (r, *v)));
        pairs.map(move |(r, v)| (r, v, ns.clone())).collect::<Vec<_>>()
    };
    for scope in scopes {
        checks.extend(each_verb(rbac::WORK, scope.clone()));
    }
    if let Some(ns) = lease_ns {
        checks.extend(each_verb(rbac::LEASE, Some(ns.to_owned())));
    }
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let mut missing = vec![];
    for (rule, verb, ns) in checks {
        let (resource, subresource) = rule.split();
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    group: Some(rule.group.into()),
                    resource: Some(resource.into()),
                    subresource: subresource.map(Into::into),
                    verb: Some(verb.into()),
                    namespace: ns.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let allowed = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| StartupError::Unreachable(format!("SelfSubjectAccessReview failed: {e}")))?
            .status
            .is_some_and(|s| s.allowed);
        if !allowed {
            let group = if rule.group.is_empty() { "core" } else { rule.group };
            let place = ns.map_or_else(|| "cluster-wide".to_owned(), |n| format!("in namespace {n}"));
            missing.push(format!("  - {verb} {} ({group}) {place}", rule.resource));
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let user = whoami(client).await;
    Err(StartupError::Forbidden { user, missing: missing.join("\n") })
}

async fn whoami(client: &Client) -> String {
    use k8s_openapi::api::authentication::v1::SelfSubjectReview;
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    match api.create(&PostParams::default(), &SelfSubjectReview::default()).await {
        Ok(r) => r
            .status
            .and_then(|s| s.user_info)
            .and_then(|u| u.username)
            .map_or_else(|| "unknown user".into(), |u| format!("as {u}")),
        Err(_) => "unknown user".into(),
    }
}
