//! One attempt at a task, as a transaction over its outputs:
//!
//! 1. **prepare**: stamp the inputs, set the outputs of the last good run
//!    aside in `.planexe/prev/TASK/`, make the outputs' folders;
//! 2. **execute**: run the action, through an [`Executor`] (commands and
//!    model calls, or a fake in tests);
//! 3. **verify**: every declared output exists; stamp them; the output
//!    checks accept them (`min_bytes`, `check`, the judge: see
//!    [`super::checks`]);
//! 4. **commit**: drop what was set aside (deleted off the task's thread,
//!    [`super::reaper`]); or **roll back**: move what the
//!    attempt wrote to `.planexe/failed/TASK/` and put the last good
//!    outputs back. The folders under `.planexe/prev/TASK/` stay for the
//!    task's next run.
//!
//! So an output is only recorded after the action succeeded and every
//! declared output exists, a failed re-run never destroys earlier good
//! work, and no half-written file is left in place. The order of the steps,
//! re-runs after a judge's low score and rescues are the task runner's
//! ([`super::runner`]).
//!
//! An executor is told, besides the task, its [`Turn`]: the task's line in
//! the in-flight journal (held from the first step to the last, so a crash
//! while a check or judge runs is a crash of the task) and the judge's
//! feedback when a command runs again.

use std::path::Path;

use super::reaper::Reaper;
use crate::model::judge::Judge;
use crate::model::{Action, Task};
use crate::store::files::move_file;
use crate::store::inflight::{Inflight, Ticket};
use crate::store::record::JudgeVerdict;
use crate::store::{wrong_kind, ErrorKind, RunDir, Stamper, Stamps, Status, TaskError};

/// What runs a task's action once its inputs are stamped and its outputs
/// set aside: it must write every declared output, and may fill in the
/// status (pid, model, calls, usage). The build's own runs commands and
/// asks models; tests run a fake.
pub trait Executor: Sync {
    fn execute(&self, task: &Task, status: &mut Status, turn: &Turn) -> Result<(), TaskError>;

    /// Runs the task's `check` command `script` on its outputs (see
    /// [`super::checks::CheckRunner`]). An executor that cannot refuses.
    fn check(&self, task: &Task, script: &str, turn: &Turn) -> Result<(), TaskError> {
        let _ = (script, turn);
        Err(TaskError::new(
            ErrorKind::Unsupported,
            format!("nothing can run the check of {}", task.name),
        ))
    }

    /// Scores the task's outputs as they are on disk with its `judge`,
    /// adding the judge's calls to `status`; the verdict, or why none
    /// could be had. An executor without models refuses.
    fn judge(
        &self,
        task: &Task,
        judge: &Judge,
        status: &mut Status,
        turn: &Turn,
    ) -> Result<JudgeVerdict, TaskError> {
        let _ = (judge, status, turn);
        Err(TaskError::new(
            ErrorKind::Unsupported,
            format!("no model can judge the outputs of {}", task.name),
        ))
    }
}

/// Why a command runs again: its judge scored what it wrote too low. The
/// command gets `$PLANEXE_JUDGE_SCORE` and `$PLANEXE_JUDGE_REASON`.
#[derive(Debug, Clone)]
pub struct Feedback {
    pub score: f64,
    pub reason: String,
}

/// One turn of a task's attempt, as its executor sees it: the task's line
/// in the in-flight journal (the processes it starts, the state it is in),
/// when a command runs again, the judge's feedback, and the response
/// cache's entries its answer came from or went to.
pub struct Turn<'a> {
    run_dir: &'a RunDir,
    journal: Option<(&'a Inflight, Ticket)>,
    pub feedback: Option<Feedback>,
    cached: std::sync::Mutex<Vec<std::path::PathBuf>>,
}

