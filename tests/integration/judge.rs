//! LLM judges of prompt tasks: a model scores the answer; below the
//! threshold the task's model is asked again with the reason, then the task
//! fails as `judge_rejected` (or, with `severity = "warn"`, stands with a
//! warning, as it does when a warning judge cannot score). A changed judge
//! scores the current answer again. Judges of
//! commands, rescues and `planexe check` are in `judge_outputs.rs`.

use serde_json::Value;

use crate::harness::*;
use crate::llm_server::*;

fn project(server: &Server, judge: &str) -> Project {
    let p = Project::new(&format!(
        "[pipeline]\nmodel = \"local\"\n[models.local]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"m\"\nstream = false\n\
         [tasks.plan]\ninputs = [\"idea.txt\"]\noutputs = [\"plan.md\"]\nprompt = \"Plan {{{{ inputs['idea.txt'] }}}}\"\n\
         [tasks.plan.judge]\nprompt = \"Score this plan: {{{{ output }}}}\"\n{judge}\n",
        server.url
    ));
    p.write("idea.txt", "a shed");
    p
}

fn verdict(score: f64, reason: &str) -> Reply {
    openai_answer(&serde_json::json!({"score": score, "reason": reason}).to_string())
}

#[test]
fn an_answer_the_judge_passes_is_written_with_its_verdict() {
    let server = Server::start();
    server.script([
        openai_answer("Dig, frame, roof."),
        verdict(0.9, "clear and complete"),
    ]);
    let p = project(&server, "");
    p.build().ok();
    assert_eq!(p.read("plan.md"), "Dig, frame, roof.");
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let judge_prompt = requests[1].json()["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()["content"]
        .clone();
    assert_eq!(judge_prompt, "Score this plan: Dig, frame, roof.");
    assert!(
        requests[1].json()["response_format"]["json_schema"]["schema"]["properties"]["score"]
            .is_object()
    );
    let judge = &p.status_json("plan")["judge"];
    assert_eq!(judge["score"], 0.9);
    assert_eq!(judge["passed"], true);
    assert_eq!(judge["reason"], "clear and complete");
    let status: Value =
        serde_json::from_str(&p.run(&["status", "--json"]).ok().stdout.clone()).unwrap();
    assert_eq!(status["tasks"][0]["judge"]["score"], 0.9);
    let summary: Value = serde_json::from_str(&p.read(".planexe/summary.json")).unwrap();
    assert_eq!(summary["tasks"][0]["judge"]["threshold"], 0.7);
    p.run(&["status"]).ok().stdout_has("judge 0.90");
    // The judge's calls are model calls like any other.
    assert_eq!(p.jsonl(".planexe/usage.jsonl").len(), 2);
}

/// A built project whose judge (threshold 0.6) scored the first answer
/// 0.2 and the answer its model gave again 0.85.
fn scored_low_then_high() -> (Server, Project) {
    let server = Server::start();
    server.script([
        openai_answer("Build it."),
        verdict(0.2, "too vague: no steps"),
        openai_answer("1. Dig. 2. Frame. 3. Roof."),
        verdict(0.85, "concrete steps"),
    ]);
    let p = project(&server, "threshold = 0.6");
    p.build().ok();
    (server, p)
}

#[test]
fn a_low_score_asks_the_task_model_again_with_the_reason() {
    let (server, p) = scored_low_then_high();
    assert_eq!(p.read("plan.md"), "1. Dig. 2. Frame. 3. Roof.");
    let reask = server.requests()[2].json();
    let messages = reask["messages"].as_array().unwrap();
    assert_eq!(messages[messages.len() - 2]["content"], "Build it.");
    // As docs/llm.md quotes it.
    assert_eq!(
        messages.last().unwrap()["content"],
        "A reviewer scored your answer 0.20 out of 1 (it needs 0.60): too vague: no steps\n\
         Answer again, improved, in the same format."
    );
    let judge = &p.status_json("plan")["judge"];
    assert_eq!(judge["rounds"], 2);
    assert_eq!(judge["passed"], true);
}

/// `status TASK` listed a judge's calls as plain attempts of the task:
/// with the judge asking the task's own model, nothing told them apart.
#[test]
fn status_task_tells_a_judges_calls_from_the_tasks_own() {
    let (_server, p) = scored_low_then_high();
    let run = p.run(&["status", "plan"]);
    let lines: Vec<String> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("  attempt"))
        .map(|l| {
            // Without the milliseconds, which vary.
            let (head, outcome) = l.split_once(" ms: ").unwrap();
            let head = head.rsplit_once(' ').unwrap().0;
            format!("{head}: {outcome}")
        })
        .collect();
    assert_eq!(
        lines,
        [
            "  attempt   1 local: ok",
            "  attempt   2 judge local: ok, scored 0.20 (below the threshold 0.60)",
            "  attempt   3 local: ok",
            "  attempt   4 judge local: ok, scored 0.85 (passed)",
        ]
    );
    let attempts = &p.status_json("plan")["attempts"];
    let judged: Vec<(bool, Option<f64>)> = attempts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["judge"] == true, a["score"].as_f64()))
        .collect();
    assert_eq!(
        judged,
        [
            (false, None),
            (true, Some(0.2)),
            (false, None),
            (true, Some(0.85))
        ]
    );
}

