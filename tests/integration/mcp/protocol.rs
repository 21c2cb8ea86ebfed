//! The protocol: the handshake, faults that get JSON-RPC errors, bad
//! arguments that get tool errors, and names that would lead out of the
//! root.

use serde_json::{json, Value};

use super::{Client, COMMANDS};
use crate::harness::*;

#[test]
fn the_handshake_agrees_on_a_version_and_lists_every_tool_with_schemas() {
    let p = Project::new(COMMANDS);
    let mut c = Client::start(&p, &[]);
    for (offered, agreed) in [
        ("2025-03-26", "2025-03-26"),
        ("2024-11-05", "2024-11-05"),
        ("2099-01-01", "2025-06-18"),
    ] {
        let init = c.request(
            "initialize",
            json!({"protocolVersion": offered, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
        );
        assert_eq!(init["result"]["protocolVersion"], agreed);
        assert_eq!(
            init["result"]["capabilities"]["tools"]["listChanged"],
            false
        );
        assert_eq!(init["result"]["serverInfo"]["name"], "planexe");
    }
    let tools = c.request("tools/list", json!({}))["result"]["tools"].clone();
    let names: Vec<&str> = tools
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "run_create",
            "build",
            "status",
            "wait",
            "stop",
            "clean",
            "explain",
            "summary",
            "runs",
            "archive",
            "read_output",
            "server_info"
        ]
    );
    for tool in tools.as_array().unwrap() {
        assert_eq!(tool["inputSchema"]["type"], "object", "{tool}");
        assert_eq!(tool["outputSchema"]["type"], "object", "{tool}");
        assert!(tool["description"].as_str().unwrap().len() > 40, "{tool}");
    }
    let wait = &tools[3];
    assert!(wait["description"]
        .as_str()
        .unwrap()
        .contains("at most 50 s"));
    assert_eq!(
        wait["inputSchema"]["properties"]["timeout_s"]["maximum"],
        50
    );
    c.ping();
    let info = c.ok("server_info", json!({}));
    assert_eq!(info["protocol_version"], "2025-06-18");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        info["root"],
        std::fs::canonicalize(p.root())
            .unwrap()
            .display()
            .to_string()
    );
    assert_eq!(info["limits"]["wait_max_s"], 50);
    assert!(c.close().success());
}

