//! What a build tells the world, and the one way it tells it: the
//! [`Observer`] trait. The build calls it with data (a [`Notice`], a task
//! that started or ended, its view of every task); observers above this
//! layer turn that into text on a terminal, events and hooks, a trace, or a
//! live status snapshot. A build knows none of them.
//!
//! Calls come from the build loop one at a time (under its lock), from
//! whichever pool thread runs it: observers are `Sync` and keep their
//! state behind their own locks.

use std::time::Duration;

use super::BuildReport;
use crate::error::Error;
use crate::model::{Graph, Pipeline, Task, TaskId};
use crate::plan::{Reason, Session};
use crate::store::snapshot::Live;
use crate::store::{CheckMode, RunDir, Stamper, StateStore, Status};

/// Something a build says along the way.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// A task's command left running by a build that crashed was stopped.
    StoppedLeftover { task: String, pid: u32 },
    /// The pid a crashed build recorded for a task's command names a
    /// process (or a group) that runs but is not that command (any more):
    /// it was left alone, for `why`.
    LeftAlone { task: String, pid: u32, why: String },
    /// Temporary files left by a build that crashed mid-write were removed.
    TemporariesRemoved(usize),
    /// Outputs of a task set aside by an interrupted run were put back.
    Restored { task: String, count: usize },
    /// Files an interrupted run left at a task's output paths, where no
    /// earlier output was set aside, were moved to `folder`
    /// (`.planexe/failed/TASK`): they may be cut short.
    SetApart {
        task: String,
        outputs: Vec<String>,
        folder: String,
    },
    /// A fan-out instance whose item is gone was removed, with the outputs
    /// it had written.
    InstanceRemoved { task: String, outputs: Vec<String> },
    /// A task's status file cannot be read: the task counts as not built.
    UnreadableStatus { path: String, task: String },
    /// A task's status file is damaged but the state log vouches for the
    /// task: it was rewritten from the log (or, in a dry run, would be).
    StatusRepaired { path: String, dry_run: bool },
    /// Lines of the state log do not parse: where, what they cost (the
    /// tasks whose last run was recovered from their sidecars, or lost),
    /// and whether the log was rewritten without them (not in a dry run),
    /// said by `LogDamage::message`.
    LogDamaged { message: String },
    /// A task is no longer in the pipeline; these outputs of it stay.
    TaskLeft { task: String, outputs: Vec<String> },
    /// Tasks no longer declare these outputs (task, path), which their
    /// last run wrote and no task makes now: they stay on disk.
    OutputsDropped { outputs: Vec<(String, String)> },
    /// The build found earlier work.
    Resuming(ResumeSummary),
    /// These tasks' definitions changed since their last run; `unexpanded`:
    /// the fan-outs whose instances done before wait for a list to be
    /// built, whose definitions are judged once it is.
    DefinitionsChanged {
        tasks: Vec<String>,
        unexpanded: Vec<String>,
    },
    /// The model this run remembers from an earlier `--model` is used.
    ModelFromRun(String),
    /// An output edited by hand is kept (or, in a dry run, would be).
    EditedKept {
        task: String,
        path: String,
        dry_run: bool,
    },
    /// Everything wanted is up to date.
    NothingToDo { tasks: usize },
    /// A fan-out's list was built during the build: it expanded into
    /// `instances` instances, `added` of them new to the graph.
    Expanded {
        task: String,
        instances: usize,
        added: usize,
    },
    /// The build's tasks ran.
    Ran(Ran),
    /// An interrupt came before the build started any task (while it
    /// loaded, took the lock, recovered from a crash or planned): it
    /// stopped there, having recorded no build.
    StoppedEarly,
    /// A fan-out expanded into instances whose outputs a glob input of
    /// another task would match, and leaves out
    /// ([`crate::model::Graph::glob_warnings`]).
    GlobLeavesOut(String),
    /// Something wrong with recorded answers (a damaged entry, taken as a
    /// miss; an answer that could not be stored), said once per build.
    Answers(String),
    /// A line of `failures.jsonl` or `usage.jsonl` that could not be
    /// written (a full disk): best effort, but said, once per ledger.
    LineLost(String),
    /// Another planexe holds the run directory's lock (who, in words:
    /// `another build (pid N, started 10:02 UTC) is running in this
    /// directory`): the build waits for it, said once.
    WaitingForLock(String),
    /// A dry run whose build would be refused before it ran anything (a
    /// model's API key not set, a folder of recorded answers missing):
    /// the refusal and its hint, in one line.
    WouldBeRefused(String),
}

