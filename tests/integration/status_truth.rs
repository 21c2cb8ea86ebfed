//! What `status` says of a run's tasks as they are: a prompt task an
//! interrupted build never started, one waiting to retry, a stream still
//! sending tokens; and a task that has just run, while its build records
//! it.

use std::process::{Child, Stdio};

use serde_json::Value;

use crate::harness::*;
use crate::llm_server::*;

fn model(server: &Server, name: &str, extra: &str) -> String {
    format!(
        "[models.{name}]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"{name}-model\"\n{extra}\n",
        server.url
    )
}

fn project(models: &str, tasks: &str) -> Project {
    let p = Project::new(&format!(
        "[pipeline]\nmodel = \"local\"\n\n{models}\n{tasks}"
    ));
    p.write("plan.txt", "build a shed");
    p
}

/// Two prompt tasks reading the plan, on one model.
const TWO: &str = "[tasks.a]\ninputs = [\"plan.txt\"]\noutputs = [\"a.md\"]\nprompt = \"A {{ inputs['plan.txt'] }}\"\n\
    [tasks.b]\ninputs = [\"plan.txt\"]\noutputs = [\"b.md\"]\nprompt = \"B {{ inputs['plan.txt'] }}\"\n";

fn spawn_build(p: &Project, args: &[&str]) -> Child {
    p.command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[track_caller]
fn interrupt(mut build: Child) {
    // SAFETY: sending a signal to the child we spawned.
    unsafe {
        libc::kill(build.id() as i32, libc::SIGINT);
    }
    assert_eq!(build.wait().unwrap().code(), Some(130));
}

fn task(doc: &Value, name: &str) -> Value {
    doc["tasks"]
        .as_array()
        .and_then(|tasks| tasks.iter().find(|t| t["task"] == name))
        .cloned()
        .unwrap_or(Value::Null)
}

fn status_json(p: &Project, args: &[&str]) -> Value {
    let mut all = vec!["status", "--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&p.run(&all).stdout).unwrap()
}

/// A task stopped by an interrupt, then not started by the next build
/// (interrupted too, while its model's one slot was another task's), was
/// shown as if its build had crashed under it (`its build ended before it
/// did`, no error_id, attempt 0): the `pending` the next build announced
/// hid the stop the log records. It reads as the stop it was, everywhere.
#[test]
fn a_stopped_task_a_later_build_did_not_start_is_not_a_crash() {
    let server = Server::start();
    // The run is `r`, a run of the MCP server's root, whose pipeline it
    // records.
    let p = project(
        &model(&server, "local", "stream = false\nmax_concurrency = 1"),
        TWO,
    );
    p.write("r/plan.txt", "build a shed");
    fn run<'a>(args: &[&'a str]) -> Vec<&'a str> {
        [&["-C", "r"][..], args].concat()
    }
    server.script([openai_answer("a1"), openai_answer("b1")]);
    p.run(&run(&["build", "-f", "pipeline.toml"])).ok();
    // The first task asked is answered; the second is stopped mid-call.
    p.write("r/plan.txt", "build a bigger shed");
    server.script([openai_answer("a2")]);
    server.default_reply(Reply::Hang);
    let build = spawn_build(&p, &run(&["build"]));
    wait_for("the second call", || server.requests().len() == 4);
    interrupt(build);
    let doc = status_json(&p, &["-C", "r"]);
    let (done, stopped) = if task(&doc, "a")["state"] == "done" {
        ("a", "b")
    } else {
        ("b", "a")
    };
    assert_eq!(task(&doc, stopped)["state"], "stopped", "{doc}");
    let error_id = task(&doc, stopped)["error_id"].clone();
    assert!(error_id.is_string(), "{doc}");
    // The next build is interrupted while the other task holds the slot.
    p.write("r/plan.txt", "build the biggest shed");
    let build = spawn_build(&p, &run(&["build"]));
    wait_for("the third build's first call", || {
        server.requests().len() == 5
    });
    assert!(
        server.requests()[4].body.contains(&done.to_uppercase()),
        "the task done last time is asked first"
    );
    interrupt(build);
    assert_eq!(server.requests().len(), 5, "{stopped} was not started");

    let doc = status_json(&p, &["-C", "r"]);
    let line = task(&doc, stopped);
    assert_eq!(line["state"], "stopped", "{line}");
    assert_eq!(
        line["error_id"], error_id,
        "its stop, as the log has it: {line}"
    );
    assert!(line["attempt"].as_u64() > Some(0), "{line}");
    assert_eq!(line["recoverable"], true, "{line}");
    let error = line["error"].as_str().unwrap_or_default();
    assert!(!error.contains("ended before it did"), "{line}");
    assert!(error.contains("interrupt"), "{line}");

    let text = p.run(&run(&["status"])).stdout;
    assert!(!text.contains("ended before it did"), "{text}");
    let id = error_id.as_str().unwrap_or_default();
    assert!(text.contains(id), "{text}");
    let shown = p.run(&run(&["status", stopped])).stdout;
    assert!(shown.contains("  state     stopped\n"), "{shown}");
    assert!(shown.contains(id), "{shown}");
    let one = status_json(&p, &["-C", "r", stopped]);
    assert_eq!(one["stale"], true, "{one}");
    assert_eq!(one["running"], false, "{one}");
    assert_eq!(one["status"]["state"], "stopped", "{one}");
    assert_eq!(one["status"]["error"]["error_id"], error_id, "{one}");
    let explained = p.run(&run(&["explain", stopped]));
    assert!(explained.stdout.contains(id), "{explained:?}");

    let mut mcp = crate::mcp::Client::start(&p, &[]);
    let status = mcp.ok("status", serde_json::json!({"run": "r"}));
    let line = task(&status, stopped);
    assert_eq!(line["state"], "stopped", "{status}");
    assert_eq!(line["error_id"], error_id, "{status}");
}

