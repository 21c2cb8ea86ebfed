//! A command asked for JSON (`status --json`, `graph --format json`) that
//! ends in an error prints the error as one JSON object on stdout, as well
//! as the usual text on stderr, and exits with the error's status.

use serde_json::Value;

use crate::harness::*;

const BROKEN_KEY: &str =
    "[tasks.a]\noutputs = [\"a.txt\"]\ncommand = \"echo a > a.txt\"\nbogus = 1\n";
const BROKEN_SYNTAX: &str = "[tasks.a\noutputs = [\"a.txt\"]\n";

/// The one JSON object on `run`'s stdout, which must exit 2 and still say
/// the error on stderr.
#[track_caller]
fn error_of(run: &Run) -> Value {
    run.code(2).stderr_has("error: ");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one line of JSON on stdout\n{run:#?}");
    let doc: Value = serde_json::from_str(lines[0]).expect("stdout is JSON");
    assert_eq!(doc["error"]["exit_code"], 2, "{doc}");
    doc["error"].clone()
}

#[test]
fn status_json_of_a_pipeline_with_an_unknown_key_prints_the_error_as_json() {
    let p = Project::new(BROKEN_KEY);
    let error = error_of(&p.run(&["status", "--json"]));
    assert_eq!(error["kind"], "pipeline");
    assert_eq!(
        error["where"],
        serde_json::json!({"file": "pipeline.toml", "line": 4, "col": 1, "end_line": 4, "end_col": 5})
    );
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `bogus`"),
        "{error}"
    );
    assert!(
        error["detail"].as_str().unwrap().contains("bogus = 1"),
        "{error}"
    );
    assert!(
        error["hint"].as_str().unwrap().contains("docs/pipeline.md"),
        "{error}"
    );
    // `status TASK --json` too.
    let error = error_of(&p.run(&["status", "a", "--json"]));
    assert_eq!(error["where"]["line"], 4);
}

#[test]
fn status_json_of_a_pipeline_that_does_not_parse_prints_the_error_as_json() {
    let p = Project::new(BROKEN_SYNTAX);
    let error = error_of(&p.run(&["status", "--json"]));
    assert_eq!(error["kind"], "pipeline");
    assert_eq!(error["where"]["file"], "pipeline.toml");
    assert_eq!(error["where"]["line"], 1);
    assert!(
        error["hint"].as_str().unwrap().contains("TOML syntax"),
        "{error}"
    );
    // Without --json, stdout stays empty.
    let plain = p.run(&["status"]);
    plain.code(2);
    assert_eq!(plain.stdout, "");
}

#[test]
fn graph_json_of_a_broken_pipeline_prints_the_error_as_json() {
    let p = Project::new(BROKEN_KEY);
    let error = error_of(&p.run(&["graph", "--format", "json"]));
    assert_eq!(error["where"]["line"], 4);
    let dot = p.run(&["graph"]);
    dot.code(2);
    assert_eq!(dot.stdout, "");
}

#[test]
fn status_json_refused_before_the_pipeline_prints_the_error_as_json() {
    let p = Project::new("[tasks.a]\noutputs = [\"a.txt\"]\ncommand = \"echo a > a.txt\"\n");
    let error = error_of(&p.run(&["status", "--json", "--stall-after", "soon"]));
    assert_eq!(error["kind"], "usage");
    assert_eq!(error["where"], Value::Null);
    assert!(
        error["hint"]
            .as_str()
            .unwrap()
            .contains("--stall-after 90s"),
        "{error}"
    );
    let error = error_of(&p.run(&["status", "nosuch", "--json"]));
    assert!(
        error["message"].as_str().unwrap().contains("nosuch"),
        "{error}"
    );
    // Refused by the command line's parser.
    let error = error_of(&p.run(&["status", "--json", "--bogus"]));
    assert_eq!(error["kind"], "usage");
    assert!(
        error["message"].as_str().unwrap().contains("--bogus"),
        "{error}"
    );
}

/// A task whose `timeout` is a bad value over lines 4 to 6, its last
/// character the `]` in column 4.
const BAD_OVER_LINES: &str =
    "[tasks.a]\noutputs = [\"a.txt\"]\ncommand = \"echo a > a.txt\"\ntimeout = [\n  1,\n  2]\n";

#[test]
fn a_pipeline_errors_where_says_where_its_value_ends_over_several_lines() {
    let p = Project::new(BAD_OVER_LINES);
    let error = error_of(&p.run(&["status", "--json"]));
    assert_eq!(
        error["where"],
        serde_json::json!({"file": "pipeline.toml", "line": 4, "col": 11, "end_line": 6, "end_col": 4}),
        "{error}"
    );
    // The text is what it was: the start, and the carets to the end.
    let detail = error["detail"].as_str().unwrap();
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("pipeline.toml:4:11: invalid timeout"),
        "{error}"
    );
    assert!(detail.ends_with("6 |   2]\n  |   ^^"), "{detail}");
}

#[test]
fn a_pipeline_errors_where_says_where_its_value_ends_on_one_line() {
    // `"soon"`, from column 11 to 16.
    let p = Project::new(
        "[tasks.a]\noutputs = [\"a.txt\"]\ncommand = \"echo a > a.txt\"\ntimeout = \"soon\"\n",
    );
    let error = error_of(&p.run(&["graph", "--format", "json"]));
    assert_eq!(
        error["where"],
        serde_json::json!({"file": "pipeline.toml", "line": 4, "col": 11, "end_line": 4, "end_col": 16}),
        "{error}"
    );
    // A value with a character of several bytes counts it as one.
    let p =
        Project::new("[tasks.a]\noutputs = [\"a.txt\"]\ncommand = \"true\"\ntimeout = \"計画\"\n");
    let error = error_of(&p.run(&["status", "--json"]));
    assert_eq!(error["where"]["end_col"], 14, "{error}");
}

/// An error in a file the pipeline names, a schema that is not JSON,
/// points at the key that names it, start and end; where in the schema
/// file is said in its message.
#[test]
fn a_schema_file_that_is_not_json_is_placed_at_the_key_that_names_it() {
    let p = Project::new(
        "[models.m]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"x\"\n\n\
         [tasks.a]\ninputs = [\"plan.txt\"]\noutputs = [\"a.json\"]\nprompt = \"hi\"\n\
         schema = \"s.json\"\n",
    );
    p.write("plan.txt", "a shed\n");
    p.write("s.json", "{\"type\": \"object\",\n \"x\": ]\n");
    // `"s.json"`, columns 10 to 17 of line 10.
    let error = error_of(&p.run(&["status", "--json"]));
    assert_eq!(
        error["where"],
        serde_json::json!({"file": "pipeline.toml", "line": 10, "col": 10, "end_line": 10, "end_col": 17}),
        "{error}"
    );
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("pipeline.toml:10:10: schema s.json:2:7: not JSON"),
        "{error}"
    );
}
