//! JSON-RPC batches: answered with an array once MCP 2025-03-26 (the one
//! version that has them) was agreed; refused with what is wrong under
//! another; an empty one is an invalid request. A batch's requests run as
//! requests of their own do, at once: a `wait` in one holds up none of
//! the others, and two waits take the time of one.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{alive, Client, COMMANDS};
use crate::harness::*;

/// A batch used to be refused whatever the version agreed.
#[test]
fn a_batch_is_answered_with_an_array_under_2025_03_26() {
    let p = Project::new(COMMANDS);
    let mut c = Client::start(&p, &[]);
    // Under 2025-06-18 (the client's start agreed on it): refused, saying why.
    c.send(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#);
    let refused = c.recv();
    assert_eq!(refused["error"]["code"], -32600, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("2025-03-26") && message.contains("agreed on 2025-06-18"),
        "{message}"
    );
    let init = c.request(
        "initialize",
        json!({"protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
    );
    assert_eq!(init["result"]["protocolVersion"], "2025-03-26");
    c.send(
        &json!([
            {"jsonrpc": "2.0", "id": "a", "method": "ping"},
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
             "params": {"name": "run_create", "arguments": {"plan": "a shed", "name": "r"}}},
            {"jsonrpc": "2.0", "id": 8, "method": "no/such"},
            3,
            {"jsonrpc": "2.0", "id": 9, "method": "initialize", "params": {"protocolVersion": "2025-03-26"}},
        ])
        .to_string(),
    );
    let answers = c.recv();
    let answers = answers.as_array().unwrap_or_else(|| panic!("{answers}"));
    let by_id = |id: Value| {
        answers
            .iter()
            .find(|a| a["id"] == id)
            .unwrap_or_else(|| panic!("no answer for {id}: {answers:?}"))
            .clone()
    };
    assert_eq!(answers.len(), 5, "{answers:?}");
    assert_eq!(by_id(json!("a"))["result"], json!({}));
    assert_eq!(by_id(json!(7))["result"]["structuredContent"]["run"], "r");
    assert_eq!(by_id(json!(8))["error"]["code"], -32601);
    assert_eq!(by_id(json!(9))["error"]["code"], -32600);
    assert_eq!(by_id(Value::Null)["error"]["code"], -32600);
    assert!(p.exists("r/plan.txt"));
    // Notifications alone: no answer at all.
    c.send(r#"[{"jsonrpc":"2.0","method":"notifications/initialized"}]"#);
    c.ping();
    // An empty batch is an invalid request, answered with one error.
    c.send("[]");
    let empty = c.recv();
    assert_eq!(empty["error"]["code"], -32600, "{empty}");
    assert_eq!(empty["id"], Value::Null);
    assert!(c.close().success());
}

/// Under 2024-11-05, and before any version was agreed, a batch is
/// refused with which version has them.
#[test]
fn a_batch_under_another_version_says_which_has_them() {
    let p = Project::new(COMMANDS);
    let mut c = Client::start(&p, &[]);
    c.request(
        "initialize",
        json!({"protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
    );
    c.send(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#);
    let refused = c.recv();
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("part of MCP 2025-03-26 only") && message.contains("2024-11-05"),
        "{message}"
    );
    assert!(c.close().success());
}

const SLOW: &str = r#"
[tasks.slow]
inputs = ["plan.txt"]
outputs = ["slow.txt"]
command = "sleep 60; cp plan.txt slow.txt"
"#;

/// How long each `wait` of the batches below blocks.
const T: Duration = Duration::from_secs(3);

/// Sends `batch` and returns its answers, by id, and how long they took.
fn timed(c: &mut Client, batch: Value) -> (Vec<Value>, Duration) {
    let sent = Instant::now();
    c.send(&batch.to_string());
    let answers = c.recv();
    let took = sent.elapsed();
    let answers = answers.as_array().unwrap_or_else(|| panic!("{answers}"));
    (answers.clone(), took)
}

fn wait(id: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": "wait", "arguments": {"run": "r", "timeout_s": T.as_secs()}}})
}

/// A batch's requests used to be answered in turn on one thread: two
/// waits took the time of both.
#[test]
fn a_batch_s_requests_run_at_once() {
    let p = Project::new(SLOW);
    let mut c = Client::start(&p, &[]);
    c.request(
        "initialize",
        json!({"protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
    );
    c.ok("run_create", json!({"plan": "p", "name": "r"}));
    let pid = c.ok("build", json!({"run": "r"}))["pid"].as_u64().unwrap();
    // A wait beside a ping and a status: the time of the wait.
    let (answers, took) = timed(
        &mut c,
        json!([
            wait("w"),
            {"jsonrpc": "2.0", "id": "p", "method": "ping"},
            {"jsonrpc": "2.0", "id": "s", "method": "tools/call",
             "params": {"name": "status", "arguments": {"run": "r"}}},
        ]),
    );
    assert_eq!(answers.len(), 3, "{answers:?}");
    let by_id = |id: &str| answers.iter().find(|a| a["id"] == id).unwrap().clone();
    assert_eq!(by_id("w")["result"]["structuredContent"]["timed_out"], true);
    assert_eq!(by_id("p")["result"], json!({}));
    assert_eq!(
        by_id("s")["result"]["structuredContent"]["state"],
        "running"
    );
    assert!(took >= T - Duration::from_millis(100), "{took:?}");
    assert!(
        took < T.mul_f64(1.7),
        "a wait, a ping and a status took {took:?}"
    );
    // Two waits: the time of one, not of both.
    let (answers, took) = timed(&mut c, json!([wait("a"), wait("b")]));
    assert_eq!(answers.len(), 2, "{answers:?}");
    for answer in &answers {
        assert_eq!(
            answer["result"]["structuredContent"]["timed_out"], true,
            "{answer}"
        );
    }
    assert!(took < T.mul_f64(1.7), "two waits of {T:?} took {took:?}");
    // A cancelled wait gets no element: the array holds the other's.
    c.send(&json!([wait("x"), wait("y")]).to_string());
    std::thread::sleep(Duration::from_millis(300));
    c.send(
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                "params": {"requestId": "x", "reason": "moved on"}})
        .to_string(),
    );
    let answers = c.recv();
    let answers = answers.as_array().unwrap_or_else(|| panic!("{answers}"));
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0]["id"], "y");
    assert!(c.close().success());
    // SAFETY: the build's pid, alive: a Ctrl-C ends it.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    wait_for("the build to stop", || !alive(pid));
}
