//! Judging an answer: text is taken as returned; JSON is unfenced, parsed,
//! validated against the task's schema and pretty-printed. A rejected
//! answer comes with feedback for the model and the fields at fault.

use serde_json::Value;

use crate::model::prompt::{Format, Schema};
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

/// Returns the text to write, or why the answer is not acceptable.
pub fn judge(text: &str, format: Format, schema: Option<&Schema>) -> Result<String, Rejection> {
    if text.trim().is_empty() {
        return Err(Rejection {
            kind: ErrorKind::EmptyAnswer,
            message: "the answer is empty".into(),
            feedback: "Your answer was empty. Answer the request.".into(),
            missing_fields: Vec::new(),
            invalid_fields: Vec::new(),
        });
    }
    if format == Format::Text {
        return Ok(text.to_string());
    }
    let body = strip_fence(text);
    let value: Value = serde_json::from_str(body).map_err(|e| Rejection {
        kind: ErrorKind::InvalidJson,
        message: format!("the answer is not JSON: {e}"),
        feedback: format!(
            "Your answer is not valid JSON: {e} at line {}, column {}. Answer again with one JSON value only, no prose and no code fence.",
            e.line(),
            e.column()
        ),
        missing_fields: Vec::new(),
        invalid_fields: Vec::new(),
    })?;
    if let Some(schema) = schema {
        let mut missing = Vec::new();
        let mut invalid = Vec::new();
        let mut lines = Vec::new();
        for error in schema.validator.iter_errors(&value) {
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
            return Err(Rejection {
                kind: ErrorKind::Schema,
                message: format!("the answer does not match the schema: {}", lines.join("; ").replace("- ", "")),
                feedback: format!(
                    "Your JSON does not satisfy the required schema:\n{}\nAnswer again with corrected JSON only.",
                    lines.join("\n")
                ),
                missing_fields: missing,
                invalid_fields: invalid,
            });
        }
    }
    let mut pretty = serde_json::to_string_pretty(&value).unwrap_or_else(|_| body.to_string());
    pretty.push('\n');
    Ok(pretty)
}

/// Removes a surrounding Markdown code fence (```json ... ```), if any.
pub fn strip_fence(text: &str) -> &str {
    let t = text.trim();
    let Some(rest) = t.strip_prefix("```") else {
        return t;
    };
    let Some(newline) = rest.find('\n') else {
        return t;
    };
    let inner = &rest[newline + 1..];
    inner.trim_end().strip_suffix("```").unwrap_or(inner).trim()
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

    #[test]
    fn fences_are_stripped_and_json_pretty_printed() {
        let out = judge(
            "```json\n{\"assumptions\":[\"a\"]}\n```",
            Format::Json,
            Some(&schema()),
        )
        .unwrap();
        assert_eq!(out, "{\n  \"assumptions\": [\n    \"a\"\n  ]\n}\n");
    }

    #[test]
    fn schema_failures_name_the_fields() {
        let r = judge("{\"other\": 1}", Format::Json, Some(&schema())).unwrap_err();
        assert_eq!(r.kind, ErrorKind::Schema);
        assert_eq!(r.missing_fields, vec!["/assumptions"]);
        let r = judge("{\"assumptions\": [1]}", Format::Json, Some(&schema())).unwrap_err();
        assert_eq!(r.invalid_fields, vec!["/assumptions/0"]);
        assert!(r.feedback.contains("/assumptions/0"), "{}", r.feedback);
        let r = judge("here you go: {", Format::Json, None).unwrap_err();
        assert_eq!(r.kind, ErrorKind::InvalidJson);
        assert!(r.feedback.contains("line 1"));
    }
}
