//! One invocation's view of a run directory: where it is, the pipeline file
//! chosen for it, the resolved graph and the recorded state. Opened from a
//! [`Location`] that the caller resolved (the CLI from the current
//! directory, `-C`, `-f` and the environment; a test or a server from
//! anything; `location.rs` chooses the file), with the [`ModelChoice`] of
//! this invocation.
//!
//! A session not named a file whose run directory records another one by
//! the time it holds the lock (a build with `-f` ran meanwhile) is refused
//! by [`Session::refresh`]: it read the run for a pipeline the run no
//! longer uses.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use super::location::{record_pipeline, recorded_pipeline};
pub use super::location::{Located, Location};

use super::certificate;
use super::Plan;
use crate::error::{Error, Result};
use crate::model::{Advice, Graph, Lists, Pipeline, TaskId, Trouble};
use crate::store::inflight::{self, Journal};
use crate::store::run_record::{BuildEntry, RunRecord};
use crate::store::rundir::StateMark;
use crate::store::{Builder, CheckMode, RunDir, StateStore, Status};

/// The model override of an invocation: `--model`, else `$PLANEXE_MODEL`,
/// else the model the run remembers from an earlier `--model`.
#[derive(Debug, Clone, Default)]
pub struct ModelChoice {
    /// `--model`.
    pub flag: Option<String>,
    /// `$PLANEXE_MODEL`, when set and not blank.
    pub env: Option<String>,
}

impl ModelChoice {
    /// The override named for this invocation, not the one a run remembers.
    pub fn explicit(&self) -> Option<&str> {
        self.flag.as_deref().or(self.env.as_deref())
    }
}

pub use crate::model::ModelSourceKind;

/// The override and where it came from.
pub type ModelSource = (ModelSourceKind, String);

/// What [`Session::open`] reads beside the state log: the pipeline, the
/// model override, the remembered model set aside, the graph.
type Loaded = (
    Pipeline,
    Option<ModelSource>,
    Option<String>,
    Graph,
    certificate::AsRead,
);

/// One invocation's view of a run directory.
pub struct Session {
    /// The run record, when an earlier build made one.
    pub run: Option<RunRecord>,
    /// Where the model override came from, when there is one.
    pub model_source: Option<ModelSource>,
    pub run_dir: RunDir,
    pub pipeline: Pipeline,
    pub graph: Graph,
    /// The files the graph was resolved from, as they were read: what a
    /// certificate must find them still ([`certificate::write`]).
    pub read: certificate::AsRead,
    pub store: StateStore,
    /// What the choice of pipeline file left to say (already said by
    /// whoever located it; kept so a build knows it was not clean).
    pub warning: Option<String>,
    /// Whether the pipeline file was named for this invocation (`-f`).
    named: bool,
    /// What to tell the user when the pipeline file cannot be used.
    advice: Advice,
    /// The state as it was when `run` and `store` were read.
    mark: StateMark,
    /// The journal of the build `run` says did not end, read with them
    /// (crash recovery reads it again if it changed since).
    pub journal: Option<Journal>,
    /// The tasks whose sidecar was damaged while the log vouched for them
    /// (`StateStore::damaged`), when that was looked at with the state:
    /// among them, those of the graph.
    pub damaged: Option<Vec<String>>,
    /// Which `foreach` tasks the graph was resolved to expand.
    lists: Lists,
    /// The model the run remembers from an earlier `--model` that the
    /// pipeline no longer has, which a session that only reads
    /// ([`Session::read`]) resolved without (as `--model` does not, the
    /// choice of model makes no task stale). A build refuses it.
    pub set_aside_model: Option<String>,
    /// The plan of every task that [`Session::read`] made of the graph as
    /// it stands, with its check mode: the next [`Session::plan_all`] in
    /// that mode need not check again.
    made: std::sync::Mutex<Option<(CheckMode, Plan)>>,
    /// Tasks that made a `foreach` list that cannot be expanded, each with
    /// its list, as [`Session::read`] found them: a build makes the list
    /// again, so [`Session::plan`] has them stale, as a build's plan does.
    remake: Vec<(TaskId, String)>,
}

impl Session {
    /// Parses the pipeline file and resolves its graph (expanding the
    /// `foreach` tasks `lists` allows), and loads the recorded state.
    /// Refusals carry `file:line:col` and a hint.
    pub fn open(located: Located, model: &ModelChoice, lists: Lists) -> Result<Session> {
        Session::open_as(located, model, lists, false, None)
    }

