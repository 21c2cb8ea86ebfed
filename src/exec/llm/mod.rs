//! Prompt tasks: render the template, ask a model, judge the answer, and
//! decide what to do with each failure: retry the same model after a
//! backoff (transient), re-ask it with feedback (invalid answer), or move on
//! to the next fallback model (permanent). Every HTTP call is recorded in
//! `usage.jsonl`, every failed attempt in `failures.jsonl`.
//!
//! What a server sends back is scrubbed of every secret the build knows (API
//! keys, webhook tokens) as soon as it arrives, so no answer, log line or
//! message can carry one: a server that echoes a key writes no key.
//!
//! Calls are blocking ureq requests. Each runs on a short-lived thread of
//! its own while the task's pool thread waits on it, so an interrupt or the
//! task's deadline ends the wait at once even while a request is in flight.

pub mod answer;
mod ask;
mod backoff;
pub use backoff::Backoff;
pub mod call;
pub mod extract;
mod fault;
mod finish;
mod json_instruction;
mod judging;
mod kept;
mod not_found;
mod ordered;
pub use judging::{rejection, Refused};
pub mod limits;
pub mod provider;
pub mod recording;
mod redirect;
mod reported;
mod request;
mod sse;
mod tokens;
mod unreachable;
mod verdict;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::exec::env::{self, Env};
use crate::exec::interrupt::Interrupt;
use crate::exec::observer::Progress;
use crate::model::judge::Judge;
use crate::model::models::{self, ModelConfig};
use crate::model::prompt::PromptSpec;
use crate::model::template_files::Files;
use crate::model::{Action, Graph, Trouble};
use crate::store::ledger::Ledger;
use crate::store::record::JudgeVerdict;
use crate::store::untrusted::{printable_lines, Secrets};
use crate::store::{AttemptRecord, ErrorKind, RunDir, Usage};
use limits::Gate;
use recording::Answers;

/// How a prompt task failed.
#[derive(Debug, Clone)]
pub struct PromptFailure {
    pub kind: ErrorKind,
    pub message: String,
    pub error_id: Option<String>,
    pub stopped: bool,
    /// The failure is the task's judge's, not its own model's.
    pub judge: bool,
    /// A model of the task's chain failed in a way that may clear (a
    /// server error, a timeout), whatever `kind`, the last model's, says:
    /// the next build asks it again, so it may succeed.
    pub may_clear: bool,
}

/// The result of a prompt task, or of a judging of outputs on disk.
#[derive(Debug)]
pub struct PromptResult {
    pub answer: std::result::Result<String, PromptFailure>,
    /// The model that answered (or was asked last).
    pub model: Option<String>,
    pub attempts: Vec<AttemptRecord>,
    pub usage: Usage,
    /// The share of `usage` that was the judge's calls.
    pub judge_usage: Usage,
    /// The judge's last verdict, when the task has a judge.
    pub judge: Option<JudgeVerdict>,
    /// Why a judge of `severity = "warn"` could not score the answer,
    /// which stands: a quality warning, not a failure.
    pub unscored: Option<String>,
    /// The last answer the judge scored below its threshold, of any model
    /// of the chain: what a task that fails wrote, kept with its failure
    /// (`.planexe/failed/TASK/`).
    pub rejected: Option<Refused>,
    /// A call of the chain went to a server and cost tokens (not a
    /// recorded answer): an answer then lost was paid for.
    pub paid: bool,
    /// The response cache's entries that gave the task's model's answers
    /// in this run, or took them (its judge's calls not): removed when the
    /// task's checks refuse its output, so that the next build asks again
    /// rather than replay an answer known to fail.
    pub cached: Vec<std::path::PathBuf>,
}

/// Live progress of a task's current call, for the progress line and the
/// live `status`.
#[derive(Debug)]
pub struct CallProgress {
    pub model: Mutex<String>,
    /// The task's call number (1-based, over every model it asked).
    pub attempt: AtomicU32,
    pub pieces: call::Pieces,
    pub started: Mutex<Instant>,
    /// When the call in flight started, on the wall clock.
    pub started_at: Mutex<Option<std::time::SystemTime>>,
    /// While the task waits to retry (a `Retry-After`, a backoff): until
    /// when, on the wall clock.
    pub waiting_until: Mutex<Option<std::time::SystemTime>>,
    /// While the task waits for its model's limits (`max_concurrency`,
    /// `requests_per_minute`) before a call.
    pub queued: Mutex<Option<limits::Queued>>,
}

