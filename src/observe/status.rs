//! `status` as a query: the run at a glance, as data ([`StatusReport`],
//! the document `status --json` prints; docs/state.md), read from state
//! already on disk (run record, state log, sidecars of failed and running
//! tasks, `usage.jsonl`) without taking the lock, so it works during a
//! build. Turning it into text is the caller's.
//!
//! The part of the report that needs every task checked ([`Known`]) is
//! saved as `.planexe/status.snapshot`: by a running build as it goes, and
//! with the up-to-date certificate. [`Known::saved`] answers from it while
//! the build that wrote it runs, or while the certificate holds; otherwise
//! [`query`] checks every task.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::standing::{self, Standing};
use super::summary;
use crate::error::{Error, Result};
use crate::exec::observer::Progress;
use crate::model::fanout;
use crate::model::{Graph, Pipeline};
use crate::plan::certificate::{self, Certificate};
use crate::plan::session::Located;
use crate::plan::{Plan, Reason, Session};
use crate::store::ledger::{self, Totals};
use crate::store::record::JudgeVerdict;
use crate::store::run_record::{BuildOutcome, RunRecord};
use crate::store::snapshot::{Live, Snapshot};
use crate::store::{
    files, sidecar, stamp, CheckMode, Recorded, RunDir, Stamp, StateStore, Status, TaskState,
};

/// One task in `status --json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskLine {
    pub task: String,
    pub state: Standing,
    /// Why the task would run (null when done or running).
    pub reason: Option<String>,
    /// First line of the error of the last failed run.
    pub error: Option<String>,
    pub error_kind: Option<String>,
    pub error_id: Option<String>,
    /// Whether running the build again may fix the failure by itself.
    pub recoverable: Option<bool>,
    /// What to do about a failure.
    pub hint: Option<String>,
    pub attempt: Option<u32>,
    pub model: Option<String>,
    pub pid: Option<u32>,
    pub started_at: Option<String>,
    pub duration_ms: Option<u64>,
    /// The fan-out task an instance belongs to.
    pub fanout: Option<String>,
    /// A running task waiting to retry a model call (a `Retry-After`, a
    /// backoff): until when.
    #[serde(default)]
    pub waiting_until: Option<String>,
    /// A running prompt task: the model call in flight.
    #[serde(default)]
    pub call: Option<CallInFlight>,
    /// A task with a judge: its last verdict, pass or fail.
    #[serde(default)]
    pub judge: Option<JudgeVerdict>,
}

/// The model call a running task has in flight, as the build last saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallInFlight {
    /// The task's call number (1-based, over every model it asked).
    pub attempt: u32,
    pub model: String,
    /// When the call started.
    pub started_at: Option<String>,
    /// Pieces of the answer received so far (close to tokens).
    pub tokens: u64,
    /// When the last of them arrived.
    pub last_token_at: Option<String>,
}

impl TaskLine {
    fn new(task: &str, reason: Option<&Reason>) -> TaskLine {
        TaskLine {
            task: task.to_string(),
            state: Standing::Done,
            reason: reason.map(ToString::to_string),
            error: None,
            error_kind: None,
            error_id: None,
            recoverable: None,
            hint: None,
            attempt: None,
            model: None,
            pid: None,
            started_at: None,
            duration_ms: None,
            fanout: fanout::split_instance(task).map(|(b, _)| b.to_string()),
            waiting_until: None,
            call: None,
            judge: None,
        }
    }

    /// Fills in what a failed or stopped run says.
    fn failure(&mut self, s: &Status) {
        self.attempt = Some(s.attempt);
        self.model = s.model.clone();
        self.judge = s.judge.clone();
        if let Some(e) = &s.error {
            let hint = e.hint();
            // Sidecars of earlier versions have no `recoverable`.
            let recoverable = e.recoverable || e.kind.recoverable();
            self.error = Some(e.first_line().to_string());
            self.error_kind = Some(e.kind.as_str().to_string());
            self.error_id = e.error_id.clone();
            self.recoverable = Some(recoverable);
            self.hint = Some(hint.to_string());
        }
    }

    /// Shows the task as running, with what its status says (a rescue's
    /// checks running: `failed-pending-check`, and how its command failed).
    fn running(&mut self, started_at: Option<String>, s: Option<&Status>) {
        self.state = Standing::Running;
        self.reason = None;
        self.error = None;
        self.error_kind = None;
        self.error_id = None;
        self.recoverable = None;
        self.hint = None;
        self.attempt = Some(1);
        self.started_at = started_at;
        if let Some(s) = s.filter(|s| s.state.is_running()) {
            self.pid = s.pid;
            self.attempt = Some(s.attempt);
            self.started_at = s.started_at.clone();
            self.model = s.model.clone();
            if s.state == TaskState::FailedPendingCheck {
                self.pending_check(s.error.as_ref().map(|e| e.first_line()));
            }
        }
    }

