//! `notifications/cancelled`: a cancelled `wait` ends early and gets no
//! answer; a cancellation of a request unknown or answered already is
//! ignored. A `wait` blocking when the input ends is answered at once.

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

/// A client that made run `r`, started its slow build (whose pid it
/// returns) and sent a `wait` (id `w-1`) for it, blocking by now.
fn waiting(p: &Project) -> (Client, u64) {
    let mut c = Client::start(p, &[]);
    c.ok("run_create", json!({"plan": "p", "name": "r"}));
    let pid = c.ok("build", json!({"run": "r"}))["pid"].as_u64().unwrap();
    c.send(
        &json!({"jsonrpc": "2.0", "id": "w-1", "method": "tools/call",
                "params": {"name": "wait", "arguments": {"run": "r", "timeout_s": 50}}})
        .to_string(),
    );
    std::thread::sleep(Duration::from_millis(300));
    (c, pid)
}

/// A cancelled wait used to block to its timeout and be answered all the
/// same (and, at the end of input, to keep the server up until then).
#[test]
fn a_cancelled_wait_ends_and_gets_no_answer() {
    let p = Project::new(SLOW);
    let (mut c, pid) = waiting(&p);
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

/// A wait still blocking when the client closes its input is answered at
/// once, with the status as it is: the server used to stay up until the
/// build ended or the wait's 50 s passed, for a client that had gone.
#[test]
fn a_wait_blocking_at_the_end_of_input_is_answered_at_once() {
    let p = Project::new(SLOW);
    let (mut c, pid) = waiting(&p);
    let start = Instant::now();
    drop(c.stdin.take());
    let answer = c.recv();
    assert_eq!(answer["id"], "w-1", "{answer}");
    let status = &answer["result"]["structuredContent"];
    assert_eq!(status["timed_out"], true, "{answer}");
    assert_eq!(status["state"], "running", "{answer}");
    assert!(c.close().success());
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    // The build goes on.
    assert!(alive(pid));
    // SAFETY: the build's pid, alive: SIGTERM stops it.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    wait_for("the build to stop", || !alive(pid));
}
