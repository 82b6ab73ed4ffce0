//! `decide`: from a PodTask, its pods and the time, to a plan.
//!
//! Facts that must survive an operator restart live in the API server, never in memory: the first launch time
//! (status, and an annotation on every pod), the deadline derived from it, each pod's creation time (the start of
//! its startup timeout), and the attempt history. So a restarted operator makes the same decisions, and enforces the
//! remaining budget rather than a fresh one.

use std::collections::BTreeMap;

use crate::jiff::Timestamp;
use k8s_openapi::{api::core::v1::Pod, apimachinery::pkg::apis::meta::v1::Time};
use kube::ResourceExt;

use super::{
    Config, Event, Next, Observed, Plan, PodDeletion, PodStop,
    classify::{self, Deciding, Failure, PodState, Termination, WaitClass, Waiting},
    create_error::CreateError,
    deadline,
    failure_policy::{self, RuleMatch},
    naming, pod, retry,
    status::{self, HISTORY_LIMIT},
    trust,
};
use crate::crd::{
    AttemptRecord, CleanupPolicy, MAX_RETRY_LIMIT, Outcome, Phase, PodFailurePolicyAction, PodTask, PodTaskStatus,
    Reason,
};

/// Decide what to do about `task`, given what was observed at `seen.now`: either read a pod fresh first (a
/// verdict is due and the cache must not be trusted for it), or carry out a plan.
pub fn decide(task: &PodTask, seen: Observed<'_>, cfg: &Config) -> Next {
    let mut d = Decision::new(task, seen, cfg);
    if task.metadata.deletion_timestamp.is_some() {
        // Garbage collection removes the pods (they carry our ownerReference); nothing to do.
        return Next::Act(Box::default());
    }
    if d.status.phase.is_terminal() {
        d.after_the_end();
    } else if let Err(problem) = spec_problem(task) {
        if d.active_attempt() {
            // Its pod must not run on unsupervised: recorded as ended, it is deleted with the others.
            let pod = d.pods.get(&d.current).copied();
            d.record(pod, Outcome::Failed, Reason::InvalidSpec, Some(&problem), None);
        }
        d.fail(Reason::InvalidSpec, problem);
    } else if d.active_attempt() {
        d.follow_attempt();
    } else if d.current >= status::MAX_ATTEMPTS {
        // Never reached under the schema's bounds; keeps every status podtask writes within them.
        let reason = d.status.attempts.last().map_or(Reason::PodLost, |a| a.reason);
        let message =
            format!("attempt {} would be beyond the {} attempts podtask makes", d.current, status::MAX_ATTEMPTS);
        d.fail(reason, message);
    } else {
        d.next_attempt();
    }
    d.into_next()
}

impl Decision<'_> {
    /// The API server refused to create the pod for the next attempt.
    fn create_refused(&mut self, error: &CreateError) {
        let attempt = self.current + 1;
        let pod_name = naming::pod_name(&self.task.name_any(), &self.uid, attempt);
        // The first attempt to launch starts the budget, whether or not the API server let the pod in.
        let first_start = *self.first_start.get_or_insert(self.now);
        if self.deadline.is_none() {
            self.deadline = deadline::absolute(&self.task.spec, Some(first_start));
        }
        self.status.start_time.get_or_insert(Time(deadline::whole_second(first_start)));
        if let Some(d) = self.deadline {
            self.status.deadline.get_or_insert(Time(d));
            self.requeue(d);
        }
        let retry_at = deadline::after(self.now_s, retry::create_retry(self.cfg.create_retry, first_start, self.now));
        let d = self;
        match error {
            CreateError::Invalid(m) => {
                d.fail(Reason::InvalidSpec, format!("the API server rejected pod {pod_name}: {m}"))
            }
            CreateError::Forbidden(m) => d.fail(Reason::Forbidden, format!("admission refused pod {pod_name}: {m}")),
            CreateError::Conflict(m) => d.fail(Reason::PodConflict, m.clone()),
            CreateError::Quota(m) => {
                d.set(
                    Phase::Pending,
                    Reason::QuotaExceeded,
                    format!("a ResourceQuota refused pod {pod_name}; retrying: {m}"),
                );
                d.requeue(retry_at);
            }
            CreateError::OperatorForbidden(m) => {
                d.plan.events.push(Event {
                    warning: true,
                    reason: "OperatorForbidden".into(),
                    note: format!("podtask may not create pods here (check its RBAC); retrying: {m}"),
                    action: "Create",
                    pod: None,
                });
                d.requeue(retry_at);
            }
            CreateError::Transient(_) => d.requeue(retry_at),
        }
    }
}

