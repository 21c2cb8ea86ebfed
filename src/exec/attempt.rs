//! One attempt at a task, as a transaction over its outputs:
//!
//! 1. **prepare**: stamp the inputs, set the outputs of the last good run
//!    aside in `.planexe/prev/TASK/`, make the outputs' folders;
//! 2. **execute**: run the action, through an [`Executor`] (commands and
//!    model calls, or a fake in tests);
//! 3. **verify**: every declared output exists; stamp them; the output
//!    checks accept them (`min_bytes`, `check`: see [`super::checks`]);
//! 4. **commit**: drop what was set aside; or **roll back**: move what the
//!    attempt wrote to `.planexe/failed/TASK/` and put the last good
//!    outputs back.
//!
//! So an output is only recorded after the action succeeded and every
//! declared output exists, a failed re-run never destroys earlier good
//! work, and no half-written file is left in place. The sidecar and `.DONE`
//! are then published from the job's own thread.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use super::checks;
use super::failure::Failures;
use super::scheduler::Runner;
use crate::error::Error;
use crate::model::{Action, Graph, Task, TaskId};
use crate::store::files::move_file;
use crate::store::sidecar;
use crate::store::{ErrorKind, RunDir, Stamp, Stamper, Status, TaskError, TaskState};

/// How many lines of a failed task's output to show.
const TAIL_LINES: usize = 15;

/// What runs a task's action once its inputs are stamped and its outputs
/// set aside: it must write every declared output, and may fill in the
/// status (pid, model, calls, usage). The build's own runs commands and
/// asks models; tests run a fake.
pub trait Executor: Sync {
    fn execute(&self, task: &Task, status: &mut Status) -> Result<(), TaskError>;

    /// Runs the task's `check` command `script` on its outputs (see
    /// [`super::checks::CheckRunner`]). An executor that cannot refuses.
    fn check(&self, task: &Task, script: &str) -> Result<(), TaskError> {
        let _ = script;
        Err(TaskError::new(
            ErrorKind::Unsupported,
            format!("nothing can run the check of {}", task.name),
        ))
    }
}

/// One attempt's hold on a task's outputs.
struct Attempt<'a> {
    task: &'a Task,
    run_dir: &'a RunDir,
    stamper: &'a Stamper,
    /// Whether outputs of the last good run were set aside.
    set_aside: bool,
}

