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
use super::failure::{last_bytes, LOG_TAIL_BYTES};
use crate::model::Task;
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
