//! A task's judge at work: the judging model scores what the task wrote
//! (`{"score", "reason"}` under a fixed schema).
//!
//! - A prompt task's answer is judged inside its conversation
//!   ([`Llm::judged`]): below the threshold the task's model is asked again
//!   with the reason, up to the judge's `retries`; then a low score fails
//!   the task as `judge_rejected` (or, with `severity = "warn"`, the answer
//!   stands and the verdict is a quality warning, as the answer it scored
//!   does when a re-ask fails: cut off, the server gone). A judge of severity warn
//!   that cannot score (its model down, answers it cannot use, the task's
//!   timeout) fails nothing either: the answer stands and why it has no
//!   score is the warning ([`PromptResult::unscored`]).
//! - Outputs already on disk (a command task's, or any task's when only its
//!   judge changed, or `planexe check`) are scored once
//!   ([`Llm::judge_outputs`]); what a low score does is the caller's.
//!
//! The judge's model is asked first, then its `fallback` models, as a
//! task's chain is, when it fails for good; the verdict names the model
//! that scored.
//!
//! Judge calls are model calls like any other: they are in `usage.jsonl`
//! (marked `judge`, with the `score` they gave), their failures in
//! `failures.jsonl` (marked `judge` too, as is the line of a score that
//! fails the task), and record, replay and the cache apply to them. A
//! failure of a judge that no call of it recorded (its prompt that cannot
//! be rendered; the task's timeout or an interrupt while it waited) gets
//! its line, the judge's, here: the task's `error_id` always names one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::provider::Message;
use super::{CallProgress, Llm, PromptFailure, PromptResult, Stop};
use crate::model::judge::{self, Judge};
use crate::model::models;
use crate::model::prompt::{Format, PromptSpec};
use crate::model::template::{self, Vars};
use crate::model::template_files::Files;
use crate::store::ledger::FailureLine;
use crate::store::record::JudgeVerdict;
use crate::store::untrusted::printable;
use crate::store::{ErrorKind, Usage};

/// The last answer a prompt task's judge refused, and the model of the
/// task's chain that gave it: what a task that fails keeps in
/// `.planexe/failed/TASK/`, whatever failed after it (the next fallback
/// model, a re-ask).
#[derive(Debug, Clone)]
pub struct Refused {
    pub model: String,
    pub text: String,
}

/// What one scoring needs besides the text scored.
pub(super) struct Scoring<'a> {
    pub task: &'a str,
    pub judge: &'a Judge,
    /// A fan-out instance's variables.
    pub vars: &'a Vars,
    pub inputs: &'a Files,
    pub deadline: Option<(Instant, Duration)>,
    pub progress: &'a Arc<CallProgress>,
}

/// What judging a prompt task's answer in its conversation needs.
pub(super) struct Judging<'a> {
    pub scoring: Scoring<'a>,
    pub spec: &'a PromptSpec,
    pub system: Option<&'a str>,
    /// The task's model, asked again with the judge's reason.
    pub m: usize,
    /// The path the answer is written to.
    pub output: &'a str,
}

