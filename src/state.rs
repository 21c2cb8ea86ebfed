//! What planexe records about each task, in two shapes:
//!
//! - the public face, one sidecar per task: `.planexe/tasks/NAME.status`
//!   (JSON, rewritten atomically at every state change) and `NAME.DONE`
//!   (written last, only on success);
//! - the index, `.planexe/log`: an append-only file of the same JSON
//!   records, one per line, read once per build so a no-op build never
//!   opens one file per task (ninja's `.ninja_log`).
//!
//! The log is an optimisation, never the only copy: a task whose `.DONE`
//! exists but which the log does not know is read from its sidecar. A torn
//! last line (a crash mid-append) is ignored.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::rundir::{self, RunDir};
use crate::stamp::Stamp;

/// The state a task is in, as the sidecar says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// Chosen to run in the current build, not started yet.
    Pending,
    Running,
    Done,
    Failed,
    /// Interrupted by the user (SIGINT, SIGTERM).
    Stopped,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Running => "running",
            TaskState::Done => "done",
            TaskState::Failed => "failed",
            TaskState::Stopped => "stopped",
        }
    }
}

/// Why a task failed: a machine-readable kind and a human message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskError {
    /// `exit`, `signal`, `timeout`, `missing-output`, `spawn`, `interrupted`,
    /// `unsupported`.
    pub kind: String,
    pub message: String,
    /// The UUID of the failed attempt, as in `failures.jsonl` (prompt tasks).
    #[serde(default)]
    pub error_id: Option<String>,
}

/// The content of `.planexe/tasks/NAME.status`. Every key is always
/// present (null when it does not apply), so readers can rely on the shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub task: String,
    pub state: TaskState,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: Option<u64>,
    pub attempt: u32,
    pub pid: Option<u32>,
    pub fingerprint: String,
    pub inputs: BTreeMap<String, Stamp>,
    pub outputs: BTreeMap<String, Stamp>,
    pub error: Option<TaskError>,
    /// Prompt tasks: the model that answered (or was asked last).
    #[serde(default)]
    pub model: Option<String>,
    /// Prompt tasks: every HTTP call of the last run.
    #[serde(default)]
    pub attempts: Vec<crate::llm::AttemptRecord>,
    /// Prompt tasks: tokens and cost of the last run.
    #[serde(default)]
    pub usage: Option<crate::llm::Usage>,
    /// What the task ran: its command, or its prompt template (for
    /// `explain`). In the sidecar only, not in the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<String>,
}

impl Status {
    pub fn new(task: &str, state: TaskState, fingerprint: &str) -> Status {
        Status {
            task: task.to_string(),
            state,
            started_at: None,
            finished_at: None,
            duration_ms: None,
            attempt: 0,
            pid: None,
            fingerprint: fingerprint.to_string(),
            inputs: BTreeMap::new(),
            outputs: BTreeMap::new(),
            error: None,
            model: None,
            attempts: Vec::new(),
            usage: None,
            definition: None,
        }
    }
}

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
        }
    }

    fn clean(task: &str) -> LogLine {
        LogLine {
            task: task.to_string(),
            clean: true,
            status: None,
            restamp: None,
        }
    }
}

/// What the log knows about one task.
#[derive(Debug, Clone, Default)]
pub struct TaskRecord {
    /// The last outcome, when it was not a success (failed, stopped).
    pub last: Option<Status>,
    /// The last successful run (its stamps decide staleness).
    pub done: Option<Status>,
}

/// The state of every task, loaded once, and the open log to append to.
#[derive(Debug)]
pub struct StateStore {
    records: HashMap<String, TaskRecord>,
    /// Names of tasks whose `.DONE` exists, listed once at load.
    markers: Option<std::sync::Mutex<std::collections::HashSet<String>>>,
    lines: usize,
    log: Option<std::fs::File>,
    /// Tasks the last build's journal says are in flight (it crashed, or
    /// still runs): their `running` status, which their sidecar may not
    /// have had time to say (see `inflight`).
    in_flight: HashMap<String, Status>,
}

