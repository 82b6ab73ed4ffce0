//! The controller loop of one scope: which tasks want a reconcile, and running them. A task is reconciled once at
//! a time (asked for again meanwhile, it runs once more afterwards), tasks whose deadline is due go before routine
//! work, and no more reconciles are in flight than there are permits for them.
//!
//! In place of kube-runtime's Controller, which started a reconcile for every task asked for, however many (each
//! then waiting for a permit, a task of the runtime and a slot in a table each), and whose tables never gave back
//! the room a burst took: after 10,000 tasks created at once, hundreds of bytes per task stayed reserved for good.
//! Here a task waiting for its turn is its key in a line, and the lines give their room back as they empty.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use futures::{Stream, StreamExt, stream::FuturesUnordered};

use super::permits::Urgency;

/// What a reconcile asks for next, besides the wakeup it set for its task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Action(Option<Duration>);

impl Action {
    /// Reconcile again after `wait` (a write that lost a race, a failure's backoff), whatever happens meanwhile.
    pub const fn requeue(wait: Duration) -> Self {
        Self(Some(wait))
    }

    /// Only when something changes, or when the task's wakeup comes.
    pub const fn await_change() -> Self {
        Self(None)
    }

    pub fn requeue_after(self) -> Option<Duration> {
        self.0
    }
}

/// How many reconciles may be in flight at once: routine ones, and all together (the rest is kept for due
/// deadlines), as the permits allow.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub routine: usize,
    pub total: usize,
}

/// The tasks waiting for a reconcile, and those in one.
#[derive(Default, Debug)]
struct Queue {
    /// Tasks whose deadline is due, first come first served; then the routine ones. A task stands in a line once,
    /// but a routine one that became due also stays in the routine line, where it is passed over.
    due: VecDeque<Arc<str>>,
    routine: VecDeque<Arc<str>>,
    /// Every waiting task, and the line it waits in.
    waiting: HashMap<Arc<str>, Urgency>,
    /// Tasks in a reconcile: how urgent that one was, and whether (how urgently) it is asked for again.
    running: HashMap<Arc<str>, (Urgency, Option<Urgency>)>,
    routine_running: usize,
}

impl Queue {
    fn request(&mut self, key: Arc<str>, urgency: Urgency) {
        if let Some((_, again)) = self.running.get_mut(&key) {
            *again = (*again).max(Some(urgency));
            return;
        }
        match self.waiting.get(&key) {
            Some(waits) if *waits >= urgency => return,
            _ => {}
        }
        self.waiting.insert(key.clone(), urgency);
        match urgency {
            Urgency::DeadlineDue => self.due.push_back(key),
            Urgency::Routine => self.routine.push_back(key),
        }
    }

    /// The next task to reconcile, if the limits let one start.
    fn next(&mut self, limits: Limits) -> Option<Arc<str>> {
        if self.running.len() >= limits.total {
            return None;
        }
        let urgency = loop {
            let (key, urgency) = if let Some(key) = self.due.pop_front() {
                (key, Urgency::DeadlineDue)
            } else if self.routine_running < limits.routine
                && let Some(key) = self.routine.pop_front()
            {
                (key, Urgency::Routine)
            } else {
                self.give_back_room();
                return None;
            };
            if self.waiting.get(&key) == Some(&urgency) {
                self.waiting.remove(&key);
                break (key, urgency);
            }
        };
        let (key, urgency) = urgency;
        self.routine_running += usize::from(urgency == Urgency::Routine);
        self.running.insert(key.clone(), (urgency, None));
        Some(key)
    }

    /// The reconcile of `key` is over.
    fn done(&mut self, key: &Arc<str>) {
        if let Some((urgency, again)) = self.running.remove(key) {
            self.routine_running -= usize::from(urgency == Urgency::Routine);
            if let Some(again) = again {
                self.request(key.clone(), again);
            }
        }
    }

