//! Damage to either copy of a task's record, each repaired from the other.
//!
//! A sidecar that no longer parses while the log knows the task's last
//! successful run ([`StateStore::damaged`]) is rewritten from the log
//! ([`StateStore::repair`]).
//!
//! Lines of the state log that do not parse: a torn last line is a
//! crash mid-append (or, to a reader, an append under way); any other line
//! that does not parse was damaged in place (a bad disk block, an editor, a
//! stray write). Either may have held a task's last outcome, which the
//! task's sidecar holds too (it is published before the log line).
//!
//! The load takes back from the sidecars every successful run the log
//! lost, under the rule a log that knows no run of a task already follows:
//! a `done` sidecar vouched for by its `.DONE` marker (written last, only
//! after every output was verified) is a whole record. A sidecar holding
//! the same run as the log's record (a refresh of its stamps is newer in
//! the log) is left alone. What the load found is a [`LogDamage`], for
//! commands to warn about; a writer rewrites the log whole before it first
//! appends ([`StateStore::repair_log`]), so a damaged line is reported
//! once.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use super::load::Head;
use super::{LogLine, StateStore};
use crate::error::Result;
use crate::store::by_name::OpenFolders;
use crate::store::files;
use crate::store::record::{Status, TaskState};
use crate::store::rundir::{status_rel, RunDir};
use crate::store::sidecar::{publish, read_status, read_status_sized};
use crate::store::untrusted::printable;

/// A line of the log that does not parse: its index and, when its first
/// bytes still say, the task it was about and what it recorded.
pub(super) struct Damaged {
    pub(super) at: usize,
    pub(super) about: Option<(String, Head)>,
}

/// What a load found damaged in the state log, and what it made of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogDamage {
    /// The numbers (from 1) of the lines that do not parse, but for a torn
    /// last line.
    pub lines: Vec<usize>,
    /// Whether the last line is torn (a crash mid-append): not reported.
    pub torn_end: bool,
    /// Tasks whose last successful run the log lost, taken back from their
    /// sidecars: they do not run again for it.
    pub recovered: Vec<String>,
    /// Tasks a damaged line recorded a success of that their sidecar
    /// cannot give back (missing, damaged, or no longer `done`), and, when
    /// a line names no task, those whose marker stands over a sidecar that
    /// cannot be read: they are judged by the records that remain, and may
    /// run again.
    pub lost: Vec<String>,
}

impl LogDamage {
    /// Whether the log holds a line that does not parse (torn or damaged):
    /// a writer rewrites it.
    pub fn needs_rewrite(&self) -> bool {
        !self.lines.is_empty() || self.torn_end
    }

    /// Whether there is damage to report (a torn last line alone is a
    /// crash's leftover, handled without a word).
    pub fn is_warning(&self) -> bool {
        !self.lines.is_empty()
    }

    /// What was found, what it cost, and what becomes of the damaged
    /// lines: the log was rewritten without them (`rewriter` is `None`),
    /// or `rewriter` (a build, in the words of the door asked) will.
    pub fn message(&self, run_dir: &RunDir, rewriter: Option<&str>) -> String {
        let log = run_dir.show(&run_dir.log_path());
        let lines = listed(self.lines.iter().map(ToString::to_string));
        let (plural, that) = match self.lines.len() {
            1 => ("", "that line"),
            _ => ("s", "those lines"),
        };
        let mut text =
            format!("{log} is damaged at line{plural} {lines} (not a record planexe can read)");
        match self.recovered.as_slice() {
            [] => {}
            [task] => {
                let sidecar = run_dir.show(&run_dir.status_path(task));
                text += &format!(
                    "; recovered the last run of {} from {}, so it does not run again",
                    printable(task),
                    printable(&sidecar)
                );
            }
            tasks => {
                text += &format!(
                    "; recovered the last run of {} from their sidecars (.planexe/tasks/NAME.status), so they do not run again",
                    names(tasks)
                );
            }
        }
        match self.lost.as_slice() {
            [] => {}
            [task] => {
                text += &format!(
                    "; the last run of {} is lost (its sidecar does not hold it): judged by its earlier record, it may run again",
                    printable(task)
                );
            }
            tasks => {
                text += &format!(
                    "; the last runs of {} are lost (their sidecars do not hold them): judged by their earlier records, they may run again",
                    names(tasks)
                );
            }
        }
        if self.recovered.is_empty() && self.lost.is_empty() {
            text += "; no task lost its last run (the sidecars agree with the log)";
        }
        match rewriter {
            None => text += &format!("; rewrote the log without {that}"),
            Some(who) => text += &format!("; {who} rewrites the log without {that}"),
        }
        text
    }
}

