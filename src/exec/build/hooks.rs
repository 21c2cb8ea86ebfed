//! The bookkeeping around each task of a build, called by the scheduler
//! one at a time: judge a waiting task again once its inputs are rebuilt
//! (early cutoff), take its `.DONE` away before it runs and hand it what
//! its run needs, record how it ended in the state log, grow the graph
//! when a fan-out's list is built (`growth`), keep the build's view of
//! every task (which the loop's ticks bring up to date: the calls in
//! flight, the tasks a model's full pool holds), and tell the observer.
//! The hooks hold the graph: it may grow while tasks run.

use std::time::SystemTime;

use super::super::actions::prompt_inputs;
use super::super::failure::Failures;
use super::super::interrupt::Interrupt;
use super::super::llm::Llm;
use super::super::observer::{BuildView, Notice, Observer, Queued, TaskEnd, Wait};
use super::super::own_write::OwnWrites;
use super::super::runner::{Checking, RunResult, Start};
use super::super::scheduler::{Growth, Hooks, Outcome};
use crate::error::{Error, Result};
use crate::model::{Action, Graph, Pipeline, Pool, TaskId};
use crate::phases::timed;
use crate::plan::{Check, Checker, Reason, Seeds};
use crate::store::files;
use crate::store::snapshot::Live;
use crate::store::{CheckMode, RunDir, Stamper, StateStore, TaskState};

/// The scheduler's hooks for a build.
pub(super) struct BuildHooks<'a> {
    pub graph: &'a mut Graph,
    pub pipeline: &'a Pipeline,
    pub run_dir: &'a RunDir,
    pub store: &'a mut StateStore,
    pub stamper: &'a Stamper,
    pub mode: CheckMode,
    pub observer: &'a dyn Observer,
    pub interrupt: &'a Interrupt,
    pub llm: Option<&'a Llm<'a>>,
    /// The first failure of planexe's own bookkeeping (not of a task).
    pub error: Option<Error>,
    /// Which build this is, for live snapshots (none in a dry run).
    pub build: Option<Live>,
    /// Why each task runs: the plan's reasons, cleared as tasks succeed.
    pub reasons: Vec<Option<Reason>>,
    /// When each running task started.
    pub running: Vec<Option<String>>,
    /// The model call of each running prompt task, as last ticked.
    pub calls: Vec<Option<crate::exec::observer::Progress>>,
    /// The tasks that have not started because their model's pool is full
    /// (`max_concurrency` of its tasks run), as the loop last ticked, with
    /// since when. Empty without pools.
    pub held: Vec<(TaskId, Queued)>,
    /// Where the pool threads say which tasks are `failed-pending-check`.
    pub checking: &'a Checking,
    /// By id: the task is `failed-pending-check` (its rescue's checks run).
    pub pending_check: Vec<bool>,
    /// By id: the task is one the build is asked for (the targets and what
    /// they need).
    pub wanted: Vec<bool>,
    /// Fan-outs whose list this build makes: they expand (again) when its
    /// producer ends, and their new instances run in the same build.
    pub expanding: std::collections::HashSet<String>,
    /// `-B` (with no targets, or naming the fan-out): new instances run
    /// whatever their records say.
    pub forced: std::collections::HashSet<String>,
    /// The files the run was given when it was made: a fan-out whose new
    /// instance would write one fails.
    pub seeds: &'a Seeds,
    pub failures: &'a Failures<'a>,
    /// Where the executor keeps a write of planexe's own it found no
    /// space for (a prompt task's answer).
    pub own_writes: &'a OwnWrites,
}

