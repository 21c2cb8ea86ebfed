//! What a build the build tool started says, in the tools' terms: its
//! clients read it, in `.planexe/build.log` (read_output) and at the end
//! of the build tool's error when the build refused to start, so its
//! notices and the hints of its errors name the tools and their
//! arguments, not `planexe build`, `--model` or `export`.

use serde_json::json;

use super::Client;
use crate::harness::*;

/// A build the build tool started, refused after it put right what a
/// crashed build left (under the run's lock, so the tool could not check
/// it first), ended the tool's error with its log in the command line's
/// words: `export KEY=... before the build`, `pass --model to change it`.
#[test]
fn a_build_refused_after_a_crash_is_told_in_the_tools_terms() {
    let p = Project::new(
        r#"
[models.cloud]
provider = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "m"
api_key_env = "PLANEXE_TEST_NEVER_SET_KEY"

[tasks.slow]
inputs = ["plan.txt"]
outputs = ["slow.txt"]
command = "touch started; sleep 60; cp plan.txt slow.txt"

[tasks.ask]
inputs = ["slow.txt"]
outputs = ["answer.md"]
model = "cloud"
prompt = "{{ inputs['slow.txt'] }}"
"#,
    );
    let mut c = Client::start(&p, &[]);
    c.ok("run_create", json!({"plan": "a shed", "name": "r"}));
    // No prompt task wanted: no key needed. The run remembers the model.
    let started = c.ok(
        "build",
        json!({"run": "r", "targets": ["slow"], "model": "cloud"}),
    );
    let pid = started["pid"].as_u64().unwrap();
    wait_for("slow to start", || p.exists("r/started"));
    // The build crashes, leaving its command running.
    // SAFETY: a signal to the build this test started.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    c.ok("wait", json!({"run": "r"}));
    let message = c.err("build", json!({"run": "r"}));
    assert!(message.contains("refused to start"), "{message}");
    assert!(
        message.contains("left running by a build that crashed"),
        "{message}"
    );
    assert!(
        message.contains(
            "using model cloud, chosen for this run by an earlier build's `model` (the build \
             tool's `model` argument changes it)"
        ),
        "{message}"
    );
    assert!(
        message.contains(
            "model `cloud` needs an API key in $PLANEXE_TEST_NEVER_SET_KEY, which is not set\n\
             hint: builds read $PLANEXE_TEST_NEVER_SET_KEY from the server's environment, which \
             its operator sets"
        ),
        "{message}"
    );
    assert!(
        message.ends_with(
            "\nhint: fix what it names, then call the build tool again; the whole log is \
             .planexe/build.log (read_output)"
        ),
        "{message}"
    );
    for cli in ["export ", "--model", "planexe build"] {
        assert!(!message.contains(cli), "{cli}: {message}");
    }
    assert!(c.close().success());
    // The command line's words are its own.
    p.run(&["build", "-C", "r"])
        .code(2)
        .stderr_has("(pass --model to change it)")
        .stderr_has("hint: export PLANEXE_TEST_NEVER_SET_KEY=... before the build");
}

/// A replay model whose folder of answers is missing: the build refuses
/// to start, and says what a client can do (the build tool's `model`) and
/// what is the operator's (recording).
#[test]
fn a_missing_folder_of_recorded_answers_is_told_in_the_tools_terms() {
    let p = Project::new(
        r#"
[pipeline]
model = "recorded"

[models.local]
provider = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "m"

[models.recorded]
provider = "replay"
dir = "answers"
replays = "local"

[tasks.ask]
inputs = ["plan.txt"]
outputs = ["answer.md"]
prompt = "{{ inputs['plan.txt'] }}"
"#,
    );
    let mut c = Client::start(&p, &[]);
    c.ok("run_create", json!({"plan": "a shed", "name": "r"}));
    let message = c.err("build", json!({"run": "r"}));
    assert!(message.contains("refused to start"), "{message}");
    assert!(message.contains("pipeline.toml:"), "{message}");
    assert!(
        message.contains("hint: have the server's operator record answers there with a live model"),
        "{message}"
    );
    assert!(
        message.contains("the build tool's `model` argument naming `local` asks it live instead"),
        "{message}"
    );
    assert!(!message.contains("hint: record answers there"), "{message}");
    assert!(c.close().success());
    p.run(&["build", "-C", "r"])
        .code(2)
        .stderr_has("hint: record answers there: planexe build -C r --record");
}

