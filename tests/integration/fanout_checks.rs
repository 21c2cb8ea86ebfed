//! A `foreach` task whose list is not built yet is checked, for any item,
//! when the pipeline is read: its fields' templates parse and name only
//! what they will see, and a prompt's file, schema and model exist, so a
//! typo is refused before the tasks its list waits for run (on a slow
//! model, hours of them), not once they have.

use crate::harness::*;

/// A default model no test asks (nothing listens on port 9).
const MODEL: &str = r#"[pipeline]
model = "m"

[models.m]
provider = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "x"
"#;

/// `list` makes the list (a command, so the build would run it first);
/// `each` is the fan-out, its table's lines given by the case (after
/// `inputs = ["plan.txt"]` unless they give `inputs`).
fn pipeline(each: &str) -> String {
    let inputs = match each.starts_with("inputs") {
        true => "",
        false => "inputs = [\"plan.txt\"]\n",
    };
    format!(
        r#"{MODEL}
[tasks.list]
inputs = ["items.json"]
outputs = ["list.json"]
command = "cp items.json list.json"

[tasks.each]
foreach = {{ file = "list.json", items = "/steps" }}
{inputs}{each}
"#
    )
}

fn project(each: &str) -> Project {
    let p = Project::new(&pipeline(each));
    p.write("plan.txt", "plan")
        .write(
            "items.json",
            r#"{"steps": [{"title": "dig", "words": ["a", "b"]}]}"#,
        )
        .write("prompts/each.md", "Do {{ item.title }}\n");
    p
}

#[test]
fn a_typo_in_a_fan_out_before_its_list_exists_is_refused_before_anything_runs() {
    let command = "command = \"echo {{ item.title }} > {outputs}\"";
    let out = "outputs = [\"out/{{ key }}.md\"]";
    let prompt = "prompt = \"Do {{ item.title }} for {{ inputs['plan.txt'] }}\"";
    for (each, at, message) in [
        (
            format!("outputs = [\"out/{{{{ loop.index }}}}.md\"]\n{command}"),
            "pipeline.toml:17:12",
            "task `each`: undefined value: `loop.index`",
        ),
        (
            format!("{out}\ncommand = \"echo {{{{ itme.title }}}} > {{outputs}}\""),
            "pipeline.toml:18:11",
            "task `each`: undefined value: `itme.title`",
        ),
        (
            format!("inputs = [\"notes/{{{{ nope }}}}.txt\"]\n{out}\n{command}"),
            "pipeline.toml:16:11",
            "task `each`: undefined value: `nope`",
        ),
        (
            format!("{out}\n{command}\ncheck = \"grep -q {{{{ item.title \"\n"),
            "pipeline.toml:19:9",
            "task `each`: syntax error",
        ),
        (
            format!("{out}\nprompt = \"Do:\\n{{{{ item.title }}}}\\n{{{{ itme }}}}\""),
            "pipeline.toml:18:10",
            "prompt of task `each` (pipeline.toml, template line 3): undefined value: `itme`",
        ),
        (
            format!("{out}\nprompt_file = \"prompts/missing.md\""),
            "pipeline.toml:18:15",
            "prompt file `prompts/missing.md` of task `each`",
        ),
        (
            format!("{out}\n{prompt}\nschema = \"schemas/missing.json\""),
            "pipeline.toml:19:10",
            "schema `schemas/missing.json` of task `each`",
        ),
        (
            format!("{out}\n{prompt}\nmodel = \"mm\""),
            "pipeline.toml:19:9",
            "unknown model `mm` (the `model` of task `each`)",
        ),
        (
            format!("{out}\n{prompt}\njudge = {{ prompt = \"Score {{{{ outptu }}}}\" }}"),
            "pipeline.toml:19:20",
            "judge prompt of task `each`, template line 1: undefined value: `outptu`",
        ),
        (
            format!(
                "{out}\n{command}\njudge = {{ prompt = \"{{{{ output }}}}\", model = \"mm\" }}"
            ),
            "pipeline.toml:19:44",
            "unknown model `mm` for the judge of `each`",
        ),
    ] {
        let p = project(&each);
        let where_ = format!("error: {at}: {message}");
        p.run(&["build", "-n"]).code(2).stderr_has(&where_);
        let run = p.build();
        run.code(2).stderr_has(&where_).stderr_has("\nhint: ");
        assert!(run.started().is_empty(), "{each}\n{}", run.stderr);
        assert!(!p.exists("list.json"), "{each}: the list's task ran");
    }
}

#[test]
fn a_fan_out_whose_templates_name_what_they_will_see_builds() {
    // Loops, what a template sets, the environment's globals, a prompt's
    // `inputs` and `task`, a judge's `output`: all known before the list.
    let p = project(
        r#"outputs = ["out/{{ key }}.md", "out/{{ key }}.n"]
command = "{% set n = namespace(c=0) %}{% for w in item.words %}{% set n.c = n.c + loop.index %}{% endfor %}echo {{ item.title }} > out/{{ key }}.md; echo {{ n.c }} {{ range(2) | list | length }} > out/{{ key }}.n"
check = "grep -q {{ item.title }} out/{{ key }}.md"
"#,
    );
    p.build().ok().ran(&["list", "each[0]"]);
    assert_eq!(p.read("out/0.md"), "dig\n");
    assert_eq!(p.read("out/0.n"), "3 2\n");

    let p = project(
        "outputs = [\"out/{{ key }}.md\"]\nprompt_file = \"prompts/each.md\"\njudge = { prompt = \"{{ output }} {{ outputs }} {{ item.title }} {{ task }}\" }",
    );
    // Refused only when it asks the model (there is none at port 9).
    p.run(&["build", "-n"])
        .ok()
        .stdout_has("each: expands when list.json is built");
}

