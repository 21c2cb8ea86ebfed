//! A run whose pipeline file broke after its build (a TOML syntax error,
//! an unknown key): `status` and `wait` still say what the run's records
//! hold, with the pipeline's error beside them (`file:line:col`); `wait`
//! still waits for a build that runs; `explain` and `clean` refuse, saying
//! where to fix the file, with the `pipeline_error` status gives as their
//! data. And what the answers of a failed task and a refused `run_create`
//! say: for a pipeline file it cannot use, where to fix it as data too;
//! for the files it was given, or lacks, no such data.

use serde_json::json;

use super::Client;
use crate::harness::*;

/// A task that succeeds, then one that fails.
const FAILING: &str = r#"
[tasks.upper]
inputs = ["plan.txt"]
outputs = ["upper.txt"]
command = "tr a-z A-Z < plan.txt > upper.txt"

[tasks.bad]
inputs = ["upper.txt"]
outputs = ["bad.txt"]
command = "echo failing; exit 3"
"#;

#[test]
fn a_broken_pipeline_leaves_status_and_wait_with_the_runs_records() {
    let p = Project::new(FAILING);
    let mut c = Client::start(&p, &[]);
    c.ok("run_create", json!({"plan": "a shed", "name": "r"}));
    c.ok("build", json!({"run": "r"}));
    let status = c.ok("wait", json!({"run": "r", "timeout_s": 30}));
    assert_eq!(status["state"], "failed", "{status}");
    assert!(status.get("pipeline_error").is_none(), "{status}");
    // An unknown key on line 13, column 1.
    p.write(
        "pipeline.toml",
        &format!("{FAILING}\n[tasks.x]\nbogus = 1\ncommand = \"true\"\noutputs = [\"x\"]\n"),
    );
    for tool in ["status", "wait"] {
        let status = c.ok(tool, json!({"run": "r"}));
        let broken = &status["pipeline_error"];
        assert_eq!(broken["where"]["line"], 13, "{status}");
        assert_eq!(broken["where"]["col"], 1, "{status}");
        assert!(
            broken["message"].as_str().unwrap().contains("bogus"),
            "{status}"
        );
        assert!(
            broken["hints"].to_string().contains("at line 13, column 1"),
            "{status}"
        );
        assert_eq!(status["state"], "failed", "{status}");
        assert_eq!(status["counts"]["done"], 1, "{status}");
        assert_eq!(status["counts"]["failed"], 1, "{status}");
        assert_eq!(status["error"]["failed_task"], "bad", "{status}");
        assert_eq!(status["error"]["log_tail"], "failing\n", "{status}");
        assert!(status["warnings"]
            .to_string()
            .contains("no task was checked"));
    }
    let broken = c.ok("status", json!({"run": "r"}))["pipeline_error"].clone();
    for (tool, args) in [
        ("explain", json!({"run": "r", "task": "bad"})),
        ("clean", json!({"run": "r", "tasks": ["bad"]})),
    ] {
        let (message, data) = c.refused(tool, args);
        assert!(
            message.contains("pipeline.toml:13:1: unknown field `bogus`"),
            "{message}"
        );
        assert!(
            message.contains(&format!("at line 13, column 1, then call {tool} again")),
            "{message}"
        );
        // The text as it was; the data, status's.
        assert!(!message.contains("pipeline_error"), "{message}");
        assert_eq!(data, json!({"pipeline_error": broken}), "{tool}");
    }
    assert!(
        p.exists("r/upper.txt"),
        "clean refused, and deleted nothing"
    );
    assert!(c.close().success());
}