impl Notice {
    /// Whether the notice is a warning (the build then writes no
    /// up-to-date certificate: it would hide the warning from later builds).
    pub fn is_warning(&self) -> bool {
        matches!(
            self,
            Notice::UnreadableStatus { .. }
                | Notice::TaskLeft { .. }
                | Notice::OutputsDropped { .. }
                | Notice::StatusRepaired { .. }
                | Notice::LogDamaged { .. }
        )
    }
}

/// Where a resumed run stands before the build starts. Every task the
/// build considers is counted once: done, to run, maybe, behind, or a
/// fan-out (expanding or stuck).
#[derive(Debug, Clone, PartialEq)]
pub struct ResumeSummary {
    /// When the run was created (RFC 3339).
    pub created_at: String,
    /// Up to date.
    pub done: usize,
    /// Of those to run, the ones that failed last time: (task, first line
    /// of its error).
    pub failed: Vec<(String, String)>,
    /// Of those to run, how many were stopped last time.
    pub interrupted: usize,
    /// Will run for a reason of their own (failed and stopped ones
    /// included).
    pub to_run: usize,
    /// Of those to run, how many run because `-B` says so, whatever their
    /// state.
    pub forced: usize,
    /// Run only if, once what they wait for has run, they are still stale
    /// (what they read was rebuilt with other bytes; a fan-out they read
    /// expanded into what they have not seen): early cutoff may skip them.
    pub maybe: usize,
    /// Fan-outs that expand in this build, once their list is built.
    pub expanding: Vec<Unexpanded>,
    /// Fan-outs whose list nothing in this build builds: they cannot
    /// expand.
    pub stuck: Vec<Unexpanded>,
    /// Tasks that cannot run in this build: they wait behind `stuck`.
    pub behind: usize,
    /// The tasks that start first, in the order they start (at most four).
    pub starting_with: Vec<String>,
    /// A dry run's: nothing is resumed or started, it says what a build
    /// would do.
    pub dry_run: bool,
}

/// A fan-out that has not read its list in this build.
#[derive(Debug, Clone, PartialEq)]
pub struct Unexpanded {
    pub name: String,
    /// Its instances whose last run succeeded, from when it last read its
    /// list. Not in `done`: whether each keeps its result depends on its
    /// item in the list to be read.
    pub done_before: usize,
}

/// How the build's tasks ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Ran {
    pub succeeded: usize,
    pub failed: Vec<String>,
    pub stopped: usize,
    pub not_run: usize,
    /// Found up to date once their inputs were rebuilt.
    pub skipped: usize,
    /// Fan-outs whose list was not built: their instances are counted
    /// nowhere.
    pub unexpanded: Vec<String>,
    /// How many of the tasks not run wait behind those fan-outs (what
    /// depends on them, their placeholders aside).
    pub behind_unexpanded: usize,
    pub elapsed: Duration,
    /// Whether an interrupt stopped the build.
    pub interrupted: bool,
}