struct Decision<'a> {
    task: &'a PodTask,
    /// The next attempt's pod create was just refused by the API server.
    refused: Option<&'a CreateError>,
    cfg: &'a Config,
    now: Timestamp,
    /// `now` rounded up to whole seconds (all the API server stores), for the times podtask records: a recorded
    /// end is never before the real one, so a timeout never looks shorter than it was.
    now_s: Timestamp,
    fresh: bool,
    uid: String,
    old: PodTaskStatus,
    /// The status as podtask trusts it (`trust::check`): `old` with what disagreed with podtask's own records
    /// corrected.
    trusted: PodTaskStatus,
    status: PodTaskStatus,
    /// The task's pods (owned by its UID) by attempt number.
    pods: BTreeMap<u32, &'a Pod>,
    /// The newest attempt known from status or from pods.
    current: u32,
    first_start: Option<Timestamp>,
    deadline: Option<Timestamp>,
    plan: Plan,
    /// Set when a verdict is due on this pod and the pods were read from the cache.
    read_fresh: Option<String>,
    /// Set when the deadline passed and the cache shows this pod live (`Next::StopFirst`).
    stop_first: Option<PodDeletion>,
}

impl<'a> Decision<'a> {
    fn new(task: &'a PodTask, seen: Observed<'a>, cfg: &'a Config) -> Self {
        let uid = task.uid().unwrap_or_default();
        let name = task.name_any();
        let old = task.status.clone().unwrap_or_default();
        // podtask's own pods: owned by the task, and named as podtask names that attempt's pod.
        let pods: BTreeMap<u32, &Pod> = seen
            .pods
            .iter()
            .filter(|p| pod::is_owned_by(p, &uid))
            .filter_map(|p| Some((pod::attempt_of(p)?, p)))
            .filter(|(attempt, p)| p.metadata.name.as_deref() == Some(naming::pod_name(&name, &uid, *attempt).as_str()))
            .collect();
        // The pods' own records of the first launch and the deadline first, then the status (checked).
        let trust::Trusted { status: trusted, first_start, deadline, events } =
            trust::check(task, &old, &pods, seen.now);
        let current = trusted.attempt.max(pods.keys().next_back().copied().unwrap_or(0));
        let mut status = trusted.clone();
        if let Some(start) = first_start {
            status.start_time.get_or_insert(Time(deadline::whole_second(start)));
            if let Some(d) = deadline {
                status.deadline.get_or_insert(Time(d));
            }
        }
        Self {
            task,
            refused: seen.create_refused,
            cfg,
            now: seen.now,
            now_s: deadline::whole_second_ceil(seen.now),
            fresh: seen.fresh,
            uid,
            plan: Plan { events, ..Plan::default() },
            read_fresh: None,
            stop_first: None,
            old,
            trusted,
            status,
            pods,
            current,
            first_start,
            deadline,
        }
    }

    /// Is an attempt under way (launched, not yet recorded as ended)?
    fn active_attempt(&self) -> bool {
        self.current > 0 && !self.status.attempts.iter().any(|a| a.attempt == self.current)
    }

    fn deadline_passed(&self) -> bool {
        self.deadline.is_some_and(|d| d <= self.now)
    }

    // ---- the three situations ----

    /// The task is over: clean up pods per policy and honour ttlAfterFinished.
    fn after_the_end(&mut self) {
        self.confirm_stop();
        let Some(ttl) = self.task.spec.ttl_after_finished else {
            return;
        };
        let Some(done) = self.status.completion_time.as_ref().map(|t| t.0) else {
            return;
        };
        let expires = deadline::after(done, ttl.as_std());
        if expires <= self.now {
            self.plan.delete_task = true;
        } else {
            self.requeue(expires);
        }
    }

    /// A deadline stop is reported as requested until its pod is gone (or has finished), then as done: one more
    /// status write, once.
    fn confirm_stop(&mut self) {
        let current = self.current;
        let Some(record) = self.status.attempts.iter_mut().rev().find(|a| a.attempt == current) else { return };
        if record.stop_requested_time.is_none() || record.pod_gone_time.is_some() {
            return;
        }
        if self.pods.get(&current).is_some_and(|p| !pod::is_finished(p)) {
            return;
        }
        record.pod_gone_time = Some(Time(self.now_s));
        // What was said of a node that did not answer no longer holds: the pod is gone.
        let requested = record.message.as_deref().unwrap_or_default();
        let requested = requested.split(UNREACHABLE_NOTE).next().unwrap_or(requested);
        let message = format!("{requested}; pod {} is gone", record.pod_name);
        record.message = Some(message.clone());
        let message = self.with_history(message);
        self.status.message = Some(message);
    }

