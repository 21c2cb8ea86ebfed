//! Judges of what is on disk: a command task's judge (and its re-runs with
//! the judge's reason), a rescue that a judge accepts or refuses, the
//! `failed-pending-check` state while a rescue's checks run, the
//! `task.check_failed` events, a changed judge of a command, `planexe
//! check` with judges, and a build killed while a check runs.

use std::process::Stdio;

use serde_json::Value;

use crate::harness::*;
use crate::llm_server::*;

fn verdict(score: f64, reason: &str) -> Reply {
    openai_answer(&serde_json::json!({"score": score, "reason": reason}).to_string())
}

/// A command task `c` judged by the test server's model.
fn project(server: &Server, task: &str, judge: &str) -> Project {
    Project::new(&format!(
        "[pipeline]\nmodel = \"local\"\n[models.local]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"m\"\nstream = false\n\
         [tasks.c]\ninputs = [\"in.txt\"]\noutputs = [\"out.txt\", \"notes.txt\"]\n{task}\n\
         [tasks.c.judge]\nprompt = \"Score {{{{ output }}}} / {{{{ outputs['notes.txt'] }}}} for {{{{ inputs['in.txt'] }}}}\"\n{judge}\n\
         [tasks.next]\ninputs = [\"out.txt\"]\noutputs = [\"next.txt\"]\ncommand = \"cp out.txt next.txt\"\n",
        server.url
    ))
}

