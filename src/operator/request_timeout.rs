//! A time limit on every request podtask sends the API server, watches excepted.
//!
//! The API server holds a request it cannot serve yet instead of failing it: without etcd (killed, restarting, cut
//! off) a read or write waits inside the API server until its etcd client for that resource has reconnected, or
//! until its own request timeout (60 s by default) answers 504. A reconcile waiting on such a request shows
//! nothing: no error, no log line, no metric. With this limit, a request unanswered for [`REQUEST_TIMEOUT`] fails
//! as an outage of the whole API (`api_health`): logged once, shown by `podtask_api_unavailable`, every reconcile
//! waits for the probe to find PodTasks and pods served again, and then tries at once. Nothing is lost by giving
//! up on a request the API server may still carry out later: podtask's writes are safe to repeat (a status write
//! names the resourceVersion it replaces, a delete the pod's UID, a create its deterministic name).

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use tower::{BoxError, Layer, Service};

/// Longer than a healthy API server takes to answer any of podtask's requests, its priority-and-fairness queueing
/// included; far shorter than its own 60 s request timeout.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The error of a request that got no answer in time.
#[derive(Debug, thiserror::Error)]
#[error("no answer from the API server within {0:?} (is etcd reachable from it?)")]
pub struct NoAnswer(pub Duration);

/// Limits every request but a watch (`?watch=true`, which is meant to stay open) to `limit`.
#[derive(Clone, Copy)]
pub struct RequestTimeoutLayer {
    limit: Duration,
}

impl RequestTimeoutLayer {
    pub fn new(limit: Duration) -> Self {
        Self { limit }
    }
}

impl<S> Layer<S> for RequestTimeoutLayer {
    type Service = RequestTimeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestTimeout { inner, limit: self.limit }
    }
}

#[derive(Clone)]
pub struct RequestTimeout<S> {
    inner: S,
    limit: Duration,
}

impl<S, B> Service<http::Request<B>> for RequestTimeout<S>
where
    S: Service<http::Request<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let limit = (!is_watch(request.uri())).then_some(self.limit);
        let answer = self.inner.call(request);
        Box::pin(async move {
            match limit {
                Some(limit) => match tokio::time::timeout(limit, answer).await {
                    Ok(answer) => answer.map_err(Into::into),
                    Err(_) => Err(Box::new(NoAnswer(limit)) as BoxError),
                },
                None => answer.await.map_err(Into::into),
            }
        })
    }
}

/// A watch request: its response is a stream meant to last minutes.
fn is_watch(uri: &http::Uri) -> bool {
    uri.query().is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    /// A request the server holds fails after the limit; a watch, held as long, is left alone.
    #[tokio::test(start_paused = true)]
    async fn a_held_request_fails_after_the_limit_and_a_watch_never_does() {
        let held = tower::service_fn(|_: http::Request<()>| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<_, std::convert::Infallible>("answer")
        });
        let mut limited = RequestTimeoutLayer::new(REQUEST_TIMEOUT).layer(held);
        let get = http::Request::get("/api/v1/namespaces/a/pods/p").body(()).unwrap();
        let start = tokio::time::Instant::now();
        let error = limited.ready().await.unwrap().call(get).await.expect_err("no answer");
        assert_eq!(start.elapsed(), REQUEST_TIMEOUT);
        assert!(error.is::<NoAnswer>(), "{error}");
        let watch = http::Request::get("/api/v1/namespaces/a/pods?labelSelector=x&watch=true&timeoutSeconds=290")
            .body(())
            .unwrap();
        assert_eq!(limited.ready().await.unwrap().call(watch).await.expect("the watch's answer"), "answer");
        assert!(start.elapsed() > Duration::from_secs(3600));
    }
}
