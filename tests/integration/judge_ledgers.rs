//! A judge's share of the ledgers: its failures in `failures.jsonl` are
//! marked `judge` (a failed call of the judge told from one of the task's
//! own model), and every failure of a judge, with a call or without one,
//! has the line the task's `error_id` names; `summary.json`, `status`
//! and the report give the judges' calls, tokens and cost beside the
//! totals.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::harness::*;
use crate::llm_server::*;

/// A task whose model `m` (on `answers`) is judged by the model `j` (on
/// `judges`); `task` and `judge` are more keys of the task and its judge.
fn judged(answers: &Server, judges: &Server, task: &str, judge: &str) -> Project {
    Project::new(&format!(
        "[pipeline]\nmodel = \"m\"\n\
         [models.m]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"m\"\nstream = false\n\
         [models.j]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"j\"\nstream = false\n\
         [tasks.t]\noutputs = [\"t.md\"]\nprompt = \"Plan it\"\n{task}\n\
         [tasks.t.judge]\nprompt = \"Score {{{{ output }}}}\"\nmodel = \"j\"\n{judge}\n",
        answers.url, judges.url
    ))
}

fn verdict(score: f64, reason: &str) -> Reply {
    openai_answer(&serde_json::json!({"score": score, "reason": reason}).to_string())
}

fn rate_limited() -> Reply {
    with_header(
        json(429, serde_json::json!({"error": {"message": "slow down"}})),
        "Retry-After",
        "30",
    )
}

