//! Prompt tasks: render the template, ask a model, judge the answer, and
//! decide what to do with each failure: retry the same model after a
//! backoff (transient), re-ask it with feedback (invalid answer), or move on
//! to the next fallback model (permanent). Every HTTP call is recorded in
//! `usage.jsonl`, every failed attempt in `failures.jsonl`.
//!
//! Calls are blocking ureq requests. Each runs on a short-lived thread of
//! its own while the task's pool thread waits on it, so an interrupt or the
//! task's deadline ends the wait at once even while a request is in flight.

pub mod answer;
pub mod call;
pub mod config;
pub mod ledger;
pub mod limits;
pub mod provider;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::graph::{Action, Graph};
use crate::interrupt::Interrupt;
use call::{CallError, CallSpec, ErrorType};
use config::{Format, ModelConfig, PromptSpec};
use ledger::{FailureLine, Ledger, UsageLine};
use limits::{Abort, Gate};
use provider::{Message, Request};

/// Attempts per model on transient errors (the first one included).
const TRANSIENT_ATTEMPTS: u32 = 5;

/// Token counts and cost of a task, summed over its calls.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub cost_usd: f64,
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
}

/// How a prompt task failed.
#[derive(Debug, Clone)]
pub struct PromptFailure {
    pub kind: String,
    pub message: String,
    pub error_id: Option<String>,
    pub stopped: bool,
}

/// The result of a prompt task.
#[derive(Debug)]
pub struct PromptResult {
    pub answer: std::result::Result<String, PromptFailure>,
    /// The model that answered (or was asked last).
    pub model: Option<String>,
    pub attempts: Vec<AttemptRecord>,
    pub usage: Usage,
}

/// Live progress of a task's current call, for the progress line.
#[derive(Debug)]
pub struct CallProgress {
    pub model: Mutex<String>,
    pub deltas: AtomicU64,
    pub started: Mutex<Instant>,
}

/// Backoff settings: full jitter, `base * 2^n` capped.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Backoff {
    /// 1 s base and 60 s cap, or `PLANEXE_RETRY_BASE_MS` and
    /// `PLANEXE_RETRY_CAP_MS` (tests use them to avoid real waits).
    pub fn from_env() -> Backoff {
        let ms = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(default)
        };
        Backoff {
            base: Duration::from_millis(ms("PLANEXE_RETRY_BASE_MS", 1000)),
            cap: Duration::from_millis(ms("PLANEXE_RETRY_CAP_MS", 60_000)),
        }
    }

    /// The pause before retry number `n` (0-based).
    pub fn delay(&self, n: u32) -> Duration {
        let ceiling = self.base.saturating_mul(1u32 << n.min(20)).min(self.cap);
        ceiling.mul_f64(fastrand::f64())
    }
}

/// What prompt tasks share during one build.
pub struct Llm {
    agent: ureq::Agent,
    models: Vec<ModelConfig>,
    keys: Vec<Option<String>>,
    gates: Vec<Arc<Gate>>,
    ledger: Ledger,
    interrupt: Interrupt,
    state_dir: std::path::PathBuf,
    run_dir: String,
    backoff: Backoff,
    progress: Mutex<HashMap<String, Arc<CallProgress>>>,
}

