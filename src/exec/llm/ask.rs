//! The conversation with one model: ask, judge the answer, and decide
//! what to do with each failure: retry after a backoff (transient), re-ask
//! with feedback (invalid answer), or give up on this model (permanent).
//! Every call is a line in `usage.jsonl`, every failure one in
//! `failures.jsonl`. Waits are bounded by the model's `max_retry_wait`: a
//! server asking for a longer one loses the task to the fallback model.
//!
//! Calls are blocking ureq requests. Each runs on a short-lived thread of
//! its own while the task's pool thread waits on it, so an interrupt or the
//! task's deadline ends the wait at once even while a request is in flight
//! (what a stream had brought by then is kept, [`kept`](super::kept)).

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::call::{self, CallError, CallSpec};
use super::fault::{self, describe_wait};
use super::limits::{self, Abort};
use super::provider::{self, Message, Request};
use super::recording::{self, Replayed};
use super::tokens::{cost, Tokens};
use super::unreachable;
use super::verdict::Failure;
use super::{CallProgress, Llm, PromptResult, Stop};
use crate::model::judge;
use crate::model::models::ModelConfig;
use crate::model::prompt::{Format, PromptSpec};
use crate::store::ledger::{FailureLine, UsageLine};
use crate::store::{AttemptRecord, ErrorKind, Usage};

/// Attempts per model on transient errors (the first one included).
const TRANSIENT_ATTEMPTS: u32 = 5;

