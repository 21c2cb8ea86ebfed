//! What one call's outcome comes to: an answer to take, a failed call, or
//! an answer to re-ask with feedback. How the answer ended is looked at
//! first ([`finish`](super::finish)): one a filter or a refusal stopped, or
//! that ended without the model finishing, is never taken; one cut at the
//! token limit is `truncated` (a JSON answer whose value was complete
//! before the cut aside). Only then is the answer judged.

use super::answer;
use super::call::{CallError, CallOk};
use super::finish::Finish;
use super::provider;
use super::Llm;
use crate::model::models::ModelConfig;
use crate::model::prompt::{Format, PromptSpec};
use crate::store::ErrorKind;

/// What a call came to.
pub(super) enum Failure {
    /// The answer, accepted, as it will be written.
    None(String),
    Call(CallError),
    Answer(answer::Rejection),
}

impl Llm<'_> {
    /// Judges the outcome of a call of `provider` for `spec`.
    pub(super) fn verdict(
        &self,
        outcome: &Result<CallOk, CallError>,
        spec: &PromptSpec,
        model: &ModelConfig,
    ) -> Failure {
        let ok = match outcome {
            Err(e) => return Failure::Call(e.clone()),
            Ok(ok) => ok,
        };
        let field = provider::finish_field(model.provider);
        if let Some(e) = unfinished(&ok.answer.finish, field, &ok.answer.text) {
            return Failure::Call(e);
        }
        let raise = answer::raise_max_tokens(spec, model);
        let expect = answer::Expect {
            raise: &raise,
            ..answer::Expect::of(spec)
        };
        let judged = if ok.truncated() && spec.format == Format::Json {
            // A JSON answer cut off in the chatter after a complete value
            // is taken; one cut off inside it is re-asked.
            answer::judge_cut(&ok.answer.text, &expect, ok.answer.usage.completion_tokens)
        } else if ok.truncated() {
            // The rejected answer kept, as a JSON answer's is.
            return Failure::Call(CallError {
                raw: provider::truncate(&ok.answer.text, 2048).to_string(),
                ..CallError::new(
                    ErrorKind::Truncated,
                    answer::cut_off(ok.answer.usage.completion_tokens, &expect),
                )
            });
        } else {
            answer::judge(&ok.answer.text, &expect)
        };
        match judged {
            // Again after judging: parsing JSON undoes escapes (`\/`,
            // `\u0073`) that could hide a secret.
            Ok(text) => Failure::None(self.scrub(&text)),
            Err(rejection) => Failure::Answer(rejection),
        }
    }
}

/// The failure of an answer that ended without the model finishing it, or
/// none. `field` names the reason's field (`finish_reason`, `stop_reason`);
/// `text` is what came before the end, kept as the rejected answer.
fn unfinished(finish: &Finish, field: &str, text: &str) -> Option<CallError> {
    let (kind, reason, what) = match finish {
        Finish::Stop | Finish::Length => return None,
        Finish::Refused(reason) => (
            ErrorKind::Refused,
            reason,
            "a content filter or the model's refusal",
        ),
        Finish::Unfinished(reason) => (
            ErrorKind::ServerError,
            reason,
            "which does not say the model finished",
        ),
    };
    let reason = crate::store::untrusted::printable(provider::truncate(reason, 80)).into_owned();
    let message = format!(
        "the server ended the answer with {field} `{reason}` ({what}), after {} byte(s) of it; what came is not taken for the answer",
        text.len()
    );
    Some(CallError {
        raw: provider::truncate(text, 2048).to_string(),
        ..CallError::new(kind, message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_finished_answer_passes() {
        assert!(unfinished(&Finish::Stop, "finish_reason", "x").is_none());
        assert!(unfinished(&Finish::Length, "finish_reason", "x").is_none());
        let e = unfinished(
            &Finish::Refused("content_filter".into()),
            "finish_reason",
            "cut",
        )
        .unwrap();
        assert_eq!(e.kind, ErrorKind::Refused);
        assert_eq!(e.raw, "cut");
        assert!(e.message.contains("`content_filter`"), "{}", e.message);
        let e = unfinished(&Finish::Unfinished("abort".into()), "stop_reason", "").unwrap();
        assert_eq!(e.kind, ErrorKind::ServerError);
    }
}
