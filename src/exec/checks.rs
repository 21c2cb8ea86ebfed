//! Output checks (docs/checks.md): judging what a task wrote before it is
//! accepted. First `min_bytes` (an output smaller than that fails the
//! task), then the task's `check` command: `sh -c CHECK sh OUT1 OUT2...`
//! in the run directory, with `$PLANEXE_OUTPUTS` and under the task's
//! timeout. Exit 0 accepts.
//!
//! Used inside an attempt (before its commit, so rejected outputs are
//! rolled back like any failed ones) and by `planexe check`, which judges
//! the current outputs and changes nothing.

use std::path::Path;

use super::command::{self, Exit, Watchdog};
use super::env::Env;
use super::failure::{last_bytes, LOG_TAIL_BYTES};
use super::interrupt::Interrupt;
use crate::error;
use crate::model::{Task, TaskId};
use crate::plan::Session;
use crate::store::{CheckRecord, ErrorKind, RunDir, Severity, TaskError};

/// What the checks said about a task's outputs.
#[derive(Debug, Default)]
pub struct Judgement {
    /// One record per check that ran (a passing `min_bytes` is not
    /// recorded: every task has one).
    pub records: Vec<CheckRecord>,
    /// Why the outputs are refused: an error-severity check failed, or
    /// the check could not run to its end (stopped).
    pub error: Option<TaskError>,
}

impl Judgement {
    /// Failed warn-severity checks: quality warnings.
    pub fn warnings(&self) -> impl Iterator<Item = &CheckRecord> {
        self.records
            .iter()
            .filter(|r| !r.passed && r.severity == Severity::Warn)
    }
}

/// Judges the outputs of `task` in `run_dir`; `run` runs the `check`
/// command (see [`run_check`]). With `strict`, a failed check refuses the
/// outputs whatever its severity (a rescue must be accepted).
pub fn judge(
    run_dir: &RunDir,
    task: &Task,
    strict: bool,
    run: impl FnOnce(&str) -> Result<(), TaskError>,
) -> Judgement {
    let mut judgement = Judgement::default();
    if let Some(message) = too_small(run_dir, task) {
        judgement.records.push(CheckRecord {
            name: "min_bytes".into(),
            passed: false,
            severity: Severity::Error,
            message: Some(message.clone()),
        });
        judgement.error = Some(TaskError::new(ErrorKind::CheckFailed, message));
        return judgement;
    }
    let Some(script) = &task.checks.command else {
        return judgement;
    };
    let severity = task.checks.severity;
    match run(script) {
        Ok(()) => judgement.records.push(CheckRecord {
            name: "check".into(),
            passed: true,
            severity,
            message: None,
        }),
        Err(error) => {
            judgement.records.push(CheckRecord {
                name: "check".into(),
                passed: false,
                severity,
                message: Some(error.message.clone()),
            });
            let warn_only =
                error.kind == ErrorKind::CheckFailed && severity == Severity::Warn && !strict;
            if !warn_only {
                judgement.error = Some(error);
            }
        }
    }
    judgement
}

/// The first output that is a regular file smaller than `min_bytes`, as
/// a message naming it and its size.
fn too_small(run_dir: &RunDir, task: &Task) -> Option<String> {
    let min = task.checks.min_bytes;
    if min == 0 {
        return None;
    }
    task.outputs.iter().find_map(|out| {
        let meta = std::fs::metadata(run_dir.path(&out.path)).ok()?;
        (meta.is_file() && meta.len() < min).then(|| {
            format!(
                "output {} is {} bytes, less than min_bytes = {min}",
                out.path,
                meta.len()
            )
        })
    })
}

/// How a `check` command is run: what every command of a build gets.
pub struct CheckRunner<'a> {
    pub run_dir: &'a RunDir,
    pub watchdog: &'a Watchdog,
    pub pipeline_dir: &'a Path,
    pub env: &'a command::Environment,
}