/// A task waiting to retry (a 429 with `Retry-After: 30`) showed its
/// finished call as the call in flight (`call: {attempt: 1, ..., tokens:
/// 0}`) beside `waiting_until`; it has `waiting_until` instead.
#[test]
fn a_task_waiting_to_retry_has_no_call_in_flight() {
    let server = Server::start();
    let p = project(
        &model(&server, "local", "stream = false"),
        "[tasks.a]\noutputs = [\"a.md\"]\nprompt = \"A\"\n",
    );
    server.script([with_header(
        json(429, serde_json::json!({"error": {"message": "slow down"}})),
        "Retry-After",
        "30",
    )]);
    server.default_reply(Reply::Hang);
    let build = spawn_build(&p, &["build"]);
    let mut line = Value::Null;
    wait_for("a to wait to retry", || {
        line = task(&status_json(&p, &[]), "a");
        line["waiting_until"].is_string()
    });
    assert_eq!(line["state"], "running", "{line}");
    assert_eq!(line["call"], Value::Null, "{line}");
    assert_eq!(line["attempt"], 1, "{line}");
    let one = status_json(&p, &["a"]);
    assert!(one["waiting_until"].is_string(), "{one}");
    assert_eq!(one["call"], Value::Null, "{one}");
    let text = p.run(&["status"]).stdout;
    assert!(text.contains("waiting to retry until"), "{text}");
    interrupt(build);
    assert_eq!(server.requests().len(), 1);
}

/// A stream sending tokens was flagged `STALLED: no progress lately`
/// (`stalled: true`) once `--stall-after` passed since the last event,
/// though its line said `19 token(s) in 4s, the last 0s ago`: tokens
/// arriving are progress, and `last_progress_at` says when the last came.
#[test]
fn tokens_arriving_are_progress_not_a_stall() {
    let server = Server::start();
    let p = project(
        &model(&server, "local", ""),
        "[tasks.a]\noutputs = [\"a.md\"]\nprompt = \"A\"\n",
    );
    server.default_reply(Reply::Trickle {
        every: std::time::Duration::from_millis(200),
    });
    let build = spawn_build(&p, &["build"]);
    wait_for("the call", || server.requests().len() == 1);
    // Past the stall limit since the build's last event (a's start).
    std::thread::sleep(std::time::Duration::from_millis(3500));
    let doc = status_json(&p, &["--stall-after", "2s"]);
    let line = task(&doc, "a");
    assert!(line["call"]["tokens"].as_u64() > Some(5), "{line}");
    assert_eq!(doc["stalled"], false, "{doc}");
    let progress = doc["last_progress_at"].as_str().unwrap_or_default();
    assert_eq!(progress, line["call"]["last_token_at"], "{doc}");
    let text = p.run(&["status", "--stall-after", "2s"]).stdout;
    assert!(!text.contains("STALLED"), "{text}");
    assert!(text.contains("token(s) in"), "{text}");
    interrupt(build);
}