#[test]
fn items_that_are_not_a_json_pointer_are_refused_when_the_pipeline_is_read() {
    let p = project("outputs = [\"out/{{ key }}.md\"]\ncommand = \"echo > {outputs}\"");
    let text = p
        .read("pipeline.toml")
        .replace("items = \"/steps\"", "items = \"steps\"");
    p.write("pipeline.toml", &text);
    // Before its list is built, and once it is (it was refused as
    // `nothing at pointer` then, and not at all before).
    for list in [false, true] {
        if list {
            p.write("list.json", r#"{"steps": []}"#);
        }
        let run = p.build();
        run.code(2)
            .stderr_has("error: pipeline.toml:15:11: `items` of task `each` is `steps`, which is not a JSON pointer")
            .stderr_has("hint: a JSON pointer starts with `/` (items = \"/steps\"), or is empty for the whole document");
        assert!(run.started().is_empty(), "{}", run.stderr);
    }
}

#[test]
fn items_no_answer_under_the_lists_schema_can_have_are_refused_before_the_model_is_asked() {
    let schema = r#"{"type": "object", "properties": {"steps": {"type": "array", "items": {"type": "string"}}}, "required": ["steps"], "additionalProperties": false}"#;
    let pipeline = |items: &str| {
        format!(
            r#"{MODEL}
[tasks.steps]
inputs = ["plan.txt"]
outputs = ["steps.json"]
prompt = "List the steps of {{{{ inputs['plan.txt'] }}}}"
schema = "steps.schema.json"

[tasks.each]
foreach = {{ file = "steps.json", {items} }}
outputs = ["out/{{{{ key }}}}.md"]
command = "echo {{{{ item }}}} > {{outputs}}"
"#
        )
    };
    let items_hint =
        "hint: `items` is a JSON pointer to the list in the answer; steps.schema.json allows items = \"/steps\"";
    let key_hint = "hint: `key` names a field of each item that is a string or a number; remove it to number the items, or give steps.schema.json one";
    for (items, why, hint) in [
        (
            "items = \"/step\"",
            "the answer has no `step`: the schema allows only `steps`",
            items_hint,
        ),
        (
            "items = \"\"",
            "the answer is an object, not an array",
            items_hint,
        ),
        (
            "items = \"/steps/0\"",
            "the value at `/steps/0` is a string, not an array",
            items_hint,
        ),
        (
            "items = \"/steps\", key = \"id\"",
            "the list at `/steps`: its items are strings, which have no key field `id`",
            key_hint,
        ),
    ] {
        let p = Project::new(&pipeline(items));
        p.write("plan.txt", "plan")
            .write("steps.schema.json", schema);
        let run = p.build();
        run.code(2)
            .stderr_has(&format!("error: pipeline.toml:16:11: task `each`: its list steps.json is the answer of task `steps` under the schema steps.schema.json, where {why}"))
            .stderr_has(hint);
        assert!(run.started().is_empty(), "{}", run.stderr);
    }
    // The pointer the schema has is taken (the build then asks the model,
    // which is not there).
    let p = Project::new(&pipeline("items = \"/steps\""));
    p.write("plan.txt", "plan")
        .write("steps.schema.json", schema);
    p.run(&["build", "-n"])
        .ok()
        .stdout_has("each: expands when steps.json is built");
}

/// What only an item's value decides fails the fan-out once its list is
/// built, as a task: its line says what failed, when and its error_id
/// first, then the code frame and the hint.
#[test]
fn what_an_items_value_decides_fails_the_fan_out_with_its_frame_after_the_line() {
    let p = project("outputs = [\"out/{{ item.title.x }}.md\"]\ncommand = \"echo > {outputs}\"");
    let run = p.build();
    run.code(1);
    let failed: Vec<&str> = run
        .stderr
        .lines()
        .skip_while(|l| !l.starts_with("FAILED each:"))
        .take_while(|l| !l.starts_with("start") && !l.starts_with("done"))
        .collect();
    assert!(
        failed[0].starts_with("FAILED each: pipeline.toml:17:12: task `each[0]`: undefined value")
            && failed[0].contains(" (error_id ")
            && failed[0].ends_with("s)"),
        "{}",
        run.stderr
    );
    let hint = failed.iter().find(|l| l.starts_with("hint: ")).unwrap();
    assert_eq!(
        *hint,
        "hint: fan-out fields see `item` and `key` (foreach), or `key` and the matrix variables"
    );
}

/// Of two fan-outs whose `items` the list's schema refuses, the first in
/// the file is named, whatever their names.
#[test]
fn the_first_refused_fan_out_in_the_file_is_named() {
    let p = Project::new(&format!(
        r#"{MODEL}
[tasks.steps]
outputs = ["steps.json"]
prompt = "List the steps."
schema = "steps.schema.json"

[tasks.zz]
foreach = {{ file = "steps.json", items = "/z" }}
outputs = ["z/{{{{ key }}}}.md"]
command = "echo > {{outputs}}"

[tasks.aa]
foreach = {{ file = "steps.json", items = "/a" }}
outputs = ["a/{{{{ key }}}}.md"]
command = "echo > {{outputs}}"
"#
    ));
    p.write(
        "steps.schema.json",
        r#"{"type": "object", "properties": {"steps": {"type": "array"}}, "additionalProperties": false}"#,
    );
    p.build()
        .code(2)
        .stderr_has("task `zz`: its list steps.json is the answer of task `steps`");
}
