//! What a build leaves for others to see, as an [`Observer`] of it: every
//! event in `events.jsonl` and to the hooks, every task run and model
//! call in the trace (on lanes, so parallel work shows side by side; each
//! history set aside as the build begins when it is over its cap,
//! `store::history`), and the live `status` snapshot, saved now and then
//! while the build runs (with the tasks a model's full pool holds shown
//! queued for it, and the tasks a build of some targets leaves out judged
//! as `build -n` judges them). When the build's tasks are over it writes
//! `summary.json` (while the build writes its certificate). As the build
//! ends, its lock still held ([`Observer::ended`]), it records the
//! pipeline's last event, writes the idle snapshot and the rest of the
//! trace, so that a build that waited for the lock writes after all of
//! it; [`Recorder::finish`] then delivers the last event to the hooks and
//! says what went wrong with delivery.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::events::{Delivered, Event, Events};
use super::status::{IdleLines, Known};
use super::summary;
use super::trace::{Args, Category, Trace};
use crate::error::{Error, Result};
use crate::exec::observer::{BuildView, Notice, Observer, TaskEnd};
use crate::exec::{BuildReport, Ended, Interrupt};
use crate::model::pipeline::HookDef;
use crate::model::{Action, Task, TaskId};
use crate::plan::{Checker, Plan, Reason, Session};
use crate::store::record::{first_line, with_kind};
use crate::store::{ErrorKind, RunDir, Severity, Stamper, Status, TaskState};

/// The least time between two live snapshots; more when one costs more
/// than a hundredth of it, so they never take a noticeable share of a
/// build (a snapshot is made under the build loop's lock).
const LIVE_EVERY: Duration = Duration::from_millis(500);

/// How many times a snapshot's own cost passes before the next.
const LIVE_SHARE: u32 = 100;

/// How long a build runs its tasks before its first live snapshot: a
/// build over sooner (an edit, a no-op) leaves only the idle one, and
/// until then `status` checks every task, as it does while the build reads
/// the pipeline. Counted from its first task's start, so that the first
/// tasks start before the snapshot's cost (a build of some targets judges
/// every task it leaves out for it) holds the loop.
const LIVE_FIRST: Duration = Duration::from_millis(100);

/// Which task occupies each trace lane.
#[derive(Default)]
struct Lanes {
    lanes: Vec<Option<TaskId>>,
    lane_of: HashMap<TaskId, usize>,
}

/// The events, trace and live snapshot of one build.
/// The running build's view that `status` reads: kept task by task as
/// tasks start and end, and made whole again only when the graph grew.
struct LiveView {
    /// When the next snapshot is due.
    due: Instant,
    known: Option<Known>,
    /// Where the tasks this build leaves out stand (a build of some
    /// targets), judged when `known` was made ([`judge_beside`]), and
    /// again downstream of the tasks that ended since ([`rejudge_beside`]).
    beside: Option<Vec<Option<Reason>>>,
    /// Tasks (ids) that ended since the last snapshot.
    ended: Vec<TaskId>,
    /// Tasks (ids) whose line changed since the last snapshot.
    changed: Vec<TaskId>,
    /// The graph changed shape (a fan-out expanded): every line again.
    rebuild: bool,
    /// Tasks (ids) shown in the last snapshot as held by their model's
    /// pool: said again from their records once they are not.
    held: Vec<TaskId>,
}

pub struct Recorder {
    /// The run directory, as events name it.
    root: PathBuf,
    events: Events,
    trace: Trace,
    lanes: Mutex<Lanes>,
    /// When the next live snapshot is due, and what it says.
    live: Mutex<LiveView>,
    /// Whether `pipeline.started` was sent (a build that runs nothing
    /// sends no events).
    started: AtomicBool,
    /// `summary.json`, once written when the build settled: its quality
    /// warnings, or why it could not be written.
    summary: Mutex<Option<Result<Vec<String>>>>,
    /// The tasks this build ran to their end: the closing line speaks of
    /// their warnings only (the run's others are `status`'s).
    ran: Mutex<HashSet<String>>,
    /// The idle `status` snapshot's lines, made when the build settled
    /// while it wrote the up-to-date certificate they go with.
    idle: Mutex<Option<IdleLines>>,
    /// The graph's models by index, as the build started: the model a
    /// prompt task asks first, which its `task.started` names.
    models: std::sync::OnceLock<Vec<String>>,
    /// What the end of the build left to say, once [`Recorder::end`]
    /// recorded it: warnings, or why `summary.json` could not be written.
    closing: Mutex<Option<Result<Vec<String>>>>,
}

