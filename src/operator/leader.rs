//! Leader election on a Lease (kube-lease-manager): only the holder reconciles; a holder that loses the lease
//! exits at once so it can never act alongside the new leader, and its Deployment restarts it as a standby.

use std::time::Duration as StdDuration;

use kube::Client;
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
        .with_grace((duration / 3).max(1))
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

/// Exits the process the moment leadership is lost.
pub async fn exit_when_lost(mut rx: watch::Receiver<bool>) {
    loop {
        if rx.changed().await.is_err() || !*rx.borrow() {
            error!("lost the leader lease; exiting so that only the new leader acts");
            std::process::exit(3);
        }
    }
}
