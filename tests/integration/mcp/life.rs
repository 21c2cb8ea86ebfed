//! The life of a run through the server: created, built against the
//! loopback model server, waited for, read, failed and fixed, stopped,
//! cleaned, archived; and builds that outlive the server.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{alive, Client, COMMANDS};
use crate::harness::*;
use crate::llm_server::*;

fn model_pipeline(server: &Server) -> String {
    format!(
        r#"
[pipeline]
model = "local"

[models.local]
provider = "openai"
base_url = "{}/v1"
model = "test-model"
stream = false

[tasks.ask]
inputs = ["plan.txt"]
outputs = ["answer.md"]
prompt = "Plan: {{{{ inputs['plan.txt'] }}}}"

[tasks.check]
inputs = ["plan.txt"]
outputs = ["checked.txt"]
command = "grep -q budget plan.txt || {{ echo 'plan.txt names no budget' >&2; exit 3; }}; echo checked; echo ok > checked.txt"
"#,
        server.url
    )
}

/// Builds `run` and waits for its build to end; the final status.
#[track_caller]
fn build_and_wait(c: &mut Client, run: &str) -> Value {
    let started = c.ok("build", json!({"run": run}));
    assert!(started["pid"].as_u64().unwrap() > 0);
    let status = c.ok("wait", json!({"run": run, "timeout_s": 30}));
    assert_eq!(status["timed_out"], false, "{status}");
    status
}

#[test]
fn a_run_is_created_built_waited_for_and_read_against_a_model_server() {
    let server = Server::start();
    server.default_reply(openai_answer("Step 1: dig."));
    let p = Project::new(&model_pipeline(&server));
    let mut c = Client::start(&p, &[]);

    let created = c.ok("run_create", json!({"plan": "A shed, budget 500."}));
    let run = created["run"].as_str().unwrap().to_string();
    assert_eq!(created["created"], true);
    assert!(run.ends_with("-a-shed-budget-500"), "{run}");
    assert_eq!(created["pipeline"], "pipeline.toml");
    assert_eq!(p.read(&format!("{run}/plan.txt")), "A shed, budget 500.\n");
    // The same call again, within ten minutes: the same run.
    let again = c.ok("run_create", json!({"plan": "A shed, budget 500."}));
    assert_eq!(
        (again["run"].as_str(), &again["created"]),
        (Some(run.as_str()), &json!(false))
    );
    assert_eq!(again["results"], json!(["answer.md", "checked.txt"]));
    assert_eq!(again["results"], created["results"]);
    let other = c.ok("run_create", json!({"plan": "A barn, budget 900."}));
    assert_ne!(other["run"], run);
    assert_eq!(c.ok("status", json!({"run": run}))["state"], "never-built");

    let status = build_and_wait(&mut c, &run);
    assert_eq!(status["state"], "completed", "{status}");
    assert!(status.get("error").is_none());
    assert_eq!(status["counts"]["done"], 2);
    assert_eq!(status["run"], run);
    let answer = c.ok("read_output", json!({"run": run, "path": "answer.md"}));
    assert_eq!(answer["text"], "Step 1: dig.");
    assert_eq!(answer["truncated"], false);
    let head = c.ok(
        "read_output",
        json!({"run": run, "path": "answer.md", "max_bytes": 4}),
    );
    assert_eq!(
        (
            head["text"].as_str(),
            head["truncated"].as_bool(),
            head["size"].as_u64()
        ),
        (Some("Step"), Some(true), Some(12))
    );
    let log = c.ok(
        "read_output",
        json!({"run": run, "path": ".planexe/build.log"}),
    );
    assert!(
        log["text"].as_str().unwrap().contains("built 2 task(s)"),
        "{log}"
    );
    let task_log = c.ok(
        "read_output",
        json!({"run": run, "path": ".planexe/logs/check.log"}),
    );
    assert_eq!(task_log["path"], ".planexe/logs/check.log");

    let summary = c.ok("summary", json!({"run": run}));
    assert_eq!(summary["counts"]["done"], 2, "{summary}");
    let explained = c.ok("explain", json!({"run": run, "task": "ask"}));
    assert_eq!(explained["stale"], false);
    assert_eq!(explained["inputs"][0]["verdict"], "same");
    assert!(c
        .err("explain", json!({"run": run, "task": "nope"}))
        .contains("unknown task `nope`"));
    // Built again, nothing is asked again.
    let requests = server.requests().len();
    assert_eq!(build_and_wait(&mut c, &run)["state"], "completed");
    assert_eq!(server.requests().len(), requests);
    assert!(c
        .err("summary", json!({"run": other["run"]}))
        .contains("no summary yet"));

    let runs = c.ok("runs", json!({}));
    let listed: Vec<(&str, &str)> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["run"].as_str().unwrap(), r["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        listed,
        [
            (other["run"].as_str().unwrap(), "never-built"),
            (run.as_str(), "completed")
        ]
    );
    assert!(c.close().success());
}