/// A running build's view of its tasks, for whoever keeps a live snapshot.
pub struct BuildView<'a> {
    pub graph: &'a Graph,
    pub pipeline: &'a Pipeline,
    pub run_dir: &'a RunDir,
    pub store: &'a StateStore,
    /// Why each task runs: the plan's reasons, cleared as tasks succeed.
    pub reasons: &'a [Option<Reason>],
    /// By id: the task is one this build builds (its plan checked it; the
    /// others have no reason, whatever their state).
    pub wanted: &'a [bool],
    /// When each running task started.
    pub running: &'a [Option<String>],
    /// The model call of each running prompt task: the one in flight, or
    /// the wait before the next.
    pub calls: &'a [Option<Progress>],
    /// Tasks that have not started because their model's pool is full:
    /// `max_concurrency` of its prompt tasks run (ninja's pools). Each
    /// waits as [`Wait::Slot`] says, since the build first saw it wait.
    /// Empty without pools.
    pub held: &'a [(TaskId, Queued)],
    /// By id: the running task is `failed-pending-check` (its command
    /// failed; its rescue's checks examine what it wrote).
    pub pending_check: &'a [bool],
    /// Which build this is, as its run record says.
    pub build: &'a Live,
    /// How the build judges a file changed (`--mtime`, or by content).
    pub mode: CheckMode,
    /// The build's stamps and stats of files, as its checks and its
    /// tasks' runs left them.
    pub stamper: &'a Stamper,
}

/// A task's run, as it ended.
pub struct TaskEnd<'a> {
    pub status: &'a Status,
    pub elapsed: Duration,
    /// The last lines of a failed task's log.
    pub tail: &'a [String],
    /// Where the files a failed run left at its output paths are kept
    /// (in `.planexe/failed/TASK/`), as shown.
    pub left: &'a [String],
    /// How many outputs of its last good run a failed run put back.
    pub restored: usize,
    /// A task that succeeded but whose result could not be recorded (its
    /// sidecar, `.DONE` or state log line could not be written, a full
    /// disk): the error. It is not done: the next build runs it again.
    pub unrecorded: Option<&'a str>,
}

/// Progress of a model call, for a progress line.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub model: String,
    /// The task's call number (1-based, over every model it asked).
    pub attempt: u32,
    /// Pieces of the answer streamed so far.
    pub pieces: u64,
    pub elapsed: Duration,
    /// When the call in flight started (none between calls).
    pub call_started_at: Option<std::time::SystemTime>,
    /// When its last piece arrived.
    pub last_piece_at: Option<std::time::SystemTime>,
    /// While the task waits to retry (a `Retry-After`, a backoff): until
    /// when.
    pub waiting_until: Option<std::time::SystemTime>,
    /// While the task waits for its model's limits before a call.
    pub queued: Option<Queued>,
}

/// What a call waits for before it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// A free slot: `max` calls to the model are in flight
    /// (`max_concurrency`).
    Slot { max: usize },
    /// The model's `requests_per_minute` spacing: the call starts then.
    Rate { until: std::time::SystemTime },
}

/// A task waiting for a model's limits before its next call, for `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub model: String,
    /// When the wait began.
    pub since: std::time::SystemTime,
    pub wait: Wait,
}

/// Whoever listens to a build. Every method has a default that ignores it.
pub trait Observer: Sync {
    /// The build has something to say.
    fn notice(&self, _notice: &Notice) {}
    /// The build runs its first task (it runs nothing otherwise).
    fn build_started(&self, _view: &BuildView) {}
    /// `count` tasks are about to run (fan-outs that expand add more:
    /// [`Notice::Expanded`]).
    fn tasks_started(&self, _count: usize) {}
    /// The build's tasks have all ended (or will not start).
    fn tasks_ended(&self) {}
    fn task_started(&self, _task: &Task) {}
    /// A task waiting for its inputs turned out up to date.
    fn task_skipped(&self, _task: &Task, _why: &str) {}
    fn task_ended(&self, _task: &Task, _end: &TaskEnd) {}
    /// A task's command failed (`why`) after writing every output, and its
    /// rescue's checks examine what it wrote: `failed-pending-check`.
    fn task_pending_check(&self, _task: &Task, _why: &str) {}
    /// A model call of a running task made progress.
    fn task_progress(&self, _task: &str, _progress: &Progress) {}
    /// The build's view of its tasks changed (a task ended), or time
    /// passed (a few times a second while tasks run).
    fn view(&self, _view: &BuildView) {}
    /// The build's tasks are over and every record it keeps in `session`
    /// is final: what is left is the up-to-date certificate, which the
    /// build writes on another thread meanwhile (so work done here costs
    /// no time of its own). Not called when the build stops with an
    /// error of its own.
    fn settled(&self, _session: &Session, _report: &BuildReport) {}
    /// The build is over, `outcome` how it ended, and the run directory
    /// still its own (its lock held): what an observer writes of its end
    /// here comes before anything a build that waited for the lock
    /// writes. Called once by every build that took the lock, and by a
    /// dry run; not by one refused or stopped before it.
    fn ended(&self, _session: &Session, _outcome: Result<&BuildReport, &Error>) {}
}