/// How long a call's own timeout outlasts the task's deadline it was cut
/// to (see `ask`): the deadline ends the call first.
const DEADLINE_GRACE: Duration = Duration::from_secs(2);
impl Llm<'_> {
    /// Asks one model until it answers acceptably or fails for good.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn ask(
        &self,
        task: &str,
        spec: &PromptSpec,
        conversation: &[Message],
        system: Option<&str>,
        m: usize,
        deadline: Option<(Instant, Duration)>,
        progress: &Arc<CallProgress>,
        attempt_no: &mut u32,
        on_attempt: &mut dyn FnMut(u32, &str),
        result: &mut PromptResult,
    ) -> std::result::Result<String, Stop> {
        let model = &self.models[m];
        // A secret in the prompt's text (an input a command wrote, an output
        // a judge scores) is sent to no server (its own gets it in a header).
        let mut messages: Vec<Message> = conversation
            .iter()
            .map(|msg| Message {
                role: msg.role,
                content: self.scrub(&msg.content),
            })
            .collect();
        let system = system.map(|s| self.scrub(s));
        let system = system.as_deref();
        let mut transient_failures = 0u32;
        // The failure being retried, while the task waits to try again:
        // what a deadline then cuts short.
        let mut retrying: Option<String> = None;
        let mut reasks = 0u32;
        let mut runaways = 0u32;
        let until = deadline.map(|d| d.0);
        // The key of the initial request: what a recorded answer answers.
        let initial = messages.clone();
        let plan = self.plan(model);
        let key = recording::request_key(model, plan.server, spec, &initial, system);
        if let Some(dir) = plan.lookup {
            let replayed = self.replay(
                task, spec, model, dir, &key, attempt_no, progress, on_attempt, result,
            );
            match replayed {
                Replayed::Answer(text) => {
                    if plan.cache && !spec.judge {
                        result.cached.push(recording::entry_path(dir, &key));
                    }
                    return Ok(text);
                }
                Replayed::Rejected(stop) if !plan.live => return Err(stop),
                Replayed::Miss if !plan.live => {
                    return Err(self.replay_miss(
                        task, spec, model, dir, &key, attempt_no, progress, on_attempt, result,
                    ))
                }
                // The response cache: ask the model.
                Replayed::Rejected(_) | Replayed::Miss => {}
            }
        }
        loop {
            let body = provider::wire(&Request {
                model,
                system,
                messages: &messages,
                json: spec.format == Format::Json,
                schema: spec.schema.as_deref(),
                max_tokens: spec.max_tokens,
            });
            let remaining = until.map(|d| d.saturating_duration_since(Instant::now()));
            let call_spec = CallSpec {
                provider: model.provider,
                url: provider::endpoint(model),
                headers: provider::headers(model, self.keys[m].as_deref()),
                body,
                stream: model.stream,
                // Cut to what is left of the task's own timeout, and a
                // little more: the task's deadline ends the call first and
                // says so (`the task's timeout (3s) expired`), never the
                // request's own timeout racing it (a `request timeout` the
                // user never set, then an attempt with nothing left).
                timeout: remaining.map_or(model.timeout, |r| {
                    r.saturating_add(DEADLINE_GRACE).min(model.timeout)
                }),
                idle_timeout: model.idle_timeout,
                max_answer_bytes: model.max_answer_bytes,
                max_tokens: provider::token_limit(spec.max_tokens, model),
                judge: spec.judge,
                schema: spec.schema.is_some(),
            };
            let mut waited = None;
            let acquired = self.gates[m].acquire(until, &self.interrupt, &mut |wait| {
                waited = Some(wait);
                set_queued(progress, &model.name, Some(wait));
            });
            if waited.is_some() {
                set_queued(progress, &model.name, None);
            }
            let permit = acquired.map_err(|a| match (a, waited) {
                (Abort::Interrupted, _) => Stop::Interrupted(None),
                (Abort::Deadline, Some(wait)) => Stop::Queued {
                    queued: limits::queued_for(&model.name, wait),
                    retrying: retrying.take(),
                },
                (Abort::Deadline, None) => match retrying.take() {
                    Some(last) => Stop::Waited(last),
                    None => Stop::Deadline(None),
                },
            })?;
            *attempt_no += 1;
            progress.begin(&model.name, *attempt_no);
            on_attempt(*attempt_no, &model.name);
            let started = Instant::now();
            let started_at = crate::clock::now_rfc3339();
            let ended = self.call_detached(call_spec, permit, progress, until);
            let pieces = progress.pieces.count();
            let stopped_by = match &ended {
                Ended::Done(_) => None,
                Ended::Interrupted => Some(Stop::Interrupted(None)),
                Ended::Deadline(_) => Some(Stop::Deadline(None)),
            };
            let outcome = match ended {
                Ended::Done(Ok(mut ok)) => {
                    if spec.format == Format::Json {
                        prefilled(&mut ok.answer.text, model.prefill.as_deref());
                    }
                    self.scrub_ok(&mut ok);
                    Ok(ok)
                }
                Ended::Done(Err(mut e)) => {
                    self.scrub_err(&mut e);
                    Err(e)
                }
                Ended::Interrupted => Err(CallError::new(
                    ErrorKind::Stopped,
                    format!("stopped while the model was answering ({pieces} piece(s) received)"),
                )),
                Ended::Deadline(so_far) => {
                    let mut e = fault::deadline_error(
                        model,
                        pieces,
                        progress,
                        deadline,
                        provider::token_limit(spec.max_tokens, model),
                        super::fault::Bounds::of(spec.judge, spec.schema.is_some()),
                    );
                    // What the stream brought before the cut is kept, as
                    // a stall's is.
                    if let Some((partial, usage)) = so_far {
                        e.response = Some(partial);
                        e.usage = usage;
                    }
                    self.scrub_err(&mut e);
                    Err(e)
                }
            };
            let duration_ms = started.elapsed().as_millis() as u64;

            let failure = self.verdict(&outcome, spec, model);
            let kept = self.keep_raw(task, model, &outcome);
            let tokens = Tokens::of(&outcome, pieces, &messages, system);
            let cost = cost(model, tokens.prompt, tokens.completion);
            let usage = Usage {
                prompt_tokens: tokens.prompt,
                completion_tokens: tokens.completion,
                total_tokens: tokens.prompt.saturating_add(tokens.completion),
                cost_usd: cost.unwrap_or(0.0),
                tokens_estimated: tokens.estimated,
                unpriced: cost.is_none(),
            };
            result.count_call(&usage, spec.judge);
            if outcome
                .as_ref()
                .map_or_else(|e| e.status.is_some(), |_| true)
            {
                self.unreachable[m].answered();
            }
            let error_id = match &failure {
                Failure::None(_) => None,
                _ => Some(uuid::Uuid::new_v4().to_string()),
            };
            let error_type = match &failure {
                Failure::None(_) => None,
                Failure::Call(e) => Some(e.kind),
                Failure::Answer(r) => Some(r.kind),
            };
            self.ledger.usage(&UsageLine {
                timestamp_utc: crate::clock::now_rfc3339(),
                task,
                model: &model.name,
                provider: model.provider.as_str(),
                attempt: *attempt_no,
                duration_ms,
                prompt_tokens: tokens.reached.then_some(tokens.prompt),
                completion_tokens: tokens.reached.then_some(tokens.completion),
                total_tokens: tokens
                    .reached
                    .then(|| tokens.prompt.saturating_add(tokens.completion)),
                tokens_estimated: tokens.estimated,
                cost_usd: cost,
                status: match error_type {
                    None => "ok",
                    Some(ErrorKind::Stopped) => "stopped",
                    Some(_) => "error",
                },
                error_id: error_id.clone(),
                replayed: false,
                judge: spec.judge,
                score: match &failure {
                    Failure::None(text) if spec.judge => Some(judge::read_answer(text).0),
                    _ => None,
                },
            });
            result.attempts.push(AttemptRecord {
                no_response: !kept,
                ..AttemptRecord::call(
                    &model.name,
                    *attempt_no,
                    started_at,
                    duration_ms,
                    error_type.map_or("ok", ErrorKind::as_str),
                    error_id.clone(),
                )
            });
            let error_id = match failure {
                Failure::None(text) => {
                    if let (Some(dir), Ok(ok)) = (plan.store, &outcome) {
                        let tokens = (tokens.prompt, tokens.completion);
                        self.record(
                            dir, &key, task, spec, model, &initial, system, &ok.answer, tokens,
                        );
                        if plan.cache && !spec.judge {
                            result.cached.push(recording::entry_path(dir, &key));
                        }
                    }
                    return Ok(text);
                }
                _ => error_id.unwrap_or_default(),
            };
            match failure {
                Failure::None(_) => unreachable!("returned above"),
                Failure::Answer(rejection) => {
                    let retry = reasks < spec.retries;
                    self.record_failure(
                        task,
                        model,
                        spec.judge,
                        *attempt_no,
                        rejection.kind,
                        &rejection.message,
                        None,
                        rejection.missing_fields.clone(),
                        rejection.invalid_fields.clone(),
                        outcome
                            .as_ref()
                            .map(|ok| provider::truncate(&ok.answer.text, 2048).to_string())
                            .unwrap_or_default(),
                        &error_id,
                        retry,
                    );
                    if !retry {
                        return Err(Stop::Failed {
                            kind: rejection.kind,
                            message: format!(
                                "{}: {}{}",
                                rejection.kind.as_str(),
                                rejection.message,
                                fault::after_reasks(reasks)
                            ),
                            error_id,
                        });
                    }
                    reasks += 1;
                    let bad = outcome.map(|ok| ok.answer.text).unwrap_or_default();
                    messages.push(Message {
                        role: "assistant",
                        content: bad,
                    });
                    messages.push(Message {
                        role: "user",
                        content: rejection.feedback,
                    });
                }
                Failure::Call(mut e) => {
                    // A wait longer than the model allows is no retry: the
                    // fallback model may answer now.
                    let too_long = e
                        .retry_after
                        .filter(|w| e.kind.transient() && *w > model.max_retry_wait);
                    if let Some(wait) = too_long {
                        e.message.push_str(&format!(
                            "; the server asked to wait {} (Retry-After), more than max_retry_wait ({})",
                            describe_wait(wait),
                            describe_wait(model.max_retry_wait)
                        ));
                    }
                    // A runaway generation may end at another temperature:
                    // once, and only when the model samples.
                    let runaway_retry = e.kind == ErrorKind::Runaway
                        && runaways == 0
                        && model.temperature.is_none_or(|t| t > 0.0);
                    // Found unreachable by a task's every attempt: not
                    // retried (`unreachable`).
                    let found_by = (e.kind == ErrorKind::Connection
                        && transient_failures + 1 < TRANSIENT_ATTEMPTS)
                        .then(|| self.unreachable[m].found_by())
                        .flatten();
                    let retry = stopped_by.is_none()
                        && (runaway_retry
                            || (e.kind.transient()
                                && too_long.is_none()
                                && found_by.is_none()
                                && transient_failures + 1 < TRANSIENT_ATTEMPTS));
                    self.record_failure(
                        task,
                        model,
                        spec.judge,
                        *attempt_no,
                        e.kind,
                        &e.message,
                        e.status,
                        Vec::new(),
                        Vec::new(),
                        e.raw.clone(),
                        &error_id,
                        retry,
                    );
                    if let Some(stop) = stopped_by {
                        return Err(match stop {
                            Stop::Interrupted(_) => Stop::Interrupted(Some(error_id)),
                            _ => Stop::Deadline(Some((e.kind, e.message, error_id, spec.judge))),
                        });
                    }
                    if !retry {
                        let mut message = format!("{}: {}", e.kind.as_str(), e.message);
                        match &found_by {
                            Some(by) => message
                                .push_str(&unreachable::not_retried(transient_failures + 1, by)),
                            None if e.kind.transient() && too_long.is_none() => {
                                message.push_str(&format!(" ({TRANSIENT_ATTEMPTS} attempts)"));
                                if e.kind == ErrorKind::Connection {
                                    self.unreachable[m].found(task);
                                }
                            }
                            None => {}
                        }
                        if e.kind == ErrorKind::Runaway && runaways > 0 {
                            message.push_str(" (asked twice)");
                        }
                        match e.kind {
                            ErrorKind::NotFound => {
                                message.push_str(&self.not_found(model, m, e.status))
                            }
                            _ => message.push_str(&fault::advice(&e, model)),
                        }
                        return Err(Stop::Failed {
                            kind: e.kind,
                            message,
                            error_id,
                        });
                    }
                    if e.kind == ErrorKind::Runaway {
                        runaways += 1;
                        continue;
                    }
                    let pause = e
                        .retry_after
                        .unwrap_or_else(|| self.backoff.delay(transient_failures))
                        .min(model.max_retry_wait);
                    transient_failures += 1;
                    let resume = Instant::now()
                        .checked_add(pause)
                        .unwrap_or_else(Instant::now);
                    // `status` shows the task waiting, and until when.
                    set_waiting(progress, std::time::SystemTime::now().checked_add(pause));
                    let slept = limits::sleep_until(resume, until, &self.interrupt);
                    set_waiting(progress, None);
                    let mut last = format!("{}: {}", e.kind.as_str(), e.message);
                    last.push_str(&fault::retrying_advice(&e, model));
                    slept.map_err(|a| match a {
                        Abort::Interrupted => Stop::Interrupted(None),
                        Abort::Deadline => Stop::Waited(last.clone()),
                    })?;
                    retrying = Some(last);
                }
            }
        }
    }

    /// Appends the line of a failed call to `failures.jsonl`; `judge`:
    /// the call was the task's judge's.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn record_failure(
        &self,
        task: &str,
        model: &ModelConfig,
        judge: bool,
        attempt: u32,
        kind: ErrorKind,
        message: &str,
        status: Option<u16>,
        missing_fields: Vec<String>,
        invalid_fields: Vec<String>,
        raw: String,
        error_id: &str,
        retried: bool,
    ) {
        self.ledger.failure(&FailureLine {
            model: Some(&model.name),
            attempt,
            recoverable: kind.recoverable(),
            retried,
            http_status: status,
            missing_fields,
            invalid_fields,
            raw_error: (!raw.is_empty()).then(|| provider::truncate(&raw, 2048).to_string()),
            judge,
            ..FailureLine::new(task, kind, message, error_id, self.run_dir)
        });
    }

    /// Runs the call on a thread of its own and waits for it, giving up at
    /// once on an interrupt or the task's deadline.
    fn call_detached(
        &self,
        spec: CallSpec,
        permit: limits::Permit,
        progress: &Arc<CallProgress>,
        until: Option<Instant>,
    ) -> Ended {
        let (tx, rx) = mpsc::channel();
        let agent = self.agent.clone();
        let progress_for_call = Arc::clone(progress);
        let so_far = Arc::new(call::SoFar::default());
        let so_far_for_call = Arc::clone(&so_far);
        let spawned = std::thread::Builder::new()
            .name("planexe-call".into())
            .spawn(move || {
                let result = call::call(&agent, &spec, &progress_for_call.pieces, &so_far_for_call);
                drop(permit);
                let _ = tx.send(result);
            });
        if let Err(e) = spawned {
            return Ended::Done(Err(CallError::new(
                ErrorKind::Connection,
                format!("cannot start a thread: {e}"),
            )));
        }
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(result) => return Ended::Done(result),
                Err(RecvTimeoutError::Timeout) => {
                    if self.interrupt.requested() {
                        return Ended::Interrupted;
                    }
                    if until.is_some_and(|d| Instant::now() >= d) {
                        return Ended::Deadline(so_far.given_up());
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Ended::Done(Err(CallError::new(
                        ErrorKind::BadResponse,
                        "the call ended without a result",
                    )))
                }
            }
        }
    }
}

