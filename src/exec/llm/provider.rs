//! The wire formats: OpenAI-compatible `/chat/completions` and Anthropic
//! `/messages`, as whole responses and server-sent event streams (their
//! requests: `request.rs`). Pure functions over JSON; no I/O here.
//!
//! Reasoning a server returns apart from the answer is read into
//! [`Answer::reasoning`] and never into the text: `reasoning_content` (vLLM,
//! llama.cpp, DeepSeek) or `reasoning` (Ollama, LM Studio) in an OpenAI
//! message or `delta`, and Anthropic `thinking` blocks and `thinking_delta`
//! events. A response with reasoning and no content has an empty answer.

use std::collections::VecDeque;

use serde_json::Value;

use super::finish::finish_of;
pub use super::request::{body, endpoint, headers, token_limit, wire, Message, Request};

use crate::model::models::Provider;
use crate::store::untrusted::printable;

pub use super::finish::Finish;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
}

/// A complete answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub text: String,
    /// What the server returned as the model's reasoning, apart from the
    /// text: kept for `.planexe/raw/`, never taken for the answer.
    pub reasoning: String,
    pub finish: Finish,
    /// What planexe made of a whole response that names no reason for its
    /// end ([`unnamed_finish`]), kept beside it in `.planexe/raw/`.
    pub finish_note: Option<String>,
    pub usage: Usage,
}

/// What a JSON value is, for a message about the wrong one.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The field that names how an answer ended, in `provider`'s responses.
pub fn finish_field(provider: Provider) -> &'static str {
    match provider {
        Provider::OpenAi => "finish_reason",
        Provider::Anthropic => "stop_reason",
    }
}

/// Parses a whole (non-streamed) response body. `max_tokens` is the
/// limit the request sent, if any: what a response that names no reason
/// for its end is measured against ([`unnamed_finish`]).
pub fn parse_response(
    provider: Provider,
    body: &Value,
    max_tokens: Option<u64>,
) -> Result<Answer, String> {
    match provider {
        Provider::OpenAi => {
            let choice = body
                .get("choices")
                .and_then(|c| c.get(0))
                .ok_or("the response has no `choices[0]`")?;
            // `null` (no text: a refusal, a tool call) is an empty answer;
            // any other value that is not a string is the wrong shape.
            let text = match choice.pointer("/message/content") {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(text)) => text.clone(),
                Some(other) => {
                    return Err(format!(
                        "the response's `choices[0].message.content` is {}, not text",
                        json_kind(other)
                    ))
                }
            };
            let reasoning = openai_reasoning(choice.get("message")).to_string();
            let usage = Usage {
                prompt_tokens: body.pointer("/usage/prompt_tokens").and_then(Value::as_u64),
                completion_tokens: body
                    .pointer("/usage/completion_tokens")
                    .and_then(Value::as_u64),
            };
            let (finish, finish_note) = named_finish(
                choice.get("finish_reason"),
                "choices[0].finish_reason",
                usage,
                max_tokens,
            )?;
            Ok(Answer {
                text,
                reasoning,
                finish,
                finish_note,
                usage,
            })
        }
        Provider::Anthropic => {
            let content = body
                .get("content")
                .and_then(Value::as_array)
                .ok_or("the response has no `content`")?;
            let text: String = content
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect();
            let reasoning: String = content
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) == Some("thinking"))
                .filter_map(|b| b.get("thinking").and_then(Value::as_str))
                .collect();
            let usage = Usage {
                prompt_tokens: body.pointer("/usage/input_tokens").and_then(Value::as_u64),
                completion_tokens: body.pointer("/usage/output_tokens").and_then(Value::as_u64),
            };
            let (finish, finish_note) =
                named_finish(body.get("stop_reason"), "stop_reason", usage, max_tokens)?;
            Ok(Answer {
                text,
                reasoning,
                finish,
                finish_note,
                usage,
            })
        }
    }
}

/// How a whole response ended, from its reason `field` (at `path`): the
/// reason named, sorted ([`finish_of`]); or, when it names none (the field
/// absent or `null`), [`unnamed_finish`] and a note saying so. A reason
/// that is neither text nor `null` is the wrong shape.
fn named_finish(
    field: Option<&Value>,
    path: &str,
    usage: Usage,
    max_tokens: Option<u64>,
) -> Result<(Finish, Option<String>), String> {
    match field {
        Some(Value::String(reason)) => Ok((finish_of(reason), None)),
        None | Some(Value::Null) => Ok(unnamed_finish(path, usage, max_tokens)),
        Some(other) => Err(format!(
            "the response's `{path}` is {}, not text",
            json_kind(other)
        )),
    }
}

