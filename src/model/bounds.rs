//! Whether constrained decoding under a task's schema can end. A server
//! that enforces a JSON Schema by grammar (llama.cpp, vLLM, Ollama, LM
//! Studio) lets a model write an array without `maxItems`, or a string
//! without `maxLength`, for ever: small models do, until `max_tokens` or
//! the request timeout. Such schemas are worth a warning when the pipeline
//! is loaded, not an error: a larger model usually ends on its own.

use std::path::Path;

use serde_json::Value;

use super::graph::Graph;
use super::models::{self, Provider, Structured};
use super::Action;

/// The most places named in one warning.
const SHOWN: usize = 3;

/// JSON pointers (into the schema) of the arrays without `maxItems` and
/// the strings without `maxLength` (nor `enum`, `const` or `format`, which
/// bound them too), typed so or, without `type`, by the keywords that
/// imply one (`items`, `minLength`).
pub fn unbounded(schema: &Value) -> Vec<String> {
    let mut found = Vec::new();
    walk(schema, String::new(), &mut found, 0);
    found
}

fn walk(node: &Value, at: String, found: &mut Vec<String>, depth: usize) {
    // Schemas are loaded from files the user wrote; a deep one is still
    // walked no further than any sane schema goes.
    if depth > 64 {
        return;
    }
    let Value::Object(map) = node else {
        if let Value::Array(items) = node {
            for (i, item) in items.iter().enumerate() {
                walk(item, format!("{at}/{i}"), found, depth + 1);
            }
        }
        return;
    };
    // A schema without `type` is of the kind its keywords imply, as
    // llama.cpp's grammar reads it: `items` makes an array.
    let implied = |keys: &[&str]| keys.iter().any(|k| map.contains_key(*k));
    let is = |kind: &str| match map.get("type") {
        Some(Value::String(t)) => t == kind,
        Some(Value::Array(ts)) => ts.iter().any(|t| t.as_str() == Some(kind)),
        None => match kind {
            "array" => implied(&["items", "prefixItems", "minItems"]),
            "string" => implied(&["minLength"]),
            _ => false,
        },
        _ => false,
    };
    let fixed = ["enum", "const"].iter().any(|k| map.contains_key(*k));
    let place = if at.is_empty() { "/" } else { at.as_str() };
    if is("array") && !map.contains_key("maxItems") && !fixed {
        found.push(format!("{place} (array without maxItems)"));
    }
    if is("string")
        && !fixed
        && !["maxLength", "format", "pattern"]
            .iter()
            .any(|k| map.contains_key(*k))
    {
        found.push(format!("{place} (string without maxLength)"));
    }
    for (key, child) in map {
        walk(child, format!("{at}/{}", escape(key)), found, depth + 1);
    }
}

/// A JSON pointer token (RFC 6901).
pub(super) fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// One warning per prompt task whose schema a model of its chain would
/// enforce by grammar and that has unbounded arrays or strings; `show`
/// gives the schema's path as messages show it (relative to the run
/// directory when it lies inside).
pub fn warnings(graph: &Graph, show: &dyn Fn(&Path) -> String) -> Vec<String> {
    let mut out = Vec::new();
    for task in graph.tasks() {
        let Action::Prompt(spec) = &task.action else {
            continue;
        };
        let Some(schema) = &spec.schema else {
            continue;
        };
        let enforced = models::chain(&graph.models, spec.model)
            .into_iter()
            .any(|m| {
                let model = &graph.models[m];
                model.provider == Provider::OpenAi && model.structured == Structured::JsonSchema
            });
        if !enforced {
            continue;
        }
        let places = unbounded(&schema.value);
        if places.is_empty() {
            continue;
        }
        let mut shown: Vec<String> = places.iter().take(SHOWN).cloned().collect();
        if places.len() > SHOWN {
            shown.push(format!("{} more", places.len() - SHOWN));
        }
        out.push(format!(
            "task `{}`: schema {} has {}; constrained decoding may never end on a small model (set maxItems and maxLength)",
            task.name,
            show(&schema.path),
            shown.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unbounded_arrays_and_strings_are_found() {
        let schema = json!({
            "type": "object",
            "properties": {
                "risks": {"type": "array", "items": {"type": "string"}},
                "kept": {"type": "array", "maxItems": 5, "items": {"type": "string", "maxLength": 80}},
                "level": {"type": "string", "enum": ["low", "high"]},
                "when": {"type": "string", "format": "date"},
                "a/b": {"type": ["string", "null"]}
            }
        });
        assert_eq!(
            unbounded(&schema),
            vec![
                "/properties/a~1b (string without maxLength)",
                "/properties/risks (array without maxItems)",
                "/properties/risks/items (string without maxLength)",
            ]
        );
        assert!(unbounded(&json!({"type": "integer"})).is_empty());
        // Untyped, of the kind its keywords imply (llama.cpp's grammar
        // reads `items` as an array: SmolLM2 listed `1.1.1.1`, ... until
        // the timeout).
        assert_eq!(
            unbounded(&json!({"properties": {"steps": {"items": {"maxLength": 30}}}})),
            vec!["/properties/steps (array without maxItems)"]
        );
        assert_eq!(
            unbounded(&json!({"minLength": 1})),
            vec!["/ (string without maxLength)"]
        );
        assert!(unbounded(&json!({"items": {"enum": ["a"]}, "maxItems": 3})).is_empty());
        assert_eq!(
            unbounded(&json!({"type": "array"})),
            vec!["/ (array without maxItems)"]
        );
    }
}
