//! How an answer ends decides whether it is taken (docs/llm.md, "How an
//! answer ends"): one a content filter stopped or the model refused is
//! `refused` (permanent: the fallback model is asked), one that ended
//! without the model finishing (`abort`) is a `server_error`, and a
//! completion a server spells its own way is still taken.

use crate::harness::*;
use crate::llm_server::*;

const TASK: &str = "[tasks.a]\noutputs = [\"a.txt\"]\nprompt = \"Say it\"\n";

const CUT: &str = "This answer was cut by the fil";

fn project(server: &Server, provider: &str, stream: bool, extra: &str) -> Project {
    Project::new(&format!(
        "[pipeline]\nmodel = \"local\"\n\n[models.local]\nprovider = \"{provider}\"\nbase_url = \"{}/v1\"\nmodel = \"m\"\nstream = {stream}\n{extra}\n{TASK}",
        server.url
    ))
}

fn anthropic_stopped(text: &str, stop: &str) -> Reply {
    json(
        200,
        serde_json::json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "m",
            "content": [{"type": "text", "text": text}],
            "stop_reason": stop,
            "usage": {"input_tokens": 13, "output_tokens": 4}
        }),
    )
}

/// Builds and checks that the answer was refused, not written.
#[track_caller]
fn refused(p: &Project, server: &Server, field: &str, reason: &str) {
    let build = p.build();
    build
        .code(1)
        .stderr_has(&format!(
            "refused: the server ended the answer with {field} `{reason}` (a content filter or the model's refusal)"
        ));
    assert!(!build.stderr.contains("done a"), "{}", build.stderr);
    assert!(!p.exists("a.txt"), "a refused answer is never a result");
    let failures = p.jsonl(".planexe/failures.jsonl");
    assert_eq!(failures.len(), 1, "permanent: asked once {failures:?}");
    assert_eq!(failures[0]["error_type"], "refused");
    assert_eq!(failures[0]["recoverable"], false);
    assert_eq!(failures[0]["raw_error"], CUT);
    assert_eq!(p.status_json("a")["error"]["kind"], "refused");
    assert_eq!(server.requests().len(), 1);
    // What came is kept for a look, as every response is.
    assert!(p.read(".planexe/raw/a.json").contains(reason));
}

#[test]
fn an_answer_stopped_by_a_content_filter_is_refused_streamed_or_not() {
    let server = Server::start();
    server.default_reply(openai_finish(CUT, "content_filter"));
    refused(
        &project(&server, "openai", false, ""),
        &server,
        "finish_reason",
        "content_filter",
    );

    let server = Server::start();
    server.default_reply(openai_stream(
        &["This answer ", "was cut by the fil"],
        Some("content_filter"),
        StreamEnd::Close,
    ));
    refused(
        &project(&server, "openai", true, ""),
        &server,
        "finish_reason",
        "content_filter",
    );
}

#[test]
fn an_anthropic_refusal_is_refused_streamed_or_not() {
    let server = Server::start();
    server.default_reply(anthropic_stopped(CUT, "refusal"));
    refused(
        &project(&server, "anthropic", false, ""),
        &server,
        "stop_reason",
        "refusal",
    );

    let server = Server::start();
    server.default_reply(anthropic_stream(
        &["This answer ", "was cut by the fil"],
        "refusal",
    ));
    refused(
        &project(&server, "anthropic", true, ""),
        &server,
        "stop_reason",
        "refusal",
    );
}

#[test]
fn a_refused_answer_goes_to_the_fallback_model() {
    let server = Server::start();
    server.script([openai_finish(CUT, "content_filter"), openai_answer("fine")]);
    let p = Project::new(&format!(
        "[pipeline]\nmodel = \"local\"\n\n[models.local]\nprovider = \"openai\"\nbase_url = \"{0}/v1\"\nmodel = \"m\"\nstream = false\nfallback = [\"other\"]\n\n[models.other]\nprovider = \"openai\"\nbase_url = \"{0}/v1\"\nmodel = \"o\"\nstream = false\n\n{TASK}",
        server.url
    ));
    p.build().ok();
    assert_eq!(p.read("a.txt"), "fine");
    let asked: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.json()["model"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(asked, ["m", "o"]);
}

#[test]
fn an_aborted_answer_is_a_server_error_and_an_unusual_end_is_taken() {
    let server = Server::start();
    server.default_reply(openai_finish("half an ans", "abort"));
    let p = project(&server, "openai", false, "");
    p.build().code(1).stderr_has(
        "server_error: the server ended the answer with finish_reason `abort` (which does not say the model finished)",
    );
    assert!(!p.exists("a.txt"));
    let failures = p.jsonl(".planexe/failures.jsonl");
    assert_eq!(failures.len(), 5, "retried as a server error");
    assert_eq!(failures[0]["raw_error"], "half an ans");

    for (reason, stream) in [("end_of_turn", true), ("eos", false), ("stop", true)] {
        let server = Server::start();
        server.default_reply(if stream {
            openai_stream(&["all ", "of it"], Some(reason), StreamEnd::Close)
        } else {
            openai_finish("all of it", reason)
        });
        let p = project(&server, "openai", stream, "");
        p.build().ok();
        assert_eq!(p.read("a.txt"), "all of it", "{reason}");
    }
}
