//! A run whose pipeline file broke after its build (a TOML syntax error,
//! an unknown key): `status` and `wait` still say what the run's records
//! hold, with the pipeline's error beside them (`file:line:col`); `wait`
//! still waits for a build that runs; `explain` and `clean` refuse, saying
//! where to fix the file, with the `pipeline_error` status gives as their
//! data. And what the answers of a failed task and a refused `run_create`
//! say.

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
