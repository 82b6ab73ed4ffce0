//! What one cached pod and one cached task keep on the heap, counted by a test-only allocator that tallies this
//! thread's allocations. The objects are what a watch delivers for a running one-pod task (kwok's pod status, the
//! status podtask writes), read and trimmed exactly as the watch caches do.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
    sync::Arc,
};

use kube::Resource;

use super::{
    cached_pod::{CachedPod, WatchedPod},
    controller::trim_task,
    task_cache::TaskCache,
    watched::{Watched, key_of},
};

struct Counting;

thread_local! {
    static LIVE: Cell<(isize, isize)> = const { Cell::new((0, 0)) };
}

// SAFETY: every call is passed to the system allocator unchanged; the thread-local tally allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = LIVE.try_with(|l| l.set((l.get().0 + layout.size() as isize, l.get().1 + 1)));
        // SAFETY: the caller's layout, as GlobalAlloc requires.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = LIVE.try_with(|l| l.set((l.get().0 - layout.size() as isize, l.get().1 - 1)));
        // SAFETY: ptr came from alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes and allocations `make` leaves live on this thread.
fn kept<T>(make: impl FnOnce() -> T) -> (T, isize, isize) {
    let before = LIVE.with(Cell::get);
    let value = make();
    let after = LIVE.with(Cell::get);
    (value, after.0 - before.0, after.1 - before.1)
}

/// The cost malloc adds: each allocation rounded up to 16 bytes with an 8-byte header (glibc).
fn with_malloc_overhead(bytes: isize, allocations: isize) -> isize {
    bytes + allocations * 16
}

const POD: &str = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"t-4711-c3b78-1","namespace":"bench-scale-5070-1",
 "uid":"6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e","resourceVersion":"1234567","creationTimestamp":"2026-12-02T06:03:48Z",
 "labels":{"app.kubernetes.io/managed-by":"podtask","podtask.dev/task":"t-4711","podtask.dev/task-uid":"c3b78a10-1d2e-4f3a-9b8c-7d6e5f4a3b2c","podtask.dev/attempt":"1"},
 "annotations":{"podtask.dev/start-time":"2026-12-02T06:03:48.754741Z","podtask.dev/created-at":"2026-12-02T06:03:48.754741Z",
  "kwok.podtask.dev/scenario":"run-forever"},
 "ownerReferences":[{"apiVersion":"podtask.dev/v1alpha1","kind":"PodTask","name":"t-4711","uid":"c3b78a10-1d2e-4f3a-9b8c-7d6e5f4a3b2c","controller":true,"blockOwnerDeletion":true}],
 "managedFields":[{"manager":"podtask","operation":"Update","apiVersion":"v1","time":"2026-12-02T06:03:48Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:labels":{}}}},
  {"manager":"kwok","operation":"Update","apiVersion":"v1","time":"2026-12-02T06:03:50Z","fieldsType":"FieldsV1","fieldsV1":{"f:status":{}},"subresource":"status"}]},
 "spec":{"containers":[{"name":"main","image":"busybox","resources":{},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"Always"}],
  "restartPolicy":"Never","terminationGracePeriodSeconds":0,"dnsPolicy":"ClusterFirst","serviceAccountName":"default","nodeName":"kwok-node-3",
  "securityContext":{},"schedulerName":"default-scheduler","tolerations":[{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}],
  "priority":0,"enableServiceLinks":true,"preemptionPolicy":"PreemptLowerPriority"},
 "status":{"phase":"Running","conditions":[
  {"type":"Initialized","status":"True","lastProbeTime":null,"lastTransitionTime":"2026-12-02T06:03:50Z"},
  {"type":"Ready","status":"True","lastProbeTime":null,"lastTransitionTime":"2026-12-02T06:03:50Z"},
  {"type":"ContainersReady","status":"True","lastProbeTime":null,"lastTransitionTime":"2026-12-02T06:03:50Z"},
  {"type":"PodScheduled","status":"True","lastProbeTime":null,"lastTransitionTime":"2026-12-02T06:03:49Z"}],
  "hostIP":"10.0.0.1","hostIPs":[{"ip":"10.0.0.1"}],"podIP":"10.244.3.17","podIPs":[{"ip":"10.244.3.17"}],"startTime":"2026-12-02T06:03:50Z",
  "containerStatuses":[{"name":"main","state":{"running":{"startedAt":"2026-12-02T06:03:50Z"}},"lastState":{},"ready":true,"restartCount":0,
   "image":"busybox","imageID":"","started":true}],"qosClass":"BestEffort"}}"#;