    /// No attempt is under way: start the next one when its time has come.
    fn next_attempt(&mut self) {
        if self.deadline_passed() {
            let when = self.deadline.map(|d| d.to_string()).unwrap_or_default();
            let mut msg = if self.current == 0 {
                format!("the deadline {when} passed before the first attempt could start")
            } else {
                format!("the deadline {when} passed before attempt {} could start", self.current + 1)
            };
            if self.old.reason == Some(Reason::QuotaExceeded)
                && let Some(why) = &self.old.message
            {
                msg = format!("{msg}: {why}");
            }
            return self.fail(Reason::DeadlineExceeded, msg);
        }
        if let Some(next) = self.status.next_attempt_time.as_ref().map(|t| t.0).filter(|_| self.current > 0)
            && next > self.now
        {
            self.requeue_deadline();
            return self.requeue(next);
        }
        if let Some(error) = self.refused {
            return self.create_refused(error);
        }
        let attempt = self.current + 1;
        if let Some(earlier) = self.pods.values().find(|p| !pod::is_finished(p)) {
            // Its stop was requested (or it was lost), but its containers may still run: a node that stopped
            // answering, a long grace period. One attempt's pod at a time.
            let (name, of) = (earlier.name_any(), pod::attempt_of(earlier).unwrap_or_default());
            let node =
                pod::unreachable_node(earlier).map(|n| format!(" (its node {n} is not answering)")).unwrap_or_default();
            let msg = format!("attempt {attempt} waits until pod {name} of attempt {of} has stopped{node}");
            self.set(Phase::Pending, Reason::BackingOff, msg);
            return self.requeue_deadline();
        }
        let first_start = self.first_start.unwrap_or(self.now);
        let deadline = self.deadline.or_else(|| deadline::absolute(&self.task.spec, Some(first_start)));
        let pod = pod::build(self.task, attempt, first_start, deadline, self.now);
        let name = pod.name_any();
        // The status says so at once (kstatus reads a task without status as done): the shell creates the pod
        // first and writes this status after it, so a status never names a pod that was not created.
        self.status.attempt = attempt;
        self.status.pod_name = Some(name.clone());
        self.status.next_attempt_time = None;
        self.status.exit_code = None;
        self.status.termination_message = None;
        self.status.start_time.get_or_insert(Time(deadline::whole_second(first_start)));
        if let Some(d) = deadline {
            self.status.deadline.get_or_insert(Time(d));
        }
        let startup_deadline = deadline::after(self.now, self.startup_timeout());
        self.status.startup_deadline = Some(Time(deadline::whole_second_ceil(startup_deadline)));
        self.set(Phase::Starting, Reason::PodCreated, format!("created pod {name} for attempt {attempt}"));
        self.plan.create = Some(pod);
        self.requeue(startup_deadline);
        if let Some(d) = deadline {
            self.requeue(d);
        }
    }

    fn startup_timeout(&self) -> std::time::Duration {
        self.task.spec.startup_timeout.map_or(self.cfg.startup_timeout, |d| d.as_std())
    }