impl Llm<'_> {
    /// Judges `answer` (the task's first accepted answer to `conversation`)
    /// and re-asks until it passes or the judge's retries run out. Returns
    /// the answer to write.
    pub(super) fn judged(
        &self,
        j: &Judging,
        mut conversation: Vec<Message>,
        mut answer: String,
        attempt_no: &mut u32,
        on_attempt: &mut dyn FnMut(u32, &str),
        result: &mut PromptResult,
    ) -> Result<String, Stop> {
        let judge = j.scoring.judge;
        let mut rounds = 0u32;
        loop {
            let outputs = Files::known([(j.output.to_string(), answer.clone())]);
            let scored = self.score(
                &j.scoring, &outputs, j.output, attempt_no, on_attempt, result,
            );
            let (score, reason, scorer) = match scored {
                Ok(scored) => scored,
                Err(stop) if judge.warn => {
                    result.unscored = Some(self.unscored(judge, stop, j.scoring.deadline)?);
                    // The answer written is the task model's, and no
                    // verdict is about it (an earlier one was about an
                    // answer asked again since).
                    result.model = Some(self.models[j.m].name.clone());
                    result.judge = None;
                    return Ok(answer);
                }
                Err(stop) => return Err(stop),
            };
            rounds += 1;
            let verdict = verdict(scorer, judge, score, reason, rounds);
            let passed = verdict.passed;
            let reason = verdict.reason.clone();
            let message = rejection(&verdict);
            result.judge = Some(verdict);
            if passed {
                return Ok(answer);
            }
            result.rejected = Some(Refused {
                model: self.models[j.m].name.clone(),
                text: answer.clone(),
            });
            if rounds > judge.retries {
                if judge.warn {
                    return Ok(answer);
                }
                let error_id =
                    self.judge_failure(&j.scoring, *attempt_no, ErrorKind::JudgeRejected, &message);
                return Err(Stop::Failed {
                    kind: ErrorKind::JudgeRejected,
                    message: format!(
                        "judge_rejected: {message}{}",
                        super::fault::after_reasks(rounds - 1)
                    ),
                    error_id,
                });
            }
            conversation.push(Message {
                role: "assistant",
                content: answer.clone(),
            });
            conversation.push(Message {
                role: "user",
                content: format!(
                    "A reviewer scored your answer {score:.2} out of 1 (it needs {:.2}): {reason}\nAnswer again, improved, in the same format.",
                    judge.threshold
                ),
            });
            let again = self.ask(
                j.scoring.task,
                j.spec,
                &conversation,
                j.system,
                j.m,
                j.scoring.deadline,
                j.scoring.progress,
                attempt_no,
                on_attempt,
                result,
            );
            answer = match again {
                Ok(again) => again,
                // A judge of severity warn fails nothing, its re-asks
                // neither: when the answer asked again cannot be had (cut
                // at the token limit, the server gone, the task's time
                // out), the answer it scored stands, with its verdict as
                // the warning; the failed call is in failures.jsonl. A
                // stop still stops.
                Err(stop) if judge.warn && !matches!(stop, Stop::Interrupted(_)) => {
                    result.model = Some(self.models[j.m].name.clone());
                    return Ok(answer);
                }
                Err(stop) => return Err(stop),
            };
        }
    }

    /// Scores a task's outputs as they are on disk, once: `outputs` holds
    /// each output's path and file, the first one being `output` in the
    /// judge's prompt. The result's `judge` holds the verdict (`rounds`
    /// 1); its `answer` is an empty text, or why no verdict could be had.
    #[allow(clippy::too_many_arguments)]
    pub fn judge_outputs(
        &self,
        task: &str,
        judge: &Judge,
        vars: &Vars,
        inputs: &Files,
        outputs: &Files,
        deadline: Option<(Instant, Duration)>,
        on_attempt: &mut dyn FnMut(u32, &str),
    ) -> PromptResult {
        let mut result = PromptResult {
            answer: Ok(String::new()),
            model: Some(self.models[judge.model].name.clone()),
            attempts: Vec::new(),
            usage: Usage::default(),
            judge_usage: Usage::default(),
            judge: None,
            unscored: None,
            rejected: None,
            paid: false,
            cached: Vec::new(),
        };
        let progress = self.track(task);
        let scoring = Scoring {
            task,
            judge,
            vars,
            inputs,
            deadline,
            progress: &progress,
        };
        let first = outputs.first().unwrap_or_default().to_string();
        let mut attempt_no = 0;
        let scored = self.score(
            &scoring,
            outputs,
            &first,
            &mut attempt_no,
            on_attempt,
            &mut result,
        );
        self.untrack(task);
        match scored {
            Ok((score, reason, scorer)) => {
                result.judge = Some(verdict(scorer, judge, score, reason, 1));
            }
            Err(stop) => result.answer = Err(self.failure_of(stop, deadline)),
        }
        result
    }

    /// Asks the judging model to score `outputs` (`first` of them is
    /// `output`): (score, reason, the model that scored: the judge's, or
    /// the first of its fallbacks to answer).
    fn score(
        &self,
        s: &Scoring,
        outputs: &Files,
        first: &str,
        attempt_no: &mut u32,
        on_attempt: &mut dyn FnMut(u32, &str),
        result: &mut PromptResult,
    ) -> Result<(f64, String, String), Stop> {
        let name = &self.models[s.judge.model].name;
        let prompt =
            template::render_judged(&s.judge.template, s.inputs, outputs, first, s.task, s.vars)
                .map_err(|m| {
                    let message = format!("cannot render the judge's prompt: {m}");
                    let trouble = s.inputs.trouble().or_else(|| outputs.trouble());
                    let kind = trouble.map_or(ErrorKind::Template, |(kind, _)| kind);
                    Stop::JudgeFailed {
                        judge: name.clone(),
                        kind,
                        error_id: self.judge_failure(s, *attempt_no, kind, &message),
                        message,
                    }
                })?;
        let spec = PromptSpec {
            template: String::new(),
            template_origin: "the judge".into(),
            system: None,
            schema: Some(Arc::clone(&s.judge.schema)),
            format: Format::Json,
            model: s.judge.model,
            retries: 2,
            max_tokens: Some(judge::MAX_TOKENS),
            keep_reasoning: false,
            vars: Default::default(),
            judge: true,
            sampling: None,
        };
        // The judge's model, then its fallbacks, as a task's chain is
        // asked: each model's failure for good (`model: why`) and its
        // error_id, for the message when none scores.
        let mut reasons: Vec<(String, String, String)> = Vec::new();
        let mut last_kind = ErrorKind::Connection;
        let mut scored = None;
        for jm in models::chain(&self.models, s.judge.model) {
            let asking = &self.models[jm].name;
            let first = result.attempts.len();
            let asked = self.ask(
                s.task,
                &spec,
                &[Message {
                    role: "user",
                    content: prompt.clone(),
                }],
                Some(JUDGE_SYSTEM),
                jm,
                s.deadline,
                s.progress,
                attempt_no,
                on_attempt,
                result,
            );
            // The calls of this scoring are the judge's: the record says so.
            for a in &mut result.attempts[first..] {
                a.judge = true;
            }
            // A judge that failed was asked last, and its failure is its
            // own; one that scored leaves the task's model the one that
            // answered.
            if asked.is_err() {
                result.model = Some(asking.clone());
            }
            match asked {
                Ok(text) => {
                    scored = Some((asking.clone(), text));
                    break;
                }
                // The next model of the judge's chain is asked.
                Err(Stop::Failed {
                    kind,
                    message,
                    error_id,
                }) => {
                    reasons.push((format!("{asking}: {message}"), message, error_id));
                    last_kind = kind;
                }
                // No call of the judge recorded these: their lines are
                // written here, the judge's, and the task carries their id.
                Err(Stop::Interrupted(None)) => {
                    let message = "stopped by an interrupt while its judge waited";
                    let kind = ErrorKind::Stopped;
                    let id = self.judge_failure(s, *attempt_no, kind, message);
                    return Err(Stop::Interrupted(Some(id)));
                }
                // The task's timeout cut the judge's call short: its
                // message (`the model was still generating when the
                // task's timeout (2s) expired`) is the call's, and the
                // task's says whose call it was.
                Err(Stop::Deadline(Some((kind, message, error_id, _)))) => {
                    let message = judge_timed_out(asking, kind, &message);
                    return Err(Stop::Deadline(Some((kind, message, error_id, true))));
                }
                Err(stop @ (Stop::Deadline(None) | Stop::Waited(_) | Stop::Queued { .. })) => {
                    let message = timed_out(stop, s.deadline);
                    let kind = ErrorKind::Timeout;
                    let error_id = self.judge_failure(s, *attempt_no, kind, &message);
                    let message = judge_timed_out(asking, kind, &message);
                    return Err(Stop::Deadline(Some((kind, message, error_id, true))));
                }
                Err(other) => return Err(other),
            }
        }
        let Some((scorer, text)) = scored else {
            let error_id = reasons.last().map(|r| r.2.clone()).unwrap_or_default();
            let message = match reasons.as_slice() {
                [(_, alone, _)] => alone.clone(),
                _ => {
                    let named: Vec<(String, String)> =
                        reasons.into_iter().map(|(n, _, id)| (n, id)).collect();
                    format!(
                        "all models failed: {}",
                        super::fault::with_ids(&named, Some(&error_id))
                    )
                }
            };
            return Err(Stop::JudgeFailed {
                judge: name.clone(),
                kind: last_kind,
                message,
                error_id,
            });
        };
        let (score, reason) = judge::read_answer(&text);
        // The model's words reach the terminal (status, the FAILED line).
        let reason = printable(&reason).into_owned();
        // The last call gave the answer the score is read from.
        if let Some(a) = result.attempts.last_mut() {
            a.score = Some(score);
        }
        Ok((score, reason, scorer))
    }

    /// Appends the line of a failure of the judge of `s` that no call of
    /// it recorded to `failures.jsonl`, marked the judge's; returns its
    /// error_id.
    fn judge_failure(&self, s: &Scoring, attempt: u32, kind: ErrorKind, message: &str) -> String {
        let error_id = uuid::Uuid::new_v4().to_string();
        self.ledger.failure(&FailureLine {
            model: Some(&self.models[s.judge.model].name),
            attempt: attempt.max(1),
            judge: true,
            ..FailureLine::new(s.task, kind, &self.redact(message), &error_id, self.run_dir)
        });
        error_id
    }

    /// Why `judge` (of severity warn) could not score, as its warning
    /// says it, when its scoring ended as `stop`; an interrupt still stops
    /// the task.
    fn unscored(
        &self,
        judge: &Judge,
        stop: Stop,
        deadline: Option<(Instant, Duration)>,
    ) -> Result<String, Stop> {
        let why = match stop {
            Stop::Interrupted(id) => return Err(Stop::Interrupted(id)),
            Stop::JudgeFailed { message, .. } | Stop::Failed { message, .. } => message,
            // A scoring's timeout names its judge already.
            Stop::Deadline(Some((_, message, _, _))) => return Ok(self.redact(&message)),
            stop @ (Stop::Deadline(None) | Stop::Waited(_) | Stop::Queued { .. }) => {
                format!("timeout: {}", timed_out(stop, deadline))
            }
        };
        let name = &self.models[judge.model].name;
        Ok(self.redact(&could_not_score(name, &why)))
    }

    /// What a stop of a judging is, as a failure.
    fn failure_of(&self, stop: Stop, deadline: Option<(Instant, Duration)>) -> PromptFailure {
        match stop {
            Stop::Interrupted(error_id) => PromptFailure {
                kind: ErrorKind::Stopped,
                message: "stopped by an interrupt while its judge ran".into(),
                error_id,
                stopped: true,
                judge: true,
                may_clear: false,
            },
            stop @ (Stop::Deadline(_) | Stop::Waited(_) | Stop::Queued { .. }) => {
                let (kind, message, error_id) = match stop {
                    Stop::Deadline(Some((kind, message, id, _))) => (kind, message, Some(id)),
                    stop => (ErrorKind::Timeout, timed_out(stop, deadline), None),
                };
                PromptFailure {
                    kind,
                    message: self.redact(&message),
                    error_id,
                    stopped: false,
                    judge: true,
                    may_clear: false,
                }
            }
            Stop::JudgeFailed {
                judge,
                kind,
                message,
                error_id,
            } => PromptFailure {
                kind,
                message: self.redact(&could_not_score(&judge, &message)),
                error_id: Some(error_id),
                stopped: false,
                judge: true,
                may_clear: false,
            },
            // Only the task's own model fails as `Failed`, and a scoring
            // asks only the judge.
            Stop::Failed {
                kind,
                message,
                error_id,
            } => PromptFailure {
                kind,
                message: self.redact(&format!("the judge could not score: {message}")),
                error_id: Some(error_id),
                stopped: false,
                judge: true,
                may_clear: false,
            },
        }
    }
}