/// A whole response that names no reason for its end (some servers and
/// proxies leave `finish_reason` out, or send `null`). Unlike a stream
/// that stops without one, nothing was cut: the body arrived whole and
/// parsed. So the model finished, unless its own token count says the
/// answer reached the `max_tokens` the request sent: then the limit cut it,
/// as `length` would have said. The note says which, for `.planexe/raw/`.
pub fn unnamed_finish(
    path: &str,
    usage: Usage,
    max_tokens: Option<u64>,
) -> (Finish, Option<String>) {
    match (usage.completion_tokens, max_tokens) {
        (Some(used), Some(limit)) if used >= limit => (
            Finish::Length,
            Some(format!(
                "the response names no `{path}`; its {used} completion token(s) reached max_tokens ({limit}): taken as cut at the token limit"
            )),
        ),
        _ => (
            Finish::Stop,
            Some(format!(
                "the response names no `{path}`; a whole response is taken as finished"
            )),
        ),
    }
}

/// The reasoning in an OpenAI-compatible message or delta:
/// `reasoning_content` (vLLM, llama.cpp, DeepSeek) or `reasoning` (Ollama,
/// LM Studio).
fn openai_reasoning(message: Option<&Value>) -> &str {
    let field = |name: &str| {
        message
            .and_then(|m| m.get(name))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    field("reasoning_content")
        .or_else(|| field("reasoning"))
        .unwrap_or("")
}

/// The message and type of an error body, in either provider's shape,
/// made [`printable`]: they go into messages shown on a terminal.
pub fn error_details(body: &str) -> (Option<String>, String) {
    match serde_json::from_str::<Value>(body) {
        Ok(value) => error_details_of(&value, body),
        Err(_) => (None, printable(body.trim()).into_owned()),
    }
}

/// [`error_details`] of a body already parsed as `value`.
pub fn error_details_of(value: &Value, body: &str) -> (Option<String>, String) {
    let error = value.get("error").unwrap_or(value);
    // Ollama and LM Studio: `{"error": "model 'x' not found"}`.
    if let Value::String(message) = error {
        return (None, printable(message).into_owned());
    }
    let kind = error
        .get("type")
        .and_then(Value::as_str)
        .or_else(|| error.get("code").and_then(Value::as_str))
        .map(|k| printable(k).into_owned());
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or(body.trim());
    (kind, printable(message).into_owned())
}

/// Whether an error body says the prompt did not fit the context window.
pub fn is_context_overflow(body: &str) -> bool {
    let lower = body.to_ascii_lowercase();
    [
        "context_length_exceeded",
        "exceed_context_size",
        "maximum context length",
        "context window",
        "prompt is too long",
        "too many tokens",
        "exceeds the context",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
}

/// How much of a stream's event data is kept for `.planexe/raw/` from its
/// start; past it, only the last [`RAW_TAIL_EVENTS`] events (each of at
/// most [`RAW_TAIL_EVENT_BYTES`]) are kept, so a long answer streamed in
/// thousands of pieces costs bounded memory.
const RAW_EVENTS_BYTES: usize = 256 * 1024;
const RAW_TAIL_EVENTS: usize = 16;
const RAW_TAIL_EVENT_BYTES: usize = 16 * 1024;

/// Accumulates a server-sent event stream into an answer.
#[derive(Debug, Default)]
pub struct Stream {
    pub text: String,
    /// Reasoning pieces, apart from the text (see [`Answer::reasoning`]).
    pub reasoning: String,
    pub finish: Option<Finish>,
    pub usage: Usage,
    /// Content and reasoning deltas seen (close to tokens for most
    /// servers).
    pub deltas: u64,
    /// The stream's own end marker arrived (`[DONE]`, `message_stop`).
    pub ended: bool,
    /// The first events' data, kept for `.planexe/raw/` (see
    /// [`Stream::raw_events`]).
    events: Vec<Value>,
    events_bytes: usize,
    /// The last events, once the first have used their budget.
    tail: VecDeque<Value>,
    /// Events kept nowhere (between the first and the last).
    pub omitted: u64,
}

/// An error the stream itself reported.
#[derive(Debug)]
pub struct StreamError {
    pub kind: Option<String>,
    pub message: String,
    /// The server said this went wrong (an error event), rather than
    /// sending an event of the wrong shape.
    pub reported: bool,
}

impl Stream {
    /// Feeds one event (`event:` name, if any, and its `data:`).
    pub fn feed(
        &mut self,
        provider: Provider,
        event: Option<&str>,
        data: &str,
    ) -> Result<(), StreamError> {
        if data.trim() == "[DONE]" {
            self.ended = true;
            return Ok(());
        }
        let malformed = |message: String| StreamError {
            kind: None,
            message: format!("{message}: {}", printable(truncate(data, 200))),
            reported: false,
        };
        let value: Value = serde_json::from_str(data)
            .map_err(|e| malformed(format!("an event is not JSON ({e})")))?;
        let kind = event.map(str::to_string).or_else(|| {
            value
                .get("type")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        if kind.as_deref() == Some("error") || value.get("error").is_some_and(|e| !e.is_null()) {
            let (kind, message) = error_details(data);
            self.keep(value, data.len());
            return Err(StreamError {
                kind,
                message,
                reported: true,
            });
        }
        match provider {
            Provider::OpenAi => {
                if let Some(choice) = value.get("choices").and_then(|c| c.get(0)) {
                    match choice.pointer("/delta/content") {
                        None | Some(Value::Null | Value::String(_)) => {}
                        Some(other) => {
                            return Err(malformed(format!(
                                "an event's `choices[0].delta.content` is {}, not text",
                                json_kind(other)
                            )))
                        }
                    }
                    if let Some(piece) = choice.pointer("/delta/content").and_then(Value::as_str) {
                        if !piece.is_empty() {
                            self.text.push_str(piece);
                            self.deltas += 1;
                        }
                    }
                    let piece = openai_reasoning(choice.get("delta"));
                    if !piece.is_empty() {
                        self.reasoning.push_str(piece);
                        self.deltas += 1;
                    }
                    // An empty reason (some servers send one in every
                    // event) never hides the one that came before it.
                    let reason = choice.get("finish_reason").and_then(Value::as_str);
                    if let Some(r) = reason.filter(|r| !r.is_empty() || self.finish.is_none()) {
                        self.finish = Some(finish_of(r));
                    }
                }
                if let Some(usage) = value.get("usage").filter(|u| !u.is_null()) {
                    self.usage.prompt_tokens = usage.get("prompt_tokens").and_then(Value::as_u64);
                    self.usage.completion_tokens =
                        usage.get("completion_tokens").and_then(Value::as_u64);
                }
            }
            Provider::Anthropic => match kind.as_deref() {
                Some("message_start") => {
                    self.usage.prompt_tokens = value
                        .pointer("/message/usage/input_tokens")
                        .and_then(Value::as_u64);
                }
                Some("content_block_delta") => {
                    if let Some(piece) = value.pointer("/delta/text").and_then(Value::as_str) {
                        self.text.push_str(piece);
                        self.deltas += 1;
                    } else if value.pointer("/delta/type").and_then(Value::as_str)
                        == Some("thinking_delta")
                    {
                        if let Some(piece) =
                            value.pointer("/delta/thinking").and_then(Value::as_str)
                        {
                            self.reasoning.push_str(piece);
                            self.deltas += 1;
                        }
                    }
                }
                Some("message_delta") => {
                    if let Some(r) = value.pointer("/delta/stop_reason").and_then(Value::as_str) {
                        self.finish = Some(finish_of(r));
                    }
                    if let Some(n) = value
                        .pointer("/usage/output_tokens")
                        .and_then(Value::as_u64)
                    {
                        self.usage.completion_tokens = Some(n);
                    }
                    if let Some(n) = value.pointer("/usage/input_tokens").and_then(Value::as_u64) {
                        self.usage.prompt_tokens = Some(n);
                    }
                }
                Some("message_stop") => self.ended = true,
                _ => {}
            },
        }
        self.keep(value, data.len());
        Ok(())
    }

    fn keep(&mut self, value: Value, size: usize) {
        if self.tail.is_empty() && self.events_bytes + size <= RAW_EVENTS_BYTES {
            self.events.push(value);
            self.events_bytes += size;
            return;
        }
        if size > RAW_TAIL_EVENT_BYTES {
            self.omitted += 1;
            return;
        }
        self.tail.push_back(value);
        if self.tail.len() > RAW_TAIL_EVENTS {
            self.tail.pop_front();
            self.omitted += 1;
        }
    }

    /// The events kept for `.planexe/raw/`: the first ones, then the last
    /// ones; [`Stream::omitted`] counts those in between.
    pub fn raw_events(&mut self) -> Vec<Value> {
        let mut events = std::mem::take(&mut self.events);
        events.extend(self.tail.drain(..));
        events
    }
}

pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
#[path = "provider_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "provider_reasoning_tests.rs"]
mod reasoning_tests;
