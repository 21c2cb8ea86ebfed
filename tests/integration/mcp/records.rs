//! What the answers of a refused `run_create` say.

use serde_json::json;

use super::Client;
use crate::harness::*;

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
