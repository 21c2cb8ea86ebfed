//! Running tasks: parallelism, failures, timeouts, interrupts, and never
//! losing good output.

use std::process::Stdio;

use crate::harness::*;

#[test]
fn minus_j2_never_runs_three_at_once() {
    let mut pipeline = String::new();
    for i in 0..8 {
        // Each task enters a slot folder, counts who is there, and leaves.
        pipeline.push_str(&format!(
            "[tasks.t{i}]\noutputs = [\"out/t{i}\"]\ncommand = \"mkdir -p slots && touch slots/t{i} && ls slots | wc -l > out/t{i} && sleep 0.3 && rm slots/t{i}\"\n"
        ));
    }
    let p = Project::new(&pipeline);
    p.run(&["build", "-j", "2"]).ok();
    let counts: Vec<u32> = (0..8)
        .map(|i| p.read(&format!("out/t{i}")).trim().parse().unwrap())
        .collect();
    assert!(
        counts.iter().all(|&c| c <= 2),
        "saw more than 2 at once: {counts:?}"
    );
    assert!(counts.contains(&2), "never ran two at once: {counts:?}");
}

#[test]
fn a_task_starts_as_soon_as_its_own_dependency_finishes() {
    // slow and fast run together; fast's dependent must not wait for slow.
    let p = Project::new(
        r#"
[tasks.slow]
outputs = ["slow.txt"]
command = "while [ ! -e after_fast.txt ]; do sleep 0.05; done; echo s > slow.txt"
[tasks.fast]
outputs = ["fast.txt"]
command = "echo f > fast.txt"
[tasks.after_fast]
inputs = ["fast.txt"]
outputs = ["after_fast.txt"]
command = "cp fast.txt after_fast.txt"
"#,
    );
    // With waves, after_fast would wait for slow, which waits for it.
    let run = p.command(&["build", "-j", "2"]).output().unwrap();
    assert_eq!(run.status.code(), Some(0), "{run:?}");
}

#[test]
fn a_timeout_kills_the_whole_process_group() {
    let p = Project::new(
        "[tasks.slow]\noutputs = [\"o\"]\ncommand = \"sleep 100 & echo $! > child.pid; sleep 100\"\ntimeout = \"1s\"\n",
    );
    let run = p.build();
    run.code(1).stderr_has("timeout after 1s");
    let s = p.status_json("slow");
    assert_eq!(s["state"], "failed");
    assert_eq!(s["error"]["kind"], "timeout");
    assert_eq!(s["error"]["message"], "timeout after 1s");
    let child: i32 = p.read("child.pid").trim().parse().unwrap();
    // SAFETY: signal 0 only probes for existence.
    wait_for("the background child to die", || unsafe {
        libc::kill(child, 0) != 0
    });
}

const FAIL_AND_OTHERS: &str = r#"
[tasks.bad]
outputs = ["bad.txt"]
command = "echo 'it broke' >&2; exit 3"
[tasks.after_bad]
inputs = ["bad.txt"]
outputs = ["after_bad.txt"]
command = "true > after_bad.txt"
[tasks.good]
outputs = ["good.txt"]
command = "echo g > good.txt"
"#;

#[test]
fn a_failure_stops_new_tasks_and_keep_going_runs_the_rest() {
    let p = Project::new(FAIL_AND_OTHERS);
    let run = p.run(&["build", "-j", "1"]);
    run.code(1).ran(&["bad"]);
    run.stderr_has("FAILED bad: exit status 3")
        .stderr_has("it broke");
    run.stderr_has("hint:");
    assert!(!p.exists("good.txt"));

    let q = Project::new(FAIL_AND_OTHERS);
    let run = q.run(&["build", "-j", "1", "-k"]);
    run.code(1).ran(&["bad", "good"]);
    assert!(q.exists("good.txt"));
    assert!(!q.exists("after_bad.txt"));
    assert_eq!(q.status_json("bad")["error"]["kind"], "exit");
    assert!(!q.exists(".planexe/tasks/bad.DONE"));
}