/// `usage.jsonl` and the trace listed a judge's calls as calls of the
/// task: the cost of judging could not be told from the task's own.
#[test]
fn the_usage_ledger_and_the_trace_mark_a_judges_calls() {
    let (_server, p) = scored_low_then_high();
    let marks = |judge: &Value, score: &Value| (*judge == true, score.as_f64());
    let expected = [
        (false, None),
        (true, Some(0.2)),
        (false, None),
        (true, Some(0.85)),
    ];
    let usage: Vec<(bool, Option<f64>)> = p
        .jsonl(".planexe/usage.jsonl")
        .iter()
        .map(|line| marks(&line["judge"], &line["score"]))
        .collect();
    assert_eq!(usage, expected);
    let text = p.read(".planexe/trace.json");
    let trace: Vec<Value> =
        serde_json::from_str(&format!("{}]", text.trim_end().trim_end_matches(','))).unwrap();
    let calls: Vec<(bool, Option<f64>)> = trace
        .iter()
        .filter(|e| e["cat"] == "llm")
        .map(|e| marks(&e["args"]["judge"], &e["args"]["score"]))
        .collect();
    assert_eq!(calls, expected);
}

#[test]
fn a_low_score_to_the_end_fails_the_task_as_judge_rejected() {
    let server = Server::start();
    server.script([
        openai_answer("Build it."),
        verdict(0.1, "no plan at all"),
        openai_answer("Still build it."),
        verdict(0.3, "barely better"),
    ]);
    let p = project(&server, "retries = 1");
    p.build().code(1).stderr_has("judge_rejected");
    assert!(!p.exists("plan.md"), "a rejected answer was written");
    let status = p.status_json("plan");
    assert_eq!(status["error"]["kind"], "judge_rejected");
    let message = status["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("0.30") && message.contains("barely better"),
        "{message}"
    );
    assert_eq!(status["error"]["recoverable"], false);
    assert_eq!(status["judge"]["passed"], false);
    let failures = p.jsonl(".planexe/failures.jsonl");
    assert_eq!(failures.last().unwrap()["error_type"], "judge_rejected");
    assert_eq!(
        failures.last().unwrap()["error_id"],
        status["error"]["error_id"]
    );
}

#[test]
fn a_warning_judge_lets_a_low_scored_answer_stand_with_a_quality_warning() {
    let server = Server::start();
    server.script([openai_answer("Build it."), verdict(0.2, "too vague")]);
    let p = project(&server, "retries = 0\nseverity = \"warn\"");
    p.build().ok();
    assert_eq!(p.read("plan.md"), "Build it.");
    let summary: Value = serde_json::from_str(&p.read(".planexe/summary.json")).unwrap();
    let warnings = summary["warnings"].to_string();
    assert!(
        warnings.contains("judge local scored the answer 0.20"),
        "{warnings}"
    );
}