    /// Shows the running task as `failed-pending-check`; `why` its
    /// command's failure.
    fn pending_check(&mut self, why: Option<&str>) {
        self.state = Standing::FailedPendingCheck;
        if let Some(why) = why {
            self.error = Some(why.to_string());
        }
    }
}

/// The whole `status --json` document.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub pipeline: String,
    pub pipeline_file: String,
    pub run_dir: String,
    pub run_id: Option<String>,
    pub model: Option<String>,
    pub created_at: Option<String>,
    pub last_build_started_at: Option<String>,
    pub last_build_finished_at: Option<String>,
    /// `running`, `completed`, `failed`, `stopped` or `never-built`.
    pub state: &'static str,
    pub build_pid: Option<u32>,
    pub last_progress_at: Option<String>,
    pub stalled: bool,
    pub counts: BTreeMap<Standing, usize>,
    pub totals: Totals,
    pub warnings: Vec<String>,
    pub tasks: Vec<TaskLine>,
    /// Fan-out tasks, and whether each still waits for its list.
    #[serde(skip)]
    pub fanouts: BTreeMap<String, bool>,
}

/// One task in full (`status TASK`).
#[derive(Debug, Serialize)]
pub struct TaskDetail {
    pub task: String,
    pub stale: bool,
    pub reason: Option<String>,
    /// Its build runs it now.
    pub running: bool,
    /// Running: the model call in flight, as the build last saw it.
    pub call: Option<CallInFlight>,
    /// Running: waiting to retry a model call until then.
    pub waiting_until: Option<String>,
    /// Its latest status: the sidecar, else the last successful run.
    pub status: Option<Status>,
    /// Every declared output, now and as its last success recorded it.
    pub outputs: Vec<OutputFile>,
}

/// One output of a task: its size on disk (none: missing) and its stamp as
/// the last successful run recorded it.
#[derive(Debug, Serialize)]
pub struct OutputFile {
    pub path: String,
    pub size: Option<u64>,
    pub recorded: Option<Stamp>,
}

/// What `status` reports about the pipeline and its tasks: everything but
/// the run's header and totals, which are read fresh every time.
#[derive(Debug, Serialize, Deserialize)]
pub struct Known {
    /// The pipeline's name.
    pipeline: String,
    pipeline_file: String,
    /// `[pipeline] model`, shown when no override applies.
    default_model: Option<String>,
    /// Fan-out tasks, and whether each still waits for its list.
    fanouts: BTreeMap<String, bool>,
    tasks: Vec<TaskLine>,
    /// Quality warnings of completed tasks.
    warnings: Vec<String>,
}

/// The status line of every task, in declaration order: `reasons` says
/// which must run and why (the plan, or a running build's view of it);
/// `build_running` whether a build runs now.
pub fn task_lines(
    graph: &Graph,
    store: &StateStore,
    run_dir: &RunDir,
    reasons: &[Option<Reason>],
    build_running: bool,
) -> Vec<TaskLine> {
    graph
        .tasks()
        .map(|task| {
            task_line(
                store,
                run_dir,
                &task.name,
                reasons[task.id].as_ref(),
                build_running,
            )
        })
        .collect()
}

/// The status line of one task.
fn task_line(
    store: &StateStore,
    run_dir: &RunDir,
    name: &str,
    reason: Option<&Reason>,
    build_running: bool,
) -> TaskLine {
    let mut line = TaskLine::new(name, reason);
    match reason {
        None => {
            if let Some(done) = store.record(name).and_then(|r| r.done.as_ref()) {
                line.duration_ms = done.duration_ms;
                line.model = done.model.clone();
                line.judge = done.judge.clone();
            }
        }
        Some(Reason::FailedLastTime(message)) => {
            line.state = Standing::Failed;
            match store.recorded(run_dir, name) {
                Recorded::Failed(s) => line.failure(&s),
                _ => line.error = Some(message.clone()),
            }
        }
        Some(Reason::InterruptedLastTime) => {
            let latest = store.sidecar(run_dir, name);
            line.state = Standing::of(reason, latest.as_ref(), build_running);
            match &latest {
                Some(s)
                    if matches!(line.state, Standing::Running | Standing::FailedPendingCheck) =>
                {
                    line.running(s.started_at.clone(), Some(s));
                }
                Some(s) => line.failure(s),
                None => {}
            }
        }
        Some(other) => line.state = Standing::of(Some(other), None, build_running),
    }
    line
}

