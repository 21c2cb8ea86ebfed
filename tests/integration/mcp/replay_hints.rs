//! Hints about recorded answers in the tools' terms: a replay model
//! without an answer, a new run whose prompt tasks or judges ask a replay
//! model, told as a client can act on them (the build tool's `model`),
//! while the command line keeps its own words.

use serde_json::json;

use super::hints::with_model;
use super::Client;
use crate::harness::*;

/// A replay miss's message, which `status` (its `error`, a task's `error`
/// and `reason`) and `explain` give as they are, told a client to run
/// `planexe build --record DIR`: the message now says what and where, and
/// the hint what a client can do (the build tool's `model`) and what is
/// the operator's (recording), while the command line keeps its own words.
#[test]
fn a_replay_miss_is_told_in_the_tools_terms() {
    let p = Project::new(&format!(
        r#"{}
[models.recorded]
provider = "replay"
dir = "answers"
replays = "local"
"#,
        with_model().replace("model = \"local\"\nprompt", "model = \"recorded\"\nprompt")
    ));
    p.write("answers/.keep", "");
    let mut c = Client::start(&p, &[]);
    c.ok("run_create", json!({"plan": "a shed", "name": "r"}));
    c.ok("build", json!({"run": "r"}));
    let status = c.ok("wait", json!({"run": "r"}));
    let error = &status["error"];
    assert_eq!(error["kind"], "replay_miss", "{status}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("no recorded answer for task `ask`"),
        "{message}"
    );
    assert!(message.contains("answers"), "{message}");
    assert_eq!(
        error["hint"],
        "no answer to this request is recorded: call the build tool with `model` naming a live \
         model of the pipeline (the replay model's `replays`) to ask it instead, or have the \
         server's operator record answers with a live model (`planexe build --record DIR` on \
         the command line)"
    );
    let ask = &status["tasks"][1];
    assert_eq!(ask["task"], "ask", "{status}");
    // Its `error` says why: a reason would only repeat it.
    assert!(ask.get("reason").is_none(), "{ask}");
    let explained = c.ok("explain", json!({"run": "r", "task": "ask"}));
    for told in [
        error["message"].clone(),
        ask["error"].clone(),
        explained["last_error"]["message"].clone(),
        explained["reason"].clone(),
    ] {
        let told = told.as_str().unwrap().to_string();
        assert!(told.contains("no recorded answer"), "{told}");
        assert!(!told.contains("planexe build"), "{told}");
        assert!(!told.contains("--record"), "{told}");
    }
    // The end of the build, in .planexe/build.log: the live model it
    // replays, through the build tool.
    let log = c.ok(
        "read_output",
        json!({"run": "r", "path": ".planexe/build.log"}),
    );
    let log = log["text"].as_str().unwrap();
    assert!(
        log.contains(
            "ask has no recorded answer for its request to model recorded; call the build tool \
             with `model` naming `local`, the live model it replays"
        ),
        "{log}"
    );
    assert!(!log.contains("planexe build --model"), "{log}");
    assert!(c.close().success());
    // The command line's words, with the `-C` it was given: the hint the
    // build recorded, and the end of a build.
    p.run(&["status", "-C", "r"]).stdout_has(
        "hint: ask the live model it replays: planexe build -C r --model local (add --record ",
    );
    p.run(&["build", "-C", "r"]).code(1).stderr_has(
        "hint: ask has no recorded answer for its request to model recorded; ask the live \
         model it replays: planexe build -C r --model local (add --record ",
    );
}

