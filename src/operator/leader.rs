//! Leader election on a Lease (kube-lease-manager): only the holder reconciles; a holder that loses the lease, or
//! cannot see it renewed in time, exits at once so it can never act alongside the new leader, and its Deployment
//! restarts it as a standby.

use std::time::Duration as StdDuration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;
use tracing::{error, info};

use super::error::StartupError;

pub struct LeaseSettings {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    pub duration: StdDuration,
}

/// Starts contending for the lease and returns once this replica holds it. The returned receiver turns
/// false if the lease is lost.
pub async fn acquire(client: Client, s: &LeaseSettings) -> Result<watch::Receiver<bool>, StartupError> {
    let duration = s.duration.as_secs().max(2);
    let manager = LeaseManagerBuilder::new(client, &s.name)
        .with_namespace(&s.namespace)
        .with_identity(&s.identity)
        .with_duration(duration)
        // Renewed halfway through: a renewal has half the lease to land before the holder's fence (below).
        .with_grace((duration / 2).max(1))
        .with_field_manager(format!("podtask-{}", s.identity))
        .build()
        .await
        .map_err(|e| StartupError::Other(format!("cannot use lease {}/{}: {e}", s.namespace, s.name)))?;
    let (mut rx, _task) = manager.watch().await;
    info!(lease = %format!("{}/{}", s.namespace, s.name), identity = %s.identity, "waiting to become leader");
    while !*rx.borrow_and_update() {
        rx.changed().await.map_err(|_| StartupError::Other("the lease manager stopped".into()))?;
    }
    info!(identity = %s.identity, "became leader");
    Ok(rx)
}

/// Exits the process the moment leadership is lost, or once the lease has not been seen renewed for longer than
/// its duration less `FENCE_MARGIN`: a holder whose renewals are delayed (an API server that throttles or does not
/// answer) stops before another replica may take the lease over, rather than acting on alongside it.
pub async fn exit_when_lost(mut rx: watch::Receiver<bool>, client: Client, s: LeaseSettings) {
    let fence = s.duration.saturating_sub(FENCE_MARGIN);
    let leases: Api<Lease> = Api::namespaced(client, &s.namespace);
    // Just acquired: renewed now.
    let mut renewed = crate::jiff::Timestamp::now();
    let mut tick = tokio::time::interval(s.duration / 10);
    loop {
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() || !*rx.borrow() {
                    lost("lost the leader lease");
                }
            }
            _ = tick.tick() => {
                let read = tokio::time::timeout(s.duration / 10, leases.get_opt(&s.name)).await;
                if let Ok(Ok(Some(lease))) = read {
                    let spec = lease.spec.unwrap_or_default();
                    if spec.holder_identity.as_deref() != Some(s.identity.as_str()) {
                        lost("the lease has another holder");
                    }
                    if let Some(at) = spec.renew_time {
                        renewed = renewed.max(at.0);
                    }
                }
                let since = crate::jiff::Timestamp::now().duration_since(renewed);
                if since.as_secs_f64() > fence.as_secs_f64() {
                    lost("the lease was not renewed in time");
                }
            }
        }
    }
}

/// How long before its lease would expire a holder that has not seen it renewed stops.
const FENCE_MARGIN: StdDuration = StdDuration::from_secs(1);

fn lost(why: &str) -> ! {
    error!(why, "exiting so that only the new leader acts");
    std::process::exit(3);
}
