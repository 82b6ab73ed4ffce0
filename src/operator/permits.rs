//! How many reconciles run at once, operator-wide (across every watched namespace). Routine work (launches,
//! progress reports, cleanup) shares one pool of `--concurrency` permits. A reconcile whose deadline is due may
//! also take one of a reserved pool, so stopping a pod at its deadline never waits behind routine status writes.

use tokio::sync::{Semaphore, SemaphorePermit};

use super::runner::Limits;

/// What a reconcile is about to do, as far as the cache tells before it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Urgency {
    Routine,
    /// The task's deadline (or the moment its pod must start stopping) has come: engine::deadline::is_due.
    DeadlineDue,
}

pub struct Permits {
    limits: Limits,
    routine: Semaphore,
    /// Only for due deadlines.
    reserved: Semaphore,
}

impl Permits {
    /// `routine` permits for routine work, and half as many again (at least one) kept for due deadlines.
    pub fn new(routine: usize) -> Self {
        let reserved = (routine / 2).max(1);
        let limits = Limits { routine, total: routine + reserved };
        Self { limits, routine: Semaphore::new(routine), reserved: Semaphore::new(reserved) }
    }

    /// How many reconciles there are permits for: what a controller may have in flight at once.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Wait for a permit. A due deadline takes a reserved one if it is free, else whichever pool frees one first;
    /// routine work waits in line for its own pool (first come, first served).
    pub async fn acquire(&self, urgency: Urgency) -> SemaphorePermit<'_> {
        let permit = match urgency {
            Urgency::Routine => self.routine.acquire().await,
            Urgency::DeadlineDue => tokio::select! {
                biased;
                p = self.reserved.acquire() => p,
                p = self.routine.acquire() => p,
            },
        };
        permit.expect("the reconcile semaphores are never closed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Poll;

    #[tokio::test]
    async fn a_due_deadline_never_waits_behind_routine_work() {
        let permits = Permits::new(2);
        assert_eq!((permits.limits().routine, permits.limits().total), (2, 3));
        let busy = [permits.acquire(Urgency::Routine).await, permits.acquire(Urgency::Routine).await];
        // Every routine permit is taken, and more routine work is waiting in line.
        let queued = permits.acquire(Urgency::Routine);
        tokio::pin!(queued);
        assert!(futures::poll!(queued.as_mut()).is_pending(), "routine work waits for its pool");
        let due = permits.acquire(Urgency::DeadlineDue);
        tokio::pin!(due);
        let Poll::Ready(reserved) = futures::poll!(due) else {
            panic!("a due deadline waited behind routine work");
        };
        // With the reserved pool busy too, a due deadline takes the next permit of either pool.
        let second = permits.acquire(Urgency::DeadlineDue);
        tokio::pin!(second);
        assert!(futures::poll!(second.as_mut()).is_pending());
        drop(busy);
        assert!(futures::poll!(queued.as_mut()).is_ready(), "first in line for the routine pool");
        assert!(futures::poll!(second.as_mut()).is_ready(), "the second freed routine permit");
        drop(reserved);
    }
}
