//! `planexe build`: plan, then run the stale tasks through the scheduler,
//! recording each state change.
//!
//! Invariants kept here: an output is only recorded after the command
//! exited 0 and every declared output exists; `.DONE` is written last; the
//! outputs of a failed attempt are moved to `.planexe/failed/TASK/` and the
//! outputs of the last good run are put back, so a failed re-run never
//! destroys earlier good work and never leaves a half-written file in place.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::cli::{BuildArgs, Cli};
use crate::command::{self, Exit, Watchdog};
use crate::error::{Error, Result};
use crate::events::{Event, Events};
use crate::graph::{Action, Graph, TaskId};
use crate::inflight::Inflight;
use crate::interrupt::Interrupt;
use crate::llm::config::PromptSpec;
use crate::llm::Llm;
use crate::plan::{Check, Checker, Plan, Reason};
use crate::printer::Printer;
use crate::run::{self, RunRecord};
use crate::rundir::{self, RunDir};
use crate::scheduler::{self, Hooks, Outcome, Runner};
use crate::session::{ModelSourceKind, Session};
use crate::stamp::{CheckMode, Stamper};
use crate::state::{self, StateStore, Status, TaskError, TaskState};
use crate::trace::Trace;

/// How many lines of a failed task's output to show.
const TAIL_LINES: usize = 15;

