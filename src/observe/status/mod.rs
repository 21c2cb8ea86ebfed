//! `status` as a query: the run at a glance, as data ([`StatusReport`],
//! the document `status --json` prints; docs/observability.md), read from
//! state already on disk (run record, state log, sidecars of failed and
//! running tasks, `usage.jsonl`) without taking the lock, so it works
//! during a build; and one task in full ([`TaskDetail`]).
//!
//! The part of the report that needs every task checked ([`Known`], in
//! [`lines`]) is saved as `.planexe/status.snapshot` ([`saved`]): by a
//! running build as it goes, and with the up-to-date certificate.
//! [`Known::saved`] answers from it while the build that wrote it runs, or
//! while what it checks of the certificate holds; otherwise [`query`]
//! checks every task. [`text`] turns a report into the text `status`
//! prints.

mod columns;
mod lines;
mod records;
mod saved;
pub mod text;
pub mod totals;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

pub use lines::{task_lines, CallInFlight, Known, QueuedCall, TaskLine};
pub use records::of_records;
pub use saved::{IdleLines, Saved};

use super::standing::{self, Standing};
use crate::error::Result;
use crate::model::Trouble;
use crate::plan::session::Located;
use crate::plan::{Plan, Session};
use crate::store::ledger::{self, Totals};
use crate::store::run_record::{self, BuildOutcome, LastBuild, RunRecord};
use crate::store::{files, stamp, CheckMode, RunDir, Stamp, Status};
use lines::About;

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
    /// Queued for its model's limits: running, before its next call; not
    /// started, held by its model's pool (`max_concurrency` of its tasks
    /// run).
    pub queued: Option<QueuedCall>,
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
    /// Edited by hand since the task's last run, and kept (what reads it
    /// runs again).
    pub edited: bool,
}

/// How the run stands: `running`, `completed`, `failed`, `stopped` (a build
/// that never recorded its end crashed: it stopped) or `never-built`.
pub fn run_state(run_dir: &RunDir, run: Option<&RunRecord>) -> &'static str {
    state_of(&LastBuild::now(run_dir, run))
}

/// [`run_state`], of the last build as it stands.
fn state_of(last: &LastBuild) -> &'static str {
    match last {
        LastBuild::Never => "never-built",
        LastBuild::Running(_) => "running",
        LastBuild::Ended(b) => match b.outcome {
            BuildOutcome::Completed => "completed",
            BuildOutcome::Failed => "failed",
            BuildOutcome::Stopped | BuildOutcome::Running => "stopped",
        },
    }
}

/// The run's last progress: its last event (`events.jsonl`'s last line)
/// or the last token a running task's call received (`calls`: the lines
/// of the running tasks), whichever is later. A long answer streaming in
/// is progress, though it sends no event until it ends.
fn last_progress(run_dir: &RunDir, calls: &[TaskLine]) -> Option<String> {
    let tokens = calls
        .iter()
        .filter_map(|l| l.call.as_ref()?.last_token_at.as_deref())
        .filter_map(|at| Some((crate::clock::micros(at)?, at)))
        .max_by_key(|(micros, _)| *micros);
    let event = last_event(run_dir);
    let at = |t: &Option<String>| t.as_deref().and_then(crate::clock::micros);
    match tokens {
        Some((micros, token)) if at(&event).is_none_or(|e| micros > e) => Some(token.to_string()),
        _ => event,
    }
}

/// The time of the last event of the run (`events.jsonl`'s last line).
fn last_event(run_dir: &RunDir) -> Option<String> {
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
    let counts = saved::counts(&known.tasks);
    let progress = last_progress(run_dir, &known.tasks);
    assemble(
        run_dir,
        run,
        known.about,
        (counts, progress),
        known.tasks,
        stall_after,
        env_model,
    )
}

/// The report of `tasks`, `counts` of them in each state and the run's
/// last progress ([`last_progress`]), with the run's header and totals
/// read now.
fn assemble(
    run_dir: &RunDir,
    run: Option<&RunRecord>,
    about: About,
    (counts, last_progress_at): (BTreeMap<Standing, usize>, Option<String>),
    tasks: Vec<TaskLine>,
    stall_after: Duration,
    env_model: Option<&str>,
) -> StatusReport {
    // Looked at once: the state, the pid and the stall say the same.
    let standing = LastBuild::now(run_dir, run);
    let last = standing.entry();
    let running = standing.running();
    let stalled = running.is_some()
        && last_progress_at
            .as_deref()
            .or(last.map(|b| b.started_at.as_str()))
            .and_then(crate::clock::since)
            .is_some_and(|d| d > stall_after);
    // The model a build would use now: `$PLANEXE_MODEL`, else the one the
    // run remembers, else the pipeline's.
    let model = env_model
        .map(str::to_string)
        .or_else(|| run.and_then(|r| r.model.clone()))
        .or(about.default_model);
    StatusReport {
        pipeline: about.pipeline,
        pipeline_file: about.pipeline_file,
        run_dir: run_dir.root().display().to_string(),
        run_id: run.map(|r| r.run_id.clone()),
        model,
        created_at: run_record::created_at(run_dir, run),
        last_build_started_at: last.map(|b| b.started_at.clone()),
        last_build_finished_at: last.and_then(|b| b.finished_at.clone()),
        state: state_of(&standing),
        build_pid: running.map(|b| b.pid),
        last_progress_at,
        stalled,
        counts,
        totals: ledger::totals(run_dir),
        warnings: about.warnings,
        tasks,
        fanouts: about.fanouts,
    }
}

