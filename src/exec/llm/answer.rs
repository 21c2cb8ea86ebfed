//! Judging an answer. Reasoning that leads it (`<think>…</think>`) is
//! removed first, unless a text task keeps it. Text is then taken as
//! returned; JSON is found in the answer (the whole of it, a fenced block,
//! or a value in running text: see [`extract`]), validated against the
//! task's schema and pretty-printed, its keys in the answer's order
//! (`ordered.rs`). A rejected answer comes with feedback for the model
//! that says exactly what was wrong, and the fields at fault.

use serde_json::Value;

use super::extract::{self, Extracted, Place};
use crate::model::models::{ModelConfig, Provider, DEFAULT_ANTHROPIC_MAX_TOKENS};
use crate::model::prompt::{Format, PromptSpec, Schema};
use crate::store::ErrorKind;

/// Why an answer was rejected.
#[derive(Debug, Clone)]
pub struct Rejection {
    pub kind: ErrorKind,
    /// For the log and the user.
    pub message: String,
    /// Sent back to the model.
    pub feedback: String,
    pub missing_fields: Vec<String>,
    pub invalid_fields: Vec<String>,
}

impl Rejection {
    fn new(kind: ErrorKind, message: String, feedback: String) -> Rejection {
        Rejection {
            kind,
            message,
            feedback,
            missing_fields: Vec::new(),
            invalid_fields: Vec::new(),
        }
    }
}

/// What a task expects of an answer.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    pub format: Format,
    pub schema: Option<&'a Schema>,
    /// Write a text answer's leading reasoning too.
    pub keep_reasoning: bool,
    /// The answer is a judge's, whose `max_tokens` is planexe's: a cut-off
    /// is not the user's to raise.
    pub judge: bool,
    /// Which `max_tokens` to raise when the answer is cut off at the token
    /// limit ([`raise_max_tokens`]): the task's own, or its model's.
    pub raise: &'a str,
}

/// What to raise when an answer to `spec` from `model` is cut off at the
/// token limit: the limit that was sent is the task's `max_tokens` when it
/// sets one, else the model's; with neither, the server's own limit (or,
/// for Anthropic, planexe's default) cut it, and the model needs one.
pub fn raise_max_tokens(spec: &PromptSpec, model: &ModelConfig) -> String {
    let name = &model.name;
    match (spec.max_tokens, model.max_tokens) {
        (Some(n), _) => format!("raise the task's max_tokens ({n})"),
        (None, Some(n)) => format!("raise max_tokens ({n}) under [models.{name}]"),
        (None, None) if model.provider == Provider::Anthropic => format!(
            "set max_tokens under [models.{name}] (without it planexe asks for {DEFAULT_ANTHROPIC_MAX_TOKENS})"
        ),
        (None, None) => format!(
            "set max_tokens under [models.{name}] (none was sent: the server's own limit cut it)"
        ),
    }
}

/// The failure of a text answer cut off at the token limit (`tokens`, as
/// the server counted them), with what to do ([`Expect::cut_off_advice`]).
pub fn cut_off(tokens: Option<u64>, expect: &Expect) -> String {
    let tokens = tokens.map_or("?".to_string(), |n| n.to_string());
    format!(
        "the answer was cut off at the token limit ({tokens} tokens); {}",
        expect.cut_off_advice()
    )
}

impl Expect<'_> {
    /// What a call cut off at the token limit asks of the user: the task's
    /// `max_tokens` (or its model's) is theirs, a judge's is planexe's (its
    /// prompt is theirs).
    pub fn cut_off_advice(&self) -> String {
        if self.judge {
            "ask the judge for a shorter reason (its `prompt`), or judge with another model".into()
        } else {
            format!("{} or ask for less", self.raise)
        }
    }
}

