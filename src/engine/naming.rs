//! Names and labels: one deterministic pod name per attempt, and labels that tie a pod to its task.

/// Every pod podtask creates carries this label; the operator's pod watch selects on it, which keeps its cache
/// to podtask's own pods.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "podtask";
/// The prefix of podtask's own labels and annotations.
pub const PREFIX: &str = "podtask.dev/";
/// The owning task's name (truncated to the 63-character label limit).
pub const LABEL_TASK: &str = "podtask.dev/task";
/// The owning task's UID: the authoritative link, unique even when a task is recreated under the same name.
pub const LABEL_TASK_UID: &str = "podtask.dev/task-uid";
/// The attempt number, starting at 1.
pub const LABEL_ATTEMPT: &str = "podtask.dev/attempt";
/// When the task's first attempt launched: the persisted fact the execution budget counts from.
pub const ANNOTATION_START_TIME: &str = "podtask.dev/start-time";
/// When podtask created the pod, to the nanosecond (the API server's creationTimestamp keeps whole seconds): the
/// start of the attempt's startup timeout.
pub const ANNOTATION_CREATED_AT: &str = "podtask.dev/created-at";
/// The task's absolute deadline, copied onto each pod so a restarted operator can recover it from the pod.
pub const ANNOTATION_DEADLINE: &str = "podtask.dev/deadline";
/// The containers whose ends decide the task (comma-separated names), as the pod was launched.
pub const ANNOTATION_DECIDING: &str = "podtask.dev/deciding-containers";
/// Never on a pod in the API server: the operator's watch cache adds it to its own copy of a running pod, with the
/// moment the cache first held that pod running. The API server shows a pod's updates late when it is busy, so a
/// pod the kubelet started seconds ago may be over already; what the cache has watched run for a while is news.
pub const NOTE_SEEN_RUNNING: &str = "podtask.dev/seen-running-at";

const MAX_NAME: usize = 63;

/// The pod name for `attempt` of the task `task_name` with UID `task_uid`: `<name>-<uid prefix>-<attempt>`,
/// shortened to 63 characters. The UID prefix keeps a recreated task from colliding with its predecessor's pods.
pub fn pod_name(task_name: &str, task_uid: &str, attempt: u32) -> String {
    let uid: String =
        task_uid.chars().filter(char::is_ascii_alphanumeric).take(5).collect::<String>().to_ascii_lowercase();
    let suffix = format!("-{uid}-{attempt}");
    let room = MAX_NAME - suffix.len();
    let base = trim_to(task_name, room);
    format!("{base}{suffix}")
}

/// A label value for a task name: at most 63 characters, starting and ending alphanumeric.
pub fn task_label(task_name: &str) -> String {
    trim_to(task_name, MAX_NAME).trim_start_matches(|c: char| !c.is_ascii_alphanumeric()).to_owned()
}

fn trim_to(s: &str, max: usize) -> &str {
    let cut = &s[..s.len().min(max)];
    cut.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "3f2a91c4-0d7e-4b8a-9a51-2f6f7e0c1d22";

    #[test]
    fn names_are_deterministic_per_attempt() {
        assert_eq!(pod_name("hello", UID, 1), "hello-3f2a9-1");
        assert_eq!(pod_name("hello", UID, 12), "hello-3f2a9-12");
        assert_eq!(pod_name("hello", UID, 1), pod_name("hello", UID, 1));
        assert_ne!(pod_name("hello", UID, 1), pod_name("hello", "aaaaaaaa-0000", 1), "a recreated task gets new names");
    }

    #[test]
    fn long_names_fit_in_63_characters() {
        let long = "a".repeat(250);
        for attempt in [1, 99, u32::MAX] {
            let name = pod_name(&long, UID, attempt);
            assert!(name.len() <= 63, "{name} is {} long", name.len());
            assert!(name.ends_with(&format!("-{attempt}")));
        }
        let dotted = format!("{}.-x", "b".repeat(51));
        let name = pod_name(&dotted, UID, 1);
        assert!(!name.contains(".-3f"), "no separator left dangling before the suffix: {name}");
    }

    #[test]
    fn task_label_fits_label_rules() {
        assert_eq!(task_label("hello"), "hello");
        let label = task_label(&format!("{}-tail", "c".repeat(60)));
        assert!(label.len() <= 63 && label.ends_with(|c: char| c.is_ascii_alphanumeric()), "{label}");
    }
}
