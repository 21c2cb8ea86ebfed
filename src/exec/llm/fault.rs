//! What a model call is and how it can end: its [`CallSpec`], a
//! [`CallOk`] or a [`CallError`], and the classification of everything
//! that can go wrong with it (HTTP statuses, transport errors, timeouts,
//! answers past their bound) into an [`ErrorKind`] that is either transient
//! (retry the same model after a backoff) or permanent (go to the next
//! model). What the server said enters a message only made
//! [`printable`]: its control characters escaped, so no error body can
//! drive the terminal it is shown on; `raw` keeps it as it came, as data.
//! A wait the server asks for is told in words a person reads (`3 hours`).

use std::time::Duration;

use serde_json::Value;

use super::provider::{self, Answer, Finish};
use crate::model::models::{ModelConfig, Provider};
use crate::model::pipeline::MAX_TIMEOUT;
use crate::store::untrusted::printable;
use crate::store::ErrorKind;

/// Caps what is read from an error body or kept of it.
pub(super) const ERROR_BODY_LIMIT: u64 = 64 * 1024;

/// Room for the JSON around an answer's text: ids, usage, and the escapes
/// (`\n`, `\"`) that make the wire form longer than the text.
const ENVELOPE: u64 = 64 * 1024;

/// The most read of one response body, or of one line or event of a
/// stream, for answers of at most `max_answer_bytes`.
pub fn wire_limit(max_answer_bytes: u64) -> u64 {
    max_answer_bytes.saturating_mul(2).saturating_add(ENVELOPE)
}

/// A failed call.
#[derive(Debug, Clone)]
pub struct CallError {
    pub kind: ErrorKind,
    pub message: String,
    pub status: Option<u16>,
    pub retry_after: Option<Duration>,
    /// What the server said, for `failures.jsonl`.
    pub raw: String,
    /// The tokens the server reported before the call failed (a stream's
    /// `message_start`, an answer too large to keep), if any.
    pub usage: provider::Usage,
    /// What it says of its cause beyond its kind, for the advice given
    /// when the model is given up on ([`advice`]).
    pub cause: Cause,
    /// What came back before the call failed (a stream's first events, a
    /// body cut short), for `.planexe/raw/`: none when nothing did.
    pub response: Option<Box<Partial>>,
    /// `raw` is a 2xx body of the wrong shape, whole: once it is
    /// scrubbed, the message quotes its start ([`begins`]) and it is cut
    /// to 2 KB (cut first, a secret would escape scrubbing).
    pub quote: bool,
}

/// The part of a response that came before its call failed.
#[derive(Debug, Clone)]
pub struct Partial {
    /// As `.planexe/raw/` keeps a response: a stream's events, a body.
    pub raw: Value,
    /// The answer's text and reasoning so far (a stream's), to scrub the
    /// events of a secret split across them.
    pub text: String,
    pub reasoning: String,
}

/// What a failed call says of its cause beyond its [`ErrorKind`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Cause {
    #[default]
    Other,
    /// The server accepted the connection, then closed it before answering:
    /// it is running, so "is the server running" would mislead.
    Hangup,
    /// The model's own `timeout` expired (not a 408, not a connect timeout).
    ModelTimeout,
}

impl CallError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> CallError {
        CallError {
            kind,
            message: message.into(),
            status: None,
            retry_after: None,
            raw: String::new(),
            usage: provider::Usage::default(),
            cause: Cause::Other,
            response: None,
            quote: false,
        }
    }

    /// Whether the server said anything: a status, a body or the start
    /// of one. A call refused, reset or timed out before a byte came back
    /// did not.
    pub fn answered(&self) -> bool {
        self.status.is_some() || !self.raw.is_empty() || self.response.is_some()
    }

    fn caused(self, cause: Cause) -> CallError {
        CallError { cause, ..self }
    }
}

