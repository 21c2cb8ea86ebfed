//! `notifications/cancelled`: a cancelled `wait` ends early and gets no
//! answer; a cancellation of a request unknown or answered already is
//! ignored.

use std::time::{Duration, Instant};

use serde_json::json;

use super::{alive, Client};
use crate::harness::*;

const SLOW: &str = r#"
[tasks.slow]
inputs = ["plan.txt"]
outputs = ["slow.txt"]
command = "sleep 30; cp plan.txt slow.txt"
"#;

/// A cancelled wait used to block to its timeout and be answered all the
/// same (and, at the end of input, to keep the server up until then).
#[test]
fn a_cancelled_wait_ends_and_gets_no_answer() {
    let p = Project::new(SLOW);
    let mut c = Client::start(&p, &[]);
    c.ok("run_create", json!({"plan": "p", "name": "r"}));
    let pid = c.ok("build", json!({"run": "r"}))["pid"].as_u64().unwrap();
    c.send(
        &json!({"jsonrpc": "2.0", "id": "w-1", "method": "tools/call",
                "params": {"name": "wait", "arguments": {"run": "r", "timeout_s": 50}}})
        .to_string(),
    );
    std::thread::sleep(Duration::from_millis(300));
    for cancelled in [json!("w-1"), json!(999), json!("never-sent"), json!(1)] {
        c.send(
            &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                    "params": {"requestId": cancelled, "reason": "the user moved on"}})
            .to_string(),
        );
    }
    // No answer to the cancelled wait, nor to the cancellations.
    c.ping();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        c.lines.try_recv().is_err(),
        "an answer to a cancelled request"
    );
    assert_eq!(c.ok("status", json!({"run": "r"}))["state"], "running");
    // At the end of input the server answers what it is answering: no
    // wait is left.
    let closing = Instant::now();
    assert!(c.close().success());
    assert!(
        closing.elapsed() < Duration::from_secs(10),
        "the cancelled wait went on"
    );
    // SAFETY: the build's pid, alive: a Ctrl-C ends it.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    wait_for("the build to stop", || !alive(pid));
}
