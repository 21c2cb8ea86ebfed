//! Failure records of command tasks: every failed attempt has an
//! `error_id` and one line in `.planexe/failures.jsonl`, named again by the
//! task's sidecar and its `task.failed` (or `task.stopped`) event, and
//! `recoverable` says whether a plain re-run may succeed.

use std::process::Stdio;

use serde_json::Value;

use crate::harness::*;

/// Every line of a JSON-lines file under `.planexe/`.
fn lines(p: &Project, file: &str) -> Vec<Value> {
    p.jsonl(&format!(".planexe/{file}"))
}

/// The one failure line of `task`, checked against its sidecar and its
/// event: the same `error_id` and `recoverable` in all three.
#[track_caller]
fn failure(p: &Project, task: &str, event: &str) -> Value {
    let mine: Vec<Value> = lines(p, "failures.jsonl")
        .into_iter()
        .filter(|l| l["task"] == task)
        .collect();
    assert_eq!(mine.len(), 1, "{mine:?}");
    let line = mine.into_iter().next().unwrap();
    let id = line["error_id"].as_str().expect("an error_id");
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert_eq!(line["kind"], line["error_type"]);
    assert!(line["model"].is_null());
    assert_eq!(line["attempt"], 1);
    assert_eq!(line["retried"], false);
    assert!(line["duration_ms"].is_u64());
    assert!(line["run_dir"].is_string());
    let error = &p.status_json(task)["error"];
    assert_eq!(error["error_id"], id);
    assert_eq!(error["kind"], line["kind"]);
    assert_eq!(error["recoverable"], line["recoverable"]);
    let events: Vec<Value> = lines(p, "events.jsonl")
        .into_iter()
        .filter(|e| e["task"] == task && e["event"] == event)
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["error_id"], id);
    assert_eq!(events[0]["recoverable"], line["recoverable"]);
    line
}

#[test]
fn a_command_that_exits_3_has_a_failure_line() {
    let p = Project::new(
        "[tasks.t]\noutputs = [\"o\"]\ncommand = \"echo first; echo 'the last words'; exit 3\"\n",
    );
    p.build().code(1).stderr_has("FAILED t: exit status 3");
    let line = failure(&p, "t", "task.failed");
    assert_eq!(line["kind"], "exit");
    assert_eq!(line["exit_code"], 3);
    assert!(line["signal"].is_null());
    assert_eq!(line["recoverable"], false);
    assert_eq!(line["message"], "exit status 3");
    assert_eq!(line["log_tail"], "first\nthe last words\n");
    // `status` names the failure's id once, and says it needs a change.
    let status = p.run(&["status"]).stdout;
    assert_eq!(
        status.matches(line["error_id"].as_str().unwrap()).count(),
        1
    );
    assert!(status.contains("not recoverable"), "{status}");
    let json: Value = serde_json::from_str(&p.run(&["status", "--json"]).stdout).unwrap();
    let t = &json["tasks"][0];
    assert_eq!(t["error_id"], line["error_id"]);
    assert_eq!(t["recoverable"], false);
    let summary: Value = serde_json::from_str(&p.read(".planexe/summary.json")).unwrap();
    assert_eq!(summary["tasks"][0]["recoverable"], false);
    assert_eq!(summary["tasks"][0]["error_id"], line["error_id"]);
}

#[test]
fn a_command_that_crashes_itself_is_not_recoverable() {
    let p = Project::new("[tasks.t]\noutputs = [\"o\"]\ncommand = \"kill -SEGV $$\"\n");
    p.build()
        .code(1)
        .stderr_has("killed by signal 11 (SIGSEGV)");
    let line = failure(&p, "t", "task.failed");
    assert_eq!(line["kind"], "signal");
    assert_eq!(line["signal"], 11);
    assert!(line["exit_code"].is_null());
    assert_eq!(line["recoverable"], false);
    assert!(line["message"].as_str().unwrap().contains("SIGSEGV"));
}