    /// An attempt is under way: follow its pod.
    fn follow_attempt(&mut self) {
        let attempt = self.current;
        let expected = naming::pod_name(&self.task.name_any(), &self.uid, attempt);
        let Some(pod) = self.pods.get(&attempt).copied() else {
            if !self.fresh {
                return self.read_fresh(expected);
            }
            if self.deadline_passed() {
                let when = self.deadline.map(|d| d.to_string()).unwrap_or_default();
                return self.end_attempt(Ending::new(
                    None,
                    Reason::DeadlineExceeded,
                    format!("the deadline {when} passed; pod {expected} is gone"),
                ));
            }
            return self.end_attempt(Ending::new(
                None,
                Reason::PodLost,
                format!("pod {expected} disappeared before it finished"),
            ));
        };
        if self.status.attempt < attempt {
            // A pod status does not know about yet: created by this operator moments ago, or before a restart.
            self.status.attempt = attempt;
            self.status.pod_name = Some(pod.name_any());
            self.status.next_attempt_time = None;
            self.status.exit_code = None;
            self.status.termination_message = None;
        }
        let deciding = pod::deciding_of(pod);
        let state = classify::classify(pod, Deciding(&deciding));
        let over = matches!(state, PodState::Succeeded(_) | PodState::Failed(_));
        if !over && pod.metadata.deletion_timestamp.is_some() {
            if self.stop_time(pod).is_some_and(|stop| stop <= self.now) {
                // Being stopped once its stop was due: podtask's own stop at the deadline whose status write was
                // lost (a crash, a refused write), or anyone's at that point. The deadline is what ended it.
                let when = self.deadline.map(|d| d.to_string()).unwrap_or_default();
                let message =
                    format!("the deadline {when} is due: pod {} is being stopped{}", pod.name_any(), may_run_on(pod));
                return self.end_attempt(Ending::new(Some(pod), Reason::DeadlineExceeded, message));
            }
            // podtask records an attempt's end before deleting its pod, so this deletion came from elsewhere.
            return self.end_attempt(Ending::new(
                Some(pod),
                Reason::PodLost,
                format!("pod {} was deleted by someone else", pod.name_any()),
            ));
        }
        if let Some(stop) = self.stop_time(pod).filter(|stop| !over && *stop <= self.now) {
            if !self.fresh && pod.metadata.resource_version.is_some() && self.deadline_passed() {
                // Overdue (after an API outage, say): the delete goes first, on the cache's view. Only once the
                // deadline itself has passed, so that a pod found gone later (a crash right after the delete)
                // still reads as DeadlineExceeded.
                let version = pod.metadata.resource_version.clone();
                self.stop_first = Some(PodDeletion { resource_version: version, ..PodDeletion::of(pod) });
                return;
            }
            if !self.fresh {
                return self.read_fresh(pod.name_any());
            }
            let when = self.deadline.map(|d| d.to_string()).unwrap_or_default();
            let grace = self.deadline.map_or(0, |d| d.duration_since(stop).as_secs());
            self.plan.deadline_stop = Some(stop);
            let message = format!(
                "the deadline {when} is due: stop of pod {} requested with a {grace}s grace period{}",
                pod.name_any(),
                may_run_on(pod)
            );
            return self.end_attempt(Ending::new(Some(pod), Reason::DeadlineExceeded, message));
        }
        match state {
            PodState::Succeeded(t) => self.succeed(pod, t),
            PodState::Failed(Failure::Exit(t)) => {
                let code = t.exit_code.map_or_else(|| "an unknown code".into(), |c| c.to_string());
                let detail = t.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
                let who = match &t.container {
                    Some(c) => format!("container {c} of pod {}", pod.name_any()),
                    None => format!("pod {}", pod.name_any()),
                };
                let (reason, message) = if t.oom_killed() {
                    (Reason::OOMKilled, format!("{who} ran out of memory (OOMKilled, exit code {code}){detail}"))
                } else {
                    let kubelet = t.reason.as_deref().filter(|r| *r != "Error").map(|r| format!(" ({r})"));
                    (Reason::PodFailed, format!("{who} exited with {code}{}{detail}", kubelet.unwrap_or_default()))
                };
                self.pod_failed(pod, Ending::new(Some(pod), reason, message).with_exit(t))
            }
            PodState::Failed(Failure::DeadlineExceeded) => self.end_attempt(Ending::new(
                Some(pod),
                Reason::DeadlineExceeded,
                format!(
                    "the kubelet stopped pod {} at its activeDeadlineSeconds (the task's deadline)",
                    pod.name_any()
                ),
            )),
            PodState::Failed(Failure::Evicted(m)) => {
                let message = format!("pod {} was evicted: {m}", pod.name_any());
                self.pod_failed(pod, Ending::new(Some(pod), Reason::Evicted, message))
            }
            PodState::Running if pod::unreachable_node(pod).is_some() => {
                let node = pod::unreachable_node(pod).unwrap_or_default();
                let message = format!(
                    "node {node} is not answering: pod {} may still be running there; its last known state is running",
                    pod.name_any()
                );
                self.set(Phase::Running, Reason::NodeUnreachable, message);
                self.status.startup_deadline = None;
                self.requeue_stop(pod);
            }
            PodState::Running => {
                let since = pod::running_since(pod).unwrap_or(self.now);
                if self.hold_progress(deadline::after(since, self.cfg.status_settle)) {
                    return;
                }
                if !self.fresh && self.quiet_so_far() {
                    // A report that costs a status write, on what may be the cache's lagging view of a pod that
                    // has finished meanwhile (under load): one read, and the outcome is written instead.
                    return self.read_fresh(pod.name_any());
                }
                self.set(Phase::Running, Reason::Running, format!("pod {} is running", pod.name_any()));
                self.status.startup_deadline = None;
                self.requeue_stop(pod);
            }
            PodState::Waiting(w) => self.wait_for_start(pod, w),
        }
    }

