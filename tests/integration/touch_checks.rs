//! `planexe touch` checks the outputs it accepts, as a build does: an
//! output a check refuses, or a check that cannot run, refuses the whole
//! touch (exit 2) and nothing is recorded; a check of severity warn warns;
//! `--no-check` accepts the outputs as they are.

use crate::harness::*;

/// `a` writes its output from `src.txt`; its check wants the word `good`
/// in it. `b` reads it.
const CHECKED: &str = r#"
[tasks.a]
inputs = ["src.txt"]
outputs = ["a.txt"]
command = "cat src.txt > a.txt"
check = "grep -q good \"$1\" || { echo \"$1 lacks the word good\"; exit 1; }"
[tasks.b]
inputs = ["a.txt"]
outputs = ["b.txt"]
command = "cat a.txt > b.txt"
"#;

fn built(pipeline: &str) -> Project {
    let p = Project::new(pipeline);
    p.write("src.txt", "good\n");
    p.build().ok();
    p
}

/// What the run's records say of the task `a`: `planexe status`, its
/// `.status` and its `.DONE`.
fn records(p: &Project) -> (Vec<String>, String, String) {
    let status = p.run(&["status"]);
    let lines = timeless(&status.stdout)
        .iter()
        .map(|l| l.to_string())
        .collect();
    (
        lines,
        p.read(".planexe/tasks/a.status"),
        p.read(".planexe/tasks/a.DONE"),
    )
}

#[test]
fn touch_refuses_an_output_its_check_rejects_and_records_nothing() {
    let p = built(CHECKED);
    p.write_at("a.txt", "bad\n", 2_000_000);
    let before = records(&p);
    assert!(
        before.0.contains(&"  b  input a.txt changed".to_string()),
        "{before:?}"
    );
    let run = p.run(&["touch", "a"]);
    run.code(2)
        .stderr_has(concat!(
            "cannot touch a: its check `grep -q good \"$1\" || { echo \"$1 lacks the word good\"; exit 1…` ",
            "refuses a.txt: the check failed (exit status 1): a.txt lacks the word good"
        ))
        .stderr_has("hint: fix a.txt (or the check), then touch again; or pass --no-check");
    assert!(!run.stderr.contains("touched"), "{}", run.stderr);
    assert_eq!(records(&p), before, "the records of a changed");
}

#[test]
fn touch_records_an_output_its_checks_accept() {
    let p = built(CHECKED);
    p.write_at("a.txt", "good, by hand\n", 2_000_000);
    p.run(&["touch", "a"]).ok().stderr_has("touched a");
    let status = p.status_json("a");
    assert_eq!(status["outputs"]["a.txt"]["size"], 14);
    assert_eq!(
        status["checks"],
        serde_json::json!([{"name": "check", "passed": true, "severity": "error", "message": null}])
    );
    p.build().ok().ran(&["b"]);
    assert_eq!(p.read("b.txt"), "good, by hand\n");
}

#[test]
fn touch_no_check_accepts_an_output_a_check_would_reject() {
    let p = built(CHECKED);
    p.write_at("a.txt", "bad\n", 2_000_000);
    p.run(&["touch", "--no-check", "a"])
        .ok()
        .stderr_has("touched a");
    let status = p.status_json("a");
    assert_eq!(status["outputs"]["a.txt"]["size"], 4);
    assert!(status.get("checks").is_none(), "{status}");
    p.build().ok().ran(&["b"]);
    assert_eq!(p.read("b.txt"), "bad\n");
}

#[test]
fn touch_warns_for_a_failed_check_of_severity_warn() {
    let p = built(&CHECKED.replace("exit 1; }\"\n", "exit 1; }\"\nseverity = \"warn\"\n"));
    p.write_at("a.txt", "bad\n", 2_000_000);
    p.run(&["touch", "a"])
        .ok()
        .stderr_has("touched a")
        .stderr_has(
            "warning: a: check: the check failed (exit status 1): a.txt lacks the word good (severity warn: touched all the same)",
        );
    assert_eq!(p.status_json("a")["checks"][0]["passed"], false);
    p.run(&["status"]).ok().stdout_has(
        "WARNINGS\n  a: check: the check failed (exit status 1): a.txt lacks the word good",
    );
    p.build().ok().ran(&["b"]);
}

#[test]
fn touch_refuses_when_its_check_cannot_run() {
    let p = built(CHECKED);
    // The pipeline now names a check command that does not exist.
    let check = CHECKED.lines().find(|l| l.starts_with("check =")).unwrap();
    p.write(
        "pipeline.toml",
        &CHECKED.replace(check, "check = \"planexe-no-such-checker \\\"$1\\\"\""),
    );
    let before = p.read(".planexe/tasks/a.status");
    let run = p.run(&["touch", "a"]);
    run.code(2)
        .stderr_has("cannot touch a: its check `planexe-no-such-checker \"$1\"`")
        .stderr_has(
            "could not judge a.txt: the check could not run (exit status 127: a command it names was not found)",
        )
        .stderr_has("planexe-no-such-checker:")
        .stderr_has("hint: make the check run (install the command it names");
    assert_eq!(p.read(".planexe/tasks/a.status"), before);
}

