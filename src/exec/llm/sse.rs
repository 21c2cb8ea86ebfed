//! Reading a server-sent event stream off the wire into an answer, piece
//! by piece: every line and event bounded as it is read, the pieces counted
//! as they arrive (for the progress line, `status` and the tokens of a call
//! that never finishes), and a stream still sending when its request
//! timeout expires told apart as a runaway generation.
//!
//! A line is read as bytes and decoded whole, so a character split across
//! reads (as TCP may split it) decodes as sent; a line that is not UTF-8
//! is a `bad_response` (the server sent what no stream may hold), never a
//! broken connection.

use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::fault::{
    too_large, transport_io_error, wire_limit, CallError, CallOk, CallSpec, Partial, Size,
};
use super::provider::{self, Answer, Stream};
use super::reported::reported_kind;
use super::CallProgress;
use crate::store::ErrorKind;

/// The pieces of an answer as they arrive: how many, and when the last
/// came. Shared with whoever shows the call's progress.
#[derive(Debug, Default)]
pub struct Pieces {
    count: AtomicU64,
    /// Milliseconds since the Unix epoch; 0 before the first piece.
    last_ms: AtomicU64,
    /// The same, of the first piece: a generation's rate is measured from
    /// it, without the time the server took to read the prompt.
    first_ms: AtomicU64,
}

