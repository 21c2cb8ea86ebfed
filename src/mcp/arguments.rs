//! A tool call's arguments: checked against the tool's declared
//! `inputSchema` (each problem named by its place, at most ten of them, a
//! long value quoted short), then read into the typed arguments of its
//! handler. A client may ignore the schemas: what they say is what the
//! server enforces.

use serde::Deserialize;
use serde_json::Value;

use super::{limits, Server};
use crate::error::{Error, Result};

/// Checks `arguments` against the tool's `inputSchema`.
pub fn check(server: &Server, index: usize, arguments: &Value) -> Result<()> {
    let tool = &server.tools[index];
    let Some(validator) = server.validators.get(index) else {
        return Err(Error::usage(format!(
            "{} cannot check its arguments",
            tool.name
        )));
    };
    let mut problems: Vec<String> = validator
        .iter_errors(arguments)
        .map(|e| {
            let at = e.instance_path.to_string();
            let said = shortened(&e.to_string(), &e.instance.to_string());
            if at.is_empty() {
                said
            } else {
                format!("{at}: {said}")
            }
        })
        .collect();
    if problems.is_empty() {
        return Ok(());
    }
    if problems.len() > PROBLEMS_SAID {
        let more = problems.len() - PROBLEMS_SAID;
        problems.truncate(PROBLEMS_SAID);
        problems.push(format!("and {more} more"));
    }
    Err(Error::usage(format!(
        "invalid arguments for {}: {}",
        tool.name,
        problems.join("; ")
    ))
    .hint(format!(
        "{} takes {}; its inputSchema in tools/list says more",
        tool.name,
        describe(&tool.input)
    )))
}

/// The most schema errors one answer lists.
const PROBLEMS_SAID: usize = 10;

/// `message` (a schema error quoting the value it is about, `value`) with
/// a long value cut short: a client that sent megabytes gets its error,
/// not its megabytes back.
fn shortened(message: &str, value: &str) -> String {
    if value.len() <= limits::QUOTED || !message.contains(value) {
        return message.to_string();
    }
    message.replacen(value, &limits::quoted(value), 1)
}

/// The arguments a schema takes, in a few words: `run (required), timeout_s`.
fn describe(schema: &Value) -> String {
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let names: Vec<String> = schema["properties"]
        .as_object()
        .map(|p| {
            p.keys()
                .map(|k| {
                    if required.contains(&k.as_str()) {
                        format!("{k} (required)")
                    } else {
                        k.clone()
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        "no arguments".into()
    } else {
        names.join(", ")
    }
}

/// The typed arguments of a tool.
pub fn args<T: for<'de> Deserialize<'de>>(tool: &str, arguments: Value) -> Result<T> {
    serde_json::from_value(arguments).map_err(|e| {
        Error::usage(format!("invalid arguments for {tool}: {e}")).hint(format!(
            "{tool}'s inputSchema in tools/list says what it takes"
        ))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Create {
    pub plan: String,
    pub pipeline: Option<String>,
    pub name: Option<String>,
    #[serde(default)]
    pub files: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Build {
    pub run: String,
    #[serde(default)]
    pub targets: Vec<String>,
    pub model: Option<String>,
    #[serde(default)]
    pub force: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Run {
    pub run: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wait {
    pub run: String,
    pub timeout_s: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Clean {
    pub run: String,
    pub tasks: Vec<String>,
    #[serde(default)]
    pub downstream: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Explain {
    pub run: String,
    pub task: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Runs {
    #[serde(default)]
    pub archived: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Archive {
    pub run: String,
    #[serde(default)]
    pub restore: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadOutput {
    pub run: String,
    pub path: String,
    /// A number: JSON Schema's `integer` is any number without a
    /// fraction, `5.0` too, and the schema has checked it is one, in range.
    pub max_bytes: Option<f64>,
    /// As `max_bytes`.
    pub offset: Option<f64>,
}
