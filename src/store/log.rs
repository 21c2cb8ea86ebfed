//! The state of every task: the index, `.planexe/log` (an append-only file
//! of the records the sidecars hold, one per line, read once per command so
//! a no-op build never opens one file per task, like ninja's
//! `.ninja_log`), loaded into a [`StateStore`] with the markers and the
//! in-flight journal's word, which answers with [`Recorded`].
//!
//! The log is an optimisation, never the only copy: a task whose `.DONE`
//! exists but which the log does not know is read from its sidecar. A line
//! that does not parse (torn by a crash mid-append, or damaged) is skipped,
//! and what it held taken back from the sidecars (`log_damage.rs`). Which
//! tasks have a marker and a sidecar: `log_markers.rs`.

use std::borrow::Cow;
use std::io::Write;

use rayon::prelude::*;
use rustc_hash::FxHashMap as HashMap;

use serde::{Deserialize, Serialize};

use super::files;
use super::record::{Status, TaskState};
use super::recorded::{derive, Recorded};
use super::rundir::RunDir;
use super::sidecar::{publish, read_status};
use super::stamp::Stamp;
use crate::error::{Error, Result};

/// One line of `.planexe/log`: a status change, `clean` forgetting the
/// task, or `restamp`: a file's new stamp over the same bytes. A plain
/// struct (not a tagged enum) so serde parses it in one pass.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LogLine {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    task: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    clean: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<Box<Status>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    restamp: Option<Restamp>,
    /// The length of the sidecar written with a `done` status: a sidecar of
    /// another length is read to see whether it is damaged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bytes: Option<u64>,
}

/// A file seen with a new size or mtime but the bytes its records hold:
/// every record of it with that hash takes the new stamp.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Restamp {
    pub path: String,
    pub stamp: Stamp,
}

impl LogLine {
    fn status(status: &Status) -> LogLine {
        let mut status = status.clone();
        status.definition = None;
        LogLine {
            task: status.task.clone(),
            clean: false,
            status: Some(Box::new(status)),
            restamp: None,
            bytes: None,
        }
    }

    fn with_bytes(mut self, bytes: Option<u64>) -> LogLine {
        self.bytes = bytes;
        self
    }

    fn clean(task: &str) -> LogLine {
        LogLine {
            task: task.to_string(),
            clean: true,
            status: None,
            restamp: None,
            bytes: None,
        }
    }
}

/// What the log knows about one task.
#[derive(Debug, Clone, Default)]
pub struct TaskRecord {
    /// The last outcome, when it was not a success (failed, stopped).
    pub last: Option<Box<Status>>,
    /// The last successful run (its stamps decide staleness).
    pub done: Option<Box<Status>>,
    /// The length of the sidecar that run wrote, when known.
    pub sidecar_len: Option<u64>,
    /// The length in the log of the lines `done` and `last` came from:
    /// what a compacted log would hold of this task.
    standing_bytes: u64,
}

/// The state of every task, loaded once, and the open log to append to.
#[derive(Debug)]
pub struct StateStore {
    records: HashMap<String, TaskRecord>,
    /// Names of tasks whose `.DONE` exists, listed once at load.
    markers: Option<std::sync::Mutex<rustc_hash::FxHashSet<String>>>,
    /// Without that listing: the markers this store wrote or removed
    /// itself, and those it statted once, which it need not stat again.
    own_markers: std::sync::Mutex<HashMap<String, bool>>,
    /// Names of tasks that had a sidecar when the store was loaded, from
    /// the same listing; `None` when it could not be listed whole.
    sidecars: Option<rustc_hash::FxHashSet<String>>,
    lines: usize,
    /// The length of the log as this store knows it (read and appended).
    bytes: u64,
    log: Option<std::fs::File>,
    /// Tasks the last build's journal says are in flight (it crashed, or
    /// still runs): their `running` status, which their sidecar may not
    /// have had time to say (see `inflight`).
    in_flight: HashMap<String, Status>,
    /// Statuses taken as written without writing them (a dry run of
    /// `touch`): they stand for the task's sidecar, in memory only.
    assumed: HashMap<String, Status>,
    /// Lines of the log that did not parse, and what they cost.
    damage: LogDamage,
    /// Tasks `clean` forgot and no run has recorded since: what `status`
    /// and `build -n` call `cleaned` rather than `never built`.
    cleaned: rustc_hash::FxHashSet<String>,
}

