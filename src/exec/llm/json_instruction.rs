//! How a request asks for JSON in its system text, where no
//! `response_format` can: for Anthropic, and for an OpenAI-compatible
//! server with `structured_output = "none"`, or `"json_object"` (which
//! asks for JSON but cannot carry a schema). All get the same words, so a
//! task answers alike whichever provider serves it.

use crate::model::models::Structured;
use crate::model::prompt::Schema;

/// The request's system text, followed (when it asks for JSON) by the
/// instruction to answer with one JSON value only: with the schema, unless
/// `structured_output = "none"` (small models copy a schema instead of
/// following it; the prompt then shows the shape). `None` when there is
/// neither. `in_order`: the schema as its file orders its keys (what is
/// sent), else sorted (what a request's recording key is made of). (The
/// parts of a `provider::Request`, which imports this.)
pub fn system(
    system: Option<&str>,
    json: bool,
    schema: Option<&Schema>,
    structured: Structured,
    in_order: bool,
) -> Option<String> {
    if !json {
        return system.map(str::to_string);
    }
    let mut system = system.unwrap_or("").to_string();
    if !system.is_empty() {
        system.push_str("\n\n");
    }
    match schema.filter(|_| structured != Structured::None) {
        Some(schema) => system.push_str(&format!(
            "Answer with one JSON value only, no prose, that satisfies this JSON Schema:\n{}",
            // In its author's order, which the answer's keys follow; sorted
            // in the key a request is recorded under (`provider::body`).
            if in_order {
                super::ordered::compact(&schema.text, &schema.value)
            } else {
                schema.value.to_string()
            }
        )),
        None => system.push_str("Answer with one JSON value only, no prose."),
    }
    Some(system)
}
