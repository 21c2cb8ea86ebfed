//! How an answer ends decides whether it is taken (docs/llm.md, "How an
//! answer ends"): one a content filter stopped or the model refused is
//! `refused` (permanent: the fallback model is asked), one that ended
//! without the model finishing (`abort`) is a `server_error`, and a
//! completion a server spells its own way is still taken. A whole
//! response that names no reason is finished (a stream that ends without
//! one is not: it may have been cut).

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

/// An OpenAI answer without a `choices[0].finish_reason` (absent or `null`).
fn unnamed(text: &str, finish: Option<()>, completion_tokens: u64) -> Reply {
    let mut choice =
        serde_json::json!({"index": 0, "message": {"role": "assistant", "content": text}});
    if finish.is_some() {
        choice["finish_reason"] = serde_json::Value::Null;
    }
    json(
        200,
        serde_json::json!({
            "choices": [choice],
            "usage": {"prompt_tokens": 3, "completion_tokens": completion_tokens}
        }),
    )
}

/// Several servers and proxies leave `finish_reason` out of a whole
/// answer, or send `null`: the body came whole, so the answer is taken,
/// still judged as any answer is (JSON, schema), and the raw file says
/// how its end was read. Its token count reaching `max_tokens` makes it
/// cut, as `length` would have.
#[test]
fn a_whole_answer_without_a_finish_reason_is_taken_and_judged() {
    for finish in [None, Some(())] {
        let server = Server::start();
        server.default_reply(unnamed("all of it", finish, 3));
        let p = project(&server, "openai", false, "");
        p.build().ok();
        assert_eq!(p.read("a.txt"), "all of it");
        assert_eq!(server.requests().len(), 1);
        let raw: serde_json::Value = serde_json::from_str(&p.read(".planexe/raw/a.json")).unwrap();
        assert_eq!(
            raw["note"],
            "the response names no `choices[0].finish_reason`; a whole response is taken as finished"
        );
    }

    // JSON is still looked for and checked: not JSON is re-asked.
    let server = Server::start();
    server.script([
        unnamed("no json here", None, 3),
        unnamed("{\"a\": 1}", None, 5),
    ]);
    let p = Project::new(&format!(
        "[pipeline]\nmodel = \"local\"\n\n[models.local]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"m\"\nstream = false\n\n[tasks.a]\noutputs = [\"a.json\"]\nprompt = \"Say it\"\nformat = \"json\"\n",
        server.url
    ));
    p.build().ok();
    assert_eq!(p.read("a.json"), "{\n  \"a\": 1\n}\n");
    let failures = p.jsonl(".planexe/failures.jsonl");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0]["error_type"], "invalid_json");

    // As long as the limit sent: cut there, never taken.
    let server = Server::start();
    server.default_reply(unnamed("half of i", None, 4));
    let p = project(&server, "openai", false, "max_tokens = 4");
    p.build()
        .code(1)
        .stderr_has("truncated: the answer was cut off at the token limit (4 tokens)");
    assert!(!p.exists("a.txt"));
    assert!(p
        .read(".planexe/raw/a.json")
        .contains("reached max_tokens (4): taken as cut at the token limit"));
}
