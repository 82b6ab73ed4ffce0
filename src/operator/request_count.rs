//! Every request podtask sends, counted by verb and resource (`podtask_api_requests_total`): what a task costs
//! the API server, from podtask's side, whatever part of the operator sent it (reconciles, watches, Events, the
//! health probe, leader election).

use std::task::{Context, Poll};

use prometheus_client::metrics::{counter::Counter, family::Family};
use tower::{Layer, Service};

use super::metrics::RequestLabel;

/// Counts each request into `requests` before passing it on.
#[derive(Clone, Default)]
pub struct CountLayer {
    requests: Family<RequestLabel, Counter>,
}

impl CountLayer {
    pub fn new(requests: Family<RequestLabel, Counter>) -> Self {
        Self { requests }
    }
}

impl<S> Layer<S> for CountLayer {
    type Service = Count<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Count { inner, requests: self.requests.clone() }
    }
}

#[derive(Clone)]
pub struct Count<S> {
    inner: S,
    requests: Family<RequestLabel, Counter>,
}

impl<S, B> Service<http::Request<B>> for Count<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        self.requests.get_or_create(&label(request.method(), request.uri())).inc();
        self.inner.call(request)
    }
}

/// The verb as the API server's audit log names it, and the resource (with its subresource) a path addresses:
/// `/api/v1/namespaces/ns/pods/p` is (get, pods), `/apis/podtask.dev/v1alpha1/namespaces/ns/podtasks/t/status`
/// (update, podtasks/status); a path outside the resource API (`/version`) is its own resource.
fn label(method: &http::Method, uri: &http::Uri) -> RequestLabel {
    let segments: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    // after /api/VERSION or /apis/GROUP/VERSION: [namespaces, NS,] RESOURCE [, NAME [, SUBRESOURCE]]
    let rest = match segments.as_slice() {
        ["api", _, rest @ ..] => rest,
        ["apis", _, _, rest @ ..] => rest,
        _ => return RequestLabel { verb: method.as_str().to_ascii_lowercase(), resource: uri.path().to_owned() },
    };
    let rest = match rest {
        ["namespaces", _, resource, more @ ..] => [&[*resource][..], more].concat(),
        other => other.to_vec(),
    };
    let named = rest.len() > 1;
    let resource = match rest.as_slice() {
        [resource, _, sub, ..] => format!("{resource}/{sub}"),
        [resource, ..] => (*resource).to_owned(),
        [] => String::new(),
    };
    let watch = uri.query().is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    let verb = match *method {
        http::Method::GET if watch => "watch",
        http::Method::GET if named => "get",
        http::Method::GET => "list",
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE if named => "delete",
        http::Method::DELETE => "deletecollection",
        _ => method.as_str(),
    };
    RequestLabel { verb: verb.to_ascii_lowercase(), resource }
}

#[cfg(test)]
mod tests {
    use super::label;
    use http::Method;

    fn of(method: Method, uri: &str) -> (String, String) {
        let l = label(&method, &uri.parse().expect("a URI"));
        (l.verb, l.resource)
    }

    #[test]
    fn requests_are_named_as_the_audit_log_names_them() {
        let cases = [
            (Method::POST, "/api/v1/namespaces/ns/pods", "create", "pods"),
            (Method::GET, "/api/v1/namespaces/ns/pods/t-1", "get", "pods"),
            (Method::DELETE, "/api/v1/namespaces/ns/pods/t-1", "delete", "pods"),
            (Method::PATCH, "/api/v1/namespaces/ns/pods/t-1", "patch", "pods"),
            (Method::GET, "/api/v1/pods?labelSelector=x&watch=true&timeoutSeconds=290", "watch", "pods"),
            (Method::GET, "/api/v1/namespaces/ns/pods?labelSelector=x", "list", "pods"),
            (Method::PUT, "/apis/podtask.dev/v1alpha1/namespaces/ns/podtasks/t/status", "update", "podtasks/status"),
            (Method::GET, "/apis/podtask.dev/v1alpha1/namespaces/ns/podtasks/t", "get", "podtasks"),
            (Method::POST, "/apis/events.k8s.io/v1/namespaces/ns/events", "create", "events"),
            (Method::PUT, "/apis/coordination.k8s.io/v1/namespaces/ns/leases/podtask", "update", "leases"),
            (Method::GET, "/version", "get", "/version"),
        ];
        for (method, uri, verb, resource) in cases {
            assert_eq!(of(method, uri), (verb.to_owned(), resource.to_owned()), "{uri}");
        }
    }
}
