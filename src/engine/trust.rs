//! What podtask believes of a task's status, which anyone allowed to write `podtasks/status` can change (an
//! administrator's `kubectl edit`, a restored backup, another controller).
//!
//! The facts that must never move have a second record that podtask wrote itself on every pod it creates: the
//! first launch (`podtask.dev/start-time`) and the deadline (`podtask.dev/deadline`). While the task has a pod, those
//! are trusted first and a status that disagrees is corrected. A terminal phase is believed only when podtask
//! recorded how the attempt it names ended (`status.attempts`): a task whose current attempt's pod is still there
//! and has no such record follows its pod. Each correction is announced with a Warning Event saying what was found
//! and what it was corrected to.

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::{api::core::v1::Pod, apimachinery::pkg::apis::meta::v1::Time};
use kube::ResourceExt;

use super::{
    Event, deadline, naming,
    pod::{self, deadline_of},
    status::{MAX_ATTEMPTS, MAX_UNCOUNTED_ATTEMPTS},
};
use crate::{
    crd::{Phase, PodTask, PodTaskStatus},
    jiff::Timestamp,
};

/// The reason of the Warning Event that announces a correction.
pub const CORRECTED: &str = "StatusCorrected";

/// How far ahead of this operator's clock a recorded first launch may be (another replica's clock) before it is
/// taken for an edit.
const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// The status as podtask trusts it, and the facts it rests on.
pub(super) struct Trusted {
    /// The status, with what disagreed with podtask's own records corrected.
    pub status: PodTaskStatus,
    /// When the first attempt launched (to the nanosecond, when a pod says so).
    pub first_start: Option<Timestamp>,
    pub deadline: Option<Timestamp>,
    /// A Warning Event per correction.
    pub events: Vec<Event>,
}

/// Check `old` (the task's status as read) against the task's own pods (by attempt) and the spec at `now`.
pub(super) fn check(task: &PodTask, old: &PodTaskStatus, pods: &BTreeMap<u32, &Pod>, now: Timestamp) -> Trusted {
    let mut t = Trusted { status: old.clone(), first_start: None, deadline: None, events: vec![] };
    // The earliest pod that carries podtask's record of the first launch: every pod carries the same one.
    let witness = pods.values().copied().find(|p| recorded_start_of(p).is_some());
    t.first_start = first_start(&mut t, old, witness, pods, now);
    t.deadline = deadline(&mut t, task, old, witness);
    attempt(&mut t, old, pods);
    phase(&mut t, pods);
    t
}

fn first_start(
    t: &mut Trusted,
    old: &PodTaskStatus,
    witness: Option<&Pod>,
    pods: &BTreeMap<u32, &Pod>,
    now: Timestamp,
) -> Option<Timestamp> {
    let written = old.start_time.as_ref().map(|s| s.0);
    if let Some(pod) = witness {
        let start = recorded_start_of(pod)?;
        let stored = deadline::whole_second(start);
        if written.is_some_and(|w| w != stored) {
            let source = format!("the {} annotation of pod {}", naming::ANNOTATION_START_TIME, pod.name_any());
            t.correct("startTime", written, Some(stored), &source);
            t.status.start_time = Some(Time(stored));
        }
        return Some(start);
    }
    match written {
        // No pod records the launch: the status is the only record. It cannot be later than now.
        Some(w) if w > deadline::after(now, CLOCK_SKEW) => {
            let stored = deadline::whole_second(now);
            t.correct("startTime", written, Some(stored), "the current time (no pod records the first launch)");
            t.status.start_time = Some(Time(stored));
            Some(now)
        }
        Some(w) => Some(w),
        // A pod of an older podtask without the annotation: its creation.
        None => pods.values().next().and_then(|p| pod::first_start_of(p)),
    }
}