#[test]
fn a_failed_rerun_restores_the_earlier_good_output() {
    let p = Project::new(
        "[tasks.a]\ninputs = [\"in\"]\noutputs = [\"out.md\"]\ncommand = \"cat in > out.md\"\n",
    );
    p.write("in", "good\n");
    p.build().ok();
    let before = std::fs::metadata(p.path("out.md"))
        .unwrap()
        .modified()
        .unwrap();
    p.write(
        "pipeline.toml",
        "[tasks.a]\ninputs = [\"in\"]\noutputs = [\"out.md\"]\ncommand = \"echo half > out.md; exit 1\"\n",
    );
    // The FAILED line says where what the run wrote went.
    p.build().code(1).stderr_has(
        "\n  what it wrote is kept in .planexe/failed/a/out.md; \
         the outputs of its last good run are back in place\n",
    );
    assert_eq!(p.read("out.md"), "good\n");
    assert_eq!(
        std::fs::metadata(p.path("out.md"))
            .unwrap()
            .modified()
            .unwrap(),
        before
    );
    assert_eq!(p.read(".planexe/failed/a/out.md"), "half\n");
    assert!(!p.exists(".planexe/tasks/a.DONE"));
    // Still stale: the failure is remembered.
    assert_eq!(
        p.run(&["build", "-n"]).stdout,
        "a: failed last time: exit status 1\n"
    );
}

/// A first run that fails says where what it wrote is kept, and nothing
/// of a last good run it never had.
#[test]
fn a_failed_first_run_says_where_what_it_wrote_is_kept() {
    let p = Project::new(
        "[tasks.a]\noutputs = [\"out.md\", \"b.md\"]\n\
         command = \"echo half > out.md; exit 1\"\n",
    );
    let out = p.build();
    out.code(1)
        .stderr_has("\n  what it wrote is kept in .planexe/failed/a/out.md\n");
    assert!(!out.stderr.contains("last good run"), "{}", out.stderr);
    assert!(!out.stderr.contains("b.md\n"), "{}", out.stderr);
    assert_eq!(p.read(".planexe/failed/a/out.md"), "half\n");
}

#[test]
fn exiting_zero_without_writing_outputs_is_a_failure() {
    let p = Project::new("[tasks.a]\noutputs = [\"x\", \"y\"]\ncommand = \"echo > x\"\n");
    let run = p.build();
    run.code(1).stderr_has("did not write y");
    assert_eq!(p.status_json("a")["error"]["kind"], "missing_output");
    assert!(!p.exists("x"), "the partial output was moved aside");
    assert!(p.exists(".planexe/failed/a/x"));
}