const TASK: &str = r#"{"apiVersion":"podtask.dev/v1alpha1","kind":"PodTask","metadata":{"name":"t-4711","namespace":"bench-scale-5070-1",
 "uid":"c3b78a10-1d2e-4f3a-9b8c-7d6e5f4a3b2c","resourceVersion":"1234570","generation":1,"creationTimestamp":"2026-12-02T06:03:47Z",
 "labels":{"app.kubernetes.io/part-of":"nightly-reports"},"annotations":{"argocd.argoproj.io/tracking-id":"reports:podtask.dev/PodTask:reports/t-4711"},
 "managedFields":[{"manager":"bench","operation":"Update","apiVersion":"podtask.dev/v1alpha1","time":"2026-12-02T06:03:47Z","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{}}},
  {"manager":"podtask","operation":"Update","apiVersion":"podtask.dev/v1alpha1","time":"2026-12-02T06:03:52Z","fieldsType":"FieldsV1","fieldsV1":{"f:status":{}},"subresource":"status"}]},
 "spec":{"template":{"metadata":{"annotations":{"kwok.podtask.dev/scenario":"run-forever"}},
  "spec":{"containers":[{"name":"main","image":"busybox"}],"terminationGracePeriodSeconds":0}}},
 "status":{"phase":"Running","reason":"Running","message":"pod t-4711-c3b78-1 is running","attempt":1,"podName":"t-4711-c3b78-1",
  "startTime":"2026-12-02T06:03:48Z","deadline":"2026-12-03T06:03:48Z","startupDeadline":"2026-12-02T08:03:48Z","observedGeneration":1,
  "conditions":[{"type":"Ready","status":"True","reason":"Running","message":"pod t-4711-c3b78-1 is running","lastTransitionTime":"2026-12-02T06:03:52Z","observedGeneration":1},
   {"type":"Succeeded","status":"False","reason":"Running","message":"pod t-4711-c3b78-1 is running","lastTransitionTime":"2026-12-02T06:03:48Z","observedGeneration":1}]}}"#;

/// What the pod cache keeps of a pod as the watch read it: the `CachedPod` in its `Arc`, the name it is filed
/// under, and that entry in the cache's table.
fn cached_pod(watched: &WatchedPod) -> (Box<str>, Arc<CachedPod>) {
    (watched.metadata.name.as_deref().unwrap_or_default().into(), Arc::new(CachedPod::from(watched)))
}

fn cached_task() -> Arc<Watched> {
    let mut task: Watched = serde_json::from_str(TASK).expect("a task");
    trim_task(&mut task);
    Arc::new(task.clone())
}

#[test]
fn what_a_cached_pod_keeps() {
    let watched: WatchedPod = serde_json::from_str(POD).expect("a pod");
    let ((_, pod), pod_bytes, pod_allocs) = kept(|| cached_pod(&watched));
    let pod_bytes = pod_bytes + std::mem::size_of::<(Box<str>, Arc<CachedPod>)>() as isize;
    assert!(pod.is_running());
    println!(
        "MEASURE cached pod {pod_bytes} bytes in {pod_allocs} allocations ({} with malloc's overhead)",
        with_malloc_overhead(pod_bytes, pod_allocs),
    );
    // A budget, not a timing: the bytes are the same on every machine. With its label and annotation maps kept in
    // its metadata (each map costs a node of some 500 bytes even for one entry) the pod kept 3.7 KB here; with a
    // string of its own for each condition's type and status and the whole `ContainerState` per container, 2.3 KB;
    // with its whole `ObjectMeta` (in kube-runtime's reflector) and every condition's details, 1.9 KB.
    assert!(with_malloc_overhead(pod_bytes, pod_allocs) < 1_300, "a cached pod keeps {pod_bytes} bytes");
}

/// A task's wakeup, against what kube-runtime's queue keeps for a requeue: its request (the task's object reference,
/// with copies of its name, namespace, uid and resourceVersion) twice, in its timer and in its index.
#[test]
fn what_a_wakeup_keeps() {
    use kube::runtime::{controller::ReconcileRequest, reflector::ObjectRef};
    let task = cached_task();
    let at = "2026-12-03T06:03:48Z".parse().expect("a timestamp");
    let wakeups = super::wakeups::Wakeups::default();
    // The first wakeup allocates the indexes' first bucket array and node; each further one adds its key, and its
    // entry in each index (counted by size below).
    wakeups.set("other/first", Some(at));
    let ((), bytes, allocs) = kept(|| wakeups.set(&key_of(&*task), Some(at)));
    let bytes = bytes + 2 * std::mem::size_of::<(Arc<str>, crate::jiff::Timestamp)>() as isize;
    let (request, request_bytes, request_allocs) = kept(|| ReconcileRequest::from(ObjectRef::from_obj(&*task)));
    let request_bytes = request_bytes + std::mem::size_of_val(&request) as isize;
    let (wakeup, queued) =
        (with_malloc_overhead(bytes, allocs), 2 * with_malloc_overhead(request_bytes, request_allocs));
    println!("MEASURE a wakeup {wakeup} bytes with malloc's overhead; kube-runtime's queue {queued} bytes per requeue");
    assert!(wakeup * 3 < queued, "a wakeup {wakeup} bytes, kube-runtime's queue {queued} bytes");
}

