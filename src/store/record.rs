//! The records planexe keeps about a task: [`Status`], the content of
//! `.planexe/tasks/NAME.status` and of each line of the state log, with the
//! types it is made of: the task's [`TaskState`], why it failed
//! ([`TaskError`] and its [`ErrorKind`]), every model call
//! ([`AttemptRecord`]) and their [`Usage`].
//!
//! The vocabulary of failures lives here, with what each kind means to a
//! user (whether a plain re-run may fix it, what to do), so every reader
//! says the same.

use serde::{Deserialize, Serialize};

use super::stamps::Stamps;
pub use super::usage::{nano_usd, JudgeUsage, Usage};

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
    /// Running still: its command failed after writing every output, and
    /// the checks of its rescue (`rescue = true`) examine what it wrote.
    #[serde(rename = "failed-pending-check")]
    FailedPendingCheck,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Running => "running",
            TaskState::Done => "done",
            TaskState::Failed => "failed",
            TaskState::Stopped => "stopped",
            TaskState::FailedPendingCheck => "failed-pending-check",
        }
    }

    /// Running, in any phase (a rescue's checks included).
    pub fn is_running(self) -> bool {
        matches!(self, TaskState::Running | TaskState::FailedPendingCheck)
    }

    /// Done, failed or stopped: what the state log keeps.
    pub fn is_outcome(self) -> bool {
        matches!(
            self,
            TaskState::Done | TaskState::Failed | TaskState::Stopped
        )
    }
}