/// A task whose command has run reads as running or done in `status
/// --full` while its build records it, never as it read before it ran:
/// the build journaled its end before publishing its record, and `status`
/// read the records before the journal, so a read between the two saw
/// neither the run nor its outcome (`never built`, for a moment). The
/// window is short: many quick tasks make many of them while `status`
/// reads the run again and again, until it says every one done (`held`
/// keeps the build running meanwhile).
#[test]
fn a_task_that_has_run_never_reads_as_never_built_while_its_build_records_it() {
    const TASKS: usize = 150;
    let mut pipeline: String = (0..TASKS)
        .map(|i| {
            format!("[tasks.t{i}]\noutputs = [\"out/t{i}\"]\ncommand = \"echo {i} > out/t{i}\"\n")
        })
        .collect();
    pipeline.push_str(
        "[tasks.held]\noutputs = [\"held\"]\ncommand = \"while [ ! -e go ]; do sleep 0.02; done; echo h > held\"\n",
    );
    let p = Project::new(&pipeline);
    // Stopped if the test fails before it ends (`held` waits for `go`).
    let build = Background(Some(p.spawn_quiet(&["build", "-j", "4"])));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        // Looked at before `status` reads the run: each of these has run.
        let ran: Vec<String> = (0..TASKS)
            .map(|i| format!("t{i}"))
            .filter(|t| p.exists(&format!("out/{t}")))
            .collect();
        let run = p.run(&["status", "--full", "--json"]);
        let status: Value = serde_json::from_str(&run.ok().stdout).unwrap();
        let states: std::collections::HashMap<&str, &str> = status["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| (l["task"].as_str().unwrap(), l["state"].as_str().unwrap()))
            .collect();
        for task in &ran {
            assert!(
                matches!(states[task.as_str()], "running" | "done"),
                "{task} has run, yet status reads it as {}",
                states[task.as_str()]
            );
        }
        if status["counts"]["done"] == TASKS {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the build never ran its tasks: {status}"
        );
    }
    p.write("go", "");
    assert!(build.wait().status.success());
}

/// A `status` whose read a build's end falls into: the records it read
/// hold the tasks in flight then, and by the time it asks whether the
/// build runs, it has ended. Those tasks read as `stopped`, beside a
/// completed build, though nothing was stopped. Each build here ends with
/// all its tasks at once, while `status` reads the run again and again; no
/// read may say a task stopped. (Before the fix: 3 builds in 20 did.)
#[test]
fn a_build_that_ends_while_status_reads_the_run_stopped_nothing() {
    const TASKS: usize = 8;
    let pipeline: String = (0..TASKS)
        .map(|i| {
            format!(
                "[tasks.t{i}]\noutputs = [\"out/t{i}\"]\ncommand = \"sleep 0.2; echo {i} > out/t{i}\"\n"
            )
        })
        .collect();
    let p = Project::new(&pipeline);
    let mut reads = 0;
    for round in 0..30 {
        if round > 0 {
            p.run(&["clean", "--all", "-y"]).ok();
        }
        let mut build = Background(Some(p.spawn_quiet(&["build", "-j", "8"])));
        loop {
            let ended = build.0.as_mut().unwrap().try_wait().unwrap().is_some();
            let run = p.run(&["status", "--full", "--json"]);
            let status: Value = serde_json::from_str(&run.ok().stdout).unwrap();
            reads += 1;
            let stopped: Vec<&str> = status["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|l| l["state"] == "stopped")
                .map(|l| l["task"].as_str().unwrap())
                .collect();
            assert!(
                stopped.is_empty(),
                "no task was stopped, yet read {reads} (build {round}) says {stopped:?} \
                 stopped, with the build {}",
                status["state"]
            );
            if ended {
                break;
            }
        }
        assert!(build.wait().status.success());
    }
}
