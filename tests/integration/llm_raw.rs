//! `.planexe/raw/TASK.json` keeps what came back of a task's last call,
//! also when the call failed part way (docs/llm.md, "Answers"): a stream's
//! events before it stalled, closed, outgrew its bound or ran past its
//! timeout (the model's or the task's own), a body shorter than its
//! `Content-Length`. A call that got
//! nothing back leaves the file alone, and the build's hint then points
//! at no earlier call's response as if it were this one's.

use std::time::Duration;

use crate::harness::*;
use crate::llm_server::*;

const TASK: &str = "[tasks.a]\noutputs = [\"a.txt\"]\nprompt = \"Say it\"\n";

fn project(server: &Server, extra: &str) -> Project {
    Project::new(&format!(
        "[pipeline]\nmodel = \"local\"\n\n[models.local]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"m\"\n{extra}\n{TASK}",
        server.url
    ))
}

/// Builds (the build fails), and checks that the raw file holds what came
/// of the last call, `came`, says it failed as `kind`, and that the hint
/// points at it.
#[track_caller]
fn kept(p: &Project, kind: &str, came: &str) -> serde_json::Value {
    let build = p.run_bounded(&["build"]);
    build
        .code(1)
        .stderr_has(&format!("{kind}:"))
        .stderr_has("the last response in .planexe/raw/a.json");
    assert!(p.exists(".planexe/raw/a.json"), "{}", build.stderr);
    let text = p.read(".planexe/raw/a.json");
    assert!(text.contains(came), "{came} not in {text}");
    let raw: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(
        raw["failed"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{kind}: ")),
        "{raw}"
    );
    let attempts = p.status_json("a")["attempts"].clone();
    assert!(
        attempts
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a.get("no_response").is_none()),
        "{attempts}"
    );
    raw
}

#[test]
fn a_stream_that_stalls_after_a_piece_keeps_what_came() {
    let server = Server::start();
    server.default_reply(openai_stream(&["first piece"], None, StreamEnd::Stall));
    let p = project(&server, "idle_timeout = \"300ms\"");
    let raw = kept(&p, "stall", "first piece");
    assert_eq!(raw["response"]["stream"], true);
}

#[test]
fn a_stream_closed_after_two_pieces_keeps_them() {
    let server = Server::start();
    server.default_reply(openai_stream(&["one ", "two"], None, StreamEnd::Close));
    let p = project(&server, "");
    let raw = kept(&p, "broken_stream", "two");
    assert_eq!(raw["response"]["events"].as_array().unwrap().len(), 2);
}

#[test]
fn an_endless_stream_past_max_answer_bytes_keeps_its_first_events() {
    let server = Server::start();
    server.default_reply(Reply::EndlessStream { piece: 1000 });
    let p = project(&server, "max_answer_bytes = \"8 KiB\"");
    kept(&p, "too_large", "xxxxxxxxxx");
}

#[test]
fn a_slow_endless_stream_past_the_timeout_keeps_its_events() {
    let server = Server::start();
    server.default_reply(Reply::Trickle {
        every: Duration::from_millis(50),
    });
    let p = project(&server, "timeout = \"1s\"\ntemperature = 0");
    kept(&p, "runaway", "1.1, ");
}

/// The task's own `timeout` cuts a stream mid-answer: what came is kept
/// as any other cut keeps it (it was not: the attempt said nothing came
/// back, and the hint said no response of it was kept).
#[test]
fn a_stream_the_tasks_timeout_cuts_keeps_what_came() {
    for (reply, kind, says, came) in [
        (
            Reply::Trickle {
                every: Duration::from_millis(50),
            },
            "runaway",
            "when the task's timeout (1s) expired",
            "1.1, ",
        ),
        // A stream begun, silent since: what came is that it began.
        (
            openai_stream(&[], None, StreamEnd::Stall),
            "timeout",
            "timeout after 1s, while the model was answering (0 piece(s) received)",
            "\"events\": []",
        ),
    ] {
        let server = Server::start();
        server.default_reply(reply);
        let p = Project::new(&format!(
            "[pipeline]\nmodel = \"local\"\n\n[models.local]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"m\"\ntemperature = 0\n\n{TASK}timeout = \"1s\"\n",
            server.url
        ));
        let build = p.run_bounded(&["build"]);
        build
            .code(1)
            .stderr_has(says)
            .stderr_has("the last response in .planexe/raw/a.json");
        let text = p.read(".planexe/raw/a.json");
        assert!(text.contains(came), "{came} not in {text}");
        let raw: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(raw["response"]["stream"], true, "{raw}");
        assert!(
            raw["failed"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{kind}: ")),
            "{raw}"
        );
        let attempts = p.status_json("a")["attempts"].clone();
        assert!(attempts[0].get("no_response").is_none(), "{attempts}");
    }
}

#[test]
fn a_body_shorter_than_its_content_length_is_kept() {
    let server = Server::start();
    server.default_reply(Reply::CutBody);
    let p = project(&server, "stream = false");
    let raw = kept(&p, "broken_stream", "{\\\"choices\\\":[{\\\"mess");
    assert_eq!(raw["response"]["status"], 200);
}

#[test]
fn a_call_that_got_nothing_back_points_at_no_earlier_response() {
    let server = Server::start();
    server.script([openai_answer("the first answer")]);
    server.default_reply(Reply::Hang);
    let p = project(&server, "stream = false\ntimeout = \"300ms\"");
    p.build().ok();
    assert!(p.read(".planexe/raw/a.json").contains("the first answer"));
    let build = p.run_bounded(&["build", "-B", "a"]);
    build
        .code(1)
        .stderr_has("timeout:")
        .stderr_has("no response of its last call is kept");
    assert!(
        !build.stderr.contains("the last response in"),
        "{}",
        build.stderr
    );
    // The earlier response stays, as docs/llm.md says; the attempt says
    // it is not this call's.
    assert!(p.read(".planexe/raw/a.json").contains("the first answer"));
    let attempts = p.status_json("a")["attempts"].clone();
    assert_eq!(
        attempts.as_array().unwrap().last().unwrap()["no_response"],
        true
    );
}