    fn wait_for_start(&mut self, pod: &Pod, w: Waiting) {
        let created = pod::created_at(pod).unwrap_or(self.now);
        let startup_timeout = self.startup_timeout();
        let startup_deadline = deadline::after(created, startup_timeout);
        let name = pod.name_any();
        match w.class {
            WaitClass::Permanent => {
                let msg = format!("pod {name} cannot start: {}", w.message);
                return self.end_attempt(Ending::new(Some(pod), w.reason, msg));
            }
            WaitClass::ConfigError => {
                let give_up = deadline::after(created, self.cfg.config_error_grace);
                if give_up <= self.now {
                    if !self.fresh {
                        return self.read_fresh(name);
                    }
                    return self.end_attempt(Ending::new(
                        Some(pod),
                        w.reason,
                        format!("pod {name} cannot start: {}", w.message),
                    ));
                }
                self.requeue(give_up);
            }
            WaitClass::Transient => {
                if startup_deadline <= self.now {
                    if !self.fresh {
                        return self.read_fresh(name);
                    }
                    let rate_limited = self.rate_limited_this_attempt(&w);
                    let (reason, what) = match w.reason {
                        Reason::ImagePullBackOff | Reason::ImagePullRateLimited => {
                            (Reason::ImagePullTimeout, "pulling images")
                        }
                        Reason::Unschedulable | Reason::Scheduling => (Reason::Unschedulable, "a node"),
                        _ => (Reason::StartupTimeout, "its containers to start"),
                    };
                    let msg = format!(
                        "pod {name} was still waiting for {what} after the startup timeout {} ({})",
                        crate::duration::Duration::from(startup_timeout),
                        w.message
                    );
                    return self.end_attempt(Ending::new(Some(pod), reason, msg).rate_limited(rate_limited));
                }
                self.requeue(startup_deadline);
            }
        }
        // Normal progress (a node, then containers being created) is news only when that step takes a while, each
        // step timed from its own start; anything else (pulls failing, no node fits, a missing Secret) once the
        // settle time has passed.
        let news_at = match w.reason {
            Reason::Scheduling => deadline::after(created, self.cfg.quiet_progress),
            Reason::ContainerCreating => {
                let step_began = pod::scheduled_at(pod).map_or(created, |at| at.max(created));
                deadline::after(step_began, self.cfg.quiet_progress)
            }
            _ => deadline::after(created, self.cfg.status_settle),
        };
        if self.hold_progress(news_at) {
            return;
        }
        if self.rate_limited_this_attempt(&w) && w.reason == Reason::ImagePullBackOff {
            // The kubelet alternates ErrImagePull (with the registry's 429) and ImagePullBackOff (without it):
            // keep showing the rate limit and the registry's words rather than flapping.
            let message =
                self.old.message.clone().unwrap_or_else(|| format!("waiting for pod {name} to start: {}", w.message));
            self.set(Phase::Starting, Reason::ImagePullRateLimited, message);
        } else {
            self.set(Phase::Starting, w.reason, format!("waiting for pod {name} to start: {}", w.message));
        }
        self.status.startup_deadline = Some(Time(deadline::whole_second_ceil(startup_deadline)));
        self.requeue_stop(pod);
    }

    /// Keep the status as last written until `news_at` (and look again then), while all it has said about this
    /// attempt is that its pod was created or is starting normally. Most pods start, or even finish, within that
    /// time: a successful short task takes two status writes (PodCreated, then Succeeded), four API writes in all
    /// with its pod's create and delete.
    fn hold_progress(&mut self, news_at: Timestamp) -> bool {
        if !self.quiet_so_far() || self.now >= news_at {
            return false;
        }
        self.status = self.trusted.clone();
        self.requeue(news_at);
        true
    }

    /// All the status has said about this attempt is that its pod was created or is starting normally.
    fn quiet_so_far(&self) -> bool {
        self.old.attempt == self.current
            && matches!(self.old.reason, Some(Reason::PodCreated | Reason::Scheduling | Reason::ContainerCreating))
    }

    fn rate_limited_this_attempt(&self, w: &Waiting) -> bool {
        w.reason == Reason::ImagePullRateLimited
            || (self.old.attempt == self.current && self.old.reason == Some(Reason::ImagePullRateLimited))
    }

    // ---- outcomes ----

