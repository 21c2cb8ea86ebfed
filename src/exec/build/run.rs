//! The build's one pass over its tasks: expand the `foreach` tasks whose
//! list is ready, plan, say where the run stands, run the stale tasks
//! through the scheduler (fan-outs whose list this build makes expand
//! inside it: `growth`), and record the build in the run record.

use std::time::Instant;

use super::super::actions::Actions;
use super::super::attempt::Executor;
use super::super::command::Watchdog;
use super::super::failure::Failures;
use super::super::llm::Llm;
use super::super::observer::{Notice, Ran};
use super::super::reaper::Reaper;
use super::super::runner::{Checking, TaskRunner};
use super::super::scheduler::{self, Summary};
use super::hooks::BuildHooks;
use super::{failed, lists, reach, resume, Build, Ended, Progress};
use crate::error::Result;
use crate::model::{Action, Graph, TaskId, Trouble};
use crate::plan::session::ModelSourceKind;
use crate::plan::{Checker, Plan, Reason, Seeds, Session};
use crate::store::run_record::{self, BuildOutcome, Counts, RunRecord};
use crate::store::snapshot::Live;
use crate::store::{sidecar, RunDir, Stamper, Status, TaskState};

impl Build<'_> {
    /// Plans and runs the stale tasks.
    pub(super) fn run_stale(&self, session: &mut Session, progress: &mut Progress) -> Result<()> {
        let options = self.options;
        let read_only = options.read_only();
        let waiting: Vec<String> = (session.graph.placeholders())
            .map(|(name, _)| name.to_string())
            .collect();
        let remake = session.expand_ready(options.check)?.remake;
        let seeds = Seeds::load(&session.run_dir);
        // Fan-outs expanded before the build starts: their instances'
        // outputs were not in the graph the load-time warnings looked at.
        let expanded: Vec<TaskId> = waiting
            .iter()
            .filter_map(|name| session.graph.fanouts.get(name))
            .filter(|group| !group.placeholder)
            .flat_map(|group| group.members.iter().copied())
            .collect();
        for warning in session.graph.glob_warnings(Some(&expanded)) {
            self.say(progress, Notice::GlobLeavesOut(warning));
        }
        if !read_only {
            lists::remove_vanished(session, self.observer)?;
        }
        let graph = &session.graph;
        let roots: Vec<TaskId> = if options.targets.is_empty() {
            graph.ids().to_vec()
        } else {
            session.targets(&options.targets)?
        };
        let wanted = graph.closure(&roots);
        let mut forced = vec![false; graph.id_bound()];
        if options.force {
            for &r in &roots {
                forced[r] = true;
            }
        }
        // The stats of the task files the certificate's judge found as it
        // recorded them stand as this build's own.
        let stamper = match progress.changed.and_then(|c| c.base.as_ref()) {
            Some(base) => {
                let (vouch, at) = crate::plan::certificate::Base::vouch(base);
                Stamper::vouched(vouch, at)
            }
            None => Stamper::default(),
        };
        let t = crate::phases::phase("plan");
        let plan = {
            let checker = Checker {
                graph,
                source: session.pipeline.source(),
                run_dir: &session.run_dir,
                store: &session.store,
                stamper: &stamper,
                mode: options.check,
            };
            let reach = progress.changed.and_then(|c| reach::reached(graph, c));
            let mut remade = forced.clone();
            for (p, _) in &remake {
                remade[*p] = wanted[*p];
            }
            let mut plan = Plan::make_checking(&checker, wanted, &remade, reach.as_deref())?;
            for (p, list) in &remake {
                if plan.reasons[*p].is_some() && !forced[*p] {
                    plan.reasons[*p] = Some(Reason::BadList(list.clone()));
                }
            }
            // No task that runs writes a file the run was given.
            seeds.check(&checker, &plan.to_run(graph).collect::<Vec<_>>())?;
            // What this build checks or runs: the records it may change.
            progress.rechecked = reach.map(|mut reach| {
                for (t, reason) in plan.reasons.iter().enumerate() {
                    reach[t] |= reason.is_some();
                }
                reach
            });
            plan
        };
        drop(t);
        // Planning a large pipeline takes a while; an interrupt meanwhile
        // stops the build before it records anything of itself.
        if let Some(stopped) = self.stopped_early() {
            progress.report = stopped;
            return Ok(());
        }
        let to_run: Vec<TaskId> = plan.to_run(graph).collect();
        // A state file that cannot be read counts as "not built", never as
        // a crash; say so. (No sidecar is there to read before the first
        // build has made their folder. A task that had none when the state
        // was loaded has none to read: one written since was written
        // whole, as every sidecar is.)
        let sidecars = session.run_dir.tasks_dir().exists();
        for &t in to_run.iter().filter(|_| sidecars) {
            if matches!(plan.reasons[t], Some(Reason::NeverBuilt { .. }))
                && session.store.had_sidecar(&graph[t].name)
            {
                let path = session.run_dir.status_path(&graph[t].name);
                if path.exists() && sidecar::read_status(&session.run_dir, &graph[t].name).is_none()
                {
                    self.say(
                        progress,
                        Notice::UnreadableStatus {
                            path: session.run_dir.show(&path),
                            task: graph[t].name.clone(),
                        },
                    );
                }
            }
        }
        let wanted_count = graph.ids().iter().filter(|&&t| plan.wanted[t]).count();
        progress.report.considered = wanted_count;
        if options.question {
            if !to_run.is_empty() {
                progress.report.ended = Ended::NotUpToDate;
            }
            return Ok(());
        }
        let earlier_work = session.run.is_some() || session.store.records().next().is_some();
        let mut run = session.run.clone().unwrap_or_else(|| {
            RunRecord::new(
                &session.run_dir,
                &session.pipeline.path.display().to_string(),
                run_record::hash_text(&session.pipeline.text),
            )
        });
        // A dry run beside a build that runs now resumes nothing: it says
        // what that build is running (`running now`), not `stopped`.
        let other_build = options.dry_run && session.build_running();
        // Fan-outs whose list this build makes expand inside it; those
        // whose list nothing here makes wait, with what depends on them.
        let fanouts = lists::take_part(graph, &plan);
        // The models are set up before the build says or records anything:
        // a build refused for a missing key or folder of recorded answers
        // has not begun (no `resuming` line, no build entry left running).
        let llm = if to_run.is_empty() {
            None
        } else if options.dry_run {
            // What the build would do includes a refusal, said here.
            if let Err(e) =
                self.models(graph, &session.run_dir, &to_run, &fanouts.left_out, options)
            {
                let hints: String = e.hints().iter().map(|h| format!(" ({h})")).collect();
                let refused = format!("the build would be refused: {e}{hints}");
                self.say(progress, Notice::WouldBeRefused(refused));
            }
            None
        } else {
            match self.models(graph, &session.run_dir, &to_run, &fanouts.left_out, options) {
                Ok(llm) => llm,
                Err(e) => {
                    // Why that model (one the run remembers) is said first.
                    if let Some((ModelSourceKind::Run, model)) = &session.model_source {
                        self.say(progress, Notice::ModelFromRun(model.clone()));
                    }
                    return Err(e);
                }
            }
        };
        if !to_run.is_empty() {
            if earlier_work && !other_build {
                let mut summary =
                    resume::summary(graph, &plan, &run, &to_run, &fanouts, &session.store);
                summary.dry_run = options.dry_run;
                let unexpanded = (summary.expanding.iter().chain(&summary.stuck))
                    .filter(|f| f.done_before > 0)
                    .map(|f| f.name.clone())
                    .collect();
                self.say(progress, Notice::Resuming(summary));
                let tasks = plan.changed_definitions(graph);
                if !tasks.is_empty() {
                    self.say(progress, Notice::DefinitionsChanged { tasks, unexpanded });
                }
            }
            if let Some((ModelSourceKind::Run, model)) = &session.model_source {
                self.say(progress, Notice::ModelFromRun(model.clone()));
            }
        }
        for notice in resume::tasks_left(session) {
            self.say(progress, notice);
        }

        // Hand edits are kept (or, in a dry run, would be).
        for (t, path) in &plan.edited {
            self.say(
                progress,
                Notice::EditedKept {
                    task: graph[*t].name.clone(),
                    path: path.clone(),
                    dry_run: options.dry_run,
                },
            );
        }
        if options.dry_run {
            progress.report.would_run = to_run
                .iter()
                .map(|&t| {
                    let name = &graph[t].name;
                    let reason = plan.reasons[t]
                        .as_ref()
                        .map(|r| session.shown_reason(name, r))
                        .unwrap_or_default();
                    (name.clone(), reason)
                })
                .collect();
            if to_run.is_empty() {
                self.say(
                    progress,
                    Notice::NothingToDo {
                        tasks: wanted_count,
                    },
                );
            }
            return Ok(());
        }

        // The build has begun: nothing refuses it now (a missing key, a
        // folder of recorded answers, an unknown target, an interrupt while
        // it planned), so its pipeline file is the run's from here on. A
        // refused build leaves the record as it was: the next plain build
        // builds what it would have built. (The lock is held since before
        // the plan: no other build records another file meanwhile.)
        session.record_pipeline()?;

        // Record what changed without changing meaning (same bytes, hand
        // edits).
        for update in &plan.updates {
            session.store.refresh_status(&session.run_dir, update)?;
        }

        if to_run.is_empty() {
            session.store.compact_if_large(&session.run_dir)?;
            // `--model` is remembered for the run even when nothing runs.
            let remember = match &session.model_source {
                Some((ModelSourceKind::Flag, m)) if run.model.as_ref() != Some(m) => Some(m),
                _ => None,
            }
            .filter(|_| options.answers.remembers_model());
            if session.run.is_none() || remember.is_some() {
                run.model = remember.cloned().or(run.model);
                if session.run.is_none() {
                    // A first build of an already complete directory still
                    // starts a run record.
                    run.begin_build(None);
                    run.end_build(
                        BuildOutcome::Completed,
                        0,
                        counts(graph, &plan.wanted, &plan.reasons, None),
                        None,
                    );
                }
                run.save(&session.run_dir)?;
                session.run = Some(run.clone());
            }
            self.say(
                progress,
                Notice::NothingToDo {
                    tasks: wanted_count,
                },
            );
            return Ok(());
        }
        let to_run: Vec<TaskId> = to_run
            .into_iter()
            .filter(|&t| !fanouts.left_out[t])
            .collect();

        // The run record says a build is under way before anything runs.
        let chosen_model = match &session.model_source {
            Some((ModelSourceKind::Flag, m)) => {
                if options.answers.remembers_model() {
                    run.model = Some(m.clone());
                }
                Some(m.clone())
            }
            Some((_, m)) => Some(m.clone()),
            None => None,
        };
        run.pipeline_hash = run_record::hash_text(&session.pipeline.text);
        run.begin_build(chosen_model);
        run.save(&session.run_dir)?;
        session.run = Some(run.clone());

        let t = crate::phases::phase("build: pending sidecars, setup");
        let mut run_mask = vec![false; graph.id_bound()];
        let mut tentative = vec![false; graph.id_bound()];
        for &t in &to_run {
            run_mask[t] = true;
            tentative[t] = resume::tentative(&plan, &fanouts, t);
            // `pending` matters for a task that ran before (its last good
            // run still stands); a task never run has nothing to announce.
            // Once interrupted, the build starts no task: announcing more
            // would only make it stop later (a task left without its
            // `pending` is judged by its last run, as `pending` says).
            if tentative[t]
                || matches!(plan.reasons[t], Some(Reason::NeverBuilt { .. }))
                || self.interrupt.requested()
            {
                continue;
            }
            let name = &graph[t].name;
            if let Some(prev) = session.store.done_record(&session.run_dir, name) {
                let mut pending = Status::new(name, TaskState::Pending, &graph[t].fingerprint);
                pending.inputs = prev.inputs.clone();
                pending.outputs = prev.outputs.clone();
                session.store.write_status(&session.run_dir, &pending)?;
            }
        }

        // One thread per job, and no more than can run: `-j 20000` on ten
        // tasks starts ten (unless fan-outs will add instances). Under a
        // jobserver, make's `-j` is the limit unless `-j` says otherwise.
        let limit = if fanouts.expanding.is_empty() {
            to_run.len().clamp(1, super::MAX_JOBS)
        } else {
            super::MAX_JOBS
        };
        let jobs = match (options.jobs, self.slots) {
            (Some(jobs), _) => jobs,
            (None, Some(_)) => limit,
            (None, None) => graph
                .jobs
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        }
        .clamp(1, limit);
        let started = Instant::now();
        let watchdog = Watchdog::start(self.interrupt.clone());
        let reaper = Reaper::start();
        let secrets = super::super::env::secrets_of(graph, self.env);
        let actions = Actions::new(
            &session.run_dir,
            session.pipeline.dir(),
            &watchdog,
            llm.as_ref(),
            self.env,
            &secrets,
        );
        let failures = Failures::new(graph, &session.run_dir, self.env);
        let checking = Checking::default();
        let runner = TaskRunner {
            run_dir: &session.run_dir,
            stamper: &stamper,
            executor: self.executor.unwrap_or(&actions as &dyn Executor),
            failures: &failures,
            inflight: progress.inflight,
            checking: &checking,
            folders: Default::default(),
            reaper: &reaper,
            secrets: &secrets,
        };
        let n = graph.id_bound();
        let forced_fanouts = if options.force {
            graph
                .fanouts
                .iter()
                .filter(|(_, g)| g.members.iter().any(|&m| forced[m]))
                .map(|(name, _)| name.clone())
                .collect()
        } else {
            Default::default()
        };
        let live = run.builds.last().map(|b| Live {
            pid: b.pid,
            started_at: b.started_at.clone(),
        });
        let mut hooks = BuildHooks {
            graph: &mut session.graph,
            pipeline: &session.pipeline,
            run_dir: &session.run_dir,
            store: &mut session.store,
            stamper: &stamper,
            mode: options.check,
            observer: self.observer,
            interrupt: self.interrupt,
            llm: llm.as_ref(),
            error: None,
            build: live,
            reasons: plan.reasons.clone(),
            running: vec![None; n],
            calls: vec![None; n],
            held: Vec::new(),
            checking: &checking,
            pending_check: vec![false; n],
            wanted: plan.wanted.clone(),
            expanding: fanouts.expanding,
            forced: forced_fanouts,
            seeds: &seeds,
            failures: &failures,
            own_writes: &actions.own_writes,
        };
        drop(t);
        self.observer.tasks_started(to_run.len());
        progress.report.ran_tasks = true;
        if let Some(build) = &hooks.build {
            self.observer.build_started(&hooks.view_of(build));
        }
        hooks.view();
        if let Some(sweep) = &mut progress.sweep {
            sweep.release();
        }
        let t = crate::phases::phase("tasks (scheduler)");
        let summary = scheduler::run(
            &run_mask,
            &tentative,
            &fanouts.gates,
            &runner,
            &mut hooks,
            scheduler::Options {
                jobs,
                keep_going: options.keep_going,
            },
            self.slots,
        );
        drop(t);
        let bookkeeping_error = hooks.error.take();
        let wanted = std::mem::take(&mut hooks.wanted);
        let reasons = std::mem::take(&mut hooks.reasons);
        drop(hooks);
        drop(watchdog);
        // Every file set aside by a committed run is gone before the build
        // says it ended.
        crate::phases::timed("build: deletions of what runs set aside", || {
            reaper.finish()
        });
        self.observer.tasks_ended();
        let graph = &session.graph;
        let compacted = session.store.compact_if_large(&session.run_dir);
        let error = bookkeeping_error.or_else(|| compacted.err());

        let interrupted = self.interrupt.requested() || !summary.stopped.is_empty();
        let outcome = if interrupted {
            BuildOutcome::Stopped
        } else if !summary.failed.is_empty() || error.is_some() {
            BuildOutcome::Failed
        } else {
            BuildOutcome::Completed
        };
        let ran = summary.succeeded.len() + summary.failed.len() + summary.stopped.len();
        // A task whose result could not be recorded has a reason to run.
        let last_completed = (summary.succeeded.iter().rev())
            .find(|&&t| reasons.get(t).is_none_or(Option::is_none))
            .map(|&t| graph[t].name.clone());
        run.end_build(
            outcome,
            ran,
            counts(graph, &wanted, &reasons, Some(&summary)),
            last_completed,
        );
        if let Some(e) = error {
            // Every task ended (committed or rolled back), so its entry
            // says it ended, when `run.json` can be written: on a disk
            // still full it cannot, and the next build recovers it as
            // after a crash, finding nothing left in flight. The error
            // reported is the first one.
            let _ = run.save(&session.run_dir);
            session.run = Some(run);
            return Err(e);
        }
        run.save(&session.run_dir)?;
        session.run = Some(run);
        let names = |ids: &[TaskId]| ids.iter().map(|&t| graph[t].name.clone()).collect();
        let unexpanded = lists::unexpanded(graph, &wanted, &reasons);
        self.say(
            progress,
            Notice::Ran(Ran {
                succeeded: summary.succeeded.len(),
                failed: names(&summary.failed),
                stopped: summary.stopped.len(),
                not_run: summary.not_run.len(),
                skipped: summary.skipped.len(),
                behind_unexpanded: lists::behind(graph, &unexpanded, &summary.not_run),
                unexpanded,
                elapsed: started.elapsed(),
                interrupted,
            }),
        );
        if interrupted {
            progress.report.ended = Ended::Stopped;
            return Ok(());
        }
        if !summary.failed.is_empty() {
            let first = &graph[summary.failed[0]];
            let mut details = failed::details(session, first);
            // The hint is about the first; the others may have failed
            // otherwise (`-k`, or tasks already running).
            if let count @ 1.. = summary.failed.len() - 1 {
                let others = session.advice().hint(&Trouble::OthersFailed { count });
                details = format!("{details}; {others}");
            }
            progress.report.ended = Ended::Failed {
                names: names(&summary.failed),
                hint: format!(
                    "{details}; {}",
                    session.advice().hint(&Trouble::TasksFailed)
                ),
            };
        }
        Ok(())
    }
}