impl Recorder {
    /// Starts recording a build of `run_dir`: events go to the event log,
    /// the pipeline's `hooks` and `webhook` (one named outside it).
    pub fn start(run_dir: &RunDir, hooks: &[HookDef], webhook: Option<&str>) -> Recorder {
        Recorder {
            root: run_dir.root().to_path_buf(),
            events: Events::start(run_dir, hooks, webhook),
            trace: Trace::open(run_dir),
            lanes: Mutex::new(Lanes::default()),
            live: Mutex::new(LiveView {
                due: Instant::now() + LIVE_FIRST,
                known: None,
                beside: None,
                ended: Vec::new(),
                changed: Vec::new(),
                rebuild: false,
                held: Vec::new(),
            }),
            started: AtomicBool::new(false),
            summary: Mutex::new(None),
            ran: Mutex::new(HashSet::new()),
            idle: Mutex::new(None),
            models: Default::default(),
            closing: Mutex::new(None),
        }
    }

    /// The line of task `t` changed: the next live snapshot says it again.
    fn changed(&self, t: TaskId) {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .changed
            .push(t);
    }

    /// Ends the record of the build that `outcome` describes, once (its
    /// lock still held, as [`Observer::ended`] is called; else by
    /// [`Recorder::finish`]): if it ran anything, `summary.json` (here
    /// unless written when the build settled) and then its last event; the
    /// idle `status` snapshot, if it certified the run up to date; the rest
    /// of its trace.
    fn end(&self, session: &Session, outcome: std::result::Result<&BuildReport, &Error>) {
        let mut closing = self.closing.lock().unwrap_or_else(|p| p.into_inner());
        if closing.is_none() {
            *closing = Some(self.record_end(session, outcome));
        }
    }

    /// What [`Recorder::end`] does; the warnings to show (quality warnings
    /// of the tasks this build ran), or why the summary could not be
    /// written.
    fn record_end(
        &self,
        session: &Session,
        outcome: std::result::Result<&BuildReport, &Error>,
    ) -> Result<Vec<String>> {
        let mut warnings = Vec::new();
        let mut quality = None;
        let mut unwritten = None;
        if self.started.load(Ordering::Relaxed) {
            let name = match outcome.map(|r| &r.ended) {
                Ok(Ended::Completed) => "pipeline.completed",
                Ok(Ended::Stopped) => "pipeline.stopped",
                _ => "pipeline.failed",
            };
            // The summary first: whoever the last event tells reads it.
            let written = self
                .summary
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            let found = match written {
                Some(written) => written,
                None => Self::summarize(session),
            };
            let mut event = Event::new(name, None, session.run_dir.root());
            event.error_summary = match outcome {
                Ok(report) => report.error().map(|e| e.to_string()),
                Err(e) => Some(e.to_string()),
            };
            self.events.emit_last(event);
            match found {
                Ok(found) => {
                    warnings.extend(self.own_warnings(name, &found));
                    quality = Some(found);
                }
                Err(e) => unwritten = Some(e),
            }
        }
        if let (None, Ok(Some(generation))) = (&unwritten, outcome.map(|r| r.certified)) {
            let _t = crate::phases::phase("status snapshot: write");
            let lines = self.idle.lock().unwrap_or_else(|p| p.into_inner()).take();
            Known::save_idle(session, generation, quality, lines);
        }
        self.trace.flush();
        match unwritten {
            Some(e) => Err(e),
            None => Ok(warnings),
        }
    }

    /// The closing line of the quality warnings `found` of the tasks this
    /// build ran, if any: a warning of a task up to date before this build
    /// is the run's (`status` lists it), not news of this build.
    fn own_warnings(&self, name: &str, found: &[String]) -> Option<String> {
        let ran = self.ran.lock().unwrap_or_else(|p| p.into_inner());
        let own: Vec<&str> = found
            .iter()
            .map(String::as_str)
            .filter(|w| w.match_indices(": ").any(|(i, _)| ran.contains(&w[..i])))
            .collect();
        // A build that stopped or failed did not complete.
        let lead = match name {
            "pipeline.completed" => "completed with warnings",
            _ => "the tasks this build ran left warnings",
        };
        (!own.is_empty()).then(|| format!("{lead}: {}", own.join("; ")))
    }