/// What the pod cache keeps per pod, tables included: 1,000 running pods of 1,000 tasks in one namespace, as the
/// watch delivers them, against the same pods in a plain table by name (the cache without its owner index).
#[test]
fn what_the_pod_cache_keeps_per_pod() {
    use kube::runtime::watcher::Event;
    const PODS: usize = 1000;
    let now = "2026-12-02T06:03:50Z".parse().expect("a timestamp");
    let watched: Vec<WatchedPod> = (0..PODS)
        .map(|i| {
            let mut pod: WatchedPod = serde_json::from_str(POD).expect("a pod");
            pod.metadata.name = Some(format!("t-{i:05}-c3b78-1"));
            for owner in pod.metadata.owner_references.iter_mut().flatten() {
                owner.uid = format!("c3b78a10-1d2e-4f3a-9b8c-{i:012}");
            }
            pod
        })
        .collect();
    let (cache, cache_bytes, cache_allocs) = kept(|| {
        let cache = super::pod_cache::PodCache::default();
        for pod in &watched {
            cache.apply(&Event::Apply(pod.clone()), now);
        }
        cache
    });
    let (plain, plain_bytes, plain_allocs) = kept(|| {
        let mut by_name: std::collections::HashMap<Box<str>, Arc<CachedPod>> = Default::default();
        for pod in &watched {
            // As the cache keeps a running pod: with the moment it first held it running.
            let mut cached = CachedPod::from(pod);
            cached.note_running(None, now);
            by_name.insert(pod.metadata.name.as_deref().unwrap_or_default().into(), Arc::new(cached));
        }
        by_name
    });
    assert_eq!(plain.len(), PODS);
    let uid = "c3b78a10-1d2e-4f3a-9b8c-000000000007";
    assert_eq!(cache.owned_by("bench-scale-5070-1", uid).len(), 1, "each task's pod is found by its owner");
    let per_pod = with_malloc_overhead(cache_bytes, cache_allocs) / PODS as isize;
    let plain_per_pod = with_malloc_overhead(plain_bytes, plain_allocs) / PODS as isize;
    println!(
        "MEASURE pod cache {per_pod} bytes per pod with malloc's overhead, tables and owner index included; \
         {plain_per_pod} bytes in a plain table by name (the index costs {} bytes per pod)",
        per_pod - plain_per_pod
    );
    // A budget, not a timing. The index keeps, per task, an 8-byte key and a slice of names shared with the table.
    assert!(per_pod - plain_per_pod < 120, "the owner index costs {} bytes per pod", per_pod - plain_per_pod);
}

/// What the task cache keeps per task, its tables included: 1,000 running tasks as the watch delivers them (trimmed
/// as the watch trims them), against kube-runtime's reflector store holding the same tasks.
#[test]
fn what_the_task_cache_keeps_per_task() {
    use kube::runtime::{reflector, watcher::Event};
    const TASKS: usize = 1000;
    let watched: Vec<Watched> = (0..TASKS)
        .map(|i| {
            let mut task: Watched = serde_json::from_str(TASK).expect("a task");
            task.meta_mut().name = Some(format!("t-{i:05}"));
            task.meta_mut().uid = Some(format!("c3b78a10-1d2e-4f3a-9b8c-{i:012}"));
            trim_task(&mut task);
            task
        })
        .collect();
    drop(cached_task());
    let (cache, cache_bytes, cache_allocs) = kept(|| {
        let cache = TaskCache::default();
        cache.apply(&Event::Init);
        for task in &watched {
            cache.apply(&Event::InitApply(task.clone()));
        }
        cache.apply(&Event::InitDone);
        cache
    });
    assert_eq!(cache.keys().len(), TASKS);
    let back = cache.get("bench-scale-5070-1/t-00007").expect("a cached task");
    assert_eq!(back.0.as_ref().expect("readable"), watched[7].0.as_ref().expect("readable"));
    let (store, store_bytes, store_allocs) = kept(|| {
        let (reader, mut writer) = reflector::store::<Watched>();
        writer.apply_watcher_event(&Event::Init);
        for task in &watched {
            writer.apply_watcher_event(&Event::InitApply(task.clone()));
        }
        writer.apply_watcher_event(&Event::InitDone);
        (reader, writer)
    });
    assert_eq!(store.0.len(), TASKS);
    let per_task = with_malloc_overhead(cache_bytes, cache_allocs) / TASKS as isize;
    let reflector = with_malloc_overhead(store_bytes, store_allocs) / TASKS as isize;
    println!(
        "MEASURE task cache {per_task} bytes per task with malloc's overhead, its tables included; kube-runtime's \
         reflector store {reflector} bytes per task"
    );
    // A budget, not a timing: the bytes are the same on every machine. The compact JSON of the trimmed task is 650
    // bytes of it here; its table and name some 100.
    assert!(per_task < 900, "the task cache keeps {per_task} bytes per task");
}
