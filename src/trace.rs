//! `.planexe/trace.json`: a timeline of every build in the Chrome trace
//! event format (open it in Perfetto or chrome://tracing). One complete
//! event per task run and per model call; running tasks occupy lanes
//! (trace threads) so parallel work shows side by side.
//!
//! The file is a JSON array that is only ever appended to: it starts with
//! `[` and each event ends with `,`; trace viewers accept the missing `]`.
//! Events are written in batches of whole lines (a write per task would
//! be a system call per task for a file nobody reads until the build
//! ends), and the rest when the build ends; a crash loses the last batch,
//! never half an event.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use serde_json::{json, Value};

pub struct Trace {
    sink: Mutex<Sink>,
    pid: u32,
}

/// How many bytes of whole events wait before they are written.
const BATCH: usize = 32 * 1024;

struct Sink {
    file: Option<std::fs::File>,
    pending: Vec<u8>,
}

impl Sink {
    fn flush(&mut self) {
        if let Some(f) = self.file.as_mut() {
            let _ = f.write_all(&self.pending);
        }
        self.pending.clear();
    }
}

/// Microseconds since the Unix epoch of an RFC 3339 time.
pub fn micros(rfc3339: &str) -> Option<i64> {
    let ts: jiff::Timestamp = rfc3339.parse().ok()?;
    Some(ts.as_microsecond())
}

impl Trace {
    pub fn open(state_dir: &Path) -> Trace {
        let path = state_dir.join("trace.json");
        let fresh = std::fs::metadata(&path).map_or(true, |m| m.len() == 0);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .ok();
        if fresh {
            if let Some(f) = file.as_mut() {
                let _ = f.write_all(b"[\n");
            }
        }
        Trace {
            sink: Mutex::new(Sink {
                file,
                pending: Vec::new(),
            }),
            pid: std::process::id(),
        }
    }

    fn write(&self, event: Value) {
        let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        if serde_json::to_writer(&mut sink.pending, &event).is_ok() {
            sink.pending.extend_from_slice(b",\n");
        }
        if sink.pending.len() >= BATCH {
            sink.flush();
        }
    }

    /// Names the build (a trace process) and a lane (a trace thread).
    pub fn name_build(&self, label: &str) {
        self.write(
            json!({"name": "process_name", "ph": "M", "pid": self.pid, "args": {"name": label}}),
        );
    }

    pub fn name_lane(&self, lane: usize) {
        self.write(json!({"name": "thread_name", "ph": "M", "pid": self.pid, "tid": lane, "args": {"name": format!("lane {lane}")}}));
    }

    /// One complete event.
    pub fn span(
        &self,
        name: &str,
        category: &str,
        lane: usize,
        start_us: i64,
        duration_us: i64,
        args: Value,
    ) {
        self.write(json!({
            "name": name, "cat": category, "ph": "X", "pid": self.pid, "tid": lane,
            "ts": start_us, "dur": duration_us.max(1), "args": args,
        }));
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