/// The last message of the `n`th request (0-based).
fn asked(server: &Server, n: usize) -> String {
    let body = server.requests()[n].json();
    body["messages"].as_array().unwrap().last().unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_command_is_judged_on_what_it_wrote() {
    let server = Server::start();
    server.script([verdict(0.9, "says hello")]);
    let p = project(
        &server,
        "command = \"echo hello > out.txt; echo n > notes.txt\"",
        "",
    );
    p.write("in.txt", "greet");
    p.build().ok().ran(&["c", "next"]);
    assert_eq!(asked(&server, 0), "Score hello\n / n\n for greet");
    let status = p.status_json("c");
    assert_eq!(status["judge"]["score"], 0.9);
    assert_eq!(status["judge"]["rounds"], 1);
    assert_eq!(status["judge"]["model"], "local");
    // The judge's call is the task's: in its record and in usage.jsonl.
    assert_eq!(status["usage"]["total_tokens"], 18);
    assert_eq!(status["attempts"][0]["model"], "local");
    assert!(status["model"].is_null(), "{status}");
    assert_eq!(p.jsonl(".planexe/usage.jsonl").len(), 1);
    p.build().ok().ran(&[]);
}

#[test]
fn a_low_score_runs_the_command_again_with_the_reason() {
    let server = Server::start();
    server.script([verdict(0.2, "too short"), verdict(0.8, "better")]);
    let p = project(
        &server,
        "command = \"echo \\\"${PLANEXE_JUDGE_SCORE:-none} ${PLANEXE_JUDGE_REASON:-first}\\\" >> out.txt; echo n > notes.txt\"",
        "retries = 1",
    );
    p.write("in.txt", "x");
    p.build().ok();
    // The rejected output was removed before the re-run (`>>` appends).
    assert_eq!(p.read("out.txt"), "0.20 too short\n");
    let status = p.status_json("c");
    assert_eq!(status["judge"]["rounds"], 2);
    assert_eq!(status["judge"]["score"], 0.8);
    assert_eq!(status["attempt"], 2);
    assert_eq!(status["usage"]["total_tokens"], 36);
}

#[test]
fn a_command_the_judge_refuses_fails_and_its_last_good_outputs_stay() {
    let server = Server::start();
    server.script([verdict(0.9, "fine"), verdict(0.1, "empty talk")]);
    let p = project(
        &server,
        "command = \"cat in.txt > out.txt; echo n > notes.txt\"",
        "",
    );
    p.write("in.txt", "good");
    p.build().ok();
    p.write("in.txt", "bad");
    p.build()
        .code(1)
        .stderr_has("FAILED c: judge_rejected: judge local scored the answer 0.10, below its threshold 0.70: empty talk");
    assert_eq!(p.read("out.txt"), "good");
    assert_eq!(p.read(".planexe/failed/c/out.txt"), "bad");
    let status = p.status_json("c");
    assert_eq!(status["error"]["kind"], "judge_rejected");
    assert_eq!(status["error"]["recoverable"], false);
    assert_eq!(status["judge"]["passed"], false);
    let failures = p.jsonl(".planexe/failures.jsonl");
    let last = failures.last().unwrap();
    assert_eq!(last["error_type"], "judge_rejected");
    assert_eq!(last["error_id"], status["error"]["error_id"]);
    // Its failed check is an event of its own, before the task's.
    let events = p.jsonl(".planexe/events.jsonl");
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    let at = names
        .iter()
        .rposition(|&n| n == "task.check_failed")
        .unwrap();
    assert_eq!(names[at + 1], "task.failed", "{names:?}");
    assert_eq!(events[at]["severity"], "error");
    assert_eq!(events[at]["error_id"], status["error"]["error_id"]);
    assert!(events[at]["error_summary"]
        .as_str()
        .unwrap()
        .starts_with("judge: judge local scored the answer 0.10"));
}

#[test]
fn a_judge_that_cannot_be_reached_fails_the_task_as_recoverable() {
    let p = Project::new(
        "[pipeline]\nmodel = \"local\"\n[models.local]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\nstream = false\n\
         [tasks.c]\noutputs = [\"out.txt\"]\ncommand = \"echo x > out.txt\"\n[tasks.c.judge]\nprompt = \"{{ output }}\"\n",
    );
    p.build()
        .code(1)
        .stderr_has("judge local could not score: connection");
    let status = p.status_json("c");
    assert_eq!(status["error"]["kind"], "connection");
    assert_eq!(status["error"]["recoverable"], true);
    assert!(!p.exists("out.txt"));
}

const RESCUED: &str =
    "command = \"echo partial > out.txt; echo n > notes.txt; exit 3\"\nrescue = true";

#[test]
fn a_rescue_the_judge_accepts_is_done_and_shown_rescued() {
    let server = Server::start();
    server.script([verdict(0.9, "usable")]);
    let p = project(&server, RESCUED, "");
    p.write("in.txt", "x");
    p.build()
        .ok()
        .ran(&["c", "next"])
        .stderr_has(
            "check  c: exit status 3; failed-pending-check: its checks examine what it wrote",
        )
        .stderr_has("rescued c: the command failed; its checks accepted the outputs");
    let status = p.status_json("c");
    assert_eq!(status["state"], "done");
    assert_eq!(status["rescued"], true);
    assert_eq!(status["judge"]["score"], 0.9);
    let summary: Value = serde_json::from_str(&p.read(".planexe/summary.json")).unwrap();
    assert_eq!(summary["rescued"], 1);
    let events = p.read(".planexe/events.jsonl");
    assert!(events.contains("\"task.rescued\""), "{events}");
    p.run(&["report"]).ok();
    let page = p.read("report.html");
    assert!(page.contains("class=\"badge rescued\""), "no rescued badge");
    assert!(page.contains("<b>1</b> rescued"), "no rescued count");
}

#[test]
fn a_rescue_the_judge_refuses_fails_with_the_command_s_failure() {
    let server = Server::start();
    server.script([verdict(0.1, "half done")]);
    // Even a judge of severity warn must accept a rescue.
    let p = project(&server, RESCUED, "severity = \"warn\"");
    p.write("in.txt", "x");
    p.build().code(1).ran(&["c"]);
    let status = p.status_json("c");
    assert_eq!(status["error"]["kind"], "judge_rejected");
    assert_eq!(status["error"]["exit_code"], 3);
    let message = status["error"]["message"].as_str().unwrap();
    assert!(
        message
            .starts_with("exit status 3, and judge_rejected: judge local scored the answer 0.10"),
        "{message}"
    );
    assert!(!p.exists("out.txt"));
}

#[test]
fn a_crash_is_never_rescued_and_no_judge_is_asked() {
    let server = Server::start();
    for command in [
        "command = \"echo x > out.txt; echo n > notes.txt; kill -TERM $$\"\nrescue = true",
        "command = \"echo x > out.txt; echo n > notes.txt; sleep 5\"\nrescue = true\ntimeout = \"1s\"",
        "command = \"echo x > out.txt; exit 3\"\nrescue = true",
    ] {
        let p = project(&server, command, "");
        p.write("in.txt", "x");
        p.build().code(1);
        assert!(p.status_json("c")["judge"].is_null());
    }
    assert!(server.requests().is_empty());
}

#[test]
fn a_rescue_is_failed_pending_check_while_its_checks_run() {
    let p = Project::new(
        "[tasks.r]\noutputs = [\"r.txt\"]\ncommand = \"echo partial > r.txt; exit 3\"\n\
         check = \"touch checking; while [ ! -e go ]; do sleep 0.05; done\"\nrescue = true\n",
    );
    let child = Background(Some(
        p.command(&["build"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    wait_for("the rescue's check", || p.exists("checking"));
    // The running sidecar says so once it is published.
    wait_for("the pending-check sidecar", || {
        std::fs::read_to_string(p.path(".planexe/tasks/r.status"))
            .is_ok_and(|s| s.contains("\"failed-pending-check\""))
    });
    let sidecar = p.status_json("r");
    assert_eq!(sidecar["error"]["message"], "exit status 3");
    wait_for("status to show it", || {
        let status = p.run(&["status", "--json"]);
        let json: Value = serde_json::from_str(&status.stdout).unwrap_or_default();
        json["tasks"][0]["state"] == "failed-pending-check"
    });
    p.run(&["status"])
        .stdout_has("FAILED-PENDING-CHECK (1)")
        .stdout_has("exit status 3; its rescue's checks examine what it wrote");
    p.write("go", "");
    let out = child.wait();
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("check  r: exit status 3"), "{stderr}");
    assert_eq!(p.status_json("r")["state"], "done");
}

#[test]
fn a_build_killed_while_a_check_runs_stops_the_check_and_runs_the_task_again() {
    let good = "[tasks.a]\noutputs = [\"a.txt\"]\ncommand = \"echo good > a.txt\"\n";
    let p = Project::new(good);
    p.build().ok();
    p.write(
        "pipeline.toml",
        "[tasks.a]\noutputs = [\"a.txt\"]\ncommand = \"echo new > a.txt\"\n\
         check = \"echo $$ > check.pid; sleep 100\"\n",
    );
    let mut child = p.spawn_quiet(&["build"]);
    wait_for("the check's pid", || {
        std::fs::read_to_string(p.path("check.pid")).is_ok_and(|s| s.ends_with('\n'))
    });
    let pid = p.read("check.pid").trim().to_string();
    wait_for("the check's pid in the journal", || {
        p.read(".planexe/inflight")
            .contains(&format!("{{\"spawned\":[\"a\",{pid}]}}"))
    });
    child.kill().unwrap();
    child.wait().unwrap();
    p.write("pipeline.toml", good);
    p.build()
        .ok()
        .stderr_has(&format!(
            "stopped a (pid {pid}), left running by a build that crashed"
        ))
        .stderr_has("restored 1 output(s) of a")
        .ran(&["a"]);
    wait_for("the check to end", || {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.split(") ").nth(1).is_some_and(|r| r.starts_with('Z')))
    });
    assert_eq!(p.read("a.txt"), "good\n");
}

#[test]
fn a_changed_judge_of_a_command_judges_its_outputs_without_running_it() {
    let server = Server::start();
    server.script([verdict(0.9, "fine"), verdict(0.6, "fine enough")]);
    let p = project(
        &server,
        "command = \"date +%s%N > out.txt; echo n > notes.txt\"",
        "threshold = 0.8",
    );
    p.write("in.txt", "x");
    p.build().ok();
    let first = p.read("out.txt");
    let text = p
        .read("pipeline.toml")
        .replace("threshold = 0.8", "threshold = 0.5");
    p.write("pipeline.toml", &text);
    p.build().ok();
    assert_eq!(p.read("out.txt"), first, "the command ran again");
    assert_eq!(server.requests().len(), 2);
    assert_eq!(p.status_json("c")["judge"]["threshold"], 0.5);
    p.build().ok().ran(&[]);
}

#[test]
fn planexe_check_asks_the_judges_and_changes_nothing() {
    let server = Server::start();
    server.script([
        verdict(0.9, "fine"),
        verdict(0.95, "fine"),
        verdict(0.2, "bad now"),
    ]);
    let p = project(
        &server,
        "command = \"echo hi > out.txt; echo n > notes.txt\"",
        "",
    );
    p.write("in.txt", "x");
    p.build().ok();
    let before = p.read(".planexe/tasks/c.status");
    p.run(&["check", "c"])
        .ok()
        .stdout_has("ok c (judge 0.95)\n");
    p.write("out.txt", "edited\n");
    p.run(&["check", "c"]).code(1).stdout_has(
        "FAILED c: judge_rejected: judge local scored the answer 0.20, below its threshold 0.70: bad now",
    );
    assert!(asked(&server, 2).starts_with("Score edited\n"));
    assert_eq!(p.read(".planexe/tasks/c.status"), before);
    assert_eq!(p.read("out.txt"), "edited\n");
    // Judges' calls are model calls like any other.
    assert_eq!(p.jsonl(".planexe/usage.jsonl").len(), 3);
}

#[test]
fn planexe_check_judges_from_a_recording() {
    let server = Server::start();
    server.script([verdict(0.9, "fine")]);
    let p = project(
        &server,
        "command = \"echo hi > out.txt; echo n > notes.txt\"",
        "",
    );
    p.write("in.txt", "x");
    p.run(&["build", "--record", "answers"]).ok();
    // Offline: answers come from the recording alone.
    p.run(&["check", "--replay", "answers"])
        .ok()
        .stdout_has("ok c (judge 0.90)\n");
    assert_eq!(server.requests().len(), 1);
    // The replayed call is the judge's, as the recorded one was.
    let usage = p.jsonl(".planexe/usage.jsonl");
    let marks: Vec<(bool, bool, Option<f64>)> = usage
        .iter()
        .map(|l| {
            (
                l["replayed"] == true,
                l["judge"] == true,
                l["score"].as_f64(),
            )
        })
        .collect();
    assert_eq!(marks, [(false, true, Some(0.9)), (true, true, Some(0.9))]);
    p.run(&["check", "--replay", "missing"]).code(2);
}

#[test]
fn a_warn_judge_that_scores_low_is_a_warning_and_an_event() {
    let server = Server::start();
    server.script([verdict(0.3, "thin")]);
    let p = project(
        &server,
        "command = \"echo hi > out.txt; echo n > notes.txt\"",
        "severity = \"warn\"",
    );
    p.write("in.txt", "x");
    p.build().ok().ran(&["c", "next"]).stderr_has(
        "warn   c: judge: judge local scored the answer 0.30, below its threshold 0.70: thin",
    );
    let events = p.jsonl(".planexe/events.jsonl");
    let failed: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "task.check_failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["severity"], "warn");
    assert!(failed[0]["error_id"].is_null());
}

#[test]
fn a_command_s_judge_that_fails_is_named_in_the_failure() {
    let server = Server::start();
    server.default_reply(json(
        401,
        serde_json::json!({"error": {"message": "bad key"}}),
    ));
    let p = Project::new(&format!(
        "[models.j]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"j\"\nstream = false\n\
         [tasks.c]\noutputs = [\"out.txt\"]\ncommand = \"echo x > out.txt\"\n\
         [tasks.c.judge]\nprompt = \"{{{{ output }}}}\"\nmodel = \"j\"\n",
        server.url
    ));
    p.build()
        .code(1)
        .stderr_has("judge j could not score: auth: HTTP 401");
    let status = p.status_json("c");
    assert_eq!(status["error"]["kind"], "auth");
    assert!(status["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("judge j could not score: auth: HTTP 401"));
    // A command's `model` stays null; the judge's calls are its attempts.
    assert_eq!(status["model"], Value::Null);
    assert_eq!(status["attempts"].as_array().unwrap()[0]["model"], "j");
}
