//! A client-side limit on podtask's request rate (`--kube-api-qps`, `--kube-api-burst`), as kube-controller-manager
//! has: a token bucket (the `governor` crate) in front of every request the client sends.

use std::{
    future::Future,
    num::NonZeroU32,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tower::{Layer, Service};

/// Requests per second on average, with bursts up to `burst`. `qps` 0: no limit.
#[derive(Clone)]
pub struct ThrottleLayer {
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
}

impl ThrottleLayer {
    pub fn new(qps: u32, burst: u32) -> Self {
        let limiter = NonZeroU32::new(qps).map(|qps| {
            let burst = NonZeroU32::new(burst.max(qps.get())).unwrap_or(qps);
            Arc::new(RateLimiter::direct(Quota::per_second(qps).allow_burst(burst)))
        });
        Self { limiter }
    }
}

impl<S> Layer<S> for ThrottleLayer {
    type Service = Throttle<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Throttle { inner, limiter: self.limiter.clone() }
    }
}

#[derive(Clone)]
pub struct Throttle<S> {
    inner: S,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
}

impl<S, R> Service<R> for Throttle<S>
where
    S: Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        // The inner future sends the request when first polled: waiting for a token first delays the request.
        let sent = self.inner.call(request);
        let limiter = self.limiter.clone();
        Box::pin(async move {
            if let Some(limiter) = limiter {
                limiter.until_ready().await;
            }
            sent.await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    /// A lower bound on the time taken (the limiter's own clock is real time), never an upper one.
    #[tokio::test]
    async fn requests_beyond_the_burst_wait_for_tokens() {
        let service = tower::service_fn(|n: u32| async move { Ok::<_, std::convert::Infallible>(n) });
        let mut throttled = ThrottleLayer::new(20, 20).layer(service);
        let start = std::time::Instant::now();
        for n in 0..30 {
            throttled.ready().await.unwrap().call(n).await.unwrap();
        }
        // 20 at once, then 10 more at 20 per second: at least 450ms.
        let took = start.elapsed();
        assert!(took >= std::time::Duration::from_millis(450), "took {took:?}");
        let mut unlimited = ThrottleLayer::new(0, 0).layer(tower::service_fn(|n: u32| async move { Ok::<_, ()>(n) }));
        assert_eq!(unlimited.ready().await.unwrap().call(7).await, Ok(7));
    }
}