#[test]
fn a_failure_says_whether_building_again_can_fix_it_and_a_fix_resumes() {
    let server = Server::start();
    server.default_reply(json(503, json!({"error": {"message": "overloaded"}})));
    let p = Project::new(&model_pipeline(&server));
    let mut c = Client::start(&p, &[]);
    c.ok(
        "run_create",
        json!({"plan": "A shed, budget 500.", "name": "shed"}),
    );

    // The model server is down: building again may fix it by itself.
    let status = build_and_wait(&mut c, "shed");
    assert_eq!(status["state"], "failed", "{status}");
    let error = &status["error"];
    assert_eq!(error["recoverable"], true, "{status}");
    assert_eq!(error["kind"], "server_error");
    assert_eq!(error["failed_task"], "ask");
    assert!(error["error_id"].is_string(), "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("503"),
        "{error}"
    );
    assert_eq!(error["failed_tasks"], 1);

    // The server is back, but the agent broke an input: `check` fails, not
    // recoverable, and the message says why.
    server.default_reply(openai_answer("Step 1: dig."));
    std::fs::write(p.path("shed/plan.txt"), "A shed.\n").unwrap();
    let status = build_and_wait(&mut c, "shed");
    assert_eq!(status["state"], "failed", "{status}");
    let error = &status["error"];
    assert_eq!(
        (
            error["failed_task"].as_str(),
            error["recoverable"].as_bool()
        ),
        (Some("check"), Some(false)),
        "{error}"
    );
    assert_eq!(error["kind"], "exit");
    assert!(error["hint"].is_string(), "{error}");
    let log = c.ok(
        "read_output",
        json!({"run": "shed", "path": ".planexe/logs/check.log"}),
    );
    assert!(
        log["text"]
            .as_str()
            .unwrap()
            .contains("plan.txt names no budget"),
        "{log}"
    );
    assert_eq!(status["counts"]["done"], 1);
    let explained = c.ok("explain", json!({"run": "shed", "task": "check"}));
    assert_eq!(explained["last_error"]["kind"], "exit");
    assert_eq!(explained["stale"], true);

    // Fixed, the run resumes: `ask` (its input changed) and `check` run.
    std::fs::write(p.path("shed/plan.txt"), "A shed, budget 600.\n").unwrap();
    let status = build_and_wait(&mut c, "shed");
    assert_eq!(status["state"], "completed", "{status}");
    assert!(status.get("error").is_none());
    assert_eq!(
        c.ok("read_output", json!({"run": "shed", "path": "checked.txt"}))["text"],
        "ok\n"
    );
    assert!(c.close().success());
}

const SLOW: &str = r#"
[tasks.slow]
inputs = ["plan.txt"]
outputs = ["slow.txt"]
command = "if [ -f fast ]; then cp plan.txt slow.txt; else sleep 30; cp plan.txt slow.txt; fi"
"#;

