//! The failure record of a task attempt that no model call recorded: every
//! failed command (exit, signal, timeout, `missing_output`, stop, spawn),
//! and a prompt task that failed before or between its calls (a template
//! error, a stop while it waited). Each gets an `error_id` and one line in
//! `.planexe/failures.jsonl`, so every failed task's sidecar, its
//! `task.failed` event and that file name the same failure.
//!
//! A command's line carries the end of its log, scrubbed of every secret
//! the build knows (API keys in the environment, webhook tokens), like
//! every ledger line.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::env::{self, Env};
use crate::model::{Action, Graph, Task};
use crate::store::ledger::{FailureLine, Ledger};
use crate::store::{files, ErrorKind, RunDir, Status, TaskError};

/// How much of the end of a command's log a failure line keeps.
pub const LOG_TAIL_BYTES: usize = 2048;
/// Read before the tail as well, so a secret that straddles the tail's
/// start is still recognised and scrubbed whole.
const REDACT_MARGIN: usize = 8192;

/// Writes failure lines for one build.
pub struct Failures<'a> {
    ledger: Ledger,
    run_dir: &'a RunDir,
}

impl<'a> Failures<'a> {
    /// The secrets scrubbed are those of prompt tasks' ledger: the API keys
    /// of the pipeline's models found in `env`, `env`'s own secrets and
    /// the secret parts of the pipeline's webhook URLs.
    pub fn new(graph: &Graph, run_dir: &'a RunDir, env: &Env) -> Failures<'a> {
        Failures {
            ledger: Ledger::new(run_dir, env::graph_secrets(graph, env)),
            run_dir,
        }
    }

    /// Gives `error` an `error_id` and appends its line, unless a model
    /// call's line already names it; a command's `error` keeps the end of
    /// its log, as the line does.
    pub fn record(&self, task: &Task, status: &Status, error: &mut TaskError) {
        if error.error_id.is_some() {
            return;
        }
        let id = uuid::Uuid::new_v4().to_string();
        // Only a command that started wrote this attempt's log: before
        // that, the log is the last run's.
        let started = matches!(task.action, Action::Command(_)) && status.pid.is_some();
        let log_tail = if started {
            self.log_tail(&self.run_dir.task_log_path(&task.name))
        } else {
            None
        };
        // A command's judge that scored it too low: the line is the
        // judge's (a prompt task's judge writes its own).
        let judge = status
            .judge
            .as_ref()
            .filter(|_| error.kind == ErrorKind::JudgeRejected);
        self.ledger.failure(&FailureLine {
            model: judge.map_or(status.model.as_deref(), |v| Some(&v.model)),
            judge: judge.is_some(),
            attempt: status.attempt.max(1),
            recoverable: error.recoverable,
            duration_ms: status.duration_ms,
            exit_code: error.exit_code,
            signal: error.signal,
            log_tail: log_tail.clone(),
            ..FailureLine::new(&task.name, error.kind, &error.message, &id, self.run_dir)
        });
        error.error_id = Some(id);
        error.log_tail = log_tail;
    }

    /// The last [`LOG_TAIL_BYTES`] of a log, scrubbed, cut on a character
    /// boundary; `None` when there is no log.
    fn log_tail(&self, path: &Path) -> Option<String> {
        scrubbed_tail(path, LOG_TAIL_BYTES, |text| self.ledger.redact(text)).map(|t| t.text)
    }

    /// A failure line that could not be written, said once a build.
    pub fn take_lost(&self) -> Option<String> {
        self.ledger.take_lost()
    }

    /// `text` scrubbed of every secret the build knows, for what is
    /// printed of a task's log as well as what is written of it.
    pub fn redact(&self, text: &str) -> String {
        self.ledger.redact(text)
    }
}

/// The end of a log, scrubbed.
pub(crate) struct Tail {
    pub text: String,
    /// Nothing before `text` was left out: it is the whole log.
    pub whole: bool,
}

/// The last `n` bytes of the log at `path` after `redact`, cut on a
/// character boundary; `None` when there is no log. The end read is
/// longer than that, so a secret that straddles the tail's start is
/// scrubbed whole before the cut, and bounded, so a log of any size is
/// never read whole.
pub(crate) fn scrubbed_tail(
    path: &Path,
    n: usize,
    redact: impl Fn(&str) -> String,
) -> Option<Tail> {
    // Never through a link: the tail goes into a file others read.
    let mut file = files::open_read(path).ok()?;
    let len = file.metadata().ok()?.len();
    let from = len.saturating_sub((n + REDACT_MARGIN) as u64);
    file.seek(SeekFrom::Start(from)).ok()?;
    let mut bytes = Vec::new();
    // Bounded even if the log grows meanwhile.
    file.take((n + REDACT_MARGIN) as u64)
        .read_to_end(&mut bytes)
        .ok()?;
    let text = redact(&String::from_utf8_lossy(&bytes));
    let kept = last_bytes(&text, n);
    Some(Tail {
        whole: from == 0 && kept.len() == text.len(),
        text: kept.to_string(),
    })
}

/// The longest end of `text` of at most `n` bytes that starts on a
/// character boundary.
pub(crate) fn last_bytes(text: &str, n: usize) -> &str {
    let mut start = text.len().saturating_sub(n);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tail_starts_on_a_character_boundary() {
        assert_eq!(last_bytes("abc", 10), "abc");
        assert_eq!(last_bytes("abcdef", 2), "ef");
        // "é" is two bytes: the last 3 bytes of "aéé" cut the first one.
        assert_eq!(last_bytes("aéé", 3), "é");
        assert_eq!(last_bytes("", 3), "");
    }
}
