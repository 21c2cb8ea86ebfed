//! The ledgers of a build: `.planexe/usage.jsonl` (one line per HTTP
//! call), `.planexe/failures.jsonl` (one line per failed attempt of any
//! task, command or prompt: failures as data, not tracebacks) and `.planexe/raw/TASK.json` (the last
//! response). Every string passes through [`Ledger::redact`] first, so no
//! API key reaches a file, in any spelling (see [`Secrets`]). [`totals`]
//! reads the usage ledger back.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::files;
use super::record::{ErrorKind, JudgeUsage, Usage};
use super::rundir::RunDir;
use super::untrusted::Secrets;

/// One line of `usage.jsonl`. `S` is `&str` when written and `String` when
/// read back.
#[derive(Debug, Serialize, Deserialize)]
pub struct UsageLine<S> {
    pub timestamp_utc: String,
    pub task: S,
    pub model: S,
    pub provider: S,
    pub attempt: u32,
    pub duration_ms: u64,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub total_tokens: Option<u64>,
    /// The counts are estimates: the server reported none (docs/llm.md).
    #[serde(default)]
    pub tokens_estimated: bool,
    pub cost_usd: Option<f64>,
    /// `ok`, `error` or `stopped`.
    pub status: S,
    pub error_id: Option<String>,
    /// The answer came from a recording or the response cache, not from a
    /// server (docs/llm.md#record-replay-and-the-response-cache).
    #[serde(default)]
    pub replayed: bool,
    /// The call was a task's judge's, scoring an answer or outputs, not a
    /// call of the task's own model (docs/llm.md#logs).
    #[serde(default)]
    pub judge: bool,
    /// A judge's call that scored: the score it gave.
    #[serde(default)]
    pub score: Option<f64>,
}

impl<S: AsRef<str>> UsageLine<S> {
    /// Tokens and cost of this call.
    pub fn usage(&self) -> Usage {
        Usage {
            prompt_tokens: self.prompt_tokens.unwrap_or(0),
            completion_tokens: self.completion_tokens.unwrap_or(0),
            total_tokens: self.total_tokens.unwrap_or(0),
            cost_usd: self.cost_usd.unwrap_or(0.0),
            tokens_estimated: self.tokens_estimated,
            // A replayed answer cost nothing; a server's answer without
            // prices cost what is not known.
            unpriced: self.cost_usd.is_none() && !self.replayed,
        }
    }
}

/// The sums of `usage.jsonl`: every model call of the run.
#[derive(Debug, Default, Serialize)]
pub struct Totals {
    pub calls: u64,
    /// Calls that ended in an error (not those stopped).
    pub failed_calls: u64,
    /// Calls cut short by a stop (Ctrl-C, SIGTERM, `stop_build`): not
    /// failures of the model or its server.
    pub stopped_calls: u64,
    /// Calls answered from a recording or the response cache.
    pub replayed_calls: u64,
    #[serde(flatten)]
    pub usage: Usage,
    pub llm_time_ms: u64,
    /// The share of tasks' judges: their calls, tokens and cost.
    pub judge_usage: JudgeUsage,
}

/// Reads `usage.jsonl` and sums it; lines that do not parse are skipped.
pub fn totals(run_dir: &RunDir) -> Totals {
    let mut t = Totals::default();
    let Ok(text) = std::fs::read_to_string(run_dir.usage_path()) else {
        return t;
    };
    for line in text.lines() {
        let Ok(call) = serde_json::from_str::<UsageLine<String>>(line) else {
            continue;
        };
        t.calls = t.calls.saturating_add(1);
        match call.status.as_str() {
            "ok" => {}
            "stopped" => t.stopped_calls = t.stopped_calls.saturating_add(1),
            _ => t.failed_calls = t.failed_calls.saturating_add(1),
        }
        if call.replayed {
            t.replayed_calls = t.replayed_calls.saturating_add(1);
        }
        t.usage.add(&call.usage());
        t.llm_time_ms = t.llm_time_ms.saturating_add(call.duration_ms);
        if call.judge {
            t.judge_usage.add(&JudgeUsage {
                calls: 1,
                usage: call.usage(),
            });
        }
    }
    t
}

/// One line of `failures.jsonl`: one failed attempt of a task, a command
/// or a prompt task, in one format (docs/state.md#failuresjsonl). Keys that
/// do not apply to the task's kind are null (or `[]`).
#[derive(Debug, Serialize)]
pub struct FailureLine<'a> {
    pub timestamp_utc: String,
    pub task: &'a str,
    /// Prompt tasks: the model asked; null for commands.
    pub model: Option<&'a str>,
    /// Commands: 1. Prompt tasks: the number of the call that failed.
    pub attempt: u32,
    pub kind: ErrorKind,
    /// The same as `kind`: the name earlier versions wrote.
    pub error_type: ErrorKind,
    pub message: String,
    /// A UUID; the task's sidecar `error.error_id` and its `task.failed`
    /// event name the line that ended the task.
    pub error_id: String,
    /// Whether `planexe build` again, changing nothing, may succeed.
    pub recoverable: bool,
    /// Prompt tasks: whether planexe asked the same model again after
    /// this failure (the call again after a pause, or a re-ask with
    /// feedback). Moving on to a fallback model does not count. Always
    /// false for commands: planexe never re-runs one by itself.
    pub retried: bool,
    /// Commands: how long the attempt ran.
    pub duration_ms: Option<u64>,
    /// Commands: the exit status (0 for `missing_output`).
    pub exit_code: Option<i32>,
    /// Commands: the signal that killed the command.
    pub signal: Option<i32>,
    /// Commands: the end of the task's log, at most 2 KB.
    pub log_tail: Option<String>,
    /// Prompt tasks: the HTTP status of the failed call.
    pub http_status: Option<u16>,
    pub missing_fields: Vec<String>,
    pub invalid_fields: Vec<String>,
    /// Prompt tasks: what the server said, at most 2 KB.
    pub raw_error: Option<String>,
    pub run_dir: String,
    /// The line is the task's judge's, not the task's own model's or
    /// command's: a judge's call that failed, its score that rejected the
    /// answer, or a stop while it scored (docs/state.md#failuresjsonl).
    pub judge: bool,
}