/// The start of a body a message quotes: one line (runs of whitespace made
/// one space), at most [`BEGINS_CHARS`] characters, its control characters
/// escaped; the message is scrubbed of secrets where every failure is.
pub(super) fn begins(body: &str) -> String {
    let line = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        return "nothing (an empty body)".to_string();
    }
    let mut start: String = line.chars().take(BEGINS_CHARS).collect();
    if start.len() < line.len() {
        start.push('…');
    }
    format!("`{}`", printable(&start))
}

/// How much of a body a message quotes.
const BEGINS_CHARS: usize = 100;

/// How a failure's message ends after `reasks` re-asks of the model: `
/// (after 2 re-ask(s))`, or ` (not asked again: retries = 0)` when none
/// were allowed.
pub(super) fn after_reasks(reasks: u32) -> String {
    match reasks {
        0 => " (not asked again: retries = 0)".to_string(),
        n => format!(" (after {n} re-ask(s))"),
    }
}

/// What to do next, appended to the message of a call whose model is given
/// up on: start a server that refused the connection, look into one that
/// closed it before answering, or raise the model's `timeout` (named with
/// its table, so it is not taken for a task's own `timeout`).
pub(super) fn advice(e: &CallError, model: &ModelConfig) -> String {
    match (e.kind, e.cause) {
        (ErrorKind::Connection, Cause::Hangup) => "; it is running, but it may have crashed on \
            the request (see the server's log), or a proxy between may have cut it (a size or \
            time limit); fix that, then run planexe build again"
            .to_string(),
        (ErrorKind::Connection, _) => format!(
            "; is the server running at {}? Start it (LM Studio, Ollama, llama-server, vLLM...) or fix the model's base_url",
            model.base_url
        ),
        (ErrorKind::Timeout, Cause::ModelTimeout) => format!(
            "; if the model needs longer, raise its timeout: timeout = \"{}\" under [models.{}]",
            readable((model.timeout * 2).min(MAX_TIMEOUT)),
            toml_key(&model.name)
        ),
        _ => String::new(),
    }
}

/// What a failure being retried says while the task waits (and what a
/// task's deadline then quotes): only whether the server is running.
pub(super) fn retrying_advice(e: &CallError, model: &ModelConfig) -> String {
    match (e.kind, e.cause) {
        (ErrorKind::Connection, Cause::Other) => {
            format!("; is the server running at {}?", model.base_url)
        }
        _ => String::new(),
    }
}

/// A model's name as a key of a TOML table header: bare when it can be.
fn toml_key(name: &str) -> String {
    let bare = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if !name.is_empty() && name.chars().all(bare) {
        name.to_string()
    } else {
        toml::Value::String(name.to_string()).to_string()
    }
}

/// A successful call: the answer and the response kept for debugging.
#[derive(Debug, Clone)]
pub struct CallOk {
    pub answer: Answer,
    pub raw: Value,
}

/// Everything one call needs; owned, so it can run on a thread of its own.
#[derive(Debug, Clone)]
pub struct CallSpec {
    pub provider: Provider,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    pub stream: bool,
    pub timeout: Duration,
    pub idle_timeout: Duration,
    /// The model's `max_answer_bytes`.
    pub max_answer_bytes: u64,
    /// The answer's token limit as sent (none: the server's own).
    pub max_tokens: Option<u64>,
    /// A judge's call: its prompt, schema and `max_tokens` are planexe's.
    pub judge: bool,
    /// The answer is constrained to a JSON schema (a task's `schema`).
    pub schema: bool,
}

impl CallSpec {
    /// What bounds the call's answer, for what a runaway is told to change.
    pub fn bounds(&self) -> Bounds {
        Bounds::of(self.judge, self.schema)
    }
}

/// What bounds an answer besides its timeout, and so what a generation
/// that would not end is told to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bounds {
    /// A judge's call: its prompt, schema and `max_tokens` are planexe's;
    /// only the timeout is the user's.
    Judge,
    /// The task's schema (and `max_tokens`).
    Schema,
    /// `max_tokens` alone: a text answer.
    Text,
}