    fn succeed(&mut self, pod: &Pod, t: Termination) {
        self.record(Some(pod), Outcome::Succeeded, Reason::Completed, None, Some(&t));
        self.status.exit_code = t.exit_code;
        self.status.termination_message = t.message;
        self.set(
            Phase::Succeeded,
            Reason::Completed,
            format!("pod {} succeeded (attempt {})", pod.name_any(), self.current),
        );
        self.mark_done();
    }

    /// The attempt's pod failed: spec.podFailurePolicy's first matching rule decides, else spec.retry.
    fn pod_failed(&mut self, pod: &Pod, ending: Ending<'_>) {
        let deciding = pod::deciding_of(pod);
        let rule = failure_policy::first_match(self.task.spec.pod_failure_policy.as_ref(), pod, Deciding(&deciding));
        match rule {
            Some(rule) if rule.action == PodFailurePolicyAction::Succeed => {
                let t = ending.exit.unwrap_or_default();
                let message = format!("{}; {} counts it as success", ending.message, rule.description);
                self.record(Some(pod), Outcome::Succeeded, Reason::Completed, Some(&message), Some(&t));
                self.note_rule(&rule);
                self.status.exit_code = t.exit_code;
                self.status.termination_message = t.message;
                self.set(Phase::Succeeded, Reason::Completed, message);
                self.mark_done();
            }
            rule => self.end_attempt(Ending { rule, ..ending }),
        }
    }

    /// The current attempt ended without success: retry if the rules, the retry policy and the deadline allow,
    /// else fail.
    fn end_attempt(&mut self, ending: Ending<'_>) {
        let Ending { pod, reason, message, exit, rate_limited, rule } = ending;
        let message = match &rule {
            Some(rule) => format!("{message} ({})", rule.description),
            None => message,
        };
        self.record(pod, Outcome::Failed, reason, Some(&message), exit.as_ref());
        if let Some(rule) = &rule {
            self.note_rule(rule);
        }
        self.status.exit_code = exit.as_ref().and_then(|t| t.exit_code);
        self.status.termination_message = exit.and_then(|t| t.message);
        self.status.startup_deadline = None;
        let attempt = self.current;
        let policy = self.task.spec.retry.as_ref();
        let action = rule.map(|r| r.action);
        if action == Some(PodFailurePolicyAction::RetryWithoutCounting) {
            self.status.uncounted_attempts += 1;
        }
        let counted = attempt.saturating_sub(self.status.uncounted_attempts);
        let retried = match action {
            Some(PodFailurePolicyAction::Fail | PodFailurePolicyAction::Succeed) => false,
            Some(PodFailurePolicyAction::Retry) => counted <= retry::limit(policy),
            Some(PodFailurePolicyAction::RetryWithoutCounting) => {
                self.status.uncounted_attempts <= failure_policy::MAX_UNCOUNTED_RETRIES
            }
            None => reason != Reason::DeadlineExceeded && retry::may_retry(policy, counted, reason),
        };
        if retried {
            let floor = rate_limited.then_some(self.cfg.min_rate_limit_backoff);
            let wait = retry::backoff(policy, counted.max(1), floor);
            let next = deadline::whole_second_ceil(deadline::after(self.now, wait));
            match self.deadline {
                Some(d) if next >= d => {
                    let msg = format!(
                        "{message}; not retried: attempt {} would start at {next}, after the deadline {d}",
                        attempt + 1
                    );
                    self.fail(reason, msg);
                }
                _ => {
                    let msg = format!(
                        "attempt {attempt} ended with {reason}: {message}; attempt {} starts at {next}",
                        attempt + 1
                    );
                    self.set(Phase::Pending, Reason::BackingOff, msg);
                    self.status.next_attempt_time = Some(Time(next));
                    self.requeue(next);
                }
            }
        } else {
            self.fail(reason, message);
        }
    }

    /// The task failed for good.
    fn fail(&mut self, reason: Reason, message: String) {
        let message = self.with_history(message);
        self.set(Phase::Failed, reason, message);
        self.mark_done();
    }

    /// The message of a failed task: after more than one attempt, with the attempts' reasons.
    fn with_history(&self, message: String) -> String {
        let history: Vec<String> =
            self.status.attempts.iter().map(|a| format!("#{} {}", a.attempt, a.reason)).collect();
        match history.len() {
            0 | 1 => message,
            n => format!("{message} (after {n} attempt{}: {})", if n == 1 { "" } else { "s" }, history.join(", ")),
        }
    }

    fn mark_done(&mut self) {
        self.status.completion_time = Some(Time(self.now_s));
        self.status.next_attempt_time = None;
        self.status.startup_deadline = None;
        self.finished_ttl_requeue();
    }