/// How a call in flight ended: with a result, or given up on (at the
/// task's deadline, with what its stream had brought, if one began).
enum Ended {
    Done(std::result::Result<call::CallOk, CallError>),
    Interrupted,
    Deadline(Option<(Box<call::Partial>, provider::Usage)>),
}

/// Says (for `status`) that the task waits to retry until `until`, or no
/// longer waits.
fn set_waiting(progress: &CallProgress, until: Option<std::time::SystemTime>) {
    if let Ok(mut waiting) = progress.waiting_until.lock() {
        *waiting = until;
    }
}

/// Says (for `status`) that the task waits for `model`'s limits before
/// its next call, or no longer waits.
fn set_queued(progress: &CallProgress, model: &str, wait: Option<limits::Wait>) {
    if let Ok(mut queued) = progress.queued.lock() {
        *queued = wait.map(|wait| limits::Queued {
            model: model.to_string(),
            since: std::time::SystemTime::now(),
            wait,
        });
    }
}

/// The answer to a prefilled turn is the prefill and what the model wrote
/// after it. Anthropic returns only the continuation; some servers
/// (llama.cpp) return the prefill too, so it is added only when missing.
fn prefilled(text: &mut String, prefill: Option<&str>) {
    if let Some(p) = prefill {
        if !text.trim_start().starts_with(p.trim()) {
            text.insert_str(0, p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefill_starts_the_answer_once() {
        let mut text = "\"a\": 1}".to_string();
        prefilled(&mut text, Some("{"));
        assert_eq!(text, "{\"a\": 1}");
        prefilled(&mut text, Some("{"));
        assert_eq!(text, "{\"a\": 1}");
        prefilled(&mut text, None);
        assert_eq!(text, "{\"a\": 1}");
    }
}