#[test]
fn a_command_killed_from_outside_is_recoverable() {
    let p = Project::new("[tasks.t]\noutputs = [\"o\"]\ncommand = \"echo $$ > pid; sleep 30\"\n");
    let child = p
        .command(&["build"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the command's pid", || {
        p.exists("pid") && p.read("pid").ends_with('\n')
    });
    let pid: i32 = p.read("pid").trim().parse().unwrap();
    // SAFETY: signalling the shell of the task our child build started.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("killed by signal 9 (SIGKILL)"), "{stderr}");
    let line = failure(&p, "t", "task.failed");
    assert_eq!(line["kind"], "signal");
    assert_eq!(line["signal"], 9);
    assert_eq!(line["recoverable"], true);
    let status = p.run(&["status"]).stdout;
    assert!(status.contains(", recoverable"), "{status}");
}

#[test]
fn a_timeout_is_recoverable() {
    let p = Project::new(
        "[tasks.t]\noutputs = [\"o\"]\ntimeout = \"1s\"\ncommand = \"echo waiting; sleep 30\"\n",
    );
    p.build().code(1).stderr_has("timeout after 1s");
    let line = failure(&p, "t", "task.failed");
    assert_eq!(line["kind"], "timeout");
    assert_eq!(line["recoverable"], true);
    assert!(line["signal"].is_null() && line["exit_code"].is_null());
    assert_eq!(line["log_tail"], "waiting\n");
    // A command has no server: its hint said "the server may answer this
    // time".
    let status = p.run(&["status"]).stdout;
    assert!(
        status.contains("hint: run planexe build again; a less busy machine or server may finish in time; else raise the timeout"),
        "{status}"
    );
}

#[test]
fn a_missing_output_is_a_failure_line() {
    let p = Project::new("[tasks.t]\noutputs = [\"x\", \"y\"]\ncommand = \"echo > x\"\n");
    p.build().code(1).stderr_has("did not write y");
    let line = failure(&p, "t", "task.failed");
    assert_eq!(line["kind"], "missing_output");
    assert_eq!(line["exit_code"], 0);
    assert_eq!(line["recoverable"], false);
}

/// Outputs are looked at once each after the command (their stamp): one
/// missing is named with every other missing one, a symlink that leads
/// nowhere is no output, and one too small is caught from its stamp.
#[test]
fn each_output_is_stamped_once_and_what_is_wrong_with_it_is_said() {
    let p = Project::new("[tasks.t]\noutputs = [\"x\", \"y\", \"z\"]\ncommand = \"echo > y\"\n");
    p.build().code(1).stderr_has("did not write x, z");
    let p = Project::new("[tasks.t]\noutputs = [\"x\"]\ncommand = \"ln -s nowhere x\"\n");
    p.build().code(1).stderr_has("x vanished after the command");
    assert_eq!(failure(&p, "t", "task.failed")["kind"], "missing_output");
    let p = Project::new(
        "[tasks.t]\noutputs = [\"deep/er/x\"]\nmin_bytes = 3\ncommand = \"printf ab > deep/er/x\"\n",
    );
    p.build()
        .code(1)
        .stderr_has("output deep/er/x is 2 bytes, less than min_bytes = 3");
    // The refused output is kept aside.
    assert!(p.exists(".planexe/failed/t/deep/er/x"));
}

#[test]
fn ctrl_c_stops_a_command_and_records_it_as_stopped() {
    let p =
        Project::new("[tasks.long]\noutputs = [\"o\"]\ncommand = \"touch started; sleep 100\"\n");
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
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("stopped long ("), "{stderr}");
    assert!(!stderr.contains("FAILED"), "{stderr}");
    assert_eq!(p.status_json("long")["state"], "stopped");
    let line = failure(&p, "long", "task.stopped");
    assert_eq!(line["kind"], "stopped");
    assert_eq!(line["recoverable"], true);
    let summary: Value = serde_json::from_str(&p.read(".planexe/summary.json")).unwrap();
    assert_eq!(summary["tasks"][0]["state"], "stopped");
}

