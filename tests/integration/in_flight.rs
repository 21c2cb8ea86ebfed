//! A task in flight, as other commands see it: a dry run beside the build
//! that runs it, and what a crash leaves after an earlier failure.

use std::process::Stdio;

use crate::harness::*;

/// `a` waits while `hold` exists, so a test decides when it ends.
const HELD: &str = r#"
[tasks.a]
inputs = ["other.txt"]
outputs = ["a.txt"]
command = "while [ -e hold ]; do sleep 0.05; done; cp other.txt a.txt"

[tasks.b]
outputs = ["b.txt"]
command = "echo b > b.txt"
"#;

/// The pid of `task`'s command, once the running build has journaled it
/// (the journal of an earlier build names a command that has ended).
fn spawned(p: &Project, task: &str) -> u32 {
    let mut pid = 0;
    wait_for("the command's pid in the journal", || {
        let journal = std::fs::read_to_string(p.path(".planexe/inflight")).unwrap_or_default();
        let needle = format!("{{\"spawned\":[\"{task}\",");
        pid = journal
            .lines()
            .find_map(|l| l.strip_prefix(&needle)?.strip_suffix("]}")?.parse().ok())
            .unwrap_or(0);
        // SAFETY: signal 0 only probes for existence.
        pid != 0 && unsafe { libc::kill(pid as i32, 0) } == 0
    });
    pid
}

