//! Output checks (docs/checks.md): judging what a task wrote before it is
//! accepted. First `min_bytes` (an output smaller than that fails the
//! task), then, for files planexe did not write, a prompt task's answer
//! format (JSON, satisfying its schema), then the task's `check` command
//! (`sh -c CHECK sh OUT1 OUT2...` in the run directory, with
//! `$PLANEXE_OUTPUTS` and under the task's timeout; exit 0 accepts), then
//! its judge (a model's score against the judge's threshold).
//!
//! Used inside an attempt (before its commit, so rejected outputs are
//! rolled back like any failed ones), by `planexe check`, which judges
//! the current outputs (whoever wrote them) and changes nothing, and by
//! `touch`, before it accepts outputs nobody ran the task for.

use std::path::Path;

use super::attempt::Turn;
use super::command::{self, Exit, Watchdog};
use super::failure::{scrubbed_tail, LOG_TAIL_BYTES};
use super::llm;
use crate::model::judge::Judge;
use crate::model::limits;
use crate::model::prompt::Format;
use crate::model::{Action, Task};
use crate::store::record::JudgeVerdict;
use crate::store::remedy::UNDER_MIN_BYTES;
use crate::store::untrusted::Secrets;
use crate::store::{CheckRecord, ErrorKind, RunDir, Severity, Stamps, TaskError};

/// What the checks said about a task's outputs.
#[derive(Debug, Default)]
pub struct Judgement {
    /// One record per check that ran (a passing `min_bytes` is not
    /// recorded: every task has one; the judge's verdict is apart).
    pub records: Vec<CheckRecord>,
    /// The judge's verdict, when it scored the outputs.
    pub verdict: Option<JudgeVerdict>,
    /// Why the outputs are refused: an error-severity check failed, the
    /// judge scored them low, or a check could not run to its end.
    pub error: Option<TaskError>,
}

impl Judgement {
    /// Failed warn-severity checks: quality warnings.
    pub fn warnings(&self) -> impl Iterator<Item = &CheckRecord> {
        self.records
            .iter()
            .filter(|r| !r.passed && r.severity == Severity::Warn)
    }

    /// The judge scored the outputs below its threshold and they are
    /// refused for it: its verdict.
    pub fn judge_refused(&self) -> Option<&JudgeVerdict> {
        self.verdict.as_ref().filter(|v| {
            !v.passed
                && self
                    .error
                    .as_ref()
                    .is_some_and(|e| e.kind == ErrorKind::JudgeRejected)
        })
    }
}

/// How the checks of one task are run: its `check` command, and (when the
/// judge is to score the outputs on disk) its judge. Each scrubs what it
/// says of the build's secrets where it says it (the `check` command's
/// runner, [`CheckRunner`], what the check printed).
pub struct Inspectors<'s, C, J> {
    /// Check a prompt task's output against its answer format and schema,
    /// for a file planexe may not have written (`touch`, `planexe check`), with
    /// the secrets the schema's complaints (which quote the file) are
    /// scrubbed of. A build validates the answer before it writes it.
    pub answer: Option<&'s Secrets>,
    pub check: C,
    /// None: the judge does not run here (a prompt task's judged its
    /// answer in its conversation already).
    pub judge: Option<J>,
}

/// Examines the outputs of `task` in `run_dir`: `min_bytes`, then (when
/// asked) the answer's format, then the `check` command, then the judge,
/// each only if the one before did not
/// refuse them. With `strict`, any failure refuses the outputs whatever
/// its severity (a rescue must be accepted). `stamped` holds the outputs
/// as the attempt just stamped them, when it did (their sizes need no
/// second look at the disk).
pub fn examine<C, J>(
    run_dir: &RunDir,
    task: &Task,
    strict: bool,
    stamped: Option<&Stamps>,
    run: Inspectors<'_, C, J>,
) -> Judgement
where
    C: FnOnce(&str) -> Result<(), TaskError>,
    J: FnOnce(&Judge) -> Result<JudgeVerdict, TaskError>,
{
    let mut judgement = Judgement::default();
    if let Some(message) = too_small(run_dir, task, stamped) {
        judgement.records.push(CheckRecord {
            name: "min_bytes".into(),
            passed: false,
            severity: Severity::Error,
            message: Some(message.clone()),
        });
        judgement.error = Some(TaskError::new(ErrorKind::CheckFailed, message));
        return judgement;
    }
    if let Some((name, message)) = run
        .answer
        .and_then(|secrets| misformed(run_dir, task, secrets))
    {
        judgement.records.push(CheckRecord {
            name: name.into(),
            passed: false,
            severity: Severity::Error,
            message: Some(message.clone()),
        });
        judgement.error = Some(TaskError::new(ErrorKind::CheckFailed, message));
        return judgement;
    }
    if let Some(script) = &task.checks.command {
        let severity = task.checks.severity;
        match (run.check)(script) {
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
                    return judgement;
                }
            }
        }
    }
    let (Some(judge), Some(run_judge)) = (&task.checks.judge, run.judge) else {
        return judgement;
    };
    let warn_only = judge.warn && !strict;
    match run_judge(judge) {
        Ok(verdict) => {
            if !verdict.passed && !warn_only {
                judgement.error = Some(TaskError {
                    judge: true,
                    ..TaskError::new(
                        ErrorKind::JudgeRejected,
                        format!("judge_rejected: {}", llm::rejection(&verdict)),
                    )
                });
            }
            judgement.verdict = Some(verdict);
        }
        // A judge of severity warn that cannot score (its model is down)
        // holds nothing up; a stop stops.
        Err(error) if warn_only && error.kind != ErrorKind::Stopped => {
            judgement.records.push(unscored(error.message));
        }
        Err(error) => judgement.error = Some(error),
    }
    judgement
}