/// A TOML syntax error: `explain` and `clean` refuse with `where` it is as
/// data, the object status gives; once the file is fixed, they answer (no
/// `pipeline_error`), and an error of another kind carries no data.
#[test]
fn explain_and_clean_refuse_a_broken_pipeline_with_where_it_is_as_data() {
    let p = Project::new(FAILING);
    let mut c = Client::start(&p, &[]);
    c.ok("run_create", json!({"plan": "a shed", "name": "r"}));
    p.write("pipeline.toml", &format!("{FAILING}\n[tasks.x\n"));
    let status = c.ok("status", json!({"run": "r"}));
    let place = &status["pipeline_error"]["where"];
    assert_eq!(
        (&place["line"], &place["col"]),
        (&json!(12), &json!(9)),
        "{status}"
    );
    for (tool, args) in [
        ("explain", json!({"run": "r", "task": "upper"})),
        ("clean", json!({"run": "r", "tasks": ["upper"]})),
    ] {
        let (message, data) = c.refused(tool, args);
        assert!(message.contains("pipeline.toml:12:9"), "{message}");
        assert_eq!(data["pipeline_error"], status["pipeline_error"], "{tool}");
        assert!(
            data["pipeline_error"]["message"]
                .as_str()
                .unwrap()
                .contains("pipeline.toml:12:9"),
            "{data}"
        );
    }
    p.write("pipeline.toml", FAILING);
    let explained = c.ok("explain", json!({"run": "r", "task": "upper"}));
    assert!(explained.get("pipeline_error").is_none(), "{explained}");
    let cleaned = c.ok("clean", json!({"run": "r", "tasks": ["upper"]}));
    assert!(cleaned.get("pipeline_error").is_none(), "{cleaned}");
    c.err("explain", json!({"run": "r", "task": "uper"}));
    assert!(c.close().success());
}

/// A build that runs while its pipeline file breaks is still waited for.
#[test]
fn wait_waits_for_a_build_whose_pipeline_broke_meanwhile() {
    let slow = r#"
[tasks.slow]
inputs = ["plan.txt"]
outputs = ["slow.txt"]
command = "while [ ! -e go ]; do sleep 0.05; done; cp plan.txt slow.txt"
"#;
    let p = Project::new(slow);
    let mut c = Client::start(&p, &[]);
    c.ok("run_create", json!({"plan": "a shed", "name": "r"}));
    c.ok("build", json!({"run": "r"}));
    wait_for("the task to start", || {
        c.ok("status", json!({"run": "r"}))["tasks"][0]["state"] == "running"
    });
    p.write("pipeline.toml", "[tasks.slow\n");
    // Its records say it runs once its sidecar is written.
    wait_for("the task's records", || {
        c.ok("status", json!({"run": "r"}))["tasks"][0]["state"] == "running"
    });
    let status = c.ok("wait", json!({"run": "r", "timeout_s": 0}));
    assert_eq!(status["state"], "running", "{status}");
    assert_eq!(status["timed_out"], true, "{status}");
    assert_eq!(status["pipeline_error"]["where"]["line"], 1, "{status}");
    assert_eq!(status["tasks"][0]["state"], "running", "{status}");
    p.write("r/go", "");
    let status = c.ok("wait", json!({"run": "r", "timeout_s": 30}));
    assert_eq!(status["timed_out"], false, "{status}");
    assert_eq!(status["state"], "completed", "{status}");
    assert_eq!(status["tasks"][0]["state"], "done", "{status}");
    assert!(c.close().success());
}

/// A failed task's `reason` does not repeat its `error`, in the server's
/// status and in `planexe status --json` alike.
#[test]
fn a_failed_tasks_reason_does_not_repeat_its_error() {
    let p = Project::new(FAILING);
    let mut c = Client::start(&p, &[]);
    c.ok("run_create", json!({"plan": "a shed", "name": "r"}));
    c.ok("build", json!({"run": "r"}));
    let status = c.ok("wait", json!({"run": "r", "timeout_s": 30}));
    let bad = &status["tasks"][1];
    assert_eq!(
        (&bad["task"], &bad["error"]),
        (&json!("bad"), &json!("exit status 3"))
    );
    assert!(bad.get("reason").is_none(), "{bad}");
    let cli: serde_json::Value =
        serde_json::from_str(&p.run(&["status", "-C", "r", "--json"]).stdout).unwrap();
    assert_eq!(cli["tasks"][1]["error"], "exit status 3", "{cli}");
    assert_eq!(cli["tasks"][1]["reason"], json!(null), "{cli}");
    assert!(c.close().success());
}

