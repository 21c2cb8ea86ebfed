//! Fallback chains (`fallback = [...]`) with judges and recorded answers:
//! what a task that fails keeps, what its record and messages say about
//! which model did what.

use crate::harness::*;
use crate::llm_server::*;

fn verdict(score: f64, reason: &str) -> Reply {
    openai_answer(&serde_json::json!({"score": score, "reason": reason}).to_string())
}

/// A task whose model `a` falls back to `b`, judged by `j` (no re-asks).
fn chain(a: &Server, b: &Server, j: &Server) -> Project {
    let model = |name: &str, server: &Server, more: &str| {
        format!(
            "[models.{name}]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"{name}\"\nstream = false\n{more}",
            server.url
        )
    };
    Project::new(&format!(
        "[pipeline]\nmodel = \"a\"\n{}{}{}\
         [tasks.plan]\noutputs = [\"plan.md\"]\nprompt = \"Plan a shed\"\n\
         [tasks.plan.judge]\nprompt = \"Score {{{{ output }}}}\"\nmodel = \"j\"\nretries = 0\n",
        model("a", a, "fallback = [\"b\"]\n"),
        model("b", b, ""),
        model("j", j, ""),
    ))
}

/// A refused answer of `a`, then `b` refusing the key: what is kept.
fn refused_then_down() -> (Server, Server, Server, Project) {
    let (a, b, j) = (Server::start(), Server::start(), Server::start());
    a.default_reply(openai_answer("Buy a shed."));
    b.default_reply(json(
        401,
        serde_json::json!({"error": {"message": "bad key"}}),
    ));
    j.default_reply(verdict(0.1, "no plan at all"));
    let p = chain(&a, &b, &j);
    (a, b, j, p)
}

/// The answer model `a`'s judge refused was kept in
/// `.planexe/failed/plan/` when the fallback model `b` then failed for
/// another reason, but nothing said it was `a`'s: the message listed the
/// judge's verdict with no model (`all models failed: judge_rejected: ...;
/// b: auth: ...`), the task's `model` is `b`, and the build's hint spoke
/// of failed calls only. Each model's failure now names its model, the
/// message says whose answer is kept, and the hint where.
#[test]
fn a_refused_answer_kept_after_the_fallback_failed_says_whose_it_is() {
    let (_a, _b, _j, p) = refused_then_down();
    p.run(&["build", "--record", "answers"])
        .code(1)
        .stderr_has("all models failed: a: judge_rejected: judge j scored the answer 0.10")
        .stderr_has("; b: auth: HTTP 401")
        .stderr_has("what it wrote is kept in .planexe/failed/plan/plan.md")
        .stderr_has("hint: the refused answer of plan is kept in .planexe/failed/plan,");
    assert_eq!(p.read(".planexe/failed/plan/plan.md"), "Buy a shed.");
    let status = p.status_json("plan");
    assert_eq!(status["model"], "b");
    assert_eq!(status["error"]["kind"], "auth");
    assert_eq!(status["judge"]["score"], 0.1);
    let message = status["error"]["message"].as_str().unwrap();
    assert!(
        message.ends_with(
            "; the answer kept is the last one its judge refused: model a's (judge j scored it 0.10)"
        ),
        "{message}"
    );
    // A single model's refusal reads as it always did: no model named.
    let (a, j) = (Server::start(), Server::start());
    a.default_reply(openai_answer("Buy a shed."));
    j.default_reply(verdict(0.1, "no plan at all"));
    let p = chain(&a, &a, &j);
    p.write(
        "pipeline.toml",
        &p.read("pipeline.toml").replace("fallback = [\"b\"]\n", ""),
    );
    p.build()
        .code(1)
        .stderr_has("FAILED plan: judge_rejected: judge j scored the answer 0.10");
    let message = p.status_json("plan")["error"]["message"].clone();
    assert!(
        !message.as_str().unwrap().contains("answer kept"),
        "{message}"
    );
}

/// The end of a `--replay` build whose task missed said `plan has no
/// recorded answer for its request` when model `a`'s recorded answer was
/// there (its judge, replayed too, refused it) and only the fallback
/// `b`'s was missing; it now names whose requests missed.
#[test]
fn a_replay_miss_in_a_chain_names_the_models_whose_requests_missed() {
    let (_a, _b, _j, p) = refused_then_down();
    p.run(&["build", "--record", "answers"]).code(1);
    p.run(&["build", "--replay", "answers"])
        .code(1)
        .stderr_has("all models failed: a: judge_rejected: judge j scored the answer 0.10")
        .stderr_has("; b: replay_miss: no recorded answer for task `plan`")
        .stderr_has("hint: plan has no recorded answer for its request to model b; record it");
    let attempts = p.status_json("plan")["attempts"].clone();
    assert_eq!(attempts[2]["model"], "b", "{attempts}");
    assert_eq!(attempts[2]["outcome"], "replay_miss", "{attempts}");
    // Nothing recorded: every model of the chain missed.
    p.write("empty/.keep", "");
    p.run(&["build", "--replay", "empty"])
        .code(1)
        .stderr_has("hint: plan has no recorded answer for its requests to model a, model b;");
}