#[test]
fn stop_stops_a_build_and_the_run_is_stopped_not_failed() {
    let p = Project::new(SLOW);
    let mut c = Client::start(&p, &[]);
    c.ok("run_create", json!({"plan": "p", "name": "r"}));
    let started = c.ok("build", json!({"run": "r"}));
    assert_eq!(started["state"], "running", "{started}");
    let pid = started["pid"].as_u64().unwrap();
    wait_for("the task to start", || {
        p.read("r/.planexe/run.json").contains("running")
            && p.exists("r/.planexe/tasks/slow.status")
    });

    // While it runs: a second build, a clean and an archive are refused;
    // status and a short wait answer.
    let refused = c.err("build", json!({"run": "r"}));
    assert!(
        refused.contains(&format!(
            "a build (pid {pid}) is already running in run `r`"
        )),
        "{refused}"
    );
    assert!(c
        .err("clean", json!({"run": "r", "tasks": ["slow"]}))
        .contains("cannot clean run `r`"));
    assert!(c.err("archive", json!({"run": "r"})).contains("is running"));
    assert_eq!(c.ok("status", json!({"run": "r"}))["state"], "running");
    let waited = c.ok("wait", json!({"run": "r", "timeout_s": 0.2}));
    assert_eq!(
        (waited["timed_out"].as_bool(), waited["state"].as_str()),
        (Some(true), Some("running"))
    );
    assert_eq!(c.ok("runs", json!({}))["runs"][0]["state"], "running");

    let stopped = c.ok("stop", json!({"run": "r"}));
    assert_eq!(stopped["stopped_pid"], pid);
    assert_eq!(stopped["still_stopping"], false);
    assert_eq!(stopped["state"], "stopped", "{stopped}");
    assert!(
        stopped.get("error").is_none(),
        "stopped is not failed: {stopped}"
    );
    assert_eq!(stopped["tasks"][0]["state"], "stopped");
    assert_eq!(stopped["tasks"][0]["hint"], "call the build tool to resume");
    assert!(!alive(pid));
    let log = p.read("r/.planexe/build.log");
    assert!(log.contains("stopped"), "{log}");
    // Nothing runs: stop says so, and a build resumes the run.
    assert_eq!(
        c.ok("stop", json!({"run": "r"}))["stopped_pid"],
        Value::Null
    );
    p.write("r/fast", "");
    let status = build_and_wait(&mut c, "r");
    assert_eq!(status["state"], "completed", "{status}");
    assert!(c.close().success());
}

#[test]
fn the_end_of_input_ends_the_server_and_its_builds_go_on() {
    let p = Project::new(&SLOW.replace("sleep 30", "sleep 2"));
    let mut c = Client::start(&p, &[]);
    c.ok("run_create", json!({"plan": "p", "name": "r"}));
    let pid = c.ok("build", json!({"run": "r"}))["pid"].as_u64().unwrap();
    let ended = Instant::now();
    assert!(c.close().success());
    assert!(
        ended.elapsed() < Duration::from_secs(2),
        "the server waited for the build"
    );
    assert!(alive(pid), "the build died with the server");
    wait_for("the build to complete", || {
        p.read("r/.planexe/run.json").contains("\"completed\"")
    });
    assert_eq!(p.read("r/slow.txt"), "p\n");
}

#[test]
fn a_ctrl_c_in_the_clients_terminal_ends_the_server_not_its_builds() {
    let p = Project::new(&SLOW.replace("sleep 30", "sleep 2"));
    let mut c = Client::start_in_own_group(&p, &[]);
    c.ok("run_create", json!({"plan": "p", "name": "r"}));
    let pid = c.ok("build", json!({"run": "r"}))["pid"].as_u64().unwrap();
    let server = c.child.id() as i32;
    // A terminal's Ctrl-C: SIGINT to every process of the foreground group.
    // SAFETY: killpg only sends a signal.
    assert_eq!(unsafe { libc::killpg(server, libc::SIGINT) }, 0);
    wait_for("the server to end", || {
        c.child.try_wait().unwrap().is_some()
    });
    assert!(alive(pid), "the build died with the server");
    wait_for("the build to complete", || {
        p.read("r/.planexe/run.json").contains("\"completed\"")
    });
    assert_eq!(p.read("r/slow.txt"), "p\n");
}