fn deadline(t: &mut Trusted, task: &PodTask, old: &PodTaskStatus, witness: Option<&Pod>) -> Option<Timestamp> {
    let written = old.deadline.as_ref().map(|d| d.0);
    let derived = deadline::absolute(&task.spec, t.first_start);
    let (trusted, source) = match witness {
        // What the pods were launched with (a pod without the annotation was launched without a deadline, unless
        // someone removed it: then the spec, from the first launch, says it again).
        Some(pod) => match deadline_of(pod) {
            Some(d) => (Some(d), format!("the {} annotation of pod {}", naming::ANNOTATION_DEADLINE, pod.name_any())),
            None => (derived, "the spec, from the first launch".to_owned()),
        },
        // Nothing launched yet: nothing for a status to hold.
        None if t.first_start.is_none() => (derived, "the spec (no attempt has launched)".to_owned()),
        // Between attempts, with no pod left: the status, never later than the spec allows from the recorded first
        // launch. (A status computed from the launch to the nanosecond may be up to a second later than one
        // computed from its whole second.)
        None => match (written, derived) {
            (Some(w), Some(d)) if w >= d && w <= deadline::after(d, Duration::from_secs(1)) => (written, String::new()),
            (Some(w), Some(d)) => (Some(w.min(d)), "the spec, from the recorded first launch".to_owned()),
            (w, d) => (w.or(d), String::new()),
        },
    };
    if written.is_some() && written != trusted {
        t.correct("deadline", written, trusted, &source);
        t.status.deadline = trusted.map(Time);
    }
    trusted
}

/// An attempt number that neither podtask's pods nor its history support goes back to the newest attempt they show.
/// podtask launches attempt N+1 only once it has recorded how attempt N ended, and names each attempt's pod, so
/// the current attempt is at most one past the last recorded one, or that of the newest pod.
fn attempt(t: &mut Trusted, old: &PodTaskStatus, pods: &BTreeMap<u32, &Pod>) {
    if old.uncounted_attempts > MAX_UNCOUNTED_ATTEMPTS {
        let note = format!(
            "status.uncountedAttempts was {}, beyond the {MAX_UNCOUNTED_ATTEMPTS} podtask ever counts; corrected to {MAX_UNCOUNTED_ATTEMPTS}",
            old.uncounted_attempts
        );
        t.events.push(Event { warning: true, reason: CORRECTED.into(), note, action: "Reconcile", pod: None });
        t.status.uncounted_attempts = MAX_UNCOUNTED_ATTEMPTS;
    }
    let newest = pods.keys().next_back().copied().unwrap_or(0);
    let recorded = old.attempts.last().map_or(0, |a| a.attempt).min(MAX_ATTEMPTS);
    if old.attempt <= newest.max(recorded.saturating_add(1)) {
        return;
    }
    let attempt = newest.max(recorded);
    let note = format!(
        "status.attempt was {}, but podtask's pods and attempt history show no attempt after {attempt}; corrected to {attempt}",
        old.attempt
    );
    t.events.push(Event { warning: true, reason: CORRECTED.into(), note, action: "Reconcile", pod: None });
    t.status.attempt = attempt;
}

/// A terminal phase without podtask's record of how the current attempt ended, while that attempt's pod is still
/// there, was not written by podtask: the task follows its pod again (which the rules then end and delete), and
/// its outcome comes from the pod.
fn phase(t: &mut Trusted, pods: &BTreeMap<u32, &Pod>) {
    let s = &t.status;
    let current = s.attempt.max(pods.keys().next_back().copied().unwrap_or(0));
    if !s.phase.is_terminal() || current == 0 || s.attempts.iter().any(|a| a.attempt == current) {
        return;
    }
    let Some(pod) = pods.get(&current) else { return };
    let pod_phase = pod.status.as_ref().and_then(|p| p.phase.as_deref()).unwrap_or("Pending");
    let note = format!(
        "status.phase was {:?}, but podtask recorded no end of attempt {current} and its pod {} is still there (phase {pod_phase}); corrected to {:?}: the task follows its pod",
        s.phase,
        pod.name_any(),
        Phase::Starting,
    );
    t.events.push(Event {
        warning: true,
        reason: CORRECTED.into(),
        note,
        action: "Reconcile",
        pod: Some(pod.name_any()),
    });
    t.status.phase = Phase::Starting;
    t.status.completion_time = None;
}

/// The first launch as podtask recorded it on a pod (no fallback to the pod's own creation).
fn recorded_start_of(pod: &Pod) -> Option<Timestamp> {
    pod.annotations().get(naming::ANNOTATION_START_TIME)?.parse().ok()
}

impl Trusted {
    fn correct(&mut self, field: &str, found: Option<Timestamp>, to: Option<Timestamp>, source: &str) {
        let show =
            |t: Option<Timestamp>| t.map_or_else(|| "unset".to_owned(), |t| deadline::whole_second(t).to_string());
        let note = format!("status.{field} was {}; corrected to {}, from {source}", show(found), show(to));
        self.events.push(Event { warning: true, reason: CORRECTED.into(), note, action: "Reconcile", pod: None });
    }
}
