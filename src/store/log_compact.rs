//! Compaction of the state log: once it has grown to several times what
//! its tasks' records need, it is rewritten with, per task, its last
//! success and a later outcome, written from the records as they are, by
//! many threads at once, and a `clean` line per task cleaned since its
//! last run (so it is still told apart from one never built).

use rayon::prelude::*;
use serde::Serialize;

use super::{LogLine, StateStore};
use crate::error::Result;
use crate::store::record::Status;
use crate::store::rundir::RunDir;

/// A status line as [`LogLine`] writes it, borrowing the record it holds:
/// what compaction writes for every task without copying each record
/// first. The same fields, in the same order, left out in the same cases,
/// as a `LogLine` of a status (no `clean`, no `restamp`).
#[derive(Serialize)]
struct StatusLine<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    task: &'a str,
    status: &'a Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes: Option<u64>,
}

/// How many tasks one thread writes at least when the log is compacted.
const COMPACT_AT_ONCE: usize = 512;

impl StateStore {
    /// Rewrites the log with one line per known task when it has grown to
    /// several times that, so it stays proportional to the pipeline.
    pub fn compact_if_large(&mut self, run_dir: &RunDir) -> Result<()> {
        let live: usize = self
            .records
            .values()
            .map(|r| usize::from(r.done.is_some()) + 1)
            .sum::<usize>()
            + self.cleaned.len();
        // By lines (many small records superseded) and by bytes (a few
        // big ones, such as a task reading a thousand inputs, rewritten at
        // every edit).
        // A clean line is its task's name and some 25 bytes.
        let standing: u64 = self.records.values().map(|r| r.standing_bytes).sum::<u64>()
            + self
                .cleaned
                .iter()
                .map(|n| n.len() as u64 + 32)
                .sum::<u64>();
        if self.lines <= 3 * live + 1000 && self.bytes <= standing + standing / 2 + (256 << 10) {
            return Ok(());
        }
        self.compact(run_dir)
    }

    /// Rewrites the log with, per task, its last success and a later
    /// outcome, in order of task name. The records are written as they
    /// are, by many threads at once: a record holds no `definition` (it is
    /// for sidecars only), and one that did would be written as
    /// [`LogLine::status`] writes it.
    pub(super) fn compact(&mut self, run_dir: &RunDir) -> Result<()> {
        let _t = crate::phases::phase("state log: compact");
        let mut names: Vec<&String> = self.records.keys().collect();
        names.sort();
        let write = |bytes: &mut Vec<u8>, status: &Status, len: Option<u64>| {
            let written = if status.definition.is_none() {
                let line = StatusLine {
                    task: &status.task,
                    status,
                    bytes: len,
                };
                serde_json::to_writer(&mut *bytes, &line)
            } else {
                serde_json::to_writer(&mut *bytes, &LogLine::status(status).with_bytes(len))
            };
            bytes.push(b'\n');
            written
        };
        let pieces: Vec<(Vec<u8>, usize)> = names
            .par_chunks(COMPACT_AT_ONCE)
            .map(|names| {
                // What these records took in the log: what they take now.
                let standing: u64 = names.iter().map(|n| self.records[*n].standing_bytes).sum();
                let mut bytes = Vec::with_capacity(standing as usize + 64);
                let mut lines = 0;
                for name in names {
                    let record = &self.records[*name];
                    if let Some(done) = &record.done {
                        write(&mut bytes, done, record.sidecar_len)?;
                        lines += 1;
                    }
                    if let Some(last) = &record.last {
                        write(&mut bytes, last, None)?;
                        lines += 1;
                    }
                }
                Ok((bytes, lines))
            })
            .collect::<std::result::Result<_, serde_json::Error>>()
            .map_err(std::io::Error::other)?;
        // A task cleaned and not run since stays known as cleaned.
        let mut cleaned: Vec<&String> = self.cleaned.iter().collect();
        cleaned.sort();
        let mut forgotten = Vec::new();
        for name in &cleaned {
            serde_json::to_writer(&mut forgotten, &LogLine::clean(name))
                .map_err(std::io::Error::other)?;
            forgotten.push(b'\n');
        }
        self.log = None;
        let parts: Vec<&[u8]> = (pieces.iter().map(|(bytes, _)| bytes.as_slice()))
            .chain(std::iter::once(forgotten.as_slice()))
            .collect();
        crate::store::spare::rewrite(&run_dir.log_path(), &parts)?;
        self.lines = pieces.iter().map(|(_, lines)| lines).sum::<usize>() + cleaned.len();
        self.bytes = parts.iter().map(|p| p.len() as u64).sum();
        Ok(())
    }
}