/// A warning judge's re-ask failed the task (SmolLM2 on llama.cpp: the
/// improved answer ran past `max_tokens`), losing the answer it had scored
/// and would have let stand.
#[test]
fn a_warning_judge_whose_re_ask_fails_keeps_the_answer_it_scored() {
    let server = Server::start();
    server.script([
        openai_answer("Build it."),
        verdict(0.2, "too vague"),
        openai_finish("1. Dig the footings. 2. Fr", "length"),
    ]);
    let p = project(&server, "severity = \"warn\"");
    p.build()
        .code(0)
        .stderr_has("warn   plan: judge: judge local scored the answer 0.20");
    assert_eq!(p.read("plan.md"), "Build it.");
    assert_eq!(server.requests().len(), 3);
    let status = p.status_json("plan");
    assert_eq!(status["state"], "done");
    assert_eq!(status["judge"]["score"], 0.2);
    assert_eq!(status["judge"]["passed"], false);
    // The re-ask that failed is recorded as any failed call.
    let failures = p.jsonl(".planexe/failures.jsonl");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0]["kind"], "truncated");
    p.build().code(0).stderr_has("up to date");
}

#[test]
fn a_changed_judge_judges_the_current_answer_without_asking_again() {
    let server = Server::start();
    server.script([
        openai_answer("Dig."),
        verdict(0.9, "fine"),
        verdict(0.85, "still fine"),
    ]);
    let p = project(&server, "threshold = 0.5");
    p.build().ok();
    p.build().ok().ran(&[]);
    let text = p
        .read("pipeline.toml")
        .replace("threshold = 0.5", "threshold = 0.8");
    p.write("pipeline.toml", &text);
    p.run(&["build", "-n"])
        .ok()
        .stdout_has("plan: checks changed (outputs checked again)");
    p.build().ok();
    // One more call, the judge's: the task's model was not asked again.
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    let judged = requests[2].json()["messages"].to_string();
    assert!(judged.contains("Score this plan: Dig."), "{judged}");
    assert_eq!(p.read("plan.md"), "Dig.");
    let judge = &p.status_json("plan")["judge"];
    assert_eq!(judge["threshold"], 0.8);
    assert_eq!(judge["score"], 0.85);
    assert_eq!(judge["passed"], true);
    p.build().ok().ran(&[]);
}

/// A changed judge that could not score the current answer (its model
/// down) had the task's model asked again, a paid call for an answer the
/// judge could not score either: the task fails with the judge's failure,
/// its answer in place, and asks nothing of its own model.
#[test]
fn a_changed_judge_that_cannot_score_fails_the_task_without_asking_its_model() {
    let answers = Server::start();
    answers.default_reply(openai_answer("Dig, frame, roof."));
    let judges = Server::start();
    judges.script([verdict(0.9, "fine")]);
    judges.default_reply(json(
        401,
        serde_json::json!({"error": {"message": "bad key"}}),
    ));
    let p = judged_by_j(&answers, &judges);
    p.build().ok();
    p.write(
        "pipeline.toml",
        &p.read("pipeline.toml").replace(
            "Score {{ output }}\"\n",
            "Score {{ output }}\"\nthreshold = 0.8\n",
        ),
    );
    p.run(&["build", "-n"])
        .ok()
        .stdout_has("t: checks changed (outputs checked again)");
    p.build()
        .code(1)
        .stderr_has("FAILED t: judge j could not score: auth: HTTP 401");
    assert_eq!(
        answers.requests().len(),
        1,
        "the task's model was asked again"
    );
    assert_eq!(p.read("t.md"), "Dig, frame, roof.");
    let status = p.status_json("t");
    assert_eq!(status["state"], "failed");
    assert_eq!(status["error"]["kind"], "auth");
    assert_eq!(status["error"]["judge"], true);
    let failures = p.jsonl(".planexe/failures.jsonl");
    assert_eq!(
        failures.last().unwrap()["error_id"],
        status["error"]["error_id"]
    );
    assert!(!p.exists(".planexe/tasks/t.DONE"));
    // With the judge's model back, the next build scores the answer.
    judges.default_reply(verdict(0.9, "fine"));
    p.build().ok();
    assert_eq!(p.read("t.md"), "Dig, frame, roof.");
}