/// Why a run or a model call failed. The names are the `error.kind` of a
/// sidecar and the `error_type` of `failures.jsonl` (docs/state.md,
/// docs/llm.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The command exited non-zero.
    Exit,
    /// The command was killed by a signal.
    Signal,
    /// The task's timeout, or a model request's, expired.
    Timeout,
    /// An input could not be read when the task started.
    #[serde(alias = "missing-input")]
    MissingInput,
    /// The command exited 0 without writing every output.
    #[serde(alias = "missing-output")]
    MissingOutput,
    /// `sh` or the log file could not be started or opened.
    Spawn,
    /// A file operation around the run failed.
    Io,
    /// Ctrl-C, SIGTERM or `planexe stop` stopped it.
    #[serde(alias = "interrupted")]
    Stopped,
    /// Nothing can run this task (a placeholder, no model runner).
    Unsupported,
    /// Model calls: no connection.
    Connection,
    /// A model was still generating when its request timeout expired.
    Runaway,
    /// A stream sent nothing for `idle_timeout`.
    Stall,
    /// A stream ended without the model finishing.
    BrokenStream,
    RateLimited,
    ServerError,
    /// The server answered something that is not the expected JSON.
    BadResponse,
    Auth,
    NotFound,
    BadRequest,
    Truncated,
    /// The answer outgrew the model's `max_answer_bytes`.
    TooLarge,
    /// A content filter stopped the answer, or the model refused
    /// (`finish_reason: "content_filter"`, `stop_reason: "refusal"`).
    Refused,
    ContextOverflow,
    InvalidJson,
    Schema,
    EmptyAnswer,
    /// The template could not be rendered with the inputs.
    Template,
    /// No API key in the environment.
    MissingKey,
    /// Replay: no recorded answer for the request (docs/llm.md).
    ReplayMiss,
    /// A judge scored the answer below its threshold, every time.
    JudgeRejected,
    /// An output check rejected what the task wrote: its `check` command
    /// failed, or an output is smaller than its `min_bytes`.
    CheckFailed,
    /// A `foreach` task's list file, just built, could not be read or
    /// expanded (not JSON, no array at `items`, duplicate keys...).
    BadList,
    /// A kind this planexe does not know (written by another version).
    #[serde(other)]
    Other,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Exit => "exit",
            ErrorKind::Signal => "signal",
            ErrorKind::Timeout => "timeout",
            ErrorKind::MissingInput => "missing_input",
            ErrorKind::MissingOutput => "missing_output",
            ErrorKind::Spawn => "spawn",
            ErrorKind::Io => "io",
            ErrorKind::Stopped => "stopped",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Connection => "connection",
            ErrorKind::Runaway => "runaway",
            ErrorKind::Stall => "stall",
            ErrorKind::BrokenStream => "broken_stream",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::ServerError => "server_error",
            ErrorKind::BadResponse => "bad_response",
            ErrorKind::Auth => "auth",
            ErrorKind::NotFound => "not_found",
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::Truncated => "truncated",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::Refused => "refused",
            ErrorKind::ContextOverflow => "context_overflow",
            ErrorKind::InvalidJson => "invalid_json",
            ErrorKind::Schema => "schema",
            ErrorKind::EmptyAnswer => "empty_answer",
            ErrorKind::Template => "template",
            ErrorKind::MissingKey => "missing_key",
            ErrorKind::JudgeRejected => "judge_rejected",
            ErrorKind::ReplayMiss => "replay_miss",
            ErrorKind::CheckFailed => "check_failed",
            ErrorKind::BadList => "bad_list",
            ErrorKind::Other => "other",
        }
    }

    /// A model call worth retrying on the same model after a pause.
    pub fn transient(self) -> bool {
        matches!(
            self,
            ErrorKind::Connection
                | ErrorKind::Timeout
                | ErrorKind::Stall
                | ErrorKind::BrokenStream
                | ErrorKind::RateLimited
                | ErrorKind::ServerError
                | ErrorKind::BadResponse
        )
    }

    /// An answer arrived but was not acceptable: re-ask with feedback.
    pub fn invalid_answer(self) -> bool {
        matches!(
            self,
            ErrorKind::InvalidJson | ErrorKind::Schema | ErrorKind::EmptyAnswer
        )
    }

    /// Whether running `planexe build` again without changing anything may
    /// succeed: the one meaning of `recoverable` in every file and view
    /// (docs/state.md). A command killed by a signal is recoverable only
    /// when the signal came from outside (see [`signal_recoverable`]), which
    /// the kind alone cannot say: this answers for the kind.
    pub fn recoverable(self) -> bool {
        // Every transient kind but a server that answered the wrong shape
        // (it needs a change), and a stop.
        (self.transient() && self != ErrorKind::BadResponse) || self == ErrorKind::Stopped
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a command killed by `signal` may succeed when run again: yes
/// when the signal came from outside (SIGKILL from the OOM killer or a
/// user, SIGTERM, SIGINT, SIGHUP, SIGQUIT), no when the program caused it
/// itself: a crash or an abort (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT,
/// SIGTRAP, SIGSYS), a write to a closed pipe (SIGPIPE), its own alarm
/// (SIGALRM), and any other.
pub fn signal_recoverable(signal: i32) -> bool {
    matches!(signal, 1 | 2 | 3 | 9 | 15)
}

/// The name of a signal (`SIGKILL`), for messages.
pub fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGCHLD => "SIGCHLD",
        libc::SIGCONT => "SIGCONT",
        libc::SIGSTOP => "SIGSTOP",
        libc::SIGTSTP => "SIGTSTP",
        libc::SIGTTIN => "SIGTTIN",
        libc::SIGTTOU => "SIGTTOU",
        libc::SIGURG => "SIGURG",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGVTALRM => "SIGVTALRM",
        libc::SIGPROF => "SIGPROF",
        libc::SIGWINCH => "SIGWINCH",
        libc::SIGIO => "SIGIO",
        libc::SIGSYS => "SIGSYS",
        _ => return None,
    })
}

/// `text`, then ` (error_id ID)` unless `text` names that id already (a
/// message that gathers the failures of several models names each).
pub fn with_error_id(text: &str, error_id: Option<&str>) -> String {
    match error_id {
        Some(id) if !text.contains(id) => format!("{text} (error_id {id})"),
        _ => text.to_string(),
    }
}

