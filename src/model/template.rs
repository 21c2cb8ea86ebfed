//! Templates: the minijinja environment every template of a pipeline is
//! rendered with (Jinja syntax, undefined names are errors), what a
//! template sees, and the checks made before anything runs.
//!
//! Fan-out fields (outputs, inputs, commands) see the instance's variables
//! (`item` and `key`, or the matrix variables). Prompt and system templates
//! also see `inputs` (each input path to its contents, [`Inputs`]: a file
//! is read when a template reads it, and must be UTF-8 text within
//! [`limits::MAX_FILE_BYTES`]) and `task`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::limits::{self, ReadError};
use crate::store::ErrorKind;

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
/// instance, its variables). An input the template reads that cannot be
/// read as text fails the render, saying which and why
/// ([`Inputs::trouble`] has its kind).
pub fn render(template: &str, inputs: &Inputs, task: &str, vars: &Vars) -> Result<String, String> {
    let inputs_seen = minijinja::Value::from_object(inputs.clone());
    let rendered = environment()
        .render_str(template, context(inputs_seen, task, vars))
        .map_err(|e| describe(&e).1);
    match inputs.trouble() {
        Some((_, message)) => Err(message),
        None => rendered,
    }
}

/// What a prompt, system or judge template sees as `inputs`: each input
/// path to its text. A file is read when a template first reads it, once
/// for all the templates of one run of the task, so an input a task lists
/// only to be ordered after it (or made stale by it) is never read: it may
/// be binary, or large. One that is read must be UTF-8 text of at most
/// [`limits::MAX_FILE_BYTES`]; otherwise the render fails ([`Inputs::trouble`]).
#[derive(Debug, Clone)]
pub struct Inputs(Arc<InputFiles>);

#[derive(Debug)]
struct InputFiles {
    /// Each input path, to its file.
    files: BTreeMap<String, PathBuf>,
    /// What reading each one gave, once read.
    read: Mutex<BTreeMap<String, Reading>>,
}

/// What reading one input gave: its text, or the kind of failure and why.
type Reading = Result<minijinja::Value, (ErrorKind, String)>;

impl Inputs {
    /// Inputs read from files: each input path (as templates name it) and
    /// where it is on disk.
    pub fn files(files: impl IntoIterator<Item = (String, PathBuf)>) -> Inputs {
        Inputs(Arc::new(InputFiles {
            files: files.into_iter().collect(),
            read: Mutex::default(),
        }))
    }

    /// The first input (by path) a template read that could not be read as
    /// text, with the kind of the failure: `missing_input` when it is gone
    /// or cannot be opened, `template` when it is not text a prompt can
    /// hold (not UTF-8, over the size limit, a folder).
    pub fn trouble(&self) -> Option<(ErrorKind, String)> {
        let read = self.0.read.lock().unwrap_or_else(|p| p.into_inner());
        read.values().find_map(|r| r.as_ref().err().cloned())
    }

    /// The text of input `path` (read now if no template read it yet), or
    /// why it cannot be had; `None` when the task has no such input.
    fn get(&self, path: &str) -> Option<Reading> {
        let file = self.0.files.get(path)?;
        let mut read = self.0.read.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(got) = read.get(path) {
            return Some(got.clone());
        }
        let got = read_text(path, file).map(minijinja::Value::from);
        read.insert(path.to_string(), got.clone());
        Some(got)
    }
}

impl minijinja::value::Object for Inputs {
    fn get_value(self: &Arc<Self>, key: &minijinja::Value) -> Option<minijinja::Value> {
        // An input that cannot be read renders empty; the render then
        // fails with why ([`render`]).
        match self.get(key.as_str()?)? {
            Ok(text) => Some(text),
            Err(_) => Some(minijinja::Value::from("")),
        }
    }

    fn enumerate(self: &Arc<Self>) -> minijinja::value::Enumerator {
        minijinja::value::Enumerator::Values(
            self.0
                .files
                .keys()
                .map(|k| minijinja::Value::from(k.as_str()))
                .collect(),
        )
    }
}

/// The text of input `path`, read from `file`.
fn read_text(path: &str, file: &std::path::Path) -> Result<String, (ErrorKind, String)> {
    const AS_TEXT: &str = "a template reads an input as text: make a text file of it with a command task first, or leave it out of the template (an input the template does not name is not read, and still orders the task and makes it stale)";
    let bytes = limits::read_bounded(file).map_err(|e| match e {
        ReadError::Missing | ReadError::Io(_) => (
            ErrorKind::MissingInput,
            format!("cannot read input {path}: {e}"),
        ),
        ReadError::Folder | ReadError::TooLarge(_) => (
            ErrorKind::Template,
            format!("input {path} cannot be read as text: {e}; {AS_TEXT}"),
        ),
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let byte = e.as_bytes()[at];
        (
            ErrorKind::Template,
            format!("input {path} is not UTF-8 text: byte 0x{byte:02X} at offset {at} cannot start or continue a character; {AS_TEXT}"),
        )
    })
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
    env.render_str(
        template,
        context(minijinja::Value::from_serialize(&map), task, vars),
    )
    .map(|_| ())
    .map_err(|e| {
        let (line, mut message) = describe(&e);
        if let Some(expr) = e.range().and_then(|r| template.get(r)) {
            message.push_str(&format!(": `{}`", expr.trim()));
        }
        (line, message)
    })
}