#[test]
fn protocol_faults_get_json_rpc_errors_and_the_server_keeps_serving() {
    let p = Project::new(COMMANDS);
    let mut c = Client::start(&p, &[]);
    let cases: &[(&str, Value, i64)] = &[
        (
            "{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\"",
            Value::Null,
            -32700,
        ),
        ("\u{1}not json at all", Value::Null, -32700),
        (
            r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
            Value::Null,
            -32600,
        ),
        ("42", Value::Null, -32600),
        (
            r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
            Value::Null,
            -32600,
        ),
        (
            r#"{"jsonrpc":"1.0","id":7,"method":"ping"}"#,
            json!(7),
            -32600,
        ),
        (r#"{"jsonrpc":"2.0","id":8}"#, json!(8), -32600),
        (
            r#"{"jsonrpc":"2.0","id":9,"method":"resources/list"}"#,
            json!(9),
            -32601,
        ),
        (
            r#"{"jsonrpc":"2.0","id":"x","method":"no/such/method","params":{}}"#,
            json!("x"),
            -32601,
        ),
        (
            r#"{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"rm_rf","arguments":{}}}"#,
            json!(10),
            -32602,
        ),
        (
            r#"{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"arguments":{}}}"#,
            json!(11),
            -32602,
        ),
        (
            r#"{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"name":"runs","arguments":[1]}}"#,
            json!(12),
            -32602,
        ),
        (
            r#"{"jsonrpc":"2.0","id":13,"method":"tools/call","params":"runs"}"#,
            json!(13),
            -32602,
        ),
        (
            r#"{"jsonrpc":"2.0","id":14,"method":"initialize","params":{}}"#,
            json!(14),
            -32602,
        ),
    ];
    for (line, id, code) in cases {
        assert_eq!(c.fault(line), (id.clone(), *code), "{line}");
        c.ping();
    }
    // A line longer than the limit is dropped whole; the next is read.
    let long = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":99,\"method\":\"ping\",\"pad\":\"{}\"}}",
        "x".repeat(9 << 20)
    );
    assert_eq!(c.fault(&long), (Value::Null, -32600));
    c.ping();
    // Notifications, known or not, and responses get no answer: the next
    // message is the ping's.
    c.send(r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}"#);
    c.send(r#"{"jsonrpc":"2.0","method":"no/such/notification"}"#);
    c.send(r#"{"jsonrpc":"2.0","id":5,"result":{}}"#);
    c.send("   ");
    c.ping();
    assert!(c.close().success());
}

/// JSON-RPC: the response's id is the request's, the same value. An id
/// past 64 bits used to come back as a float (`1.2345678901234568e+29`).
#[test]
fn request_ids_come_back_exactly_as_written() {
    let p = Project::new(COMMANDS);
    let mut c = Client::start(&p, &[]);
    for id in [
        "123456789012345678901234567890",
        "-123456789012345678901234567890",
        "18446744073709551616",
        "18446744073709551615",
        "-9223372036854775809",
        "1e2",
        "7",
        r#""req-1""#,
        r#""\u0041""#,
    ] {
        c.send(&format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"runs","arguments":{{}}}}}}"#
        ));
        let line = c.recv_line();
        assert!(line.contains(&format!(r#""id":{id},"#)), "{id}: {line}");
        let answer: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(answer["result"]["isError"], false, "{line}");
        // Errors carry the id as written too.
        c.send(&format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"no/such"}}"#
        ));
        let line = c.recv_line();
        assert!(line.contains(&format!(r#""id":{id},"#)), "{id}: {line}");
        assert!(line.contains("-32601"), "{line}");
    }
    // An id that is not a string or a number is not a request.
    for id in ["{\"a\":1}", "[1]", "true", "null"] {
        let line = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
        assert_eq!(c.fault(&line), (Value::Null, -32600), "{line}");
    }
    c.ping();
    assert!(c.close().success());
}

#[test]
fn bad_arguments_are_tool_errors_that_say_what_to_fix() {
    let p = Project::new(COMMANDS);
    let mut c = Client::start(&p, &[]);
    for (tool, args, says) in [
        (
            "wait",
            json!({"run": 5}),
            "/run: 5 is not of type \"string\"",
        ),
        ("wait", json!({"run": "r", "timeout_s": "10"}), "/timeout_s"),
        (
            "wait",
            json!({"run": "r", "timeout_s": 51}),
            "51 is greater than the maximum of 50",
        ),
        ("status", json!({}), "\"run\" is a required property"),
        ("status", json!({"run": "r", "verbose": true}), "verbose"),
        ("build", json!({"run": "r", "targets": "upper"}), "/targets"),
        ("build", json!({"run": "r", "force": "yes"}), "/force"),
        ("clean", json!({"run": "r", "tasks": []}), "/tasks"),
        ("run_create", json!({"plan": ""}), "/plan"),
        (
            "read_output",
            json!({"run": "r", "path": "a", "max_bytes": 0}),
            "/max_bytes",
        ),
        ("server_info", json!({"x": 1}), "x"),
    ] {
        let message = c.err(tool, args.clone());
        assert!(
            message.contains("invalid arguments for"),
            "{tool} {args}: {message}"
        );
        assert!(message.contains(says), "{tool} {args}: {message}");
        assert!(message.contains("hint: "), "{message}");
    }
    // Well-formed but wrong: what, where and what next.
    let message = c.err("status", json!({"run": "nope"}));
    assert!(message.contains("no run `nope`"), "{message}");
    assert!(message.contains("hint: runs lists the runs"), "{message}");
    let message = c.err("run_create", json!({"plan": " \n "}));
    assert!(message.contains("the plan is empty"), "{message}");
    // A value too long is not sent back whole.
    let huge = "p".repeat((1 << 20) + 1);
    let message = c.err("run_create", json!({ "plan": huge }));
    assert!(
        message.contains("/plan"),
        "{}",
        &message[..200.min(message.len())]
    );
    assert!(
        message.contains("(1048579 bytes)"),
        "{}",
        &message[..400.min(message.len())]
    );
    assert!(message.len() < 1000, "{} bytes", message.len());
    c.ping();
    assert!(c.close().success());
}

#[test]
fn nothing_a_client_names_leads_outside_the_root() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "secret\n").unwrap();
    std::fs::write(outside.path().join("pipeline.toml"), COMMANDS).unwrap();
    std::fs::create_dir_all(outside.path().join("elsewhere/.planexe")).unwrap();
    let p = Project::new(COMMANDS);
    std::fs::create_dir(p.path("runs")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("elsewhere"), p.path("runs/linked")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("pipeline.toml"),
        p.path("runs/out.toml"),
    )
    .unwrap();
    p.write("runs/pipeline.toml", COMMANDS);
    let mut c = Client::start(&p, &["--root", "runs"]);

    for name in [
        "..", ".", "/etc", "../runs", "a/b", ".planexe", "-C", "linked", "x\u{0}y",
    ] {
        let message = c.err("status", json!({"run": name}));
        assert!(message.contains("run"), "{name}: {message}");
        c.err("build", json!({"run": name}));
        c.err("read_output", json!({"run": name, "path": "plan.txt"}));
        c.err("run_create", json!({"plan": "p", "name": name}));
    }
    assert!(c
        .err("status", json!({"run": "linked"}))
        .contains("symlink"));
    for pipeline in [
        "../pipeline.toml",
        "/etc/passwd",
        "out.toml",
        "missing.toml",
        "",
    ] {
        let message = c.err("run_create", json!({"plan": "p", "pipeline": pipeline}));
        assert!(message.contains("cannot use"), "{pipeline}: {message}");
    }
    assert!(!outside.path().join("elsewhere/plan.txt").exists());

    let run = c.ok("run_create", json!({"plan": "a shed", "name": "shed"}))["run"].clone();
    assert_eq!(run, "shed");
    std::os::unix::fs::symlink(
        outside.path().join("secret.txt"),
        p.path("runs/shed/leak.txt"),
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.path(), p.path("runs/shed/dir")).unwrap();
    std::os::unix::fs::symlink(".planexe/origin.json", p.path("runs/shed/state.json")).unwrap();
    std::os::unix::fs::symlink(".planexe", p.path("runs/shed/state")).unwrap();
    std::fs::create_dir(p.path("runs/shed/folder")).unwrap();
    let fifo = std::ffi::CString::new(p.path("runs/shed/fifo").to_str().unwrap()).unwrap();
    // SAFETY: mkfifo only makes a file.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    for (path, says) in [
        ("../pipeline.toml", "`..`"),
        ("/etc/passwd", "absolute"),
        ("leak.txt", "outside the run"),
        ("dir/secret.txt", "outside the run"),
        (".planexe/run.json", "planexe's own state"),
        (".planexe/origin.json", "planexe's own state"),
        (".planexe/logs/../origin.json", "planexe's own state"),
        ("state.json", "planexe's own state"),
        ("state/origin.json", "planexe's own state"),
        ("folder", "a folder"),
        ("fifo", "not a regular file"),
        ("missing.txt", "no such file"),
    ] {
        let message = c.err("read_output", json!({"run": "shed", "path": path}));
        assert!(message.contains(says), "{path}: {message}");
        assert!(!message.contains("secret\n"), "{message}");
    }
    let plan = c.ok("read_output", json!({"run": "shed", "path": "./plan.txt"}));
    assert_eq!(plan["text"], "a shed\n");
    assert_eq!(plan["path"], "plan.txt");
    c.ping();
    assert!(c.close().success());
}