    /// [`Session::open`] for a build whose up-to-date certificate found
    /// planexe's state files as the build that wrote it left them (only
    /// task files or folders changed: `Certified::Changed`), `mark` taken
    /// before that judgement. While the state's mark is still `mark`, no
    /// command changed the state since: `.planexe/tasks/` is not listed
    /// (a marker a build asks of is a stat, unless it wrote or removed it
    /// itself) and no sidecar is looked at for damage (the certificate
    /// found every one unchanged). Otherwise
    /// it opens as [`Session::open`] does.
    pub fn open_certified(
        located: Located,
        model: &ModelChoice,
        lists: Lists,
        mark: StateMark,
    ) -> Result<Session> {
        Session::open_as(located, model, lists, false, Some(mark))
    }

    /// [`Session::open`]; `reading`: for a command that only reads, which
    /// sets aside a model the run remembers that the pipeline no longer
    /// has ([`Session::set_aside_model`]) rather than refuse it.
    fn open_as(
        located: Located,
        model: &ModelChoice,
        lists: Lists,
        reading: bool,
        certified: Option<StateMark>,
    ) -> Result<Session> {
        let Located {
            run_dir,
            pipeline: path,
            display,
            named,
            warning,
            advice,
            ..
        } = located;
        // Taken before reading: a change made meanwhile shows as one.
        let mark = run_dir.state_mark();
        let vouched = certified == Some(mark);
        let run = RunRecord::load(&run_dir);
        // The state log (and the journal of a build that did not end)
        // loads on a second thread while the pipeline is parsed and
        // resolved: on a large pipeline these are the two biggest costs of
        // every command.
        // Once loaded, while the pipeline is still being resolved, that
        // thread looks for damaged sidecars, which a build repairs before
        // its plan (`resolved` ends the look).
        let resolved = AtomicBool::new(false);
        let (loaded, store) = std::thread::scope(|scope| {
            let store = scope.spawn(|| {
                let t = crate::phases::phase("state log: load");
                // The journal first: a task it says ended has published
                // its outcome before (`inflight`), which the records read
                // next show.
                let journal = journal_of(&run_dir, run.as_ref());
                let store = StateStore::load_listing(&run_dir, !vouched)?;
                drop(t);
                if vouched {
                    return Ok((store, journal, Some(Vec::new())));
                }
                let _t = crate::phases::phase("state log: damaged sidecars, while waiting");
                let damaged = store.damaged_all(&run_dir, &resolved);
                Ok((store, journal, damaged))
            });
            let loaded = (|| -> Result<Loaded> {
                let t = crate::phases::phase("pipeline: parse");
                let before = certificate::PipelineStat::before_reading(&path);
                let pipeline = Pipeline::load_with(&path, display, &advice)?;
                drop(t);
                let remembered = run.as_ref().and_then(|r| r.model.clone());
                let model_source = match (&model.flag, &model.env, remembered) {
                    (Some(m), _, _) => Some((ModelSourceKind::Flag, m.clone())),
                    (None, Some(m), _) => Some((ModelSourceKind::Env, m.clone())),
                    (None, None, Some(m)) => Some((ModelSourceKind::Run, m)),
                    (None, None, None) => None,
                };
                let (model_source, set_aside) = match model_source {
                    Some((ModelSourceKind::Run, m))
                        if reading && !pipeline.def.models.keys().any(|k| k.get_ref() == &m) =>
                    {
                        (None, Some(m))
                    }
                    source => (source, None),
                };
                let _t = crate::phases::phase("pipeline: resolve");
                let graph = Graph::resolve_with(
                    &pipeline,
                    &run_dir,
                    model_source.as_ref().map(|(k, m)| (*k, m.as_str())),
                    lists,
                    advice.clone(),
                )?;
                let read = certificate::AsRead::new(before, &run_dir, &pipeline, &graph);
                Ok((pipeline, model_source, set_aside, graph, read))
            })();
            resolved.store(true, Ordering::Relaxed);
            let store = store
                .join()
                .unwrap_or_else(|_| Err(Error::usage("reading the state log failed")));
            (loaded, store)
        });
        let (pipeline, model_source, set_aside_model, graph, read) = loaded?;
        let (mut store, journal, damaged) = store?;
        in_flight(&mut store, journal.as_ref());
        Ok(Session {
            journal,
            damaged,
            run,
            model_source,
            run_dir,
            pipeline,
            graph,
            read,
            store,
            warning,
            named,
            advice,
            mark,
            lists,
            set_aside_model,
            made: Default::default(),
            remake: Vec::new(),
        })
    }