impl Bounds {
    pub fn of(judge: bool, schema: bool) -> Bounds {
        match (judge, schema) {
            (true, _) => Bounds::Judge,
            (false, true) => Bounds::Schema,
            (false, false) => Bounds::Text,
        }
    }
}

/// What a generation still going when a timeout expired was, and what to
/// change. `timeout` names the one that expired (`the request timeout
/// (5m)`), `raise` the setting that sets it (`the model's timeout`).
/// Under a `max_tokens` it had yet to reach, the generation would have
/// ended there: it was slow, not endless, and the message says how long
/// that limit takes at the rate seen since the first piece (`first_ago`:
/// how long ago it came; the wait for it, while the server read the
/// prompt, is said apart). Otherwise it may never end (an unbounded
/// schema): bound it. A `judge`'s call has planexe's own prompt, schema
/// and `max_tokens`, so only the timeout is the user's to change.
pub(super) fn still_generating(
    timeout: &str,
    raise: &str,
    pieces: u64,
    elapsed: Option<Duration>,
    first_ago: Option<Duration>,
    max_tokens: Option<u64>,
    bounds: Bounds,
) -> String {
    let endless = match bounds {
        Bounds::Judge => format!(" and no end; raise {raise}"),
        Bounds::Schema => format!(
            " and no end; bound the schema's arrays (maxItems) and strings (maxLength), lower max_tokens, or raise {raise}"
        ),
        Bounds::Text => format!(" and no end; lower max_tokens, or raise {raise}"),
    };
    let mut m = format!("the model was still generating when {timeout} expired: {pieces} token(s)");
    let Some(elapsed) = elapsed else {
        m.push_str(&endless);
        return m;
    };
    let shown = |rate: f64| {
        if rate < 10.0 {
            format!("{rate:.1}/s")
        } else {
            format!("{rate:.0}/s")
        }
    };
    let secs = |d: Duration| d.as_secs_f64().max(0.001);
    // The wait for the first piece, and the rate after it (of the pieces
    // after the first), when there are at least two.
    let first_after = first_ago.map(|ago| elapsed.saturating_sub(ago));
    let (rate, lead) = match (first_ago, first_after) {
        (Some(ago), Some(lead)) if pieces > 1 && !ago.is_zero() => {
            let rate = (pieces - 1) as f64 / secs(ago);
            m.push_str(&format!(
                " in {:.1}s, the first after {:.1}s (then {})",
                elapsed.as_secs_f64(),
                lead.as_secs_f64(),
                shown(rate)
            ));
            (rate, lead)
        }
        _ => {
            let rate = pieces as f64 / secs(elapsed);
            m.push_str(&format!(
                " in {:.1}s ({})",
                elapsed.as_secs_f64(),
                shown(rate)
            ));
            (rate, Duration::ZERO)
        }
    };
    match max_tokens.filter(|&n| n > pieces) {
        Some(n) if rate > 0.0 => {
            let takes = lead.as_secs_f64() + n as f64 / rate;
            let takes = Duration::from_secs(takes.min(1e9) as u64);
            let lower = if bounds == Bounds::Judge {
                ""
            } else {
                " or lower max_tokens"
            };
            m.push_str(&format!(
                "; at that rate its max_tokens ({n}) takes {}: slow, not endless; raise {raise}{lower}",
                humantime::format_duration(takes)
            ));
        }
        _ => m.push_str(&endless),
    }
    m
}

/// The answer outgrew `max_answer_bytes`: a permanent failure, so the next
/// model is asked rather than the same one again.
pub(super) fn too_large(spec: &CallSpec, size: Size, what: &str, tail: &str) -> CallError {
    let cap = spec.max_answer_bytes;
    let why = match size {
        Size::Text => format!("more than max_answer_bytes ({cap} bytes)"),
        Size::Wire => format!(
            "more than an answer of max_answer_bytes ({cap} bytes) needs (twice that, and {} KiB for its JSON)",
            ENVELOPE / 1024
        ),
    };
    CallError::new(ErrorKind::TooLarge, format!("{what}, {why}{tail}"))
}

