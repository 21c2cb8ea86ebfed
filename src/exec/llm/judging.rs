//! A task's judge at work: the judging model scores an accepted answer
//! (`{"score", "reason"}` under a fixed schema); below the threshold the
//! task's model is asked again with the reason, up to the judge's
//! `retries`; then a low score fails the task as `judge_rejected` (or, with
//! `severity = "warn"`, the answer stands and the verdict is a quality
//! warning). Judge calls are model calls like any other: they are in
//! `usage.jsonl`, their failures in `failures.jsonl`, and record, replay
//! and the cache apply to them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::provider::Message;
use super::{CallProgress, Llm, PromptResult, Stop};
use crate::model::judge::{self, Judge};
use crate::model::prompt::{Format, PromptSpec};
use crate::model::template;
use crate::store::ledger::FailureLine;
use crate::store::record::JudgeVerdict;
use crate::store::ErrorKind;

/// What one judging of a task's answer needs besides the answer.
pub(super) struct Judging<'a> {
    pub task: &'a str,
    pub spec: &'a PromptSpec,
    pub judge: &'a Judge,
    pub inputs: &'a BTreeMap<String, String>,
    pub system: Option<&'a str>,
    /// The task's model, asked again with the judge's reason.
    pub m: usize,
    pub deadline: Option<(Instant, Duration)>,
    pub progress: &'a Arc<CallProgress>,
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
        let mut rounds = 0u32;
        loop {
            let (score, reason) = self.score(j, &answer, attempt_no, on_attempt, result)?;
            rounds += 1;
            let passed = score >= j.judge.threshold;
            result.judge = Some(JudgeVerdict {
                model: self.models[j.judge.model].name.clone(),
                score,
                reason: reason.clone(),
                threshold: j.judge.threshold,
                passed,
                rounds,
            });
            if passed {
                return Ok(answer);
            }
            let message = format!(
                "the judge scored the answer {score:.2}, below its threshold {:.2}: {reason}",
                j.judge.threshold
            );
            if rounds > j.judge.retries {
                if j.judge.warn {
                    return Ok(answer);
                }
                let error_id = uuid::Uuid::new_v4().to_string();
                self.ledger.failure(&FailureLine {
                    model: Some(&self.models[j.judge.model].name),
                    attempt: *attempt_no,
                    recoverable: false,
                    ..FailureLine::new(
                        j.task,
                        ErrorKind::JudgeRejected,
                        &self.redact(&message),
                        &error_id,
                        self.run_dir,
                    )
                });
                return Err(Stop::Failed {
                    kind: ErrorKind::JudgeRejected,
                    message: format!("judge_rejected: {message} (after {} re-ask(s))", rounds - 1),
                    error_id,
                });
            }
            conversation.push(Message {
                role: "assistant",
                content: answer,
            });
            conversation.push(Message {
                role: "user",
                content: format!(
                    "A reviewer scored your answer {score:.2} out of 1 (it needs {:.2}): {reason}\nAnswer again, improved, in the same format.",
                    j.judge.threshold
                ),
            });
            answer = self.ask(
                j.task,
                j.spec,
                &conversation,
                j.system,
                j.m,
                j.deadline,
                j.progress,
                attempt_no,
                on_attempt,
                result,
            )?;
        }
    }

    /// Asks the judging model to score `answer`: (score, reason).
    fn score(
        &self,
        j: &Judging,
        answer: &str,
        attempt_no: &mut u32,
        on_attempt: &mut dyn FnMut(u32, &str),
        result: &mut PromptResult,
    ) -> Result<(f64, String), Stop> {
        let mut vars = j.spec.vars.clone();
        vars.insert(
            "output".into(),
            serde_json::Value::String(answer.to_string()),
        );
        let prompt = template::render(&j.judge.template, j.inputs, j.task, &vars).map_err(|m| {
            Stop::Failed {
                kind: ErrorKind::Template,
                message: format!("cannot render the judge's prompt: {m}"),
                error_id: uuid::Uuid::new_v4().to_string(),
            }
        })?;
        let spec = PromptSpec {
            template: String::new(),
            template_origin: "the judge".into(),
            system: None,
            schema: Some(Arc::clone(&j.judge.schema)),
            format: Format::Json,
            model: j.judge.model,
            retries: 2,
            max_tokens: Some(judge::MAX_TOKENS),
            keep_reasoning: false,
            judge: None,
            vars: Default::default(),
        };
        let text = self.ask(
            j.task,
            &spec,
            &[Message {
                role: "user",
                content: prompt,
            }],
            Some(JUDGE_SYSTEM),
            j.judge.model,
            j.deadline,
            j.progress,
            attempt_no,
            on_attempt,
            result,
        )?;
        // The schema held: a number from 0 to 1 and a string.
        let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let score = value["score"].as_f64().unwrap_or(0.0).clamp(0.0, 1.0);
        let reason = value["reason"].as_str().unwrap_or("").to_string();
        Ok((score, reason))
    }
}

/// What the judging model is told it is.
const JUDGE_SYSTEM: &str = "You are a strict reviewer. Score the answer from 0 (worthless) to 1 (excellent) and give a short reason. Answer with JSON only: {\"score\": number, \"reason\": string}.";