    fn finished_ttl_requeue(&mut self) {
        if let Some(ttl) = self.task.spec.ttl_after_finished {
            self.requeue(deadline::after(self.now_s, ttl.as_std()));
        }
    }

    fn record(
        &mut self,
        pod: Option<&Pod>,
        outcome: Outcome,
        reason: Reason,
        message: Option<&str>,
        exit: Option<&Termination>,
    ) {
        let pod_name = pod.map(|p| p.name_any()).or_else(|| self.status.pod_name.clone()).unwrap_or_default();
        self.status.attempts.push(AttemptRecord {
            attempt: self.current,
            pod_name,
            start_time: pod.and_then(|p| p.creation_timestamp()),
            end_time: Some(Time(self.now_s)),
            outcome,
            reason,
            message: message.map(str::to_owned),
            exit_code: exit.and_then(|t| t.exit_code),
            matched_rule: None,
            // A deadline stop is done once the pod is gone or finished; until then it is only requested.
            stop_requested_time: (reason == Reason::DeadlineExceeded && pod.is_some_and(|p| !pod::is_finished(p)))
                .then_some(Time(self.now_s)),
            pod_gone_time: None,
        });
        let excess = self.status.attempts.len().saturating_sub(HISTORY_LIMIT);
        self.status.attempts.drain(..excess);
    }

    /// The last recorded attempt was decided by a podFailurePolicy rule.
    fn note_rule(&mut self, rule: &RuleMatch) {
        if let Some(last) = self.status.attempts.last_mut() {
            last.matched_rule = Some(rule.description.clone());
        }
    }

    // ---- plumbing ----

    fn set(&mut self, phase: Phase, reason: Reason, message: String) {
        self.status.phase = phase;
        self.status.reason = Some(reason);
        self.status.message = Some(message);
    }

    fn read_fresh(&mut self, pod_name: String) {
        self.read_fresh = Some(pod_name);
    }

    fn requeue(&mut self, at: Timestamp) {
        self.plan.requeue_at = Some(self.plan.requeue_at.map_or(at, |t| t.min(at)));
    }

    /// When stopping `pod` must begin for it to be gone by the deadline (its grace period earlier).
    fn stop_time(&self, pod: &Pod) -> Option<Timestamp> {
        self.deadline.map(|d| pod::stop_at(pod, d))
    }

    fn requeue_stop(&mut self, pod: &Pod) {
        if let Some(stop) = self.stop_time(pod) {
            self.requeue(stop);
        }
    }

    fn requeue_deadline(&mut self) {
        if let Some(d) = self.deadline {
            self.requeue(d);
        }
    }

    /// Pods of ended attempts that the cleanup policy (or a timeout) says must go.
    fn cleanup(&mut self) {
        let policy = self.task.spec.cleanup.unwrap_or_default();
        for (attempt, pod) in &self.pods {
            if pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let record = self.status.attempts.iter().find(|a| a.attempt == *attempt);
            let delete = match record {
                Some(r) => must_delete(r.outcome, r.reason, policy),
                // An attempt newer than status knows is in progress; an older unrecorded one is a stray.
                None => *attempt < self.current,
            };
            if delete {
                self.plan.delete.push(PodDeletion::of(pod));
            } else if record.is_some()
                && !pod::is_finished(pod)
                && let Some(seconds) = pod::seconds_to_stop_now(pod, self.now)
            {
                // Kept, but its outcome is known: what still runs in it (a sidecar) must not run on.
                self.plan.stop.push(PodStop { name: pod.name_any(), uid: pod.uid(), active_deadline_seconds: seconds });
            }
        }
    }

    fn into_next(mut self) -> Next {
        if let Some(pod) = self.read_fresh.take() {
            return Next::ReadFresh(pod);
        }
        if let Some(deletion) = self.stop_first.take() {
            return Next::StopFirst(deletion);
        }
        self.cleanup();
        let generation = self.task.metadata.generation;
        let untouched = PodTaskStatus::default();
        let stale_generation = self.old != untouched && self.old.observed_generation != generation;
        if without_conditions(&self.status) != without_conditions(&self.old) || stale_generation {
            status::bound(&mut self.status);
            self.status.observed_generation = generation;
            status::set_conditions(&mut self.status, generation, self.now_s);
            self.transition_event();
            self.plan.status = Some(self.status);
        }
        Next::Act(Box::new(self.plan))
    }