/// The current time in RFC 3339 UTC, to the millisecond.
pub fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    now.round(jiff::Unit::Millisecond)
        .unwrap_or(now)
        .to_string()
}

impl StateStore {
    /// Reads `.planexe/log` (if any). Does not create anything.
    pub fn load(run_dir: &RunDir) -> Result<StateStore> {
        let markers = std::fs::read_dir(run_dir.tasks_dir()).ok().map(|entries| {
            let set: std::collections::HashSet<String> = entries
                .flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_suffix(".DONE"))
                        .map(str::to_string)
                })
                .collect();
            std::sync::Mutex::new(set)
        });
        let mut store = StateStore {
            markers,
            records: HashMap::new(),
            lines: 0,
            log: None,
            in_flight: HashMap::new(),
        };
        let path = run_dir.log_path();
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(store),
            Err(e) => return Err(rundir::with_path(e, &path)),
        };
        for line in std::io::BufReader::new(file).split(b'\n') {
            let line = line.map_err(|e| rundir::with_path(e, &path))?;
            store.lines += 1;
            // A torn or foreign line is skipped: the sidecars still hold
            // the truth for any task it was about.
            if let Ok(record) = serde_json::from_slice::<LogLine>(&line) {
                store.apply(record);
            }
        }
        Ok(store)
    }

    fn apply(&mut self, line: LogLine) {
        if let Some(restamp) = line.restamp {
            for done in self.records.values_mut().filter_map(|r| r.done.as_mut()) {
                for stamps in [&mut done.inputs, &mut done.outputs] {
                    if let Some(stamp) = stamps.get_mut(&restamp.path) {
                        if stamp.blake3 == restamp.stamp.blake3 {
                            *stamp = restamp.stamp.clone();
                        }
                    }
                }
            }
            return;
        }
        match (line.clean, line.status) {
            (false, Some(status)) => {
                let status = *status;
                let record = self.records.entry(status.task.clone()).or_default();
                // One copy per task: a success replaces the last failure.
                if status.state == TaskState::Done {
                    record.done = Some(status);
                    record.last = None;
                } else {
                    record.last = Some(status);
                }
            }
            (true, _) => {
                self.records.remove(&line.task);
            }
            (false, None) => {}
        }
    }

    /// Every task the log knows, with its record.
    pub fn records(&self) -> impl Iterator<Item = (&String, &TaskRecord)> {
        self.records.iter()
    }

    pub fn record(&self, task: &str) -> Option<&TaskRecord> {
        self.records.get(task)
    }

    /// The last successful run of `task`: from the log, or from its sidecar
    /// when the log does not know it (a deleted or foreign log).
    pub fn done_record(&self, run_dir: &RunDir, task: &str) -> Option<Cow<'_, Status>> {
        if let Some(done) = self.records.get(task).and_then(|r| r.done.as_ref()) {
            return Some(Cow::Borrowed(done));
        }
        let status = read_status(run_dir, task)?;
        (status.state == TaskState::Done).then_some(Cow::Owned(status))
    }

    /// The last status of `task`: the sidecar (which sees every state
    /// change), else the log.
    pub fn last_status(&self, run_dir: &RunDir, task: &str) -> Option<Status> {
        self.sidecar(run_dir, task).or_else(|| {
            let record = self.records.get(task)?;
            record.last.clone().or_else(|| record.done.clone())
        })
    }

    fn append(&mut self, run_dir: &RunDir, line: &LogLine) -> Result<()> {
        if self.log.is_none() {
            self.log = Some(open_log(run_dir)?);
        }
        let mut bytes = serde_json::to_vec(line).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        if let Some(log) = self.log.as_mut() {
            // One write call per line keeps appends whole.
            log.write_all(&bytes)
                .map_err(|e| rundir::with_path(e, &run_dir.log_path()))?;
        }
        self.lines += 1;
        Ok(())
    }

    /// Records a status change: log line, then sidecar; on `done`, the
    /// `.DONE` marker last; on any other state, the marker is removed first.
    pub fn write_status(&mut self, run_dir: &RunDir, status: &Status) -> Result<()> {
        let done_path = run_dir.done_path(&status.task);
        // A marker must never outlive the run it vouches for; `pending`
        // only announces a run, so the last good one still stands.
        if !matches!(status.state, TaskState::Done | TaskState::Pending) {
            rundir::remove_if_exists(&done_path)?;
            self.note_marker(&status.task, false);
        }
        // The log keeps outcomes only (done, failed, stopped): `pending` and
        // `running` live in the sidecar, so the log stays small. A crash
        // mid-run leaves no `.DONE`, which is enough to make the task stale.
        let outcome = matches!(
            status.state,
            TaskState::Done | TaskState::Failed | TaskState::Stopped
        );
        if outcome {
            self.append(run_dir, &LogLine::status(status))?;
        }
        write_sidecar(run_dir, status)?;
        if status.state == TaskState::Done {
            write_marker(run_dir, &status.task)?;
            self.note_marker(&status.task, true);
        }
        if outcome {
            self.apply(LogLine::status(status));
        }
        Ok(())
    }

    /// Records an outcome already published by [`publish`] (sidecar and
    /// marker written by the job's thread): the log line, and memory.
    pub fn record_outcome(&mut self, run_dir: &RunDir, status: &Status) -> Result<()> {
        self.note_marker(&status.task, status.state == TaskState::Done);
        if matches!(
            status.state,
            TaskState::Done | TaskState::Failed | TaskState::Stopped
        ) {
            self.append(run_dir, &LogLine::status(status))?;
            self.apply(LogLine::status(status));
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
        self.append(run_dir, &LogLine::status(status))?;
        self.apply(LogLine::status(status));
        Ok(())
    }

    /// A task's sidecar, or the `running` status the last build's journal
    /// has for it when that build left it in flight.
    pub fn sidecar(&self, run_dir: &RunDir, task: &str) -> Option<Status> {
        match self.in_flight.get(task) {
            Some(status) => Some(status.clone()),
            None => read_status(run_dir, task),
        }
    }

    /// Takes the journal's word for the tasks the last build left in
    /// flight (empty once a build has reconciled them).
    pub fn set_in_flight(&mut self, statuses: Vec<Status>) {
        self.in_flight = statuses.into_iter().map(|s| (s.task.clone(), s)).collect();
    }

    /// Whether the `.DONE` marker of a task exists, from one listing of
    /// `.planexe/tasks/` made when the state was loaded (kept up to date by
    /// this store's own writes), else by a stat.
    pub fn has_marker(&self, run_dir: &RunDir, task: &str) -> bool {
        match &self.markers {
            Some(set) => set.lock().unwrap_or_else(|p| p.into_inner()).contains(task),
            None => has_marker(run_dir, task),
        }
    }

    /// Notes that a marker was created or removed outside `write_status`.
    pub fn note_marker(&self, task: &str, present: bool) {
        if let Some(set) = &self.markers {
            let mut set = set.lock().unwrap_or_else(|p| p.into_inner());
            if present {
                set.insert(task.to_string());
            } else {
                set.remove(task);
            }
        }
    }

    /// Forgets a task: its sidecars go, and the log says so.
    pub fn forget(&mut self, run_dir: &RunDir, task: &str) -> Result<()> {
        rundir::remove_if_exists(&run_dir.done_path(task))?;
        self.note_marker(task, false);
        rundir::remove_if_exists(&run_dir.status_path(task))?;
        self.append(run_dir, &LogLine::clean(task))?;
        self.apply(LogLine::clean(task));
        Ok(())
    }

    /// Rewrites the log with one line per known task when it has grown to
    /// several times that, so it stays proportional to the pipeline.
    pub fn compact_if_large(&mut self, run_dir: &RunDir) -> Result<()> {
        let live: usize = self
            .records
            .values()
            .map(|r| usize::from(r.done.is_some()) + 1)
            .sum();
        if self.lines <= 3 * live + 1000 {
            return Ok(());
        }
        let mut names: Vec<&String> = self.records.keys().collect();
        names.sort();
        let mut bytes = Vec::new();
        for name in names {
            let record = &self.records[name];
            let mut lines = Vec::new();
            if let Some(done) = &record.done {
                lines.push(done);
            }
            if let Some(last) = &record.last {
                lines.push(last);
            }
            for status in lines {
                serde_json::to_writer(&mut bytes, &LogLine::status(status))
                    .map_err(std::io::Error::other)?;
                bytes.push(b'\n');
            }
        }
        self.log = None;
        rundir::write_atomic(&run_dir.log_path(), &bytes)?;
        self.lines = bytes.iter().filter(|&&b| b == b'\n').count();
        Ok(())
    }
}