impl Llm {
    /// Sets up models for the wanted prompt tasks. Fails (exit 2) when a
    /// model they may use needs an API key that is not in the environment.
    pub fn new(
        graph: &Graph,
        wanted: &[bool],
        run_dir: &std::path::Path,
        interrupt: Interrupt,
    ) -> Result<Llm> {
        let mut reachable = vec![false; graph.models.len()];
        for task in graph.tasks.iter().filter(|t| wanted[t.id]) {
            if let Action::Prompt(spec) = &task.action {
                for m in chain(&graph.models, spec.model) {
                    reachable[m] = true;
                }
            }
        }
        let mut keys = Vec::with_capacity(graph.models.len());
        for (i, model) in graph.models.iter().enumerate() {
            let key = match &model.api_key_env {
                None => None,
                Some(var) => match std::env::var(var) {
                    Ok(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
                    _ if reachable[i] => {
                        return Err(Error::usage(format!(
                            "model `{}` needs an API key in ${var}, which is not set",
                            model.name
                        ))
                        .hint(format!("export {var}=... before the build; keys are read from the environment only")))
                    }
                    _ => None,
                },
            };
            keys.push(key);
        }
        let secrets: Vec<String> = keys.iter().flatten().cloned().collect();
        let state_dir = run_dir.join(crate::rundir::STATE_DIR);
        Ok(Llm {
            agent: call::agent(),
            gates: graph
                .models
                .iter()
                .map(|m| Gate::new(m.max_concurrency, m.requests_per_minute))
                .collect(),
            models: graph.models.clone(),
            keys,
            ledger: Ledger::new(state_dir.clone(), secrets),
            interrupt,
            state_dir,
            run_dir: run_dir.display().to_string(),
            backoff: Backoff::from_env(),
            progress: Mutex::new(HashMap::new()),
        })
    }

    /// Replaces secrets in text bound for a file or the terminal.
    pub fn redact(&self, text: &str) -> String {
        self.ledger.redact(text)
    }

    /// A snapshot of running calls: (task, model, pieces, elapsed).
    pub fn progress(&self) -> Vec<(String, String, u64, Duration)> {
        let map = self.progress.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .map(|(task, p)| {
                let model = p.model.lock().map(|m| m.clone()).unwrap_or_default();
                let started = p
                    .started
                    .lock()
                    .map(|s| *s)
                    .unwrap_or_else(|_| Instant::now());
                (
                    task.clone(),
                    model,
                    p.deltas.load(Ordering::Relaxed),
                    started.elapsed(),
                )
            })
            .collect()
    }

    /// Runs a prompt task to an answer or a failure.
    pub fn run(
        &self,
        task: &str,
        spec: &PromptSpec,
        inputs: &BTreeMap<String, String>,
        deadline: Option<(Instant, Duration)>,
    ) -> PromptResult {
        let progress = Arc::new(CallProgress {
            model: Mutex::new(String::new()),
            deltas: AtomicU64::new(0),
            started: Mutex::new(Instant::now()),
        });
        self.progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(task.to_string(), Arc::clone(&progress));
        let result = self.run_chain(task, spec, inputs, deadline, &progress);
        self.progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(task);
        result
    }

    fn run_chain(
        &self,
        task: &str,
        spec: &PromptSpec,
        inputs: &BTreeMap<String, String>,
        deadline: Option<(Instant, Duration)>,
        progress: &Arc<CallProgress>,
    ) -> PromptResult {
        let mut result = PromptResult {
            answer: Err(PromptFailure {
                kind: "template".into(),
                message: String::new(),
                error_id: None,
                stopped: false,
            }),
            model: None,
            attempts: Vec::new(),
            usage: Usage::default(),
        };
        let rendered =
            config::render(&spec.template, inputs, task, &spec.vars).and_then(|prompt| {
                let system = match &spec.system {
                    Some(s) => Some(config::render(s, inputs, task, &spec.vars)?),
                    None => None,
                };
                Ok((prompt, system))
            });
        let (prompt, system) = match rendered {
            Ok(r) => r,
            Err(m) => {
                result.answer = Err(PromptFailure {
                    kind: ErrorType::Template.as_str().into(),
                    message: format!("cannot render the prompt ({}): {m}", spec.template_origin),
                    error_id: None,
                    stopped: false,
                });
                return result;
            }
        };
        let mut reasons: Vec<String> = Vec::new();
        let mut last_kind = ErrorType::Connection;
        let mut last_id = None;
        let models = chain(&self.models, spec.model);
        let mut attempt_no = 0u32;
        for m in models {
            let model = &self.models[m];
            result.model = Some(model.name.clone());
            match self.ask(
                task,
                spec,
                &prompt,
                system.as_deref(),
                m,
                deadline,
                progress,
                &mut attempt_no,
                &mut result,
            ) {
                Ok(text) => {
                    result.answer = Ok(text);
                    return result;
                }
                Err(Stop::Interrupted) => {
                    result.answer = Err(PromptFailure {
                        kind: "interrupted".into(),
                        message: "stopped by an interrupt".into(),
                        error_id: None,
                        stopped: true,
                    });
                    return result;
                }
                Err(Stop::Deadline) => {
                    let limit = deadline.map_or(Duration::ZERO, |d| d.1);
                    let mut message =
                        format!("timeout after {}", humantime::format_duration(limit));
                    if !reasons.is_empty() {
                        message.push_str(&format!(" ({})", reasons.join("; ")));
                    }
                    result.answer = Err(PromptFailure {
                        kind: "timeout".into(),
                        message,
                        error_id: last_id,
                        stopped: false,
                    });
                    return result;
                }
                Err(Stop::Failed {
                    kind,
                    message,
                    error_id,
                }) => {
                    reasons.push(format!("{}: {message} (error_id {error_id})", model.name));
                    last_kind = kind;
                    last_id = Some(error_id);
                }
            }
        }
        let message = if reasons.len() == 1 {
            reasons.remove(0)
        } else {
            format!("all models failed: {}", reasons.join("; "))
        };
        result.answer = Err(PromptFailure {
            kind: last_kind.as_str().into(),
            message: self.redact(&message),
            error_id: last_id,
            stopped: false,
        });
        result
    }

    /// Asks one model until it answers acceptably or fails for good.
    #[allow(clippy::too_many_arguments)]
    fn ask(
        &self,
        task: &str,
        spec: &PromptSpec,
        prompt: &str,
        system: Option<&str>,
        m: usize,
        deadline: Option<(Instant, Duration)>,
        progress: &Arc<CallProgress>,
        attempt_no: &mut u32,
        result: &mut PromptResult,
    ) -> std::result::Result<String, Stop> {
        let model = &self.models[m];
        let mut messages = vec![Message {
            role: "user",
            content: prompt.to_string(),
        }];
        let mut transient_failures = 0u32;
        let mut reasks = 0u32;
        let until = deadline.map(|d| d.0);
        loop {
            let body = provider::body(&Request {
                model,
                system,
                messages: &messages,
                json: spec.format == Format::Json,
                schema: spec.schema.as_ref().map(|s| &s.value),
            });
            let remaining = until.map(|d| d.saturating_duration_since(Instant::now()));
            let call_spec = CallSpec {
                provider: model.provider,
                url: provider::endpoint(model),
                headers: provider::headers(model, self.keys[m].as_deref()),
                body: body.to_string(),
                stream: model.stream,
                timeout: remaining.map_or(model.timeout, |r| r.min(model.timeout)),
                idle_timeout: model.idle_timeout,
            };
            let permit = self.gates[m]
                .acquire(until, &self.interrupt)
                .map_err(|a| match a {
                    Abort::Interrupted => Stop::Interrupted,
                    Abort::Deadline => Stop::Deadline,
                })?;
            *attempt_no += 1;
            if let Ok(mut name) = progress.model.lock() {
                name.clone_from(&model.name);
            }
            if let Ok(mut s) = progress.started.lock() {
                *s = Instant::now();
            }
            progress.deltas.store(0, Ordering::Relaxed);
            let started = Instant::now();
            let started_at = crate::state::now_rfc3339();
            let outcome = self.call_detached(call_spec, permit, progress, until)?;
            let duration_ms = started.elapsed().as_millis() as u64;

            // Judge the call.
            let failure: Failure = match &outcome {
                Err(e) => Failure::Call(e.clone()),
                Ok(ok) if ok.truncated() => Failure::Call(CallError::new(
                    ErrorType::Truncated,
                    format!(
                        "the answer was cut off at the token limit ({} tokens); raise max_tokens or shorten the prompt",
                        ok.answer.usage.completion_tokens.map_or("?".to_string(), |n| n.to_string())
                    ),
                )),
                Ok(ok) => match answer::judge(&ok.answer.text, spec.format, spec.schema.as_deref()) {
                    Ok(text) => Failure::None(text),
                    Err(rejection) => Failure::Answer(rejection),
                },
            };
            if let Ok(ok) = &outcome {
                self.ledger.raw(
                    &self.state_dir,
                    task,
                    &serde_json::json!({"model": model.name, "provider": model.provider.as_str(), "response": ok.raw}),
                );
            } else if let Err(e) = &outcome {
                self.ledger.raw(
                    &self.state_dir,
                    task,
                    &serde_json::json!({"model": model.name, "provider": model.provider.as_str(), "status": e.status, "error": e.raw}),
                );
            }
            let usage = outcome
                .as_ref()
                .ok()
                .map(|ok| ok.answer.usage)
                .unwrap_or_default();
            let cost = cost(model, usage);
            result.usage.prompt_tokens += usage.prompt_tokens.unwrap_or(0);
            result.usage.completion_tokens += usage.completion_tokens.unwrap_or(0);
            result.usage.total_tokens = result.usage.prompt_tokens + result.usage.completion_tokens;
            result.usage.cost_usd += cost.unwrap_or(0.0);
            let error_id = match &failure {
                Failure::None(_) => None,
                _ => Some(uuid::Uuid::new_v4().to_string()),
            };
            self.ledger.usage(&UsageLine {
                timestamp_utc: crate::state::now_rfc3339(),
                task,
                model: &model.name,
                provider: model.provider.as_str(),
                attempt: *attempt_no,
                duration_ms,
                prompt_tokens: usage.prompt_tokens,
                completion_tokens: usage.completion_tokens,
                total_tokens: match (usage.prompt_tokens, usage.completion_tokens) {
                    (None, None) => None,
                    (p, c) => Some(p.unwrap_or(0) + c.unwrap_or(0)),
                },
                cost_usd: cost,
                status: if matches!(failure, Failure::None(_)) {
                    "ok"
                } else {
                    "error"
                },
                error_id: error_id.clone(),
            });
            let error_type = match &failure {
                Failure::None(_) => None,
                Failure::Call(e) => Some(e.kind),
                Failure::Answer(r) => Some(r.kind),
            };
            result.attempts.push(AttemptRecord {
                model: model.name.clone(),
                attempt: *attempt_no,
                started_at,
                duration_ms,
                outcome: error_type.map_or("ok", ErrorType::as_str).to_string(),
                error_id: error_id.clone(),
            });
            let error_id = match failure {
                Failure::None(text) => return Ok(text),
                _ => error_id.unwrap_or_default(),
            };
            match failure {
                Failure::None(_) => unreachable!("returned above"),
                Failure::Answer(rejection) => {
                    let retry = reasks < spec.retries;
                    self.record_failure(
                        task,
                        model,
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
                                "{}: {} (after {} re-ask(s))",
                                rejection.kind.as_str(),
                                rejection.message,
                                reasks
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
                Failure::Call(e) => {
                    let retry = e.kind.transient() && transient_failures + 1 < TRANSIENT_ATTEMPTS;
                    self.record_failure(
                        task,
                        model,
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
                    if !retry {
                        let mut message = format!("{}: {}", e.kind.as_str(), e.message);
                        if e.kind.transient() {
                            message.push_str(&format!(" ({TRANSIENT_ATTEMPTS} attempts)"));
                        }
                        return Err(Stop::Failed {
                            kind: e.kind,
                            message,
                            error_id,
                        });
                    }
                    let pause = e
                        .retry_after
                        .unwrap_or_else(|| self.backoff.delay(transient_failures));
                    transient_failures += 1;
                    limits::sleep_until(Instant::now() + pause, until, &self.interrupt).map_err(
                        |a| match a {
                            Abort::Interrupted => Stop::Interrupted,
                            Abort::Deadline => Stop::Deadline,
                        },
                    )?;
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn record_failure(
        &self,
        task: &str,
        model: &ModelConfig,
        attempt: u32,
        kind: ErrorType,
        message: &str,
        status: Option<u16>,
        missing_fields: Vec<String>,
        invalid_fields: Vec<String>,
        raw: String,
        error_id: &str,
        recoverable: bool,
    ) {
        self.ledger.failure(&FailureLine {
            timestamp_utc: crate::state::now_rfc3339(),
            task,
            model: &model.name,
            attempt,
            error_type: kind.as_str(),
            message: message.to_string(),
            http_status: status,
            missing_fields,
            invalid_fields,
            raw_error: provider::truncate(&raw, 2048).to_string(),
            error_id: error_id.to_string(),
            recoverable,
            run_dir: self.run_dir.clone(),
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
    ) -> std::result::Result<std::result::Result<call::CallOk, CallError>, Stop> {
        let (tx, rx) = mpsc::channel();
        let agent = self.agent.clone();
        let progress_for_call = Arc::clone(progress);
        let spawned = std::thread::Builder::new()
            .name("planexe-call".into())
            .spawn(move || {
                let result = call::call(&agent, &spec, &progress_for_call.deltas);
                drop(permit);
                let _ = tx.send(result);
            });
        if let Err(e) = spawned {
            return Ok(Err(CallError::new(
                ErrorType::Connection,
                format!("cannot start a thread: {e}"),
            )));
        }
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(result) => return Ok(result),
                Err(RecvTimeoutError::Timeout) => {
                    if self.interrupt.requested() {
                        return Err(Stop::Interrupted);
                    }
                    if until.is_some_and(|d| Instant::now() >= d) {
                        return Err(Stop::Deadline);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Ok(Err(CallError::new(
                        ErrorType::BadResponse,
                        "the call ended without a result",
                    )))
                }
            }
        }
    }
}

enum Failure {
    None(String),
    Call(CallError),
    Answer(answer::Rejection),
}

enum Stop {
    Interrupted,
    Deadline,
    Failed {
        kind: ErrorType,
        message: String,
        error_id: String,
    },
}

fn cost(model: &ModelConfig, usage: provider::Usage) -> Option<f64> {
    if model.input_cost_per_mtok.is_none() && model.output_cost_per_mtok.is_none() {
        return None;
    }
    let input = usage.prompt_tokens.unwrap_or(0) as f64 * model.input_cost_per_mtok.unwrap_or(0.0);
    let output =
        usage.completion_tokens.unwrap_or(0) as f64 * model.output_cost_per_mtok.unwrap_or(0.0);
    Some((input + output) / 1_000_000.0)
}

/// A model and its fallbacks, depth first, each once.
pub fn chain(models: &[ModelConfig], first: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut stack = vec![first];
    while let Some(m) = stack.pop() {
        if out.contains(&m) {
            continue;
        }
        out.push(m);
        for &f in models[m].fallback.iter().rev() {
            stack.push(f);
        }
    }
    out
}
