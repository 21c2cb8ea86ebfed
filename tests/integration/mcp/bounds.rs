//! Bounds on what a client sends: stated in the input schemas and in
//! `server_info`'s `limits`, checked by the server itself (a client may
//! ignore schemas) with an error that says which; and errors that quote a
//! bad value at most in part, never megabytes of it.

use serde_json::{json, Value};

use super::{Client, COMMANDS};
use crate::harness::*;

/// Too many targets used to reach the build's command line, and its
/// `Argument list too long` came back as `reinstall planexe`; a thousand
/// and one were taken.
#[test]
fn too_many_targets_are_refused_saying_so() {
    let p = Project::new(COMMANDS);
    let mut c = Client::start(&p, &[]);
    c.ok("run_create", json!({"plan": "a shed", "name": "r"}));
    for n in [1001, 400_000] {
        let targets = vec!["upper"; n];
        let message = c.err("build", json!({"run": "r", "targets": targets}));
        assert!(
            message.contains(&format!("{n} targets")) && message.contains("at most 1000"),
            "{message}"
        );
        assert!(!message.contains("reinstall"), "{message}");
        assert!(
            message.len() < 1000,
            "{} bytes: {message:.300}",
            message.len()
        );
    }
    assert!(!p.exists("r/upper.txt"));
    let status = c.ok("status", json!({"run": "r"}));
    assert_eq!(status["state"], "never-built", "{status}");
    assert!(c.close().success());
}

/// Each bound the server keeps, with a value just past it: refused, the
/// property named, the value quoted short.
#[test]
fn long_values_are_refused_and_quoted_short() {
    let p = Project::new(COMMANDS);
    let mut c = Client::start(&p, &[]);
    c.ok("run_create", json!({"plan": "a shed", "name": "r"}));
    let huge = "x".repeat(1 << 20);
    let cases: &[(&str, Value)] = &[
        ("status", json!({"run": huge})),
        ("run_create", json!({"plan": "p", "name": huge})),
        ("run_create", json!({"plan": "p", "pipeline": huge})),
        ("build", json!({"run": "r", "targets": [huge]})),
        ("build", json!({"run": "r", "model": huge})),
        ("explain", json!({"run": "r", "task": huge})),
        ("clean", json!({"run": "r", "tasks": [huge]})),
        ("read_output", json!({"run": "r", "path": huge})),
        ("status", json!({"run": "r", "extra": [huge]})),
    ];
    for (tool, arguments) in cases {
        let message = c.err(tool, arguments.clone());
        assert!(
            message.len() < 1000,
            "{tool}: {} bytes: {message:.300}",
            message.len()
        );
        assert!(
            message.contains("xxxx") || message.contains("'extra'"),
            "{tool}: {message}"
        );
    }
    // Just past each bound, as the server says them.
    let info = c.ok("server_info", json!({}));
    let limits = &info["limits"];
    let name_max = limits["run_name_max_bytes"].as_u64().unwrap() as usize;
    let text_max = limits["text_max_chars"].as_u64().unwrap() as usize;
    let path_max = limits["path_max_bytes"].as_u64().unwrap() as usize;
    assert_eq!(limits["targets_max"], 1000);
    let long = |n: usize| "a".repeat(n + 1);
    for (tool, arguments, says) in [
        (
            "status",
            json!({"run": long(name_max)}),
            format!("at most {name_max} bytes"),
        ),
        (
            "build",
            json!({"run": "r", "model": long(text_max)}),
            format!("at most {text_max} characters"),
        ),
        (
            "explain",
            json!({"run": "r", "task": long(text_max)}),
            format!("at most {text_max} characters"),
        ),
        (
            "read_output",
            json!({"run": "r", "path": long(path_max)}),
            format!("at most {path_max} bytes"),
        ),
        (
            "run_create",
            json!({"plan": "p", "pipeline": long(path_max)}),
            format!("at most {path_max} bytes"),
        ),
    ] {
        let message = c.err(tool, arguments);
        assert!(message.contains(&says), "{tool}: {message}");
    }
    // The schemas say the same.
    let tools = c.request("tools/list", json!({}))["result"]["tools"].clone();
    let schema = |tool: &str, property: &str| -> Value {
        tools
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == tool)
            .unwrap()["inputSchema"]["properties"][property]
            .clone()
    };
    assert_eq!(schema("build", "targets")["maxItems"], 1000);
    assert_eq!(schema("build", "targets")["items"]["maxLength"], text_max);
    assert_eq!(schema("clean", "tasks")["maxItems"], 1000);
    assert_eq!(schema("status", "run")["maxLength"], name_max);
    assert_eq!(schema("run_create", "name")["maxLength"], name_max);
    assert_eq!(schema("run_create", "pipeline")["maxLength"], path_max);
    assert_eq!(schema("read_output", "path")["maxLength"], path_max);
    assert_eq!(schema("explain", "task")["maxLength"], text_max);
    assert!(c.close().success());
}

/// A method or a tool name of a megabyte is not sent back whole.
#[test]
fn protocol_errors_quote_names_short() {
    let p = Project::new(COMMANDS);
    let mut c = Client::start(&p, &[]);
    let huge = "y".repeat(1 << 20);
    c.send(&json!({"jsonrpc": "2.0", "id": 1, "method": huge}).to_string());
    let line = c.recv_line();
    assert!(line.len() < 1000 && line.contains("-32601"), "{line:.300}");
    c.send(
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                "params": {"name": huge, "arguments": {}}})
        .to_string(),
    );
    let line = c.recv_line();
    assert!(line.len() < 1000 && line.contains("-32602"), "{line:.300}");
    assert!(c.close().success());
}