/// A plan is text a client chose; taken as a pipeline, its commands would
/// run whatever the client asked for, anywhere. Neither a run's files nor
/// a link to them are taken as a pipeline.
#[test]
fn a_file_of_a_run_is_never_taken_as_a_pipeline() {
    let outside = tempfile::tempdir().unwrap();
    let marker = outside.path().join("pwned");
    let p = Project::new(COMMANDS);
    let mut c = Client::start(&p, &[]);
    let evil = format!(
        "[tasks.pwn]\noutputs = [\"pwned.txt\"]\ncommand = \"touch {} && touch pwned.txt\"\n",
        marker.display()
    );
    c.ok("run_create", json!({"plan": evil, "name": "carrier"}));
    std::fs::create_dir(p.path("carrier/sub")).unwrap();
    std::fs::copy(p.path("carrier/plan.txt"), p.path("carrier/sub/p.toml")).unwrap();
    std::os::unix::fs::symlink("carrier/plan.txt", p.path("linked.toml")).unwrap();
    for pipeline in ["carrier/plan.txt", "./carrier/sub/p.toml", "linked.toml"] {
        let message = c.err(
            "run_create",
            json!({"plan": "p", "name": "victim", "pipeline": pipeline}),
        );
        assert!(
            message.contains("cannot use") && message.contains("inside the run `carrier`"),
            "{pipeline}: {message}"
        );
        assert!(message.contains("hint: "), "{message}");
    }
    assert!(!p.exists("victim"));
    assert!(!marker.exists());
    // A pipeline of the operator's in a folder of the root is taken.
    std::fs::create_dir(p.path("pipelines")).unwrap();
    p.write("pipelines/p.toml", COMMANDS);
    c.ok(
        "run_create",
        json!({"plan": "p", "name": "fine", "pipeline": "pipelines/p.toml"}),
    );
    assert!(c.close().success());
}

