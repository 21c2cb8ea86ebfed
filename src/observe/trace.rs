//! `.planexe/trace.json`: a timeline of every build in the Chrome trace
//! event format (open it in Perfetto or chrome://tracing). One complete
//! event per task run and per model call; running tasks occupy lanes
//! (trace threads) so parallel work shows side by side. [`TraceEvent`] is
//! the one shape of an event, for the writer ([`Trace`]) and the readers
//! ([`read`], the HTML report).
//!
//! The file is a JSON array that is only ever appended to: it starts with
//! `[` and each event ends with `,`; trace viewers accept the missing `]`.
//! Events are written in batches of whole lines (a write per task would
//! be a system call per task for a file nobody reads until the build
//! ends), and the rest when the build ends; a crash loses the last batch,
//! never half an event; a batch a full disk cuts short is cut off again
//! ([`files::append_whole`]).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::store::{files, RunDir};

/// How many bytes of whole events wait before they are written.
const BATCH: usize = 32 * 1024;

/// What kind of trace event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// A complete event: a span of time.
    #[serde(rename = "X")]
    Complete,
    /// Metadata: the name of a build or a lane.
    #[serde(rename = "M")]
    Metadata,
}

/// What a span is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Task,
    Llm,
}

/// The arguments of an event; which are set depends on its kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Args {
    /// Metadata: the name given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A task: `done`, `failed` or `stopped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// A task: its error message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A model call: `ok` or the error type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// A failed model call: its `error_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_id: Option<String>,
    /// A model call of the task's judge, not of the task's own model.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub judge: bool,
    /// A judge's call that scored: the score it gave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
}

/// One event of the trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceEvent {
    /// The task, `MODEL #ATTEMPT` for a call, or the metadata's key.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cat: Option<Category>,
    pub ph: Phase,
    /// The build: planexe's process id.
    pub pid: u32,
    /// The lane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<u64>,
    /// Start, in microseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<i64>,
    /// Duration in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dur: Option<i64>,
    #[serde(default)]
    pub args: Args,
}

/// The events of a trace file, in order; lines that do not parse (the
/// opening `[`, a line torn by a crash) are skipped.
pub fn read(path: &Path) -> Vec<TraceEvent> {
    let Ok(bytes) = files::read(path) else {
        return Vec::new();
    };
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|line| serde_json::from_str(line.trim().trim_end_matches(',')).ok())
        .collect()
}

/// The trace writer of one build.
pub struct Trace {
    sink: Mutex<Sink>,
    pid: u32,
}

struct Sink {
    path: PathBuf,
    /// Opened with the first event written (`None` inside: it could not be).
    file: Option<Option<std::fs::File>>,
    pending: Vec<u8>,
}

impl Sink {
    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let path = &self.path;
        let file = self.file.get_or_insert_with(|| {
            let fresh = std::fs::metadata(path).map_or(true, |m| m.len() == 0);
            let file = files::open_append(path).ok();
            if let (true, Some(f)) = (fresh, file.as_ref()) {
                let _ = files::append_whole(f, b"[\n");
            }
            file
        });
        if let Some(f) = file.as_ref() {
            let _ = files::append_whole(f, &self.pending);
        }
        self.pending.clear();
    }
}

impl Trace {
    /// The run directory's trace, appended to from the first event on.
    /// Best effort: without the file, events go nowhere.
    pub fn open(run_dir: &RunDir) -> Trace {
        Trace {
            sink: Mutex::new(Sink {
                path: run_dir.trace_path(),
                file: None,
                pending: Vec::new(),
            }),
            pid: std::process::id(),
        }
    }

    fn write(&self, event: &TraceEvent) {
        let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        if serde_json::to_writer(&mut sink.pending, event).is_ok() {
            sink.pending.extend_from_slice(b",\n");
        }
        if sink.pending.len() >= BATCH {
            sink.flush();
        }
    }

    fn metadata(&self, key: &str, tid: Option<u64>, label: String) {
        self.write(&TraceEvent {
            name: key.to_string(),
            cat: None,
            ph: Phase::Metadata,
            pid: self.pid,
            tid,
            ts: None,
            dur: None,
            args: Args {
                name: Some(label),
                ..Args::default()
            },
        });
    }

    /// Writes the events not written yet (at the build's end: what
    /// follows is a next build's).
    pub fn flush(&self) {
        self.sink.lock().unwrap_or_else(|p| p.into_inner()).flush();
    }

    /// Names the build (a trace process).
    pub fn name_build(&self, label: &str) {
        self.metadata("process_name", None, label.to_string());
    }

    /// Names a lane (a trace thread).
    pub fn name_lane(&self, lane: usize) {
        self.metadata("thread_name", Some(lane as u64), format!("lane {lane}"));
    }

    /// One complete event.
    pub fn span(
        &self,
        name: &str,
        category: Category,
        lane: usize,
        start_us: i64,
        duration_us: i64,
        args: Args,
    ) {
        self.write(&TraceEvent {
            name: name.to_string(),
            cat: Some(category),
            ph: Phase::Complete,
            pid: self.pid,
            tid: Some(lane as u64),
            ts: Some(start_us),
            dur: Some(duration_us.max(1)),
            args,
        });
    }
}

impl Drop for Trace {
    fn drop(&mut self) {
        self.sink
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .flush();
    }
}