/// Why a task failed: a machine-readable kind and a human message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskError {
    pub kind: ErrorKind,
    pub message: String,
    /// The UUID of the failed attempt, as in `failures.jsonl`.
    #[serde(default)]
    pub error_id: Option<String>,
    /// Whether `planexe build` again, changing nothing, may succeed
    /// ([`ErrorKind::recoverable`]; for a signal, [`signal_recoverable`]).
    #[serde(default)]
    pub recoverable: bool,
    /// Commands: the exit status, when the command exited (0 for
    /// `missing_output`).
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Commands: the signal that killed the command.
    #[serde(default)]
    pub signal: Option<i32>,
    /// The failure is the task's judge's (a call of its judge, its prompt,
    /// its score), not the task's own model's or command's, as
    /// `failures.jsonl`'s `judge` says of a line: what to do about it is
    /// too ([`TaskError::remedy`]). Written only when true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub judge: bool,
    /// What the failure itself says to do, beyond its kind's remedy (a
    /// fan-out's list that cannot be read: the list error's own hints,
    /// which its message also ends with). Written only when there are any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<String>,
    /// Commands: the end of what the command printed (the last 2 KB of its
    /// log, scrubbed of the build's secrets), as its `failures.jsonl` line
    /// keeps it: what `status` shows of a failure without the log being
    /// read. Written only for a command that started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_tail: Option<String>,
}

impl TaskError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> TaskError {
        TaskError {
            kind,
            message: message.into(),
            error_id: None,
            recoverable: kind.recoverable(),
            exit_code: None,
            signal: None,
            judge: false,
            hints: Vec::new(),
            log_tail: None,
        }
    }

    /// A command killed by `signal`: recoverable when the signal came from
    /// outside ([`signal_recoverable`]).
    pub fn signal(signal: i32) -> TaskError {
        let name = signal_name(signal).map_or(String::new(), |n| format!(" ({n})"));
        TaskError {
            recoverable: signal_recoverable(signal),
            signal: Some(signal),
            ..TaskError::new(
                ErrorKind::Signal,
                format!("killed by signal {signal}{name}"),
            )
        }
    }

    /// A command that exited with `code`.
    pub fn exit(code: i32) -> TaskError {
        TaskError {
            exit_code: Some(code),
            ..TaskError::new(ErrorKind::Exit, format!("exit status {code}"))
        }
    }

    /// The first non-blank line of the message, trimmed.
    pub fn first_line(&self) -> &str {
        first_line(&self.message)
    }
}

/// `KIND: MESSAGE`, how a failure is said to people, its kind said once.
/// The messages of model calls, judges and checks name their kind already,
/// after the model or judge they blame (`local: truncated: ...`, `judge
/// strong could not score: auth: ...`, `judge_rejected: ...`): such a
/// message is said as it is, the name it carries kept. (A list of every
/// model's failure, `all models failed: ...`, names each model's kind; the
/// task's kind still leads it.)
pub fn with_kind(kind: &str, message: &str) -> String {
    let mut parts = message.splitn(3, ": ");
    if parts.next() == Some(kind) || parts.next() == Some(kind) {
        message.to_string()
    } else {
        format!("{kind}: {message}")
    }
}

/// The first non-blank line of `s`, trimmed: how one-line summaries show a
/// message.
pub fn first_line(s: &str) -> &str {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}

/// What a task's judge said of its answer, pass or fail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgeVerdict {
    /// The judging model.
    pub model: String,
    /// From 0 to 1.
    pub score: f64,
    pub reason: String,
    pub threshold: f64,
    pub passed: bool,
    /// How many answers it judged (1 + the re-asks it caused).
    pub rounds: u32,
}