/// `planexe new` says when the new run's prompt tasks ask a replay model,
/// whose answers were recorded for another plan; `run_create` said
/// nothing, and a client learnt it at its first build's replay miss. It
/// now warns, in the tools' terms, and what it says to do builds the run.
#[test]
fn a_new_runs_replay_model_is_told_in_the_tools_terms() {
    use crate::llm_server::*;
    let server = Server::start();
    server.default_reply(openai_answer("Step 1: dig."));
    let p = Project::new(&format!(
        r#"
[pipeline]
model = "recorded"

[models.local]
provider = "openai"
base_url = "{}/v1"
model = "test-model"
stream = false

[models.recorded]
provider = "replay"
dir = "answers"
replays = "local"

[tasks.ask]
inputs = ["plan.txt"]
outputs = ["answer.md"]
prompt = "Plan: {{{{ inputs['plan.txt'] }}}}"
"#,
        server.url
    ));
    p.write("answers/.keep", "");
    let mut c = Client::start(&p, &[]);
    let created = c.ok("run_create", json!({"plan": "a shed", "name": "r"}));
    assert_eq!(
        created["warnings"],
        json!([
            "model `recorded` answers prompts only from answers recorded for another plan; to \
             ask the live model it replays, call the build tool with `model` naming `local` \
             (the run remembers it for later builds)"
        ])
    );
    c.ok("build", json!({"run": "r", "model": "local"}));
    let status = c.ok("wait", json!({"run": "r"}));
    assert_eq!(status["state"], "completed", "{status}");
    assert_eq!(p.read("r/answer.md"), "Step 1: dig.");
    assert!(c.close().success());
    // The command line's words are its own.
    p.run(&["new", "runs/two", "--plan", "a barn"])
        .ok()
        .stderr_has(
            "model `recorded` answers prompts only from answers recorded for another \
             plan; to ask the live model it replays: planexe build -C runs/two --model local",
        );
}

/// A pipeline whose task `ask` asks the replay model `recorded` (or has
/// its judge ask it, with `judged`), and reads no `plan.txt`.
fn replaying(judged: bool) -> String {
    let (task_model, judge) = if judged {
        (
            "local",
            "[tasks.ask.judge]\nprompt = \"Score {{ output }}\"\nmodel = \"recorded\"\n",
        )
    } else {
        ("recorded", "")
    };
    format!(
        r#"
[models.local]
provider = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "m"

[models.recorded]
provider = "replay"
dir = "answers"
replays = "local"

[tasks.ask]
outputs = ["answer.md"]
model = "{task_model}"
prompt = "Plan a shed"
{judge}"#
    )
}

/// `run_create` for a run an earlier call made (its idempotent return)
/// warned of nothing, while the call that made it had warned: a client
/// that retried (its first answer lost) never learnt of the replay model.
#[test]
fn run_create_found_made_warns_as_the_call_that_made_it() {
    let p = Project::new(&replaying(false));
    p.write("answers/.keep", "");
    let mut c = Client::start(&p, &[]);
    let made = c.ok("run_create", json!({"plan": "a shed", "name": "r"}));
    assert_eq!(made["created"], true);
    let warnings = made["warnings"].as_array().unwrap().clone();
    assert_eq!(warnings.len(), 2, "{made}");
    assert!(
        warnings[0].as_str().unwrap().starts_with("no task of "),
        "{made}"
    );
    assert!(
        warnings[1]
            .as_str()
            .unwrap()
            .starts_with("model `recorded` answers prompts only from answers recorded"),
        "{made}"
    );
    for again in [
        json!({"plan": "a shed", "name": "r"}),
        json!({"plan": "a shed"}),
    ] {
        let found = c.ok("run_create", again);
        assert_eq!(found["created"], false, "{found}");
        assert_eq!(found["run"], "r", "{found}");
        assert_eq!(found["warnings"], made["warnings"], "{found}");
    }
    assert!(c.close().success());
}

/// The replay note looked only at the models of prompt tasks: a judge
/// that asks a replay model (its answers recorded for another plan, so
/// the first build misses them) went unmentioned. A judge that names its
/// model asks it whatever model a build asks, so the note says to change
/// the judge's.
#[test]
fn a_judge_on_a_replay_model_is_told_too() {
    let p = Project::new(&replaying(true));
    p.write("answers/.keep", "");
    let note = "model `recorded` answers prompts only from answers recorded for another plan; \
                the judge of `ask` names it, whatever model a build asks: to have it ask the \
                live model it replays, set the judge's `model` to `local`";
    let mut c = Client::start(&p, &[]);
    let made = c.ok("run_create", json!({"plan": "a shed", "name": "r"}));
    let warnings = made["warnings"].as_array().unwrap();
    assert_eq!(warnings.last().unwrap(), note, "{made}");
    assert!(c.close().success());
    p.run(&["new", "runs/two", "--plan", "a barn"])
        .ok()
        .stderr_has(note);
}