    fn transition_event(&mut self) {
        let (new, old) = (&self.status, &self.old);
        if (new.phase, new.reason, new.attempt) == (old.phase, old.reason, old.attempt) {
            return;
        }
        let Some(reason) = new.reason else { return };
        let warning = new.phase == Phase::Failed
            || (new.phase == Phase::Pending && reason == Reason::BackingOff)
            || matches!(
                reason,
                Reason::ImagePullRateLimited
                    | Reason::Unschedulable
                    | Reason::CreateContainerConfigError
                    | Reason::NodeUnreachable
            );
        // An Event for what a user looks for in `kubectl describe`: an attempt under way (its first report after
        // the launch, or its adoption), trouble, the end. The launch itself is not one: a short task's only Event is
        // its outcome, which names the pod and the attempt (as many Events per task as the Job controller's).
        // Normal progress after the first report is in the status and the pod's own Events.
        let launched = new.reason == Some(Reason::PodCreated);
        let first_report = old.reason == Some(Reason::PodCreated) && new.attempt == old.attempt;
        let news = warning
            || new.phase.is_terminal()
            || (new.attempt != old.attempt && !launched)
            || first_report
            || new.phase == Phase::Pending;
        if !news {
            return;
        }
        let note = new.message.clone().unwrap_or_default();
        let pod = new.pod_name.clone();
        self.plan.events.push(Event::about(reason, warning, note, "Reconcile", pod));
    }
}

/// What podtask cannot act on in a spec the API server accepted (possible under an older, looser schema).
fn spec_problem(task: &PodTask) -> Result<(), String> {
    if let Some(d) = &task.spec.deadline {
        d.timestamp().map_err(|e| format!("spec.deadline {e}"))?;
    }
    if let Some(limit) = task.spec.retry.as_ref().and_then(|r| r.limit).filter(|l| *l > MAX_RETRY_LIMIT) {
        return Err(format!("spec.retry.limit {limit} is above the most podtask allows ({MAX_RETRY_LIMIT})"));
    }
    // The watch cache holds tasks without their template (it is read before a launch): checked when present. A
    // schema rule would cost the API server more than its budget allows for an unbounded container list.
    let containers = task.spec.template.spec.as_ref().map(|s| s.containers.as_slice());
    if let (Some(named), Some(containers)) = (&task.spec.deciding_containers, containers)
        && let Some(missing) = named.iter().find(|n| !containers.iter().any(|c| &c.name == *n))
    {
        return Err(format!("spec.decidingContainers names {missing:?}, which template.spec.containers does not list"));
    }
    Ok(())
}

/// How an attempt ended without success.
struct Ending<'p> {
    pod: Option<&'p Pod>,
    reason: Reason,
    message: String,
    /// The container's exit, when it ran and failed.
    exit: Option<Termination>,
    /// The registry rate-limited this attempt's pulls: the next attempt waits at least the longer minimum.
    rate_limited: bool,
    /// The podFailurePolicy rule that matched the failed pod.
    rule: Option<RuleMatch>,
}

impl<'p> Ending<'p> {
    fn new(pod: Option<&'p Pod>, reason: Reason, message: String) -> Self {
        Self { pod, reason, message, exit: None, rate_limited: false, rule: None }
    }

    fn with_exit(self, exit: Termination) -> Self {
        Self { exit: Some(exit), ..self }
    }

    fn rate_limited(self, rate_limited: bool) -> Self {
        Self { rate_limited, ..self }
    }
}

/// What a user must know of a pod being stopped on a node that stopped answering.
fn may_run_on(pod: &Pod) -> String {
    pod::unreachable_node(pod)
        .map(|node| format!("{UNREACHABLE_NOTE}{node} is not answering, so it may still be running there"))
        .unwrap_or_default()
}

/// How a stop's message begins to say the pod's node did not answer (dropped once the pod is gone).
const UNREACHABLE_NOTE: &str = "; its node ";

fn without_conditions(s: &PodTaskStatus) -> PodTaskStatus {
    PodTaskStatus { conditions: vec![], observed_generation: None, ..s.clone() }
}

/// Does this ended attempt's pod go? Pods that never ran properly always go; finished ones per policy.
fn must_delete(outcome: Outcome, reason: Reason, policy: CleanupPolicy) -> bool {
    match (outcome, reason) {
        (Outcome::Succeeded, _) => policy != CleanupPolicy::Keep,
        (Outcome::Failed, Reason::PodFailed | Reason::OOMKilled | Reason::Evicted) => policy == CleanupPolicy::Delete,
        (Outcome::Failed, _) => true,
    }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