/// A project judged by `j`, built (one answer, one verdict), then its
/// judge changed and its server taken down: the build's re-check could not
/// score the answer and failed the task, its answer kept. The server held
/// down is returned.
fn rechecked_while_the_judge_was_down(answers: &Server) -> (Project, RefusedPort) {
    answers.default_reply(openai_answer("Dig, frame, roof."));
    let judges = Server::start();
    judges.default_reply(verdict(0.9, "fine"));
    let p = judged_by_j(answers, &judges);
    p.build().ok();
    p.write(
        "pipeline.toml",
        &p.read("pipeline.toml").replace(
            "Score {{ output }}\"\n",
            "Score {{ output }}\"\nthreshold = 0.8\n",
        ),
    );
    let down = judges.take_down();
    p.build()
        .code(1)
        .stderr_has("FAILED t: judge j could not score:");
    assert_eq!(p.status_json("t")["state"], "failed");
    assert_eq!(answers.requests().len(), 1);
    (p, down)
}

/// A re-check whose judge could not score (its model down) failed the
/// task, its answer kept: once the judge's model was back, the next build
/// asked the task's model for a new answer, a paid call, instead of
/// scoring the one kept. It scores it: one judge call, and none of the
/// task's model, as `build -n` and `explain` say beforehand.
#[test]
fn a_recheck_its_judge_could_not_make_is_made_again_once_the_judge_is_back() {
    let answers = Server::start();
    let (p, down) = rechecked_while_the_judge_was_down(&answers);
    let judges = Server::on(down.listen());
    judges.default_reply(verdict(0.85, "fine"));
    let said = "t: failed last time: judge j could not score: ";
    p.run(&["build", "-n"])
        .ok()
        .stdout_has(said)
        .stdout_has("(outputs checked again)");
    p.run(&["explain", "t"])
        .ok()
        .stdout_has("(outputs checked again)");
    p.build().ok();
    assert_eq!(judges.requests().len(), 1, "one judge call");
    assert_eq!(
        answers.requests().len(),
        1,
        "the task's model was asked again"
    );
    assert_eq!(p.read("t.md"), "Dig, frame, roof.");
    let status = p.status_json("t");
    assert_eq!(status["state"], "done");
    assert_eq!(status["judge"]["score"], 0.85);
    assert!(status.get("rechecked").is_none(), "{status}");
    assert!(p.exists(".planexe/tasks/t.DONE"));
    p.build().ok().ran(&[]);
    assert_eq!(judges.requests().len(), 1);
}