/// Each line of `failures.jsonl` as (model, judge, kind).
fn failure_marks(p: &Project) -> Vec<(String, bool, String)> {
    p.jsonl(".planexe/failures.jsonl")
        .iter()
        .map(|f| {
            (
                f["model"].as_str().unwrap_or("-").to_string(),
                f["judge"] == true,
                f["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn marks(list: &[(&str, bool, &str)]) -> Vec<(String, bool, String)> {
    list.iter()
        .map(|(m, j, k)| (m.to_string(), *j, k.to_string()))
        .collect()
}

/// The task's error names the last line of `failures.jsonl`.
#[track_caller]
fn error_names_the_last_line(p: &Project) -> Value {
    let status = p.status_json("t");
    let failures = p.jsonl(".planexe/failures.jsonl");
    assert_eq!(
        failures.last().unwrap()["error_id"],
        status["error"]["error_id"],
        "{failures:?}"
    );
    status
}

/// `failures.jsonl` said which model failed, not whose call it was: with
/// a judge, a reader could not tell the task's failed call from its
/// judge's.
#[test]
fn failures_jsonl_marks_a_judges_failed_calls() {
    let answers = Server::start();
    answers.script([json(500, serde_json::json!({"error": {"message": "boom"}}))]);
    answers.default_reply(openai_answer("Dig, frame, roof."));
    let judges = Server::start();
    judges.script([openai_answer("I like it a lot."), verdict(0.9, "fine")]);
    let p = judged(&answers, &judges, "", "");
    p.build().ok();
    assert_eq!(
        failure_marks(&p),
        marks(&[("m", false, "server_error"), ("j", true, "invalid_json")])
    );
    // The ledger's own key says so for every line, false included.
    assert!(p
        .jsonl(".planexe/failures.jsonl")
        .iter()
        .all(|f| f["judge"].is_boolean()));

    // The judge's score that fails the task is the judge's line too.
    let answers = Server::start();
    answers.default_reply(openai_answer("Build it."));
    let judges = Server::start();
    judges.default_reply(verdict(0.1, "no plan at all"));
    let p = judged(&answers, &judges, "", "retries = 0");
    p.build().code(1).stderr_has("judge_rejected");
    assert_eq!(failure_marks(&p), marks(&[("j", true, "judge_rejected")]));
    error_names_the_last_line(&p);
}

/// A judge whose request has no recorded answer: the miss is the judge's.
#[test]
fn a_judges_replay_miss_is_marked_the_judges() {
    let answers = Server::start();
    answers.default_reply(openai_answer("Dig, frame, roof."));
    let judges = Server::start();
    judges.default_reply(verdict(0.9, "fine"));
    let p = judged(&answers, &judges, "", "");
    p.run(&["build", "--record", "answers"]).ok();
    // Another judge's prompt: the task's answer is scored again, and the
    // recording has no answer for that request.
    let text = p.read("pipeline.toml").replace("Score ", "Rate ");
    p.write("pipeline.toml", &text);
    p.run(&["build", "--replay", "answers"])
        .code(1)
        .stderr_has("replay_miss");
    // Scored again: the miss is the judge's, and the task's answer is not
    // asked again for a judge that cannot score it.
    assert_eq!(failure_marks(&p), marks(&[("j", true, "replay_miss")]));
    error_names_the_last_line(&p);
    assert_eq!(judges.requests().len(), 1);
}

/// Replaying a task its judge sent back once replays each call of its
/// conversation: the refused answer, its verdict, the re-ask (keyed by the
/// whole conversation) and the verdict on the new answer (docs/llm.md).
#[test]
fn replaying_a_judged_re_ask_replays_each_call_of_the_conversation() {
    let answers = Server::start();
    answers.script([openai_answer("Dig."), openai_answer("Dig, frame, roof.")]);
    let judges = Server::start();
    judges.script([verdict(0.1, "too thin"), verdict(0.9, "fine")]);
    let p = judged(&answers, &judges, "", "threshold = 0.5\nretries = 1");
    p.run(&["build", "--record", "answers"]).ok();
    assert_eq!(std::fs::read_dir(p.path("answers")).unwrap().count(), 4);
    p.remove("t.md");
    std::fs::remove_dir_all(p.path(".planexe")).unwrap();
    p.run(&["build", "--replay", "answers"]).ok().ran(&["t"]);
    assert_eq!(p.read("t.md"), "Dig, frame, roof.");
    assert_eq!((answers.requests().len(), judges.requests().len()), (2, 2));
    let replayed: Vec<(bool, bool)> = p
        .jsonl(".planexe/usage.jsonl")
        .iter()
        .map(|l| (l["replayed"] == true, l["judge"] == true))
        .collect();
    assert_eq!(
        replayed,
        [(true, false), (true, true), (true, false), (true, true)]
    );
}

/// A judge's prompt that cannot be rendered failed the task with an
/// error_id that named no line of `failures.jsonl`.
#[test]
fn a_judges_prompt_that_cannot_be_rendered_has_its_line() {
    let answers = Server::start();
    answers.default_reply(openai_answer("Dig, frame, roof."));
    let judges = Server::start();
    let p = judged(&answers, &judges, "", "");
    // Only an answer that is not empty reaches the undefined name: the
    // pipeline's check renders the prompt with an empty one.
    let text = p.read("pipeline.toml").replace(
        "Score {{ output }}",
        "Score {% if output %}{{ nope }}{% endif %}",
    );
    p.write("pipeline.toml", &text);
    p.build()
        .code(1)
        .stderr_has("cannot render the judge's prompt");
    let status = error_names_the_last_line(&p);
    assert_eq!(status["error"]["kind"], "template");
    assert_eq!(failure_marks(&p), marks(&[("j", true, "template")]));
    assert!(judges.requests().is_empty());
}

/// The task's timeout while its judge's call was in flight: the task's
/// message was the call's own (`timeout after 1s, while the model was
/// answering`), as if the task's own model (or a command's own run) had
/// been cut short; nothing named the judge or its model.
#[test]
fn a_timeout_during_the_judges_call_names_the_judge() {
    let answers = Server::start();
    answers.default_reply(openai_answer("Dig, frame, roof."));
    let judges = Server::start();
    judges.default_reply(Reply::Hang);
    let said = "judge j could not score: timeout: timeout after 1s, while the model was answering (0 piece(s) received)";
    let p = judged(&answers, &judges, "timeout = \"1s\"", "");
    p.build().code(1).stderr_has(&format!("FAILED t: {said}"));
    let status = error_names_the_last_line(&p);
    assert_eq!(status["error"]["kind"], "timeout");
    assert_eq!(status["error"]["message"], said);
    assert_eq!(status["model"], "j");
    assert_eq!(failure_marks(&p), marks(&[("j", true, "timeout")]));
    p.run(&["status"]).ok().stdout_has(said);
    p.run(&["status", "t"])
        .ok()
        .stdout_has(&format!("  error     {said}"));

    // A command's judge, its call cut by the command task's timeout.
    let p = Project::new(&format!(
        "[pipeline]\nmodel = \"m\"\n\
         [models.j]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"j\"\nstream = false\n\
         [tasks.c]\noutputs = [\"c.md\"]\ncommand = \"echo hi > c.md\"\ntimeout = \"1s\"\n\
         [tasks.c.judge]\nprompt = \"Score {{{{ output }}}}\"\nmodel = \"j\"\n\
         [models.m]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"m\"\nstream = false\n",
        judges.url, answers.url
    ));
    p.build().code(1).stderr_has(&format!("FAILED c: {said}"));
    assert_eq!(p.status_json("c")["error"]["message"], said);
    assert!(answers.requests().len() == 1, "only t's model was asked");
}

/// A judge still generating when the task's timeout expires: the advice
/// is the user's to take. A judge's prompt, schema and `max_tokens` are
/// planexe's, so it does not say to bound the schema or lower
/// `max_tokens`, only to raise the task's timeout.
#[test]
fn a_runaway_judge_is_told_only_what_the_user_can_change() {
    let answers = Server::start();
    answers.default_reply(openai_answer("Dig, frame, roof."));
    let judges = Server::start();
    judges.default_reply(Reply::Trickle {
        every: Duration::from_millis(50),
    });
    let p = Project::new(&format!(
        "[pipeline]\nmodel = \"m\"\n\
         [models.m]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"m\"\nstream = false\n\
         [models.j]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"j\"\n\
         [tasks.t]\noutputs = [\"t.md\"]\nprompt = \"Plan it\"\ntimeout = \"1s\"\n\
         [tasks.t.judge]\nprompt = \"Score {{{{ output }}}}\"\nmodel = \"j\"\n",
        answers.url, judges.url
    ));
    let out = p.build();
    out.code(1)
        .stderr_has("FAILED t: judge j could not score: runaway: the model was still generating");
    let message = p.status_json("t")["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(message.contains("raise the task's timeout"), "{message}");
    assert!(!message.contains("lower max_tokens"), "{message}");
    assert!(!message.contains("maxItems"), "{message}");
}

/// The task's timeout while its judge waited to retry: the task's message
/// said `while waiting to retry`, as if its own model had failed, and
/// its line was not marked the judge's (with `severity = "warn"`, there
/// was no line at all).
#[test]
fn a_timeout_while_the_judge_waits_to_retry_is_the_judges() {
    let answers = Server::start();
    answers.default_reply(openai_answer("Dig, frame, roof."));
    let judges = Server::start();
    judges.default_reply(rate_limited());
    let p = judged(&answers, &judges, "timeout = \"1s\"", "");
    p.build()
        .code(1)
        .stderr_has("while its judge waited to retry after rate_limited");
    let status = error_names_the_last_line(&p);
    assert_eq!(status["error"]["kind"], "timeout");
    assert_eq!(
        failure_marks(&p),
        marks(&[("j", true, "rate_limited"), ("j", true, "timeout")])
    );

    let p = judged(&answers, &judges, "timeout = \"1s\"", "severity = \"warn\"");
    p.build().ok().stderr_has(
        "warn   t: judge: judge j could not score: timeout: the task's timeout (1s) expired while its judge waited to retry after rate_limited",
    );
    assert_eq!(
        failure_marks(&p),
        marks(&[("j", true, "rate_limited"), ("j", true, "timeout")])
    );
}

/// Ctrl-C while the judge waited to retry: the task's stop was recorded
/// as a plain stop of the task.
#[test]
fn an_interrupt_while_the_judge_waits_to_retry_is_the_judges() {
    let answers = Server::start();
    answers.default_reply(openai_answer("Dig, frame, roof."));
    let judges = Server::start();
    judges.default_reply(rate_limited());
    let p = judged(&answers, &judges, "", "");
    let child = p
        .command(&["build"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The judge's first call failed: the build waits 30 s to retry.
    wait_for("the judge's failed call", || {
        p.exists(".planexe/failures.jsonl") && !p.jsonl(".planexe/failures.jsonl").is_empty()
    });
    // SAFETY: sending a signal to the child we spawned.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    let status = error_names_the_last_line(&p);
    assert_eq!(status["state"], "stopped");
    assert_eq!(
        failure_marks(&p),
        marks(&[("j", true, "rate_limited"), ("j", true, "stopped")])
    );
}

/// `summary.json` and `status` summed a judge's calls into the totals with
/// nothing to tell the cost of judging from the tasks' own.
#[test]
fn the_summary_and_status_give_the_judges_share_of_calls_tokens_and_cost() {
    let answers = Server::start();
    answers.script([
        openai_answer("Build it."),
        openai_answer("1. Dig. 2. Frame. 3. Roof."),
    ]);
    let judges = Server::start();
    judges.script([verdict(0.2, "too vague"), verdict(0.85, "steps")]);
    judges.default_reply(verdict(0.9, "fine"));
    // Every call is 11 tokens in and 7 out: $0.018 on m, $0.036 on j. The
    // command `c` runs after `t`, so the judges' answers come in order.
    let p = Project::new(&format!(
        "[pipeline]\nmodel = \"m\"\n\
         [models.m]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"m\"\nstream = false\n\
         input_cost_per_mtok = 1000\noutput_cost_per_mtok = 1000\n\
         [models.j]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"j\"\nstream = false\n\
         input_cost_per_mtok = 2000\noutput_cost_per_mtok = 2000\n\
         [tasks.t]\noutputs = [\"t.md\"]\nprompt = \"Plan it\"\n\
         [tasks.t.judge]\nprompt = \"Score {{{{ output }}}}\"\nmodel = \"j\"\nthreshold = 0.6\n\
         [tasks.c]\ninputs = [\"t.md\"]\noutputs = [\"c.txt\"]\ncommand = \"cp t.md c.txt\"\n\
         [tasks.c.judge]\nprompt = \"Score {{{{ output }}}}\"\nmodel = \"j\"\n",
        answers.url, judges.url
    ));
    p.build().ok();
    // Exact: costs are summed to the nanodollar, with no float noise
    // (the judges' three calls summed to 0.10799999999999998).
    let close = |v: &Value, x: f64| v.as_f64() == Some(x);
    let summary: Value = serde_json::from_str(&p.read(".planexe/summary.json")).unwrap();
    // The totals still count every call, the judges' included.
    assert_eq!(summary["calls"], 5, "{summary}");
    assert_eq!(summary["total_tokens"], 90, "{summary}");
    assert!(close(&summary["cost_usd"], 0.144), "{summary}");
    let judging = &summary["judge_usage"];
    assert_eq!(judging["calls"], 3, "{summary}");
    assert_eq!(judging["prompt_tokens"], 33, "{summary}");
    assert_eq!(judging["completion_tokens"], 21, "{summary}");
    assert_eq!(judging["total_tokens"], 54, "{summary}");
    assert!(close(&judging["cost_usd"], 0.108), "{summary}");
    // Each task's share: the prompt task's judge scored twice, the
    // command's once (the command's tokens are all its judge's).
    let task = |name: &str| {
        summary["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["task"] == name)
            .unwrap()
            .clone()
    };
    let (t, c) = (task("t"), task("c"));
    assert_eq!(t["total_tokens"], 72);
    assert_eq!(t["judge_usage"]["calls"], 2);
    assert_eq!(t["judge_usage"]["total_tokens"], 36);
    assert!(close(&t["judge_usage"]["cost_usd"], 0.072), "{t}");
    assert_eq!(c["total_tokens"], 18);
    assert_eq!(c["judge_usage"]["calls"], 1);
    assert_eq!(p.status_json("t")["judge_usage"]["calls"], 2);

    // `status`: the totals of usage.jsonl, and the judges' share.
    let status: Value =
        serde_json::from_str(&p.run(&["status", "--json"]).ok().stdout.clone()).unwrap();
    let totals = &status["totals"];
    assert_eq!(totals["calls"], 5, "{totals}");
    assert_eq!(totals["judge_usage"]["calls"], 3, "{totals}");
    assert_eq!(totals["judge_usage"]["total_tokens"], 54, "{totals}");
    assert!(close(&totals["judge_usage"]["cost_usd"], 0.108), "{totals}");
    p.run(&["status"])
        .ok()
        .stdout_has("model calls 5 (0 failed), 90 tokens (55 in, 35 out), $0.1440, ")
        .stdout_has("\n  of which judge calls 3, 54 tokens (33 in, 21 out), $0.1080\n");
    p.run(&["status", "t"])
        .ok()
        .stdout_has("  usage     72 tokens (44 in, 28 out), $0.1080\n  judging   2 call(s), 36 tokens (22 in, 14 out), $0.0720\n");
    p.run(&["report", "-o", "report.html"]).ok();
    let html = p.read("report.html");
    assert!(
        html.contains("of which judges: <b>3</b> call(s), <b>54</b> tokens (33 prompt, 21 completion), <b>$0.1080</b>"),
        "{html}"
    );
}

/// A prompt task's judge that scored its answer too low failed it with
/// `m: judge_rejected: the judge scored ...`: the name of the task's own
/// model, as if it had failed, not the judge's (`j`), which scored it. A
/// command's judge named no model at all.
#[test]
fn a_rejection_names_the_judges_model_not_the_tasks() {
    let answers = Server::start();
    answers.default_reply(openai_answer("Build it."));
    let judges = Server::start();
    judges.default_reply(verdict(0.1, "no plan at all"));
    let scored = "judge j scored the answer 0.10, below its threshold 0.70: no plan at all";
    let said = format!("judge_rejected: {scored} (not asked again: retries = 0)");
    let p = judged(&answers, &judges, "", "retries = 0");
    p.build().code(1).stderr_has(&format!("FAILED t: {said}"));
    let status = error_names_the_last_line(&p);
    assert_eq!(status["error"]["message"], said.as_str());
    assert_eq!(p.jsonl(".planexe/failures.jsonl")[0]["message"], scored);
    let listed = p.run(&["status"]).ok().stdout.clone();
    assert!(
        listed.contains(&said) && !listed.contains("m: judge_rejected"),
        "{listed}"
    );
    p.run(&["status", "t"])
        .ok()
        .stdout_has(&format!("  error     {said}"));
    p.run(&["report"]).ok();
    let report = p.read("report.html");
    assert!(
        report.contains(scored) && !report.contains("m: judge_rejected"),
        "the report does not say {scored}"
    );

    // A command's judge.
    let p = Project::new(&format!(
        "[pipeline]\nmodel = \"m\"\n\
         [models.m]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"m\"\nstream = false\n\
         [models.j]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"j\"\nstream = false\n\
         [tasks.c]\noutputs = [\"c.md\"]\ncommand = \"echo hi > c.md\"\n\
         [tasks.c.judge]\nprompt = \"Score {{{{ output }}}}\"\nmodel = \"j\"\n",
        answers.url, judges.url
    ));
    let said = format!("judge_rejected: {scored}");
    p.build().code(1).stderr_has(&format!("FAILED c: {said}"));
    assert_eq!(p.status_json("c")["error"]["message"], said.as_str());
    p.run(&["status", "c"])
        .ok()
        .stdout_has(&format!("  error     {said}"));
    // Its failures.jsonl line is the judge's, as a prompt task's is.
    let lines = p.jsonl(".planexe/failures.jsonl");
    let rejected: Vec<_> = lines
        .iter()
        .filter(|l| l["error_type"] == "judge_rejected")
        .collect();
    assert_eq!(rejected.len(), 1, "{lines:?}");
    assert_eq!(rejected[0]["judge"], true, "{lines:?}");
    assert_eq!(rejected[0]["model"], "j", "{lines:?}");
}