impl<'a> Turn<'a> {
    /// A turn journaled in `inflight` from now on, as `status` says
    /// (none: a build that records nothing, or `planexe check`).
    pub fn begin(run_dir: &'a RunDir, inflight: Option<&'a Inflight>, status: &Status) -> Turn<'a> {
        Turn {
            run_dir,
            journal: inflight.map(|i| (i, i.begin(run_dir, status))),
            feedback: None,
            cached: Default::default(),
        }
    }

    /// A turn that journals nothing.
    pub fn unjournaled(run_dir: &'a RunDir) -> Turn<'a> {
        Turn {
            run_dir,
            journal: None,
            feedback: None,
            cached: Default::default(),
        }
    }

    /// The task's command has a process, its pid in `status`: a crash from
    /// now on leads the next build to it, and its `running` sidecar names
    /// it.
    pub fn spawned(&self, status: &Status) {
        if let Some((inflight, ticket)) = &self.journal {
            inflight.spawned(self.run_dir, ticket, status);
        }
    }

    /// Its output check's process started (see
    /// [`crate::store::inflight::Inflight::spawned_check`]).
    pub fn spawned_check(&self, pid: u32) {
        if let Some((inflight, ticket)) = &self.journal {
            inflight.spawned_check(ticket, pid);
        }
    }

    /// The running task's status changed (a model call, a rescue's check):
    /// its `running` sidecar says so.
    pub fn update(&self, status: &Status) {
        if let Some((inflight, ticket)) = &self.journal {
            inflight.update(self.run_dir, ticket, status);
        }
    }

    /// The response cache's entries that gave or took the answer of this
    /// turn ([`crate::exec::llm::PromptResult::cached`]).
    pub fn cached(&self, entries: Vec<std::path::PathBuf>) {
        self.cached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(entries);
    }

    /// Removes from the response cache the entries this turn's answer
    /// came from or went to, which its checks refused: the next build
    /// asks the model again. Returns the message's addition, if any was.
    pub fn uncache(&self) -> Option<String> {
        let entries = std::mem::take(&mut *self.cached.lock().unwrap_or_else(|p| p.into_inner()));
        let removed: Vec<&std::path::PathBuf> = entries
            .iter()
            .filter(|path| std::fs::remove_file(path).is_ok())
            .collect();
        let folder = self.run_dir.show(removed.first()?.parent()?);
        let what = match removed.len() {
            1 => "its answer was".to_string(),
            n => format!("its {n} answers were"),
        };
        Some(format!(
            "; {what} removed from the response cache {folder}/, so the next build asks the model again"
        ))
    }

    /// The task's run is over: its `running` sidecar is written no more,
    /// so the record published next is the last word.
    pub fn settle(&self) {
        if let Some((inflight, ticket)) = &self.journal {
            inflight.settle(ticket);
        }
    }

    /// The task ended and its record is published: its line in the
    /// journal is closed.
    pub fn end(self) {
        if let Some((inflight, ticket)) = self.journal {
            inflight.end(ticket);
        }
    }
}

/// The folders of outputs a build has made or found, so the tasks writing
/// into one folder make or look for it once.
#[derive(Debug, Default)]
pub struct Folders {
    known: std::sync::Mutex<std::collections::HashSet<std::path::PathBuf>>,
}

impl Folders {
    /// Makes `dir` (and the folders on the way) unless this build has
    /// made or found it already.
    fn make(&self, dir: &Path) -> std::io::Result<()> {
        let known = || self.known.lock().unwrap_or_else(|p| p.into_inner());
        if known().contains(dir) {
            return Ok(());
        }
        fs_err::create_dir_all(dir)?;
        known().insert(dir.to_path_buf());
        Ok(())
    }
}

/// One attempt's hold on a task's outputs.
pub(super) struct Attempt<'a> {
    pub task: &'a Task,
    pub run_dir: &'a RunDir,
    pub stamper: &'a Stamper,
    pub folders: &'a Folders,
    /// Deletes what a committed attempt set aside.
    pub reaper: &'a Reaper,
    /// Whether outputs of the last good run were set aside.
    pub set_aside: bool,
}