impl StateStore {
    /// Reads `.planexe/log` (if any). Does not create anything.
    pub fn load(run_dir: &RunDir) -> Result<StateStore> {
        StateStore::load_listing(run_dir, true)
    }

    /// [`StateStore::load`]; without `list`, `.planexe/tasks/` is not
    /// listed: each marker is then one stat, the first time it is asked
    /// for (none for those this store writes or removes itself), and every
    /// task may have a sidecar. For a caller that knows the folder as a build
    /// left it (an up-to-date certificate found it so), where a listing of
    /// ten thousand tasks' files would cost more than the few it asks of.
    pub fn load_listing(run_dir: &RunDir, list: bool) -> Result<StateStore> {
        let (markers, sidecars) = if list {
            let _t = crate::phases::phase("state log: markers");
            load::list_tasks(run_dir)
        } else {
            (None, None)
        };
        let markers = markers.map(std::sync::Mutex::new);
        let mut store = StateStore {
            markers,
            own_markers: Default::default(),
            sidecars,
            records: HashMap::default(),
            lines: 0,
            bytes: 0,
            log: None,
            in_flight: HashMap::default(),
            assumed: HashMap::default(),
            damage: LogDamage::default(),
            cleaned: Default::default(),
        };
        let path = run_dir.log_path();
        let t = crate::phases::phase("state log: read");
        let bytes = match files::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(store),
            Err(e) => return Err(Error::io_at(&path, e)),
        };
        drop(t);
        // Lines are parsed in parallel (most of the work: ten thousand
        // records are ten thousand JSON documents), then applied in order.
        let mut lines: Vec<&[u8]> = load::lines(&bytes);
        if lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        store.lines = lines.len();
        store.bytes = bytes.len() as u64;
        // A line a later success or `clean` of its task replaces is not
        // parsed, unless one of those turns out not to parse.
        let t = crate::phases::phase("state log: parse");
        let replaced = load::superseded(&lines);
        let mut skip = replaced.skip;
        let parse = |skip: &[bool]| -> Vec<Option<(LogLine, u64)>> {
            lines
                .par_iter()
                .zip(skip)
                .map(|(line, &skip)| {
                    if skip {
                        return None;
                    }
                    serde_json::from_slice::<LogLine>(line)
                        .ok()
                        .map(|l| (l, line.len() as u64 + 1))
                })
                .collect()
        };
        let mut parsed = parse(&skip);
        if replaced.by.iter().any(|&at| parsed[at].is_none()) {
            skip = vec![false; lines.len()];
            parsed = parse(&skip);
        }
        drop(t);
        // Lines read that did not parse (blank ones hold nothing).
        let damaged: Vec<damage::Damaged> = (0..lines.len())
            .filter(|&at| parsed[at].is_none() && !skip[at])
            .filter(|&at| !lines[at].iter().all(u8::is_ascii_whitespace))
            .map(|at| damage::Damaged {
                at,
                about: load::head_of(lines[at]).and_then(|(task, head)| {
                    Some((std::str::from_utf8(task).ok()?.to_string(), head))
                }),
            })
            .collect();
        let _t = crate::phases::phase("state log: apply");
        // Sized once: a table of ten thousand records that grows by
        // doubling moves every record it holds at each step.
        store
            .records
            .reserve(parsed.iter().filter(|p| p.is_some()).count());
        // A torn or foreign line is skipped: the sidecars still hold the
        // truth for any task it was about. Restamps are applied last, each
        // to the records read before it (a later record replaces a task's
        // stamps whole), through an index by path: a touch of many files
        // costs one lookup per recorded stamp, not a scan per restamp.
        let mut restamps: HashMap<String, Vec<(usize, Stamp)>> = HashMap::default();
        let mut read_at: HashMap<String, usize> = HashMap::default();
        for (at, (mut record, len)) in parsed
            .into_iter()
            .enumerate()
            .filter_map(|(at, p)| Some((at, p?)))
        {
            if let Some(r) = record.restamp.take() {
                restamps.entry(r.path).or_default().push((at, r.stamp));
                continue;
            }
            if record
                .status
                .as_ref()
                .is_some_and(|s| s.state == TaskState::Done)
            {
                read_at.insert(record.task.clone(), at);
            }
            store.apply(record, len);
        }
        if !restamps.is_empty() {
            store.apply_restamps(&restamps, &read_at);
        }
        if !damaged.is_empty() {
            store.recover(run_dir, damaged, lines.len());
        }
        Ok(store)
    }

    /// Applies one log line of `len` bytes (newline included).
    fn apply(&mut self, line: LogLine, len: u64) {
        match (line.clean, line.status) {
            (false, Some(status)) => {
                self.cleaned.remove(&status.task);
                let record = self.records.entry(status.task.clone()).or_default();
                // One copy per task: a success replaces the last failure.
                if status.state == TaskState::Done {
                    record.done = Some(status);
                    record.last = None;
                    record.sidecar_len = line.bytes;
                    record.standing_bytes = len;
                } else {
                    record.last = Some(status);
                    record.standing_bytes += len;
                }
            }
            (true, _) => {
                self.records.remove(&line.task);
                self.cleaned.insert(line.task);
            }
            (false, None) => {}
        }
    }

    /// Every task the log knows, with its record.
    pub fn records(&self) -> impl Iterator<Item = (&String, &TaskRecord)> {
        self.records.iter()
    }

    /// Every task the records name, sorted: the log's, those with a
    /// sidecar or a `.DONE` marker when the store listed them, and those
    /// in flight. For a reader with no pipeline to name them.
    pub fn task_names(&self) -> std::collections::BTreeSet<String> {
        let mut names: std::collections::BTreeSet<String> = self.records.keys().cloned().collect();
        names.extend(self.sidecars.iter().flatten().cloned());
        if let Some(markers) = &self.markers {
            let markers = markers.lock().unwrap_or_else(|e| e.into_inner());
            names.extend(markers.iter().cloned());
        }
        names.extend(self.in_flight.keys().cloned());
        names
    }

    /// Whether `clean` forgot `task` and no run of it is recorded since.
    pub fn was_cleaned(&self, task: &str) -> bool {
        self.cleaned.contains(task)
    }

    pub fn record(&self, task: &str) -> Option<&TaskRecord> {
        self.records.get(task)
    }

    /// The last successful run of `task`: from the log, or from its sidecar
    /// when the log does not know it (a deleted or foreign log) and its
    /// `.DONE` marker vouches for it. Without either the task never ran to
    /// success, as far as a build can tell: a task that has not run yet
    /// costs no read of a sidecar that is not there.
    pub fn done_record(&self, run_dir: &RunDir, task: &str) -> Option<Cow<'_, Status>> {
        if let Some(done) = self.records.get(task).and_then(|r| r.done.as_deref()) {
            return Some(Cow::Borrowed(done));
        }
        if !self.has_marker(run_dir, task) {
            return None;
        }
        let status = read_status(run_dir, task)?;
        (status.state == TaskState::Done).then_some(Cow::Owned(status))
    }

    /// What the records of `task` say about its last run, from the log,
    /// the markers, and the task's sidecar when those do not decide.
    pub fn recorded(&self, run_dir: &RunDir, task: &str) -> Recorded<'_> {
        self.recorded_reading(run_dir, task, true)
    }

    /// [`StateStore::recorded`], for the staleness check: a task the log
    /// knows nothing of, that had no sidecar when the state was loaded (or
    /// was in flight since), is not looked for one. A build writes the
    /// sidecar of a task with no record only once it runs, after its
    /// check: a build that resumes half of ten thousand tasks would
    /// otherwise fail to open five thousand.
    pub fn recorded_for_check(&self, run_dir: &RunDir, task: &str) -> Recorded<'_> {
        let may_have_sidecar = self.records.contains_key(task)
            || self.had_sidecar(task)
            || self.in_flight.contains_key(task)
            || self.assumed.contains_key(task);
        self.recorded_reading(run_dir, task, may_have_sidecar)
    }

    /// [`StateStore::recorded`], reading the task's sidecar when the log
    /// and markers do not decide only if `sidecar`.
    fn recorded_reading(&self, run_dir: &RunDir, task: &str, sidecar: bool) -> Recorded<'_> {
        derive(
            self.done_record(run_dir, task),
            self.records.get(task).and_then(|r| r.last.as_deref()),
            || self.has_marker(run_dir, task),
            || sidecar.then(|| self.last_status(run_dir, task)).flatten(),
        )
    }

    /// The same from the log alone, reading no file: what a summary of
    /// ten thousand tasks can afford.
    pub fn recorded_in_memory(&self, task: &str) -> Recorded<'_> {
        let record = self.records.get(task);
        let done = record.and_then(|r| r.done.as_deref());
        let last = record.and_then(|r| r.last.as_deref());
        derive(
            done.map(Cow::Borrowed),
            last,
            || true,
            || last.or(done).cloned(),
        )
    }

    /// The last status of `task`: the sidecar (which sees every state
    /// change), else the log.
    pub fn last_status(&self, run_dir: &RunDir, task: &str) -> Option<Status> {
        self.sidecar(run_dir, task).or_else(|| {
            let record = self.records.get(task)?;
            record.last.as_deref().or(record.done.as_deref()).cloned()
        })
    }

    /// Appends `line`; returns its length in the log.
    fn append(&mut self, run_dir: &RunDir, line: &LogLine) -> Result<u64> {
        if self.log.is_none() {
            // A line that does not parse is dropped before the first
            // append: it would otherwise sit in the middle of the log.
            self.repair_log(run_dir)?;
            self.log = Some(open_log(run_dir)?);
        }
        let mut bytes = serde_json::to_vec(line).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        if let Some(log) = self.log.as_mut() {
            // One write call per line keeps appends whole.
            files::append_whole(log, &bytes).map_err(|e| Error::io_at(&run_dir.log_path(), e))?;
        }
        self.lines += 1;
        self.bytes += bytes.len() as u64;
        Ok(bytes.len() as u64)
    }

    /// Records a status change: the log line (for an outcome), then the
    /// sidecar and marker ([`publish`]).
    pub fn write_status(&mut self, run_dir: &RunDir, status: &Status) -> Result<()> {
        // The log keeps outcomes only (done, failed, stopped): `pending` and
        // `running` live in the sidecar, so the log stays small. A crash
        // mid-run leaves no `.DONE`, which is enough to make the task stale.
        let outcome = status.state.is_outcome();
        let len = publish(run_dir, status)?;
        if status.state != TaskState::Pending {
            self.note_marker(&status.task, status.state == TaskState::Done);
        }
        if outcome {
            let line = LogLine::status(status).with_bytes(Some(len));
            let bytes = self.append(run_dir, &line)?;
            self.apply(line, bytes);
        }
        Ok(())
    }

    /// Records an outcome already published by [`publish`] (sidecar and
    /// marker written by the job's thread; `sidecar_len` what it returned):
    /// the log line, and memory.
    pub fn record_outcome(
        &mut self,
        run_dir: &RunDir,
        status: &Status,
        sidecar_len: Option<u64>,
    ) -> Result<()> {
        self.note_marker(&status.task, status.state == TaskState::Done);
        if status.state.is_outcome() {
            let line = LogLine::status(status).with_bytes(sidecar_len);
            let bytes = self.append(run_dir, &line)?;
            self.apply(line, bytes);
        }
        Ok(())
    }

    /// Records new stamps for a task that stays done (same bytes under a new
    /// mtime, an accepted hand edit) without touching its `.DONE` marker,
    /// whose mtime keeps meaning "when the task last ran".
    ///
    /// Only the log learns the new stamps: this is not a state change, and
    /// rewriting thousands of sidecars after a `touch` would cost more than
    /// the check itself. A sidecar read without the log (the log deleted)
    /// leads to the same conclusion by hashing once more.
    pub fn refresh_status(&mut self, run_dir: &RunDir, status: &Status) -> Result<()> {
        if !self.has_marker(run_dir, &status.task) {
            return self.write_status(run_dir, status);
        }
        // The sidecar is left as it was: so is its length.
        let len = self.records.get(&status.task).and_then(|r| r.sidecar_len);
        let line = LogLine::status(status).with_bytes(len);
        let bytes = self.append(run_dir, &line)?;
        self.apply(line, bytes);
        Ok(())
    }

    /// A task's sidecar, or the `running` status the last build's journal
    /// has for it when that build left it in flight.
    pub fn sidecar(&self, run_dir: &RunDir, task: &str) -> Option<Status> {
        if let Some(status) = self.assumed.get(task) {
            return Some(status.clone());
        }
        match self.in_flight.get(task) {
            Some(status) => Some(status.clone()),
            None => read_status(run_dir, task),
        }
    }

    /// The task's last status as a reader should see it: its sidecar
    /// ([`StateStore::sidecar`]), unless that only announces a run that
    /// never began (`pending`, left by a build stopped before it started
    /// the task), when the failure or stop the log records after the last
    /// success is the task's last run.
    pub fn latest(&self, run_dir: &RunDir, task: &str) -> Option<Status> {
        let sidecar = self.sidecar(run_dir, task);
        if sidecar
            .as_ref()
            .is_some_and(|s| s.state == TaskState::Pending)
        {
            if let Recorded::Failed(s) | Recorded::Interrupted(s) = self.recorded(run_dir, task) {
                return Some(s.into_owned());
            }
        }
        sidecar
    }

    /// Takes the journal's word for the tasks the last build left in
    /// flight (empty once a build has reconciled them).
    pub fn set_in_flight(&mut self, statuses: Vec<Status>) {
        // The tasks let go of had their sidecars written by the recovery
        // that reconciled them, if they had none.
        if let Some(sidecars) = self.sidecars.as_mut() {
            sidecars.extend(self.in_flight.drain().map(|(task, _)| task));
        }
        self.in_flight = statuses.into_iter().map(|s| (s.task.clone(), s)).collect();
    }

    /// Takes a `done` status as written, in memory only: the log, the
    /// sidecar and the marker read as [`StateStore::write_status`] would
    /// leave them, and nothing on disk changes. For a plan that shows
    /// what a write would make of the run (`edit --keep`'s dry run).
    pub fn assume_done(&mut self, status: Status) {
        // Its marker is `assumed` (a folder that could not be listed
        // leaves every other marker to a stat).
        self.apply(LogLine::status(&status), 0);
        self.assumed.insert(status.task.clone(), status);
    }

    /// Forgets a task: its sidecars go, and the log says so.
    pub fn forget(&mut self, run_dir: &RunDir, task: &str) -> Result<()> {
        files::remove_if_exists(&run_dir.done_path(task))?;
        self.note_marker(task, false);
        files::remove_if_exists(&run_dir.status_path(task))?;
        self.append(run_dir, &LogLine::clean(task))?;
        self.apply(LogLine::clean(task), 0);
        Ok(())
    }
}

