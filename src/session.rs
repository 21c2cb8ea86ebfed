//! One invocation's view of the world: the run directory, the pipeline file
//! chosen for it, the resolved graph and the recorded state.
//!
//! Which pipeline file: `-f FILE`; else the one this run directory recorded
//! at its last build (`.planexe/pipeline`); else `$PLANEXE_PIPELINE`; else
//! `./pipeline.toml` in the run directory.

use std::path::{Path, PathBuf};

use crate::certificate::{self, Certificate};
use crate::cli::Cli;
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::pipeline::Pipeline;
use crate::plan::{Checker, Plan};
use crate::printer::Printer;
use crate::run::RunRecord;
use crate::rundir::{self, RunDir};
use crate::stamp::{CheckMode, Stamper};
use crate::state::StateStore;

/// Where a build's model override came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelSourceKind {
    /// `--model`.
    Flag,
    /// `$PLANEXE_MODEL`.
    Env,
    /// Remembered in `.planexe/run.json` from an earlier `--model`.
    Run,
}

/// The override and where it came from.
pub type ModelSource = (ModelSourceKind, String);

pub struct Session {
    /// The run record, when an earlier build made one.
    pub run: Option<RunRecord>,
    /// Where the model override came from, when there is one.
    pub model_source: Option<ModelSource>,
    pub run_dir: RunDir,
    pub pipeline: Pipeline,
    pub graph: Graph,
    pub store: StateStore,
}

impl Session {
    /// Opens the run directory, picks and parses the pipeline file and
    /// resolves its graph. Refusals carry `file:line:col` and a hint.
    /// The model override for prompt tasks: `model_override` (from `build
    /// --model`), else `$PLANEXE_MODEL`, else the model the run remembered.
    pub fn open(cli: &Cli, printer: &Printer, model_override: Option<&str>) -> Result<Session> {
        let (run_dir, path, display, warning) = locate(cli)?;
        if let Some(warning) = warning {
            printer.warn(&warning);
        }
        // The state log loads on a second thread while the pipeline is
        // parsed and resolved: on a large pipeline these are the two
        // biggest costs of every command.
        let (loaded, store) = std::thread::scope(|scope| {
            let store = scope.spawn(|| StateStore::load(&run_dir));
            let loaded =
                (|| -> Result<(Pipeline, Option<RunRecord>, Option<ModelSource>, Graph)> {
                    let pipeline = Pipeline::load(&path, display)?;
                    let run = RunRecord::load(&run_dir);
                    let remembered = run.as_ref().and_then(|r| r.model.clone());
                    let model_source: Option<ModelSource> =
                        match (model_override, env_model(), remembered) {
                            (Some(m), _, _) => Some((ModelSourceKind::Flag, m.to_string())),
                            (None, Some(m), _) => Some((ModelSourceKind::Env, m)),
                            (None, None, Some(m)) => Some((ModelSourceKind::Run, m)),
                            (None, None, None) => None,
                        };
                    let graph = Graph::resolve(
                        &pipeline,
                        &run_dir,
                        model_source.as_ref().map(|(_, m)| m.as_str()),
                        &|_| true,
                    )?;
                    Ok((pipeline, run, model_source, graph))
                })();
            let store = store
                .join()
                .unwrap_or_else(|_| Err(Error::usage("reading the state log failed")));
            (loaded, store)
        });
        let (pipeline, run, model_source, graph) = loaded?;
        let mut store = store?;
        // The last build crashed or still runs: its journal knows which
        // tasks are in flight even before their sidecars say so.
        if run
            .as_ref()
            .and_then(|r| r.builds.last())
            .is_some_and(|b| b.outcome == "running")
        {
            store.set_in_flight(crate::inflight::recover(&run_dir));
        }
        Ok(Session {
            run,
            model_source,
            run_dir,
            pipeline,
            graph,
            store,
        })
    }