impl Attempt<'_> {
    /// Stamps the inputs (learning hashes recorded by the last good run
    /// first) and sets the outputs aside. On failure, whatever was set
    /// aside is back in place.
    pub(super) fn prepare(
        &mut self,
        previous: Option<&Status>,
        status: &mut Status,
    ) -> Result<(), TaskError> {
        if let Some(prev) = previous {
            for (path, stamp) in &prev.inputs {
                self.stamper.remember_hash(path, stamp);
            }
        }
        // An earlier run of this task in this build may still have files
        // to delete under the names this one sets aside.
        self.reaper.settle(&self.task.name);
        let inputs = self.task.inputs.iter().map(|i| i.path.as_str());
        status.input_order = self.task.input_order();
        self.stamp(inputs, &mut status.inputs, |path| {
            // A dangling link is there to see: say where it leads.
            let message = match std::fs::read_link(self.run_dir.path(path)) {
                Ok(target) => format!(
                    "input {path} is a symlink to {}, which does not exist",
                    target.display()
                ),
                Err(_) => format!("input {path} does not exist"),
            };
            TaskError::new(ErrorKind::MissingInput, message)
        })?;
        let prev_dir = self.run_dir.prev_dir(&self.task.name);
        for out in &self.task.outputs {
            let current = self.run_dir.path(&out.path);
            let found = std::fs::symlink_metadata(&current).ok();
            // Only a file (or a link) is set aside: a folder that appeared
            // at an output's path since the pipeline was read is left
            // untouched with all it holds, and the task fails.
            if let Some(kind) = found.as_ref().map(|m| m.file_type()) {
                if !kind.is_file() && !kind.is_symlink() {
                    self.restore();
                    return Err(TaskError::new(
                        ErrorKind::Io,
                        format!(
                            "output {} is {}, not a file: planexe does not set it aside (it was left untouched); move it away, or name a file as the output",
                            out.path,
                            crate::store::files::kind_of(kind)
                        ),
                    ));
                }
            }
            let exists = found.is_some();
            if exists {
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
            // An output that was there had its folder.
            if let Some(dir) = current.parent().filter(|_| !exists) {
                if let Err(e) = self.folders.make(dir) {
                    self.restore();
                    let shown = Path::new(&out.path);
                    let message = match wrong_kind::blocked(&current, shown) {
                        Some(blocked) => format!(
                            "cannot make the folder of output {}: {blocked}; move the file, or name another output",
                            out.path
                        ),
                        None => wrong_kind::why(&current, shown, &e),
                    };
                    return Err(TaskError::new(ErrorKind::Io, message));
                }
            }
        }
        Ok(())
    }

    /// Checks that every output exists, and stamps it (one look at each:
    /// a stamp finds a missing output).
    pub(super) fn verify(&self, status: &mut Status) -> Result<(), TaskError> {
        let mut missing: Vec<&str> = Vec::new();
        // The first output that exists but could not be stamped.
        let mut failed: Option<TaskError> = None;
        for out in &self.task.outputs {
            let error = match self.stamper.stamp_written(self.run_dir.root(), &out.path) {
                Ok(Some(stamp)) => {
                    status.outputs.insert(out.path.clone(), stamp);
                    continue;
                }
                // A symlink that leads nowhere exists, but is no output.
                Ok(None) if std::fs::symlink_metadata(self.run_dir.path(&out.path)).is_ok() => {
                    TaskError::new(
                        ErrorKind::MissingOutput,
                        format!("{} vanished after the command", out.path),
                    )
                }
                Ok(None) => {
                    missing.push(&out.path);
                    continue;
                }
                Err(e) => TaskError::new(ErrorKind::Io, e.to_string()),
            };
            failed.get_or_insert(error);
        }
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
        failed.map_or(Ok(()), Err)
    }

    /// Stamps the input `paths` into `stamps` (a stat this build made
    /// just before stands for the file: see [`Stamper::stamp_recent`]);
    /// `missing` says what a path that does not exist means.
    fn stamp<'p>(
        &self,
        mut paths: impl Iterator<Item = &'p str>,
        stamps: &mut Stamps,
        missing: impl Fn(&str) -> TaskError,
    ) -> Result<(), TaskError> {
        // Put in at once, sorted once: one by one, paths out of order
        // would each move those after them (a task of thousands of inputs).
        // Those stamped before a failure are kept, as they always were.
        let mut stamped = Vec::new();
        let outcome =
            paths.try_for_each(
                |path| match self.stamper.stamp_recent(self.run_dir.root(), path) {
                    Ok(Some(stamp)) => {
                        stamped.push((path.to_string(), stamp));
                        Ok(())
                    }
                    Ok(None) => Err(missing(path)),
                    Err(e) => Err(TaskError::new(ErrorKind::Io, e.to_string())),
                },
            );
        stamps.extend(stamped);
        outcome
    }

    /// The attempt succeeded: what was set aside is no longer needed, and
    /// is deleted off this thread (see [`Reaper`]). The folders it was set
    /// aside in stay for the next run (making and removing a folder per
    /// task and run costs more than the files).
    pub(super) fn commit(&self) {
        if self.set_aside {
            let prev_dir = self.run_dir.prev_dir(&self.task.name);
            for out in &self.task.outputs {
                let saved = prev_dir.join(&out.path);
                if self.inside(&[&saved]).is_err() {
                    continue;
                }
                self.reaper.delete(&self.task.name, saved);
            }
        }
    }

    /// The attempt failed: what it wrote goes to `.planexe/failed/TASK/`,
    /// and the outputs of the last good run come back.
    pub(super) fn roll_back(&self) -> RolledBack {
        let failed = self.run_dir.failed_dir(&self.task.name);
        let _ = std::fs::remove_dir_all(&failed);
        let mut left = Vec::new();
        for out in &self.task.outputs {
            let current = self.run_dir.path(&out.path);
            let kept = failed.join(&out.path);
            if std::fs::symlink_metadata(&current).is_ok()
                && self.inside(&[&current, &kept]).is_ok()
                && move_file(&current, &kept).is_ok()
            {
                left.push(self.run_dir.show(&kept));
            }
        }
        let (restored, not_restored) = self.restore();
        RolledBack {
            left,
            restored,
            not_restored,
        }
    }

    /// Removes what a turn wrote that its judge refused, before the
    /// command runs again (what was set aside stays aside).
    pub(super) fn discard(&self) {
        for out in &self.task.outputs {
            let current = self.run_dir.path(&out.path);
            let Ok(meta) = std::fs::symlink_metadata(&current) else {
                continue;
            };
            if self.inside(&[&current]).is_err() {
                continue;
            }
            let _ = if meta.is_dir() {
                std::fs::remove_dir_all(&current)
            } else {
                std::fs::remove_file(&current)
            };
        }
    }

    /// Puts back the outputs set aside. Returns how many were, and for
    /// each that could not be (the command left a file where its folder
    /// was, or the disk is full), where it is kept: it stays in
    /// `.planexe/prev/`, where nobody would look unless told.
    fn restore(&self) -> (usize, Vec<String>) {
        let prev_dir = self.run_dir.prev_dir(&self.task.name);
        let mut kept = Vec::new();
        let mut restored = 0;
        for out in &self.task.outputs {
            let saved = prev_dir.join(&out.path);
            let current = self.run_dir.path(&out.path);
            if std::fs::symlink_metadata(&saved).is_ok() && self.inside(&[&saved, &current]).is_ok()
            {
                match move_file(&saved, &current) {
                    Ok(()) => restored += 1,
                    Err(e) => kept.push(format!(
                        "the last good {} could not be put back ({e}); it is kept in {}",
                        out.path,
                        self.run_dir.show(&saved)
                    )),
                }
            }
        }
        (restored, kept)
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

/// What [`Attempt::roll_back`] did.
pub(super) struct RolledBack {
    /// Where the files the attempt left at its output paths are kept (in
    /// `.planexe/failed/TASK/`), as shown.
    pub left: Vec<String>,
    /// How many last good outputs were put back.
    pub restored: usize,
    /// For each last good output that could not be put back, a line
    /// saying where it is kept.
    pub not_restored: Vec<String>,
}