impl Known {
    /// What `status` reports, from the graph, the state and `reasons`.
    pub fn of(
        graph: &Graph,
        pipeline: &Pipeline,
        store: &StateStore,
        run_dir: &RunDir,
        reasons: &[Option<Reason>],
        build_running: bool,
    ) -> Known {
        let summary = summary::build(graph, store, run_dir, None, "");
        Known {
            warnings: summary.warnings,
            ..Known::without_warnings(graph, pipeline, store, run_dir, reasons, build_running)
        }
    }

    /// [`Known::of`] without the quality warnings (none).
    fn without_warnings(
        graph: &Graph,
        pipeline: &Pipeline,
        store: &StateStore,
        run_dir: &RunDir,
        reasons: &[Option<Reason>],
        build_running: bool,
    ) -> Known {
        Known {
            pipeline: graph.name.clone(),
            pipeline_file: pipeline.path.display().to_string(),
            default_model: pipeline
                .def
                .pipeline
                .model
                .as_ref()
                .map(|m| m.get_ref().clone()),
            fanouts: graph
                .fanouts
                .iter()
                .map(|(name, g)| (name.clone(), g.placeholder))
                .collect(),
            tasks: task_lines(graph, store, run_dir, reasons, build_running),
            warnings: Vec::new(),
        }
    }

    fn of_session(session: &Session, plan: &Plan) -> Known {
        Known::of(
            &session.graph,
            &session.pipeline,
            &session.store,
            &session.run_dir,
            &plan.reasons,
            session.build_running(),
        )
    }

    /// Saves what `status` would report now, for the certificate of
    /// `generation` just written: while it holds, `status` reads this
    /// instead of checking every task. `warnings`: the quality warnings,
    /// when the caller has the summary already. Best effort.
    pub fn save_idle(session: &Session, generation: u64, warnings: Option<Vec<String>>) {
        let plan = Plan::up_to_date(&session.graph);
        let mut known = match warnings {
            None => Known::of_session(session, &plan),
            Some(warnings) => Known {
                warnings,
                ..Known::without_warnings(
                    &session.graph,
                    &session.pipeline,
                    &session.store,
                    &session.run_dir,
                    &plan.reasons,
                    session.build_running(),
                )
            },
        };
        known.tasks.shrink_to_fit();
        Snapshot::idle(generation, known).write(&session.run_dir);
    }

    /// Whether these lines are of `graph`'s tasks as it lists them now (a
    /// graph that grew lists more).
    pub fn fits(&self, graph: &Graph) -> bool {
        self.tasks.len() == graph.len()
    }

    /// Says again what the tasks `changed` (ids) are, from the state and
    /// `reasons`: a running build's view, kept up to date task by task
    /// rather than for every task each time.
    pub fn refresh(
        &mut self,
        graph: &Graph,
        store: &StateStore,
        run_dir: &RunDir,
        reasons: &[Option<Reason>],
        changed: &[usize],
    ) {
        for &t in changed {
            if !graph.is_live(t) {
                continue;
            }
            let rank = graph.rank(t);
            let name = &graph[t].name;
            if let Some(line) = self.tasks.get_mut(rank).filter(|l| l.task == *name) {
                *line = task_line(store, run_dir, name, reasons[t].as_ref(), true);
            }
        }
    }

    /// Shows the task at `index` in the listing as running: a running
    /// build knows, whatever the sidecar's pid says by now. The sidecar
    /// gives the details.
    pub fn mark_running(&mut self, index: usize, started_at: Option<String>, run_dir: &RunDir) {
        let Some(line) = self.tasks.get_mut(index) else {
            return;
        };
        let status = sidecar::read_status(run_dir, &line.task);
        line.running(started_at, status.as_ref());
    }

    /// Shows the running task at `index` in the listing as
    /// `failed-pending-check` (a running build knows).
    pub fn mark_pending_check(&mut self, index: usize) {
        if let Some(line) = self.tasks.get_mut(index) {
            if line.state != Standing::FailedPendingCheck {
                line.pending_check(None);
            }
        }
    }