/// Task names for a message: escaped, at most five, then how many more.
fn names(tasks: &[String]) -> String {
    listed(tasks.iter().map(|t| printable(t).into_owned()))
}

fn listed(items: impl ExactSizeIterator<Item = String>) -> String {
    let total = items.len();
    let mut shown: Vec<String> = items.take(5).collect();
    if total > shown.len() {
        shown.push(format!("and {} more", total - shown.len()));
    }
    shown.join(", ")
}

/// Whether two records are of the same run (a refresh changes the stamps
/// alone).
fn same_run(a: &Status, b: &Status) -> bool {
    a.started_at == b.started_at
        && a.finished_at == b.finished_at
        && a.attempt == b.attempt
        && a.fingerprint == b.fingerprint
}

/// A task's sidecar and its length, when it is that task's; `None` when
/// absent or unreadable.
fn sidecar_with_len(run_dir: &RunDir, task: &str) -> Option<(Status, u64)> {
    read_status_sized(run_dir, task).filter(|(status, _)| status.task == task)
}

impl StateStore {
    /// Takes back from the sidecars what the `damaged` lines of a log of
    /// `count` lines may have held, and notes what it found.
    pub(super) fn recover(&mut self, run_dir: &RunDir, damaged: Vec<Damaged>, count: usize) {
        let mut damage = LogDamage {
            torn_end: damaged.last().is_some_and(|d| d.at + 1 == count),
            lines: damaged
                .iter()
                .filter(|d| d.at + 1 != count)
                .map(|d| d.at + 1)
                .collect(),
            ..LogDamage::default()
        };
        // The tasks the lines were about, when their first bytes say so and
        // name a task this run knows (bytes of a damaged line name no file
        // to read); a line that names none may have been about any task.
        let mut named = BTreeSet::new();
        let mut succeeded = BTreeSet::new();
        let mut anonymous = false;
        for d in &damaged {
            match &d.about {
                Some((task, head)) if self.records.contains_key(task) || self.listed(task) => {
                    if *head == Head::Done {
                        succeeded.insert(task.clone());
                    }
                    named.insert(task.clone());
                }
                _ => anonymous = true,
            }
        }
        let mut candidates = named;
        if anonymous {
            candidates.extend(self.records.keys().cloned());
            if let Some(set) = &self.markers {
                let set = set.lock().unwrap_or_else(|p| p.into_inner());
                candidates.extend(set.iter().cloned());
            }
        }
        let candidates: Vec<String> = candidates.into_iter().collect();
        // Only a task with a marker can be recovered; a success a line
        // named is lost or not whatever the marker says.
        let read: Vec<(String, Option<(Status, u64)>)> = candidates
            .into_par_iter()
            .filter(|t| succeeded.contains(t) || self.has_marker(run_dir, t))
            .map(|t| {
                let sidecar = sidecar_with_len(run_dir, &t);
                (t, sidecar)
            })
            .collect();
        for (task, sidecar) in read {
            let logged = self.records.get(&task).and_then(|r| r.done.as_deref());
            let readable = sidecar.is_some();
            let vouched = sidecar
                .filter(|(s, _)| s.state == TaskState::Done && self.has_marker(run_dir, &task));
            match vouched {
                Some((status, _)) if logged.is_some_and(|l| same_run(l, &status)) => {}
                Some((status, len)) => {
                    let record = self.records.entry(task.clone()).or_default();
                    record.done = Some(Box::new(status));
                    record.last = None;
                    record.sidecar_len = Some(len);
                    record.standing_bytes = len;
                    damage.recovered.push(task);
                }
                // A success a line recorded, or, when a line names no
                // task, any marked task whose sidecar cannot be read.
                None if succeeded.contains(&task) => damage.lost.push(task),
                None if anonymous && !readable && self.has_marker(run_dir, &task) => {
                    damage.lost.push(task);
                }
                None => {}
            }
        }
        self.damage = damage;
    }

    /// Whether the listing of `.planexe/tasks/` made at load holds the
    /// task's marker (no stat: the name may come from a damaged line).
    fn listed(&self, task: &str) -> bool {
        self.markers
            .as_ref()
            .is_some_and(|set| set.lock().unwrap_or_else(|p| p.into_inner()).contains(task))
    }

