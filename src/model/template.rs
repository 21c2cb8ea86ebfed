//! Templates: the minijinja environment every template of a pipeline is
//! rendered with (Jinja syntax, undefined names are errors), what a
//! template sees, and the checks made before anything runs.
//!
//! Fan-out fields (outputs, inputs, commands) see the instance's variables
//! (`item` and `key`, or the matrix variables). Prompt and system templates
//! also see `inputs` (each input path to its contents, read when a
//! template names it: [`Files`]) and `task`; a judge's, its `outputs` and
//! `output` too.

use std::collections::BTreeMap;

use serde_json::Value;

use super::template_files::Files;

/// Template variables of one fan-out instance.
pub type Vars = BTreeMap<String, Value>;

/// The template environment: Jinja syntax, undefined values are errors.
pub fn environment() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env
}

/// Renders a string field of a fan-out task for one instance (a command:
/// `shell_template::render`).
pub fn render_field(text: &str, vars: &Vars) -> Result<String, String> {
    if !text.contains("{{") && !text.contains("{%") {
        return Ok(text.to_string());
    }
    static SHARED: std::sync::OnceLock<minijinja::Environment<'static>> =
        std::sync::OnceLock::new();
    render_in(SHARED.get_or_init(environment), text, vars)
}

/// Renders `text` with `vars` in `env` (one made by [`environment`]).
pub fn render_in(
    env: &minijinja::Environment<'_>,
    text: &str,
    vars: &Vars,
) -> Result<String, String> {
    env.render_str(text, vars).map_err(|e| {
        let mut message = describe(&e).1;
        // The expression at fault, as a check quotes it (`nope`): found by
        // rendering again in debug mode, which keeps where an error is;
        // only on this path, so a render costs nothing more.
        let mut debug = env.clone();
        debug.set_debug(true);
        if let Some(expr) = debug
            .render_str(text, vars)
            .err()
            .and_then(|e| e.range())
            .and_then(|r| at_fault(text, r))
        {
            message.push_str(&format!(": `{expr}`"));
        }
        message
    })
}

/// The expression at fault in `text`, whose error points at `range`: the
/// whole expression of the `{{ }}` or `{% %}` tag around it (minijinja
/// points at a part: `upper` of `item.nope | upper`, `.title.x` of
/// `item.title.x`), else what the range covers.
fn at_fault(text: &str, range: std::ops::Range<usize>) -> Option<&str> {
    let part = text.get(range.clone())?.trim();
    let whole = tags(text)
        .find(|tag| tag.start <= range.start && range.end <= tag.end)
        .map(|tag| text[tag].trim_matches(|c: char| c.is_whitespace() || c == '-' || c == '+'))
        .filter(|expr| !expr.is_empty());
    Some(whole.unwrap_or(part))
}

/// The insides of the `{{ }}` and `{% %}` tags of `text`, in order (the
/// last one to the end of the text when it is not closed).
fn tags(text: &str) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    let mut from = 0;
    std::iter::from_fn(move || {
        while let Some(open) = text.get(from..)?.find('{').map(|i| from + i) {
            let close = match text.get(open..open + 2) {
                Some("{{") => "}}",
                Some("{%") => "%}",
                _ => {
                    from = open + 1;
                    continue;
                }
            };
            let inner = open + 2;
            let end = text[inner..].find(close).map_or(text.len(), |i| inner + i);
            from = end;
            return Some(inner..end);
        }
        None
    })
}

/// Renders a prompt template with the task's inputs (and, for a fan-out
/// instance, its variables). An input the template names that cannot be
/// read as text fails the render, saying which and why
/// ([`Files::trouble`] has its kind).
pub fn render(template: &str, inputs: &Files, task: &str, vars: &Vars) -> Result<String, String> {
    let env = environment();
    let template = env
        .template_from_str(template)
        .map_err(|e| describe(&e).1)?;
    let seen = minijinja::context! {
        inputs => minijinja::Value::from_object(inputs.clone()),
        task => task,
    };
    render_seeing(&template, seen, &[inputs], vars)
}