impl CheckRunner<'_> {
    /// Runs `script` on the outputs of `task`: `Ok` when it exits 0; else
    /// `check_failed` with the end of what it printed (its log is
    /// `.planexe/logs/TASK.check.txt`), or `stopped`.
    pub fn run_check(&self, task: &Task, script: &str) -> Result<(), TaskError> {
        let inputs: Vec<&str> = task.inputs.iter().map(|i| i.path.as_str()).collect();
        let outputs: Vec<&str> = task.outputs.iter().map(|o| o.path.as_str()).collect();
        let script = command::expand(script, &inputs, &outputs, self.pipeline_dir);
        let joined = outputs.join(" ");
        let log = self.run_dir.check_log_path(&task.name);
        let spec = command::Spec {
            script: &script,
            cwd: self.run_dir.root(),
            env: self.env,
            vars: &[("PLANEXE_TASK", &task.name), ("PLANEXE_OUTPUTS", &joined)],
            args: &outputs,
            log: &log,
            timeout: task.timeout,
        };
        let exit = command::run(&spec, self.watchdog, |_| {});
        let what = match &exit {
            Exit::Success => return Ok(()),
            Exit::Interrupted => {
                return Err(TaskError::new(
                    ErrorKind::Stopped,
                    "stopped by an interrupt while its check ran",
                ))
            }
            Exit::Timeout(_) => format!("the check ran out of time ({exit})"),
            other => format!("the check failed ({other})"),
        };
        let said = std::fs::read(&log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let said = last_bytes(said.trim_end(), LOG_TAIL_BYTES);
        let message = if said.is_empty() {
            what
        } else {
            format!("{what}: {said}")
        };
        Err(TaskError::new(ErrorKind::CheckFailed, message))
    }
}

/// One task's checks, judged again by [`recheck`].
pub struct Rechecked {
    pub task: String,
    pub judgement: Judgement,
}

/// Runs the checks of the tasks `names` (none: every done task with a
/// check or a `min_bytes`) on their current outputs, for `planexe check`.
/// Changes no output and no record; writes only the checks' logs. A task
/// with no successful run, or whose output is missing, fails.
pub fn recheck(session: &Session, env: &Env, names: &[String]) -> error::Result<Vec<Rechecked>> {
    let graph = &session.graph;
    let ids: Vec<TaskId> = if names.is_empty() {
        graph
            .tasks()
            .filter(|t| t.checks.any())
            .filter(|t| {
                session
                    .store
                    .done_record(&session.run_dir, &t.name)
                    .is_some()
            })
            .map(|t| t.id)
            .collect()
    } else {
        graph.tasks_named(names)?
    };
    let watchdog = Watchdog::start(Interrupt::new());
    let environment = command::Environment::new(
        env,
        &[
            ("PLANEXE_RUN_DIR", session.run_dir.root().as_os_str()),
            ("PLANEXE_PIPELINE_DIR", session.pipeline.dir().as_os_str()),
        ],
        &["PLANEXE_TASK", "PLANEXE_OUTPUTS"],
    );
    let runner = CheckRunner {
        run_dir: &session.run_dir,
        watchdog: &watchdog,
        pipeline_dir: session.pipeline.dir(),
        env: &environment,
    };
    let mut rechecked = Vec::with_capacity(ids.len());
    for id in ids {
        let task = &graph[id];
        let refused = |message: String| Judgement {
            records: Vec::new(),
            error: Some(TaskError::new(ErrorKind::CheckFailed, message)),
        };
        let missing = task
            .outputs
            .iter()
            .find(|o| std::fs::symlink_metadata(session.run_dir.path(&o.path)).is_err());
        let judgement = if session
            .store
            .done_record(&session.run_dir, &task.name)
            .is_none()
        {
            refused("no successful run is recorded".into())
        } else if let Some(out) = missing {
            refused(format!("output {} is missing", out.path))
        } else {
            judge(&session.run_dir, task, false, |script| {
                runner.run_check(task, script)
            })
        };
        rechecked.push(Rechecked {
            task: task.name.clone(),
            judgement,
        });
    }
    Ok(rechecked)
}