    /// Ends the record of the build that `outcome` describes, if
    /// [`Observer::ended`] did not, then delivers its last event to the
    /// hooks (for a few seconds at most, the run directory no longer the
    /// build's own), unless `interrupt` is asked meanwhile. Returns the
    /// warnings to show (quality warnings of the tasks this build ran,
    /// failed deliveries) and whether a signal cut the wait short.
    pub fn finish(
        self,
        session: &Session,
        outcome: std::result::Result<&BuildReport, &Error>,
        interrupt: &Interrupt,
    ) -> Result<Delivered> {
        self.end(session, outcome);
        let closing = self.closing.into_inner().unwrap_or_else(|p| p.into_inner());
        let t = crate::phases::phase("trace and events: finish");
        drop(self.trace);
        let delivered = self.events.finish(interrupt);
        drop(t);
        let mut warnings = closing.unwrap_or_else(|| Ok(Vec::new()))?;
        warnings.extend(delivered.warnings);
        Ok(Delivered {
            warnings,
            cut: delivered.cut,
        })
    }

    /// Writes `summary.json` for the run as `session` holds it; its
    /// quality warnings.
    fn summarize(session: &Session) -> Result<Vec<String>> {
        let _t = crate::phases::phase("summary: build and write");
        let summary = summary::build(
            &session.graph,
            &session.store,
            &session.run_dir,
            session.run.as_ref(),
            &session.pipeline.path.display().to_string(),
        );
        summary::write(&summary, &session.run_dir)?;
        // The sums of the run's calls as they now stand: `status` then
        // reads only the calls of builds after this one.
        crate::store::ledger::remember_totals(&session.run_dir);
        Ok(summary.warnings)
    }
}

impl Observer for Recorder {
    fn ended(&self, session: &Session, outcome: std::result::Result<&BuildReport, &Error>) {
        self.end(session, outcome);
    }

    fn settled(&self, session: &Session, report: &BuildReport) {
        // The summary, and the idle snapshot's lines when the certificate
        // they go with is being written: on two threads, beside that
        // write.
        let started = self.started.load(Ordering::Relaxed);
        let (written, idle) = rayon::join(
            || started.then(|| Self::summarize(session)),
            || {
                report
                    .certifying
                    .then(|| Known::idle_lines(session))
                    .flatten()
            },
        );
        if let Some(written) = written {
            *self.summary.lock().unwrap_or_else(|p| p.into_inner()) = Some(written);
        }
        *self.idle.lock().unwrap_or_else(|p| p.into_inner()) = idle;
    }