/// The end of a failed build, a stopped one and a task no longer in the
/// pipeline: what .planexe/build.log says to do names the tools, and what
/// it says works.
#[test]
fn a_builds_log_names_the_tools() {
    let pipeline = r#"
[tasks.broken]
outputs = ["b.txt"]
command = "exit 3"

[tasks.slow]
inputs = ["plan.txt"]
outputs = ["slow.txt"]
command = "touch started; while [ ! -f go ]; do sleep 0.02; done; cp plan.txt slow.txt"

[tasks.gone]
inputs = ["plan.txt"]
outputs = ["gone.txt"]
command = "cp plan.txt gone.txt"
"#;
    let p = Project::new(pipeline);
    let mut c = Client::start(&p, &[]);
    c.ok("run_create", json!({"plan": "a shed", "name": "r"}));
    let log = |c: &mut Client| {
        let read = c.ok(
            "read_output",
            json!({"run": "r", "path": ".planexe/build.log"}),
        );
        read["text"].as_str().unwrap().to_string()
    };

    c.ok("build", json!({"run": "r", "targets": ["broken"]}));
    c.ok("wait", json!({"run": "r"}));
    let failed = log(&mut c);
    assert!(
        failed.contains("finished tasks are kept, so fix the cause and call the build tool again"),
        "{failed}"
    );
    assert!(!failed.contains("planexe build"), "{failed}");

    c.ok("build", json!({"run": "r", "targets": ["slow"]}));
    wait_for("slow to start", || p.exists("r/started"));
    assert_eq!(c.ok("stop", json!({"run": "r"}))["state"], "stopped");
    let stopped = log(&mut c);
    assert!(
        stopped.contains("not started; call the build tool to resume"),
        "{stopped}"
    );
    assert!(!stopped.contains("planexe build"), "{stopped}");

    c.ok("build", json!({"run": "r", "targets": ["gone"]}));
    c.ok("wait", json!({"run": "r"}));
    let kept: String = pipeline.split("[tasks.gone]").next().unwrap().into();
    p.write("pipeline.toml", &kept);
    p.write("r/go", "");
    c.ok("build", json!({"run": "r"}));
    c.ok("wait", json!({"run": "r"}));
    let left = log(&mut c);
    assert!(
        left.contains(
            "task gone is no longer in the pipeline; its outputs stay on disk: gone.txt (the \
             clean tool with `tasks: [\"gone\"]` deletes them and forgets it)"
        ),
        "{left}"
    );
    assert!(!left.contains("planexe clean"), "{left}");
    // And so it does.
    let cleaned = c.ok("clean", json!({"run": "r", "tasks": ["gone"]}));
    assert!(
        cleaned["deleted"]
            .as_array()
            .unwrap()
            .contains(&json!("gone.txt")),
        "{cleaned}"
    );
    assert!(!p.exists("r/gone.txt"));
    assert!(c.close().success());
}

/// A build that finds the run's lock held says to wait or stop in the
/// tools' terms when the server started it. (The build tool checks the
/// lock before it starts one, so only a command that takes it in between
/// meets this: here, the build the server would start, run by hand while
/// another holds the lock.)
#[test]
fn a_build_that_finds_the_lock_held_is_told_in_the_tools_terms() {
    let p = Project::new(
        r#"
[tasks.slow]
inputs = ["plan.txt"]
outputs = ["slow.txt"]
command = "touch started; while [ ! -f go ]; do sleep 0.02; done; cp plan.txt slow.txt"
"#,
    );
    p.run(&["new", "r", "--plan", "a shed"]).ok();
    let holder = p
        .command(&["build", "-C", "r"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("slow to start", || p.exists("r/started"));
    // As the server starts its builds: `--no-wait`.
    p.run(&["build", "-C", "r", "--advice=mcp", "--no-wait"])
        .code(2)
        .stderr_has("is running in this directory")
        .stderr_has(
            "hint: wait for it to end (the wait tool; status works meanwhile), or stop a build \
             with the stop tool, then call the build tool again",
        );
    p.run(&["build", "-C", "r", "--no-wait"])
        .code(2)
        .stderr_has("hint: wait for it (`planexe status -C r` works meanwhile)");
    p.write("r/go", "");
    let done = holder.wait_with_output().unwrap();
    assert!(done.status.success());
}

/// Two servers asked to build one run at the same moment: one build runs,
/// the other call is refused, and the log of the one that runs is its own
/// (the refused build, started by the other server, rewrote its start
/// with its own refusal: `error: anothdone   slow`).
#[test]
fn two_servers_building_one_run_at_once_leave_the_log_to_the_build_that_runs() {
    let p = Project::new(
        "[tasks.slow]\ninputs = [\"plan.txt\"]\noutputs = [\"slow.txt\"]\n\
         command = \"sleep 0.5; cp plan.txt slow.txt\"\n",
    );
    let mut a = Client::start(&p, &[]);
    let mut b = Client::start(&p, &[]);
    a.ok("run_create", json!({"plan": "a shed", "name": "r"}));
    let build = |id: u64| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
               "params": {"name": "build", "arguments": {"run": "r", "force": true}}})
        .to_string()
    };
    for round in 0..4 {
        a.send(&build(1000 + round));
        b.send(&build(1000 + round));
        let answers = [a.recv(), b.recv()];
        let refused = answers
            .iter()
            .filter(|r| r["result"]["isError"] == true)
            .count();
        // One is refused, unless the first build ended before the second
        // call came (a loaded machine): then both ran, one after the other.
        assert!(refused <= 1, "{answers:?}");
        let pids: Vec<u64> = answers
            .iter()
            .filter(|r| r["result"]["isError"] == false)
            .map(|r| r["result"]["structuredContent"]["pid"].as_u64().unwrap())
            .collect();
        a.ok("wait", json!({"run": "r"}));
        // The next round starts once these builds have exited (a build
        // holds the run's lock until then, and both calls would be
        // refused).
        let gone = std::time::Instant::now() + std::time::Duration::from_secs(20);
        for pid in pids {
            while std::path::Path::new(&format!("/proc/{pid}")).exists() {
                assert!(
                    std::time::Instant::now() < gone,
                    "build {pid} still running"
                );
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        let log = p.read("r/.planexe/build.log");
        assert!(log.contains("start  slow\n"), "round {round}: {log}");
        assert!(log.contains("done   slow"), "round {round}: {log}");
        assert!(!log.contains("error:"), "round {round}: {log}");
    }
    assert!(a.close().success());
    assert!(b.close().success());
}