    /// A burst leaves its lines and tables far larger than what is left in them: give the room back.
    fn give_back_room(&mut self) {
        fn roomy(len: usize, capacity: usize) -> bool {
            capacity > 64 && capacity > len.saturating_mul(4)
        }
        if roomy(self.due.len(), self.due.capacity()) {
            self.due.shrink_to(self.due.len() * 2);
        }
        if roomy(self.routine.len(), self.routine.capacity()) {
            self.routine.shrink_to(self.routine.len() * 2);
        }
        if roomy(self.waiting.len(), self.waiting.capacity()) {
            self.waiting.shrink_to(self.waiting.len() * 2);
        }
    }
}

/// Runs `work` for each task `triggers` asks for (its key, `namespace/name`), as the limits and the rules above
/// allow, until `shutdown` resolves or the triggers end; then lets what is in flight finish. `urgency` tells,
/// when a task is asked for, whether its deadline is due.
pub async fn run<F>(
    triggers: impl Stream<Item = Arc<str>>,
    limits: Limits,
    urgency: impl Fn(&str) -> Urgency,
    mut work: impl FnMut(Arc<str>) -> F,
    shutdown: impl Future<Output = ()>,
) where
    F: Future<Output = ()> + Send + 'static,
{
    let mut queue = Queue::default();
    let mut in_flight = FuturesUnordered::new();
    let mut triggers = std::pin::pin!(triggers.fuse());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        while let Some(key) = queue.next(limits) {
            let reconcile = tokio::spawn(work(key.clone()));
            // A reconcile that panicked is over too.
            in_flight.push(async move {
                let _ = reconcile.await;
                key
            });
        }
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(key) = in_flight.next(), if !in_flight.is_empty() => queue.done(&key),
            trigger = triggers.next() => match trigger {
                Some(key) => {
                    let urgency = urgency(&key);
                    queue.request(key, urgency);
                }
                None => break,
            },
        }
    }
    while in_flight.next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use Urgency::{DeadlineDue as Due, Routine};

    const LIMITS: Limits = Limits { routine: 2, total: 3 };

    fn key(s: &str) -> Arc<str> {
        s.into()
    }

    fn start_all(q: &mut Queue, limits: Limits) -> Vec<String> {
        std::iter::from_fn(|| q.next(limits)).map(|k| k.to_string()).collect()
    }

    /// Due deadlines go first and may use the room kept for them; routine work takes only its own share.
    #[test]
    fn due_deadlines_go_first_and_routine_work_keeps_to_its_share() {
        let mut q = Queue::default();
        for k in ["ns/a", "ns/b", "ns/c"] {
            q.request(key(k), Routine);
        }
        q.request(key("ns/d"), Due);
        assert_eq!(start_all(&mut q, LIMITS), ["ns/d", "ns/a", "ns/b"]);
        // Routine work is at its share and everything is in flight: a due deadline waits for the first to end.
        q.request(key("ns/e"), Due);
        assert_eq!(start_all(&mut q, LIMITS), Vec::<String>::new());
        q.done(&key("ns/a"));
        assert_eq!(start_all(&mut q, LIMITS), ["ns/e"], "the due deadline, not the routine task before it");
        q.done(&key("ns/d"));
        q.done(&key("ns/e"));
        assert_eq!(start_all(&mut q, LIMITS), ["ns/c"]);
    }

    /// A task is reconciled once at a time: asked for again meanwhile (however often), it runs once more after.
    /// Asked for twice while waiting, it waits once; if it became due meanwhile, it waits in the due line.
    #[test]
    fn a_task_runs_once_at_a_time_and_waits_once() {
        let mut q = Queue::default();
        q.request(key("ns/a"), Routine);
        assert_eq!(start_all(&mut q, LIMITS), ["ns/a"]);
        q.request(key("ns/a"), Routine);
        q.request(key("ns/a"), Due);
        q.request(key("ns/a"), Routine);
        assert_eq!(start_all(&mut q, LIMITS), Vec::<String>::new(), "not twice at once");
        q.done(&key("ns/a"));
        assert_eq!(q.waiting.get("ns/a"), Some(&Due), "asked for again, as urgently as the most urgent ask");
        assert_eq!(start_all(&mut q, LIMITS), ["ns/a"]);
        q.done(&key("ns/a"));
        assert_eq!(start_all(&mut q, LIMITS), Vec::<String>::new(), "once more, not once per ask");

        q.request(key("ns/b"), Routine);
        q.request(key("ns/c"), Routine);
        q.request(key("ns/b"), Routine);
        q.request(key("ns/c"), Due);
        assert_eq!(start_all(&mut q, LIMITS), ["ns/c", "ns/b"], "c moved to the due line, and runs once");
        q.done(&key("ns/b"));
        q.done(&key("ns/c"));
        assert!(q.running.is_empty() && q.waiting.is_empty() && start_all(&mut q, LIMITS).is_empty());
    }

    /// After a burst of 10,000 tasks the lines hold no room for them any more.
    #[test]
    fn a_burst_gives_its_room_back() {
        let mut q = Queue::default();
        for i in 0..10_000 {
            q.request(format!("ns/t-{i}").into(), Routine);
        }
        let limits = Limits { routine: 64, total: 96 };
        while q.running.len() + q.waiting.len() > 0 {
            for k in start_all(&mut q, limits) {
                q.done(&k.into());
            }
        }
        assert!(q.routine.capacity() <= 64 && q.waiting.capacity() <= 128, "{q:?}");
        // The in-flight table never held more than the limits allow (its room is some multiple of that, not of the
        // burst).
        assert!(q.running.capacity() <= 4 * limits.total, "{}", q.running.capacity());
    }

    /// The loop runs each task asked for, keeps to the limits, and on shutdown starts nothing new but lets what is
    /// in flight finish.
    #[tokio::test]
    async fn the_loop_keeps_to_the_limits_and_finishes_what_is_in_flight() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        let counts: Arc<[AtomicUsize; 4]> = Arc::default(); // in flight, most at once, started, finished
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Arc<str>>();
        for i in 0..20 {
            tx.send(format!("ns/t-{i}").into()).expect("sent");
        }
        let triggers = futures::stream::unfold(rx, |mut rx| async { rx.recv().await.map(|k| (k, rx)) });
        let work = |_key: Arc<str>| {
            let counts = counts.clone();
            async move {
                counts[2].fetch_add(1, SeqCst);
                let now = counts[0].fetch_add(1, SeqCst) + 1;
                counts[1].fetch_max(now, SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                counts[0].fetch_sub(1, SeqCst);
                counts[3].fetch_add(1, SeqCst);
            }
        };
        // Shutdown once some have finished; what had started by then is all that may ever start.
        let started_at_shutdown = Arc::new(AtomicUsize::new(0));
        let shutdown = {
            let (counts, at) = (counts.clone(), started_at_shutdown.clone());
            async move {
                while counts[3].load(SeqCst) < 6 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                // Each reconcile counts itself when it first runs: let the ones the loop spawned begin.
                tokio::time::sleep(Duration::from_millis(5)).await;
                at.store(counts[2].load(SeqCst), SeqCst);
            }
        };
        let limits = Limits { routine: 3, total: 4 };
        run(triggers, limits, |_| Urgency::Routine, work, shutdown).await;
        let (started, finished) = (started_at_shutdown.load(SeqCst), counts[3].load(SeqCst));
        assert_eq!(counts[0].load(SeqCst), 0, "nothing left in flight");
        assert_eq!(counts[1].load(SeqCst), 3, "routine work keeps to its share");
        assert!(started < 20, "shut down before the end: {started}");
        assert_eq!(finished, started, "what was in flight at shutdown finished, nothing new began");
        drop(tx);
    }
}