impl BuildHooks<'_> {
    /// Tells the observer the build's view of its tasks.
    pub fn view(&self) {
        let Some(build) = &self.build else {
            return;
        };
        self.observer.view(&self.view_of(build));
    }

    /// The build's view of its tasks, as build `build`.
    pub fn view_of<'b>(&'b self, build: &'b Live) -> BuildView<'b> {
        BuildView {
            graph: &*self.graph,
            pipeline: self.pipeline,
            run_dir: self.run_dir,
            store: self.store,
            reasons: &self.reasons,
            wanted: &self.wanted,
            running: &self.running,
            calls: &self.calls,
            held: &self.held,
            pending_check: &self.pending_check,
            build,
            mode: self.mode,
            stamper: self.stamper,
        }
    }

    /// Tells the observer of the tasks that entered `failed-pending-check`
    /// since the last call.
    fn pending_checks(&mut self) {
        for (t, why) in self.checking.take() {
            self.pending_check[t] = true;
            self.observer.task_pending_check(&self.graph[t], &why);
        }
    }

    pub(super) fn keep(&mut self, result: Result<()>) {
        if let Err(e) = result {
            if self.error.is_none() {
                self.error = Some(e);
            }
        }
    }
}

impl Hooks<Start, RunResult> for BuildHooks<'_> {
    fn graph(&self) -> &Graph {
        self.graph
    }

    fn pool(&self, t: TaskId) -> Option<Pool> {
        let pool = self.graph.pool(t)?;
        let task = &self.graph[t];
        let (Some(llm), Action::Prompt(spec)) = (self.llm, &task.action) else {
            return Some(pool);
        };
        let inputs = || prompt_inputs(self.run_dir, task);
        let judge = task.checks.judge.as_ref().map(|j| j.model);
        (!llm.answers_without_a_call(&task.name, spec, judge, inputs)).then_some(pool)
    }

    fn still_stale(&mut self, t: TaskId) -> bool {
        let checker = Checker {
            graph: self.graph,
            source: self.pipeline.source(),
            run_dir: self.run_dir,
            store: self.store,
            stamper: self.stamper,
            mode: self.mode,
        };
        match checker.check(t) {
            Ok(Check::Stale(_)) | Err(_) => true,
            Ok(Check::Fresh { update, edited }) => {
                if let Some(update) = update {
                    let r = self.store.refresh_status(self.run_dir, &update);
                    self.keep(r);
                }
                let task = &self.graph[t];
                for path in edited {
                    self.observer.notice(&Notice::EditedKept {
                        task: task.name.clone(),
                        path,
                        dry_run: false,
                    });
                }
                self.observer
                    .task_skipped(task, "its inputs were rebuilt with the same content");
                self.reasons[t] = None;
                false
            }
        }
    }

    fn starting(&mut self, t: TaskId) -> Start {
        let task = &self.graph[t];
        // The marker goes before anything runs; the `running` sidecar is
        // published later, if the task runs long enough (`inflight`).
        if self.store.has_marker(self.run_dir, &task.name) {
            let r = files::remove_if_exists(&self.run_dir.done_path(&task.name)).map(|_| ());
            self.store.note_marker(&task.name, false);
            self.keep(r);
        }
        let task = &self.graph[t];
        self.running[t] = Some(crate::clock::now_rfc3339());
        timed("build loop: observers of a task's start", || {
            self.observer.task_started(task)
        });
        // A task the plan found never built has no last good run to read.
        let never = matches!(self.reasons[t], Some(Reason::NeverBuilt { .. }));
        Start {
            task: task.clone(),
            previous: if never {
                None
            } else {
                self.store
                    .done_record(self.run_dir, &task.name)
                    .map(std::borrow::Cow::into_owned)
            },
            recheck: self.reasons[t].as_ref().is_some_and(Reason::rechecks),
            first: never,
        }
    }

    fn finished(&mut self, t: TaskId, mut result: RunResult) -> Outcome {
        // A rescue's checks quicker than a tick are still shown, before
        // how the task ended.
        self.pending_checks();
        self.pending_check[t] = false;
        // The answer it could not write comes first: it is why the
        // build stops.
        if let Some(e) = self.own_writes.take() {
            self.keep(Err(e));
        }
        // Why its result could not be recorded, if it could not.
        let mut unrecorded = None;
        if let Some(e) = result.publish_error.take() {
            unrecorded = Some(e.to_string());
            self.keep(Err(e));
        }
        let r = timed("build loop: state log line", || {
            self.store
                .record_outcome(self.run_dir, &result.status, result.sidecar_len)
        });
        if let Err(e) = &r {
            unrecorded.get_or_insert_with(|| e.to_string());
        }
        self.keep(r);
        let status = &result.status;
        // Only a success can be taken for what it is not: a failure's
        // record lost still leaves the task to run again.
        let unrecorded = unrecorded.filter(|_| status.state == TaskState::Done);
        self.running[t] = None;
        self.calls[t] = None;
        self.reasons[t] = match status.state {
            TaskState::Done if unrecorded.is_some() => Some(Reason::MarkerMissing),
            TaskState::Done => None,
            TaskState::Stopped => Some(Reason::InterruptedLastTime { recheck: false }),
            _ => Some(Reason::failed(
                status
                    .error
                    .as_ref()
                    .map(|e| e.first_line().to_string())
                    .unwrap_or_default(),
            )),
        };
        for (path, stamp) in &status.outputs {
            self.stamper.remember(path, stamp);
        }
        for warning in self.llm.map(Llm::take_warnings).unwrap_or_default() {
            self.observer.notice(&Notice::Answers(warning));
        }
        timed("build loop: observers of a task's end", || {
            self.observer.task_ended(
                &self.graph[t],
                &TaskEnd {
                    status,
                    elapsed: result.elapsed,
                    tail: &result.tail,
                    left: &result.left,
                    restored: result.restored,
                    unrecorded: unrecorded.as_deref(),
                },
            )
        });
        // A failure line it could not write, said after its end.
        let lost = self.failures.take_lost();
        for warning in lost.into_iter().chain(self.llm.and_then(Llm::take_lost)) {
            self.observer.notice(&Notice::LineLost(warning));
        }
        timed("build loop: the build's view", || self.view());
        match status.state {
            TaskState::Done => Outcome::Succeeded,
            TaskState::Stopped => Outcome::Stopped,
            _ => Outcome::Failed,
        }
    }

    fn grown(&mut self, t: TaskId) -> Option<Growth> {
        self.expand_lists_of(t)
    }

    fn joined(&mut self, tasks: &[TaskId]) {
        for &t in tasks {
            let graph = &*self.graph;
            self.reasons[t] = graph[t]
                .deps
                .iter()
                .find(|&&d| self.reasons.get(d).is_some_and(Option::is_some))
                .map(|&d| Reason::Upstream(graph[d].name.clone()));
        }
    }

    /// Also once a write of planexe's own found the disk full: a task
    /// started then could not have its outcome recorded (its model calls
    /// paid for, its result run again next time), so none starts; the
    /// running ones end as they would, and the build reports the error.
    fn interrupted(&self) -> bool {
        self.interrupt.requested() || self.error.as_ref().is_some_and(Error::is_no_space)
    }

    fn held(&mut self, tasks: &[(TaskId, Pool)]) {
        if tasks.is_empty() && self.held.is_empty() {
            return;
        }
        // A task held at the last tick keeps its time.
        let before: std::collections::HashMap<TaskId, SystemTime> =
            self.held.drain(..).map(|(t, q)| (t, q.since)).collect();
        let now = SystemTime::now();
        for &(t, pool) in tasks {
            let Some(model) = self.graph.models.get(pool.id) else {
                continue;
            };
            self.held.push((
                t,
                Queued {
                    model: model.name.clone(),
                    since: before.get(&t).copied().unwrap_or(now),
                    wait: Wait::Slot { max: pool.depth },
                },
            ));
        }
    }

    fn tick(&mut self) {
        self.pending_checks();
        if let Some(llm) = self.llm {
            for (task, progress) in llm.progress() {
                self.observer.task_progress(&task, &progress);
                if let Some(t) = self.graph.task(&task) {
                    self.calls[t.id] = Some(progress);
                }
            }
        }
        self.view();
    }
}