/// The record of a judge of severity warn that could not score (`why`):
/// a quality warning. A prompt task's judge scores in its conversation, so
/// its record is made there (and kept by the checks that follow).
pub fn unscored(why: String) -> CheckRecord {
    CheckRecord {
        name: JUDGE.into(),
        passed: false,
        severity: Severity::Warn,
        message: Some(why),
    }
}

/// The name of a judge's record among the checks.
pub const JUDGE: &str = "judge";

/// The first output that is a regular file smaller than `min_bytes`, as
/// a message naming it and its size. A stamped output is a file (a
/// folder has no stamp) of the stamp's size.
fn too_small(run_dir: &RunDir, task: &Task, stamped: Option<&Stamps>) -> Option<String> {
    let min = task.checks.min_bytes;
    if min == 0 {
        return None;
    }
    task.outputs.iter().find_map(|out| {
        let size = match stamped.and_then(|s| s.get(&out.path)) {
            Some(stamp) => stamp.size,
            None => {
                let meta = std::fs::metadata(run_dir.path(&out.path)).ok()?;
                if !meta.is_file() {
                    return None;
                }
                meta.len()
            }
        };
        (size < min).then(|| format!("output {} is {size} {UNDER_MIN_BYTES}{min}", out.path))
    })
}

/// Why a prompt task's output is not what its answer would have been
/// written as, and the check that says so: `format` when it should be
/// JSON (the whole file) and is not, `schema` when it is JSON its schema
/// refuses (its complaints, which quote the file, scrubbed of `secrets`).
/// `None` when it is, or the task's answer is text.
fn misformed(run_dir: &RunDir, task: &Task, secrets: &Secrets) -> Option<(&'static str, String)> {
    let Action::Prompt(spec) = &task.action else {
        return None;
    };
    if spec.format != Format::Json {
        return None;
    }
    let out = &task.outputs.first()?.path;
    let value: serde_json::Value = match limits::read_bounded(&run_dir.path(out)) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(value) => value,
            Err(e) => {
                return Some((
                    "format",
                    format!("output {out} is not JSON (the task's format is json): {e}"),
                ))
            }
        },
        Err(e) => return Some(("format", format!("output {out} cannot be read: {e}"))),
    };
    let schema = spec.schema.as_deref()?;
    let complaints: Vec<String> = schema
        .validator
        .iter_errors(&value)
        .take(5)
        .map(|error| {
            let at = error.instance_path.to_string();
            let at = if at.is_empty() { "/" } else { at.as_str() };
            format!("at {at}: {error}")
        })
        .collect();
    if complaints.is_empty() {
        return None;
    }
    Some((
        "schema",
        format!(
            "output {out} does not match the schema {}: {}",
            run_dir.show(&schema.path),
            secrets.redact(&complaints.join("; "))
        ),
    ))
}

/// How the message of a check that could not run begins.
const COULD_NOT_RUN: &str = "the check could not run";
/// How the message of a check its timeout stopped begins.
const OUT_OF_TIME: &str = "the check ran out of time";

/// Whether a failed `check` command's `message` says it never judged the
/// outputs (it could not run, or ran out of time) rather than refused them.
pub fn unjudged(message: &str) -> bool {
    message.starts_with(COULD_NOT_RUN) || message.starts_with(OUT_OF_TIME)
}

/// How a `check` command is run: what every command of a build gets.
pub struct CheckRunner<'a> {
    pub run_dir: &'a RunDir,
    pub watchdog: &'a Watchdog,
    pub pipeline_dir: &'a Path,
    pub env: &'a command::Environment,
    /// What the check printed is scrubbed of these before it is quoted:
    /// the message goes into the task's record, the FAILED line, events,
    /// hooks, `summary.json` and the reports.
    pub secrets: &'a Secrets,
}

impl CheckRunner<'_> {
    /// Runs `script` on the outputs of `task`: `Ok` when it exits 0; else
    /// `check_failed` with the end of what it printed, scrubbed of the
    /// secrets (as its log, `.planexe/logs/TASK.check.txt`, is once it
    /// ended), or `stopped`. Its process is journaled in the task's
    /// `turn`.
    pub fn run_check(&self, task: &Task, script: &str, turn: &Turn) -> Result<(), TaskError> {
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
        let exit = command::run(&spec, self.watchdog, |pid| turn.spawned_check(pid));
        command::scrub::scrub_ended(&log, self.secrets);
        let what = match &exit {
            Exit::Success => return Ok(()),
            Exit::Interrupted => {
                return Err(TaskError::new(
                    ErrorKind::Stopped,
                    "stopped by an interrupt while its check ran",
                ))
            }
            Exit::Timeout(_) => format!("{OUT_OF_TIME} ({exit})"),
            // What `sh` says of a command it cannot find or execute: the
            // check never judged the outputs.
            Exit::Code(127) => {
                format!("{COULD_NOT_RUN} ({exit}: a command it names was not found)")
            }
            Exit::Code(126) => {
                format!("{COULD_NOT_RUN} ({exit}: a command it names cannot be executed)")
            }
            Exit::SpawnFailed(why) => format!("{COULD_NOT_RUN}: {why}"),
            other => format!("the check failed ({other})"),
        };
        let said = scrubbed_tail(&log, LOG_TAIL_BYTES, |text| {
            self.secrets.redact(text.trim_end())
        })
        .map(|t| t.text)
        .unwrap_or_default();
        let message = if said.is_empty() {
            what
        } else {
            format!("{what}: {said}")
        };
        Err(TaskError::new(ErrorKind::CheckFailed, message))
    }
}