/// What passed the bound: the answer's text, or what carries it.
pub(super) enum Size {
    Text,
    Wire,
}

pub(super) fn status_error(status: u16, body: &str, retry_after: Option<Duration>) -> CallError {
    let (kind_name, message) = provider::error_details(body);
    let kind = match status {
        _ if (400..500).contains(&status) && provider::is_context_overflow(body) => {
            ErrorKind::ContextOverflow
        }
        408 => ErrorKind::Timeout,
        429 => ErrorKind::RateLimited,
        401 | 403 => ErrorKind::Auth,
        404 => ErrorKind::NotFound,
        500..=599 => ErrorKind::ServerError,
        _ => ErrorKind::BadRequest,
    };
    let mut text = format!("HTTP {status}");
    if let Some(k) = kind_name {
        text.push_str(&format!(" {k}"));
    }
    if !message.is_empty() {
        text.push_str(&format!(": {}", provider::truncate(&message, 300)));
    }
    CallError {
        kind,
        message: text,
        status: Some(status),
        retry_after,
        raw: provider::truncate(body, 2048).to_string(),
        usage: provider::Usage::default(),
        cause: Cause::Other,
        response: None,
        quote: false,
    }
}

pub(super) fn transport_error(e: ureq::Error, reading_body: bool, spec: &CallSpec) -> CallError {
    match e {
        ureq::Error::Io(io) => transport_io_error(&io, reading_body, spec),
        ureq::Error::Timeout(t) => timeout_error(t, spec),
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => CallError::new(
            ErrorKind::Connection,
            format!("cannot connect to {}: {e}", spec.url),
        ),
        ureq::Error::BadUri(_) => {
            CallError::new(ErrorKind::BadRequest, format!("bad URL {}: {e}", spec.url))
        }
        other => CallError::new(
            if reading_body {
                ErrorKind::BrokenStream
            } else {
                ErrorKind::Connection
            },
            format!(
                "{} {}: {}",
                if reading_body {
                    "reading the answer from"
                } else {
                    "calling"
                },
                spec.url,
                // A protocol error may quote what the server sent.
                printable(&other.to_string())
            ),
        ),
    }
}

pub(super) fn transport_io_error(
    e: &std::io::Error,
    reading_body: bool,
    spec: &CallSpec,
) -> CallError {
    // ureq reports its own timeouts through io errors while a body is read.
    if let Some(ureq::Error::Timeout(t)) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<ureq::Error>())
    {
        return timeout_error(*t, spec);
    }
    if e.kind() == std::io::ErrorKind::TimedOut {
        return if spec.stream {
            CallError::new(
                ErrorKind::Stall,
                format!(
                    "the stream sent nothing for {}",
                    readable(spec.idle_timeout)
                ),
            )
        } else {
            CallError::new(
                ErrorKind::Timeout,
                format!("no answer within {}", readable(spec.timeout)),
            )
            .caused(Cause::ModelTimeout)
        };
    }
    // Connected, then closed: an answer that never began.
    let hangup = !reading_body
        && matches!(
            e.kind(),
            std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe
        );
    if hangup {
        return CallError::new(
            ErrorKind::Connection,
            format!(
                "the server closed the connection before answering ({}): {}",
                spec.url,
                printable(&e.to_string())
            ),
        )
        .caused(Cause::Hangup);
    }
    let kind = if reading_body {
        ErrorKind::BrokenStream
    } else {
        ErrorKind::Connection
    };
    let what = if reading_body {
        "the connection broke while reading the answer"
    } else {
        "cannot reach the server"
    };
    CallError::new(
        kind,
        format!("{what} ({}): {}", spec.url, printable(&e.to_string())),
    )
}

