//! [`Recorded`]: the one derivation of what a task's records (its last
//! successful run, a later failure or stop, its `.DONE` marker, its
//! freshest status) say about its last run. Every reader goes through it
//! (the staleness check, `status`, the summary, the report), so they never
//! disagree. And whether a status that says its task runs is true now
//! ([`Status::runs_now`]).

use std::borrow::Cow;

use super::record::{Status, TaskState};
use super::run_record::BuildEntry;

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

/// The build that runs now in a run directory, as a reader of its task
/// statuses sees it.
#[derive(Debug, Clone, Copy)]
pub enum Builder<'a> {
    /// No build runs.
    Nobody,
    /// The reader is the running build.
    Itself,
    /// Another process runs this build.
    Other(&'a BuildEntry),
}

impl<'a> Builder<'a> {
    /// The build `running`, if one runs, seen from another process.
    pub fn other(running: Option<&'a BuildEntry>) -> Builder<'a> {
        running.map_or(Builder::Nobody, Builder::Other)
    }

    /// Whether a build runs.
    pub fn runs(self) -> bool {
        !matches!(self, Builder::Nobody)
    }
}

impl Status {
    /// Whether this status says its task runs now: its state is a running
    /// one, a build runs, and the task's process lives or `running`, the
    /// build that runs now, wrote it (the build itself wrote every running
    /// status it reads). A command task's pid is its command's, which has
    /// ended while its build goes on with the task (its checks, its
    /// judge's call); a status without a pid is a prompt task's, run by the
    /// build itself. With no build running, no task runs: a live process
    /// under the recorded pid is a command a crashed build left behind
    /// (the next build stops it), or, after a reboot, another program
    /// given the same pid.
    pub fn runs_now(&self, running: Builder<'_>) -> bool {
        self.state.is_running()
            && match (self.pid, running) {
                (_, Builder::Itself) => true,
                (_, Builder::Nobody) => false,
                (Some(pid), _) if super::process::alive(pid) => true,
                (Some(_), Builder::Other(build)) => self.started_since(build),
                (None, Builder::Other(_)) => true,
            }
    }

    /// Whether this run started while `build` ran: that build wrote it.
    fn started_since(&self, build: &BuildEntry) -> bool {
        let micros = crate::clock::micros;
        match (
            self.started_at.as_deref().and_then(micros),
            micros(&build.started_at),
        ) {
            (Some(task), Some(build)) => task >= build,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::run_record::BuildOutcome;

    /// A status of a running command task whose command (`pid`) started
    /// at `started_at`.
    fn command(pid: u32, started_at: &str) -> Status {
        let mut status = Status::new("c", TaskState::Running, "f");
        status.pid = Some(pid);
        status.started_at = Some(started_at.into());
        status
    }

    fn build(started_at: &str) -> BuildEntry {
        BuildEntry {
            started_at: started_at.into(),
            finished_at: None,
            outcome: BuildOutcome::Running,
            pid: std::process::id(),
            model: None,
            ran: 0,
        }
    }

    fn ended_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn an_ended_command_runs_while_the_build_that_started_it_runs() {
        let gone = ended_pid();
        let status = command(gone, "2026-11-24T10:00:05.000Z");
        let this_one = build("2026-11-24T10:00:00.000Z");
        let later_one = build("2026-11-24T10:00:06.000Z");
        assert!(status.runs_now(Builder::Other(&this_one)));
        assert!(!status.runs_now(Builder::Other(&later_one)));
        assert!(!status.runs_now(Builder::Nobody));
        assert!(status.runs_now(Builder::Itself));
    }

    #[test]
    fn a_live_command_runs_while_a_build_runs_and_a_finished_state_never_does() {
        let status = command(std::process::id(), "2026-11-24T10:00:05.000Z");
        assert!(status.runs_now(Builder::Other(&build("2026-11-24T10:00:06.000Z"))));
        // No build runs: a live process is a leftover, or another's pid.
        assert!(!status.runs_now(Builder::Nobody));
        let mut done = status.clone();
        done.state = TaskState::Done;
        assert!(!done.runs_now(Builder::Itself));
        let mut no_time = command(ended_pid(), "not a time");
        assert!(!no_time.runs_now(Builder::Other(&build("2026-11-24T10:00:00.000Z"))));
        no_time.pid = None;
        assert!(no_time.runs_now(Builder::Other(&build("2026-11-24T10:00:00.000Z"))));
    }
}
