//! `planexe mcp`, driven over its pipes with raw JSON-RPC by [`Client`]:
//! the protocol ([`protocol`]: the handshake, protocol faults, each
//! answered with the server still serving, tool errors for bad arguments
//! and for every way out of the root; batches, [`batches`]; cancellation,
//! [`cancel`]; bounds on arguments and errors that quote them short,
//! [`bounds`]; the source files `run_create` seeds a run with, and each
//! path and size it refuses, [`files`]; the pipeline a build is given,
//! never one inside a run,
//! [`pipelines`]) and the life of a run ([`life`]:
//! create (idempotent), build against the loopback model server, wait,
//! status, outputs, a failure and its `recoverable`, the fix and the
//! resume, stop, clean, explain, runs and archive; the end of input, which
//! ends the server and leaves its builds running), a crashed build's pid
//! given to another process, which is no build ([`crashed`]), a build a
//! script started in the background, which stop stops ([`foreign`]), `read_output` and the
//! links in a run, followed when they stay in it, and swapped while it
//! reads ([`outputs`]), the API keys a command prints, which no answer
//! carries ([`secrets`]), and hints in the tools' terms, not the command
//! line's ([`hints`]), in what the builds the server starts say too
//! ([`build_log`]), and answers sized for a model's context ([`large`]).
//!
//! Every successful result is checked against the `outputSchema` its tool
//! declares, and its text against its structured content; so is the
//! structured content of an error that has some, as a client may check it
//! (the TypeScript SDK's does).

mod batches;
mod bounds;
mod build_log;
mod cancel;
mod crashed;
mod files;
mod foreign;
mod hints;
mod large;
mod life;
mod outputs;
mod pipelines;
mod protocol;
mod records;
mod replay_hints;
mod secrets;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::*;

/// A client of one `planexe mcp` process.
pub struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    next: u64,
    /// Each tool's output schema, compiled.
    schemas: HashMap<String, jsonschema::Validator>,
}

impl Client {
    /// Starts `planexe mcp` in the project, with `args`, and initializes.
    pub fn start(p: &Project, args: &[&str]) -> Client {
        Client::launch(p, args, false, &[])
    }

    /// As [`Client::start`], with these variables in the server's
    /// environment.
    pub fn start_with_env(p: &Project, args: &[&str], env: &[(&str, &str)]) -> Client {
        Client::launch(p, args, false, env)
    }

    /// As [`Client::start`], the server leading a process group of its own,
    /// as a terminal's foreground job does.
    pub fn start_in_own_group(p: &Project, args: &[&str]) -> Client {
        Client::launch(p, args, true, &[])
    }