/// What a template sees: `inputs`, `task` and a fan-out's variables.
fn context(inputs: minijinja::Value, task: &str, vars: &Vars) -> minijinja::Value {
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

    /// Inputs in a temporary folder: `plan.txt` (text), `data.bin` (not
    /// UTF-8) and `gone.txt` (listed, never written).
    fn inputs() -> (tempfile::TempDir, Inputs) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("plan.txt"), "a shed").unwrap();
        std::fs::write(dir.path().join("data.bin"), b"ok\xff\x00").unwrap();
        let files =
            ["plan.txt", "data.bin", "gone.txt"].map(|p| (p.to_string(), dir.path().join(p)));
        (dir, Inputs::files(files))
    }

    #[test]
    fn an_input_no_template_names_is_never_read() {
        let (_dir, inputs) = inputs();
        let text = render(
            "About {{ inputs['plan.txt'] }} ({{ task }})",
            &inputs,
            "t",
            &Vars::new(),
        );
        assert_eq!(text.unwrap(), "About a shed (t)");
        assert!(inputs.trouble().is_none());
    }

    #[test]
    fn an_input_a_template_names_must_be_utf8_text() {
        let (_dir, inputs) = inputs();
        let err = render("{{ inputs['data.bin'] }}", &inputs, "t", &Vars::new()).unwrap_err();
        assert!(
            err.starts_with("input data.bin is not UTF-8 text: byte 0xFF at offset 2 cannot start or continue a character; "),
            "{err}"
        );
        assert_eq!(inputs.trouble().unwrap().0, ErrorKind::Template);
        // Every later render of the same run fails too.
        assert!(render("{{ inputs['plan.txt'] }}", &inputs, "t", &Vars::new()).is_err());
    }

    #[test]
    fn a_named_input_that_is_gone_is_a_missing_input() {
        let (_dir, inputs) = inputs();
        let err = render("{{ inputs['gone.txt'] }}", &inputs, "t", &Vars::new()).unwrap_err();
        assert!(
            err.starts_with("cannot read input gone.txt: it does not exist"),
            "{err}"
        );
        assert_eq!(inputs.trouble().unwrap().0, ErrorKind::MissingInput);
    }

    #[test]
    fn a_named_input_over_the_limit_or_a_folder_is_not_text() {
        let dir = tempfile::tempdir().unwrap();
        let big = std::fs::File::create(dir.path().join("big.txt")).unwrap();
        big.set_len(limits::MAX_FILE_BYTES + 1).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        for (name, says) in [
            ("big.txt", "more than the 64 MiB allowed"),
            ("sub", "it is a folder"),
        ] {
            let inputs = Inputs::files([(name.to_string(), dir.path().join(name))]);
            let err = render(
                &format!("{{{{ inputs['{name}'] }}}}"),
                &inputs,
                "t",
                &Vars::new(),
            )
            .unwrap_err();
            assert!(
                err.starts_with(&format!("input {name} cannot be read as text: ")),
                "{err}"
            );
            assert!(err.contains(says), "{err}");
            assert_eq!(inputs.trouble().unwrap().0, ErrorKind::Template);
        }
    }

    #[test]
    fn iterating_inputs_reads_each_and_one_run_reads_a_file_once() {
        let dir = tempfile::tempdir().unwrap();
        for (p, text) in [("a.txt", "A"), ("b.txt", "B")] {
            std::fs::write(dir.path().join(p), text).unwrap();
        }
        let inputs = Inputs::files(["a.txt", "b.txt"].map(|p| (p.to_string(), dir.path().join(p))));
        let all = "{% for p in inputs %}{{ p }}={{ inputs[p] }};{% endfor %}";
        assert_eq!(
            render(all, &inputs, "t", &Vars::new()).unwrap(),
            "a.txt=A;b.txt=B;"
        );
        // The system text, the prompt and the judge's see the same text.
        std::fs::write(dir.path().join("a.txt"), "changed").unwrap();
        assert_eq!(
            render("{{ inputs['a.txt'] }}", &inputs, "t", &Vars::new()).unwrap(),
            "A"
        );
    }
}
