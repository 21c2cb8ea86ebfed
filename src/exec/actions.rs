//! The build's own [`Executor`]: a command task runs `sh -c` (see
//! [`command`]), a prompt task asks its model (see [`Llm`]) and writes the
//! accepted answer to its output atomically, a check runs its command and a
//! judge scores outputs on disk. Every process and model call is journaled
//! in the task's [`Turn`] while it runs, so a crash at any moment leaves a
//! record that leads the next build to what was running.

use std::path::Path;
use std::time::Instant;

use super::attempt::{Executor, Turn};
use super::checks::{self, CheckRunner};
use super::command::{self, Exit, Watchdog};
use super::env::Env;
use super::llm::{Llm, PromptFailure, PromptResult, Refused};
use super::own_write::{answer_lost, OwnWrites};
use crate::model::judge::Judge;
use crate::model::prompt::PromptSpec;
use crate::model::template_files::Files;
use crate::model::{Action, Task};
use crate::store::files;
use crate::store::record::JudgeVerdict;
use crate::store::untrusted::Secrets;
use crate::store::{ErrorKind, JudgeUsage, RunDir, Status, TaskError};

/// The most of one output a judge reads (its prompt holds the text).
pub const JUDGED_BYTES: u64 = 256 * 1024;

/// Commands and model calls, for one batch of a build.
pub struct Actions<'a> {
    pub run_dir: &'a RunDir,
    pub watchdog: &'a Watchdog,
    /// The folder of the pipeline file (`{pipeline_dir}` in commands).
    pub pipeline_dir: &'a Path,
    pub llm: Option<&'a Llm<'a>>,
    /// What every command's environment holds, but the variables of
    /// [`command::TASK_VARS`].
    pub env: command::Environment,
    /// The build's secrets (see [`env::secrets_of`](super::env::secrets_of)):
    /// what a check printed is scrubbed of them.
    pub secrets: &'a Secrets,
    /// An answer a full disk had no room for: the build's error.
    pub own_writes: OwnWrites,
}

impl<'a> Actions<'a> {
    /// The actions of `run_dir` for the pipeline in `pipeline_dir`:
    /// commands get the environment `env` with the run's variables
    /// (`PLANEXE_RUN_DIR`, `PLANEXE_PIPELINE_DIR`), models answer
    /// through `llm`, and what checks print is scrubbed of `secrets`.
    pub fn new(
        run_dir: &'a RunDir,
        pipeline_dir: &'a Path,
        watchdog: &'a Watchdog,
        llm: Option<&'a Llm<'a>>,
        env: &Env,
        secrets: &'a Secrets,
    ) -> Actions<'a> {
        Actions {
            run_dir,
            watchdog,
            pipeline_dir,
            llm,
            secrets,
            own_writes: OwnWrites::default(),
            env: command::Environment::new(
                env,
                &[
                    ("PLANEXE_RUN_DIR", run_dir.root().as_os_str()),
                    ("PLANEXE_PIPELINE_DIR", pipeline_dir.as_os_str()),
                ],
                command::TASK_VARS,
            ),
        }
    }
}

impl Executor for Actions<'_> {
    fn execute(&self, task: &Task, status: &mut Status, turn: &Turn) -> Result<(), TaskError> {
        match &task.action {
            Action::Command(template) => self.command(task, template, status, turn),
            Action::Prompt(spec) => self.ask(task, spec, status, turn),
            Action::Expand(list) => Err(TaskError::new(
                ErrorKind::Unsupported,
                format!(
                    "{} expands when {list} is built; it never runs itself",
                    task.name
                ),
            )),
        }
    }

    fn check(&self, task: &Task, script: &str, turn: &Turn) -> Result<(), TaskError> {
        let runner = CheckRunner {
            run_dir: self.run_dir,
            watchdog: self.watchdog,
            pipeline_dir: self.pipeline_dir,
            env: &self.env,
            secrets: self.secrets,
        };
        runner.run_check(task, script, turn)
    }

    fn judge(
        &self,
        task: &Task,
        judge: &Judge,
        status: &mut Status,
        turn: &Turn,
    ) -> Result<JudgeVerdict, TaskError> {
        let llm = self.models()?;
        let inputs = prompt_inputs(self.run_dir, task);
        let outputs = Files::outputs(
            task.outputs
                .iter()
                .map(|out| (out.path.clone(), self.run_dir.path(&out.path))),
            JUDGED_BYTES,
        );
        let deadline = task.timeout.map(|t| (Instant::now() + t, t));
        let vars = task.origin.vars.clone().unwrap_or_default();
        // While the judge asks, the running sidecar names its call; the
        // record keeps the task's own attempt and model.
        let kept = (status.attempt, status.model.clone());
        let mut on_attempt = on_attempt(status, turn);
        let result = llm.judge_outputs(
            &task.name,
            judge,
            &vars,
            &inputs,
            &outputs,
            deadline,
            &mut on_attempt,
        );
        drop(on_attempt);
        (status.attempt, status.model) = kept;
        let verdict = result.judge.clone();
        let answer = add_calls(status, result);
        answer.map_err(failure)?;
        verdict.ok_or_else(|| {
            TaskError::new(ErrorKind::Other, "the judge gave no verdict".to_string())
        })
    }
}