    fn launch(p: &Project, args: &[&str], own_group: bool, env: &[(&str, &str)]) -> Client {
        use std::os::unix::process::CommandExt;
        let mut all = vec!["mcp"];
        all.extend_from_slice(args);
        let mut command = p.command(&all);
        command.envs(env.iter().copied());
        if own_group {
            command.process_group(0);
            // As a terminal starts it: Ctrl-C's default action, even when
            // the tests themselves run as a background job (which starts
            // with SIGINT ignored, and children inherit that).
            // SAFETY: only a signal disposition changes between fork and
            // exec.
            unsafe {
                command.pre_exec(|| {
                    libc::signal(libc::SIGINT, libc::SIG_DFL);
                    Ok(())
                });
            }
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start planexe mcp");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut client = Client {
            stdin: child.stdin.take(),
            child,
            lines,
            next: 0,
            schemas: HashMap::new(),
        };
        let init = client.request(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "test", "version": "1"}}),
        );
        assert_eq!(init["result"]["protocolVersion"], "2025-06-18", "{init}");
        client.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string());
        let list = client.request("tools/list", json!({}));
        for tool in list["result"]["tools"].as_array().unwrap() {
            let validator = jsonschema::validator_for(&tool["outputSchema"]).unwrap();
            client
                .schemas
                .insert(tool["name"].as_str().unwrap().to_string(), validator);
        }
        client
    }

    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    /// The next message from the server.
    #[track_caller]
    pub fn recv(&self) -> Value {
        let line = self.recv_line();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    /// The next message from the server, as the line it wrote.
    #[track_caller]
    pub fn recv_line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(60))
            .expect("an answer from the server")
    }

    /// Sends a request and returns its answer.
    #[track_caller]
    pub fn request(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        self.send(
            &json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string(),
        );
        let answer = self.recv();
        assert_eq!(answer["id"], id, "{answer}");
        assert_eq!(answer["jsonrpc"], "2.0");
        answer
    }

    /// Calls a tool; its result.
    #[track_caller]
    pub fn call(&mut self, tool: &str, arguments: Value) -> Value {
        let answer = self.request("tools/call", json!({"name": tool, "arguments": arguments}));
        assert!(answer.get("error").is_none(), "{answer}");
        answer["result"].clone()
    }

    /// Calls a tool that must succeed; its structured content, checked
    /// against the tool's output schema and its text.
    #[track_caller]
    pub fn ok(&mut self, tool: &str, arguments: Value) -> Value {
        let result = self.call(tool, arguments);
        assert_eq!(result["isError"], false, "{tool}: {result}");
        let structured = result["structuredContent"].clone();
        self.conforms(tool, &structured);
        let text: Value =
            serde_json::from_str(result["content"][0]["text"].as_str().unwrap()).unwrap();
        assert_eq!(text, structured);
        structured
    }

    /// Checks `structured`, what `tool` answered, against its output schema.
    #[track_caller]
    fn conforms(&self, tool: &str, structured: &Value) {
        let problems: Vec<String> = self.schemas[tool]
            .iter_errors(structured)
            .map(|e| format!("{}: {e}", e.instance_path))
            .collect();
        assert!(
            problems.is_empty(),
            "{tool} breaks its outputSchema: {problems:?}\n{structured}"
        );
    }

    /// Calls a tool that must fail, with no data; its message.
    #[track_caller]
    pub fn err(&mut self, tool: &str, arguments: Value) -> String {
        let result = self.call(tool, arguments);
        assert_eq!(result["isError"], true, "{tool}: {result}");
        assert!(result.get("structuredContent").is_none(), "{result}");
        result["content"][0]["text"].as_str().unwrap().to_string()
    }

    /// Calls a tool that must fail with data: its message, and its
    /// structured content, checked against the tool's output schema.
    #[track_caller]
    pub fn refused(&mut self, tool: &str, arguments: Value) -> (String, Value) {
        let result = self.call(tool, arguments);
        assert_eq!(result["isError"], true, "{tool}: {result}");
        let structured = result["structuredContent"].clone();
        assert!(structured.is_object(), "{tool}: {result}");
        self.conforms(tool, &structured);
        let message = result["content"][0]["text"].as_str().unwrap().to_string();
        (message, structured)
    }

    /// Sends a line and returns the JSON-RPC error it gets.
    #[track_caller]
    pub fn fault(&mut self, line: &str) -> (Value, i64) {
        self.send(line);
        let answer = self.recv();
        assert!(answer.get("result").is_none(), "{answer}");
        (
            answer["id"].clone(),
            answer["error"]["code"].as_i64().unwrap(),
        )
    }

    #[track_caller]
    pub fn ping(&mut self) {
        assert_eq!(self.request("ping", json!({}))["result"], json!({}));
    }

    /// Closes stdin and waits (bounded) for the server to exit.
    #[track_caller]
    pub fn close(mut self) -> std::process::ExitStatus {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not exit at the end of its input"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn alive(pid: u64) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

pub const COMMANDS: &str = r#"
[tasks.upper]
inputs = ["plan.txt"]
outputs = ["upper.txt"]
command = "tr a-z A-Z < plan.txt > upper.txt"
"#;