#[test]
fn touch_of_several_tasks_is_all_or_nothing() {
    let p = built(CHECKED);
    p.write_at("a.txt", "bad\n", 2_000_000);
    p.write_at("b.txt", "fine\n", 2_000_000);
    let before_b = p.read(".planexe/tasks/b.status");
    let run = p.run(&["touch", "b", "a"]);
    run.code(2)
        .stderr_has("cannot touch a: its check")
        .stderr_has("hint: nothing was touched: touch accepts all the tasks it is given or none (b's checks accepted its outputs)");
    assert_eq!(p.read(".planexe/tasks/b.status"), before_b);
    p.write_at("a.txt", "good again\n", 3_000_000);
    p.run(&["touch", "b", "a"])
        .ok()
        .stderr_has("touched a")
        .stderr_has("touched b");
}

#[test]
fn touch_checks_a_prompt_tasks_format_and_schema_but_asks_no_judge() {
    // No server listens there: touch asks no model.
    let p = Project::new(
        r#"
[models.local]
provider = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "m"

[tasks.outline]
inputs = ["plan.txt"]
outputs = ["outline.json"]
prompt = "Outline {{ inputs['plan.txt'] }}"
schema = "outline.schema.json"
model = "local"

[tasks.outline.judge]
prompt = "Score {{ output }}"
"#,
    );
    p.write(
        "outline.schema.json",
        r#"{"type": "object", "required": ["sections"], "properties": {"sections": {"type": "array"}}}"#,
    );
    p.write("plan.txt", "a shed\n");
    p.write("outline.json", "Here it is: {\"sections\": []}\n");
    p.run(&["touch", "outline"]).code(2).stderr_has(
        "cannot touch outline: its format check: output outline.json is not JSON (the task's format is json): expected value at line 1 column 1",
    );
    p.write("outline.json", "{\"section\": []}\n");
    p.run(&["touch", "outline"]).code(2).stderr_has(
        "cannot touch outline: its schema check: output outline.json does not match the schema outline.schema.json: at /: \"sections\" is a required property",
    );
    assert!(!p.exists(".planexe/tasks/outline.status"));
    p.write("outline.json", "{\"sections\": [\"walls\"]}\n");
    p.run(&["touch", "outline"])
        .ok()
        .stderr_has("touched outline")
        .stderr_has("outline: its judge was not run (touch asks no model); `planexe check outline` has it score the outputs");
    assert_eq!(p.status_json("outline")["judge"], serde_json::Value::Null);
}

#[test]
fn touch_records_what_a_build_records_of_the_task() {
    let pipeline = r#"
[tasks.a]
inputs = ["x.txt", "y.txt"]
outputs = ["a.txt"]
command = "cat {inputs} > a.txt"
check = "test -s \"$1\""
"#;
    let p = Project::new(pipeline);
    p.write("x.txt", "x\n").write("y.txt", "y\n");
    p.write("a.txt", "by hand\n");
    p.run(&["touch", "a"]).ok();
    // Only its check changed: its outputs are checked again, not rebuilt.
    p.write(
        "pipeline.toml",
        &pipeline.replace("test -s", "grep -q hand"),
    );
    assert_eq!(
        p.run(&["build", "-n"]).stdout,
        "a: checks changed (outputs checked again)\n"
    );
    p.write("pipeline.toml", pipeline);
    p.run(&["build", "-n"]).ok().stderr_has("nothing to do");
    // Its command is given its inputs in their order.
    p.write(
        "pipeline.toml",
        &pipeline.replace(r#"["x.txt", "y.txt"]"#, r#"["y.txt", "x.txt"]"#),
    );
    assert_eq!(p.run(&["build", "-n"]).stdout, "a: inputs reordered\n");
}

/// A hint that names an instance (`review[legal]`) in a command line
/// quotes it: a shell would take the brackets for a glob (zsh refuses the
/// command outright).
#[test]
fn hints_quote_an_instance_name_for_the_shell() {
    let p = Project::new(
        r#"
[tasks.review]
matrix = { expert = ["legal"] }
outputs = ["review-{{ expert }}.md"]
command = "echo {{ expert }} > review-{{ expert }}.md"
"#,
    );
    p.run(&["touch", "review[legal]"])
        .code(2)
        .stderr_has("run `planexe build 'review[legal]'` to produce it");
}

/// A task whose input is missing is told to build the task that makes it
/// (it was told to build the task itself, `to produce` what another task
/// writes).
#[test]
fn touch_of_a_task_whose_input_is_missing_names_its_producer() {
    let p = Project::new(
        "[tasks.c]\noutputs = [\"c.txt\"]\ncommand = \"echo c > c.txt\"\n[tasks.d]\ninputs = [\"c.txt\"]\noutputs = [\"d.txt\"]\ncommand = \"cp c.txt d.txt\"\n",
    );
    p.write("d.txt", "by hand\n");
    p.run(&["touch", "d"])
        .code(2)
        .stderr_has("cannot touch d: its input c.txt does not exist\nhint: run `planexe build c` to produce it\n");
}