pub(super) fn timeout_error(t: ureq::Timeout, spec: &CallSpec) -> CallError {
    match t {
        ureq::Timeout::PerRead if spec.stream => CallError::new(
            ErrorKind::Stall,
            format!(
                "the stream sent nothing for {}",
                readable(spec.idle_timeout)
            ),
        ),
        ureq::Timeout::Connect => CallError::new(
            ErrorKind::Timeout,
            format!("no complete answer within {}", readable(spec.timeout)),
        ),
        _ => CallError::new(
            ErrorKind::Timeout,
            format!("no complete answer within {}", readable(spec.timeout)),
        )
        .caused(Cause::ModelTimeout),
    }
}

impl CallOk {
    /// Whether the answer was cut off by the token limit.
    pub fn truncated(&self) -> bool {
        self.answer.finish == Finish::Length
    }
}

/// A timeout as a person reads it, to the millisecond: `5m`, `937ms`
/// (a request timeout cut short by what is left of the task's own reads
/// `937ms`, not `937ms 170us 825ns`).
pub(super) fn readable(d: Duration) -> humantime::FormattedDuration {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    humantime::format_duration(Duration::from_millis(ms))
}

/// A wait as a person reads it: `90s`, `5m`, `3 hours`, `3650 days`.
pub(super) fn describe_wait(wait: Duration) -> String {
    let secs = wait.as_secs();
    if secs >= 2 * 86_400 {
        format!("{} days", secs / 86_400)
    } else if secs >= 2 * 3600 {
        format!("{} hours", secs / 3600)
    } else {
        readable(wait).to_string()
    }
}

/// The failure of a call still in flight when the task's timeout expired:
/// `runaway` when pieces were still arriving, `timeout` otherwise.
pub(super) fn deadline_error(
    model: &crate::model::models::ModelConfig,
    pieces: u64,
    progress: &super::CallProgress,
    deadline: Option<(std::time::Instant, Duration)>,
    max_tokens: Option<u64>,
    bounds: Bounds,
) -> CallError {
    let limit = deadline.map_or(Duration::ZERO, |d| d.1);
    let streaming = progress
        .pieces
        .last()
        .and_then(|last| last.elapsed().ok())
        .is_some_and(|since| since < model.idle_timeout);
    if pieces > 0 && streaming {
        let elapsed = progress.started.lock().map(|s| s.elapsed()).ok();
        CallError::new(
            ErrorKind::Runaway,
            still_generating(
                &format!("the task's timeout ({})", readable(limit)),
                "the task's timeout",
                pieces,
                elapsed,
                progress.pieces.first_ago(),
                max_tokens,
                bounds,
            ),
        )
    } else {
        CallError::new(
            ErrorKind::Timeout,
            format!(
                "timeout after {}, while the model was answering ({pieces} piece(s) received)",
                readable(limit)
            ),
        )
    }
}

/// Reasons joined with `; `, each with its error_id but `skip` (the one the
/// task carries, shown beside the message already).
pub(super) fn with_ids(reasons: &[(String, String)], skip: Option<&str>) -> String {
    reasons
        .iter()
        .map(|(text, id)| {
            if Some(id.as_str()) == skip {
                text.clone()
            } else {
                format!("{text} (error_id {id})")
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A timeout that came while the task was queued for its model: `after`
/// (`timeout after 30m`), what it was queued for, and the failure it was
/// to retry after, if any.
pub(super) fn queued_message(after: &str, queued: &str, retrying: Option<&str>) -> String {
    match retrying {
        Some(last) => format!("{after} while {queued}, to retry after {last}"),
        None => format!("{after} while {queued}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_read_well() {
        assert_eq!(describe_wait(Duration::from_secs(315_360_000)), "3650 days");
        assert_eq!(describe_wait(Duration::from_secs(300)), "5m");
        assert_eq!(describe_wait(Duration::from_millis(1500)), "1s 500ms");
        assert_eq!(describe_wait(Duration::from_secs(3 * 3600)), "3 hours");
    }
}
