//! The ledgers of a build: `.planexe/usage.jsonl` (one line per HTTP
//! call), `.planexe/failures.jsonl` (one line per failed attempt of any
//! task, command or prompt: failures as data, not tracebacks) and `.planexe/raw/TASK.json` (the last
//! response). Every string passes through [`Ledger::redact`] first, so no
//! API key reaches a file, in any spelling (see [`Secrets`]). [`totals`]
//! reads the usage ledger back, from the sums a build left in
//! `.planexe/usage.sum` and the lines after them.

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
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
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

impl Totals {
    /// Adds the calls of `text`, whole lines of `usage.jsonl`, in order;
    /// lines that do not parse are skipped.
    fn add_lines(&mut self, text: &[u8]) {
        for line in text.split(|&b| b == b'\n') {
            let Ok(call) = serde_json::from_slice::<UsageLine<String>>(line) else {
                continue;
            };
            self.calls = self.calls.saturating_add(1);
            match call.status.as_str() {
                "ok" => {}
                "stopped" => self.stopped_calls = self.stopped_calls.saturating_add(1),
                _ => self.failed_calls = self.failed_calls.saturating_add(1),
            }
            if call.replayed {
                self.replayed_calls = self.replayed_calls.saturating_add(1);
            }
            self.usage.add(&call.usage());
            self.llm_time_ms = self.llm_time_ms.saturating_add(call.duration_ms);
            if call.judge {
                self.judge_usage.add(&JudgeUsage {
                    calls: 1,
                    usage: call.usage(),
                });
            }
        }
    }
}

/// `.planexe/usage.sum`: the [`Totals`] of the first `bytes` bytes of
/// `usage.jsonl` (whole lines), which a build writes as it ends. The
/// ledger only grows, so a reader adds the lines after them to these sums
/// and reads no more than one build's calls, however many the run has
/// made. `check` is the hash of the last bytes the sums cover: a ledger
/// cut short or written anew no longer has them, and is read whole.
#[derive(Debug, Serialize, Deserialize)]
struct UsageSum {
    bytes: u64,
    check: String,
    totals: Totals,
}

/// How many bytes before the end of what a [`UsageSum`] covers its
/// `check` hashes: the last line or more.
const CHECKED: u64 = 4096;

/// Reads the sums of `usage.jsonl`: those `usage.sum` vouches for, plus
/// the lines after them (all of it when the sums do not hold).
pub fn totals(run_dir: &RunDir) -> Totals {
    let Some((mut totals, _, _, unended)) = read_totals(run_dir) else {
        return Totals::default();
    };
    // A last line without its line end (written by hand) still counts,
    // if it parses.
    totals.add_lines(&unended);
    totals
}

/// The sums of the whole lines of `usage.jsonl`, how many bytes of it
/// they cover, the ledger, and what follows its last line end.
fn read_totals(run_dir: &RunDir) -> Option<(Totals, u64, std::fs::File, Vec<u8>)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(run_dir.usage_path()).ok()?;
    let len = file.metadata().ok()?.len();
    let (mut totals, from) = match saved_sum(run_dir, &file, len) {
        Some(sum) => (sum.totals, sum.bytes),
        None => (Totals::default(), 0),
    };
    file.seek(SeekFrom::Start(from)).ok()?;
    let mut rest = Vec::with_capacity(usize::try_from(len - from).ok()?);
    (&file).take(len - from).read_to_end(&mut rest).ok()?;
    let whole = rest.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    totals.add_lines(&rest[..whole]);
    let unended = rest.split_off(whole);
    Some((totals, from + whole as u64, file, unended))
}

/// The sums `usage.sum` holds, when they are of the first bytes of `file`
/// (`len` bytes long) as it is now.
fn saved_sum(run_dir: &RunDir, file: &std::fs::File, len: u64) -> Option<UsageSum> {
    let text = std::fs::read(run_dir.usage_sum_path()).ok()?;
    let sum: UsageSum = serde_json::from_slice(&text).ok()?;
    (sum.bytes <= len && check_of(file, sum.bytes)? == sum.check).then_some(sum)
}

/// The hash of the [`CHECKED`] bytes of `file` before `end`.
fn check_of(file: &std::fs::File, end: u64) -> Option<String> {
    use std::os::unix::fs::FileExt;
    let start = end.saturating_sub(CHECKED);
    let mut bytes = vec![0; (end - start) as usize];
    file.read_exact_at(&mut bytes, start).ok()?;
    Some(blake3::hash(&bytes).to_hex().to_string())
}