/// Opens the log to append to, creating it, and ends a torn last line (a
/// crash mid-append) so the next record starts on a line of its own.
fn open_log(run_dir: &RunDir) -> Result<std::fs::File> {
    let path = run_dir.log_path();
    let mut file = files::open_append(&path)?;
    if !ends_with_newline(&mut file) {
        file.write_all(b"\n").map_err(|e| Error::io_at(&path, e))?;
    }
    Ok(file)
}

/// Appends `restamp` lines: files with new stamps over the bytes their
/// records hold. The caller holds the run directory's lock.
pub fn append_restamps(run_dir: &RunDir, restamps: Vec<Restamp>) -> Result<()> {
    let mut bytes = Vec::new();
    for restamp in restamps {
        let line = LogLine {
            task: String::new(),
            clean: false,
            status: None,
            restamp: Some(restamp),
            bytes: None,
        };
        serde_json::to_writer(&mut bytes, &line).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
    }
    files::append_whole(&open_log(run_dir)?, &bytes)
        .map_err(|e| Error::io_at(&run_dir.log_path(), e))
}

fn ends_with_newline(file: &mut std::fs::File) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    match file.seek(SeekFrom::End(0)) {
        Ok(0) | Err(_) => return true,
        Ok(_) => {}
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::End(-1)).is_err() || file.read_exact(&mut last).is_err() || last[0] == b'\n'
}

#[path = "log_damage.rs"]
mod damage;
pub use damage::LogDamage;

#[path = "log_compact.rs"]
mod compact;
#[path = "log_load.rs"]
mod load;
#[path = "log_markers.rs"]
mod markers;
pub use load::only_restamps_from;

#[cfg(test)]
#[path = "log_tests.rs"]
mod tests;