/// The verdict of one scoring.
fn verdict(model: String, judge: &Judge, score: f64, reason: String, rounds: u32) -> JudgeVerdict {
    JudgeVerdict {
        model,
        score,
        reason,
        threshold: judge.threshold,
        passed: score >= judge.threshold,
        rounds,
    }
}

/// What the task's timeout `deadline`, come while its judge scored, says
/// when no call of the judge said it (`stop` came between calls or
/// before the first): `the task's timeout (30s) expired while its judge
/// waited to retry after server_error: ...`.
fn timed_out(stop: Stop, deadline: Option<(Instant, Duration)>) -> String {
    let limit = super::fault::readable(deadline.map_or(Duration::ZERO, |d| d.1));
    let after = format!("the task's timeout ({limit}) expired");
    match stop {
        Stop::Waited(last) => format!("{after} while its judge waited to retry after {last}"),
        Stop::Queued { queued, retrying } => super::fault::queued_message(
            &after,
            &format!("its judge was {queued}"),
            retrying.as_deref(),
        ),
        _ => format!("{after} while its judge ran"),
    }
}

/// Why a task failed when the task's timeout ended its judge's scoring
/// (`message`, of kind `kind`, says how: a call of the judge cut short,
/// or a wait between calls), as a failure of the judge, the model `judge`:
/// `judge strong could not score: timeout: the task's timeout (30s)
/// expired ...`, never as if the task's own model had been cut.
fn judge_timed_out(judge: &str, kind: ErrorKind, message: &str) -> String {
    could_not_score(judge, &format!("{}: {message}", kind.as_str()))
}

/// Why a task failed when its judge, the model `judge`, could not score
/// (`message` says why: the call's kind and what the server said).
pub(super) fn could_not_score(judge: &str, message: &str) -> String {
    format!("judge {judge} could not score: {message}")
}

/// Why the score of `verdict` is too low, as a task's message and a
/// warning say it: naming the judge's model (`judge strong scored the
/// answer 0.30, below its threshold 0.70: REASON`), as its failures do,
/// never the model whose answer it scored.
pub fn rejection(verdict: &JudgeVerdict) -> String {
    format!(
        "judge {} scored the answer {:.2}, below its threshold {:.2}: {}",
        verdict.model, verdict.score, verdict.threshold, verdict.reason
    )
}

/// What the judging model is told it is.
const JUDGE_SYSTEM: &str = "You are a strict reviewer. Score the answer from 0 (worthless) to 1 (excellent) and give a short reason. Answer with JSON only: {\"score\": number, \"reason\": string}.";