/// A pipeline that reads a file no task writes cannot make a run through
/// run_create without it: the hint does not send the client into the
/// folder the refusal undid, but to `files` (`--input` on the command
/// line).
#[test]
fn run_create_refused_for_a_missing_input_says_what_can_be_done() {
    let p = Project::new(
        r#"
[tasks.read]
inputs = ["plan.txt", "context.txt"]
outputs = ["out.txt"]
command = "cat plan.txt context.txt > out.txt"
"#,
    );
    let mut c = Client::start(&p, &[]);
    let message = c.err("run_create", json!({"plan": "a shed", "name": "r"}));
    assert!(!p.exists("r"), "{message}");
    assert!(
        message.contains("input `context.txt` of task `read` does not exist"),
        "{message}"
    );
    assert!(!message.contains("create context.txt in"), "{message}");
    assert!(
        message.contains("call run_create again with its text in `files`"),
        "{message}"
    );
    assert!(c.close().success());
    // The command line's words: `--input`.
    p.run(&["new", "--plan", "a shed", "r"])
        .code(2)
        .stderr_has("run `planexe new` again with `--input context.txt`");
    assert!(!p.exists("r"));
}

/// The `where` of a run's broken pipeline says where the bad value ends
/// too, as `--json` does, and the output schema allows it.
#[test]
fn a_broken_pipelines_where_says_where_its_value_ends() {
    let p = Project::new(FAILING);
    let mut c = Client::start(&p, &[]);
    c.ok("run_create", json!({"plan": "a shed", "name": "r"}));
    // `timeout` on lines 11 to 13, its `]` in column 4.
    p.write(
        "pipeline.toml",
        &format!("{FAILING}timeout = [\n  1,\n  2]\n"),
    );
    let status = c.ok("status", json!({"run": "r"}));
    let place = &status["pipeline_error"]["where"];
    let message = status["pipeline_error"]["message"].as_str().unwrap();
    let file = place["file"].as_str().unwrap();
    assert!(file.ends_with("pipeline.toml"), "{status}");
    assert!(
        message.starts_with(&format!("{file}:11:11: invalid timeout")),
        "{status}"
    );
    assert_eq!(
        (&place["line"], &place["col"]),
        (&json!(11), &json!(11)),
        "{status}"
    );
    assert_eq!(
        (&place["end_line"], &place["end_col"]),
        (&json!(13), &json!(4)),
        "{status}"
    );
    // One line: `"soon"`, columns 11 to 16.
    p.write("pipeline.toml", &format!("{FAILING}timeout = \"soon\"\n"));
    let status = c.ok("status", json!({"run": "r"}));
    let place = &status["pipeline_error"]["where"];
    assert_eq!(
        (&place["line"], &place["end_line"], &place["end_col"]),
        (&json!(11), &json!(11), &json!(16)),
        "{status}"
    );
    assert!(c.close().success());
}