#[test]
fn requests_are_answered_while_a_wait_blocks() {
    let p = Project::new(SLOW);
    let mut c = Client::start(&p, &[]);
    c.ok("run_create", json!({"plan": "p", "name": "r"}));
    c.ok("build", json!({"run": "r"}));
    c.send(r#"{"jsonrpc":"2.0","id":"w","method":"tools/call","params":{"name":"wait","arguments":{"run":"r","timeout_s":3}}}"#);
    c.send(r#"{"jsonrpc":"2.0","id":"p","method":"ping"}"#);
    let first = c.recv();
    assert_eq!(first["id"], "p", "ping waited for wait: {first}");
    let second = c.recv();
    assert_eq!(second["id"], "w");
    assert_eq!(second["result"]["structuredContent"]["timed_out"], true);
    // Many waits at once (more than the requests answered at once) still
    // leave ping, status and stop their answers: with sixteen, ping waited
    // for a wait to return.
    for i in 0..20 {
        c.send(&format!(
            r#"{{"jsonrpc":"2.0","id":"w{i}","method":"tools/call","params":{{"name":"wait","arguments":{{"run":"r","timeout_s":40}}}}}}"#
        ));
    }
    c.send(r#"{"jsonrpc":"2.0","id":"p","method":"ping"}"#);
    let first = c.recv();
    assert_eq!(first["id"], "p", "ping waited for a wait: {first}");
    c.send(r#"{"jsonrpc":"2.0","id":"s","method":"tools/call","params":{"name":"stop","arguments":{"run":"r"}}}"#);
    let mut answered = std::collections::HashSet::new();
    while answered.len() < 21 {
        let answer = c.recv();
        answered.insert(answer["id"].as_str().unwrap().to_string());
    }
    assert!(answered.contains("s"), "{answered:?}");
}

#[test]
fn clean_runs_and_archive() {
    let p = Project::new(COMMANDS);
    let mut c = Client::start(&p, &["-f", "./pipeline.toml"]);
    c.ok("run_create", json!({"plan": "a shed", "name": "old"}));
    c.ok("run_create", json!({"plan": "a barn", "name": "new"}));
    assert_eq!(build_and_wait(&mut c, "old")["state"], "completed");
    let cleaned = c.ok("clean", json!({"run": "old", "tasks": ["upper"]}));
    assert_eq!(cleaned["tasks"], json!(["upper"]));
    assert!(
        cleaned["deleted"]
            .as_array()
            .unwrap()
            .contains(&json!("upper.txt")),
        "{cleaned}"
    );
    assert!(!p.exists("old/upper.txt"));
    assert!(p.exists("old/plan.txt"));
    assert!(c
        .err("clean", json!({"run": "old", "tasks": ["nope"]}))
        .contains("nope"));
    assert_ne!(
        c.ok("status", json!({"run": "old"}))["tasks"][0]["state"],
        "done"
    );

    let archived = c.ok("archive", json!({"run": "old"}));
    assert_eq!(archived["archived"], true);
    assert!(archived["archived_at"].is_string());
    let runs = c.ok("runs", json!({}));
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1, "{runs}");
    assert_eq!(runs["runs"][0]["run"], "new");
    assert_eq!(runs["archived_hidden"], 1);
    let all = c.ok("runs", json!({"archived": true}));
    assert_eq!(all["runs"].as_array().unwrap().len(), 2);
    assert!(c
        .err("build", json!({"run": "old"}))
        .contains("is archived"));
    // Kept whole: clean is refused too (it deleted what the run made).
    let refused = c.err("clean", json!({"run": "old", "tasks": ["upper"]}));
    assert!(refused.contains("run `old` is archived"), "{refused}");
    // Still readable.
    assert_eq!(c.ok("status", json!({"run": "old"}))["run"], "old");
    assert_eq!(
        c.ok("archive", json!({"run": "old", "restore": true}))["archived"],
        false
    );
    assert_eq!(c.ok("runs", json!({}))["runs"].as_array().unwrap().len(), 2);
    assert_eq!(build_and_wait(&mut c, "old")["state"], "completed");

    // A name already taken is refused, unless it is the same plan again.
    assert!(c
        .err("run_create", json!({"plan": "a third", "name": "new"}))
        .contains("already exists"));
    assert_eq!(
        c.ok("run_create", json!({"plan": "a barn", "name": "new"}))["created"],
        false
    );
    assert!(c.close().success());
}

/// `run_create` with the name of a folder that holds no run: an empty one
/// is made the run (as `planexe new` does), one made by hand is said to
/// hold no run, and a run a build made in its folder is a run, but not one
/// made for another plan (each used to be `a run ... already exists, made
/// for another plan or pipeline`).
#[test]
fn run_create_says_what_a_folder_of_that_name_holds() {
    let p = Project::new(COMMANDS);
    std::fs::create_dir_all(p.path("empty")).unwrap();
    p.write("hand/pipeline.toml", COMMANDS);
    std::fs::create_dir_all(p.path("partial/.planexe")).unwrap();
    p.write("built/pipeline.toml", COMMANDS);
    p.write("built/plan.txt", "a shed\n");
    p.run(&["build", "-C", "built"]).ok();
    p.write("file", "");
    let mut c = Client::start(&p, &[]);
    let made = c.ok("run_create", json!({"plan": "a shed", "name": "empty"}));
    assert_eq!(made["created"], true, "{made}");
    assert_eq!(p.read("empty/plan.txt"), "a shed\n");
    for (name, holds) in [
        ("hand", "pipeline.toml"),
        ("partial", ".planexe/ (with no record of a run)"),
    ] {
        let message = c.err("run_create", json!({"plan": "a shed", "name": name}));
        assert!(
            message.starts_with(&format!(
                "run directory {name} already exists and is not empty, but holds no planexe run: {holds}\n"
            )),
            "{message}"
        );
        assert!(!message.contains("another plan"), "{message}");
        assert!(message.contains("leave `name` out"), "{message}");
    }
    let message = c.err("run_create", json!({"plan": "a shed", "name": "built"}));
    assert!(
        message.starts_with(
            "a run `built` already exists, made by a build in its folder, not by run_create"
        ),
        "{message}"
    );
    // A name taken by something else than a folder says so, and what.
    std::os::unix::fs::symlink(p.path("empty"), p.path("link")).unwrap();
    for (name, what) in [("file", "a file"), ("link", "a symlink")] {
        let message = c.err("run_create", json!({"plan": "a shed", "name": name}));
        assert!(
            message.starts_with(&format!("the name `{name}` is taken: {what} of that name")),
            "{message}"
        );
        assert!(message.contains("leave name out"), "{message}");
    }
    assert!(c.close().success());
}

#[test]
fn a_build_that_cannot_start_says_why() {
    let p = Project::new(COMMANDS);
    let mut c = Client::start(&p, &[]);
    c.ok("run_create", json!({"plan": "a shed", "name": "r"}));
    let message = c.err("build", json!({"run": "r", "targets": ["nope"]}));
    assert!(message.contains("unknown target `nope`"), "{message}");
    // A target that looks like an option is a target, not an option.
    let message = c.err("build", json!({"run": "r", "targets": ["--dry-run"]}));
    assert!(message.contains("--dry-run"), "{message}");
    p.write("pipeline.toml", "[tasks.upper]\ncommand = 3\n");
    let (message, refused) = c.refused("build", json!({"run": "r"}));
    assert!(message.contains("pipeline.toml:2"), "{message}");
    // What the run's records say, and why the pipeline cannot be used:
    // what the build's refusal gave as data.
    let status = c.ok("status", json!({"run": "r"}));
    let message = status["pipeline_error"]["message"].as_str().unwrap();
    assert!(message.contains("pipeline.toml:2"), "{status}");
    assert_eq!(refused, json!({"pipeline_error": status["pipeline_error"]}));
    // run_create too, where it is as data.
    let (message, data) = c.refused("run_create", json!({"plan": "p"}));
    assert!(message.contains("pipeline.toml:2"), "{message}");
    assert_eq!(data["pipeline_error"]["where"]["line"], 2, "{data}");
    assert!(c.close().success());
}

/// A client cannot pass `-f`: a run whose pipeline file cannot be used is
/// refused with what the tools offer (run_create's `pipeline`), while the
/// command line keeps saying `-f FILE`.
#[test]
fn a_broken_pipeline_record_says_what_an_mcp_client_can_do() {
    let p = Project::new(COMMANDS);
    p.write("binary.toml", "[tasks]\0\n");
    let mut c = Client::start(&p, &[]);
    c.ok("run_create", json!({"plan": "a shed", "name": "r"}));
    let no_flag = |message: &str| {
        assert!(message.contains("run_create"), "{message}");
        assert!(!message.contains("-f"), "{message}");
        assert!(!message.contains("pass "), "{message}");
    };
    let record = ".planexe/pipeline";
    let recorded = p.read(&format!("r/{record}"));
    let cases = [
        (
            "../outside/path.toml",
            "neither an absolute path nor one inside the run directory",
        ),
        ("/no/such/pipeline.toml\n", "no longer exists"),
    ];
    for (held, what) in cases {
        p.write(&format!("r/{record}"), held);
        // Status and wait answer with the run's records, and the error.
        let mut broken = json!(null);
        for tool in ["status", "wait"] {
            let status = c.ok(tool, json!({"run": "r"}));
            broken = status["pipeline_error"].clone();
            assert!(
                broken["message"].as_str().unwrap().contains(what),
                "{tool}: {status}"
            );
            no_flag(&broken.to_string());
        }
        // Explain and clean give the same error as data; build, text alone.
        for (tool, arguments) in [
            ("explain", json!({"run": "r", "task": "upper"})),
            ("clean", json!({"run": "r", "tasks": ["upper"]})),
        ] {
            let (message, data) = c.refused(tool, arguments);
            assert!(message.contains(what), "{tool}: {message}");
            no_flag(&message);
            assert_eq!(data, json!({"pipeline_error": broken}), "{tool}");
        }
        let (message, data) = c.refused("build", json!({"run": "r"}));
        assert!(message.contains(what), "{message}");
        no_flag(&message);
        assert_eq!(data, json!({"pipeline_error": broken}), "build");
        // The command line's words are its own.
        p.run(&["status", "-C", "r"])
            .code(2)
            .stderr_has(what)
            .stderr_has("-f FILE");
    }
    // A run that records no pipeline is the server's default's, not the
    // `pipeline.toml` beside its plan the command line would look for.
    p.write(&format!("r/{record}"), "");
    assert_eq!(
        c.ok("status", json!({"run": "r"}))["tasks"][0]["task"],
        "upper"
    );
    p.run(&["status", "-C", "r"])
        .code(2)
        .stderr_has("pipeline.toml not found");
    p.write(&format!("r/{record}"), &recorded);
    c.ok("status", json!({"run": "r"}));
    // A pipeline file that is binary data, named to run_create.
    let (message, data) = c.refused(
        "run_create",
        json!({"plan": "p", "pipeline": "binary.toml"}),
    );
    assert!(message.contains("binary"), "{message}");
    no_flag(&message);
    no_flag(&data.to_string());
    // The server's default pipeline, gone: nowhere in it to point at.
    p.remove("pipeline.toml");
    let (message, data) = c.refused("run_create", json!({"plan": "p"}));
    assert!(message.contains("not found"), "{message}");
    no_flag(&message);
    assert_eq!(data["pipeline_error"]["where"], json!(null), "{data}");
    assert!(c.close().success());
}

/// `created_at` as `status --json` says it, and as `runs` and the
/// server's `status` do.
fn created(p: &Project, c: &mut Client, run: &str) -> Vec<Value> {
    let out = p.run(&["status", "--json", "-C", run]);
    let status: Value = serde_json::from_str(&out.stdout).unwrap();
    let runs = c.ok("runs", json!({}));
    let listed = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["run"] == run)
        .unwrap_or_else(|| panic!("{run} not in {runs}"))
        .clone();
    vec![
        status["created_at"].clone(),
        listed["created_at"].clone(),
        c.ok("status", json!({"run": run}))["created_at"].clone(),
    ]
}

#[test]
fn status_and_runs_give_a_run_the_same_creation_time() {
    let p = Project::new(COMMANDS);
    let mut c = Client::start(&p, &["-f", "./pipeline.toml"]);
    c.ok("run_create", json!({"plan": "a shed", "name": "made"}));
    // Made a while before its first build (no sleep: the time it records
    // is set back).
    let made_at = "2026-01-02T03:04:05Z";
    let origin = p.path("made/.planexe/origin.json");
    let mut value: Value = serde_json::from_str(&p.read("made/.planexe/origin.json")).unwrap();
    value["created_at"] = json!(made_at);
    std::fs::write(&origin, value.to_string()).unwrap();
    assert_eq!(created(&p, &mut c, "made"), vec![json!(made_at); 3]);
    assert_eq!(build_and_wait(&mut c, "made")["state"], "completed");
    assert_eq!(created(&p, &mut c, "made"), vec![json!(made_at); 3]);
    let record: Value = serde_json::from_str(&p.read("made/.planexe/run.json")).unwrap();
    assert_eq!(record["created_at"], made_at);
    let text = p.run(&["status", "-C", "made"]).stdout;
    assert!(
        text.contains(&format!("created  {made_at}, last build ")),
        "{text}"
    );

    // A run folder made by hand was created by its first build.
    p.write("hand/plan.txt", "a barn\n");
    p.run(&["build", "-C", "hand", "-f", "pipeline.toml"]).ok();
    let record: Value = serde_json::from_str(&p.read("hand/.planexe/run.json")).unwrap();
    assert_eq!(
        created(&p, &mut c, "hand"),
        vec![record["created_at"].clone(); 3]
    );
    assert!(c.close().success());
}