impl<'a> FailureLine<'a> {
    /// A line for attempt 1 of `task`, with `recoverable` taken from the
    /// kind and every key that depends on the task's kind empty.
    pub fn new(
        task: &'a str,
        kind: ErrorKind,
        message: &str,
        error_id: &str,
        run_dir: &RunDir,
    ) -> FailureLine<'a> {
        FailureLine {
            timestamp_utc: crate::clock::now_rfc3339(),
            task,
            model: None,
            attempt: 1,
            kind,
            error_type: kind,
            message: message.to_string(),
            error_id: error_id.to_string(),
            recoverable: kind.recoverable(),
            retried: false,
            duration_ms: None,
            exit_code: None,
            signal: None,
            log_tail: None,
            http_status: None,
            missing_fields: Vec::new(),
            invalid_fields: Vec::new(),
            raw_error: None,
            run_dir: run_dir.root().display().to_string(),
            judge: false,
        }
    }
}

pub struct Ledger {
    usage: Mutex<Option<std::fs::File>>,
    failures: Mutex<Option<std::fs::File>>,
    /// The first line that could not be written (its file and why), until
    /// [`Ledger::take_lost`] takes it; then `Err(())`: said once.
    lost: Mutex<Result<Option<String>, ()>>,
    usage_path: PathBuf,
    failures_path: PathBuf,
    secrets: Secrets,
}

impl Ledger {
    pub fn new(run_dir: &RunDir, secrets: Vec<String>) -> Ledger {
        Ledger {
            usage: Mutex::new(None),
            failures: Mutex::new(None),
            lost: Mutex::new(Ok(None)),
            usage_path: run_dir.usage_path(),
            failures_path: run_dir.failures_path(),
            secrets: Secrets::new(secrets, 4),
        }
    }

    /// Replaces every known secret in `text`, however it is spelled:
    /// a line is JSON, and JSON spells a `"` or `\\` of a secret escaped.
    pub fn redact(&self, text: &str) -> String {
        self.secrets.redact(text)
    }

    pub fn usage(&self, line: &UsageLine<&str>) {
        self.append(&self.usage, &self.usage_path, line);
    }

    pub fn failure(&self, line: &FailureLine) {
        self.append(&self.failures, &self.failures_path, line);
    }

    fn append<T: Serialize>(&self, file: &Mutex<Option<std::fs::File>>, path: &Path, line: &T) {
        let Ok(json) = serde_json::to_string(line) else {
            return;
        };
        let mut text = self.redact(&json);
        text.push('\n');
        let mut guard = file.lock().unwrap_or_else(|p| p.into_inner());
        let opened = match guard.as_ref() {
            Some(_) => Ok(()),
            None => files::open_append(path).map(|f| *guard = Some(f)),
        };
        // Best effort: a full disk must not turn a good answer into a
        // failed task; the status sidecar still records the outcome. But
        // a line lost is said (once: see `take_lost`).
        let written = opened.and_then(|()| match guard.as_ref() {
            Some(f) => files::append_whole(f, text.as_bytes())
                .map_err(|e| crate::error::Error::io_at(path, e)),
            None => Ok(()),
        });
        if let Err(e) = written {
            let mut lost = self.lost.lock().unwrap_or_else(|p| p.into_inner());
            if let Ok(first @ None) = &mut *lost {
                *first = Some(e.to_string());
            }
        }
    }

    /// A line that could not be written since the ledger was made, the
    /// first time it is asked only: `PATH: why; ...` for a warning.
    pub fn take_lost(&self) -> Option<String> {
        let mut lost = self.lost.lock().unwrap_or_else(|p| p.into_inner());
        let first = lost.as_mut().ok()?.take()?;
        *lost = Err(());
        Some(format!(
            "{first}: a line could not be written there (best effort; lines lost after it are not said again)"
        ))
    }

    /// Writes `.planexe/raw/TASK.json` (redacted, atomically).
    pub fn raw(&self, run_dir: &RunDir, task: &str, value: &serde_json::Value) {
        let Ok(text) = serde_json::to_string_pretty(value) else {
            return;
        };
        let text = self.redact(&text);
        let _ = files::write_atomic(&run_dir.raw_path(task), text.as_bytes());
    }
}