impl Attempt<'_> {
    /// Stamps the inputs (learning hashes recorded by the last good run
    /// first) and sets the outputs aside. On failure, whatever was set
    /// aside is back in place.
    fn prepare(&mut self, previous: Option<&Status>, status: &mut Status) -> Result<(), TaskError> {
        if let Some(prev) = previous {
            for (path, stamp) in &prev.inputs {
                self.stamper.remember_hash(path, stamp);
            }
        }
        let inputs = self.task.inputs.iter().map(|i| i.path.as_str());
        self.stamp(inputs, &mut status.inputs, |path| {
            TaskError::new(
                ErrorKind::MissingInput,
                format!("input {path} does not exist"),
            )
        })?;
        let prev_dir = self.run_dir.prev_dir(&self.task.name);
        for out in &self.task.outputs {
            let current = self.run_dir.path(&out.path);
            if std::fs::symlink_metadata(&current).is_ok() {
                let aside = prev_dir.join(&out.path);
                if let Err(e) = self.inside(&[&current, &aside]) {
                    self.restore();
                    return Err(e);
                }
                if let Err(e) = move_file(&current, &aside) {
                    self.restore();
                    return Err(TaskError::new(
                        ErrorKind::Io,
                        format!("cannot set aside {}: {e}", out.path),
                    ));
                }
                self.set_aside = true;
            }
            if let Some(dir) = current.parent() {
                if let Err(e) = fs_err::create_dir_all(dir) {
                    self.restore();
                    return Err(TaskError::new(ErrorKind::Io, e.to_string()));
                }
            }
        }
        Ok(())
    }

    /// Checks that every output exists, and stamps it.
    fn verify(&self, status: &mut Status) -> Result<(), TaskError> {
        let missing: Vec<&str> = self
            .task
            .outputs
            .iter()
            .filter(|o| std::fs::symlink_metadata(self.run_dir.path(&o.path)).is_err())
            .map(|o| o.path.as_str())
            .collect();
        if !missing.is_empty() {
            let exited = matches!(self.task.action, Action::Command(_)).then_some(0);
            return Err(TaskError {
                exit_code: exited,
                ..TaskError::new(
                    ErrorKind::MissingOutput,
                    format!(
                        "the command exited 0 but did not write {}",
                        missing.join(", ")
                    ),
                )
            });
        }
        for out in &self.task.outputs {
            self.stamper.forget(&out.path);
        }
        let outputs = self.task.outputs.iter().map(|o| o.path.as_str());
        self.stamp(outputs, &mut status.outputs, |path| {
            TaskError::new(
                ErrorKind::MissingOutput,
                format!("{path} vanished after the command"),
            )
        })
    }

    /// Stamps `paths` into `stamps`; `missing` says what a path that does
    /// not exist means.
    fn stamp<'p>(
        &self,
        paths: impl Iterator<Item = &'p str>,
        stamps: &mut BTreeMap<String, Stamp>,
        missing: impl Fn(&str) -> TaskError,
    ) -> Result<(), TaskError> {
        for path in paths {
            match self.stamper.stamp(self.run_dir.root(), path) {
                Ok(Some(stamp)) => {
                    stamps.insert(path.to_string(), stamp);
                }
                Ok(None) => return Err(missing(path)),
                Err(e) => return Err(TaskError::new(ErrorKind::Io, e.to_string())),
            }
        }
        Ok(())
    }

    /// The attempt succeeded: what was set aside is no longer needed.
    fn commit(&self) {
        if self.set_aside {
            let _ = std::fs::remove_dir_all(self.run_dir.prev_dir(&self.task.name));
        }
    }

    /// The attempt failed: what it wrote goes to `.planexe/failed/TASK/`,
    /// and the outputs of the last good run come back.
    fn roll_back(&self) {
        let failed = self.run_dir.failed_dir(&self.task.name);
        let _ = std::fs::remove_dir_all(&failed);
        for out in &self.task.outputs {
            let current = self.run_dir.path(&out.path);
            let kept = failed.join(&out.path);
            if std::fs::symlink_metadata(&current).is_ok()
                && self.inside(&[&current, &kept]).is_ok()
            {
                let _ = move_file(&current, &kept);
            }
        }
        self.restore();
    }

    /// Puts back the outputs set aside.
    fn restore(&self) {
        let prev_dir = self.run_dir.prev_dir(&self.task.name);
        for out in &self.task.outputs {
            let saved = prev_dir.join(&out.path);
            let current = self.run_dir.path(&out.path);
            if std::fs::symlink_metadata(&saved).is_ok() && self.inside(&[&saved, &current]).is_ok()
            {
                let _ = move_file(&saved, &current);
            }
        }
        let _ = std::fs::remove_dir_all(&prev_dir);
    }

    /// Refuses to move a file from or to a folder that leads out of the run
    /// directory (a symlink planted in an output's folder or in
    /// `.planexe/`): nothing is written or deleted outside it.
    fn inside(&self, paths: &[&Path]) -> Result<(), TaskError> {
        for path in paths {
            self.run_dir.check_path_inside(path).map_err(|m| {
                TaskError::new(
                    ErrorKind::Io,
                    format!("refusing to move {}: {m}", self.run_dir.show(path)),
                )
            })?;
        }
        Ok(())
    }
}

/// What one task's run produced, sent from the pool to the loop.
pub struct RunResult {
    pub status: Status,
    pub elapsed: Duration,
    /// The last lines of a failed task's log.
    pub tail: Vec<String>,
    /// Writing the sidecar and marker failed (planexe's own bookkeeping).
    pub publish_error: Option<Error>,
    /// The length of the sidecar written.
    pub sidecar_len: Option<u64>,
}

/// Runs attempts on the scheduler's pool threads.
pub struct TaskRunner<'a> {
    pub graph: &'a Graph,
    pub run_dir: &'a RunDir,
    pub stamper: &'a Stamper,
    /// The last good run of each task to run, by id.
    pub previous: &'a [Option<Status>],
    pub executor: &'a dyn Executor,
    /// Where each failed attempt is recorded.
    pub failures: &'a Failures<'a>,
    /// By id: the task's checks alone changed since its last good run, so
    /// its current outputs are checked again before anything runs.
    pub recheck: &'a [bool],
}