/// One HTTP call of a task, as the status sidecar lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub model: String,
    pub attempt: u32,
    /// When the call started (RFC 3339).
    #[serde(default)]
    pub started_at: String,
    pub duration_ms: u64,
    /// `ok` or the `error_type`.
    pub outcome: String,
    pub error_id: Option<String>,
    /// The call was the task's judge's, scoring an answer or the outputs,
    /// not a call of the task's own model.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub judge: bool,
    /// A judge's call that scored: the score it gave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// Nothing of this call's response is in `.planexe/raw/`: none came
    /// back (or an interrupt or the task's timeout ended the call first),
    /// and the file, if any, is an earlier call's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_response: bool,
}

impl AttemptRecord {
    /// A call of the task's own model (a judging marks its calls after).
    pub fn call(
        model: &str,
        attempt: u32,
        started_at: String,
        duration_ms: u64,
        outcome: &str,
        error_id: Option<String>,
    ) -> AttemptRecord {
        AttemptRecord {
            model: model.to_string(),
            attempt,
            started_at,
            duration_ms,
            outcome: outcome.to_string(),
            error_id,
            judge: false,
            score: None,
            no_response: false,
        }
    }
}

/// How much a failed output check matters (docs/checks.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The task fails.
    #[default]
    Error,
    /// The task is done; the failure is a quality warning.
    Warn,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warn => "warn",
        }
    }
}

/// The outcome of one output check of a task's last run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRecord {
    /// `min_bytes` or `check`.
    pub name: String,
    pub passed: bool,
    pub severity: Severity,
    /// Why it failed (null when it passed).
    #[serde(default)]
    pub message: Option<String>,
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
    /// What the task did, without its output checks, when it has any (so
    /// a change of its checks alone is told apart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_fingerprint: Option<String>,
    /// A fan-out instance's action before its item was put in (so a
    /// change of its item alone is told apart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_fingerprint: Option<String>,
    pub inputs: Stamps,
    /// A command naming `{inputs}`: a hash of their order (`input_order`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_order: Option<String>,
    pub outputs: Stamps,
    pub error: Option<TaskError>,
    /// Prompt tasks: the model that answered (or was asked last).
    #[serde(default)]
    pub model: Option<String>,
    /// Prompt tasks, and tasks with a judge: every HTTP call of the last
    /// run.
    #[serde(default)]
    pub attempts: Vec<AttemptRecord>,
    /// Prompt tasks, and tasks with a judge: tokens and cost of the last
    /// run.
    #[serde(default)]
    pub usage: Option<Usage>,
    /// Tasks with a judge: its last verdict.
    #[serde(default)]
    pub judge: Option<JudgeVerdict>,
    /// The share of the judge's calls in `attempts` and `usage`; absent
    /// when the last run asked no judge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge_usage: Option<JudgeUsage>,
    /// What the task ran: its command, or its prompt template (for
    /// `explain`). In the sidecar only, not in the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<String>,
    /// The output checks of the last run (docs/checks.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckRecord>,
    /// The command failed, but its checks accepted every output it wrote
    /// (`rescue = true`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rescued: bool,
    /// A failed or stopped re-check: the run only examined, with changed
    /// checks, the outputs the last good run wrote, and ran nothing. Those
    /// outputs stand as they were, for the next build to examine again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rechecked: bool,
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
            action_fingerprint: None,
            template_fingerprint: None,
            input_order: None,
            inputs: Stamps::new(),
            outputs: Stamps::new(),
            error: None,
            model: None,
            attempts: Vec::new(),
            usage: None,
            judge: None,
            judge_usage: None,
            definition: None,
            checks: Vec::new(),
            rescued: false,
            rechecked: false,
        }
    }

    /// The model whose request found no recorded answer (`replay_miss`),
    /// of the last run's calls: the first such call's.
    pub fn replay_missed_by(&self) -> Option<&str> {
        self.attempts
            .iter()
            .find(|a| a.outcome == ErrorKind::ReplayMiss.as_str())
            .map(|a| a.model.as_str())
    }
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
