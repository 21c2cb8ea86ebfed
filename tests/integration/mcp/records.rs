//! What the answers of a failed task and a refused `run_create` say.

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
/// run_create, which seeds plan.txt alone: the hint does not send the
/// client into the folder the refusal undid.
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
        message.contains("run_create seeds a run with plan.txt alone"),
        "{message}"
    );
    assert!(c.close().success());
    // The command line says how to make the folder by hand.
    p.run(&["new", "--plan", "a shed", "r"])
        .code(2)
        .stderr_has("a new run holds plan.txt alone")
        .stderr_has("and run `planexe build -C ");
}