impl Actions<'_> {
    fn command(
        &self,
        task: &Task,
        template: &str,
        status: &mut Status,
        turn: &Turn,
    ) -> Result<(), TaskError> {
        let inputs: Vec<&str> = task.inputs.iter().map(|i| i.path.as_str()).collect();
        let outputs: Vec<&str> = task.outputs.iter().map(|o| o.path.as_str()).collect();
        let script = command::expand(template, &inputs, &outputs, self.pipeline_dir);
        let log = self.run_dir.task_log_path(&task.name);
        let score = turn.feedback.as_ref().map(|f| format!("{:.2}", f.score));
        let mut vars = vec![("PLANEXE_TASK", task.name.as_str())];
        if let (Some(feedback), Some(score)) = (&turn.feedback, &score) {
            vars.push(("PLANEXE_JUDGE_SCORE", score));
            vars.push(("PLANEXE_JUDGE_REASON", &feedback.reason));
        }
        let spec = command::Spec {
            script: &script,
            cwd: self.run_dir.root(),
            env: &self.env,
            vars: &vars,
            args: &[],
            log: &log,
            timeout: task.timeout,
        };
        // The task is journaled before the spawn (its turn began before
        // anything ran): a crash at any moment after it leaves a record
        // that leads the next build to the process.
        let exit = command::run(&spec, self.watchdog, |pid| {
            status.pid = Some(pid);
            turn.spawned(status);
        });
        command::scrub::scrub_ended(&log, self.secrets);
        Err(match exit {
            Exit::Success => return Ok(()),
            Exit::Code(code) => TaskError::exit(code),
            Exit::Signal(signal) => TaskError::signal(signal),
            Exit::Timeout(_) => TaskError::new(ErrorKind::Timeout, exit.to_string()),
            Exit::Interrupted => TaskError::new(ErrorKind::Stopped, "stopped by an interrupt"),
            Exit::SpawnFailed(m) => TaskError::new(ErrorKind::Spawn, m),
        })
    }

    /// Asks the model (and the task's judge) and writes the accepted
    /// answer to the task's output; on a failure, the last answer the
    /// judge refused, for the roll-back to keep.
    fn ask(
        &self,
        task: &Task,
        spec: &PromptSpec,
        status: &mut Status,
        turn: &Turn,
    ) -> Result<(), TaskError> {
        let llm = self.models()?;
        let inputs = prompt_inputs(self.run_dir, task);
        let deadline = task.timeout.map(|t| (Instant::now() + t, t));
        let out = &task.outputs[0].path;
        let mut on_attempt = on_attempt(status, turn);
        let result = llm.run(
            &task.name,
            spec,
            task.checks.judge.as_ref(),
            out,
            &inputs,
            deadline,
            &mut on_attempt,
        );
        drop(on_attempt);
        turn.cached(result.cached.clone());
        status.judge = result.judge.clone();
        // Its judge (severity warn) could not score: the answer stands.
        status
            .checks
            .extend(result.unscored.clone().map(checks::unscored));
        status.model = result.model.clone();
        status.attempt = result.attempts.len() as u32;
        let rejected = result.rejected.clone();
        let paid = result.paid;
        let write = |text: &str| {
            files::write_atomic(&self.run_dir.path(out), text.as_bytes()).map_err(|e| match e {
                // Not the task's fault: the build stops on it (exit 2).
                crate::error::Error::Io(e) if crate::error::no_space(&e) => {
                    let kept = paid
                        && llm.answers_without_a_call(&task.name, spec, None, || inputs.clone());
                    let lost = answer_lost(&e, paid, kept);
                    let message = lost.to_string();
                    self.own_writes.failed(lost.into());
                    TaskError::new(ErrorKind::Io, message)
                }
                e => TaskError::new(ErrorKind::Io, format!("cannot write {out}: {e}")),
            })
        };
        match add_calls(status, result) {
            Ok(text) => write(&text),
            // The answer its judge refused is written as an answer its
            // checks refuse is: the attempt's roll-back keeps it in
            // `.planexe/failed/TASK/` and puts the last good one back.
            // (A write that fails leaves the failure the judge's.) When
            // something else failed after it (the next fallback model, a
            // re-ask), the message says whose answer is kept.
            Err(mut failed) => {
                if let Some(refused) = rejected {
                    let kept = write(&refused.text).is_ok();
                    if kept && failed.kind != ErrorKind::JudgeRejected {
                        failed
                            .message
                            .push_str(&kept_refused(&refused, &status.judge));
                    }
                }
                Err(failure(failed))
            }
        }
    }

    fn models(&self) -> Result<&Llm<'_>, TaskError> {
        self.llm.ok_or_else(|| {
            TaskError::new(
                ErrorKind::Unsupported,
                "no model runner was set up for this build",
            )
        })
    }
}