#[test]
fn the_log_tail_is_the_last_2_kb() {
    // 10 KB of numbered lines, then a failure.
    let p = Project::new(
        "[tasks.t]\noutputs = [\"o\"]\ncommand = \"i=0; while [ $i -lt 1000 ]; do printf 'line %05d\\\\n' $i; i=$((i+1)); done; exit 1\"\n",
    );
    p.build().code(1);
    let log = std::fs::read(p.path(".planexe/logs/t.log")).unwrap();
    assert_eq!(log.len(), 11_000);
    let line = failure(&p, "t", "task.failed");
    let tail = line["log_tail"].as_str().unwrap();
    assert_eq!(tail.as_bytes(), &log[log.len() - 2048..]);
    assert!(tail.ends_with("line 00999\n"));
}

#[test]
fn the_log_tail_is_cut_on_a_character_boundary_and_has_no_secrets() {
    let p = Project::new(concat!(
        "[models.m]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n",
        "model = \"x\"\napi_key_env = \"FAILREC_KEY\"\n",
        // 1500 two-byte characters (3000 bytes), then the key.
        "[tasks.t]\noutputs = [\"o\"]\ncommand = \"i=0; while [ $i -lt 1500 ]; do printf 'é'; i=$((i+1)); done; echo; echo key=$FAILREC_KEY; exit 2\"\n",
    ));
    let out = p
        .command(&["build"])
        .env("FAILREC_KEY", "sk-very-secret-key-1234")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = p.read(".planexe/failures.jsonl");
    assert!(!text.contains("sk-very-secret"), "{text}");
    let line = failure(&p, "t", "task.failed");
    let tail = line["log_tail"].as_str().unwrap();
    assert!(tail.len() <= 2048 && tail.len() >= 2046, "{}", tail.len());
    assert!(tail.ends_with("\nkey=[REDACTED]\n"), "{tail}");
    assert!(tail.starts_with('é'), "{tail}");
}

