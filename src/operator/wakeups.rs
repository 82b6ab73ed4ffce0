//! When each task wants its next reconcile (a startup timeout, a deadline, a retry's backoff, ttlAfterFinished),
//! one entry per task, held here rather than in a queue of requests.
//!
//! Every running task waits for something, so at thousands of tasks this is one entry per task all the time.
//! kube-runtime's queue holds each as two copies of a request that carries the task's name, namespace, uid and
//! resourceVersion (500 bytes a task before its own bookkeeping); here it is the task's `namespace/name` once,
//! shared by two small indexes (128 bytes; `footprint_tests::what_a_wakeup_keeps`). A task's newest reconcile sets (or clears) its wakeup, so an earlier one never fires late; a deleted
//! task's wakeup goes with it.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::Stream;
use tokio::sync::{Notify, mpsc};

use super::clock::Clock;
use crate::jiff::Timestamp;

#[derive(Default)]
pub struct Wakeups {
    state: Mutex<State>,
    /// A wakeup was set earlier than the one the timer waits for.
    changed: Notify,
}

#[derive(Default)]
struct State {
    by_task: HashMap<Arc<str>, Timestamp>,
    by_time: BTreeSet<(Timestamp, Arc<str>)>,
}

impl State {
    fn remove(&mut self, key: &str) {
        if let Some((key, at)) = self.by_task.remove_entry(key) {
            self.by_time.remove(&(at, key));
        }
    }
}

impl Wakeups {
    /// The task `namespace/name` wants a reconcile at `at` (None: no wakeup), in place of any it wanted before.
    pub fn set(&self, key: &str, at: Option<Timestamp>) {
        let mut state = self.state.lock().expect("wakeups lock");
        if state.by_task.get(key) == at.as_ref() {
            return;
        }
        state.remove(key);
        let Some(at) = at else { return };
        let key: Arc<str> = key.into();
        let earliest = state.by_time.first().is_none_or(|(first, _)| at < *first);
        state.by_task.insert(key.clone(), at);
        state.by_time.insert((at, key));
        drop(state);
        if earliest {
            self.changed.notify_one();
        }
    }

    /// The wakeup the task `namespace/name` has.
    pub fn of(&self, key: &str) -> Option<Timestamp> {
        self.state.lock().expect("wakeups lock").by_task.get(key).copied()
    }

    /// The tasks whose wakeup is due at `now`, taken out; and when the next one is due.
    fn take_due(&self, now: Timestamp) -> (Vec<Arc<str>>, Option<Timestamp>) {
        let mut state = self.state.lock().expect("wakeups lock");
        let mut due = vec![];
        while let Some((at, _)) = state.by_time.first()
            && *at <= now
        {
            let (_, key) = state.by_time.pop_first().expect("a first entry");
            state.by_task.remove(&key);
            due.push(key);
        }
        (due, state.by_time.first().map(|(at, _)| *at))
    }

    /// The tasks (`namespace/name`) as their wakeups come due. The timer ends when the stream is dropped.
    pub fn due(self: Arc<Self>, clock: Clock) -> impl Stream<Item = Arc<str>> + Send + 'static {
        let (tx, mut rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let (due, next) = self.take_due(clock());
                for key in due {
                    if tx.send(key).is_err() {
                        return;
                    }
                }
                let wait = next.map(|at| Duration::try_from(at.duration_since(clock())).unwrap_or(Duration::ZERO));
                let due = async {
                    match wait {
                        Some(wait) => tokio::time::sleep(wait).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = due => {}
                    () = self.changed.notified() => {}
                    () = tx.closed() => return,
                }
            }
        });
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("a timestamp")
    }

    /// One wakeup per task: the newest replaces the one before (earlier or later), None clears it, and only due
    /// ones are taken, earliest first.
    #[test]
    fn a_task_has_one_wakeup_its_newest() {
        let w = Wakeups::default();
        w.set("ns/a", Some(at("2026-01-01T10:00:10Z")));
        w.set("ns/b", Some(at("2026-01-01T10:00:05Z")));
        w.set("ns/a", Some(at("2026-01-01T10:00:20Z")));
        assert_eq!(w.of("ns/a"), Some(at("2026-01-01T10:00:20Z")));
        let (due, next) = w.take_due(at("2026-01-01T10:00:15Z"));
        assert_eq!(due, vec![Arc::<str>::from("ns/b")], "a's earlier wakeup was replaced");
        assert_eq!(next, Some(at("2026-01-01T10:00:20Z")));
        w.set("ns/a", None);
        assert_eq!(w.take_due(at("2026-01-01T11:00:00Z")), (vec![], None));
        let state = w.state.lock().unwrap();
        assert!(state.by_task.is_empty() && state.by_time.is_empty(), "nothing left behind");
    }

    /// The timer sends each task when its wakeup is due, also one set after the timer started waiting for a later
    /// one, and none before it is due; it ends when its stream is dropped.
    #[tokio::test]
    async fn the_timer_sends_each_task_when_due() {
        let clock: Clock = Arc::new(Timestamp::now);
        let w = Arc::new(Wakeups::default());
        let soon = |ms: i64| Some(Timestamp::now() + std::time::Duration::from_millis(ms as u64));
        w.set("ns/late", soon(60_000));
        let mut due = w.clone().due(clock);
        tokio::time::sleep(Duration::from_millis(50)).await;
        w.set("ns/early", soon(100));
        let first = tokio::time::timeout(Duration::from_secs(5), due.next()).await.expect("sent in time");
        assert_eq!(first.as_deref(), Some("ns/early"));
        assert!(tokio::time::timeout(Duration::from_millis(200), due.next()).await.is_err(), "late is not due");
        assert!(w.of("ns/late").is_some(), "still waiting");
        drop(due);
        for _ in 0..100 {
            if Arc::strong_count(&w) == 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the timer outlived its stream");
    }
}