/// Renders a judge's prompt: it also sees `outputs` (each output's text
/// by path) and `output`, the text of `first` (read only when the
/// template names `output`).
pub fn render_judged(
    template: &str,
    inputs: &Files,
    outputs: &Files,
    first: &str,
    task: &str,
    vars: &Vars,
) -> Result<String, String> {
    let env = environment();
    let template = env
        .template_from_str(template)
        .map_err(|e| describe(&e).1)?;
    let output = match template.undeclared_variables(false).contains("output") {
        true => outputs
            .text(first)
            .unwrap_or_else(|| minijinja::Value::from("")),
        false => minijinja::Value::from(""),
    };
    let seen = minijinja::context! {
        inputs => minijinja::Value::from_object(inputs.clone()),
        outputs => minijinja::Value::from_object(outputs.clone()),
        output => output,
        task => task,
    };
    render_seeing(&template, seen, &[inputs, outputs], vars)
}

/// Renders `template` seeing `seen` and a fan-out's variables; a file of
/// `files` it named that could not be read fails it.
fn render_seeing(
    template: &minijinja::Template,
    seen: minijinja::Value,
    files: &[&Files],
    vars: &Vars,
) -> Result<String, String> {
    let ctx = if vars.is_empty() {
        seen
    } else {
        minijinja::context! { ..seen, ..minijinja::Value::from_serialize(vars) }
    };
    let rendered = template.render(ctx).map_err(|e| describe(&e).1);
    match files.iter().find_map(|f| f.trouble()) {
        Some((_, message)) => Err(message),
        None => rendered,
    }
}

/// The fan-out variables a template is checked with before anything runs.
#[derive(Debug, Clone, Copy)]
pub enum Item<'a> {
    /// Their values (none for a task that is not a fan-out instance): the
    /// template is rendered with them.
    Known(&'a Vars),
    /// Any item: the placeholder of a `foreach` whose list is not built yet.
    /// The template is parsed and the names it uses are checked, `item`,
    /// `key` and these besides `inputs` and `task`; no value is known to
    /// render it with.
    Any(&'a [&'a str]),
}

/// Finds syntax errors and undefined names in a prompt template before
/// anything runs (rendered with empty inputs when its variables are
/// known): the line and what is wrong.
pub fn check(
    template: &str,
    inputs: &[String],
    task: &str,
    item: Item<'_>,
) -> Result<(), (usize, String)> {
    let vars = match item {
        Item::Known(vars) => vars,
        Item::Any(besides) => {
            let mut sees = vec!["inputs", "task", "item", "key"];
            sees.extend_from_slice(besides);
            return check_names(template, &sees);
        }
    };
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
        if let Some(expr) = e.range().and_then(|r| at_fault(template, r)) {
            message.push_str(&format!(": `{expr}`"));
        }
        (line, message)
    })
}

/// Parses `template` and checks that every name it uses and does not set
/// itself is one of `sees` or a global of the environment (`range`,
/// `dict`, ...): what can be known of a template before the values it
/// will see exist. The line of the first name that is not, and
/// `undefined value: `NAME``, as a render says it.
pub fn check_names(template: &str, sees: &[&str]) -> Result<(), (usize, String)> {
    if !template.contains("{{") && !template.contains("{%") {
        return Ok(());
    }
    let env = environment();
    let parsed = env.template_from_str(template).map_err(|e| describe(&e))?;
    let known = |name: &str| sees.contains(&name) || env.globals().any(|(g, _)| g == name);
    // The nested form names the lookup (`loop.index`) as a render would.
    let mut unknown: Vec<(usize, String)> = parsed
        .undeclared_variables(true)
        .into_iter()
        .filter(|name| !known(name.split('.').next().unwrap_or(name)))
        .map(|name| {
            (
                first_use(template, name.split('.').next().unwrap_or(&name)),
                name,
            )
        })
        .collect();
    unknown.sort();
    match unknown.into_iter().next() {
        None => Ok(()),
        Some((offset, name)) => Err((
            crate::error::Position::of_offset(template, offset).line,
            format!("undefined value: `{name}`"),
        )),
    }
}