pub fn build(
    cli: &Cli,
    args: &BuildArgs,
    printer: &mut Printer,
    interrupt: &Interrupt,
) -> Result<()> {
    // A whole build with nothing to do, as the last one left it: stats
    // alone say so.
    if args.targets.is_empty() && !args.force {
        if let Some(tasks) = certified(cli, args)? {
            if !args.question {
                printer.note(&format!("nothing to do: {tasks} task(s) up to date"));
            }
            return Ok(());
        }
    }
    // Never freed: a build is the last thing the process does, and freeing
    // ten thousand records one by one costs more than a whole no-op check.
    let session: &mut Session = Box::leak(Box::new(Session::open(
        cli,
        printer,
        args.model.as_deref(),
    )?));
    let read_only = args.dry_run || args.question;
    let _lock = if read_only {
        None
    } else {
        Some(session.run_dir.lock("build")?)
    };
    if !read_only {
        session.record_pipeline()?;
        reconcile(
            &session.run_dir,
            &session.graph,
            session.run.as_ref(),
            printer,
        )?;
        // The sidecars now say what the journal said.
        session.store.set_in_flight(Vec::new());
    }
    // A build runs in phases only when `foreach` tasks wait for their list
    // file: once a phase has built it, the graph grows and the next phase
    // runs the new instances.
    let observers = (!read_only).then(|| Observers {
        // After `reconcile`, which read the journal the last build left.
        inflight: Inflight::start(&session.run_dir),
        events: Events::start(
            &session.run_dir.state_dir(),
            session.run_dir.root(),
            &session.graph.hooks,
        ),
        trace: Trace::open(&session.run_dir.state_dir()),
        started: AtomicBool::new(false),
    });
    let mut ran_before: HashSet<String> = HashSet::new();
    let mut phase = 0;
    let result = loop {
        match build_phase(
            session,
            args,
            printer,
            interrupt,
            phase,
            &mut ran_before,
            observers.as_ref(),
        ) {
            Ok(true) => phase += 1,
            Ok(false) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    // The whole pipeline built (or found up to date) without a warning: the
    // next build and `status` can tell from stats alone that it is still so.
    if result.is_ok() && !read_only && args.targets.is_empty() && !printer.warned() {
        certify(session);
    }
    if let Some(obs) = observers {
        if obs.started.load(Ordering::Relaxed) {
            let name = match &result {
                Ok(()) => "pipeline.completed",
                Err(Error::Interrupted) => "pipeline.stopped",
                Err(_) => "pipeline.failed",
            };
            let mut event = Event::new(name, None, session.run_dir.root());
            if let Err(e) = &result {
                event.error_summary = Some(e.to_string());
            }
            obs.events.emit(event);
            let summary = crate::summary::build(
                &session.graph,
                &session.store,
                &session.run_dir,
                session.run.as_ref(),
                &session.pipeline.path.display().to_string(),
            );
            if !summary.warnings.is_empty() {
                printer.warn(&format!(
                    "completed with warnings: {}",
                    summary.warnings.join("; ")
                ));
            }
            crate::summary::write(&summary, &session.run_dir)?;
        }
        for warning in obs.events.finish() {
            printer.warn(&warning);
        }
    }
    result
}

/// Writes the up-to-date certificate when every task is done with its
/// current definition and every file is as its records say, and the
/// `status` snapshot that goes with it. Best effort: without them, the next
/// build and `status` check every task, as they would anyway.
fn certify(session: &Session) {
    let generation = crate::certificate::write(
        &session.run_dir,
        &session.pipeline,
        &session.graph,
        &session.store,
        &session.certificate_key(),
    );
    if let Ok(Some(generation)) = generation {
        let tasks = session.graph.tasks.len();
        let plan = crate::plan::Plan {
            wanted: vec![true; tasks],
            reasons: vec![None; tasks],
            updates: Vec::new(),
            edited: Vec::new(),
        };
        crate::status::Known::save(session, &plan, generation);
    }
}

/// The number of tasks the up-to-date certificate vouches for, when it
/// holds for this run directory, pipeline file and model override.
fn certified(cli: &Cli, args: &BuildArgs) -> Result<Option<u64>> {
    // A warning about the pipeline's choice is for the full path to print.
    let (run_dir, pipeline, _, None) = crate::session::locate(cli)? else {
        return Ok(None);
    };
    let Some(cert) = crate::certificate::Certificate::read(&run_dir) else {
        return Ok(None);
    };
    let model = args.model.clone().or_else(crate::session::env_model);
    let key = crate::certificate::Key {
        pipeline: &pipeline,
        model: model.as_deref(),
    };
    let Some(holds) = cert.holds(&run_dir, &key, args.check) else {
        return Ok(None);
    };
    if holds.clean() || args.dry_run || args.question {
        return Ok(Some(holds.tasks));
    }
    // Files touched with the same bytes: their new stamps are recorded, as
    // the full check would, under the lock, unless another command changed
    // the state since the check (every one that does appends to the log).
    // A busy lock is for the full path to report.
    let Ok(_lock) = run_dir.lock("build") else {
        return Ok(None);
    };
    if !cert.log_unchanged(&run_dir) {
        return Ok(None);
    }
    let tasks = holds.tasks;
    cert.record(&run_dir, &holds)?;
    Ok(Some(tasks))
}

/// What one build (not a dry run) tells the world: the in-flight journal
/// and `running` sidecars, the event log and hooks, the trace.
struct Observers {
    inflight: Inflight,
    events: Events,
    trace: Trace,
    /// Whether `pipeline.started` was sent (a build that runs nothing sends
    /// no events).
    started: AtomicBool,
}

/// `foreach` tasks whose list file will be rebuilt by this build: they must
/// not expand from the list on disk, which is about to change.
fn lists_to_wait_for(session: &Session, args: &BuildArgs) -> Result<HashSet<String>> {
    let graph = &session.graph;
    let producers: Vec<(&String, TaskId)> = graph
        .fanouts
        .iter()
        .filter(|(_, g)| !g.placeholder)
        .filter_map(|(name, g)| Some((name, *graph.producers.get(g.list.as_ref()?)?)))
        .collect();
    if producers.is_empty() {
        return Ok(HashSet::new());
    }
    let plan = session.plan(vec![true; graph.tasks.len()], args.check)?;
    Ok(producers
        .into_iter()
        .filter(|&(_, p)| plan.reasons[p].is_some())
        .map(|(name, _)| name.clone())
        .collect())
}

/// Removes the outputs and records of instances whose item is gone.
fn remove_vanished_instances(session: &mut Session, printer: &Printer) -> Result<()> {
    let mut gone: Vec<(String, Vec<String>)> = Vec::new();
    for (base, group) in &session.graph.fanouts {
        if group.placeholder {
            continue;
        }
        let prefix = format!("{base}[");
        for (name, record) in session.store.records() {
            if name.starts_with(&prefix) && session.graph.task(name).is_none() {
                let outputs = record
                    .done
                    .iter()
                    .flat_map(|d| d.outputs.keys().cloned())
                    .collect();
                gone.push((name.clone(), outputs));
            }
        }
    }
    gone.sort();
    for (name, outputs) in gone {
        let mut removed = Vec::new();
        for out in outputs {
            // Only paths no current task produces.
            if session.graph.producers.contains_key(&out) {
                continue;
            }
            if rundir::remove_if_exists(&session.run_dir.path(&out))? {
                removed.push(out);
            }
        }
        rundir::remove_if_exists(&session.run_dir.task_log_path(&name))?;
        session.store.forget(&session.run_dir, &name)?;
        printer.note(&format!(
            "removed {name} (its item is gone){}",
            if removed.is_empty() {
                String::new()
            } else {
                format!(": {}", removed.join(", "))
            }
        ));
    }
    Ok(())
}

/// One phase of a build. Returns whether another phase should follow
/// (a `foreach` list was built, so the graph grows).
fn build_phase(
    session: &mut Session,
    args: &BuildArgs,
    printer: &mut Printer,
    interrupt: &Interrupt,
    phase: usize,
    ran_before: &mut HashSet<String>,
    observers: Option<&Observers>,
) -> Result<bool> {
    let read_only = args.dry_run || args.question;
    if phase > 0 || !session.graph.fanouts.is_empty() {
        let wait = lists_to_wait_for(session, args)?;
        if phase > 0 || !wait.is_empty() {
            session.re_resolve(&|name| !wait.contains(name))?;
        }
    }
    if !read_only {
        remove_vanished_instances(session, printer)?;
    }
    let graph = &session.graph;
    let roots = if args.targets.is_empty() {
        (0..graph.tasks.len()).collect()
    } else {
        graph.targets(&args.targets)?
    };
    let wanted = graph.closure(&roots);
    let mut forced = vec![false; graph.tasks.len()];
    if args.force {
        for &r in &roots {
            // A task an earlier phase of this build ran is not forced again.
            forced[r] = !ran_before.contains(&graph.tasks[r].name);
        }
    }

    let stamper = Stamper::default();
    let plan = {
        let checker = Checker {
            graph,
            run_dir: &session.run_dir,
            store: &session.store,
            stamper: &stamper,
            mode: args.check,
        };
        Plan::make(&checker, wanted, &forced)?
    };
    let to_run: Vec<TaskId> = plan.to_run(graph).collect();
    // A state file that cannot be read counts as "not built", never as a
    // crash; say so.
    for &t in &to_run {
        if matches!(plan.reasons[t], Some(Reason::NeverBuilt)) {
            let path = session.run_dir.status_path(&graph.tasks[t].name);
            if path.exists() && state::read_status(&session.run_dir, &graph.tasks[t].name).is_none()
            {
                printer.warn(&format!(
                    "{} is unreadable; {} counts as not built and will run",
                    path.strip_prefix(session.run_dir.root())
                        .unwrap_or(&path)
                        .display(),
                    graph.tasks[t].name
                ));
            }
        }
    }
    let wanted_count = plan.wanted.iter().filter(|&&w| w).count();

    if args.question {
        return if to_run.is_empty() {
            Ok(false)
        } else {
            Err(Error::NotUpToDate)
        };
    }
    // Placeholders of `foreach` tasks and what depends on them wait for a
    // later phase.
    let placeholders: Vec<TaskId> = to_run
        .iter()
        .copied()
        .filter(|&t| matches!(graph.tasks[t].action, Action::Expand(_)))
        .collect();
    let waiting = graph.downstream(&placeholders);
    let earlier_work =
        phase == 0 && (session.run.is_some() || session.store.records().next().is_some());
    let mut run = session.run.clone().unwrap_or_else(|| {
        RunRecord::new(
            &session.pipeline.path.display().to_string(),
            run::hash_text(&session.pipeline.text),
        )
    });
    if !to_run.is_empty() {
        if earlier_work {
            printer.note(&run::resume_summary(graph, &plan, &run, &to_run));
            let changed = run::changed_definitions(graph, &plan);
            if !changed.is_empty() {
                printer.note(&format!(
                    "the definition of {} changed since its last run: it will re-run; every other finished task keeps its result",
                    changed.join(", ")
                ));
            }
        }
        if let Some((ModelSourceKind::Run, model)) = &session.model_source {
            printer.note(&format!(
                "using model {model}, chosen for this run by an earlier --model (pass --model to change it)"
            ));
        }
    }
    for (name, record) in session.store.records() {
        if phase > 0 || graph.task(name).is_some() {
            continue;
        }
        if crate::fanout::split_instance(name)
            .is_some_and(|(base, _)| graph.fanouts.contains_key(base))
        {
            continue;
        }
        let left: Vec<&str> = record
            .done
            .iter()
            .flat_map(|d| d.outputs.keys())
            .filter(|p| session.run_dir.path(p).exists())
            .map(String::as_str)
            .collect();
        if !left.is_empty() {
            printer.warn(&format!(
                "task {name} is no longer in the pipeline; its outputs stay on disk: {}",
                left.join(", ")
            ));
        }
    }

    if args.dry_run {
        for &(t, ref path) in &plan.edited {
            printer.note(&format!(
                "output {path} of task {} was edited by hand: it would be kept, and tasks that read it re-run",
                graph.tasks[t].name
            ));
        }
        for &t in &to_run {
            let reason = plan.reasons[t]
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
            printer.data(&format!("{}: {reason}", graph.tasks[t].name));
        }
        if to_run.is_empty() {
            printer.note(&format!("nothing to do: {wanted_count} task(s) up to date"));
        }
        return Ok(false);
    }

    // Record what changed without changing meaning, and hand edits.
    for update in &plan.updates {
        session.store.refresh_status(&session.run_dir, update)?;
    }
    for (t, path) in &plan.edited {
        printer.note(&format!(
            "kept hand-edited {path} (output of {}); tasks that read it will re-run",
            graph.tasks[*t].name
        ));
    }

    if to_run.is_empty() {
        session.store.compact_if_large(&session.run_dir)?;
        if session.run.is_none() {
            // A first build of an already complete directory still starts
            // a run record.
            run.begin_build(None);
            run.end_build("completed", 0, counts(graph, &plan, None), None);
            run.save(&session.run_dir)?;
        }
        printer.note(&format!("nothing to do: {wanted_count} task(s) up to date"));
        std::mem::forget(plan);
        return Ok(false);
    }
    let to_run: Vec<TaskId> = to_run.into_iter().filter(|&t| !waiting[t]).collect();

    // The run record says a build is under way before anything runs.
    let chosen_model = match &session.model_source {
        Some((ModelSourceKind::Flag, m)) => {
            run.model = Some(m.clone());
            Some(m.clone())
        }
        Some((_, m)) => Some(m.clone()),
        None => None,
    };
    run.pipeline_hash = run::hash_text(&session.pipeline.text);
    if phase == 0 {
        run.begin_build(chosen_model);
    }
    run.save(&session.run_dir)?;
    session.run = Some(run.clone());

    let mut run_mask = vec![false; graph.tasks.len()];
    let mut tentative = vec![false; graph.tasks.len()];
    let mut previous: Vec<Option<Status>> = vec![None; graph.tasks.len()];
    for &t in &to_run {
        run_mask[t] = true;
        tentative[t] = matches!(plan.reasons[t], Some(Reason::Upstream(_)));
        let name = &graph.tasks[t].name;
        previous[t] = session
            .store
            .done_record(&session.run_dir, name)
            .map(std::borrow::Cow::into_owned);
        // `pending` matters for a task that ran before (its last good run
        // still stands); a task never run has nothing to announce yet.
        if !tentative[t] && previous[t].is_some() {
            let mut pending = Status::new(name, TaskState::Pending, &graph.tasks[t].fingerprint);
            if let Some(prev) = &previous[t] {
                pending.inputs = prev.inputs.clone();
                pending.outputs = prev.outputs.clone();
            }
            session.store.write_status(&session.run_dir, &pending)?;
        }
    }

    let jobs = args
        .jobs
        .map(|j| j as usize)
        .or(graph.jobs)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let has_prompts = to_run
        .iter()
        .any(|&t| matches!(graph.tasks[t].action, Action::Prompt(_)));
    let llm = if has_prompts {
        Some(Llm::new(
            graph,
            &run_mask,
            session.run_dir.root(),
            interrupt.clone(),
        )?)
    } else {
        None
    };
    let started = Instant::now();
    let watchdog = Watchdog::start(interrupt.clone());
    let runner = TaskRunner {
        graph,
        run_dir: &session.run_dir,
        stamper: &stamper,
        watchdog: &watchdog,
        pipeline_dir: session.pipeline.dir(),
        previous: &previous,
        llm: llm.as_ref(),
        inflight: observers.map(|o| &o.inflight),
        env: command::Environment::new(
            &[
                ("PLANEXE_RUN_DIR", session.run_dir.root().as_os_str()),
                ("PLANEXE_PIPELINE_DIR", session.pipeline.dir().as_os_str()),
            ],
            &["PLANEXE_TASK"],
        ),
    };
    printer.begin(to_run.len());
    if let Some(obs) = observers {
        if !obs.started.swap(true, Ordering::Relaxed) {
            obs.events
                .emit(Event::new("pipeline.started", None, session.run_dir.root()));
            obs.trace
                .name_build(&format!("planexe build (pid {})", std::process::id()));
        }
    }
    let live = run.builds.last().map(|b| crate::status::Live {
        pid: b.pid,
        started_at: b.started_at.clone(),
    });
    let mut hooks = BuildHooks {
        graph,
        run_dir: &session.run_dir,
        store: &mut session.store,
        stamper: &stamper,
        mode: args.check,
        printer,
        interrupt,
        llm: llm.as_ref(),
        error: None,
        observers,
        lanes: Vec::new(),
        lane_of: HashMap::new(),
        live: live.map(|live| LiveStatus {
            pipeline: &session.pipeline,
            build: live,
            reasons: plan.reasons.clone(),
            running: vec![None; graph.tasks.len()],
            next: Instant::now(),
        }),
    };
    hooks.snapshot();
    let summary = scheduler::run(
        graph,
        &run_mask,
        &tentative,
        &runner,
        &mut hooks,
        scheduler::Options {
            jobs,
            keep_going: args.keep_going,
        },
    );
    let bookkeeping_error = hooks.error.take();
    drop(watchdog);
    printer.end();
    session.store.compact_if_large(&session.run_dir)?;
    if let Some(e) = bookkeeping_error {
        return Err(e);
    }

    let elapsed = started.elapsed();
    let outcome = if interrupt.requested() || !summary.stopped.is_empty() {
        "stopped"
    } else if !summary.failed.is_empty() {
        "failed"
    } else {
        "completed"
    };
    let ran = summary.succeeded.len() + summary.failed.len() + summary.stopped.len();
    let last_completed = summary
        .succeeded
        .last()
        .map(|&t| graph.tasks[t].name.clone());
    run.end_build(
        outcome,
        ran,
        counts(graph, &plan, Some(&summary)),
        last_completed,
    );
    run.save(&session.run_dir)?;
    session.run = Some(run.clone());
    let names = |ids: &[TaskId]| {
        ids.iter()
            .map(|&t| graph.tasks[t].name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if interrupt.requested() || !summary.stopped.is_empty() {
        printer.note(&format!(
            "stopped: {} task(s) finished, {} stopped, {} not started; run planexe build again to resume",
            summary.succeeded.len(),
            summary.stopped.len(),
            summary.not_run.len()
        ));
        return Err(Error::Interrupted);
    }
    if !summary.failed.is_empty() {
        printer.note(&format!(
            "{} task(s) succeeded, {} failed ({}), {} not run",
            summary.succeeded.len(),
            summary.failed.len(),
            names(&summary.failed),
            summary.not_run.len()
        ));
        let first = &graph.tasks[summary.failed[0]];
        let name = &first.name;
        let details = match first.action {
            Action::Command(_) | Action::Expand(_) => {
                format!("the output of {name} is in .planexe/logs/{name}.log")
            }
            Action::Prompt(_) => format!(
                "every failed call of {name} is in .planexe/failures.jsonl, the last response in .planexe/raw/{name}.json"
            ),
        };
        return Err(Error::TasksFailed {
            names: summary
                .failed
                .iter()
                .map(|&t| graph.tasks[t].name.clone())
                .collect(),
            hint: format!(
                "{details}; finished tasks are kept, so fix the cause and run planexe build again"
            ),
        });
    }
    let mut line = format!(
        "built {} task(s) in {:.2}s",
        summary.succeeded.len(),
        elapsed.as_secs_f64()
    );
    if !summary.skipped.is_empty() {
        line.push_str(&format!(
            ", {} found up to date after their inputs were rebuilt",
            summary.skipped.len()
        ));
    }
    printer.note(&line);
    // Another phase follows when a `foreach` list was built in this one.
    let again = graph.fanouts.values().any(|g| {
        g.placeholder
            && g.list
                .as_ref()
                .and_then(|l| graph.producers.get(l))
                .is_some_and(|p| summary.succeeded.contains(p) || summary.skipped.contains(p))
    });
    for &t in &summary.succeeded {
        ran_before.insert(graph.tasks[t].name.clone());
    }
    Ok(again)
}

/// Sends a task's end to the event log, the hooks and the trace.
fn observe_finish(obs: &Observers, run_dir: &RunDir, status: &Status, lane: Option<usize>) {
    let name = match status.state {
        TaskState::Done => "task.completed",
        TaskState::Stopped => "task.stopped",
        _ => "task.failed",
    };
    let mut event = Event::new(name, Some(&status.task), run_dir.root());
    event.attempt = Some(status.attempt.max(1));
    event.model = status.model.clone();
    event.duration_ms = status.duration_ms;
    if let Some(e) = &status.error {
        event.error_summary = Some(format!(
            "{}: {}",
            e.kind,
            crate::plan::first_line(&e.message)
        ));
        event.error_id = e.error_id.clone();
    }
    obs.events.emit(event);
    let lane = lane.unwrap_or(0);
    if let (Some(start), Some(ms)) = (
        status.started_at.as_deref().and_then(crate::trace::micros),
        status.duration_ms,
    ) {
        obs.trace.span(
            &status.task,
            "task",
            lane,
            start,
            ms as i64 * 1000,
            serde_json::json!({"state": status.state.as_str(), "error": status.error.as_ref().map(|e| &e.message)}),
        );
    }
    for a in &status.attempts {
        if let Some(start) = crate::trace::micros(&a.started_at) {
            obs.trace.span(
                &format!("{} #{}", a.model, a.attempt),
                "llm",
                lane,
                start,
                a.duration_ms as i64 * 1000,
                serde_json::json!({"outcome": a.outcome, "error_id": a.error_id}),
            );
        }
    }
}

/// The text `explain` diffs: a command, or a prompt task's templates.
pub fn definition(action: &Action) -> Option<String> {
    match action {
        Action::Command(c) => Some(c.clone()),
        Action::Prompt(p) => Some(match &p.system {
            Some(system) => format!("system: {system}\nprompt: {}", p.template),
            None => p.template.clone(),
        }),
        Action::Expand(_) => None,
    }
}

/// Task counts for the run record.
fn counts(graph: &Graph, plan: &Plan, summary: Option<&scheduler::Summary>) -> run::Counts {
    let fresh = (0..graph.tasks.len())
        .filter(|&t| plan.wanted[t] && plan.reasons[t].is_none())
        .count();
    let mut c = run::Counts {
        tasks: graph.tasks.len(),
        done: fresh,
        ..Default::default()
    };
    if let Some(s) = summary {
        c.done += s.succeeded.len() + s.skipped.len();
        c.failed = s.failed.len();
        c.stopped = s.stopped.len();
        c.not_run = s.not_run.len();
    }
    c
}

/// Puts back outputs that a crashed build left set aside in
/// `.planexe/prev/TASK/`, moving whatever the interrupted attempt wrote to
/// `.planexe/failed/TASK/`.
fn reconcile(
    run_dir: &RunDir,
    graph: &Graph,
    run: Option<&RunRecord>,
    printer: &Printer,
) -> Result<()> {
    // A build that ended without recording its end crashed (we hold the
    // lock, so it is not running): commands it started may still run in
    // their own process groups. Stop them before anything else touches
    // their outputs.
    let crashed = run
        .and_then(|r| r.builds.last())
        .is_some_and(|b| b.outcome == "running");
    if crashed {
        // Its journal says which tasks were in flight: stop what they left
        // running, and give each the `running` sidecar it may not have had
        // time to publish, so it reads as interrupted.
        for status in crate::inflight::recover(run_dir) {
            let Some(task) = graph.task(&status.task) else {
                continue;
            };
            let groups = match status.pid {
                Some(pid) => vec![pid]
                    .into_iter()
                    .filter(|&p| command::is_group_leader(p))
                    .collect(),
                // Journaled, then crashed before the pid was: find the
                // command by the variables every task's command starts with.
                None if matches!(task.action, Action::Command(_)) => {
                    command::groups_started_with(&[
                        ("PLANEXE_RUN_DIR", run_dir.root().as_os_str()),
                        ("PLANEXE_TASK", std::ffi::OsStr::new(&status.task)),
                    ])
                }
                None => Vec::new(),
            };
            for pid in groups {
                // SAFETY: kill(2) on a process group that a crashed planexe
                // created for this task (checked: the pid leads its own
                // group and was recorded as the task's, or started with
                // the task's variables for this run directory).
                unsafe {
                    libc::kill(-(pid as i32), libc::SIGKILL);
                }
                printer.note(&format!(
                    "stopped {} (pid {pid}), left running by a build that crashed",
                    status.task
                ));
            }
            let published = state::read_status(run_dir, &status.task).is_some_and(|s| {
                s.state == TaskState::Running && s.started_at == status.started_at
            });
            if !published {
                state::write_sidecar(run_dir, &status)?;
            }
        }
        let removed = remove_temporaries(run_dir, graph);
        if removed > 0 {
            printer.note(&format!(
                "removed {removed} temporary file(s) left by a build that crashed mid-write"
            ));
        }
    }
    let prev_root = run_dir.state_dir().join("prev");
    let Ok(entries) = std::fs::read_dir(&prev_root) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let Some(task) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let Some(t) = graph.task(&task) else { continue };
        let mut restored = 0;
        for out in &t.outputs {
            let saved = run_dir.prev_dir(&task).join(&out.path);
            if std::fs::symlink_metadata(&saved).is_err() {
                continue;
            }
            let current = run_dir.path(&out.path);
            if std::fs::symlink_metadata(&current).is_ok() {
                move_file(&current, &run_dir.failed_dir(&task).join(&out.path))?;
            }
            move_file(&saved, &current)?;
            restored += 1;
        }
        let _ = std::fs::remove_dir_all(run_dir.prev_dir(&task));
        if restored > 0 {
            printer.note(&format!(
                "restored {restored} output(s) of {task} from before an interrupted run"
            ));
        }
    }
    Ok(())
}

/// Removes what a crashed build's atomic writes left half-done: temporary
/// files in `.planexe/`, its direct subfolders, and the folders of declared
/// outputs (prompt answers are written there).
fn remove_temporaries(run_dir: &RunDir, graph: &Graph) -> usize {
    let mut dirs: std::collections::BTreeSet<PathBuf> = std::collections::BTreeSet::new();
    let state = run_dir.state_dir();
    if let Ok(entries) = std::fs::read_dir(&state) {
        dirs.extend(
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path()),
        );
    }
    dirs.insert(state);
    for task in &graph.tasks {
        for out in &task.outputs {
            if let Some(dir) = run_dir.path(&out.path).parent() {
                dirs.insert(dir.to_path_buf());
            }
        }
    }
    dirs.iter().map(|d| rundir::remove_temporaries(d)).sum()
}

fn move_file(from: &Path, to: &Path) -> Result<()> {
    if let Some(dir) = to.parent() {
        fs_err::create_dir_all(dir)?;
    }
    fs_err::rename(from, to)?;
    Ok(())
}

/// What one task's run produced, sent from the pool to the loop.
pub struct RunResult {
    status: Status,
    elapsed: Duration,
    tail: Vec<String>,
    /// Writing the sidecar and marker failed (planexe's own bookkeeping).
    publish_error: Option<Error>,
}

struct TaskRunner<'a> {
    graph: &'a Graph,
    run_dir: &'a RunDir,
    stamper: &'a Stamper,
    watchdog: &'a Watchdog,
    pipeline_dir: &'a Path,
    previous: &'a [Option<Status>],
    llm: Option<&'a Llm>,
    inflight: Option<&'a Inflight>,
    /// What every command's environment holds, but `PLANEXE_TASK`.
    env: command::Environment,
}

impl Runner for TaskRunner<'_> {
    type Output = RunResult;

    fn run(&self, t: TaskId) -> RunResult {
        let task = &self.graph.tasks[t];
        let start = Instant::now();
        let mut status = Status::new(&task.name, TaskState::Running, &task.fingerprint);
        status.started_at = Some(state::now_rfc3339());
        status.attempt = 1;
        status.definition = definition(&task.action);
        let error = self.attempt(t, &mut status);
        status.finished_at = Some(state::now_rfc3339());
        let elapsed = start.elapsed();
        status.duration_ms = Some(elapsed.as_millis() as u64);
        let mut tail = Vec::new();
        match error {
            None => status.state = TaskState::Done,
            Some(error) => {
                status.state = if error.kind == "interrupted" {
                    TaskState::Stopped
                } else {
                    TaskState::Failed
                };
                tail = log_tail(&self.run_dir.task_log_path(&task.name));
                status.error = Some(error);
            }
        }
        // The sidecar and `.DONE` are written here, on the job's thread,
        // so tasks finishing together do not queue behind one another's
        // file writes on the loop's thread (which appends the log line).
        let publish_error = state::publish(self.run_dir, &status).err();
        RunResult {
            status,
            elapsed,
            tail,
            publish_error,
        }
    }
}