/// The inputs of `task` as its prompt and its judge's see them: each read
/// when a template reads it.
pub(crate) fn prompt_inputs(run_dir: &RunDir, task: &Task) -> Files {
    Files::inputs(
        task.inputs
            .iter()
            .map(|input| (input.path.clone(), run_dir.path(&input.path))),
    )
}

/// Hears of each model call as it starts: the sidecar says which call is
/// in flight, so `status` shows the attempt and model of a running task
/// (a quick call writes nothing: its `running` sidecar was not due yet).
fn on_attempt<'s>(status: &'s mut Status, turn: &'s Turn) -> impl FnMut(u32, &str) + 's {
    move |attempt: u32, model: &str| {
        status.attempt = attempt;
        status.model = Some(model.to_string());
        turn.update(status);
    }
}

/// Adds a run of model calls to the task's record (appended: a command's
/// judge comes after its command; a rescored answer after its calls) and
/// their tokens, the judge's share apart too. Returns the answer.
fn add_calls(status: &mut Status, result: PromptResult) -> Result<String, PromptFailure> {
    let judged = result.attempts.iter().filter(|a| a.judge).count() as u64;
    if judged > 0 {
        let share = status.judge_usage.get_or_insert_with(JudgeUsage::default);
        share.add(&JudgeUsage {
            calls: judged,
            usage: result.judge_usage,
        });
    }
    status.attempts.extend(result.attempts);
    let mut usage = status.usage.take().unwrap_or_default();
    usage.add(&result.usage);
    status.usage = Some(usage);
    result.answer
}

/// What a failed task's message adds when the answer it keeps is one its
/// judge refused before something else failed: whose answer it is.
fn kept_refused(refused: &Refused, verdict: &Option<JudgeVerdict>) -> String {
    let scored = verdict.as_ref().map_or(String::new(), |v| {
        format!(" (judge {} scored it {:.2})", v.model, v.score)
    });
    format!(
        "; the answer kept is the last one its judge refused: model {}'s{scored}",
        refused.model
    )
}

/// A model run's failure, as the task's.
fn failure(failure: PromptFailure) -> TaskError {
    let kind = if failure.stopped {
        ErrorKind::Stopped
    } else {
        failure.kind
    };
    TaskError {
        error_id: failure.error_id,
        judge: failure.judge,
        // An earlier model of the chain may answer next time.
        recoverable: kind.recoverable() || failure.may_clear,
        ..TaskError::new(kind, failure.message)
    }
}