#[test]
fn sigint_stops_running_tasks_and_exits_130() {
    let p = Project::new(
        "[tasks.long]\noutputs = [\"o\"]\ncommand = \"touch started; sleep 100\"\n[tasks.later]\ninputs = [\"o\"]\noutputs = [\"p\"]\ncommand = \"cp o p\"\n",
    );
    let child = p
        .command(&["build"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the task to start", || p.exists("started"));
    // SAFETY: sending a signal to the child we spawned.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    assert_eq!(p.status_json("long")["state"], "stopped");
    // `later` never ran: it has no sidecar to announce anything yet.
    assert!(!p.exists(".planexe/tasks/later.status"));
    assert_eq!(
        p.run(&["build", "-n"]).stdout,
        "long: stopped last time\nlater: never built\n"
    );
}

/// Closing the terminal (SIGHUP) stops a build as Ctrl-C does: the task's
/// process group, which the hangup does not reach, is stopped with it.
#[test]
fn a_hangup_stops_running_tasks_and_leaves_none_behind() {
    let p =
        Project::new("[tasks.long]\noutputs = [\"o\"]\ncommand = \"echo $$ > pid; sleep 100\"\n");
    let child = p
        .command(&["build"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the task to start", || {
        std::fs::read_to_string(p.path("pid")).is_ok_and(|s| s.ends_with('\n'))
    });
    // SAFETY: sending a signal to the child we spawned.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGHUP);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    assert_eq!(p.status_json("long")["state"], "stopped");
    let pid = p.read("pid");
    wait_for("the task's shell to be gone", || ended(pid.trim()));
}

/// Under `nohup` (SIGHUP ignored when planexe starts), a hangup changes
/// nothing: the build goes on to its end.
#[test]
fn an_ignored_hangup_stays_ignored() {
    let p = Project::new(
        "[tasks.a]\noutputs = [\"o\"]\ncommand = \"touch started; sleep 0.5; echo done > o\"\n",
    );
    let child = build_ignoring(&p, &[libc::SIGHUP]);
    wait_for("the task to start", || p.exists("started"));
    // SAFETY: sending a signal to the child we spawned.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGHUP);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(p.read("o"), "done\n");
}

/// A build started in the background by a shell script (`planexe build &`,
/// no job control) starts with SIGINT ignored, so that a Ctrl-C meant for
/// the script's foreground job leaves it running: it stays ignored, as in
/// make, and the build goes on to its end.
#[test]
fn an_interrupt_ignored_by_a_scripts_background_job_stays_ignored() {
    let p = Project::new(
        "[tasks.a]\noutputs = [\"o\"]\ncommand = \"touch started; sleep 0.5; echo done > o\"\n",
    );
    let script = "\"$0\" \"$@\" & echo $! > bgpid; wait $!";
    let child = wrapped("sh", ["-c", script], &p.command(&["build"]))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the task to start", || p.exists("started"));
    let pid: i32 = p.read("bgpid").trim().parse().unwrap();
    // SAFETY: sending a signal to the build the shell started for us.
    unsafe {
        libc::kill(pid, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(p.read("o"), "done\n");
}

/// A SIGTERM ignored when planexe starts still stops it: it is how `timeout`,
/// CI systems and service managers stop a build, and what a parent ignored
/// for itself is no request to carry on.
#[test]
fn an_ignored_sigterm_still_stops_a_build() {
    let p =
        Project::new("[tasks.long]\noutputs = [\"o\"]\ncommand = \"touch started; sleep 100\"\n");
    let child = build_ignoring(&p, &[libc::SIGTERM, libc::SIGINT]);
    wait_for("the task to start", || p.exists("started"));
    // SAFETY: sending a signal to the child we spawned.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    assert_eq!(p.status_json("long")["state"], "stopped");
}

/// Kills planexe (SIGKILL, no cleanup at all) while a task's command has
/// half-written its output and left a child running; with `forget_pid`, the
/// journal then loses the command's pid, as when the crash comes between
/// the spawn and its journal line. The next build must stop the command
/// and bring the good output back.
fn crash_mid_command(forget_pid: bool) {
    let good =
        "[tasks.a]\ninputs = [\"in\"]\noutputs = [\"out.md\"]\ncommand = \"cat in > out.md\"\n";
    let p = Project::new(good);
    p.write("in", "good\n");
    p.build().ok();
    p.write(
        "pipeline.toml",
        "[tasks.a]\ninputs = [\"in\"]\noutputs = [\"out.md\"]\n\
         command = \"sleep 100 & echo $$ $! > pids; echo half > out.md; wait\"\n",
    );
    let mut child = p.spawn_quiet(&["build"]);
    wait_for("the half-written output", || {
        std::fs::read_to_string(p.path("out.md")).is_ok_and(|s| s == "half\n")
    });
    // Written before the output.
    let pids = p.read("pids");
    let pids: Vec<&str> = pids.split_whitespace().collect();
    if !forget_pid {
        // planexe journals the pid once the command has started, and a
        // command may write its output before that (a loaded machine):
        // the crash comes once the journal knows the pid.
        wait_for("the pid in the journal", || {
            p.read(".planexe/inflight")
                .contains(&format!("{{\"spawned\":[\"a\",{}]}}", pids[0]))
        });
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let planexe_pid = child.id();
    // Killed within the first 100 ms: the `running` sidecar was not due
    // yet, but the journal knows the task.
    let journal = p.read(".planexe/inflight");
    let started: serde_json::Value = serde_json::from_str(journal.lines().next().unwrap()).unwrap();
    assert_eq!(started["started"]["task"], "a", "{journal}");
    if forget_pid {
        forget_spawned(&p);
    }
    assert!(
        !ended(pids[0]) && !ended(pids[1]),
        "the command outlives planexe"
    );
    p.write("pipeline.toml", good);
    // What writes killed between their temporary file and the rename leave
    // (planexe's prefix and the writer's pid), beside a user's own dot
    // file that looks similar and the file of a writer still at work.
    let dead_writer = format!(".planexe-tmp-{planexe_pid}-AbC123");
    let live_writer = format!(".planexe-tmp-{}-LiVe12", std::process::id());
    p.write(&dead_writer, "half an answer");
    p.write(&live_writer, "being written");
    p.write(".planexe/tasks/.planexe-tmp-XyZ789", "{\"sta");
    p.write(".tmp-mine", "the user's");
    let run = p.run(&["build", "-n"]);
    assert_eq!(run.stdout, "a: stopped last time\n");
    let run = p.build();
    run.ok()
        .stderr_has(&format!(
            "stopped a (pid {}), left running by a build that crashed",
            pids[0]
        ))
        .stderr_has("restored 1 output(s) of a")
        .stderr_has("removed 2 temporary file(s)");
    wait_for("the command and its child to end", || {
        ended(pids[0]) && ended(pids[1])
    });
    assert!(!p.exists(&dead_writer));
    assert!(!p.exists(".planexe/tasks/.planexe-tmp-XyZ789"));
    assert_eq!(p.read(&live_writer), "being written");
    assert_eq!(p.read(".tmp-mine"), "the user's");
    assert_eq!(p.read(".planexe/failed/a/out.md"), "half\n");
    assert_eq!(p.read("out.md"), "good\n");
}

#[test]
fn after_a_crash_the_command_is_stopped_and_the_good_output_comes_back() {
    crash_mid_command(false);
}

#[test]
fn a_crash_before_the_pid_was_journaled_still_stops_the_command() {
    crash_mid_command(true);
}

#[test]
fn two_builds_in_one_run_directory_do_not_overlap() {
    let p =
        Project::new("[tasks.long]\noutputs = [\"o\"]\ncommand = \"touch started; sleep 100\"\n");
    let mut child = p.spawn_quiet(&["build"]);
    wait_for("the task to start", || p.exists("started"));
    // `--no-wait` refuses at once (a plain build waits: lock_queue.rs).
    let run = p.run(&["build", "--no-wait"]);
    run.code(2).stderr_has("another build (pid");
    // SAFETY: stopping the child we spawned.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert_eq!(child.wait().unwrap().code(), Some(130));
}

#[test]
fn a_task_left_pending_by_a_failure_keeps_its_real_reason() {
    let p = Project::new(
        r#"
[tasks.first]
inputs = ["f.in"]
outputs = ["f.out"]
command = "grep -v boom f.in > f.out"
[tasks.second]
inputs = ["s.in"]
outputs = ["s.out"]
command = "cat s.in > s.out"
"#,
    );
    p.write("f.in", "ok\n").write("s.in", "ok\n");
    p.build().ok();
    p.write_at("f.in", "boom\n", 2_000_000);
    p.write_at("s.in", "new\n", 2_000_000);
    p.run(&["build", "-j", "1"]).code(1).ran(&["first"]);
    assert_eq!(p.status_json("second")["state"], "pending");
    assert!(
        p.exists(".planexe/tasks/second.DONE"),
        "its last good run still stands"
    );
    assert_eq!(
        p.run(&["build", "-n"]).stdout,
        "first: failed last time: exit status 1\nsecond: input s.in changed\n"
    );
}

#[test]
fn the_done_marker_is_the_record_of_the_successful_run() {
    let p = Project::new(
        "[tasks.quick]\noutputs = [\"q\"]\ncommand = \"echo q > q\"\n\
         [tasks.slow]\noutputs = [\"s\"]\ncommand = \"sleep 0.4; echo s > s\"\n",
    );
    let mut child = p
        .command(&["build", "-j2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // A task that runs for a while says so in its sidecar, with its pid.
    wait_for("the slow task's running sidecar", || {
        p.exists(".planexe/tasks/slow.status") && p.status_json("slow")["state"] == "running"
    });
    assert!(p.status_json("slow")["pid"].is_u64());
    assert!(child.wait().unwrap().success());
    for task in ["quick", "slow"] {
        let status = p.status_json(task);
        assert_eq!(status["state"], "done");
        let marker: serde_json::Value =
            serde_json::from_str(&p.read(&format!(".planexe/tasks/{task}.DONE"))).unwrap();
        assert_eq!(marker, status, "{task}");
    }
    // Each task's start and end are in the journal, in that order.
    let journal = p.read(".planexe/inflight");
    for task in ["quick", "slow"] {
        let started = journal
            .find(&format!("{{\"started\":{{\"task\":\"{task}\""))
            .unwrap_or_else(|| panic!("{journal}"));
        let ended = journal
            .find(&format!("{{\"ended\":\"{task}\"}}"))
            .unwrap_or_else(|| panic!("{journal}"));
        assert!(started < ended, "{journal}");
    }
}

#[test]
fn a_command_runs_in_its_own_group_in_the_run_directory_with_its_variables() {
    let p = Project::new(concat!(
        "[tasks.probe]\noutputs = [\"env.txt\"]\ncommand = '''\n",
        "{ echo \"task=$PLANEXE_TASK\"; echo \"run=$PLANEXE_RUN_DIR\"; echo \"pwd=$(pwd)\"\n",
        "  echo \"pgid=$(cut -d' ' -f5 /proc/$$/stat) pid=$$\"\n",
        // grep's own masks, which it inherited through the shell: the
        // shell's own mask is briefly full while it forks a command.
        "  grep -E '^Sig(Blk|Ign)' /proc/self/status\n",
        "} > env.txt\n'''\n",
        "[tasks.killed]\noutputs = [\"k\"]\ncommand = \"kill -TERM $$\"\n",
    ));
    p.run(&["build", "-k"])
        .code(1)
        .stderr_has("killed: killed by signal 15");
    let env = p.read("env.txt");
    let root = std::fs::canonicalize(p.root()).unwrap();
    let root = root.display();
    let lines: Vec<&str> = env.lines().collect();
    assert_eq!(lines[0], "task=probe");
    assert_eq!(lines[1], format!("run={root}"));
    assert_eq!(lines[2], format!("pwd={root}"));
    // The shell leads a process group of its own (timeouts and Ctrl-C
    // signal the whole group).
    let ids: Vec<&str> = lines[3]
        .split(' ')
        .map(|f| f.split('=').nth(1).unwrap())
        .collect();
    assert_eq!(ids[0], ids[1], "{env}");
    // Nothing blocked, and neither SIGPIPE (planexe ignores it itself, but
    // `yes | head` in a task must end as it does in a terminal) nor the
    // signals that stop a task ignored.
    assert_eq!(lines[4], "SigBlk:\t0000000000000000");
    let ignored = u64::from_str_radix(lines[5].trim_start_matches("SigIgn:\t"), 16).unwrap();
    for signal in [libc::SIGPIPE, libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        assert_eq!(ignored & (1 << (signal - 1)), 0, "signal {signal}: {env}");
    }
}

/// What a committed run set aside is deleted off its thread; when planexe
/// dies before that is done, the next build deletes it rather than put it
/// back over the newer good output: the run ended (its journal says so),
/// or the task's `.DONE` vouches for what is in place.
#[test]
fn what_an_ended_run_set_aside_is_deleted_after_a_crash_not_put_back() {
    let p = Project::new(
        "[tasks.a]\ninputs = [\"in\"]\noutputs = [\"out.md\"]\ncommand = \"cat in > out.md\"\n",
    );
    p.write("in", "one\n");
    p.build().ok();
    p.write_at("in", "two\n", 2_000_000);
    p.build().ok().ran(&["a"]);
    assert!(!p.exists(".planexe/prev/a/out.md"), "deleted by the build");
    // As a build killed after `a` ended, before its deletion: the run
    // record says it never ended (and the certificate is gone, as a build
    // removes it when it starts); the journal says `a` did.
    let crashed = |journal: &str| {
        p.remove(".planexe/uptodate");
        let mut run: serde_json::Value =
            serde_json::from_str(&p.read(".planexe/run.json")).unwrap();
        let last = run["builds"].as_array_mut().unwrap().last_mut().unwrap();
        last["outcome"] = "running".into();
        last["finished_at"] = serde_json::Value::Null;
        last["pid"] = 999_999_999u32.into();
        p.write(".planexe/run.json", &run.to_string());
        p.write(".planexe/inflight", journal);
        p.write(".planexe/prev/a/out.md", "one\n");
    };
    crashed("{\"started\":{\"task\":\"a\",\"pid\":null,\"started_at\":null,\"attempt\":1,\"fingerprint\":\"f\"}}\n{\"ended\":\"a\"}\n");
    let run = p.build();
    run.ok().ran(&[]);
    assert!(!run.stderr.contains("restored"), "{}", run.stderr);
    assert!(!p.exists(".planexe/prev/a/out.md"));
    assert_eq!(p.read("out.md"), "two\n");
    // A journal that does not know the task: its `.DONE` decides.
    crashed("");
    p.build().ok().ran(&[]);
    assert!(!p.exists(".planexe/prev/a/out.md"));
    assert_eq!(p.read("out.md"), "two\n");
}

/// A failed re-run whose last good output cannot be put back (the command
/// left a file where the output's folder was) says where it is kept.
#[test]
fn a_good_output_that_cannot_be_put_back_is_said_where_it_is_kept() {
    let p = Project::new(
        "[tasks.a]\noutputs = [\"out/a.txt\"]\ncommand = \"mkdir -p out; echo good > out/a.txt\"\n",
    );
    p.build().ok();
    p.write(
        "pipeline.toml",
        "[tasks.a]\noutputs = [\"out/a.txt\"]\ncommand = \"rm -rf out; touch out; exit 1\"\n",
    );
    p.build()
        .code(1)
        .stderr_has("the last good out/a.txt could not be put back (")
        .stderr_has("it is kept in .planexe/prev/a/out/a.txt");
    assert_eq!(p.read(".planexe/prev/a/out/a.txt"), "good\n");
    assert!(p.status_json("a")["error"]["message"]
        .as_str()
        .unwrap()
        .contains("it is kept in .planexe/prev/a/out/a.txt"));
}

/// `status TASK` of a running task said `ran START → … (0 ms)`: a run
/// that has not ended has no duration yet.
#[test]
fn a_running_task_shows_no_duration() {
    let p = Project::new(
        "[tasks.t]\noutputs = [\"o\"]\ncommand = \"while [ ! -e go ]; do sleep 0.05; done; echo > o\"\n",
    );
    let mut build = p.spawn_quiet(&["build"]);
    let mut detail = String::new();
    wait_for("status t to say running", || {
        detail = p.run(&["status", "t"]).stdout;
        detail.starts_with("t: running\n") && detail.contains("  ran ")
    });
    p.write("go", "");
    assert!(build.wait().unwrap().success());
    assert!(detail.contains(" → …\n"), "{detail}");
    assert!(!detail.contains("(0 ms)"), "{detail}");
    let done = p.run(&["status", "t"]).stdout;
    assert!(done.contains(" ms)\n"), "{done}");
}

/// `planexe build` in `p`, started with `signals` ignored (as `nohup`, or
/// a shell's background job, starts it), its stderr piped.
fn build_ignoring(p: &Project, signals: &'static [libc::c_int]) -> std::process::Child {
    let mut command = p.command(&["build"]);
    // SAFETY: only signal dispositions change between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, move || {
            for &signal in signals {
                libc::signal(signal, libc::SIG_IGN);
            }
            Ok(())
        });
    }
    command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}