    /// Shows the model call of the running task at `index` in the
    /// listing: the one in flight, or the wait before the next.
    pub fn mark_call(&mut self, index: usize, progress: &Progress) {
        let Some(line) = self.tasks.get_mut(index) else {
            return;
        };
        let at = |t: Option<std::time::SystemTime>| {
            t.and_then(|t| jiff::Timestamp::try_from(t).ok())
                .map(|t| t.to_string())
        };
        line.waiting_until = at(progress.waiting_until);
        if progress.attempt > 0 {
            line.attempt = Some(progress.attempt);
            line.model = Some(progress.model.clone());
            line.call = Some(CallInFlight {
                attempt: progress.attempt,
                model: progress.model.clone(),
                started_at: at(progress.call_started_at),
                tokens: progress.pieces,
                last_token_at: at(progress.last_piece_at),
            });
        }
    }

    /// Saves what `status` should report while the build `live` runs: it
    /// reads this instead of checking every task. Best effort.
    pub fn save_live(&self, run_dir: &RunDir, live: Live) {
        Snapshot::live(live, self).write(run_dir);
    }

    /// The saved report, when the certificate it was saved with still
    /// holds for this pipeline file and model override (`model`: the one
    /// named for this invocation); or, while a build runs, the snapshot
    /// that build keeps up to date.
    pub fn saved(
        located: &Located,
        run: Option<&RunRecord>,
        mode: CheckMode,
        model: Option<&str>,
    ) -> Option<Known> {
        let run_dir = &located.run_dir;
        let snapshot: Snapshot<Known> = Snapshot::read(run_dir)?;
        if let Some(build) = run.and_then(RunRecord::running_build) {
            let this = Live {
                pid: build.pid,
                started_at: build.started_at.clone(),
            };
            let same_pipeline =
                snapshot.payload.pipeline_file == located.pipeline.display().to_string();
            return (snapshot.live.as_ref() == Some(&this) && same_pipeline)
                .then_some(snapshot.payload);
        }
        let cert = Certificate::read(run_dir)?;
        if snapshot.live.is_some() || snapshot.generation != cert.generation() {
            return None;
        }
        let key = certificate::Key {
            pipeline: &located.pipeline,
            model,
        };
        cert.holds_for_status(run_dir, &key, mode)
            .then_some(snapshot.payload)
    }
}

/// How the run stands: `running`, `completed`, `failed`, `stopped` (a build
/// that never recorded its end crashed: it stopped) or `never-built`.
pub fn run_state(run: Option<&RunRecord>) -> &'static str {
    match run.and_then(|r| r.builds.last()) {
        None => "never-built",
        Some(b) if b.running() => "running",
        Some(b) => match b.outcome {
            BuildOutcome::Completed => "completed",
            BuildOutcome::Failed => "failed",
            BuildOutcome::Stopped | BuildOutcome::Running => "stopped",
        },
    }
}

/// The time of the last event of the run (`events.jsonl`'s last line).
fn last_progress(run_dir: &RunDir) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = files::open_read(&run_dir.events_path()).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(4096))).ok()?;
    let mut tail = String::new();
    f.read_to_string(&mut tail).ok()?;
    let last = tail.lines().rev().find(|l| l.starts_with('{'))?;
    let v: serde_json::Value = serde_json::from_str(last).ok()?;
    v.get("timestamp_utc")?.as_str().map(str::to_string)
}

/// The whole report: `known` with the run's header (from `run`) and
/// totals. A running build is stalled after `stall_after` without
/// progress. `env_model` is `$PLANEXE_MODEL`.
pub fn report(
    run_dir: &RunDir,
    run: Option<&RunRecord>,
    known: Known,
    stall_after: Duration,
    env_model: Option<&str>,
) -> StatusReport {
    let last = run.and_then(|r| r.builds.last());
    let running = last.filter(|b| b.running());
    let last_progress_at = last_progress(run_dir);
    let stalled = running.is_some()
        && last_progress_at
            .as_deref()
            .or(last.map(|b| b.started_at.as_str()))
            .and_then(crate::clock::since)
            .is_some_and(|d| d > stall_after);
    let mut counts: BTreeMap<Standing, usize> = BTreeMap::new();
    for l in &known.tasks {
        *counts.entry(l.state).or_default() += 1;
    }
    // The model a build would use now: `$PLANEXE_MODEL`, else the one the
    // run remembers, else the pipeline's.
    let model = env_model
        .map(str::to_string)
        .or_else(|| run.and_then(|r| r.model.clone()))
        .or(known.default_model);
    StatusReport {
        pipeline: known.pipeline,
        pipeline_file: known.pipeline_file,
        run_dir: run_dir.root().display().to_string(),
        run_id: run.map(|r| r.run_id.clone()),
        model,
        created_at: run.map(|r| r.created_at.clone()),
        last_build_started_at: last.map(|b| b.started_at.clone()),
        last_build_finished_at: last.and_then(|b| b.finished_at.clone()),
        state: run_state(run),
        build_pid: running.map(|b| b.pid),
        last_progress_at,
        stalled,
        counts,
        totals: ledger::totals(run_dir),
        warnings: known.warnings,
        tasks: known.tasks,
        fanouts: known.fanouts,
    }
}

