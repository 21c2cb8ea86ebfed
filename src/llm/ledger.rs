//! `.planexe/usage.jsonl` (one line per HTTP call) and
//! `.planexe/failures.jsonl` (one line per failed attempt): failures as
//! data, not tracebacks. Every string passes through [`Ledger::redact`]
//! first, so no API key reaches a file.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::Serialize;

use crate::rundir;

/// One line of `usage.jsonl`.
#[derive(Debug, Serialize)]
pub struct UsageLine<'a> {
    pub timestamp_utc: String,
    pub task: &'a str,
    pub model: &'a str,
    pub provider: &'a str,
    pub attempt: u32,
    pub duration_ms: u64,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub total_tokens: Option<u64>,
    pub cost_usd: Option<f64>,
    /// `ok` or `error`.
    pub status: &'a str,
    pub error_id: Option<String>,
}

/// One line of `failures.jsonl`.
#[derive(Debug, Serialize)]
pub struct FailureLine<'a> {
    pub timestamp_utc: String,
    pub task: &'a str,
    pub model: &'a str,
    pub attempt: u32,
    pub error_type: &'a str,
    pub message: String,
    pub http_status: Option<u16>,
    pub missing_fields: Vec<String>,
    pub invalid_fields: Vec<String>,
    /// What the server said, at most 2 KB.
    pub raw_error: String,
    pub error_id: String,
    /// Whether planexe retried (or moved on to a fallback model).
    pub recoverable: bool,
    pub run_dir: String,
}

pub struct Ledger {
    usage: Mutex<Option<std::fs::File>>,
    failures: Mutex<Option<std::fs::File>>,
    usage_path: PathBuf,
    failures_path: PathBuf,
    secrets: Vec<String>,
}

impl Ledger {
    pub fn new(state_dir: PathBuf, secrets: Vec<String>) -> Ledger {
        Ledger {
            usage: Mutex::new(None),
            failures: Mutex::new(None),
            usage_path: state_dir.join("usage.jsonl"),
            failures_path: state_dir.join("failures.jsonl"),
            secrets: secrets.into_iter().filter(|s| s.len() >= 4).collect(),
        }
    }

    /// Replaces every known secret in `text`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "[REDACTED]");
            }
        }
        out
    }

    pub fn usage(&self, line: &UsageLine) {
        self.append(&self.usage, &self.usage_path, line);
    }

    pub fn failure(&self, line: &FailureLine) {
        self.append(&self.failures, &self.failures_path, line);
    }

    fn append<T: Serialize>(&self, file: &Mutex<Option<std::fs::File>>, path: &PathBuf, line: &T) {
        let Ok(json) = serde_json::to_string(line) else {
            return;
        };
        let mut text = self.redact(&json);
        text.push('\n');
        let mut guard = file.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            *guard = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .ok();
        }
        if let Some(f) = guard.as_mut() {
            // Best effort: a full disk must not turn a good answer into a
            // failed task; the status sidecar still records the outcome.
            let _ = f.write_all(text.as_bytes());
        }
    }

    /// Writes `.planexe/raw/TASK.json` (redacted, atomically).
    pub fn raw(&self, state_dir: &std::path::Path, task: &str, value: &serde_json::Value) {
        let Ok(text) = serde_json::to_string_pretty(value) else {
            return;
        };
        let text = self.redact(&text);
        let _ = rundir::write_atomic(
            &state_dir.join("raw").join(format!("{task}.json")),
            text.as_bytes(),
        );
    }
}