impl Pieces {
    /// Counts `n` more pieces, arrived now.
    pub fn add(&self, n: u64) {
        if n == 0 {
            return;
        }
        self.count.fetch_add(n, Ordering::Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.last_ms.store(now.max(1), Ordering::Relaxed);
        let _ = self
            .first_ms
            .compare_exchange(0, now.max(1), Ordering::Relaxed, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// When the last piece arrived.
    pub fn last(&self) -> Option<std::time::SystemTime> {
        at_ms(self.last_ms.load(Ordering::Relaxed))
    }

    /// How long ago the first piece arrived.
    pub fn first_ago(&self) -> Option<Duration> {
        at_ms(self.first_ms.load(Ordering::Relaxed)).map(|t| t.elapsed().unwrap_or_default())
    }

    /// Starts counting a new call.
    pub fn reset(&self) {
        self.count.store(0, Ordering::Relaxed);
        self.last_ms.store(0, Ordering::Relaxed);
        self.first_ms.store(0, Ordering::Relaxed);
    }
}

/// A stream as far as it has come, shared by the thread that reads it and
/// the task that waits on the call: a call the task's own timeout gives up
/// on (its thread left to end by itself) keeps what came, as one that
/// stalled keeps it. Locked for one event at a time, never while a read
/// waits on the wire.
#[derive(Debug, Default)]
pub struct SoFar(Mutex<Option<Stream>>);

impl SoFar {
    /// Runs `f` on the stream, begun when it was not.
    fn with<R>(&self, f: impl FnOnce(&mut Stream) -> R) -> R {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        f(slot.get_or_insert_with(Stream::default))
    }

    /// The stream, taken out; none when no stream began (nothing came
    /// back, or it already ended).
    fn take(&self) -> Option<Stream> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// What came of a stream its call was given up on, kept as a failed
    /// stream's is, and the usage it reported; none when no stream began.
    pub fn given_up(&self) -> Option<(Box<Partial>, provider::Usage)> {
        let mut stream = self.take()?;
        Some((partial(&mut stream), stream.usage))
    }
}

/// A time kept as milliseconds since the Unix epoch, 0 for none.
fn at_ms(ms: u64) -> Option<std::time::SystemTime> {
    match ms {
        0 => None,
        ms => std::time::UNIX_EPOCH.checked_add(Duration::from_millis(ms)),
    }
}

/// Reads a server-sent event stream to its end. A failure carries what
/// the stream reported of its usage before it; a request timeout that
/// expires while pieces still arrive is a runaway generation, not a
/// server that never answered.
/// `status` is the response's (2xx) status, kept with a `bad_response`.
/// The stream is read into `so_far`, and taken out of it at its end.
pub(super) fn read_stream(
    reader: impl std::io::Read,
    status: u16,
    spec: &CallSpec,
    pieces: &Pieces,
    so_far: &SoFar,
) -> Result<CallOk, CallError> {
    let started = std::time::Instant::now();
    // Begun: what comes from now on is a stream's, its first event or not.
    so_far.with(|_| ());
    let read = read_events(reader, spec, pieces, so_far);
    // Given up on meanwhile (the task's timeout): whoever gave up on it
    // has what came, and nobody waits for this.
    let mut stream = so_far.take().unwrap_or_default();
    read.map_err(|mut e| {
        e.usage = stream.usage;
        e.response = Some(partial(&mut stream));
        if e.kind == ErrorKind::BadResponse {
            e.status = Some(status);
        }
        if e.kind == ErrorKind::Timeout && stream.deltas > 0 {
            e.kind = ErrorKind::Runaway;
            e.message = runaway_message(spec, stream.deltas, started.elapsed(), pieces.first_ago());
        }
        e
    })?;
    let Some(finish) = stream.finish.clone() else {
        return Err(CallError {
            usage: stream.usage,
            response: Some(partial(&mut stream)),
            ..CallError::new(
                ErrorKind::BrokenStream,
                format!(
                    "the stream ended without the model finishing, after {} piece(s)",
                    stream.deltas
                ),
            )
        });
    };
    let raw = kept(&mut stream);
    Ok(CallOk {
        answer: Answer {
            text: stream.text,
            reasoning: stream.reasoning,
            finish,
            finish_note: None,
            usage: stream.usage,
        },
        raw,
    })
}

/// What `.planexe/raw/` keeps of a stream: its first events and its last
/// ones (see [`Stream::raw_events`]), and the reasoning it carried.
fn kept(stream: &mut Stream) -> serde_json::Value {
    let mut raw = serde_json::json!({ "stream": true, "events": stream.raw_events() });
    if stream.omitted > 0 {
        raw["omitted_events"] = serde_json::json!(stream.omitted);
    }
    if !stream.reasoning.is_empty() {
        raw["reasoning"] = serde_json::json!(stream.reasoning);
    }
    raw
}

/// What came of a stream that failed, kept as a whole one is.
fn partial(stream: &mut Stream) -> Box<Partial> {
    Box::new(Partial {
        raw: kept(stream),
        text: std::mem::take(&mut stream.text),
        reasoning: std::mem::take(&mut stream.reasoning),
    })
}

/// What a runaway generation was and what to change.
fn runaway_message(
    spec: &CallSpec,
    pieces: u64,
    elapsed: Duration,
    first_ago: Option<Duration>,
) -> String {
    super::fault::still_generating(
        &format!(
            "the request timeout ({})",
            super::fault::readable(spec.timeout)
        ),
        "the model's timeout",
        pieces,
        Some(elapsed),
        first_ago,
        spec.max_tokens,
        spec.bounds(),
    )
}

/// A line of the stream that is not UTF-8: a `bad_response`, with the
/// line as it came (its invalid bytes replaced) as what the server said.
fn not_utf8(line: &[u8], valid: usize, received: u64, deltas: u64) -> CallError {
    let at = received - line.len() as u64 + valid as u64;
    let lossy = String::from_utf8_lossy(line);
    CallError {
        raw: provider::truncate(&lossy, 2048).to_string(),
        ..CallError::new(
            ErrorKind::BadResponse,
            format!(
                "the stream is not UTF-8 text: an invalid byte at offset {at} of the stream, after {deltas} piece(s)"
            ),
        )
    }
}

/// Feeds the events of a stream into `so_far` until it ends.
fn read_events(
    reader: impl std::io::Read,
    spec: &CallSpec,
    pieces: &Pieces,
    so_far: &SoFar,
) -> Result<(), CallError> {
    let mut reader = BufReader::new(reader);
    let mut event: Option<String> = None;
    let mut data = String::new();
    let mut line = Vec::new();
    let limit = wire_limit(spec.max_answer_bytes);
    let mut received = 0u64;
    loop {
        line.clear();
        // One byte past the limit tells a line that is too long from one
        // that is exactly as long as allowed. Bytes, decoded once the line
        // is whole: the limit may cut a character, and a read may end
        // inside one.
        let n = match (&mut reader).take(limit + 1).read_until(b'\n', &mut line) {
            Ok(n) if n as u64 > limit || data.len() as u64 + n as u64 > limit => {
                return Err(too_large(
                    spec,
                    Size::Wire,
                    &format!(
                        "one event of the stream passed {limit} bytes, after {} bytes of answer",
                        so_far.with(|stream| stream.text.len())
                    ),
                    "; the rest of the stream was not read",
                ))
            }
            Ok(n) => n,
            Err(e) => {
                let broken = transport_io_error(&e, true, spec);
                let deltas = so_far.with(|stream| stream.deltas);
                return Err(CallError {
                    message: format!("{} after {deltas} piece(s)", broken.message),
                    ..broken
                });
            }
        };
        received = received.saturating_add(n as u64);
        let line = match std::str::from_utf8(&line) {
            Ok(line) => line,
            // The stream's last bytes, cut inside a character: the
            // connection broke, the server sent nothing wrong.
            Err(e) if e.error_len().is_none() && !line.ends_with(b"\n") => {
                return Err(CallError::new(
                    ErrorKind::BrokenStream,
                    format!(
                        "the stream ended inside a character, after {} piece(s)",
                        so_far.with(|stream| stream.deltas)
                    ),
                ))
            }
            Err(e) => {
                let deltas = so_far.with(|stream| stream.deltas);
                return Err(not_utf8(&line, e.valid_up_to(), received, deltas));
            }
        };
        let trimmed = line.trim_end_matches(['\r', '\n']);
        if n == 0 || trimmed.is_empty() {
            let ended = so_far.with(|stream| {
                // An event's name is its own, as its data is.
                let event = if data.is_empty() { None } else { event.take() };
                event_into(stream, spec, pieces, event, &data, n, received)
            })?;
            data.clear();
            if n == 0 || ended {
                break;
            }
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
        } else if let Some(rest) = trimmed.strip_prefix("event:") {
            event = Some(rest.trim().to_string());
        }
        // `id:`, `retry:` and `:` comments carry nothing we need.
    }
    Ok(())
}

/// Feeds the event whose lines were read (`event`, `data`) into `stream`,
/// when it has data, and says whether the stream has ended. `n` is the
/// length of the line that ended the event (0: the connection closed),
/// `received` the bytes of the stream so far.
fn event_into(
    stream: &mut Stream,
    spec: &CallSpec,
    pieces: &Pieces,
    event: Option<String>,
    data: &str,
    n: usize,
    received: u64,
) -> Result<bool, CallError> {
    if !data.is_empty() {
        let before = stream.deltas;
        stream
            .feed(spec.provider, event.as_deref(), data)
            .map_err(|e| {
                let kind = match reported_kind(e.kind.as_deref(), None, &e.message) {
                    // The connection closed inside the stream's
                    // last event (no blank line ended it): a
                    // broken stream, not a server that sent the
                    // wrong thing.
                    ErrorKind::BadResponse if n == 0 => ErrorKind::BrokenStream,
                    kind => kind,
                };
                let message = if kind == ErrorKind::BrokenStream {
                    format!(
                        "the stream ended inside an event, after {} piece(s) ({})",
                        stream.deltas, e.message
                    )
                } else if e.reported {
                    format!("the stream reported an error: {}", e.message)
                } else {
                    format!("the stream sent an event of the wrong shape: {}", e.message)
                };
                CallError {
                    raw: provider::truncate(data, 2048).to_string(),
                    ..CallError::new(kind, message)
                }
            })?;
        pieces.add(stream.deltas - before);
        if stream.text.len() as u64 > spec.max_answer_bytes {
            return Err(too_large(
                spec,
                Size::Text,
                &format!(
                    "the answer reached {} bytes after {} piece(s) ({received} bytes received)",
                    stream.text.len(),
                    stream.deltas
                ),
                "; the rest of the stream was not read",
            ));
        }
        if stream.reasoning.len() as u64 > spec.max_answer_bytes {
            return Err(too_large(
                spec,
                Size::Text,
                &format!(
                    "the reasoning reached {} bytes after {} piece(s) ({received} bytes received)",
                    stream.reasoning.len(),
                    stream.deltas
                ),
                "; the rest of the stream was not read",
            ));
        }
    }
    Ok(stream.ended)
}

/// The call in flight, as its pieces are counted here.
impl CallProgress {
    /// A call to `model`, the task's `attempt`th, starts now.
    pub fn begin(&self, model: &str, attempt: u32) {
        if let Ok(mut name) = self.model.lock() {
            name.clear();
            name.push_str(model);
        }
        if let Ok(mut s) = self.started.lock() {
            *s = std::time::Instant::now();
        }
        if let Ok(mut s) = self.started_at.lock() {
            *s = Some(std::time::SystemTime::now());
        }
        self.attempt.store(attempt, Ordering::Relaxed);
        self.pieces.reset();
    }
}
