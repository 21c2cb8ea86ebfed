//! [`Recorded`]: the one derivation of what a task's records (its last
//! successful run, a later failure or stop, its `.DONE` marker, its
//! freshest status) say about its last run. Every reader goes through it
//! (the staleness check, `status`, the summary, the report), so they never
//! disagree. And whether a status that says its task runs is true now
//! ([`Status::runs_now`]).

use std::borrow::Cow;

use super::record::{Status, TaskState};

/// What a task's records say about its last run. Every reader derives a
/// task's state from this (the staleness check, `status`, the summary, the
/// report), so they never disagree.
#[derive(Debug)]
pub enum Recorded<'a> {
    /// No run is recorded (or one was only announced).
    Never,
    /// The last run failed (and no later run started).
    Failed(Cow<'a, Status>),
    /// The last run was stopped, or was still running when its build ended
    /// (it crashed) or is running now.
    Interrupted(Cow<'a, Status>),
    /// The last run succeeded, but its `.DONE` marker is gone (a run that
    /// started and never ended, or a marker deleted by hand).
    Unmarked(Cow<'a, Status>),
    /// The last run succeeded and its marker stands.
    Done(Cow<'a, Status>),
}

/// The derivation behind [`StateStore::recorded`]: `done` is the last
/// successful run, `last` the log's later failure or stop, `marker`
/// whether `.DONE` exists, `latest` the freshest status there is (asked
/// only when the others do not decide).
pub(super) fn derive<'a>(
    done: Option<Cow<'a, Status>>,
    last: Option<&'a Status>,
    marker: impl FnOnce() -> bool,
    latest: impl FnOnce() -> Option<Status>,
) -> Recorded<'a> {
    let fallback = match done {
        None => Recorded::Never,
        Some(done) => {
            if let Some(l) =
                last.filter(|l| matches!(l.state, TaskState::Failed | TaskState::Stopped))
            {
                // A run that started after that outcome and never ended
                // (planexe died, or it runs now) is what its sidecar says:
                // every state change rewrites it, and a `running` one is
                // newer than any outcome in the log.
                if let Some(s) = latest().filter(|s| s.state.is_running()) {
                    return Recorded::Interrupted(Cow::Owned(s));
                }
                return match l.state {
                    TaskState::Failed => Recorded::Failed(Cow::Borrowed(l)),
                    _ => Recorded::Interrupted(Cow::Borrowed(l)),
                };
            }
            if marker() {
                return Recorded::Done(done);
            }
            Recorded::Unmarked(done)
        }
    };
    match latest() {
        Some(s) if s.state == TaskState::Failed => Recorded::Failed(Cow::Owned(s)),
        Some(s) if s.state == TaskState::Stopped || s.state.is_running() => {
            Recorded::Interrupted(Cow::Owned(s))
        }
        _ => fallback,
    }
}

impl Status {
    /// Whether this status says its task runs now: its state is a running
    /// one and its process lives (without a pid: `build_running`, whether
    /// the build that runs it lives).
    pub fn runs_now(&self, build_running: bool) -> bool {
        self.state.is_running()
            && match self.pid {
                Some(pid) => super::process::alive(pid),
                None => build_running,
            }
    }
}