/// What `status` answers.
pub enum Answer {
    /// The run, or one fan-out task's instances.
    Run(Box<StatusReport>),
    /// One task in full.
    Task(Box<TaskDetail>),
}

/// `status [TASK]` with every task checked. `task`: one task, or a fan-out
/// task shown instance by instance.
pub fn query(
    session: &Session,
    task: Option<&str>,
    mode: CheckMode,
    stall_after: Duration,
    env_model: Option<&str>,
) -> Result<Answer> {
    let graph = &session.graph;
    let plan = session.plan_all(mode)?;
    if let Some(name) = task {
        if graph.task(name).is_some() && !graph.fanouts.contains_key(name) {
            return Ok(Answer::Task(Box::new(detail(session, &plan, name))));
        }
        if !graph.fanouts.contains_key(name) {
            return Err(Error::usage(format!("unknown task `{name}`"))
                .hint("run `planexe status` to list tasks"));
        }
    }
    let mut known = Known::of_session(session, &plan);
    let names: Vec<&str> = graph.tasks().map(|t| t.name.as_str()).collect();
    for task in session.store.damaged(&session.run_dir, &names) {
        let path = session.run_dir.show(&session.run_dir.status_path(task));
        known.warnings.push(format!(
            "{path} is damaged; `planexe build` rewrites it from the state log"
        ));
    }
    if let Some(name) = task {
        known
            .tasks
            .retain(|l| l.fanout.as_deref() == Some(name) || l.task == *name);
    }
    // The run record as it is now, not as it was before the full check.
    let run = RunRecord::load(&session.run_dir);
    Ok(Answer::Run(Box::new(report(
        &session.run_dir,
        run.as_ref(),
        known,
        stall_after,
        env_model,
    ))))
}

/// One task in full.
fn detail(session: &Session, plan: &Plan, name: &str) -> TaskDetail {
    let status = session.store.sidecar(&session.run_dir, name).or_else(|| {
        session
            .store
            .done_record(&session.run_dir, name)
            .map(|c| c.into_owned())
    });
    let task = session.graph.task(name);
    // A task its build runs now is running, not stale from an
    // interruption: the live snapshot says which call it has in flight.
    let running = status
        .as_ref()
        .is_some_and(|s| standing::runs(s, session.build_running()));
    let reason = task
        .and_then(|t| plan.reasons[t.id].as_ref())
        .filter(|_| !running)
        .map(ToString::to_string);
    let live = running.then(|| live_line(session, name)).flatten();
    let done = session.store.done_record(&session.run_dir, name);
    let outputs = task
        .map(|t| {
            t.outputs
                .iter()
                .map(|o| OutputFile {
                    path: o.path.clone(),
                    size: stamp::stat_inside(session.run_dir.root(), &o.path)
                        .ok()
                        .flatten()
                        .map(|m| m.size),
                    recorded: done.as_ref().and_then(|d| d.outputs.get(&o.path).cloned()),
                })
                .collect()
        })
        .unwrap_or_default();
    TaskDetail {
        task: name.to_string(),
        stale: reason.is_some(),
        reason,
        running,
        call: live.as_ref().and_then(|l| l.call.clone()),
        waiting_until: live.and_then(|l| l.waiting_until),
        status,
        outputs,
    }
}

/// The line of `task` in the live snapshot of the build running now.
fn live_line(session: &Session, task: &str) -> Option<TaskLine> {
    let build = session.run.as_ref().and_then(RunRecord::running_build)?;
    let snapshot: Snapshot<Known> = Snapshot::read(&session.run_dir)?;
    let this = Live {
        pid: build.pid,
        started_at: build.started_at.clone(),
    };
    if snapshot.live.as_ref() != Some(&this) {
        return None;
    }
    snapshot.payload.tasks.into_iter().find(|l| l.task == task)
}