/// A re-check stopped (Ctrl-C) while its judge scored the answer kept:
/// the next build asked the task's model for a new answer. It scores the
/// one kept again.
#[test]
fn a_recheck_stopped_while_its_judge_scored_is_made_again() {
    let answers = Server::start();
    answers.default_reply(openai_answer("Dig, frame, roof."));
    let judges = Server::start();
    judges.script([
        verdict(0.9, "fine"),
        delayed(verdict(0.9, "fine"), std::time::Duration::from_secs(30)),
    ]);
    judges.default_reply(verdict(0.85, "fine"));
    let p = judged_by_j(&answers, &judges);
    p.build().ok();
    p.write(
        "pipeline.toml",
        &p.read("pipeline.toml").replace(
            "Score {{ output }}\"\n",
            "Score {{ output }}\"\nthreshold = 0.8\n",
        ),
    );
    let child = p
        .command(&["build"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the re-check's judge call", || judges.requests().len() == 2);
    // SAFETY: sending a signal to the child we spawned.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    assert_eq!(p.status_json("t")["state"], "stopped");
    p.run(&["build", "-n"])
        .ok()
        .stdout_has("t: stopped last time (outputs checked again)");
    p.build().ok();
    assert_eq!(
        answers.requests().len(),
        1,
        "the task's model was asked again"
    );
    assert_eq!(judges.requests().len(), 3);
    assert_eq!(p.read("t.md"), "Dig, frame, roof.");
    assert_eq!(p.status_json("t")["judge"]["score"], 0.85);
}

/// The answer a re-check could not score, changed on disk since: the
/// task runs in full, as it would after any failure.
#[test]
fn a_recheck_that_could_not_score_is_not_made_again_on_outputs_changed_since() {
    let answers = Server::start();
    let (p, down) = rechecked_while_the_judge_was_down(&answers);
    let judges = Server::on(down.listen());
    judges.default_reply(verdict(0.85, "fine"));
    p.write("t.md", "Roof first.");
    let dry = p.run(&["build", "-n"]).ok().stdout.clone();
    assert!(
        dry.contains("t: failed last time: judge j could not score: "),
        "{dry}"
    );
    assert!(!dry.contains("outputs checked again"), "{dry}");
    p.build().ok();
    assert_eq!(answers.requests().len(), 2, "the task ran");
    assert_eq!(p.read("t.md"), "Dig, frame, roof.");
    assert_eq!(judges.requests().len(), 1);
}

#[test]
fn a_changed_judge_that_fails_the_current_answer_asks_the_model_again() {
    let server = Server::start();
    server.script([
        openai_answer("Dig."),
        verdict(0.6, "thin"),
        verdict(0.6, "thin"),
        openai_answer("1. Dig. 2. Frame."),
        verdict(0.9, "steps"),
    ]);
    let p = project(&server, "threshold = 0.5");
    p.build().ok();
    let text = p
        .read("pipeline.toml")
        .replace("threshold = 0.5", "threshold = 0.8");
    p.write("pipeline.toml", &text);
    p.build().ok();
    assert_eq!(server.requests().len(), 5);
    assert_eq!(p.read("plan.md"), "1. Dig. 2. Frame.");
    assert_eq!(p.status_json("plan")["judge"]["score"], 0.9);
}

#[test]
fn a_judge_that_makes_no_sense_is_refused_where_it_is_written() {
    let server = Server::start();
    for (judge, message) in [
        (
            "model = \"nope\"",
            "unknown model `nope` for the judge of `plan`",
        ),
        ("threshold = 1.5", "`threshold` must be between 0 and 1"),
        ("severity = \"loud\"", "unknown severity `loud`"),
    ] {
        let p = project(&server, judge);
        p.build()
            .code(2)
            .stderr_has("pipeline.toml:")
            .stderr_has(message);
    }
    // A command's judge asks [pipeline] model, or the one it names.
    let p = Project::new(
        "[tasks.c]\noutputs = [\"c\"]\ncommand = \"echo > c\"\n[tasks.c.judge]\nprompt = \"x\"\n",
    );
    p.build()
        .code(2)
        .stderr_has("pipeline.toml:4:1")
        .stderr_has("the judge of command task `c` has no model")
        .stderr_has("hint: set `model = \"NAME\"` in the judge's table");
    // A judge's prompt sees `output`, `outputs`, `inputs` and `task`.
    let p = project(&server, "");
    let text = p
        .read("pipeline.toml")
        .replace("{{ output }}", "{{ outputs['nope.md'] }} {{ outcome }}");
    p.write("pipeline.toml", &text);
    p.build().code(2).stderr_has("judge prompt of task `plan`");
}

/// A task whose model `m` (on `answers`) works and whose judge `j` (on
/// `judges`) is a model of its own.
fn judged_by_j(answers: &Server, judges: &Server) -> Project {
    judged_by_j_with(answers, judges, "")
}

/// [`judged_by_j`], with more keys of the judge.
fn judged_by_j_with(answers: &Server, judges: &Server, keys: &str) -> Project {
    Project::new(&format!(
        "[pipeline]\nmodel = \"m\"\n\
         [models.m]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"m\"\nstream = false\n\
         [models.j]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"j\"\nstream = false\n\
         [tasks.t]\noutputs = [\"t.md\"]\nprompt = \"Plan it\"\n\
         [tasks.t.judge]\nprompt = \"Score {{{{ output }}}}\"\nmodel = \"j\"\n{keys}\n",
        answers.url, judges.url
    ))
}

/// A judge's model's `fallback` was never asked (a build even wanted its
/// API key): a judge whose model fails for good is scored by the next
/// model of that model's chain, which the verdict names; when every one
/// fails, the message names each.
#[test]
fn a_judges_model_falls_back_as_a_tasks_does() {
    let answers = Server::start();
    answers.default_reply(openai_answer("Dig, frame, roof."));
    let judges = Server::start();
    judges.default_reply(json(
        401,
        serde_json::json!({"error": {"message": "bad key"}}),
    ));
    let backup = Server::start();
    backup.default_reply(verdict(0.9, "fine"));
    let pipeline = |p: &Project| {
        p.write(
            "pipeline.toml",
            &p.read("pipeline.toml").replace(
                "model = \"j\"\nstream = false\n",
                &format!(
                    "model = \"j\"\nstream = false\nfallback = [\"k\"]\n\
                     [models.k]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"k\"\nstream = false\n",
                    backup.url
                ),
            ),
        );
    };
    let p = judged_by_j(&answers, &judges);
    pipeline(&p);
    p.build().ok();
    assert_eq!(p.read("t.md"), "Dig, frame, roof.");
    let status = p.status_json("t");
    assert_eq!(status["judge"]["model"], "k");
    assert_eq!(status["judge"]["passed"], true);
    assert_eq!(answers.requests().len(), 1);
    assert_eq!(judges.requests().len(), 1);
    assert_eq!(backup.requests().len(), 1);
    let failures = p.jsonl(".planexe/failures.jsonl");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0]["model"], "j");
    assert_eq!(failures[0]["judge"], true);

    // Every model of the judge's chain fails: each is named.
    backup.default_reply(json(403, serde_json::json!({"error": {"message": "no"}})));
    let p = judged_by_j(&answers, &judges);
    pipeline(&p);
    p.build()
        .code(1)
        .stderr_has("FAILED t: judge j could not score: all models failed: j: auth: HTTP 401")
        .stderr_has("; k: auth: HTTP 403");
    let status = p.status_json("t");
    assert_eq!(status["model"], "k");
    assert_eq!(status["error"]["judge"], true);
    assert_eq!(
        p.jsonl(".planexe/failures.jsonl").last().unwrap()["error_id"],
        status["error"]["error_id"]
    );
}

