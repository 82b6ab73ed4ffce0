//! What the task watch hands over, and the key by which the operator's own records name a task.

use kube::{Resource, ResourceExt, core::DeserializeGuard};

use crate::crd::PodTask;

/// The objects the controller hands over: a PodTask, or one podtask could not read (which must never stop the
/// watch that brought it, nor any other task).
pub type Watched = DeserializeGuard<PodTask>;

/// A task's key, `namespace/name`, as the operator's own records of it use it.
pub(crate) fn key_of<K: Resource>(object: &K) -> String {
    format!("{}/{}", object.namespace().unwrap_or_default(), object.name_any())
}
