//! Errors of the shell, with what a user needs to act on them.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),

    /// The cached PodTask was stale when podtask wrote its status; the watch will deliver the newer one.
    #[error("PodTask {0} changed since it was read; will look again")]
    Stale(String),
}

/// What went wrong in a reconcile, as a metric label.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, strum::IntoStaticStr, strum::EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum ErrorKind {
    /// A write lost a race with a newer version of the task.
    Stale,
    /// The API server refused or failed a request.
    Api,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Kube(_) => ErrorKind::Api,
            Error::Stale(_) => ErrorKind::Stale,
        }
    }
}

/// An API error without the response body's details beyond its status line (bodies can quote pod templates).
pub(crate) fn short_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} {}", s.code, s.reason),
        kube::Error::SerdeError(_) => "the API server's answer could not be read".into(),
        other => other.to_string(),
    }
}

/// Why `podtask run` refuses to start. Each message says what to do.
#[derive(Debug, Error)]
pub enum StartupError {
    #[error(
        "cannot load a Kubernetes configuration: {0}\n  podtask reads $KUBECONFIG, ~/.kube/config, or the in-cluster service account; point KUBECONFIG at a valid file"
    )]
    Kubeconfig(String),

    #[error(
        "cannot reach the Kubernetes API server: {0}\n  check that the cluster is running and that the kubeconfig's server address and credentials are right (`kubectl version`)"
    )]
    Unreachable(String),

    #[error(
        "the CRD podtasks.podtask.dev is not installed (the API server has no podtasks resource)\n  install it: podtask crd | kubectl apply --server-side -f -"
    )]
    CrdMissing,

    #[error(
        "RBAC forbids what podtask needs ({user}):\n{missing}\n  grant these verbs (the Helm chart's ClusterRole/Role does) or run podtask with another identity"
    )]
    Forbidden { user: String, missing: String },

    #[error("invalid configuration: {0}")]
    Config(String),

    #[error("{0}")]
    Other(String),
}