/// An observer that ignores everything.
pub struct Silent;

impl Observer for Silent {}

/// Two observers, told the same in turn.
pub struct Both<A, B>(pub A, pub B);

impl<A: Observer, B: Observer> Observer for Both<A, B> {
    fn notice(&self, notice: &Notice) {
        self.0.notice(notice);
        self.1.notice(notice);
    }
    fn build_started(&self, view: &BuildView) {
        self.0.build_started(view);
        self.1.build_started(view);
    }
    fn tasks_started(&self, count: usize) {
        self.0.tasks_started(count);
        self.1.tasks_started(count);
    }
    fn tasks_ended(&self) {
        self.0.tasks_ended();
        self.1.tasks_ended();
    }
    fn task_started(&self, task: &Task) {
        self.0.task_started(task);
        self.1.task_started(task);
    }
    fn task_skipped(&self, task: &Task, why: &str) {
        self.0.task_skipped(task, why);
        self.1.task_skipped(task, why);
    }
    fn task_ended(&self, task: &Task, end: &TaskEnd) {
        self.0.task_ended(task, end);
        self.1.task_ended(task, end);
    }
    fn task_pending_check(&self, task: &Task, why: &str) {
        self.0.task_pending_check(task, why);
        self.1.task_pending_check(task, why);
    }
    fn task_progress(&self, task: &str, progress: &Progress) {
        self.0.task_progress(task, progress);
        self.1.task_progress(task, progress);
    }
    fn view(&self, view: &BuildView) {
        self.0.view(view);
        self.1.view(view);
    }
    fn settled(&self, session: &Session, report: &BuildReport) {
        self.0.settled(session, report);
        self.1.settled(session, report);
    }
    fn ended(&self, session: &Session, outcome: Result<&BuildReport, &Error>) {
        self.0.ended(session, outcome);
        self.1.ended(session, outcome);
    }
}

impl<O: Observer + ?Sized> Observer for &O {
    fn notice(&self, notice: &Notice) {
        (**self).notice(notice)
    }
    fn build_started(&self, view: &BuildView) {
        (**self).build_started(view)
    }
    fn tasks_started(&self, count: usize) {
        (**self).tasks_started(count)
    }
    fn tasks_ended(&self) {
        (**self).tasks_ended()
    }
    fn task_started(&self, task: &Task) {
        (**self).task_started(task)
    }
    fn task_skipped(&self, task: &Task, why: &str) {
        (**self).task_skipped(task, why)
    }
    fn task_ended(&self, task: &Task, end: &TaskEnd) {
        (**self).task_ended(task, end)
    }
    fn task_pending_check(&self, task: &Task, why: &str) {
        (**self).task_pending_check(task, why)
    }
    fn task_progress(&self, task: &str, progress: &Progress) {
        (**self).task_progress(task, progress)
    }
    fn view(&self, view: &BuildView) {
        (**self).view(view)
    }
    fn settled(&self, session: &Session, report: &BuildReport) {
        (**self).settled(session, report)
    }
    fn ended(&self, session: &Session, outcome: Result<&BuildReport, &Error>) {
        (**self).ended(session, outcome)
    }
}