impl<'a> Expect<'a> {
    pub fn of(spec: &'a PromptSpec) -> Expect<'a> {
        Expect {
            format: spec.format,
            schema: spec.schema.as_deref(),
            keep_reasoning: spec.keep_reasoning,
            judge: spec.judge,
            raise: "raise max_tokens",
        }
    }
}

const ANSWER_AGAIN: &str = "Answer again with the JSON value only: no prose, no code fence.";

/// Judges a JSON answer the token limit cut off: a complete value that
/// satisfies the schema before the cut (the model went on chatting) is
/// taken; otherwise the answer is `truncated`, and the model is asked again
/// for the JSON alone. The message says what was found before the cut: no
/// JSON at all, JSON that did not end, or a complete value that fails the
/// schema (then the schema's complaint comes first, and its fields).
pub fn judge_cut(text: &str, expect: &Expect, tokens: Option<u64>) -> Result<String, Rejection> {
    judge(text, expect).map_err(|why| {
        let at = tokens.map_or_else(|| "the token limit".to_string(), |n| format!("the token limit ({n} tokens)"));
        let (message, feedback) = match why.kind {
            ErrorKind::Schema => (
                format!("{}; the answer was also cut off at {at}", why.message),
                format!(
                    "{}\nYour answer also ran to {at} and was cut off: give the JSON value only, no prose after it.",
                    why.feedback
                ),
            ),
            ErrorKind::EmptyAnswer => (
                format!("{}, and the answer was cut off at {at}; {}", why.message, expect.cut_off_advice()),
                format!("Your answer was cut off at {at} before any answer. {ANSWER_AGAIN}"),
            ),
            _ if no_json(&why, text, expect) => (
                format!("the answer holds no JSON: it was cut off at {at} before any JSON value began; {}", if expect.judge { expect.cut_off_advice() } else { format!("{} or ask for the JSON alone", expect.raise) }),
                format!("Your answer was cut off at {at} before it gave any JSON. {ANSWER_AGAIN}"),
            ),
            _ => (
                format!("the answer was cut off at {at} before its JSON was complete; {}", expect.cut_off_advice()),
                format!(
                    "Your answer was cut off at {at} before the JSON was complete. Answer again with the JSON value only: no prose, no explanation, shorter strings."
                ),
            ),
        };
        Rejection {
            kind: ErrorKind::Truncated,
            message,
            feedback,
            ..why
        }
    })
}

/// Whether a rejected answer holds no JSON value at all, rather than one
/// that does not parse (as [`judge`] looks for it).
fn no_json(why: &Rejection, text: &str, expect: &Expect) -> bool {
    if why.kind != ErrorKind::InvalidJson {
        return false;
    }
    let stripped = extract::strip_reasoning(text);
    let fits = |v: &Value| expect.schema.is_none_or(|s| s.validator.is_valid(v));
    matches!(
        extract::extract_json(text, stripped.offset, &fits),
        Extracted::Nothing { .. }
    )
}

/// Returns the text to write, or why the answer is not acceptable.
pub fn judge(text: &str, expect: &Expect) -> Result<String, Rejection> {
    if text.trim().is_empty() {
        return Err(Rejection::new(
            ErrorKind::EmptyAnswer,
            "the answer is empty".into(),
            "Your answer was empty. Answer the request.".into(),
        ));
    }
    if expect.format == Format::Text && expect.keep_reasoning {
        return Ok(text.to_string());
    }
    let stripped = extract::strip_reasoning(text);
    if stripped.answer.trim().is_empty() {
        let why = if stripped.unclosed {
            "its reasoning (<think>) was never closed"
        } else {
            "nothing follows its reasoning (<think>…</think>)"
        };
        return Err(Rejection::new(
            ErrorKind::EmptyAnswer,
            format!("the answer holds only reasoning: {why}"),
            "Your reply held only your reasoning and no answer. Close your reasoning and give the answer after it.".into(),
        ));
    }
    if expect.format == Format::Text {
        return Ok(stripped.answer.to_string());
    }
    let fits = |v: &Value| expect.schema.is_none_or(|s| s.validator.is_valid(v));
    let found = match extract::extract_json(text, stripped.offset, &fits) {
        Extracted::Found(found) => found,
        Extracted::Invalid(e) => {
            let (message, feedback) = match &e.place {
                Place::Whole => (
                    format!("the answer is not valid JSON: {} at line {}, column {}", e.error, e.line, e.column),
                    format!("Your answer is not valid JSON: {} at line {}, column {}. {ANSWER_AGAIN}", e.error, e.line, e.column),
                ),
                Place::Fence { .. } => (
                    format!("{} is not valid JSON: {} at line {}, column {} of the block", e.place.describe(), e.error, e.line, e.column),
                    format!(
                        "The JSON in your code block is not valid: {} at line {}, column {} of the block. {ANSWER_AGAIN}",
                        e.error, e.line, e.column
                    ),
                ),
                Place::Inline { line, column } => (
                    format!("the answer holds no valid JSON; {} is not: {} at line {}, column {} of the value", e.place.describe(), e.error, e.line, e.column),
                    format!(
                        "The JSON value in your answer (at line {line}, column {column}) is not valid: {} at line {}, column {} of the value. {ANSWER_AGAIN}",
                        e.error, e.line, e.column
                    ),
                ),
            };
            return Err(Rejection::new(ErrorKind::InvalidJson, message, feedback));
        }
        Extracted::Nothing { other_fences } => {
            let fences = if other_fences.is_empty() {
                String::new()
            } else {
                format!(
                    " (blocks fenced as {} are not JSON)",
                    other_fences.join(", ")
                )
            };
            return Err(Rejection::new(
                ErrorKind::InvalidJson,
                format!("the answer holds no JSON: looked at the whole answer, ```json blocks{fences}, and {{…}} or […] in the text"),
                format!("Your answer contains no JSON value{fences}. {ANSWER_AGAIN}"),
            ));
        }
    };
    let value = &found.value;
    if let Some(schema) = expect.schema {
        let mut missing = Vec::new();
        let mut invalid = Vec::new();
        let mut lines = Vec::new();
        for error in schema.validator.iter_errors(value) {
            let at = error.instance_path.to_string();
            let at = if at.is_empty() { "/".to_string() } else { at };
            if let jsonschema::error::ValidationErrorKind::Required { property } = &error.kind {
                let name = property
                    .as_str()
                    .map_or_else(|| property.to_string(), str::to_string);
                let path = if at == "/" {
                    format!("/{name}")
                } else {
                    format!("{at}/{name}")
                };
                missing.push(path);
            } else {
                invalid.push(at.clone());
            }
            lines.push(format!("- at {at}: {error}"));
            if lines.len() >= 20 {
                break;
            }
        }
        if !lines.is_empty() {
            let taken = match found.place {
                Place::Whole => String::new(),
                ref place => format!(" ({})", place.describe()),
            };
            return Err(Rejection {
                kind: ErrorKind::Schema,
                message: format!(
                    "the answer{taken} does not match the schema: {}",
                    lines.join("; ").replace("- ", "")
                ),
                feedback: format!(
                    "Your JSON{taken} does not satisfy the required schema:\n{}\nAnswer again with corrected JSON only.",
                    lines.join("\n")
                ),
                missing_fields: missing,
                invalid_fields: invalid,
            });
        }
    }
    Ok(super::ordered::pretty(&found.text, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Schema {
        let value = json!({
            "type": "object",
            "required": ["assumptions"],
            "properties": {"assumptions": {"type": "array", "items": {"type": "string"}}}
        });
        Schema {
            path: "s.json".into(),
            text: value.to_string(),
            validator: jsonschema::validator_for(&value).unwrap(),
            value,
        }
    }

    fn json(schema: Option<&Schema>) -> Expect<'_> {
        Expect {
            format: Format::Json,
            schema,
            keep_reasoning: false,
            judge: false,
            raise: "raise max_tokens",
        }
    }

    #[test]
    fn fences_are_stripped_and_json_pretty_printed() {
        let out = judge(
            "```json\n{\"assumptions\":[\"a\"]}\n```",
            &json(Some(&schema())),
        )
        .unwrap();
        assert_eq!(out, "{\n  \"assumptions\": [\n    \"a\"\n  ]\n}\n");
    }

    #[test]
    fn schema_failures_name_the_fields() {
        let r = judge("{\"other\": 1}", &json(Some(&schema()))).unwrap_err();
        assert_eq!(r.kind, ErrorKind::Schema);
        assert_eq!(r.missing_fields, vec!["/assumptions"]);
        let r = judge("{\"assumptions\": [1]}", &json(Some(&schema()))).unwrap_err();
        assert_eq!(r.invalid_fields, vec!["/assumptions/0"]);
        assert!(r.feedback.contains("/assumptions/0"), "{}", r.feedback);
        let r = judge("{\"assumptions\": [1,]}", &json(None)).unwrap_err();
        assert_eq!(r.kind, ErrorKind::InvalidJson);
        assert!(r.feedback.contains("line 1, column 20"), "{}", r.feedback);
    }

    #[test]
    fn a_cut_answer_says_what_came_before_the_cut() {
        let s = schema();
        let cut = |text| judge_cut(text, &json(Some(&s)), Some(9)).unwrap_err();
        let prose = cut("Here is what I think we should");
        assert_eq!(prose.kind, ErrorKind::Truncated);
        assert!(prose.message.contains("holds no JSON"), "{}", prose.message);
        let schema_failed = cut("{\"other\": 1}\nAnd then");
        assert_eq!(schema_failed.kind, ErrorKind::Truncated);
        assert!(
            schema_failed.message.contains("does not match the schema")
                && schema_failed
                    .message
                    .contains("also cut off at the token limit (9 tokens)"),
            "{}",
            schema_failed.message
        );
        assert_eq!(schema_failed.missing_fields, vec!["/assumptions"]);
        let inside = cut("{\"assumptions\": [\"a");
        assert!(
            inside.message.contains("before its JSON was complete"),
            "{}",
            inside.message
        );
        assert!(judge_cut("{\"assumptions\": []}\nmore", &json(Some(&s)), None).is_ok());
    }
}