    fn build_started(&self, view: &BuildView) {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).due = Instant::now() + LIVE_FIRST;
        let _ = self
            .models
            .set(view.graph.models.iter().map(|m| m.name.clone()).collect());
        if !self.started.swap(true, Ordering::Relaxed) {
            // Before this build writes either: each history it starts
            // afresh is whole.
            crate::store::history::bound(view.run_dir);
            self.events
                .emit(Event::new("pipeline.started", None, view.run_dir.root()));
            self.trace
                .name_build(&format!("planexe build (pid {})", std::process::id()));
        }
    }

    fn notice(&self, notice: &Notice) {
        if matches!(notice, Notice::Expanded { .. }) {
            self.live.lock().unwrap_or_else(|p| p.into_inner()).rebuild = true;
        }
    }

    fn task_skipped(&self, task: &Task, _why: &str) {
        self.changed(task.id);
    }

    fn task_pending_check(&self, task: &Task, _why: &str) {
        self.changed(task.id);
    }

    fn task_started(&self, task: &Task) {
        self.changed(task.id);
        let mut event = Event::new("task.started", Some(&task.name), &self.root);
        event.attempt = Some(1);
        if let Action::Prompt(spec) = &task.action {
            event.model = self.models.get().and_then(|m| m.get(spec.model)).cloned();
        }
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        let lane = match lanes.lanes.iter().position(Option::is_none) {
            Some(free) => free,
            None => {
                lanes.lanes.push(None);
                self.trace.name_lane(lanes.lanes.len() - 1);
                lanes.lanes.len() - 1
            }
        };
        lanes.lanes[lane] = Some(task.id);
        lanes.lane_of.insert(task.id, lane);
        drop(lanes);
        self.events.emit(event);
    }

    fn task_ended(&self, task: &Task, end: &TaskEnd) {
        {
            let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            live.changed.push(task.id);
            live.ended.push(task.id);
        }
        self.ran
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(task.name.clone());
        let status = end.status;
        let lane = {
            let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
            let lane = lanes.lane_of.remove(&task.id);
            if let Some(l) = lane {
                lanes.lanes[l] = None;
            }
            lane.unwrap_or(0)
        };
        for failed in failed_checks(status, &self.root) {
            self.events.emit(failed);
        }
        let name = match status.state {
            TaskState::Done if end.unrecorded.is_some() => "task.unrecorded",
            TaskState::Done if status.rescued => "task.rescued",
            TaskState::Done => "task.completed",
            TaskState::Stopped => "task.stopped",
            _ => "task.failed",
        };
        let mut event = Event::new(name, Some(&status.task), &self.root);
        event.attempt = Some(status.attempt.max(1));
        event.model = status.model.clone();
        event.duration_ms = status.duration_ms;
        if let Some(e) = &status.error {
            event.error_summary = Some(with_kind(e.kind.as_str(), e.first_line()));
            event.error_id = e.error_id.clone();
            event.recoverable = Some(e.recoverable);
        }
        if let Some(why) = end.unrecorded {
            event.error_summary = Some(with_kind(ErrorKind::Io.as_str(), why));
            event.recoverable = Some(true);
        }
        self.events.emit(event);
        if let (Some(start), Some(ms)) = (
            status.started_at.as_deref().and_then(crate::clock::micros),
            status.duration_ms,
        ) {
            self.trace.span(
                &status.task,
                Category::Task,
                lane,
                start,
                ms as i64 * 1000,
                Args {
                    state: Some(match end.unrecorded {
                        Some(_) => "unrecorded".to_string(),
                        None => status.state.as_str().to_string(),
                    }),
                    error: (status.error.as_ref().map(|e| e.message.clone()))
                        .or_else(|| end.unrecorded.map(str::to_string)),
                    ..Args::default()
                },
            );
        }
        for a in &status.attempts {
            if let Some(start) = crate::clock::micros(&a.started_at) {
                self.trace.span(
                    &format!("{} #{}", a.model, a.attempt),
                    Category::Llm,
                    lane,
                    start,
                    a.duration_ms as i64 * 1000,
                    Args {
                        outcome: Some(a.outcome.clone()),
                        error_id: a.error_id.clone(),
                        judge: a.judge,
                        score: a.score,
                        ..Args::default()
                    },
                );
            }
        }
    }

    fn view(&self, view: &BuildView) {
        let start = Instant::now();
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if start < live.due {
            return;
        }
        let _t = crate::phases::phase("status snapshot: live");
        let LiveView {
            known,
            beside,
            ended,
            changed,
            rebuild,
            held,
            ..
        } = &mut *live;
        if !held.is_empty() {
            // Those no longer held started, or wait for a job slot only.
            let now: HashSet<TaskId> = view.held.iter().map(|&(t, _)| t).collect();
            changed.extend(held.drain(..).filter(|t| !now.contains(t)));
        }
        let known = match known {
            Some(known) if !*rebuild && known.fits(view.graph) => {
                known.refresh(view.graph, view.store, view.run_dir, view.reasons, changed);
                // The tasks left out downstream of those that ended are
                // judged again: an upstream task that re-ran is no longer
                // one that will.
                if let Some(again) = beside
                    .as_deref()
                    .and_then(|b| rejudge_beside(view, b, ended))
                {
                    let before = beside.as_deref().unwrap_or_default();
                    changed.extend((0..again.len()).filter(|&t| before.get(t) != again.get(t)));
                    *beside = Some(again);
                }
                let ids = changed.iter().copied();
                let outside = (view.wanted, beside.as_deref());
                known.outside_build(view.graph, view.store, view.run_dir, outside, ids);
                known
            }
            _ => {
                let known = known.insert(Known::of(
                    view.graph,
                    view.pipeline,
                    view.store,
                    view.run_dir,
                    view.reasons,
                    crate::store::Builder::Itself,
                ));
                *beside = judge_beside(view);
                let ids = view.graph.ids().iter().copied();
                let outside = (view.wanted, beside.as_deref());
                known.outside_build(view.graph, view.store, view.run_dir, outside, ids);
                known
            }
        };
        changed.clear();
        ended.clear();
        *rebuild = false;
        for (t, started) in view.running.iter().enumerate() {
            if let Some(started) = started {
                known.mark_running(view.graph.rank(t), Some(started.clone()), view.run_dir);
                if view.pending_check.get(t).copied().unwrap_or(false) {
                    known.mark_pending_check(view.graph.rank(t));
                }
                if let Some(call) = &view.calls[t] {
                    known.mark_call(view.graph.rank(t), call);
                }
            }
        }
        for (t, queued) in view.held {
            let waits = view.running.get(*t).is_some_and(Option::is_none);
            if waits && view.graph.is_live(*t) {
                known.mark_held(view.graph.rank(*t), queued);
                held.push(*t);
            }
        }
        known.save_live(view.run_dir, view.build.clone());
        live.due = Instant::now() + LIVE_EVERY.max(start.elapsed() * LIVE_SHARE);
    }
}