    /// Reads the recorded state again (the run record and the state log)
    /// when another planexe changed it since it was read: a build calls
    /// this once it holds the lock, so that what another build did while
    /// this session waited (a watch waiting for the lock, a build opened
    /// just before another one ended) is what it plans from. `true` when
    /// it read it again.
    ///
    /// When the other build chose another model for the run (`--model`,
    /// remembered in `run.json`) and this invocation names none, the graph
    /// is resolved again with that model: the session is then what it
    /// would be if it had been opened now.
    ///
    /// When the other build recorded another pipeline file for the run
    /// (`build -f`) and this invocation named none, the session is
    /// refused (exit 2, nothing read again): it was opened for a pipeline
    /// the run no longer uses, and what the caller did with it (warnings
    /// given, hooks started) was for that one. Opened again, it takes the
    /// recorded file ([`Session::moved_pipeline`]).
    pub fn refresh(&mut self) -> Result<bool> {
        let mark = self.run_dir.state_mark();
        if mark == self.mark {
            return Ok(false);
        }
        if let Some(recorded) = self.moved_pipeline()? {
            let recorded = self.run_dir.show(&recorded);
            let mine = &self.pipeline.display;
            return Err(Error::pipeline(format!(
                "another build in this directory ({}) recorded {recorded} as the run's pipeline file while this build was starting with {mine}; nothing was built",
                self.run_dir.root().display()
            ))
            .hint(self.advice.hint(&Trouble::Moved {
                recorded: &recorded,
                mine,
            })));
        }
        let run = RunRecord::load(&self.run_dir);
        // The journal before the records, as when the session was opened.
        let journal = journal_of(&self.run_dir, run.as_ref());
        let mut store = StateStore::load(&self.run_dir)?;
        in_flight(&mut store, journal.as_ref());
        if self.explicit_model().is_none() {
            let remembered = run.as_ref().and_then(|r| r.model.clone());
            let resolved = self.model_source.as_ref().map(|(_, m)| m);
            if remembered.as_ref() != resolved {
                self.graph = Graph::resolve_with(
                    &self.pipeline,
                    &self.run_dir,
                    remembered.as_deref().map(|m| (ModelSourceKind::Run, m)),
                    self.lists,
                    self.advice.clone(),
                )?;
                self.model_source = remembered.map(|m| (ModelSourceKind::Run, m));
            }
        }
        self.run = run;
        self.store = store;
        self.journal = journal;
        self.damaged = None;
        self.mark = mark;
        // A plan made before was made from the state read before.
        *self.made_plan() = None;
        Ok(true)
    }

    /// The tasks of the graph whose sidecar is damaged while the log
    /// vouches for their last run (`StateStore::damaged`), sorted: from
    /// what the state's load found, each looked at again (recovery may have
    /// written one since), or else looked for now.
    pub fn damaged_sidecars(&self) -> Vec<String> {
        match &self.damaged {
            Some(found) => {
                let mut damaged: Vec<String> = found
                    .iter()
                    .filter(|task| {
                        self.graph.task(task).is_some()
                            && self.store.sidecar_damaged(&self.run_dir, task)
                    })
                    .cloned()
                    .collect();
                damaged.sort_unstable();
                damaged
            }
            None => {
                let names: Vec<&str> = self.graph.tasks().map(|t| t.name.as_str()).collect();
                self.store
                    .damaged(&self.run_dir, &names)
                    .into_iter()
                    .map(str::to_string)
                    .collect()
            }
        }
    }

    /// The pipeline file the run directory records now, when this session
    /// was not named one (`-f`) and reads another: a build (`build -f`)
    /// recorded it since the session was opened.
    pub fn moved_pipeline(&self) -> Result<Option<PathBuf>> {
        if self.named {
            return Ok(None);
        }
        let Some(recorded) = recorded_pipeline(&self.run_dir, &self.advice)? else {
            return Ok(None);
        };
        // The same file spelled another way (`-f` from a linked folder, a
        // relative `$PLANEXE_PIPELINE`) has not moved.
        let canonical = |p: &std::path::Path| std::fs::canonicalize(p).ok();
        let same = recorded == self.pipeline.path
            || canonical(&recorded).is_some_and(|r| Some(r) == canonical(&self.pipeline.path));
        Ok((!same).then_some(recorded))
    }