#[test]
fn a_dry_run_beside_a_build_says_its_task_runs_now_not_that_it_stopped() {
    let p = Project::new(HELD);
    p.write("other.txt", "o\n");
    p.build().ok();
    p.write("hold", "");
    let build = Background(Some(
        p.command(&["build", "-B", "a"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start planexe build"),
    ));
    let pid = spawned(&p, "a");
    let run = p.run(&["build", "-n"]);
    run.ok();
    assert_eq!(
        run.stdout,
        format!("a: running now (pid {pid})\n"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("resuming"), "{}", run.stderr);
    assert!(!run.stderr.contains("stopped"), "{}", run.stderr);
    // And `explain` says the same.
    p.run(&["explain", "a"])
        .ok()
        .stdout_has(&format!("running now (pid {pid})"));
    p.remove("hold");
    let out = build.wait();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    p.run(&["build", "-n"]).ok().stderr_has("nothing to do");
}

/// Starts a build, waits until `task` runs (its pid journaled, past the
/// `running` sidecar's 100 ms), then kills planexe with no cleanup at
/// all. Returns the pid of the task's command, left running.
fn crash_while_running(p: &Project, task: &str) -> u32 {
    let mut child = p.spawn_quiet(&["build"]);
    let pid = spawned(p, task);
    let sidecar = format!(".planexe/tasks/{task}.status");
    wait_for("the running sidecar", || {
        p.exists(&sidecar) && p.status_json(task)["state"] == "running"
    });
    child.kill().unwrap();
    child.wait().unwrap();
    pid
}

#[test]
fn a_crash_after_a_failure_reads_as_stopped_not_as_the_old_failure() {
    let p = Project::new("[tasks.a]\noutputs = [\"a.txt\"]\ncommand = \"echo a > a.txt\"\n");
    p.build().ok();
    p.write(
        "pipeline.toml",
        "[tasks.a]\noutputs = [\"a.txt\"]\ncommand = \"exit 3\"\n",
    );
    p.build().code(1);
    p.write(
        "pipeline.toml",
        "[tasks.a]\noutputs = [\"a.txt\"]\ncommand = \"sleep 100; echo b > a.txt\"\n",
    );
    let pid = crash_while_running(&p, "a");

    let run = p.run(&["build", "-n"]);
    assert_eq!(run.stdout, "a: stopped last time\n");
    assert!(run.stderr.contains("1 stopped"), "{}", run.stderr);
    assert!(!run.stderr.contains("failed"), "{}", run.stderr);
    let status = p.run(&["status"]);
    assert!(
        !status.stdout.contains("exit status 3"),
        "{}",
        status.stdout
    );
    assert!(
        !status.stdout.contains("not recoverable"),
        "{}",
        status.stdout
    );
    let explain = p.run(&["explain", "a"]);
    explain.stdout_has("stopped last time");
    assert!(
        !explain.stdout.contains("exit status 3"),
        "{}",
        explain.stdout
    );

    // The next build stops what the crash left running and runs it again.
    p.write(
        "pipeline.toml",
        "[tasks.a]\noutputs = [\"a.txt\"]\ncommand = \"echo c > a.txt\"\n",
    );
    p.build()
        .ok()
        .stderr_has(&format!("stopped a (pid {pid})"))
        .stderr_has("1 stopped");
    assert_eq!(p.read("a.txt"), "c\n");
}

/// A run whose build was killed, its command gone too, has no error of
/// its own: `status` says what happened instead of an empty error, and
/// that running it again may well succeed.
#[test]
fn a_run_its_build_never_saw_end_says_so_in_status() {
    let p =
        Project::new("[tasks.a]\noutputs = [\"a.txt\"]\ncommand = \"sleep 100; echo a > a.txt\"\n");
    let pid = crash_while_running(&p, "a");
    // SAFETY: killing the process group the killed build left running.
    unsafe {
        libc::kill(-(pid as i32), libc::SIGKILL);
    }
    wait_for("the command to be gone", || {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
    });
    let status = p.run(&["status"]);
    status
        .ok()
        .stdout_has("stopped: its build ended before it did, attempt 1, recoverable");
    let json = p.run(&["status", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let task = doc["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task"] == "a")
        .unwrap()
        .clone();
    assert_eq!(task["recoverable"], true, "{task}");
}

/// Keeps the notices a build gives.
#[derive(Default)]
struct Notices(std::sync::Mutex<Vec<planexe::exec::observer::Notice>>);

impl planexe::exec::observer::Observer for Notices {
    fn notice(&self, notice: &planexe::exec::observer::Notice) {
        self.0.lock().unwrap().push(notice.clone());
    }
}

/// Two builds, the first holding the lock and the second waiting for it,
/// as a watch does: the second was opened while the run remembered model
/// `one`, and the first chose `two` (`--model two`, which the run then
/// remembers). Once the second holds the lock it asks `two`, as a build
/// started then would; it used to plan with the model it had read before
/// waiting.
#[test]
fn a_build_that_waited_for_the_lock_asks_the_model_the_run_remembers_now() {
    use crate::llm_server::{openai_answer, Server};
    use planexe::exec::{Build, BuildOptions, Ended, Env, Interrupt};
    use planexe::plan::session::{Location, ModelChoice};

    let server = Server::start();
    server.default_reply(openai_answer("an answer"));
    let model = |name: &str| {
        format!(
            "[models.{name}]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"model-{name}\"\nstream = false\n",
            server.url
        )
    };
    let p = Project::new(&format!(
        "{HELD}\n[tasks.ask]\ninputs = [\"plan.txt\"]\noutputs = [\"answer.md\"]\nmodel = \"one\"\nprompt = \"Plan: {{{{ inputs['plan.txt'] }}}}\"\n\n{}\n{}",
        model("one"),
        model("two")
    ));
    p.write("other.txt", "o\n");
    p.write("plan.txt", "p\n");
    // The run remembers `one` (the command tasks only: no model is asked).
    p.run(&["build", "--model", "one", "a", "b"]).ok();

    // The second build reads the run before the first starts.
    let location = Location {
        run_dir: p.root().to_path_buf(),
        ..Location::default()
    };
    let mut waiting = planexe::plan::Session::open(
        location.locate().unwrap(),
        &ModelChoice::default(),
        planexe::model::Lists::Unproduced,
    )
    .unwrap();

    p.write("hold", "");
    let first = Background(Some(
        p.command(&["build", "--model", "two", "-B", "a"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start planexe build"),
    ));
    spawned(&p, "a");
    p.remove("hold");
    let out = first.wait();
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    let notices = Notices::default();
    let report = Build {
        options: &BuildOptions::default(),
        env: &Env::default(),
        interrupt: &Interrupt::new(),
        observer: &notices,
        executor: None,
        slots: None,
    }
    .run(&mut waiting)
    .unwrap();
    assert_eq!(report.ended, Ended::Completed);
    let asked: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.json()["model"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(asked, ["model-two"]);
    assert_eq!(p.status_json("ask")["model"], "two");
    let said = notices.0.lock().unwrap();
    assert!(
        said.iter().any(|n| matches!(
            n,
            planexe::exec::observer::Notice::ModelFromRun(m) if m == "two"
        )),
        "{said:?}"
    );
}

#[test]
fn status_beside_a_build_of_one_target_does_not_call_the_other_tasks_done() {
    let p = Project::new(&format!(
        "{HELD}\n[tasks.c]\ninputs = [\"a.txt\"]\noutputs = [\"c.txt\"]\ncommand = \"cp a.txt c.txt\"\n\n[tasks.d]\noutputs = [\"d.txt\"]\ncommand = \"exit 3\"\n"
    ));
    p.write("other.txt", "o\n");
    p.run(&["build", "d"]).code(1);
    p.write("hold", "");
    let snapshot = || {
        std::fs::metadata(p.path(".planexe/status.snapshot"))
            .and_then(|m| m.modified())
            .ok()
    };
    let idle = snapshot();
    let build = Background(Some(
        p.command(&["build", "a"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start planexe build"),
    ));
    spawned(&p, "a");
    // What `status` says beside a build is the build's live snapshot.
    wait_for("the build's live snapshot", || snapshot() != idle);
    let mut states = Vec::new();
    wait_for("the live status to show a running", || {
        let run = p.run(&["status", "--json"]);
        let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_default();
        states = json["tasks"]
            .as_array()
            .map(|tasks| {
                tasks
                    .iter()
                    .map(|t| format!("{}={}", t["task"].as_str().unwrap_or("?"), t["state"]))
                    .collect()
            })
            .unwrap_or_default();
        states.iter().any(|s| s == "a=\"running\"")
    });
    // b and c were never built, d failed: the build of `a` checks none of
    // them, which does not make them done.
    assert_eq!(
        states,
        [
            "a=\"running\"",
            "b=\"never-built\"",
            "c=\"never-built\"",
            "d=\"failed\""
        ],
        "{states:?}"
    );
    let text = p.run(&["status"]);
    assert!(!text.stdout.contains("DONE"), "{}", text.stdout);
    p.remove("hold");
    let out = build.wait();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

/// A task never built that a crash caught before its `running` sidecar was
/// due (it had no sidecar when the next build loaded the state) reads as
/// stopped to that build, which recovers it and writes the sidecar, not as
/// never built; the others, which have no sidecar to read, as never built.
#[test]
fn a_task_caught_by_a_crash_before_its_sidecar_resumes_as_stopped() {
    let p = Project::new(HELD);
    p.write("other.txt", "o\n");
    p.write("hold", "");
    let mut child = p
        .command(&["build", "-j1", "a"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    spawned(&p, "a");
    child.kill().unwrap();
    child.wait().unwrap();
    p.remove("hold");
    p.build().ok().stderr_has("0 done, 1 stopped, 2 to run");
    assert_eq!(p.read("a.txt"), "o\n");
}

/// Kills planexe while the first run of `a` has half-written its output
/// (no earlier output, so nothing was set aside); with `forget_pid`, the
/// journal then loses the command's pid. The next build moves the half
/// file out of the way: its re-run that fails does not put it back as if
/// it were a good output, and the command never sees it.
fn crash_in_a_first_run(forget_pid: bool) {
    let p = Project::new(
        "[tasks.a]\noutputs = [\"out.md\"]\ncommand = \"echo half > out.md; sleep 100\"\n",
    );
    let mut child = p.spawn_quiet(&["build"]);
    wait_for("the half-written output", || {
        std::fs::read_to_string(p.path("out.md")).is_ok_and(|s| s == "half\n")
    });
    if !forget_pid {
        spawned(&p, "a");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    if forget_pid {
        forget_spawned(&p);
    }
    p.write(
        "pipeline.toml",
        "[tasks.a]\noutputs = [\"out.md\"]\ncommand = \"if [ -e out.md ]; then echo saw it; fi; exit 3\"\n",
    );
    let run = p.build();
    run.code(1).stderr_has(
        "moved what an interrupted run of a left at its outputs (out.md) to .planexe/failed/a/",
    );
    assert!(!run.stderr.contains("saw it"), "{}", run.stderr);
    assert!(!run.stderr.contains("back in place"), "{}", run.stderr);
    assert!(!p.exists("out.md"), "the half-written output is back");
}

#[test]
fn a_crash_in_a_first_run_leaves_no_half_written_output_in_place() {
    crash_in_a_first_run(false);
}

#[test]
fn a_crash_in_a_first_run_before_the_pid_was_journaled_leaves_no_half_written_output() {
    crash_in_a_first_run(true);
}

/// A build killed while its command runs on (in its own group), or a
/// machine rebooted since whose recorded pid now names another program:
/// no build runs, so no task does. `status`, its JSON and the JUnit report
/// say the task stopped, as `build -n`, `explain` and `wait` do; they
/// said it was running, with no build to finish it.
#[test]
fn a_command_left_running_by_a_killed_build_reads_as_stopped() {
    let p =
        Project::new("[tasks.a]\noutputs = [\"a.txt\"]\ncommand = \"sleep 100; echo a > a.txt\"\n");
    let pid = crash_while_running(&p, "a");
    assert!(!ended(pid), "the command outlives planexe");
    let status = p.run(&["status"]);
    status
        .ok()
        .stdout_has("state    stopped (last build)")
        .stdout_has("stopped: its build ended before it did, attempt 1, recoverable");
    assert!(!status.stdout.contains("RUNNING"), "{}", status.stdout);
    let json = p.run(&["status", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["tasks"][0]["state"], "stopped", "{doc}");
    p.run(&["report", "--format", "junit", "-o", "junit.xml"])
        .ok();
    let junit = p.read("junit.xml");
    assert!(
        junit.contains("<skipped message=\"stopped: its build ended before it did\"/>"),
        "{junit}"
    );
    p.run(&["wait"]).code(130);
    // The next build stops it and runs the task again.
    p.write(
        "pipeline.toml",
        "[tasks.a]\noutputs = [\"a.txt\"]\ncommand = \"echo a > a.txt\"\n",
    );
    p.build().ok().stderr_has(&format!(
        "stopped a (pid {pid}), left running by a build that crashed"
    ));
    // SAFETY: killing the process group the killed build left running.
    unsafe {
        libc::kill(-(pid as i32), libc::SIGKILL);
    }
}

/// A touch after a crash puts right what the crashed build left first, as
/// a build would: the command it left running is stopped (it wrote over
/// what was touched once it ended), and the good output it was replacing
/// is back before it is accepted. The next build then finds nothing to
/// put right: it used to put that output back over the touched one, and
/// call it a hand edit.
#[test]
fn a_touch_after_a_crash_stops_the_command_left_running_and_accepts_the_good_output() {
    let good = "[tasks.a]\ninputs = [\"in.txt\"]\noutputs = [\"a.txt\"]\ncommand = \"cat in.txt > a.txt\"\n\n\
                [tasks.b]\ninputs = [\"a.txt\"]\noutputs = [\"b.txt\"]\ncommand = \"cp a.txt b.txt\"\n";
    let p = Project::new(good);
    p.write("in.txt", "good\n");
    p.build().ok();
    p.write(
        "pipeline.toml",
        &good.replace(
            "command = \"cat in.txt",
            "command = \"echo half > a.txt; sleep 100; cat in.txt",
        ),
    );
    p.write("in.txt", "new\n");
    let pid = crash_while_running(&p, "a");
    assert_eq!(p.read("a.txt"), "half\n");
    p.run(&["touch", "a"])
        .ok()
        .stderr_has(&format!(
            "stopped a (pid {pid}), left running by a build that crashed"
        ))
        .stderr_has("restored 1 output(s) of a from before an interrupted run")
        .stderr_has("touched a");
    wait_for("the command to be gone", || ended(pid));
    assert_eq!(p.read("a.txt"), "good\n");
    let run = p.build();
    run.ok().stderr_has("nothing to do");
    assert!(!run.stderr.contains("restored"), "{}", run.stderr);
    assert!(!run.stderr.contains("hand-edited"), "{}", run.stderr);
    assert_eq!(p.read("a.txt"), "good\n");
    assert_eq!(p.read("b.txt"), "good\n");
}

/// `clean --all` after a crash forgets the run, so no build would stop
/// the command the crashed build left running: it wrote its output after
/// the next build's, and planexe kept that as a hand edit. The clean
/// stops it first.
#[test]
fn a_clean_after_a_crash_stops_the_command_left_running() {
    let p = Project::new(
        "[tasks.a]\noutputs = [\"a.txt\"]\ncommand = \"while [ ! -e go ]; do sleep 0.05; done; echo leftover > a.txt\"\n",
    );
    let pid = crash_while_running(&p, "a");
    p.run(&["clean", "--all", "-y"]).ok().stderr_has(&format!(
        "stopped a (pid {pid}), left running by a build that crashed"
    ));
    wait_for("the command to be gone", || ended(pid));
    p.write(
        "pipeline.toml",
        "[tasks.a]\noutputs = [\"a.txt\"]\ncommand = \"echo fresh > a.txt\"\n",
    );
    p.build().ok();
    // What the command left running would have done by now.
    p.write("go", "");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(p.read("a.txt"), "fresh\n");
    let run = p.build();
    run.ok().stderr_has("nothing to do");
    assert!(!run.stderr.contains("hand-edited"), "{}", run.stderr);
}

/// A crash while a build checks again a task's outputs (its `check`
/// changed), which it never set aside: they are the good ones, and stay
/// in place (they come back when the task's next run fails).
#[test]
fn a_crash_during_a_recheck_leaves_the_good_output_in_place() {
    let task = |check: &str, command: &str| {
        format!("[tasks.a]\noutputs = [\"a.txt\"]\ncommand = \"{command}\"\ncheck = \"{check}\"\n")
    };
    let p = Project::new(&task("true", "echo good > a.txt"));
    p.build().ok();
    // Written long before the re-check began.
    p.set_mtime("a.txt", 1_600_000_000);
    p.write(
        "pipeline.toml",
        &task("sleep 100; true", "echo good > a.txt"),
    );
    let mut child = p.spawn_quiet(&["build"]);
    let pid = spawned(&p, "a");
    child.kill().unwrap();
    child.wait().unwrap();
    p.write("pipeline.toml", &task("true", "exit 3"));
    let run = p.build();
    run.code(1);
    assert!(!run.stderr.contains("moved what"), "{}", run.stderr);
    assert_eq!(p.read("a.txt"), "good\n");
    // SAFETY: the check's group, stopped by the build already.
    unsafe {
        libc::kill(-(pid as i32), libc::SIGKILL);
    }
}