/// JSON Schema's `integer` is any number without a fraction: `3.0`, as a
/// client's JSON library may write it, is taken as the schema says.
#[test]
fn a_whole_number_written_with_a_fraction_is_taken_as_an_integer() {
    let p = Project::new(COMMANDS);
    let mut c = Client::start(&p, &[]);
    c.ok("run_create", json!({"plan": "a shed", "name": "shed"}));
    let read = c.ok(
        "read_output",
        json!({"run": "shed", "path": "plan.txt", "max_bytes": 3.0}),
    );
    assert_eq!(read["text"], "a s");
    assert_eq!(read["truncated"], true);
    let message = c.err(
        "read_output",
        json!({"run": "shed", "path": "plan.txt", "max_bytes": 3.5}),
    );
    assert!(message.contains("/max_bytes"), "{message}");
    assert!(c.close().success());
}

/// A plan in French or German names its run with its words' letters, the
/// accents left out: `Café` made `caf`, `Zürich` `z-rich`.
#[test]
fn a_run_named_from_its_plan_keeps_the_letters_of_accented_words() {
    let p = Project::new(COMMANDS);
    let mut c = Client::start(&p, &[]);
    let created = c.ok(
        "run_create",
        json!({"plan": "Ouvrir un Café à Zürich, Straße 5 — ÉTÉ"}),
    );
    let run = created["run"].as_str().unwrap();
    assert!(run.ends_with("-ouvrir-un-cafe-a-zurich-strasse"), "{run}");
    let created = c.ok("run_create", json!({"plan": "日本語 plan"}));
    let run = created["run"].as_str().unwrap();
    assert!(run.ends_with("-plan"), "{run}");
    assert!(c.close().success());
}