/// run_create with a pipeline file it cannot use (an unknown key, found
/// as it is parsed; an `after` naming no task, found as it is resolved
/// in the run's folder, then undone) makes no run, and says where to fix
/// the file as data, `pipeline_error`, which its outputSchema declares.
#[test]
fn run_create_refuses_a_broken_pipeline_with_where_it_is_as_data() {
    let p = Project::new(FAILING);
    let mut c = Client::start(&p, &[]);
    // `bogus` on line 13, columns 1 to 5; `"nope"` on line 11, 10 to 15.
    let cases = [
        (
            format!("{FAILING}\n[tasks.x]\nbogus = 1\ncommand = \"true\"\noutputs = [\"x\"]\n"),
            (13, 1, 13, 5),
            "unknown field `bogus`",
        ),
        (
            format!("{FAILING}after = [\"nope\"]\n"),
            (11, 10, 11, 15),
            "`after` names unknown task `nope`",
        ),
    ];
    for (pipeline, (line, col, end_line, end_col), says) in cases {
        p.write("pipeline.toml", &pipeline);
        let (message, data) = c.refused("run_create", json!({"plan": "a shed", "name": "r"}));
        assert!(!p.exists("r"), "{message}");
        let broken = &data["pipeline_error"];
        assert_eq!(data.as_object().unwrap().len(), 1, "{data}");
        let place = &broken["where"];
        let file = place["file"].as_str().unwrap();
        assert!(file.ends_with("pipeline.toml"), "{data}");
        assert_eq!(
            [
                &place["line"],
                &place["col"],
                &place["end_line"],
                &place["end_col"]
            ],
            [&json!(line), &json!(col), &json!(end_line), &json!(end_col)],
            "{data}"
        );
        let first = broken["message"].as_str().unwrap();
        assert!(
            first.starts_with(&format!("{file}:{line}:{col}: {says}")),
            "{data}"
        );
        assert!(broken["detail"].as_str().unwrap().contains('^'), "{data}");
        // Its own hints, then where to fix the file, in run_create's words.
        let hints = broken["hints"].as_array().unwrap();
        assert!(hints.len() >= 2, "{data}");
        let last = format!(
            "fix the pipeline file {file} at line {line}, column {col}, then call run_create again"
        );
        assert_eq!(hints.last().unwrap(), &json!(last), "{data}");
        assert!(
            !hints.iter().any(|h| h.to_string().contains("status")),
            "{data}"
        );
        // The text says as much.
        assert!(
            message.starts_with("run_create made no run, as its pipeline file cannot be used: "),
            "{message}"
        );
        assert!(message.contains(first), "{message}");
        assert!(message.ends_with(&format!("hint: {last}")), "{message}");
    }
    p.write("pipeline.toml", FAILING);
    c.ok("run_create", json!({"plan": "a shed", "name": "r"}));
    assert!(c.close().success());
}

/// A pipeline that reads notes.md and fans out over the list topics.json,
/// both files a run is given.
const READS_GIVEN: &str = r#"
[tasks.join]
inputs = ["plan.txt", "notes.md"]
outputs = ["out.txt"]
command = "cat plan.txt notes.md > out.txt"

[tasks.per]
foreach = { file = "topics.json" }
inputs = ["notes.md"]
outputs = ["per/{{ item }}.md"]
command = "cp notes.md per/{{ item }}.md"
"#;

/// The refusal of run_create's `files`, or of a source file it was not
/// given, is no broken pipeline file: it carries no `pipeline_error`.
#[test]
fn run_create_refused_for_its_files_carries_no_pipeline_error() {
    let p = Project::new(READS_GIVEN);
    let mut c = Client::start(&p, &[]);
    let list = "[\"a\"]";
    for (files, says) in [
        // A task's output.
        (
            json!({"notes.md": "n", "topics.json": list, "out.txt": "x"}),
            "task `join` writes it",
        ),
        // A source left out.
        (
            json!({"topics.json": list}),
            "input `notes.md` of task `join` does not exist",
        ),
        // A list that is not JSON.
        (
            json!({"notes.md": "n", "topics.json": "not json"}),
            "list file topics.json: not JSON",
        ),
        // A source that is a folder.
        (
            json!({"notes.md/in.txt": "n", "topics.json": list}),
            "input `notes.md` of task `join` is a folder",
        ),
    ] {
        let message = c.err(
            "run_create",
            json!({"plan": "a shed", "name": "r", "files": files}),
        );
        assert!(message.contains(says), "{says:?} not in: {message}");
        assert!(!message.contains("run_create made no run"), "{message}");
        assert!(!p.exists("r"), "{message}");
    }
    c.ok(
        "run_create",
        json!({"plan": "a shed", "name": "r", "files": {"notes.md": "n", "topics.json": list}}),
    );
    assert!(c.close().success());
}