/// Writes `usage.sum` for `usage.jsonl` as it is now (nothing when the
/// run made no call): what a build does as it ends, holding the lock, so
/// that `status` reads no call twice. Best effort: without it, the sums
/// are read from the ledger itself.
pub fn remember_totals(run_dir: &RunDir) {
    // A line still being written counts once it is whole.
    let Some((totals, bytes, file, _)) = read_totals(run_dir) else {
        return;
    };
    let Some(check) = check_of(&file, bytes) else {
        return;
    };
    let sum = UsageSum {
        bytes,
        check,
        totals,
    };
    if let Ok(text) = serde_json::to_vec(&sum) {
        let _ = files::write_atomic(&run_dir.usage_sum_path(), &text);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn call(task: &str, tokens: u64, status: &str) -> String {
        format!(
            "{{\"timestamp_utc\":\"2026-11-28T13:14:25.277Z\",\"task\":\"{task}\",\"model\":\"m\",\
             \"provider\":\"openai\",\"attempt\":1,\"duration_ms\":10,\"prompt_tokens\":{tokens},\
             \"completion_tokens\":1,\"total_tokens\":{},\"cost_usd\":0.001,\"status\":\"{status}\",\
             \"error_id\":null}}\n",
            tokens + 1
        )
    }

    fn append(run_dir: &RunDir, text: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(run_dir.usage_path())
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn the_sums_a_build_left_are_read_with_the_lines_after_them_only() {
        let (_dir, run_dir) = crate::store::rundir::temp();
        std::fs::create_dir_all(run_dir.state_dir()).unwrap();
        append(&run_dir, &(call("a", 10, "ok") + &call("b", 20, "error")));
        remember_totals(&run_dir);
        append(&run_dir, &call("c", 30, "ok"));
        let whole = totals(&run_dir);
        assert_eq!((whole.calls, whole.failed_calls), (3, 1));
        assert_eq!(whole.usage.prompt_tokens, 60);
        // The same as reading every line, to the nanodollar.
        std::fs::remove_file(run_dir.usage_sum_path()).unwrap();
        assert_eq!(totals(&run_dir), whole);
        // The sums are taken as they are, not read again: a sum that
        // says 1000 calls before the last line is believed...
        remember_totals(&run_dir);
        append(&run_dir, &call("d", 1, "ok"));
        let text = std::fs::read_to_string(run_dir.usage_sum_path()).unwrap();
        let mut sum: UsageSum = serde_json::from_str(&text).unwrap();
        sum.totals.calls = 1000;
        std::fs::write(run_dir.usage_sum_path(), serde_json::to_vec(&sum).unwrap()).unwrap();
        assert_eq!(totals(&run_dir).calls, 1001);
        // ...while the ledger ends with the bytes it hashed: a line
        // among them changed, the ledger is read whole.
        let ledger = std::fs::read_to_string(run_dir.usage_path()).unwrap();
        std::fs::write(run_dir.usage_path(), ledger.replace("\"c\"", "\"x\"")).unwrap();
        assert_eq!(totals(&run_dir).calls, 4);
        let cut = call("e", 5, "ok");
        std::fs::write(run_dir.usage_path(), &cut).unwrap();
        assert_eq!(
            totals(&run_dir).calls,
            1,
            "a ledger cut short is read whole"
        );
        std::fs::write(run_dir.usage_path(), cut.repeat(100)).unwrap();
        assert_eq!(
            totals(&run_dir).calls,
            100,
            "a ledger written anew is read whole"
        );
    }

    #[test]
    fn a_line_being_written_counts_once_it_is_whole() {
        let (_dir, run_dir) = crate::store::rundir::temp();
        std::fs::create_dir_all(run_dir.state_dir()).unwrap();
        let line = call("a", 10, "ok");
        append(&run_dir, &(line.clone() + &line[..40]));
        remember_totals(&run_dir);
        assert_eq!(totals(&run_dir).calls, 1);
        append(&run_dir, &line[40..]);
        assert_eq!(totals(&run_dir).calls, 2);
        // A last line without its line end counts, but is not summed
        // until it has one.
        append(&run_dir, line.trim_end());
        assert_eq!(totals(&run_dir).calls, 3);
        remember_totals(&run_dir);
        assert_eq!(totals(&run_dir).calls, 3);
        append(&run_dir, "\n");
        assert_eq!(totals(&run_dir).calls, 3);
        // No ledger: no calls, whatever a sum says.
        std::fs::remove_file(run_dir.usage_path()).unwrap();
        assert_eq!(totals(&run_dir), Totals::default());
    }
}
