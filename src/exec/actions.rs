//! The build's own [`Executor`]: a command task runs `sh -c` (see
//! [`command`]), a prompt task asks its model (see [`Llm`]) and writes the
//! accepted answer to its output atomically. Both are journaled in the
//! in-flight journal while they run, so a crash at any moment leaves a
//! record that leads the next build to what was running.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use super::attempt::Executor;
use super::checks::CheckRunner;
use super::command::{self, Exit, Watchdog};
use super::llm::Llm;
use crate::model::prompt::PromptSpec;
use crate::model::{Action, Task};
use crate::store::files;
use crate::store::inflight::Inflight;
use crate::store::{ErrorKind, RunDir, Status, TaskError};

/// Commands and model calls, for one batch of a build.
pub struct Actions<'a> {
    pub run_dir: &'a RunDir,
    pub watchdog: &'a Watchdog,
    /// The folder of the pipeline file (`{pipeline_dir}` in commands).
    pub pipeline_dir: &'a Path,
    pub llm: Option<&'a Llm<'a>>,
    /// The journal (none in a build that records nothing).
    pub inflight: Option<&'a Inflight>,
    /// What every command's environment holds, but `PLANEXE_TASK`.
    pub env: command::Environment,
}

impl Executor for Actions<'_> {
    fn execute(&self, task: &Task, status: &mut Status) -> Result<(), TaskError> {
        match &task.action {
            Action::Command(template) => self.command(task, template, status),
            Action::Prompt(spec) => self.ask(task, spec, status),
            Action::Expand(list) => Err(TaskError::new(
                ErrorKind::Unsupported,
                format!(
                    "{} expands when {list} is built; it never runs itself",
                    task.name
                ),
            )),
        }
    }

    fn check(&self, task: &Task, script: &str) -> Result<(), TaskError> {
        let runner = CheckRunner {
            run_dir: self.run_dir,
            watchdog: self.watchdog,
            pipeline_dir: self.pipeline_dir,
            env: &self.env,
        };
        runner.run_check(task, script)
    }
}

impl Actions<'_> {
    fn command(&self, task: &Task, template: &str, status: &mut Status) -> Result<(), TaskError> {
        let inputs: Vec<&str> = task.inputs.iter().map(|i| i.path.as_str()).collect();
        let outputs: Vec<&str> = task.outputs.iter().map(|o| o.path.as_str()).collect();
        let script = command::expand(template, &inputs, &outputs, self.pipeline_dir);
        let log = self.run_dir.task_log_path(&task.name);
        let spec = command::Spec {
            script: &script,
            cwd: self.run_dir.root(),
            env: &self.env,
            vars: &[("PLANEXE_TASK", &task.name)],
            args: &[],
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
        Err(match exit {
            Exit::Success => return Ok(()),
            Exit::Code(code) => TaskError::exit(code),
            Exit::Signal(signal) => TaskError::signal(signal),
            Exit::Timeout(_) => TaskError::new(ErrorKind::Timeout, exit.to_string()),
            Exit::Interrupted => TaskError::new(ErrorKind::Stopped, "stopped by an interrupt"),
            Exit::SpawnFailed(m) => TaskError::new(ErrorKind::Spawn, m),
        })
    }

    /// Asks the model and writes the accepted answer to the task's output.
    fn ask(&self, task: &Task, spec: &PromptSpec, status: &mut Status) -> Result<(), TaskError> {
        let Some(llm) = self.llm else {
            return Err(TaskError::new(
                ErrorKind::Unsupported,
                "no model runner was set up for this build",
            ));
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
                    return Err(TaskError::new(
                        ErrorKind::MissingInput,
                        format!("cannot read input {}: {e}", input.path),
                    ))
                }
            }
        }
        let deadline = task.timeout.map(|t| (Instant::now() + t, t));
        let ticket = self.inflight.map(|i| i.begin(self.run_dir, status));
        let (run_dir, inflight) = (self.run_dir, self.inflight);
        // The sidecar says which call is in flight, so `status` shows the
        // attempt and model of a running task (a quick call writes
        // nothing: its `running` sidecar was not due yet).
        let mut on_attempt = |attempt: u32, model: &str| {
            status.attempt = attempt;
            status.model = Some(model.to_string());
            if let (Some(inflight), Some(ticket)) = (inflight, &ticket) {
                inflight.update(run_dir, ticket, status);
            }
        };
        let result = llm.run(&task.name, spec, &inputs, deadline, &mut on_attempt);
        if let (Some(inflight), Some(ticket)) = (self.inflight, ticket) {
            inflight.end(ticket);
        }
        status.model = result.model.clone();
        status.attempt = result.attempts.len() as u32;
        status.attempts = result.attempts;
        status.usage = Some(result.usage);
        status.judge = result.judge;
        match result.answer {
            Ok(text) => {
                let out = &task.outputs[0].path;
                files::write_atomic(&self.run_dir.path(out), text.as_bytes())
                    .map_err(|e| TaskError::new(ErrorKind::Io, format!("cannot write {out}: {e}")))
            }
            Err(failure) => {
                let kind = if failure.stopped {
                    ErrorKind::Stopped
                } else {
                    failure.kind
                };
                Err(TaskError {
                    error_id: failure.error_id,
                    ..TaskError::new(kind, failure.message)
                })
            }
        }
    }
}
