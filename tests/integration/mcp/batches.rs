//! JSON-RPC batches: answered with an array once MCP 2025-03-26 (the one
//! version that has them) was agreed; refused with what is wrong under
//! another; an empty one is an invalid request.

use serde_json::{json, Value};

use super::{Client, COMMANDS};
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