/// A key a failed command printed is scrubbed from everything planexe
/// shows of its log: the build's printed tail, the HTML report and the
/// JUnit XML, and from the log itself once the command ended.
#[test]
fn a_key_a_failed_command_printed_is_in_no_report() {
    let p = Project::new(concat!(
        "[models.m]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n",
        "model = \"x\"\napi_key_env = \"REPORT_KEY\"\n",
        "[tasks.t]\noutputs = [\"o\"]\ncommand = \"echo key=$REPORT_KEY; exit 2\"\n",
    ));
    let key = "sk-report-secret-9f3a51";
    let run = |args: &[&str]| {
        let out = p.command(args).env("REPORT_KEY", key).output().unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let printed = run(&["build"]);
    assert!(printed.contains("  | key=[REDACTED]"), "{printed}");
    assert_eq!(p.read(".planexe/logs/t.log"), "key=[REDACTED]\n");
    run(&["report", "-o", "r.html"]);
    run(&["report", "--format", "junit", "-o", "j.xml"]);
    for file in ["r.html", "j.xml"] {
        let text = p.read(file);
        assert!(text.contains("key=[REDACTED]"), "{file}: {text}");
        assert!(!text.contains(key), "{file}");
    }
}

/// A dangling symlink as an input counts as there when the pipeline is
/// read (docs/pipeline.md): its task fails with `missing_input` when it
/// runs, a failure recorded as data, and the other tasks still run;
/// named by a plain path or matched by a glob alike.
#[test]
fn a_dangling_symlink_input_fails_its_task_when_it_runs() {
    let p = Project::new(
        "[tasks.a]\ninputs = [\"in.txt\"]\noutputs = [\"o\"]\ncommand = \"cat in.txt > o\"\n\
         [tasks.b]\noutputs = [\"p\"]\ncommand = \"echo > p\"\n\
         [tasks.c]\ninputs = [\"notes/*.md\"]\noutputs = [\"q\"]\ncommand = \"cat {inputs} > q\"\n",
    );
    std::os::unix::fs::symlink("missing", p.path("in.txt")).unwrap();
    p.write("notes/a.md", "a\n");
    std::os::unix::fs::symlink("../gone.md", p.path("notes/b.md")).unwrap();
    p.run(&["status"]).ok();
    p.run(&["build", "-n"]).ok();
    let run = p.run(&["build", "-k"]);
    run.code(1)
        .ran(&["a", "b", "c"])
        .stderr_has("FAILED a: input in.txt is a symlink to missing, which does not exist")
        .stderr_has("FAILED c: input notes/b.md is a symlink to ../gone.md, which does not exist");
    assert_eq!(failure(&p, "a", "task.failed")["kind"], "missing_input");
    assert_eq!(failure(&p, "c", "task.failed")["kind"], "missing_input");
    assert!(p.exists("p"), "the other task ran");
    // What the links lead to appears: the tasks run and are done.
    p.write("missing", "in\n");
    p.write("gone.md", "b\n");
    p.build().ok().ran(&["a", "c"]);
    assert_eq!(p.read("o"), "in\n");
    assert_eq!(p.read("q"), "a\nb\n");
}

/// A failed command's log, or a refusing check's, may be of any size and
/// its lines of any length: the build reads only its end, for the lines it
/// prints, the failure line and the check's message. (It read a 100 MB
/// log whole, three copies of it in memory, and printed its last line
/// whole.)
#[test]
fn a_huge_log_of_a_failed_command_or_check_is_read_from_its_end() {
    use crate::peak_rss::measured;
    let huge = "head -c 100000000 /dev/zero | tr '\\\\0' x; echo; echo";
    let p = Project::new(&format!(
        "[tasks.c]\noutputs = [\"c.txt\"]\ncommand = \"{huge} last of c; exit 1\"\n\
         [tasks.k]\noutputs = [\"k.txt\"]\ncommand = \"echo k > k.txt\"\ncheck = \"{huge} last of k; exit 1\"\n"
    ));
    let run = measured(p.command(&["build", "-k"]));
    // (What the old build printed was 100 MB: show only its start.)
    let shown: String = run.stderr.chars().take(4000).collect();
    assert_eq!(run.code, 1, "{shown}");
    assert!(
        run.stderr.len() < 64 * 1024,
        "{} bytes printed",
        run.stderr.len()
    );
    for printed in [
        "\n  | last of c\n",
        "FAILED k: the check failed (exit status 1): x",
        // The time and error_id on the first line, which says what failed.
        "x (error_id",
        "s)\nlast of k\n",
    ] {
        assert!(run.stderr.contains(printed), "{printed}: {shown}");
    }
    assert!(
        run.peak_rss_bytes < 64 * 1024 * 1024,
        "peak RSS {} MiB",
        run.peak_rss_bytes >> 20
    );
    let tail = failure(&p, "c", "task.failed")["log_tail"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(tail.len(), 2048);
    assert!(tail.ends_with("x\nlast of c\n"), "{tail}");
}

/// The build's hint is about its first failed task; when others failed
/// too (`-k`), perhaps otherwise, it says where to read why each did.
#[test]
fn a_build_with_several_failures_says_where_to_read_each() {
    let p = Project::new(
        "[tasks.a]\noutputs = [\"a\"]\ncommand = \"exit 3\"\n\
         [tasks.b]\noutputs = [\"b\"]\ncommand = \"true\"\n\
         [tasks.c]\noutputs = [\"c\"]\ncommand = \"echo > c\"\n",
    );
    p.run(&["build", "-j1", "-k"])
        .code(1)
        .stderr_has("hint: a printed nothing; planexe status says why the other 1 failed; finished tasks are kept");
    p.run(&["status"])
        .stdout_has("the command exited 0 but did not write b");
    // One failure: the hint is about it alone.
    let run = p.run(&["build", "-j1", "b"]);
    run.code(1);
    assert!(!run.stderr.contains("the other"), "{}", run.stderr);
}

/// What a failed command printed last is in its record, so `status` says
/// why it failed without the log being read: its last lines under its
/// line, more in `status TASK`, the whole tail in `--json` and the MCP
/// status's error. A key it printed is not among them.
#[test]
fn a_failed_commands_last_words_are_in_the_status() {
    let p = Project::new(
        r#"
[models.m]
provider = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "m"
api_key_env = "PLX_TAIL_KEY"

[tasks.fetch]
outputs = ["page.html"]
command = "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo step $i; done; echo; echo \"using $PLX_TAIL_KEY\" >&2; echo 'curl: (6) Could not resolve host' >&2; exit 6"
"#,
    );
    const KEY: &str = "sk-tail-0123456789abcdef";
    let status = |args: &[&str]| {
        let out = p
            .command(args)
            .env("PLX_TAIL_KEY", KEY)
            .output()
            .expect("run planexe");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let built = p
        .command(&["build"])
        .env("PLX_TAIL_KEY", KEY)
        .output()
        .unwrap();
    assert_eq!(built.status.code(), Some(1));

    let listed = status(&["status"]);
    assert!(
        listed.contains(
            "| step 12\n         | using [REDACTED]\n         | curl: (6) Could not resolve host\n         hint: "
        ),
        "{listed}"
    );
    assert!(!listed.contains("step 11"), "three lines at most: {listed}");
    let detail = status(&["status", "fetch"]);
    assert!(
        detail.contains("  printed   | step 5\n")
            && detail.contains("            | curl: (6) Could not resolve host\n")
            && !detail.contains("step 4\n"),
        "ten lines: {detail}"
    );
    let json: Value = serde_json::from_str(&status(&["status", "--json"])).unwrap();
    let tail = json["tasks"][0]["log_tail"].as_str().unwrap();
    assert!(
        tail.starts_with("step 1\n") && tail.ends_with("Could not resolve host\n"),
        "{tail}"
    );
    assert_eq!(
        json["tasks"][0]["log_tail"],
        p.status_json("fetch")["error"]["log_tail"]
    );
    for text in [
        &listed,
        &detail,
        tail,
        &p.read(".planexe/tasks/fetch.status"),
    ] {
        assert!(!text.contains(KEY), "{text}");
    }
}

/// A fan-out failing by the dozen: the build's closing lines name the
/// first ten failed tasks and count the rest (`status` lists them all).
#[test]
fn the_closing_lines_name_ten_failed_tasks_and_count_the_rest() {
    let items: Vec<String> = (1..=12).map(|i| format!("\"i{i:02}\"")).collect();
    let p = Project::new(&format!(
        "[tasks.each]\nmatrix = {{ x = [{}] }}\noutputs = [\"out/{{{{ x }}}}.txt\"]\ncommand = \"exit 3\"\n",
        items.join(", ")
    ));
    let run = p.run(&["build", "-k"]);
    run.code(1);
    // Listed in the order they failed, which the two jobs decide.
    let listed = |line: &str| line.matches("each[i").count();
    let closing = run
        .stderr
        .lines()
        .find(|l| l.contains("12 failed ("))
        .unwrap();
    assert!(closing.ends_with(" and 2 more), 0 not run"), "{closing}");
    assert_eq!(listed(closing), 10, "{closing}");
    let error = run
        .stderr
        .lines()
        .find(|l| l.starts_with("error: task(s) failed: "))
        .unwrap();
    assert!(error.ends_with(" and 2 more"), "{error}");
    assert_eq!(listed(error), 10, "{error}");
    p.run(&["status"]).stdout_has("each[i12]");
}