    /// The model override named for this invocation (`--model` or
    /// `$PLANEXE_MODEL`), not the one the run remembers.
    pub fn explicit_model(&self) -> Option<&str> {
        match &self.model_source {
            Some((ModelSourceKind::Flag | ModelSourceKind::Env, m)) => Some(m),
            _ => None,
        }
    }

    /// What the up-to-date certificate of this run directory is keyed by.
    pub fn certificate_key(&self) -> certificate::Key<'_> {
        certificate::Key {
            pipeline: &self.pipeline.path,
            model: self.explicit_model(),
        }
    }

    /// Whether the last build runs now.
    pub fn build_running(&self) -> bool {
        self.running_build().is_some()
    }

    /// The last build, while it runs.
    pub fn running_build(&self) -> Option<&BuildEntry> {
        self.run
            .as_ref()
            .and_then(|r| r.running_build(&self.run_dir))
    }

    /// The build that runs now, seen from this process (which reads).
    pub fn builder(&self) -> Builder<'_> {
        Builder::other(self.running_build())
    }

    /// Why `task` is stale, as a read-only command says it: a task that
    /// another build runs now is `running now (pid N)` (N the task's
    /// command while it runs, else the build running it), not `stopped
    /// last time`.
    pub fn shown_reason(&self, task: &str, reason: &super::Reason) -> String {
        match reason {
            super::Reason::InterruptedLastTime { .. } => self.running_now_reason(task),
            _ => None,
        }
        .unwrap_or_else(|| reason.to_string())
    }

    /// `running now (pid N)` when another build runs `task` now.
    fn running_now_reason(&self, task: &str) -> Option<String> {
        let build = self
            .run
            .as_ref()
            .and_then(|r| r.running_build(&self.run_dir))?;
        let status = self.running_now(task)?;
        Some(format!(
            "running now (pid {})",
            status
                .pid
                .filter(|&pid| crate::store::process::alive(pid))
                .unwrap_or(build.pid)
        ))
    }

    /// The `running` status of `task` when it runs now: its sidecar (or
    /// the running build's journal) says it runs, and its process lives or
    /// the build that runs now started it (see [`Status::runs_now`]).
    pub fn running_now(&self, task: &str) -> Option<Status> {
        self.store
            .sidecar(&self.run_dir, task)
            .filter(|s| s.runs_now(self.builder()))
    }

    /// What to tell the user when something cannot be used or found, in
    /// the terms of the door the session was opened by.
    pub fn advice(&self) -> &Advice {
        &self.advice
    }

    /// The tasks build targets on the command line name ([`Graph::targets`]:
    /// tasks, instances, fan-out tasks, outputs); an output named by its
    /// absolute path inside the run directory is taken as its own.
    pub fn targets(&self, targets: &[String]) -> Result<Vec<TaskId>> {
        let targets: Vec<String> = targets.iter().map(|t| self.run_dir.target(t)).collect();
        self.graph.targets(&targets)
    }

    /// The tasks names on the command line mean ([`Graph::tasks_named`]:
    /// tasks, instances, fan-out tasks, outputs); an output named by its
    /// absolute path inside the run directory is taken as its own.
    pub fn tasks_named(&self, names: &[String]) -> Result<Vec<TaskId>> {
        let names: Vec<String> = names.iter().map(|n| self.run_dir.target(n)).collect();
        self.graph.tasks_named(&names)
    }

    /// The one task a name on the command line means: a task or an
    /// instance by its name, or the task that writes the output it names
    /// (as [`Session::tasks_named`]); `None` for anything else, a fan-out
    /// task's name included.
    pub fn task_named(&self, name: &str) -> Option<&crate::model::Task> {
        match self.graph.task(name) {
            Some(task) => Some(task),
            None => Some(&self.graph[self.graph.producer_of(&self.run_dir.target(name))?]),
        }
    }

    /// Remembers the pipeline file for later commands in this run directory.
    pub fn record_pipeline(&self) -> Result<()> {
        record_pipeline(&self.run_dir, &self.pipeline.path)
    }
}

/// The journal of the last build, when it did not record its end: it
/// crashed or still runs.
fn journal_of(run_dir: &RunDir, run: Option<&RunRecord>) -> Option<Journal> {
    run.and_then(RunRecord::unfinished_build)
        .map(|_| inflight::journal(run_dir))
}

/// The journal of a build that did not end knows which tasks are in
/// flight even before their sidecars say so.
fn in_flight(store: &mut StateStore, journal: Option<&Journal>) {
    if let Some(journal) = journal {
        store.set_in_flight(journal.in_flight.clone());
    }
}

mod planning;
pub use planning::Expanded;

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