fn fail(kind: &str, message: impl Into<String>) -> Option<TaskError> {
    Some(TaskError {
        kind: kind.to_string(),
        message: message.into(),
        error_id: None,
    })
}

impl TaskRunner<'_> {
    /// Runs one attempt; `None` on success.
    fn attempt(&self, t: TaskId, status: &mut Status) -> Option<TaskError> {
        let task = &self.graph.tasks[t];
        let root = self.run_dir.root();
        if let Some(prev) = &self.previous[t] {
            for (path, stamp) in &prev.inputs {
                self.stamper.remember_hash(path, stamp);
            }
        }
        for input in &task.inputs {
            match self.stamper.stamp(root, &input.path) {
                Ok(Some(stamp)) => {
                    status.inputs.insert(input.path.clone(), stamp);
                }
                Ok(None) => {
                    return fail(
                        "missing-input",
                        format!("input {} does not exist", input.path),
                    )
                }
                Err(e) => return fail("io", e.to_string()),
            }
        }
        let prev_dir = self.run_dir.prev_dir(&task.name);
        let mut set_aside = false;
        for out in &task.outputs {
            let current = self.run_dir.path(&out.path);
            if std::fs::symlink_metadata(&current).is_ok() {
                if let Err(e) = move_file(&current, &prev_dir.join(&out.path)) {
                    self.restore(t);
                    return fail("io", format!("cannot set aside {}: {e}", out.path));
                }
                set_aside = true;
            }
            if let Some(dir) = current.parent() {
                if let Err(e) = fs_err::create_dir_all(dir) {
                    self.restore(t);
                    return fail("io", e.to_string());
                }
            }
        }

        let template = match &task.action {
            Action::Command(template) => template,
            Action::Expand(list) => {
                return fail(
                    "unsupported",
                    format!(
                        "{} expands when {list} is built; it never runs itself",
                        task.name
                    ),
                )
            }
            Action::Prompt(spec) => {
                let error = self.ask(t, spec, status);
                if error.is_some() {
                    self.set_aside_attempt(t);
                    return error;
                }
                return self.record_outputs(t, status, set_aside);
            }
        };
        let inputs: Vec<&str> = task.inputs.iter().map(|i| i.path.as_str()).collect();
        let outputs: Vec<&str> = task.outputs.iter().map(|o| o.path.as_str()).collect();
        let script = command::expand(template, &inputs, &outputs, self.pipeline_dir);
        let log = self.run_dir.task_log_path(&task.name);
        let spec = command::Spec {
            script: &script,
            cwd: root,
            env: &self.env,
            vars: &[("PLANEXE_TASK", &task.name)],
            log: &log,
            timeout: task.timeout,
        };
        // Journaled before the spawn: a crash at any moment after it leaves
        // a record that leads the next build to the process.
        let ticket = self.inflight.map(|i| i.begin(self.run_dir, status));
        let exit = command::run(&spec, self.watchdog, |pid| {
            status.pid = Some(pid);
            if let (Some(inflight), Some(ticket)) = (self.inflight, &ticket) {
                inflight.spawned(ticket, pid);
            }
        });
        if let (Some(inflight), Some(ticket)) = (self.inflight, ticket) {
            inflight.end(ticket);
        }
        let error = match &exit {
            Exit::Success => None,
            Exit::Code(_) => fail("exit", exit.to_string()),
            Exit::Signal(_) => fail("signal", exit.to_string()),
            Exit::Timeout(_) => fail("timeout", exit.to_string()),
            Exit::Interrupted => fail("interrupted", "stopped by an interrupt"),
            Exit::SpawnFailed(m) => fail("spawn", m.clone()),
        };
        if error.is_some() {
            self.set_aside_attempt(t);
            return error;
        }
        self.record_outputs(t, status, set_aside)
    }

    /// Verifies that every output exists and stamps it; on success the
    /// outputs set aside from the last good run are discarded.
    fn record_outputs(&self, t: TaskId, status: &mut Status, set_aside: bool) -> Option<TaskError> {
        let task = &self.graph.tasks[t];
        let root = self.run_dir.root();
        let prev_dir = self.run_dir.prev_dir(&task.name);
        let missing: Vec<&str> = task
            .outputs
            .iter()
            .filter(|o| std::fs::symlink_metadata(self.run_dir.path(&o.path)).is_err())
            .map(|o| o.path.as_str())
            .collect();
        if !missing.is_empty() {
            self.set_aside_attempt(t);
            return fail(
                "missing-output",
                format!(
                    "the command exited 0 but did not write {}",
                    missing.join(", ")
                ),
            );
        }
        for out in &task.outputs {
            self.stamper.forget(&out.path);
            match self.stamper.stamp(root, &out.path) {
                Ok(Some(stamp)) => {
                    status.outputs.insert(out.path.clone(), stamp);
                }
                Ok(None) => {
                    self.set_aside_attempt(t);
                    return fail(
                        "missing-output",
                        format!("{} vanished after the command", out.path),
                    );
                }
                Err(e) => {
                    self.set_aside_attempt(t);
                    return fail("io", e.to_string());
                }
            }
        }
        if set_aside {
            let _ = std::fs::remove_dir_all(&prev_dir);
        }
        None
    }

    /// Asks the model and writes the accepted answer to the task's output.
    fn ask(&self, t: TaskId, spec: &PromptSpec, status: &mut Status) -> Option<TaskError> {
        let task = &self.graph.tasks[t];
        let Some(llm) = self.llm else {
            return fail("unsupported", "no model runner was set up for this build");
        };
        let mut inputs = BTreeMap::new();
        for input in &task.inputs {
            match std::fs::read(self.run_dir.path(&input.path)) {
                Ok(bytes) => {
                    inputs.insert(
                        input.path.clone(),
                        String::from_utf8_lossy(&bytes).into_owned(),
                    );
                }
                Err(e) => {
                    return fail(
                        "missing-input",
                        format!("cannot read input {}: {e}", input.path),
                    )
                }
            }
        }
        let deadline = task.timeout.map(|t| (Instant::now() + t, t));
        let ticket = self.inflight.map(|i| i.begin(self.run_dir, status));
        let result = llm.run(&task.name, spec, &inputs, deadline);
        if let (Some(inflight), Some(ticket)) = (self.inflight, ticket) {
            inflight.end(ticket);
        }
        status.model = result.model.clone();
        status.attempt = result.attempts.len() as u32;
        status.attempts = result.attempts;
        status.usage = Some(result.usage);
        match result.answer {
            Ok(text) => {
                let out = &task.outputs[0].path;
                match rundir::write_atomic(&self.run_dir.path(out), text.as_bytes()) {
                    Ok(()) => None,
                    Err(e) => fail("io", format!("cannot write {out}: {e}")),
                }
            }
            Err(failure) => {
                let kind = if failure.stopped {
                    "interrupted".to_string()
                } else {
                    failure.kind
                };
                Some(TaskError {
                    kind,
                    message: failure.message,
                    error_id: failure.error_id,
                })
            }
        }
    }

    /// Moves what a failed attempt wrote to `.planexe/failed/TASK/` and
    /// restores the outputs of the last good run.
    fn set_aside_attempt(&self, t: TaskId) {
        let task = &self.graph.tasks[t];
        let failed = self.run_dir.failed_dir(&task.name);
        let _ = std::fs::remove_dir_all(&failed);
        for out in &task.outputs {
            let current = self.run_dir.path(&out.path);
            if std::fs::symlink_metadata(&current).is_ok() {
                let _ = move_file(&current, &failed.join(&out.path));
            }
        }
        self.restore(t);
    }

    fn restore(&self, t: TaskId) {
        let task = &self.graph.tasks[t];
        let prev_dir = self.run_dir.prev_dir(&task.name);
        for out in &task.outputs {
            let saved = prev_dir.join(&out.path);
            if std::fs::symlink_metadata(&saved).is_ok() {
                let _ = move_file(&saved, &self.run_dir.path(&out.path));
            }
        }
        let _ = std::fs::remove_dir_all(&prev_dir);
    }
}