/// What prompt tasks share during one build.
pub struct Llm<'a> {
    agent: ureq::Agent,
    models: Vec<ModelConfig>,
    keys: Vec<Option<String>>,
    /// What answers are scrubbed of.
    secrets: Secrets,
    gates: Vec<Arc<Gate>>,
    /// Each model's server, when a call found it unreachable.
    unreachable: Vec<unreachable::Unreachable>,
    ledger: Ledger,
    interrupt: Interrupt,
    run_dir: &'a RunDir,
    backoff: Backoff,
    progress: Mutex<HashMap<String, Arc<CallProgress>>>,
    /// Where answers come from: models, a recording, the response cache.
    answers: Answers,
    /// Warnings not yet printed (damaged recorded answers), and every one
    /// given, so each is printed once.
    warnings: Mutex<Vec<String>>,
    warned: Mutex<HashSet<String>>,
}

impl<'a> Llm<'a> {
    /// Sets up models for the wanted prompt tasks. Fails (exit 2) when a
    /// model they may use needs an API key that is not in the environment
    /// (unless `answers` replays: no model is called), or replays answers
    /// from a folder that does not exist.
    /// Answers are scrubbed of every key, of the secret parts of the
    /// pipeline's webhook URLs, and of `env`'s own secrets.
    pub fn new(
        graph: &Graph,
        wanted: &[bool],
        run_dir: &'a RunDir,
        env: &Env,
        interrupt: Interrupt,
        answers: Answers,
    ) -> Result<Llm<'a>> {
        let mut reachable = vec![false; graph.models.len()];
        for task in graph.tasks().filter(|t| wanted[t.id]) {
            if let Action::Prompt(spec) = &task.action {
                for m in models::chain(&graph.models, spec.model) {
                    reachable[m] = true;
                }
            }
            let judge = task.checks.judge.as_ref().map(|j| j.model);
            for &first in judge.iter().chain(&task.origin.asks) {
                for m in models::chain(&graph.models, first) {
                    reachable[m] = true;
                }
            }
        }
        for dir in recording::required_dirs(&answers, &graph.models, &reachable) {
            if dir.is_dir() {
                continue;
            }
            let replay = graph
                .models
                .iter()
                .filter_map(|m| m.replay.as_ref())
                .find(|r| r.dir == dir);
            let shown = dir.display().to_string();
            let live = replay.map(|r| graph.models[r.of].name.as_str());
            let hint = graph
                .advice()
                .hint(&Trouble::NoRecordings { dir: &shown, live });
            return Err(recording::absent(dir, replay, &shown, hint));
        }
        let offline = answers.offline();
        let mut keys = Vec::with_capacity(graph.models.len());
        for (i, model) in graph.models.iter().enumerate() {
            let key = match &model.api_key_env {
                None => None,
                Some(var) => match env.api_key(var) {
                    Ok(key) => Some(key),
                    Err(why) if reachable[i] && !offline => {
                        return Err(Error::usage(format!(
                            "model `{}` needs an API key in ${var}, which {why}",
                            model.name
                        ))
                        .hint(graph.advice().hint(&Trouble::MissingKey { var })))
                    }
                    Err(_) => None,
                },
            };
            keys.push(key);
        }
        // (The keys found above, with env's own secrets and the webhooks'.)
        let logged = env::graph_secrets(graph, env);
        let secrets = Secrets::new(logged.clone(), env::MIN_SECRET_LEN);
        Ok(Llm {
            agent: call::agent(),
            gates: graph
                .models
                .iter()
                .map(|m| Gate::new(m.max_concurrency, m.requests_per_minute))
                .collect(),
            unreachable: graph.models.iter().map(|_| Default::default()).collect(),
            models: graph.models.clone(),
            keys,
            ledger: Ledger::new(run_dir, logged),
            secrets,
            interrupt,
            run_dir,
            backoff: Backoff::from_env(env),
            progress: Mutex::new(HashMap::new()),
            answers,
            warnings: Mutex::new(Vec::new()),
            warned: Mutex::new(HashSet::new()),
        })
    }

    /// Replaces secrets in a message bound for a file or the terminal,
    /// and escapes its control characters but the newlines planexe put
    /// between its lines. What a server said in it was made
    /// [`printable`](crate::store::untrusted::printable) where it entered
    /// the message (its newlines too); this catches whatever did not.
    pub fn redact(&self, text: &str) -> String {
        printable_lines(&self.ledger.redact(text)).into_owned()
    }

    /// Replaces secrets in what a server sent (an answer, an error body),
    /// in every spelling JSON has for them (see [`Secrets`]).
    pub fn scrub(&self, text: &str) -> String {
        self.secrets.redact(text)
    }

    /// A snapshot of running calls: (task, model, pieces, elapsed).
    pub fn progress(&self) -> Vec<(String, Progress)> {
        let map = self.progress.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .map(|(task, p)| {
                let model = p.model.lock().map(|m| m.clone()).unwrap_or_default();
                let started = p
                    .started
                    .lock()
                    .map(|s| *s)
                    .unwrap_or_else(|_| Instant::now());
                let waiting_until = p.waiting_until.lock().map(|w| *w).unwrap_or(None);
                let queued = p.queued.lock().map(|q| q.clone()).unwrap_or(None);
                (
                    task.clone(),
                    Progress {
                        model,
                        attempt: p.attempt.load(Ordering::Relaxed),
                        pieces: p.pieces.count(),
                        elapsed: started.elapsed(),
                        call_started_at: p.started_at.lock().map(|s| *s).unwrap_or(None),
                        last_piece_at: p.pieces.last(),
                        waiting_until,
                        queued,
                    },
                )
            })
            .collect()
    }

    /// Runs a prompt task to an answer or a failure; `judge` scores the
    /// answer, which is written to `output`. `on_attempt` hears of each
    /// call as it starts (its number and model), so the task's status can
    /// say which one is in flight.
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &self,
        task: &str,
        spec: &PromptSpec,
        judge: Option<&Judge>,
        output: &str,
        inputs: &Files,
        deadline: Option<(Instant, Duration)>,
        on_attempt: &mut dyn FnMut(u32, &str),
    ) -> PromptResult {
        let progress = self.track(task);
        let result = self.run_chain(
            task,
            spec,
            judge.map(|j| (j, output)),
            inputs,
            deadline,
            &progress,
            on_attempt,
        );
        self.untrack(task);
        result
    }

    /// The progress of `task`'s calls, shown while it runs.
    fn track(&self, task: &str) -> Arc<CallProgress> {
        let progress = Arc::new(CallProgress {
            model: Mutex::new(String::new()),
            attempt: AtomicU32::new(0),
            pieces: call::Pieces::default(),
            started: Mutex::new(Instant::now()),
            started_at: Mutex::new(None),
            waiting_until: Mutex::new(None),
            queued: Mutex::new(None),
        });
        self.progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(task.to_string(), Arc::clone(&progress));
        progress
    }

    fn untrack(&self, task: &str) {
        self.progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(task);
    }

    #[allow(clippy::too_many_arguments)]
    fn run_chain(
        &self,
        task: &str,
        spec: &PromptSpec,
        judge: Option<(&Judge, &str)>,
        inputs: &Files,
        deadline: Option<(Instant, Duration)>,
        progress: &Arc<CallProgress>,
        on_attempt: &mut dyn FnMut(u32, &str),
    ) -> PromptResult {
        let mut result = PromptResult {
            answer: Err(PromptFailure {
                kind: ErrorKind::Template,
                message: String::new(),
                error_id: None,
                stopped: false,
                judge: false,
                may_clear: false,
            }),
            model: None,
            attempts: Vec::new(),
            usage: Usage::default(),
            judge_usage: Usage::default(),
            judge: None,
            unscored: None,
            rejected: None,
            paid: false,
            cached: Vec::new(),
        };
        let (prompt, system) = match spec.render(inputs, task) {
            Ok(r) => r,
            Err(m) => {
                result.answer = Err(PromptFailure {
                    kind: inputs
                        .trouble()
                        .map_or(ErrorKind::Template, |(kind, _)| kind),
                    message: format!("cannot render the prompt ({}): {m}", spec.template_origin),
                    error_id: None,
                    stopped: false,
                    judge: false,
                    may_clear: false,
                });
                return result;
            }
        };
        // Why each model failed (`model: why`), and the error_id of that
        // failure; a judge's verdict alone names the judge, not the model
        // whose answer it judged (the task's `model`), so a message of one
        // model's failure says it so.
        let mut reasons: Vec<(String, String)> = Vec::new();
        let mut alone = None;
        let (mut last_kind, mut last_judge) = (ErrorKind::Connection, false);
        // Whether a model's failure may clear: then the next build, which
        // asks the chain again from its first model, may succeed.
        let mut may_clear = false;
        let models = models::chain(&self.models, spec.model);
        let mut attempt_no = 0u32;
        for m in models {
            let model = &self.models[m];
            result.model = Some(model.name.clone());
            let conversation = vec![provider::Message {
                role: "user",
                content: prompt.clone(),
            }];
            let asked = self
                .ask(
                    task,
                    spec,
                    &conversation,
                    system.as_deref(),
                    m,
                    deadline,
                    progress,
                    &mut attempt_no,
                    on_attempt,
                    &mut result,
                )
                .and_then(|text| match judge {
                    None => Ok(text),
                    Some((judge, output)) => {
                        let j = judging::Judging {
                            scoring: judging::Scoring {
                                task,
                                judge,
                                vars: &spec.vars,
                                inputs,
                                deadline,
                                progress,
                            },
                            spec,
                            system: system.as_deref(),
                            m,
                            output,
                        };
                        self.judged(
                            &j,
                            conversation,
                            text,
                            &mut attempt_no,
                            on_attempt,
                            &mut result,
                        )
                    }
                });
            match asked {
                Ok(text) => {
                    result.answer = Ok(text);
                    return result;
                }
                Err(Stop::Interrupted(error_id)) => {
                    result.answer = Err(PromptFailure {
                        kind: ErrorKind::Stopped,
                        message: "stopped by an interrupt".into(),
                        error_id,
                        stopped: true,
                        judge: false,
                        may_clear: false,
                    });
                    return result;
                }
                Err(stop @ (Stop::Deadline(_) | Stop::Waited(_) | Stop::Queued { .. })) => {
                    let limit = deadline.map_or(Duration::ZERO, |d| d.1);
                    let after = format!("timeout after {}", fault::readable(limit));
                    let (kind, mut message, error_id, judge) = match stop {
                        Stop::Deadline(Some((kind, message, id, judge))) => {
                            (kind, message, Some(id), judge)
                        }
                        // Between calls: the build records the timeout
                        // under an error_id of its own.
                        Stop::Waited(last) => (
                            ErrorKind::Timeout,
                            format!("{after} while waiting to retry after {last}"),
                            None,
                            false,
                        ),
                        Stop::Queued { queued, retrying } => (
                            ErrorKind::Timeout,
                            fault::queued_message(&after, &queued, retrying.as_deref()),
                            None,
                            false,
                        ),
                        _ => (ErrorKind::Timeout, after, None, false),
                    };
                    if !reasons.is_empty() {
                        message
                            .push_str(&format!(" (before: {})", fault::with_ids(&reasons, None)));
                    }
                    result.answer = Err(PromptFailure {
                        kind,
                        message: self.redact(&message),
                        error_id,
                        stopped: false,
                        judge,
                        may_clear: false,
                    });
                    return result;
                }
                Err(Stop::Failed {
                    kind: kind @ ErrorKind::JudgeRejected,
                    message,
                    error_id,
                }) => {
                    alone = alone.or(reasons.is_empty().then(|| message.clone()));
                    reasons.push((format!("{}: {message}", model.name), error_id));
                    (last_kind, last_judge) = (kind, true);
                }
                Err(Stop::Failed {
                    kind,
                    message,
                    error_id,
                }) => {
                    reasons.push((format!("{}: {message}", model.name), error_id));
                    (last_kind, last_judge) = (kind, false);
                    may_clear |= kind.recoverable();
                }
                // The task's model answered; its judge could not score.
                Err(Stop::JudgeFailed {
                    judge,
                    kind,
                    message,
                    error_id,
                }) => {
                    let message = judging::could_not_score(&judge, &message);
                    alone = alone.or(reasons.is_empty().then(|| message.clone()));
                    reasons.push((format!("{}: {message}", model.name), error_id));
                    (last_kind, last_judge) = (kind, true);
                    may_clear |= kind.recoverable();
                }
            }
        }
        // The last failure's error_id is the task's; earlier ones stay in
        // the message.
        let last_id = reasons.last().map(|r| r.1.clone());
        let message = if reasons.len() == 1 {
            alone.unwrap_or_else(|| reasons.remove(0).0)
        } else {
            format!(
                "all models failed: {}",
                fault::with_ids(&reasons, last_id.as_deref())
            )
        };
        result.answer = Err(PromptFailure {
            kind: last_kind,
            message: self.redact(&message),
            error_id: last_id,
            stopped: false,
            judge: last_judge,
            may_clear,
        });
        result
    }
}

/// Why a model gave up. A stop during a call carries what that call was
/// recorded as: its error_id (and, at the deadline, its kind and message).
enum Stop {
    Interrupted(Option<String>),
    /// The task's deadline: the kind, message and error_id of the call it
    /// cut short, and whether that call was a judge's.
    Deadline(Option<(ErrorKind, String, String, bool)>),
    /// The deadline came between calls, while the task waited to retry
    /// after a failure (`kind: message`, recorded with its call).
    Waited(String),
    /// The deadline came while the task was queued for its model's limits
    /// ([`limits::queued_for`]), perhaps to retry after a failure.
    Queued {
        queued: String,
        retrying: Option<String>,
    },
    Failed {
        kind: ErrorKind,
        message: String,
        error_id: String,
    },
    /// The judge (`judge`, its model's name) could not score an answer:
    /// its call failed, or its prompt could not be rendered. The failure
    /// is the judge's, not the model's whose answer it was to score.
    JudgeFailed {
        judge: String,
        kind: ErrorKind,
        message: String,
        error_id: String,
    },
}