impl Runner for TaskRunner<'_> {
    type Output = RunResult;

    fn run(&self, t: TaskId) -> RunResult {
        let task = &self.graph[t];
        let start = Instant::now();
        if self.recheck.get(t).copied().unwrap_or(false) {
            if let Some(done) = self.rechecked(task, self.previous[t].as_ref(), start) {
                return done;
            }
        }
        let mut status = Status::new(&task.name, TaskState::Running, &task.fingerprint);
        status.action_fingerprint = action_fingerprint(task);
        status.started_at = Some(crate::clock::now_rfc3339());
        status.attempt = 1;
        status.definition = task.action.definition();
        let mut attempt = Attempt {
            task,
            run_dir: self.run_dir,
            stamper: self.stamper,
            set_aside: false,
        };
        let result = attempt
            .prepare(self.previous[t].as_ref(), &mut status)
            .and_then(|()| {
                let ran = self.executor.execute(task, &mut status);
                match ran {
                    Ok(()) => attempt
                        .verify(&mut status)
                        .and_then(|()| self.judge(task, false, &mut status)),
                    Err(failed) if rescuable(task, &failed) => {
                        self.rescue(&attempt, task, failed, &mut status)
                    }
                    Err(failed) => Err(failed),
                }
                .inspect(|()| attempt.commit())
                .inspect_err(|_| attempt.roll_back())
            });
        status.finished_at = Some(crate::clock::now_rfc3339());
        let elapsed = start.elapsed();
        status.duration_ms = Some(elapsed.as_millis() as u64);
        let mut tail = Vec::new();
        match result {
            Ok(()) => status.state = TaskState::Done,
            Err(mut error) => {
                status.state = if error.kind == ErrorKind::Stopped {
                    TaskState::Stopped
                } else {
                    TaskState::Failed
                };
                tail = log_tail(self.run_dir, &task.name);
                self.failures.record(task, &status, &mut error);
                status.error = Some(error);
            }
        }
        // The sidecar and `.DONE` are written here, on the job's thread,
        // so tasks finishing together do not queue behind one another's
        // file writes on the loop's thread (which appends the log line).
        let (sidecar_len, publish_error) = match sidecar::publish(self.run_dir, &status) {
            Ok(len) => (Some(len), None),
            Err(e) => (None, Some(e)),
        };
        RunResult {
            status,
            elapsed,
            tail,
            publish_error,
            sidecar_len,
        }
    }
}

/// What a record keeps of a task's action apart from its checks: only
/// when it has checks (otherwise the two are the same).
fn action_fingerprint(task: &Task) -> Option<String> {
    (task.action_fingerprint != task.fingerprint).then(|| task.action_fingerprint.clone())
}

impl TaskRunner<'_> {
    /// A task whose checks alone changed: its current outputs, checked by
    /// the new checks, are its result when they pass (nothing runs); `None`
    /// when they fail, and the task runs as usual.
    fn rechecked(&self, task: &Task, last: Option<&Status>, start: Instant) -> Option<RunResult> {
        let mut status = last?.clone();
        self.judge(task, false, &mut status).ok()?;
        // The outputs as they are now (an edit by hand is kept).
        for out in &task.outputs {
            let stamp = self.stamper.stamp(self.run_dir.root(), &out.path).ok()??;
            status.outputs.insert(out.path.clone(), stamp);
        }
        status.state = TaskState::Done;
        status.fingerprint.clone_from(&task.fingerprint);
        status.action_fingerprint = action_fingerprint(task);
        status.error = None;
        status.started_at = Some(crate::clock::now_rfc3339());
        status.finished_at = status.started_at.clone();
        let elapsed = start.elapsed();
        status.duration_ms = Some(elapsed.as_millis() as u64);
        let (sidecar_len, publish_error) = match sidecar::publish(self.run_dir, &status) {
            Ok(len) => (Some(len), None),
            Err(e) => (None, Some(e)),
        };
        Some(RunResult {
            status,
            elapsed,
            tail: Vec::new(),
            publish_error,
            sidecar_len,
        })
    }

    /// Runs the output checks of `task` and records them in `status`;
    /// `strict` refuses on any failed check (see [`checks::judge`]).
    fn judge(&self, task: &Task, strict: bool, status: &mut Status) -> Result<(), TaskError> {
        let judgement = checks::judge(self.run_dir, task, strict, |script| {
            self.executor.check(task, script)
        });
        status.checks = judgement.records;
        judgement.error.map_or(Ok(()), Err)
    }

    /// A command that `failed` (exited non-zero) is done after all if it
    /// wrote every output and its check accepts them; else it failed,
    /// `check_failed` when the check refused.
    fn rescue(
        &self,
        attempt: &Attempt,
        task: &Task,
        failed: TaskError,
        status: &mut Status,
    ) -> Result<(), TaskError> {
        attempt.verify(status).map_err(|_| failed.clone())?;
        match self.judge(task, true, status) {
            Ok(()) => {
                status.rescued = true;
                Ok(())
            }
            Err(refused) if refused.kind == ErrorKind::CheckFailed => Err(TaskError {
                exit_code: failed.exit_code,
                ..TaskError::new(
                    ErrorKind::CheckFailed,
                    format!("{}, and {}", failed.message, refused.message),
                )
            }),
            Err(other) => Err(other),
        }
    }
}

/// Whether a failed attempt may be rescued by its check: a command task
/// with `rescue = true` that exited non-zero. Crashes (a signal, a
/// timeout, a stop) never are; missing outputs are found by the rescue.
fn rescuable(task: &Task, failed: &TaskError) -> bool {
    task.checks.rescue
        && failed.kind == ErrorKind::Exit
        && matches!(task.action, Action::Command(_))
}

/// The last lines of a task's log.
fn log_tail(run_dir: &RunDir, task: &str) -> Vec<String> {
    let Ok(bytes) = std::fs::read(run_dir.task_log_path(task)) else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(TAIL_LINES);
    lines[from..].iter().map(|l| l.to_string()).collect()
}