impl Build<'_> {
    /// The models of the tasks this build runs (`to_run` but those
    /// `left_out` behind fan-outs), when one of them asks a model: prompt
    /// tasks, judges and the tasks a fan-out's instances ask. Refuses (exit
    /// 2) a model that needs a key the environment lacks, or answers from
    /// a folder that is not there.
    fn models<'s>(
        &self,
        graph: &Graph,
        run_dir: &'s RunDir,
        to_run: &[TaskId],
        left_out: &[bool],
        options: &super::BuildOptions,
    ) -> Result<Option<Llm<'s>>> {
        let mut mask = vec![false; graph.id_bound()];
        for &t in to_run.iter().filter(|&&t| !left_out[t]) {
            mask[t] = true;
        }
        let asks_models = graph.ids().iter().filter(|&&t| mask[t]).any(|&t| {
            matches!(graph[t].action, Action::Prompt(_))
                || graph[t].checks.judge.is_some()
                || !graph[t].origin.asks.is_empty()
        });
        if !asks_models {
            return Ok(None);
        }
        Llm::new(
            graph,
            &mask,
            run_dir,
            self.env,
            self.interrupt.clone(),
            options.answers.or_cache(graph.cache.as_ref()),
        )
        .map(Some)
    }
}

/// Task counts for the run record: done are the wanted tasks with nothing
/// (left) to run; with a summary, how the others ended.
fn counts(
    graph: &Graph,
    wanted: &[bool],
    reasons: &[Option<Reason>],
    summary: Option<&Summary>,
) -> Counts {
    let done = graph
        .ids()
        .iter()
        .filter(|&&t| {
            wanted.get(t).copied().unwrap_or(false) && reasons.get(t).is_none_or(Option::is_none)
        })
        .count();
    let mut c = Counts {
        tasks: graph.len(),
        done,
        ..Default::default()
    };
    if let Some(s) = summary {
        c.failed = s.failed.len();
        c.stopped = s.stopped.len();
        c.not_run = s.not_run.len();
    }
    c
}