    /// What the load found damaged in the log.
    pub fn log_damage(&self) -> &LogDamage {
        &self.damage
    }

    /// Rewrites the log whole when it holds lines that do not parse, from
    /// what was read and recovered: the damage is then gone, and said once.
    /// The caller holds the run directory's lock.
    pub fn repair_log(&mut self, run_dir: &RunDir) -> Result<()> {
        if self.damage.needs_rewrite() {
            self.compact(run_dir)?;
            self.damage = LogDamage::default();
        }
        Ok(())
    }

    /// The tasks among `tasks` whose sidecar is damaged (it does not parse)
    /// while the log knows their last run succeeded: the log vouches for
    /// them, so a build rewrites the sidecar from it ([`StateStore::repair`]).
    /// Costs one stat per task; only a sidecar whose length is not the one
    /// recorded is read.
    pub fn damaged<'t>(&self, run_dir: &RunDir, tasks: &[&'t str]) -> Vec<&'t str> {
        let folder = tasks_folder(run_dir);
        let mut damaged: Vec<&str> = tasks
            .par_iter()
            .copied()
            .filter(|&task| self.sidecar_damaged_in(run_dir, Some(&folder), task))
            .collect();
        damaged.sort_unstable();
        damaged
    }

    /// [`StateStore::damaged`] for every task the log knows, on this
    /// thread: what a command can look at while it waits for its pipeline
    /// (a build needs it before its plan). `None` once `enough` is set
    /// (its time is up), before it has looked at all.
    pub fn damaged_all(&self, run_dir: &RunDir, enough: &AtomicBool) -> Option<Vec<String>> {
        let folder = tasks_folder(run_dir);
        let mut damaged = Vec::new();
        for task in self.records.keys() {
            if enough.load(Ordering::Relaxed) {
                return None;
            }
            if self.sidecar_damaged_in(run_dir, Some(&folder), task) {
                damaged.push(task.clone());
            }
        }
        Some(damaged)
    }

    /// Whether `task`'s sidecar does not parse while the log vouches for
    /// its last run, a success.
    pub fn sidecar_damaged(&self, run_dir: &RunDir, task: &str) -> bool {
        self.sidecar_damaged_in(run_dir, None, task)
    }

    /// [`StateStore::sidecar_damaged`], the sidecar statted by its name in
    /// `tasks/` when that `folder` is open.
    fn sidecar_damaged_in(
        &self,
        run_dir: &RunDir,
        folder: Option<&OpenFolders>,
        task: &str,
    ) -> bool {
        let Some(record) = self.records.get(task) else {
            return false;
        };
        let (Some(_), None, Some(len)) = (&record.done, &record.last, record.sidecar_len) else {
            return false;
        };
        let by_name = folder.and_then(|f| f.lstat(&status_rel(task)));
        let now = match by_name {
            Some(Ok(Some(st))) => Some(st.st_size as u64),
            Some(_) => None,
            None => std::fs::symlink_metadata(run_dir.status_path(task))
                .ok()
                .map(|m| m.len()),
        };
        match now {
            Some(now) if now == len => false,
            Some(_) => read_status(run_dir, task).is_none(),
            None => false,
        }
    }

    /// Rewrites the damaged sidecar of `task` from the log's record of its
    /// last successful run (without the definition, which only the sidecar
    /// kept). The `.DONE` marker, a second name for the damaged file, is
    /// made again with the mtime it had: it still says when the task ran.
    pub fn repair(&mut self, run_dir: &RunDir, task: &str) -> Result<()> {
        let Some(done) = self.records.get(task).and_then(|r| r.done.clone()) else {
            return Ok(());
        };
        let marker = run_dir.done_path(task);
        let ran_at = std::fs::symlink_metadata(&marker)
            .and_then(|m| m.modified())
            .ok();
        let len = publish(run_dir, &done)?;
        if let Some(when) = ran_at {
            if let Ok(file) = files::open_update(&marker) {
                let _ = file.set_modified(when);
            }
        }
        let line = LogLine::status(&done).with_bytes(Some(len));
        let bytes = self.append(run_dir, &line)?;
        self.apply(line, bytes);
        Ok(())
    }
}

/// `.planexe/tasks/` opened once, for a look at many sidecars (no task
/// runs meanwhile).
fn tasks_folder(run_dir: &RunDir) -> OpenFolders {
    let any = status_rel("_");
    OpenFolders::open(run_dir, std::iter::once(any.as_str()))
}