    /// Resolves the graph again, expanding only the `foreach` tasks that
    /// `expand` allows (and whose list file exists).
    pub fn re_resolve(&mut self, expand: &dyn Fn(&str) -> bool) -> Result<()> {
        self.graph = Graph::resolve(
            &self.pipeline,
            &self.run_dir,
            self.model_source.as_ref().map(|(_, m)| m.as_str()),
            expand,
        )?;
        Ok(())
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

    /// Checks the `wanted` tasks against disk, forcing nothing: the plan a
    /// read-only command reports on.
    pub fn plan(&self, wanted: Vec<bool>, mode: CheckMode) -> Result<Plan> {
        // All of them up to date, by the certificate: no need to look
        // task by task.
        if wanted.iter().all(|&w| w)
            && Certificate::read(&self.run_dir)
                .and_then(|c| c.holds(&self.run_dir, &self.certificate_key(), mode))
                .is_some_and(|h| h.tasks == self.graph.tasks.len() as u64)
        {
            return Ok(Plan {
                reasons: vec![None; wanted.len()],
                wanted,
                updates: Vec::new(),
                edited: Vec::new(),
            });
        }
        let stamper = Stamper::default();
        let checker = Checker {
            graph: &self.graph,
            run_dir: &self.run_dir,
            store: &self.store,
            stamper: &stamper,
            mode,
        };
        Plan::make(&checker, wanted, &vec![false; self.graph.tasks.len()])
    }

    /// Remembers the pipeline file for later commands in this run directory.
    pub fn record_pipeline(&self) -> Result<()> {
        let path = self.run_dir.recorded_pipeline_path();
        let current = self.pipeline.path.to_string_lossy();
        if std::fs::read_to_string(&path)
            .ok()
            .as_deref()
            .map(str::trim)
            != Some(current.as_ref())
        {
            rundir::write_atomic(&path, format!("{current}\n").as_bytes())?;
        }
        Ok(())
    }
}

/// `$PLANEXE_MODEL`, when set and not blank.
pub fn env_model() -> Option<String> {
    std::env::var("PLANEXE_MODEL")
        .ok()
        .filter(|m| !m.trim().is_empty())
}

/// The run directory (`-C`) and the pipeline file chosen for it (path, how
/// to show it, and a warning to print about the choice), without reading
/// the pipeline.
pub fn locate(cli: &Cli) -> Result<(RunDir, PathBuf, String, Option<String>)> {
    let cwd = std::env::current_dir().map_err(|e| rundir::with_path(e, Path::new(".")))?;
    let root = match &cli.directory {
        Some(dir) => cwd.join(dir),
        None => cwd.clone(),
    };
    let run_dir = RunDir::open(&root)?;
    let (path, display, warning) = choose_pipeline(cli, &cwd, &run_dir)?;
    Ok((run_dir, path, display, warning))
}

fn choose_pipeline(
    cli: &Cli,
    cwd: &Path,
    run_dir: &RunDir,
) -> Result<(PathBuf, String, Option<String>)> {
    if let Some(file) = &cli.file {
        return Ok((cwd.join(file), file.display().to_string(), None));
    }
    let env = std::env::var_os("PLANEXE_PIPELINE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let recorded = std::fs::read_to_string(run_dir.recorded_pipeline_path())
        .ok()
        .map(|s| PathBuf::from(s.trim()))
        .filter(|p| !p.as_os_str().is_empty());
    if let Some(recorded) = recorded {
        if !recorded.exists() {
            return Err(Error::pipeline(format!(
                "this run directory was built with {}, which no longer exists",
                recorded.display()
            ))
            .hint("pass -f FILE to choose a pipeline file; it will be remembered"));
        }
        let mut warning = None;
        if let Some(env) = &env {
            let same =
                std::fs::canonicalize(cwd.join(env)).ok().as_deref() == Some(recorded.as_path());
            if !same {
                warning = Some(format!(
                    "using {} (recorded by an earlier build here), not $PLANEXE_PIPELINE={}",
                    recorded.display(),
                    env.display()
                ));
            }
        }
        let display = match recorded.strip_prefix(run_dir.root()) {
            Ok(rel) => rel.display().to_string(),
            Err(_) => recorded.display().to_string(),
        };
        return Ok((recorded, display, warning));
    }
    if let Some(env) = env {
        let display = env.display().to_string();
        return Ok((cwd.join(env), display, None));
    }
    let default = run_dir.root().join("pipeline.toml");
    let display = if cli.directory.is_some() {
        default.display().to_string()
    } else {
        "pipeline.toml".to_string()
    };
    Ok((default, display, None))
}