/// Opens the log to append to, creating it, and ends a torn last line (a
/// crash mid-append) so the next record starts on a line of its own.
fn open_log(run_dir: &RunDir) -> Result<std::fs::File> {
    let path = run_dir.log_path();
    fs_err::create_dir_all(run_dir.state_dir())?;
    let file = fs_err::OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(&path)?;
    let mut file = file.into_parts().0;
    if !ends_with_newline(&mut file) {
        file.write_all(b"\n")
            .map_err(|e| rundir::with_path(e, &path))?;
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
        };
        serde_json::to_writer(&mut bytes, &line).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
    }
    open_log(run_dir)?
        .write_all(&bytes)
        .map_err(|e| rundir::with_path(e, &run_dir.log_path()))
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

/// Writes the public face of a task's new state: the sidecar, then, for
/// `done`, the `.DONE` marker last (for any other state the marker goes
/// first). Safe from any thread: it touches only this task's files.
pub fn publish(run_dir: &RunDir, status: &Status) -> Result<()> {
    let done_path = run_dir.done_path(&status.task);
    if status.state != TaskState::Done {
        rundir::remove_if_exists(&done_path)?;
    }
    write_sidecar(run_dir, status)?;
    if status.state == TaskState::Done {
        write_marker(run_dir, &status.task)?;
    }
    Ok(())
}