/// Where the tasks a build of some targets leaves out stand, as a dry run
/// of every task would say ([`Plan::beside`]): `None` when it leaves none
/// out, or they cannot be judged (their records then say).
fn judge_beside(view: &BuildView) -> Option<Vec<Option<Reason>>> {
    let wanted = |t: TaskId| view.wanted.get(t).copied().unwrap_or(false);
    if view.graph.ids().iter().all(|&t| wanted(t)) {
        return None;
    }
    let _t = crate::phases::phase("status snapshot: judge the tasks left out");
    Plan::beside(&checker(view, view.stamper), view.wanted, view.reasons).ok()
}

/// [`judge_beside`] again after the tasks `ended` ran: only the tasks
/// left out downstream of them, the others keeping their reasons of
/// `before` ([`Plan::beside_after`]). `None` when none needs it, or they
/// cannot be judged (the last judgement then stands).
fn rejudge_beside(
    view: &BuildView,
    before: &[Option<Reason>],
    ended: &[TaskId],
) -> Option<Vec<Option<Reason>>> {
    let _t = crate::phases::phase("status snapshot: judge the tasks left out again");
    let checker = checker(view, view.stamper);
    Plan::beside_after(&checker, view.wanted, view.reasons, before, ended)?.ok()
}

/// A checker of the tasks in `view`, as the build checks them (its mode).
fn checker<'a>(view: &BuildView<'a>, stamper: &'a Stamper) -> Checker<'a> {
    Checker {
        graph: view.graph,
        source: view.pipeline.source(),
        run_dir: view.run_dir,
        store: view.store,
        stamper,
        mode: view.mode,
    }
}

/// A `task.check_failed` event for each check of the task's run that
/// failed (a warning's too), and for a judge's low score; sent before the
/// task's own event. Those that failed the task carry its error_id.
fn failed_checks(status: &Status, root: &std::path::Path) -> Vec<Event> {
    let failed_the_task = status
        .error
        .as_ref()
        .filter(|e| matches!(e.kind, ErrorKind::CheckFailed | ErrorKind::JudgeRejected));
    let mut said: Vec<(String, Severity)> = status
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| {
            let message = c.message.as_deref().unwrap_or("failed");
            (format!("{}: {}", c.name, first_line(message)), c.severity)
        })
        .collect();
    if let Some(v) = status.judge.as_ref().filter(|v| !v.passed) {
        let severity = if status.state == TaskState::Done {
            Severity::Warn
        } else {
            Severity::Error
        };
        said.push((
            format!("judge: {}", crate::exec::llm::rejection(v)),
            severity,
        ));
    }
    said.into_iter()
        .map(|(summary, severity)| {
            let mut event = Event::new("task.check_failed", Some(&status.task), root);
            event.attempt = Some(status.attempt.max(1));
            event.error_summary = Some(summary);
            event.severity = Some(severity.as_str().to_string());
            if severity == Severity::Error {
                event.error_id = failed_the_task.and_then(|e| e.error_id.clone());
            }
            event
        })
        .collect()
}