/// What `status` answers.
pub enum Answer {
    /// The run, or one fan-out task's instances.
    Run(Box<StatusReport>),
    /// One task in full.
    Task(Box<TaskDetail>),
}

/// `read` (a read of the status of the run at `run_dir`), done once more
/// when the build that ran as it began has ended by the time it is over.
/// The records such a read holds may show tasks in flight that the build
/// ran then, while whether the build runs is asked after its end: those
/// tasks would read as stopped. The second read finds them recorded.
pub fn settled<T>(run_dir: &RunDir, mut read: impl FnMut() -> Result<T>) -> Result<T> {
    let runs = || {
        LastBuild::now(run_dir, RunRecord::load(run_dir).as_ref())
            .running()
            .is_some()
    };
    let ran = runs();
    let answer = read()?;
    if ran && !runs() {
        return read();
    }
    Ok(answer)
}

/// The run's status as `planexe status` answers it: from the status
/// snapshot when [`Known::saved`] trusts it (never while the choice of
/// `located`'s pipeline file has a warning to say), else with every task
/// checked ([`query`]) in the session `read` opens ([`Session::read`]).
/// The one derivation of where each task stands, and of the counts, for
/// `status`, the MCP server's `status` and the report.
pub fn of_run<S: std::borrow::Borrow<Session>>(
    located: &Located,
    mode: CheckMode,
    stall_after: Duration,
    env_model: Option<&str>,
    mut read: impl FnMut() -> Result<S>,
) -> Result<StatusReport> {
    settled(&located.run_dir, || {
        of_run_once(located, mode, stall_after, env_model, &mut read)
    })
}

/// [`of_run`], read once.
fn of_run_once<S: std::borrow::Borrow<Session>>(
    located: &Located,
    mode: CheckMode,
    stall_after: Duration,
    env_model: Option<&str>,
    read: &mut impl FnMut() -> Result<S>,
) -> Result<StatusReport> {
    let run = RunRecord::load(&located.run_dir);
    let saved = located
        .warning
        .is_none()
        .then(|| Known::saved(located, run.as_ref(), mode, env_model))
        .flatten()
        .and_then(|saved| {
            saved.into_report(&located.run_dir, run.as_ref(), stall_after, env_model)
        });
    if let Some(report) = saved {
        return Ok(report);
    }
    match query(read()?.borrow(), None, mode, stall_after, env_model)? {
        Answer::Run(report) => Ok(*report),
        Answer::Task(_) => Err(crate::error::Error::usage(
            "status answered for one task, not the run",
        )),
    }
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
    if let Some(name) = task.filter(|name| !graph.fanouts.contains_key(*name)) {
        return match session.task_named(name) {
            Some(task) => Ok(Answer::Task(Box::new(detail(session, &plan, &task.name)))),
            None => Err(graph.unknown_task(name)),
        };
    }
    let mut known = Known::of_session(session, &plan);
    let damage = session.store.log_damage();
    if damage.is_warning() {
        let rewriter = session.advice().hint(&Trouble::DamagedLog);
        let message = damage.message(&session.run_dir, Some(&rewriter));
        known.about.warnings.push(message);
    }
    for task in session.damaged_sidecars() {
        let path = session.run_dir.show(&session.run_dir.status_path(&task));
        let rewrites = session.advice().hint(&Trouble::DamagedSidecar);
        known
            .about
            .warnings
            .push(format!("{path} is damaged; {rewrites}"));
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
    let status = session.store.latest(&session.run_dir, name).or_else(|| {
        session
            .store
            .done_record(&session.run_dir, name)
            .map(|c| c.into_owned())
    });
    let task = session.graph.task(name);
    // A task its build runs now is running, not stale from an
    // interruption: the live snapshot says which call it has in flight.
    // A task its build has yet to start may be held by its model's pool
    // (only a task in a pool can be): the live snapshot says so too. It
    // is read once, for either.
    let recorded = status.as_ref().filter(|s| s.state.is_running());
    let pooled = task.is_some_and(|t| session.graph.pool(t.id).is_some());
    let line = (recorded.is_some() || pooled)
        .then(|| saved::live_line(session, name))
        .flatten();
    let (live, other) = match line {
        Some(l)
            if recorded.is_some()
                && matches!(l.state, Standing::Running | Standing::FailedPendingCheck) =>
        {
            (Some(l), None)
        }
        other => (None, other),
    };
    let running = live.is_some() || recorded.is_some_and(|s| standing::runs(s, session.builder()));
    let held = other
        .filter(|l| {
            pooled
                && !running
                && !matches!(l.state, Standing::Running | Standing::FailedPendingCheck)
        })
        .and_then(|l| l.queued);
    let reason = task
        .and_then(|t| plan.reasons[t.id].as_ref())
        .filter(|_| !running)
        .map(ToString::to_string);
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
                    edited: plan
                        .edited
                        .iter()
                        .any(|(id, p)| *id == t.id && *p == o.path),
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
        waiting_until: live.as_ref().and_then(|l| l.waiting_until.clone()),
        queued: live.and_then(|l| l.queued).or(held),
        status,
        outputs,
    }
}