fn log_tail(path: &PathBuf) -> Vec<String> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(TAIL_LINES);
    lines[from..].iter().map(|l| l.to_string()).collect()
}

struct BuildHooks<'a> {
    graph: &'a Graph,
    run_dir: &'a RunDir,
    store: &'a mut StateStore,
    stamper: &'a Stamper,
    mode: CheckMode,
    printer: &'a mut Printer,
    interrupt: &'a Interrupt,
    llm: Option<&'a Llm>,
    /// The first failure of planexe's own bookkeeping (not of a task).
    error: Option<Error>,
    observers: Option<&'a Observers>,
    /// Trace lanes: which task occupies each.
    lanes: Vec<Option<TaskId>>,
    lane_of: HashMap<TaskId, usize>,
    /// What `status` reads while this build runs.
    live: Option<LiveStatus<'a>>,
}

/// A running build's view of its tasks, saved now and then for `status`
/// (`.planexe/status.snapshot`), so `status` need not check every task.
struct LiveStatus<'a> {
    pipeline: &'a crate::pipeline::Pipeline,
    build: crate::status::Live,
    /// Why each task runs: the plan's reasons, cleared as tasks succeed.
    reasons: Vec<Option<Reason>>,
    /// When each running task started.
    running: Vec<Option<String>>,
    /// When the next snapshot is due.
    next: Instant,
}

