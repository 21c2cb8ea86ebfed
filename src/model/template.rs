//! Templates: the minijinja environment every template of a pipeline is
//! rendered with (Jinja syntax, undefined names are errors), what a
//! template sees, and the checks made before anything runs.
//!
//! Fan-out fields (outputs, inputs, commands) see the instance's variables
//! (`item` and `key`, or the matrix variables). Prompt and system templates
//! also see `inputs` (each input path to its contents) and `task`.

use std::collections::BTreeMap;

use serde_json::Value;

/// Template variables of one fan-out instance.
pub type Vars = BTreeMap<String, Value>;

/// The template environment: Jinja syntax, undefined values are errors.
pub fn environment() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env
}

/// Renders a string field of a fan-out task for one instance.
pub fn render_field(text: &str, vars: &Vars) -> Result<String, String> {
    if !text.contains("{{") && !text.contains("{%") {
        return Ok(text.to_string());
    }
    environment()
        .render_str(text, vars)
        .map_err(|e| describe(&e).1)
}

/// Renders a prompt template with the task's inputs (and, for a fan-out
/// instance, its variables).
pub fn render(
    template: &str,
    inputs: &BTreeMap<String, String>,
    task: &str,
    vars: &Vars,
) -> Result<String, String> {
    environment()
        .render_str(template, context(inputs, task, vars))
        .map_err(|e| describe(&e).1)
}

/// Renders a prompt template with empty inputs to find syntax errors and
/// undefined names before anything runs: the line and what is wrong.
pub fn check(
    template: &str,
    inputs: &[String],
    task: &str,
    vars: &Vars,
) -> Result<(), (usize, String)> {
    let map: BTreeMap<String, String> = inputs.iter().map(|p| (p.clone(), String::new())).collect();
    // Debug mode keeps where an error is, so the message can quote the
    // expression (a check renders once, before anything runs).
    let mut env = environment();
    env.set_debug(true);
    env.render_str(template, context(&map, task, vars))
        .map(|_| ())
        .map_err(|e| {
            let (line, mut message) = describe(&e);
            if let Some(expr) = e.range().and_then(|r| template.get(r)) {
                message.push_str(&format!(": `{}`", expr.trim()));
            }
            (line, message)
        })
}

fn context<V: serde::Serialize>(
    inputs: &BTreeMap<String, V>,
    task: &str,
    vars: &Vars,
) -> minijinja::Value {
    let base = minijinja::context! { inputs => inputs, task => task };
    if vars.is_empty() {
        base
    } else {
        minijinja::context! { ..base, ..minijinja::Value::from_serialize(vars) }
    }
}

/// The line of a template error and what it says.
fn describe(e: &minijinja::Error) -> (usize, String) {
    let line = e.line().unwrap_or(1);
    let mut message = e.kind().to_string();
    if let Some(detail) = e.detail() {
        message.push_str(": ");
        message.push_str(detail);
    }
    (line, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undefined_names_are_errors_with_a_line() {
        let vars = Vars::from([("key".to_string(), Value::from("a"))]);
        assert_eq!(render_field("o/{{ key }}.md", &vars).unwrap(), "o/a.md");
        assert!(render_field("{{ nope }}", &vars).is_err());
        let (line, message) = check("x\n{{ inputs['b'] }}", &["a".into()], "t", &vars).unwrap_err();
        assert_eq!(line, 2, "{message}");
        assert!(message.ends_with("`inputs['b']`"), "{message}");
        assert!(check("{{ inputs['a'] }} {{ task }}", &["a".into()], "t", &vars).is_ok());
    }
}