/// The byte offset of the first use of `name` as a whole word inside a
/// `{{ }}` or `{% %}` tag of `template` (its end when none is found).
fn first_use(template: &str, name: &str) -> usize {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    for tag in tags(template) {
        let inside = &template[tag.clone()];
        let mut at = 0;
        while let Some(i) = inside[at..].find(name).map(|i| at + i) {
            let before = inside[..i].chars().next_back();
            let after = inside[i + name.len()..].chars().next();
            if !before.is_some_and(word) && !after.is_some_and(word) && before != Some('.') {
                return tag.start + i;
            }
            at = i + name.len();
        }
    }
    template.len()
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
    use super::super::limits;
    use super::*;
    use crate::store::ErrorKind;

    #[test]
    fn undefined_names_are_errors_with_a_line() {
        let vars = Vars::from([("key".to_string(), Value::from("a"))]);
        assert_eq!(render_field("o/{{ key }}.md", &vars).unwrap(), "o/a.md");
        // The expression at fault is quoted, as a check quotes it.
        let message = render_field("a\n{{ key }} {{ nope }}", &vars).unwrap_err();
        assert!(message.ends_with("undefined value: `nope`"), "{message}");
        // The whole expression of its tag, not the part minijinja points at.
        for (text, quoted) in [
            ("o/{{ key.nope | upper }}.md", "`key.nope | upper`"),
            ("o/{{- key.a.b -}}.md", "`key.a.b`"),
            ("{% if key.a.b %}x{% endif %}", "`if key.a.b`"),
        ] {
            let message = render_field(text, &vars).unwrap_err();
            assert!(message.ends_with(quoted), "{text}: {message}");
        }
        let (line, message) = check(
            "x\n{{ inputs['b'] }}",
            &["a".into()],
            "t",
            Item::Known(&vars),
        )
        .unwrap_err();
        assert_eq!(line, 2, "{message}");
        assert!(message.ends_with("`inputs['b']`"), "{message}");
        assert!(check(
            "{{ inputs['a'] }} {{ task }}",
            &["a".into()],
            "t",
            Item::Known(&vars)
        )
        .is_ok());
    }

    #[test]
    fn any_item_checks_the_names_a_template_uses_and_its_syntax() {
        let sees = ["item", "key"];
        // What it sets, loops over, or the environment gives is known.
        for ok in [
            "out/{{ key }}.md",
            "plain text, no tag",
            "{{ item.title | upper }} {{ item['a'].b }}",
            "{% for s in item %}{{ loop.index }} {{ s }}{% endfor %}",
            "{% set n = namespace(x=1) %}{{ n.x }} {{ range(3) | list }} {{ dict(a=1) }}",
            "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(item) }}",
        ] {
            assert_eq!(check_names(ok, &sees), Ok(()), "{ok}");
        }
        // The first name it does not know, by where it is, and its line.
        let err = check_names("a loop\n{{ key }}\n{{ loop.index }} {{ itme }}", &sees);
        assert_eq!(err, Err((3, "undefined value: `loop.index`".into())));
        let err = check_names("{{ itme.x }}", &sees);
        assert_eq!(err, Err((1, "undefined value: `itme.x`".into())));
        let (line, message) = check_names("x\n{% if %}", &sees).unwrap_err();
        assert_eq!(line, 2);
        assert!(message.starts_with("syntax error"), "{message}");
        // A prompt's sees `inputs` and `task` too; a judge's more.
        let prompt = "{{ inputs['p'] }} {{ task }} {{ item }} {{ output }}";
        assert_eq!(check(prompt, &[], "t", Item::Any(&["output"])), Ok(()));
        let err = check(prompt, &[], "t", Item::Any(&[])).unwrap_err();
        assert_eq!(err.1, "undefined value: `output`");
    }

    /// Inputs in a temporary folder: `plan.txt` (text), `data.bin` (not
    /// UTF-8) and `gone.txt` (listed, never written).
    fn inputs() -> (tempfile::TempDir, Files) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("plan.txt"), "a shed").unwrap();
        std::fs::write(dir.path().join("data.bin"), b"ok\xff\x00").unwrap();
        let files =
            ["plan.txt", "data.bin", "gone.txt"].map(|p| (p.to_string(), dir.path().join(p)));
        (dir, Files::inputs(files))
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
            let inputs = Files::inputs([(name.to_string(), dir.path().join(name))]);
            let template = format!("{{{{ inputs['{name}'] }}}}");
            let err = render(&template, &inputs, "t", &Vars::new()).unwrap_err();
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
        let inputs = Files::inputs(["a.txt", "b.txt"].map(|p| (p.to_string(), dir.path().join(p))));
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

    /// A judge's outputs: `notes.md` (text, `é` across the cap of 5
    /// bytes), `chart.png` (not UTF-8).
    fn outputs() -> (tempfile::TempDir, Files) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.md"), "abcdé and more").unwrap();
        std::fs::write(dir.path().join("chart.png"), b"\x89PNG\r\n").unwrap();
        let files = ["notes.md", "chart.png"].map(|p| (p.to_string(), dir.path().join(p)));
        (dir, Files::outputs(files, 5))
    }

    #[test]
    fn a_judge_reads_only_the_outputs_it_names_cut_at_the_cap() {
        let (_dir, outputs) = outputs();
        let inputs = Files::inputs([]);
        // `output` (the first, chart.png) not named: never read.
        let text = render_judged(
            "Score {{ outputs['notes.md'] }}",
            &inputs,
            &outputs,
            "chart.png",
            "t",
            &Vars::new(),
        );
        // The cut falls inside `é`: only whole characters are kept.
        assert_eq!(text.unwrap(), "Score abcd\n[... 10 more bytes not shown]");
        assert!(outputs.trouble().is_none());
    }

    #[test]
    fn a_judge_that_names_an_output_that_is_not_text_fails() {
        for template in ["{{ output }}", "{{ outputs['chart.png'] }}"] {
            let (_dir, outputs) = outputs();
            let err = render_judged(
                template,
                &Files::inputs([]),
                &outputs,
                "chart.png",
                "t",
                &Vars::new(),
            )
            .unwrap_err();
            assert!(
                err.starts_with("output chart.png is not UTF-8 text: byte 0x89 at offset 0 cannot start or continue a character; a judge reads"),
                "{template}: {err}"
            );
            assert_eq!(outputs.trouble().unwrap().0, ErrorKind::Template);
        }
    }

    #[test]
    fn the_first_output_is_the_first_given() {
        let (dir, _) = outputs();
        let outputs = Files::outputs(
            ["notes.md", "chart.png"].map(|p| (p.to_string(), dir.path().join(p))),
            5,
        );
        assert_eq!(outputs.first(), Some("notes.md"));
        assert_eq!(
            outputs.paths().collect::<Vec<_>>(),
            ["chart.png", "notes.md"]
        );
    }

    #[test]
    fn known_texts_are_seen_as_they_are() {
        let outputs = Files::known([("a.md".to_string(), "the answer".to_string())]);
        let text = render_judged(
            "{{ output }} / {{ outputs['a.md'] }}",
            &Files::inputs([]),
            &outputs,
            "a.md",
            "t",
            &Vars::new(),
        );
        assert_eq!(text.unwrap(), "the answer / the answer");
    }
}
