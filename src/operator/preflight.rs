//! Checks before `podtask run` starts reconciling, so the common faults (wrong kubeconfig, CRD missing, RBAC)
//! stop it at once with a message that says what to do, instead of a crash loop of watch errors.

use k8s_openapi::api::authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec};
use kube::{
    Api, Client,
    api::{ListParams, PostParams},
};

use super::error::StartupError;
use crate::crd::PodTask;

/// One permission podtask needs.
pub struct Need {
    pub group: &'static str,
    pub resource: &'static str,
    pub subresource: Option<&'static str>,
    pub verb: &'static str,
}

/// Everything podtask does with the API, per watched namespace (or cluster-wide).
pub const NEEDS: &[Need] = &[
    Need { group: "", resource: "pods", subresource: None, verb: "create" },
    Need { group: "", resource: "pods", subresource: None, verb: "delete" },
    Need { group: "", resource: "pods", subresource: None, verb: "get" },
    Need { group: "", resource: "pods", subresource: None, verb: "list" },
    Need { group: "", resource: "pods", subresource: None, verb: "watch" },
    Need { group: "podtask.dev", resource: "podtasks", subresource: None, verb: "get" },
    Need { group: "podtask.dev", resource: "podtasks", subresource: None, verb: "list" },
    Need { group: "podtask.dev", resource: "podtasks", subresource: None, verb: "watch" },
    Need { group: "podtask.dev", resource: "podtasks", subresource: None, verb: "delete" },
    Need { group: "podtask.dev", resource: "podtasks", subresource: Some("status"), verb: "update" },
    Need { group: "events.k8s.io", resource: "events", subresource: None, verb: "create" },
    Need { group: "events.k8s.io", resource: "events", subresource: None, verb: "patch" },
];

/// Leader election needs these in the lease namespace.
pub const LEASE_NEEDS: &[Need] = &[
    Need { group: "coordination.k8s.io", resource: "leases", subresource: None, verb: "get" },
    Need { group: "coordination.k8s.io", resource: "leases", subresource: None, verb: "create" },
    Need { group: "coordination.k8s.io", resource: "leases", subresource: None, verb: "patch" },
];

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
    let mut checks: Vec<(&Need, Option<String>)> = vec![];
    for scope in scopes {
        checks.extend(NEEDS.iter().map(|n| (n, scope.clone())));
    }
    if let Some(ns) = lease_ns {
        checks.extend(LEASE_NEEDS.iter().map(|n| (n, Some(ns.to_owned()))));
    }
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let mut missing = vec![];
    for (need, ns) in checks {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    group: Some(need.group.into()),
                    resource: Some(need.resource.into()),
                    subresource: need.subresource.map(Into::into),
                    verb: Some(need.verb.into()),
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
            let resource = match need.subresource {
                Some(sub) => format!("{}/{sub}", need.resource),
                None => need.resource.to_owned(),
            };
            let group = if need.group.is_empty() { "core".to_owned() } else { need.group.to_owned() };
            let place = ns.map_or_else(|| "cluster-wide".to_owned(), |n| format!("in namespace {n}"));
            missing.push(format!("  - {} {resource} ({group}) {place}", need.verb));
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