/// The least time between two live snapshots; more when one costs more
/// than a fortieth of it, so they never take a noticeable share of a build.
const LIVE_EVERY: Duration = Duration::from_millis(500);

impl BuildHooks<'_> {
    /// Saves the live snapshot when it is due.
    fn snapshot(&mut self) {
        let Some(live) = self.live.as_mut() else {
            return;
        };
        let start = Instant::now();
        if start < live.next {
            return;
        }
        let mut known = crate::status::Known::of(
            self.graph,
            live.pipeline,
            self.store,
            self.run_dir,
            &live.reasons,
            true,
        );
        for (t, started) in live.running.iter().enumerate() {
            if let Some(started) = started {
                known.mark_running(t, Some(started.clone()), self.run_dir);
            }
        }
        known.save_live(
            self.run_dir,
            crate::status::Live {
                pid: live.build.pid,
                started_at: live.build.started_at.clone(),
            },
        );
        live.next = Instant::now() + LIVE_EVERY.max(start.elapsed() * 40);
    }

    fn keep(&mut self, result: Result<()>) {
        if let Err(e) = result {
            if self.error.is_none() {
                self.error = Some(e);
            }
        }
    }
}

impl Hooks<RunResult> for BuildHooks<'_> {
    fn still_stale(&mut self, t: TaskId) -> bool {
        let checker = Checker {
            graph: self.graph,
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
                for path in edited {
                    self.printer.note(&format!(
                        "kept hand-edited {path} (output of {}); tasks that read it will re-run",
                        self.graph.tasks[t].name
                    ));
                }
                self.printer.task_skipped(
                    &self.graph.tasks[t].name,
                    "its inputs were rebuilt with the same content",
                );
                if let Some(live) = self.live.as_mut() {
                    live.reasons[t] = None;
                }
                false
            }
        }
    }

    fn starting(&mut self, t: TaskId) {
        let task = &self.graph.tasks[t];
        // The marker goes before anything runs; the `running` sidecar is
        // published later, if the task runs long enough (`inflight`).
        if self.store.has_marker(self.run_dir, &task.name) {
            let r = rundir::remove_if_exists(&self.run_dir.done_path(&task.name)).map(|_| ());
            self.store.note_marker(&task.name, false);
            self.keep(r);
        }
        if let Some(live) = self.live.as_mut() {
            live.running[t] = Some(state::now_rfc3339());
        }
        self.printer.task_started(&task.name);
        if let Some(obs) = self.observers {
            let mut event = Event::new("task.started", Some(&task.name), self.run_dir.root());
            event.attempt = Some(1);
            obs.events.emit(event);
            let lane = match self.lanes.iter().position(Option::is_none) {
                Some(free) => free,
                None => {
                    self.lanes.push(None);
                    obs.trace.name_lane(self.lanes.len() - 1);
                    self.lanes.len() - 1
                }
            };
            self.lanes[lane] = Some(t);
            self.lane_of.insert(t, lane);
        }
    }

    fn finished(&mut self, t: TaskId, mut result: RunResult) -> Outcome {
        let name = &self.graph.tasks[t].name;
        if let Some(e) = result.publish_error.take() {
            self.keep(Err(e));
        }
        let r = self.store.record_outcome(self.run_dir, &result.status);
        self.keep(r);
        if let Some(live) = self.live.as_mut() {
            live.running[t] = None;
            live.reasons[t] = match result.status.state {
                TaskState::Done => None,
                TaskState::Stopped => Some(Reason::InterruptedLastTime),
                _ => Some(Reason::FailedLastTime(
                    result
                        .status
                        .error
                        .as_ref()
                        .map(|e| crate::plan::first_line(&e.message).to_string())
                        .unwrap_or_default(),
                )),
            };
        }
        self.snapshot();
        for (path, stamp) in &result.status.outputs {
            self.stamper.remember(path, stamp);
        }
        if let Some(obs) = self.observers {
            observe_finish(
                obs,
                self.run_dir,
                &result.status,
                self.lane_of.remove(&t).inspect(|&l| self.lanes[l] = None),
            );
        }
        match result.status.state {
            TaskState::Done => {
                self.printer.task_finished(name, result.elapsed, None);
                Outcome::Succeeded
            }
            TaskState::Stopped => {
                self.printer
                    .task_finished(name, result.elapsed, Some("stopped"));
                Outcome::Stopped
            }
            _ => {
                let message = result
                    .status
                    .error
                    .as_ref()
                    .map_or("failed", |e| e.message.as_str());
                self.printer
                    .task_finished(name, result.elapsed, Some(message));
                self.printer.task_output(&result.tail);
                Outcome::Failed
            }
        }
    }

    fn interrupted(&self) -> bool {
        self.interrupt.requested()
    }

    fn tick(&mut self) {
        self.snapshot();
        let Some(llm) = self.llm else { return };
        for (task, model, pieces, elapsed) in llm.progress() {
            let secs = elapsed.as_secs_f64();
            let rate = if secs > 0.0 {
                pieces as f64 / secs
            } else {
                0.0
            };
            self.printer
                .task_progress(&task, &format!("{model} · {pieces} tok · {rate:.1} tok/s"));
        }
    }
}