/// Writes the `.DONE` marker of a task whose `done` sidecar was just
/// written: a second name for that sidecar (so its mtime is the moment of
/// success and its content the record it vouches for), which costs a
/// directory entry where a new file would cost an inode; an empty file on
/// a file system without hard links. Either appears whole, at once.
fn write_marker(run_dir: &RunDir, task: &str) -> Result<()> {
    let done = run_dir.done_path(task);
    let sidecar = run_dir.status_path(task);
    match std::fs::hard_link(&sidecar, &done) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            rundir::remove_if_exists(&done)?;
            write_marker_again(&sidecar, &done)
        }
        Err(_) => write_marker_again(&sidecar, &done),
    }
}

fn write_marker_again(sidecar: &Path, done: &Path) -> Result<()> {
    if std::fs::hard_link(sidecar, done).is_err() {
        fs_err::File::create(done)?;
    }
    Ok(())
}

/// Reads a task's `.status` sidecar; `None` when absent or unreadable.
pub fn read_status(run_dir: &RunDir, task: &str) -> Option<Status> {
    let bytes = std::fs::read(run_dir.status_path(task)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Writes a task's `.status` sidecar atomically.
pub fn write_sidecar(run_dir: &RunDir, status: &Status) -> Result<()> {
    write_sidecar_at(&run_dir.status_path(&status.task), status)
}

/// Writes a task's `.status` sidecar, at `path`, atomically.
pub fn write_sidecar_at(path: &Path, status: &Status) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(status).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    rundir::write_atomic(path, &bytes)
}

/// Whether the `.DONE` marker of a task exists.
pub fn has_marker(run_dir: &RunDir, task: &str) -> bool {
    Path::new(&run_dir.done_path(task)).exists()
}