#[test]
fn a_judge_that_fails_is_blamed_not_the_task_model() {
    for (reply, kind, says) in [
        (
            json(401, serde_json::json!({"error": {"message": "bad key"}})),
            "auth",
            "judge j could not score: auth: HTTP 401",
        ),
        (
            json(500, serde_json::json!({"error": {"message": "boom"}})),
            "server_error",
            "judge j could not score: server_error: HTTP 500",
        ),
    ] {
        let answers = Server::start();
        answers.default_reply(openai_answer("Dig, frame, roof."));
        let judges = Server::start();
        judges.default_reply(reply);
        let p = judged_by_j(&answers, &judges);
        let run = p.build();
        run.code(1).stderr_has(says);
        assert!(!run.stderr.contains("m: "), "{}", run.stderr);
        let status = p.status_json("t");
        let message = status["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(says), "{message}");
        assert_eq!(status["error"]["kind"], kind);
        // `model` is the model asked last: the judge.
        assert_eq!(status["model"], "j");
        let attempts = status["attempts"].as_array().unwrap();
        assert_eq!(attempts[0]["model"], "m");
        assert_eq!(attempts.last().unwrap()["model"], "j");
        let failures = p.jsonl(".planexe/failures.jsonl");
        assert!(failures.iter().all(|f| f["model"] == "j"), "{failures:?}");
        assert_eq!(
            failures.last().unwrap()["error_id"],
            status["error"]["error_id"]
        );
        assert!(!p.exists("t.md"));
    }
}

#[test]
fn a_warning_judge_that_cannot_score_lets_the_answer_stand_with_a_warning() {
    for (judged, says) in [
        (
            vec![json(500, serde_json::json!({"error": {"message": "boom"}}))],
            "judge j could not score: server_error: HTTP 500",
        ),
        (
            vec![json(
                401,
                serde_json::json!({"error": {"message": "bad key"}}),
            )],
            "judge j could not score: auth: HTTP 401",
        ),
        // Answers it cannot use, every time it is asked.
        (
            vec![openai_answer("I like it a lot.")],
            "judge j could not score: invalid_json",
        ),
        // A low score, the task's model asked again, then no score for
        // the new answer: the new answer stands, with no verdict.
        (
            vec![
                verdict(0.2, "too vague"),
                json(401, serde_json::json!({"error": {"message": "bad key"}})),
            ],
            "judge j could not score: auth: HTTP 401",
        ),
    ] {
        let answers = Server::start();
        answers.default_reply(openai_answer("Dig, frame, roof."));
        let judges = Server::start();
        let rounds = judged.len();
        judges.script(judged[..rounds - 1].to_vec());
        judges.default_reply(judged[rounds - 1].clone());
        let p = judged_by_j_with(&answers, &judges, "severity = \"warn\"");
        let run = p.build();
        run.code(0).stderr_has(&format!("warn   t: judge: {says}"));
        assert_eq!(p.read("t.md"), "Dig, frame, roof.");
        assert_eq!(answers.requests().len(), rounds);
        let status = p.status_json("t");
        assert_eq!(status["state"], "done");
        assert_eq!(status["error"], Value::Null);
        // The answer written is the task model's, and unscored.
        assert_eq!(status["model"], "m");
        assert_eq!(status["judge"], Value::Null);
        let check = &status["checks"][0];
        assert_eq!(check["name"], "judge");
        assert_eq!(check["passed"], false);
        assert_eq!(check["severity"], "warn");
        assert!(
            check["message"].as_str().unwrap().starts_with(says),
            "{check}"
        );
        let summary: Value = serde_json::from_str(&p.read(".planexe/summary.json")).unwrap();
        assert!(
            summary["warnings"][0]
                .as_str()
                .unwrap()
                .starts_with(&format!("t: judge: {says}")),
            "{summary}"
        );
        let shown = p.run(&["status"]).stdout;
        assert!(shown.contains("WARNINGS"), "{shown}");
        assert!(shown.contains(says), "{shown}");
        let events = p.jsonl(".planexe/events.jsonl");
        let warned: Vec<&Value> = events
            .iter()
            .filter(|e| e["event"] == "task.check_failed")
            .collect();
        assert_eq!(warned.len(), 1, "{events:?}");
        assert_eq!(warned[0]["severity"], "warn");
        assert!(warned[0]["error_summary"]
            .as_str()
            .unwrap()
            .starts_with(&format!("judge: {says}")));
        // Its judge's failed calls are in failures.jsonl as any call's.
        let failures = p.jsonl(".planexe/failures.jsonl");
        assert!(!failures.is_empty());
        assert!(failures.iter().all(|f| f["model"] == "j"), "{failures:?}");
        // Done: the next build has nothing to do.
        p.build().code(0).stderr_has("up to date");
    }
}

#[test]
fn a_warning_judge_still_scoring_when_the_task_times_out_lets_the_answer_stand() {
    let answers = Server::start();
    answers.default_reply(openai_answer("Dig, frame, roof."));
    let judges = Server::start();
    judges.default_reply(Reply::Hang);
    let p = judged_by_j_with(&answers, &judges, "severity = \"warn\"");
    p.write(
        "pipeline.toml",
        &p.read("pipeline.toml").replace(
            "prompt = \"Plan it\"",
            "prompt = \"Plan it\"\ntimeout = \"1s\"",
        ),
    );
    p.build()
        .code(0)
        .stderr_has("warn   t: judge: judge j could not score: timeout");
    assert_eq!(p.read("t.md"), "Dig, frame, roof.");
    assert_eq!(p.status_json("t")["checks"][0]["severity"], "warn");
}

/// The hint for a judge's runaway told the user to bound the schema and
/// lower `max_tokens`, the task's own, when the judge's schema and answer
/// length are planexe's: the hint of a judge's failure now speaks of the
/// judge and its model, in `status`, `status --json`, the task's record
/// and the build's hint, as `failures.jsonl` marks the line the judge's.
#[test]
fn a_judges_failure_is_remedied_in_the_judges_terms() {
    let answers = Server::start();
    answers.default_reply(openai_answer("Dig, frame, roof."));
    let judges = Server::start();
    judges.default_reply(Reply::Trickle {
        every: std::time::Duration::from_millis(20),
    });
    let p = judged_by_j(&answers, &judges);
    // The judge's model streams, samples at temperature 0 (a runaway is
    // not asked again) and times out after a second.
    p.write(
        "pipeline.toml",
        &p.read("pipeline.toml").replace(
            "model = \"j\"\nstream = false\n",
            "model = \"j\"\nstream = true\ntemperature = 0\ntimeout = \"1s\"\n",
        ),
    );
    p.build()
        .code(1)
        .stderr_has("judge j could not score: runaway");
    let status = p.status_json("t");
    assert_eq!(status["error"]["kind"], "runaway");
    assert_eq!(status["error"]["judge"], true);
    let failures = p.jsonl(".planexe/failures.jsonl");
    assert_eq!(failures.last().unwrap()["judge"], true);
    let judge_hint = "a judge's schema and max_tokens are planexe's: raise the timeout of the \
                      judge's model (or the task's timeout, whichever expired), or judge with \
                      another model (`model` in the judge's table)";
    p.run(&["status"])
        .ok()
        .stdout_has(&format!("hint: {judge_hint}"));
    let listed: Value =
        serde_json::from_str(&p.run(&["status", "--json"]).ok().stdout.clone()).unwrap();
    assert_eq!(listed["tasks"][0]["hint"], judge_hint);
    assert_eq!(listed["tasks"][0]["error_judge"], true);
    // The task's own runaway keeps the task's advice.
    let answers = Server::start();
    answers.default_reply(Reply::Trickle {
        every: std::time::Duration::from_millis(20),
    });
    let p = judged_by_j(&answers, &judges);
    p.write(
        "pipeline.toml",
        &p.read("pipeline.toml").replace(
            "model = \"m\"\nstream = false\n",
            "model = \"m\"\nstream = true\ntemperature = 0\ntimeout = \"1s\"\n",
        ),
    );
    p.build().code(1).stderr_has("m: runaway");
    assert_eq!(p.status_json("t")["error"].get("judge"), None);
    p.run(&["status"])
        .ok()
        .stdout_has("hint: lower max_tokens, or raise the model's timeout");
    // A command's judge that cannot score: the build's hint is the judge's.
    let judges = Server::start();
    judges.default_reply(json(
        401,
        serde_json::json!({"error": {"message": "bad key"}}),
    ));
    let p = Project::new(&format!(
        "[models.j]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"j\"\nstream = false\n\
         [tasks.c]\noutputs = [\"c.md\"]\ncommand = \"echo hi > c.md\"\n\
         [tasks.c.judge]\nprompt = \"Score {{{{ output }}}}\"\nmodel = \"j\"\n",
        judges.url
    ));
    p.build().code(1).stderr_has(
        "hint: check the API key and base_url of the judge's model (`model` in the judge's table)",
    );
}

/// An answer its judge rejected was kept only in `.planexe/raw/`, while
/// what a failed command wrote, or an answer its checks refused, goes to
/// `.planexe/failed/TASK/`: the rejected answer now goes there too, under
/// its output's name, the last good answer stays in place, and the
/// build says where it is.
#[test]
fn an_answer_its_judge_rejected_is_kept_in_failed_and_the_good_one_stays() {
    let server = Server::start();
    server.script([
        openai_answer("Dig, frame, roof."),
        verdict(0.9, "clear"),
        openai_answer("Build it."),
        verdict(0.1, "no plan at all"),
        openai_answer("Still build it."),
        verdict(0.3, "barely better"),
    ]);
    let p = project(&server, "retries = 1");
    p.build().ok();
    p.write("idea.txt", "a barn, with a loft");
    p.build()
        .code(1)
        .stderr_has("judge_rejected")
        .stderr_has(
            "what it wrote is kept in .planexe/failed/plan/plan.md; the outputs of its last \
             good run are back in place",
        )
        .stderr_has("hint: the refused answer of plan is kept in .planexe/failed/plan,");
    assert_eq!(p.read(".planexe/failed/plan/plan.md"), "Still build it.");
    assert_eq!(p.read("plan.md"), "Dig, frame, roof.");
    assert_eq!(p.status_json("plan")["error"]["kind"], "judge_rejected");
}

/// A judge's answer cut off at its token limit is not the user's to
/// raise (planexe sets a judge's `max_tokens`): the message says what is
/// theirs, the judge's prompt or model; the task's own cut-off keeps its
/// advice.
#[test]
fn a_judges_cut_off_answer_does_not_ask_to_raise_max_tokens() {
    let answers = Server::start();
    answers.default_reply(openai_answer("Dig, frame, roof."));
    let judges = Server::start();
    judges.default_reply(openai_finish(
        "{\"score\": 0.9, \"reason\": \"Goo",
        "length",
    ));
    let p = judged_by_j(&answers, &judges);
    p.build()
        .code(1)
        .stderr_has("judge j could not score: truncated");
    let error = &p.status_json("t")["error"];
    assert_eq!(error["judge"], true);
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("ask the judge for a shorter reason"),
        "{message}"
    );
    assert!(!message.contains("raise max_tokens"), "{message}");
    let answers = Server::start();
    answers.default_reply(openai_finish("Dig, frame, and then the", "length"));
    let p = judged_by_j(&answers, &judges);
    p.build().code(1).stderr_has("raise max_tokens");
}