/// A chain whose first model failed in a way that may clear (HTTP 500,
/// retried) and whose fallback failed for good (HTTP 401) was `not
/// recoverable`, with only the fallback's hint (`check the API key...`):
/// but the next build asks the first model again, which may answer. It is
/// recoverable, and the hint says to build again before the change.
#[test]
fn a_chain_whose_first_model_may_recover_is_recoverable() {
    let (bad, fb) = (Server::start(), Server::start());
    bad.default_reply(json(500, serde_json::json!({"error": {"message": "boom"}})));
    fb.default_reply(json(
        401,
        serde_json::json!({"error": {"message": "bad key"}}),
    ));
    let model = |name: &str, server: &Server, more: &str| {
        format!(
            "[models.{name}]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"{name}\"\nstream = false\n{more}",
            server.url
        )
    };
    let p = Project::new(&format!(
        "[pipeline]\nmodel = \"bad\"\n{}{}\
         [tasks.plan]\noutputs = [\"plan.md\"]\nprompt = \"Plan a shed\"\n",
        model("bad", &bad, "fallback = [\"fb\"]\n"),
        model("fb", &fb, ""),
    ));
    let run = p.build();
    run.code(1)
        .stderr_has("all models failed: bad: server_error")
        .stderr_has("; fb: auth: HTTP 401")
        .stderr_has("hint: run planexe build again; an earlier model of the task's chain failed in a way that may clear")
        .stderr_has("; if it fails again: check the API key");
    let status = p.status_json("plan");
    assert_eq!(status["error"]["kind"], "auth", "{status}");
    assert_eq!(status["error"]["recoverable"], true, "{status}");
    let doc: serde_json::Value =
        serde_json::from_str(&p.run(&["status", "--json"]).stdout).unwrap();
    let line = &doc["tasks"][0];
    assert_eq!(line["recoverable"], true, "{line}");
    let hint = line["hint"].as_str().unwrap_or_default();
    let again = hint.find("run planexe build again").expect(hint);
    let change = hint.find("check the API key").expect(hint);
    assert!(again < change, "build again first: {hint}");
    let text = p.run(&["status"]).stdout;
    assert!(text.contains(", recoverable"), "{text}");
    assert!(!text.contains("not recoverable"), "{text}");
    let event = p
        .jsonl(".planexe/events.jsonl")
        .into_iter()
        .find(|e| e["event"] == "task.failed")
        .unwrap();
    assert_eq!(event["recoverable"], true, "{event}");
    // Each call's line in failures.jsonl says its own call's.
    let failures = p.jsonl(".planexe/failures.jsonl");
    let last = failures.last().unwrap();
    assert_eq!(
        (&last["model"], &last["recoverable"]),
        (&"fb".into(), &false.into())
    );
}

/// A judge that scored leaves the task's model the one that answered:
/// its record, `status` and `task.completed` name it, not the judge.
#[test]
fn a_judge_that_scored_leaves_the_task_the_model_that_answered() {
    let (a, b, j) = (Server::start(), Server::start(), Server::start());
    a.default_reply(openai_answer("Dig, frame, roof."));
    j.default_reply(verdict(0.9, "fine"));
    let p = chain(&a, &b, &j);
    p.run(&["build"]).ok();
    assert_eq!(p.status_json("plan")["model"], "a");
    assert_eq!(p.status_json("plan")["judge"]["model"], "j");
    let completed = p
        .jsonl(".planexe/events.jsonl")
        .into_iter()
        .find(|e| e["event"] == "task.completed")
        .unwrap();
    assert_eq!(completed["model"], "a", "{completed}");
}
/// `task.started` names the model a prompt task asks first, as
/// `task.completed` names the one that answered; a command's names none.
#[test]
fn a_prompt_tasks_start_event_names_the_model_it_asks_first() {
    let (a, b, j) = (Server::start(), Server::start(), Server::start());
    a.default_reply(json(500, serde_json::json!({"error": {"message": "down"}})));
    b.default_reply(openai_answer("Dig, frame, roof."));
    j.default_reply(verdict(0.9, "fine"));
    let p = chain(&a, &b, &j);
    p.write(
        "pipeline.toml",
        &format!(
            "{}[tasks.copy]\ninputs = [\"plan.md\"]\noutputs = [\"copy.md\"]\ncommand = \"cp plan.md copy.md\"\n",
            p.read("pipeline.toml")
        ),
    );
    p.run(&["build"]).ok();
    let events = p.jsonl(".planexe/events.jsonl");
    let model = |name: &str, task: &str| {
        events
            .iter()
            .find(|e| e["event"] == name && e["task"] == task)
            .map(|e| e["model"].clone())
            .unwrap()
    };
    assert_eq!(model("task.started", "plan"), "a");
    assert_eq!(model("task.completed", "plan"), "b");
    assert_eq!(model("task.started", "copy"), serde_json::Value::Null);
}
