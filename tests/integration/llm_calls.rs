//! Model calls as real local servers make them: runaway generations, the
//! tokens of calls that failed, a server that is not there or does not know
//! the model, a running task's call in `status` (or its place in the queue
//! for the model's `max_concurrency`), and the warning about schemas that
//! constrained decoding may never end.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::harness::*;
use crate::llm_server::*;

fn model(server: &Server, name: &str, extra: &str) -> String {
    format!(
        "[models.{name}]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"{name}-model\"\n{extra}\n",
        server.url
    )
}

fn project(models: &str, tasks: &str) -> Project {
    Project::new(&format!(
        "[pipeline]\nmodel = \"local\"\n\n{models}\n{tasks}"
    ))
}

const ASK: &str = "[tasks.ask]\noutputs = [\"a.md\"]\nprompt = \"Plan it\"\n";

fn trickle() -> Reply {
    Reply::Trickle {
        every: Duration::from_millis(20),
    }
}

#[test]
fn a_runaway_generation_at_temperature_zero_is_asked_once() {
    let server = Server::start();
    server.default_reply(trickle());
    let p = project(
        &model(&server, "local", "timeout = \"1s\"\ntemperature = 0"),
        ASK,
    );
    p.build().code(1).stderr_has("runaway");
    assert_eq!(
        server.requests().len(),
        1,
        "a runaway is no transient error"
    );
    let failures = p.jsonl(".planexe/failures.jsonl");
    assert_eq!(failures.len(), 1);
    let message = failures[0]["message"].as_str().unwrap();
    assert!(message.contains("still generating"), "{message}");
    assert!(message.contains("token(s) in"), "{message}");
    // As docs/llm.md quotes it: the wait for the first piece said apart.
    assert!(message.contains(", the first after "), "{message}");
    assert!(
        message.contains("/s) and no end; lower max_tokens, or raise the model's timeout"),
        "{message}"
    );
    let error = &p.status_json("ask")["error"];
    assert_eq!(error["kind"], "runaway");
    assert_eq!(error["recoverable"], false);
}

/// A generation still going at the timeout but short of its max_tokens
/// would have ended there: on a slow local model that is a timeout too
/// short, not a schema to bound, and the message says which.
#[test]
fn a_generation_too_slow_for_its_max_tokens_says_so() {
    let server = Server::start();
    server.default_reply(trickle());
    let p = project(
        &model(
            &server,
            "local",
            "timeout = \"1s\"\ntemperature = 0\nmax_tokens = 100000",
        ),
        ASK,
    );
    p.build().code(1).stderr_has("runaway");
    let message = p.status_json("ask")["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("at that rate its max_tokens (100000) takes ")
            && message
                .contains(": slow, not endless; raise the model's timeout or lower max_tokens"),
        "{message}"
    );
    assert!(!message.contains("maxItems"), "{message}");
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn a_runaway_generation_that_samples_is_asked_again_once_then_the_fallback() {
    let server = Server::start();
    server.script([trickle(), trickle(), openai_answer("done")]);
    let p = project(
        &format!(
            "{}{}",
            model(
                &server,
                "local",
                "timeout = \"1s\"\ntemperature = 0.7\nfallback = [\"spare\"]"
            ),
            model(&server, "spare", "stream = false")
        ),
        ASK,
    );
    p.build().ok();
    let models: Vec<Value> = server
        .requests()
        .iter()
        .map(|r| r.json()["model"].clone())
        .collect();
    assert_eq!(models, ["local-model", "local-model", "spare-model"]);
    let kinds: Vec<Value> = p
        .jsonl(".planexe/failures.jsonl")
        .iter()
        .map(|f| f["error_type"].clone())
        .collect();
    assert_eq!(kinds, ["runaway", "runaway"]);
    assert_eq!(p.read("a.md"), "done");
}

#[test]
fn a_timeout_before_the_first_byte_stays_a_transient_timeout() {
    let server = Server::start();
    server.script([Reply::Hang, openai_answer("late but fine")]);
    let p = project(&model(&server, "local", "timeout = \"1s\""), ASK);
    p.build().ok();
    let failures = p.jsonl(".planexe/failures.jsonl");
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["error_type"], "timeout");
    assert_eq!(failures[0]["recoverable"], true);
}

#[test]
fn the_tokens_of_failed_calls_are_counted_and_said_to_be_estimated() {
    let server = Server::start();
    server.default_reply(trickle());
    let p = project(
        &model(
            &server,
            "local",
            "timeout = \"1s\"\ntemperature = 0\ninput_cost_per_mtok = 1000\noutput_cost_per_mtok = 2000",
        ),
        ASK,
    );
    p.build().code(1);
    let usage = p.jsonl(".planexe/usage.jsonl");
    assert_eq!(usage.len(), 1);
    let call = &usage[0];
    assert_eq!(call["status"], "error");
    assert_eq!(call["tokens_estimated"], true);
    let completion = call["completion_tokens"].as_u64().unwrap();
    assert!(completion > 5, "the streamed pieces count: {call}");
    assert!(call["prompt_tokens"].as_u64().unwrap() > 0, "{call}");
    assert!(call["cost_usd"].as_f64().unwrap() > 0.0, "{call}");
    let usage = &p.status_json("ask")["usage"];
    assert_eq!(usage["completion_tokens"].as_u64(), Some(completion));
    assert_eq!(usage["tokens_estimated"], true);
    let status: Value =
        serde_json::from_str(&p.run(&["status", "--json"]).ok().stdout.clone()).unwrap();
    assert_eq!(
        status["totals"]["completion_tokens"].as_u64(),
        Some(completion)
    );
    assert_eq!(status["totals"]["tokens_estimated"], true);
    let summary: Value = serde_json::from_str(&p.read(".planexe/summary.json")).unwrap();
    assert_eq!(summary["tokens_estimated"], true, "{summary}");
    assert_eq!(summary["tasks"][0]["tokens_estimated"], true, "{summary}");
    p.run(&["status"]).ok().stdout_has("estimated");
}

/// A model without prices: its calls' cost is unknown, not free. Usage
/// sums say `unpriced`, `status` says `cost unknown (calls without prices)`, a task
/// whose calls had no prices has `cost_usd: null` in `summary.json` (as in
/// `usage.jsonl`); with a priced model beside it, the priced part is summed
/// and `status` says some calls had none.
#[test]
fn calls_of_a_model_without_prices_cost_what_is_unknown_not_nothing() {
    let server = Server::start();
    server.default_reply(openai_answer("fine"));
    let models = format!(
        "{}{}",
        model(&server, "local", "stream = false"),
        model(
            &server,
            "paid",
            "stream = false\ninput_cost_per_mtok = 1000\noutput_cost_per_mtok = 2000"
        )
    );
    let p = project(&models, ASK);
    p.build().ok();
    assert_eq!(p.jsonl(".planexe/usage.jsonl")[0]["cost_usd"], Value::Null);
    assert_eq!(p.status_json("ask")["usage"]["unpriced"], true);
    let status: Value =
        serde_json::from_str(&p.run(&["status", "--json"]).ok().stdout.clone()).unwrap();
    assert_eq!(status["totals"]["unpriced"], true, "{status}");
    assert_eq!(status["totals"]["cost_usd"], 0.0);
    let summary: Value = serde_json::from_str(&p.read(".planexe/summary.json")).unwrap();
    assert_eq!(summary["tasks"][0]["cost_usd"], Value::Null, "{summary}");
    p.run(&["status"])
        .ok()
        .stdout_has("18 tokens (11 in, 7 out), cost unknown (calls without prices), ");
    // A priced task beside it: its cost is summed, and said to be partial.
    p.write(
        "pipeline.toml",
        &format!(
            "[pipeline]\nmodel = \"local\"\n\n{models}\n{ASK}[tasks.paid]\noutputs = [\"p.md\"]\nprompt = \"Pay\"\nmodel = \"paid\"\n"
        ),
    );
    p.build().ok().ran(&["paid"]);
    assert!(p.status_json("paid")["usage"].get("unpriced").is_none());
    let summary: Value = serde_json::from_str(&p.read(".planexe/summary.json")).unwrap();
    let paid = summary["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task"] == "paid")
        .unwrap();
    assert_eq!(paid["cost_usd"], 0.025, "{summary}");
    p.run(&["status"])
        .ok()
        .stdout_has("36 tokens (22 in, 14 out), $0.0250 and calls without prices, ");
}

#[test]
fn tokens_a_stream_reported_before_it_broke_are_kept() {
    let server = Server::start();
    // Anthropic says the prompt's size first; this stream then breaks.
    server.default_reply(Reply::Sse {
        events: vec![
            (
                Some("message_start".into()),
                r#"{"type":"message_start","message":{"usage":{"input_tokens":321,"output_tokens":1}}}"#.into(),
            ),
            (
                Some("content_block_delta".into()),
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Step"}}"#.into(),
            ),
        ],
        end: StreamEnd::Close,
    });
    let p = Project::new(&format!(
        "[pipeline]\nmodel = \"local\"\n[models.local]\nprovider = \"anthropic\"\nbase_url = \"{}/v1\"\nmodel = \"m\"\n{ASK}",
        server.url
    ));
    p.build().code(1);
    let usage = p.jsonl(".planexe/usage.jsonl");
    assert_eq!(usage.len(), 5, "a broken stream is transient");
    for call in usage {
        // The prompt's size as the server said; the answer's from the one
        // piece that came, estimated.
        assert_eq!(call["prompt_tokens"], 321, "{call}");
        assert_eq!(call["completion_tokens"], 1, "{call}");
        assert_eq!(call["tokens_estimated"], true, "{call}");
    }
}

#[test]
fn a_server_that_is_not_there_is_named_with_what_to_check() {
    let refused = RefusedPort::new();
    let port = refused.port;
    let p = Project::new(&format!(
        "[pipeline]\nmodel = \"local\"\n[models.local]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:{port}/v1\"\nmodel = \"m\"\n{ASK}"
    ));
    let run = p.build();
    run.code(1)
        .stderr_has(&format!(
            "is the server running at http://127.0.0.1:{port}/v1?"
        ))
        .stderr_has("llama-server");
    let usage = p.jsonl(".planexe/usage.jsonl");
    assert_eq!(usage.len(), 5);
    // A refused connection costs nothing: no tokens, not even estimated.
    assert_eq!(usage[0]["prompt_tokens"], Value::Null);
    assert_eq!(usage[0]["tokens_estimated"], false);
}

/// A call the server never answered leaves the last response it gave
/// in `.planexe/raw/`, and the build's hint does not send the user there.
#[test]
fn a_call_never_answered_keeps_the_last_response_and_says_so() {
    let server = Server::start();
    server.default_reply(openai_answer("the first plan"));
    let p = project(&model(&server, "local", "stream = false"), ASK);
    p.build().code(0);
    let kept = p.read(".planexe/raw/ask.json");
    assert!(kept.contains("the first plan"), "{kept}");

    let refused = RefusedPort::new();
    let port = refused.port;
    p.write(
        "pipeline.toml",
        &format!(
            "[pipeline]\nmodel = \"local\"\n[models.local]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:{port}/v1\"\nmodel = \"m\"\n{ASK}"
        ),
    );
    let run = p.run(&["build", "-B"]);
    run.code(1)
        .stderr_has("every failed call of ask is in .planexe/failures.jsonl; the server never answered its last");
    assert!(
        !run.stderr.contains("the last response in"),
        "{}",
        run.stderr
    );
    assert_eq!(
        p.read(".planexe/raw/ask.json"),
        kept,
        "no response, nothing replaced"
    );
    let failures = p.jsonl(".planexe/failures.jsonl");
    assert_eq!(failures.len(), 5);
    assert!(
        failures.iter().all(|f| f["raw_error"].is_null()),
        "{failures:?}"
    );
    assert_eq!(
        p.read("a.md"),
        "the first plan",
        "the earlier answer is kept"
    );
    // The next build's first line names what failed, not the advice.
    let again = p.run(&["build", "-n"]);
    again.stderr_has(&format!(
        "1 failed (ask: local: connection: cannot reach the server (http://127.0.0.1:{port}/v1/chat/completions): Connection refused"
    ));
    assert!(!again.stderr.contains("Start it"), "{}", again.stderr);
}

/// A server that reads the request and closes the connection without a
/// word is running: the message says it closed the connection, and what
/// to look into, not "is the server running".
#[test]
fn a_connection_closed_before_the_answer_is_not_taken_for_a_missing_server() {
    let server = Server::start();
    server.default_reply(Reply::Cut);
    let p = project(&model(&server, "local", "stream = false"), ASK);
    let run = p.build();
    run.code(1)
        .stderr_has("connection: the server closed the connection before answering")
        .stderr_has("it is running, but it may have crashed on the request (see the server's log), or a proxy between may have cut it");
    assert!(
        !run.stderr.contains("is the server running"),
        "{}",
        run.stderr
    );
    assert_eq!(server.requests().len(), 5, "still retried as transient");
}

/// A request that outlasts the model's `timeout` says which setting to
/// raise, in which table; a command's timeout (the task's own) does not.
#[test]
fn a_request_timeout_names_the_models_timeout_setting() {
    let server = Server::start();
    server.default_reply(Reply::Hang);
    let p = project(
        &model(&server, "local", "stream = false\ntimeout = \"1s\""),
        ASK,
    );
    p.build()
        .code(1)
        .stderr_has("timeout: no complete answer within 1s (5 attempts)")
        .stderr_has(
            "; if the model needs longer, raise its timeout: timeout = \"2s\" under [models.local]",
        );
    let p =
        Project::new("[tasks.slow]\noutputs = [\"o\"]\ncommand = \"sleep 5\"\ntimeout = \"1s\"\n");
    let run = p.build();
    run.code(1);
    assert!(!run.stderr.contains("[models."), "{}", run.stderr);
}

#[test]
fn a_timeout_that_comes_while_waiting_to_retry_names_what_was_retried() {
    let refused = RefusedPort::new();
    let port = refused.port;
    // Refused, refused, ...: the task's timeout runs out during a pause
    // between attempts, not during a call.
    let p = Project::new(&format!(
        "[pipeline]\nmodel = \"local\"\n[models.local]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:{port}/v1\"\nmodel = \"m\"\n{ASK}timeout = \"1s\"\n"
    ));
    // Pauses of 5 s between attempts (the suite's are milliseconds).
    let output = p
        .command(&["build"])
        .env("PLANEXE_RETRY_BASE_MS", "5000")
        .env("PLANEXE_RETRY_CAP_MS", "5000")
        .output()
        .unwrap();
    let run = Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    run.code(1)
        .stderr_has(
            "timeout after 1s while waiting to retry after connection: cannot reach the server",
        )
        .stderr_has(&format!(
            "is the server running at http://127.0.0.1:{port}/v1?"
        ));
    let status = p.status_json("ask");
    assert_eq!(status["error"]["kind"], "timeout", "{status}");
}

#[test]
fn a_model_the_server_does_not_know_is_named_with_what_it_lists() {
    let server = Server::start();
    server.script([
        json(
            404,
            serde_json::json!({"error": {"message": "model not found"}}),
        ),
        json(
            200,
            serde_json::json!({"object": "list", "data": [{"id": "smollm2"}, {"id": "qwen3-4b"}]}),
        ),
    ]);
    let p = project(&model(&server, "local", "stream = false"), ASK);
    p.build()
        .code(1)
        .stderr_has("does not know the model `local-model`; it lists: smollm2, qwen3-4b");
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].path, "/v1/models");
}

/// A 404 from a server whose `/models` lists the model said it `does not
/// know the model 'smollm2'; it lists: smollm2, other`: the message
/// contradicted itself. Listed, the model is there, and the endpoint (or
/// the provider) is the likelier fault; an answer of HTTP 200 reporting
/// `not_found` says the model is listed yet not served.
#[test]
fn a_404_for_a_model_the_server_lists_blames_the_endpoint_not_the_model() {
    let listing = || {
        json(
            200,
            serde_json::json!({"data": [{"id": "local-model"}, {"id": "other"}]}),
        )
    };
    let server = Server::start();
    server.script([
        json(
            404,
            serde_json::json!({"error": {"message": "no such route"}}),
        ),
        listing(),
    ]);
    let p = project(&model(&server, "local", "stream = false"), ASK);
    let run = p.build();
    run.code(1).stderr_has(&format!(
        "; the server at {0}/v1 lists the model `local-model` (GET {0}/v1/models), but {0}/v1/chat/completions answered HTTP 404: the base_url's path, or the provider (\"openai\"), is the likelier fault",
        server.url
    ));
    assert!(!run.stderr.contains("does not know"), "{}", run.stderr);

    let server = Server::start();
    server.script([
        json(
            200,
            serde_json::json!({"error": {"type": "not_found", "message": "model 'local-model' not found"}}),
        ),
        listing(),
    ]);
    let p = project(&model(&server, "local", "stream = false"), ASK);
    let run = p.build();
    run.code(1).stderr_has(
        "lists the model `local-model` (GET ",
    ).stderr_has("but its answer says it was not found: it may not be loaded, or be served under another name");
    assert!(!run.stderr.contains("does not know"), "{}", run.stderr);
}

/// A base_url without `/v1` (Ollama's and LM Studio's APIs are under it)
/// found a 404 for every path, and planexe said only that the server does
/// not know the model. With nothing listed either, it now says what to
/// try; with `/v1`, or a listing, it says no more than before.
#[test]
fn a_404_from_a_base_url_without_v1_suggests_it() {
    let server = Server::start();
    server.default_reply(Reply::Bytes {
        status: 404,
        content_type: "text/plain".into(),
        body: b"404 page not found".to_vec(),
    });
    let models = format!(
        "[models.local]\nprovider = \"openai\"\nbase_url = \"{}\"\nmodel = \"local-model\"\nstream = false\n",
        server.url
    );
    let p = project(&models, ASK);
    p.build().code(1).stderr_has(&format!(
        "not_found: HTTP 404: 404 page not found; the server at {0} does not know the model `local-model`, or has no API there: OpenAI-compatible and Anthropic APIs answer under /v1 (base_url = \"{0}/v1\")",
        server.url
    ));
    let p = project(&model(&server, "local", "stream = false"), ASK);
    let run = p.build();
    run.code(1)
        .stderr_has("does not know the model `local-model` (error_id");
}

/// A call started late in a task's run has its request timeout cut to
/// what is left of the task's; the task's deadline still ends it, and says
/// so. Before, the request's own (cut) timeout raced the deadline and
/// usually won: `the request timeout (1s 996ms 411us 212ns) expired`, a
/// timeout the user never set, then a third attempt with nothing left
/// (`no complete answer within 0s`).
#[test]
fn a_call_cut_short_by_the_tasks_timeout_says_it_was_the_tasks() {
    let server = Server::start();
    server.script([
        json(500, serde_json::json!({"error": {"message": "busy"}})),
        trickle(),
    ]);
    let p = project(
        &model(&server, "local", "timeout = \"60s\""),
        "[tasks.ask]\noutputs = [\"a.md\"]\nprompt = \"Plan it\"\ntimeout = \"2s\"\n",
    );
    p.build().code(1).stderr_has(
        "FAILED ask: the model was still generating when the task's timeout (2s) expired",
    );
    let failures = p.jsonl(".planexe/failures.jsonl");
    let attempts: Vec<u64> = failures
        .iter()
        .filter_map(|f| f["attempt"].as_u64())
        .collect();
    assert_eq!(attempts, [1, 2], "{failures:?}");
    assert_eq!(server.requests().len(), 2);
}

/// A runaway the task's own timeout ended said `...or raise the task's
/// timeout`, and its hint `...or raise the model's timeout` (60s, never
/// reached). The hint names the timeout that fired.
#[test]
fn a_runaway_on_the_tasks_timeout_hints_at_the_tasks_timeout() {
    let server = Server::start();
    server.default_reply(trickle());
    let p = project(
        &model(&server, "local", "timeout = \"60s\"\ntemperature = 0"),
        "[tasks.ask]\noutputs = [\"a.md\"]\nprompt = \"Plan it\"\ntimeout = \"2s\"\n",
    );
    let run = p.build();
    run.code(1)
        .stderr_has("or raise the task's timeout (error_id")
        .stderr_has("hint: lower max_tokens, or raise the task's timeout; ");
    assert!(
        !run.stderr.contains("the model's timeout"),
        "{}",
        run.stderr
    );
    // The model's own timeout still hints at the model's.
    let server = Server::start();
    server.default_reply(trickle());
    let p = project(
        &model(&server, "local", "timeout = \"1s\"\ntemperature = 0"),
        ASK,
    );
    p.build()
        .code(1)
        .stderr_has("hint: lower max_tokens, or raise the model's timeout; ");
    // Only an answer held to a schema is told to bound it (a text answer
    // was told so too, having none).
    let server = Server::start();
    server.default_reply(trickle());
    let p = project(
        &model(&server, "local", "timeout = \"1s\"\ntemperature = 0"),
        "[tasks.ask]\noutputs = [\"a.json\"]\nprompt = \"Plan it\"\nschema = \"s.json\"\n",
    );
    p.write("s.json", r#"{"type": "object", "properties": {"steps": {"type": "array", "items": {"type": "string"}}}}"#);
    let run = p.build();
    run.code(1)
        .stderr_has("and no end; bound the schema's arrays (maxItems) and strings (maxLength), lower max_tokens, or raise the model's timeout")
        .stderr_has("hint: bound the schema (maxItems, maxLength), lower max_tokens, or raise the model's timeout; ");
}

#[test]
fn status_shows_a_running_call_as_it_is_and_a_stop_as_stopped() {
    let server = Server::start();
    server.script([
        json(500, serde_json::json!({"error": {"message": "busy"}})),
        Reply::Trickle {
            every: Duration::from_millis(50),
        },
    ]);
    let p = project(&model(&server, "local", "timeout = \"60s\""), ASK);
    let child = p
        .command(&["build"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The sidecar follows the attempts: the second call is in flight.
    wait_for("the second call", || {
        p.exists(".planexe/tasks/ask.status") && p.status_json("ask")["attempt"] == 2
    });
    let mut line = Value::Null;
    wait_for("tokens in the live status", || {
        let status: Value =
            serde_json::from_str(&p.run(&["status", "--json"]).ok().stdout.clone()).unwrap();
        line = status["tasks"][0].clone();
        line["call"]["tokens"].as_u64().unwrap_or(0) > 0
    });
    assert_eq!(line["state"], "running", "{line}");
    assert_eq!(line["attempt"], 2, "{line}");
    assert_eq!(line["call"]["model"], "local", "{line}");
    assert!(line["call"]["started_at"].is_string(), "{line}");
    assert!(line["call"]["last_token_at"].is_string(), "{line}");
    let one = p.run(&["status", "ask"]).ok().stdout.clone();
    assert!(one.starts_with("ask: running\n"), "{one}");
    assert!(one.contains("attempt 2, model local: "), "{one}");
    assert!(!one.contains("interrupted"), "{one}");
    p.run(&["status"]).ok().stdout_has("attempt 2");

    // SAFETY: sending a signal to the child we spawned.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("stopped ask"), "{stderr}");
    assert!(!stderr.contains("FAILED"), "{stderr}");
    let status = p.status_json("ask");
    assert_eq!(status["state"], "stopped");
    assert_eq!(status["error"]["kind"], "stopped");
    assert_eq!(status["error"]["recoverable"], true);
    let usage = p.jsonl(".planexe/usage.jsonl");
    assert_eq!(usage.len(), 2);
    assert_eq!(usage[1]["status"], "stopped");
    assert!(usage[1]["completion_tokens"].as_u64().unwrap() > 0);
    assert_eq!(usage[1]["tokens_estimated"], true);
    let failures = p.jsonl(".planexe/failures.jsonl");
    assert_eq!(failures.last().unwrap()["error_type"], "stopped");
    assert_eq!(
        failures.last().unwrap()["error_id"],
        status["error"]["error_id"]
    );
    // The server's 500 failed; the call the stop cut short did not.
    let run: Value =
        serde_json::from_str(&p.run(&["status", "--json"]).ok().stdout.clone()).unwrap();
    let totals = &run["totals"];
    assert_eq!(
        (
            &totals["calls"],
            &totals["failed_calls"],
            &totals["stopped_calls"]
        ),
        (&Value::from(2), &Value::from(1), &Value::from(1)),
        "{totals}"
    );
    p.run(&["status"])
        .ok()
        .stdout_has("model calls 2 (1 failed, 1 stopped), ");
}

#[test]
fn unbounded_schemas_under_constrained_decoding_are_warned_about_once_per_task() {
    let server = Server::start();
    server.default_reply(openai_answer("{\"steps\": [\"a\"]}"));
    let p = project(
        &model(&server, "local", "stream = false"),
        "[tasks.loose]\noutputs = [\"l.json\"]\nschema = \"loose.json\"\nprompt = \"x\"\n\
         [tasks.tight]\noutputs = [\"t.json\"]\nschema = \"tight.json\"\nprompt = \"x\"\n",
    );
    p.write(
        "loose.json",
        r#"{"type":"object","properties":{"steps":{"type":"array","items":{"type":"string"}}}}"#,
    );
    p.write(
        "tight.json",
        r#"{"type":"object","properties":{"steps":{"type":"array","maxItems":9,"items":{"type":"string","maxLength":80}}}}"#,
    );
    let run = p.build();
    run.ok();
    let warnings: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", run.stderr);
    assert!(warnings[0].contains("task `loose`"), "{}", warnings[0]);
    // As docs/llm.md quotes it: the schema's path relative to the run
    // directory, not absolute.
    assert!(
        warnings[0].contains(
            "task `loose`: schema loose.json has /properties/steps (array without maxItems), \
             /properties/steps/items (string without maxLength); constrained decoding may never \
             end on a small model (set maxItems and maxLength)"
        ),
        "{}",
        warnings[0]
    );
}

/// A schema whose array has `items` but no `type` went unwarned, and
/// llama.cpp's grammar reads it as an array: SmolLM2 listed `1.1.1.1`,
/// `1.1.1.2`, ... until the request timed out.
#[test]
fn an_untyped_array_in_a_schema_is_warned_about() {
    let server = Server::start();
    server.default_reply(openai_answer("{\"steps\": [\"a\"]}"));
    let p = project(
        &model(&server, "local", "stream = false"),
        "[tasks.loose]\noutputs = [\"l.json\"]\nschema = \"loose.json\"\nprompt = \"x\"\n",
    );
    p.write(
        "loose.json",
        r#"{"type":"object","properties":{"steps":{"items":{"type":"string","maxLength":30}}}}"#,
    );
    p.build().ok().stderr_has(
        "warning: task `loose`: schema loose.json has /properties/steps (array without maxItems); constrained decoding may never end",
    );
}

#[test]
fn a_seed_is_sent_to_openai_compatible_servers_and_checked() {
    let server = Server::start();
    server.default_reply(openai_answer("same every time"));
    let p = project(
        &model(
            &server,
            "local",
            "stream = false\ntemperature = 0\nseed = 42",
        ),
        ASK,
    );
    p.build().ok();
    let body = server.requests()[0].json();
    assert_eq!(body["seed"], 42);
    assert_eq!(body["temperature"], 0.0);
    let p = project(&model(&server, "local", "seed = -1"), ASK);
    p.build()
        .code(2)
        .stderr_has("pipeline.toml:")
        .stderr_has("`seed` must be 0 or more");
}

#[test]
fn a_task_sets_its_own_max_tokens_over_the_model() {
    let server = Server::start();
    server.default_reply(openai_answer("short"));
    let p = project(
        &model(&server, "local", "stream = false\nmax_tokens = 100"),
        "[tasks.ask]\noutputs = [\"a.md\"]\nprompt = \"x\"\nmax_tokens = 7\n\
         [tasks.other]\noutputs = [\"b.md\"]\nprompt = \"y\"\n",
    );
    p.run(&["build", "-j1", "ask", "other"]).ok();
    let limits: Vec<Value> = server
        .requests()
        .iter()
        .map(|r| r.json()["max_tokens"].clone())
        .collect();
    assert!(
        limits.contains(&Value::from(7)) && limits.contains(&Value::from(100)),
        "{limits:?}"
    );
    let p = project(
        &model(&server, "local", ""),
        "[tasks.ask]\noutputs = [\"a.md\"]\nprompt = \"x\"\nmax_tokens = 0\n",
    );
    p.build()
        .code(2)
        .stderr_has("`max_tokens` must be between 1 and");
}

#[test]
fn a_json_answer_cut_off_is_taken_when_complete_and_re_asked_when_not() {
    let server = Server::start();
    server.script([
        // Complete JSON, then chatter that ran into the limit: taken.
        openai_finish(
            "{\"steps\": [\"dig\"]}\n\nThis JSON object lists the st",
            "length",
        ),
        // Cut inside the value: re-asked for the JSON alone.
        openai_finish("{\"steps\": [\"dig\", \"pour", "length"),
        openai_answer("{\"steps\": [\"dig\"]}"),
    ]);
    let p = project(
        &model(&server, "local", "stream = false"),
        "[tasks.one]\noutputs = [\"one.json\"]\nformat = \"json\"\nprompt = \"x\"\n\
         [tasks.two]\ninputs = [\"one.json\"]\noutputs = [\"two.json\"]\nformat = \"json\"\nprompt = \"y\"\n",
    );
    p.build().ok();
    assert_eq!(
        p.read("one.json"),
        "{\n  \"steps\": [\n    \"dig\"\n  ]\n}\n"
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    let reask = requests[2].json();
    let feedback = reask["messages"].as_array().unwrap().last().unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(feedback.contains("cut off"), "{feedback}");
    let failures = p.jsonl(".planexe/failures.jsonl");
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["error_type"], "truncated");
    assert_eq!(failures[0]["task"], "two");
}

#[test]
fn an_anthropic_model_without_structured_output_gets_no_schema_in_its_system_text() {
    let server = Server::start();
    server.default_reply(anthropic_answer("{\"steps\": [\"dig\"]}"));
    let p = Project::new(&format!(
        "[pipeline]\nmodel = \"m\"\n[models.m]\nprovider = \"anthropic\"\nbase_url = \"{}/v1\"\nmodel = \"x\"\nstream = false\nstructured_output = \"none\"\n\
         [models.full]\nprovider = \"anthropic\"\nbase_url = \"{}/v1\"\nmodel = \"x\"\nstream = false\n\
         [tasks.a]\noutputs = [\"a.json\"]\nschema = \"s.json\"\nprompt = \"x\"\n\
         [tasks.b]\noutputs = [\"b.json\"]\nschema = \"s.json\"\nmodel = \"full\"\nprompt = \"y\"\n",
        server.url, server.url
    ));
    p.write("s.json", r#"{"type":"object","required":["steps"],"properties":{"steps":{"type":"array","maxItems":3,"items":{"type":"string","maxLength":20}}}}"#);
    p.run(&["build", "-j1"]).ok();
    let systems: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.json()["system"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        systems
            .iter()
            .any(|s| s == "Answer with one JSON value only, no prose."),
        "{systems:?}"
    );
    assert!(
        systems
            .iter()
            .any(|s| s.contains("JSON Schema") && s.contains("maxItems")),
        "{systems:?}"
    );
}

#[test]
fn an_openai_model_without_structured_output_is_told_to_answer_in_json() {
    let server = Server::start();
    server.default_reply(openai_answer("{\"steps\": [\"dig\"]}"));
    let p = Project::new(&format!(
        "[pipeline]\nmodel = \"m\"\n[models.m]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"x\"\nstream = false\nstructured_output = \"none\"\n\
         [tasks.a]\noutputs = [\"a.json\"]\nformat = \"json\"\nprompt = \"x\"\n\
         [tasks.b]\noutputs = [\"b.json\"]\nschema = \"s.json\"\nsystem = \"Be brief.\"\nprompt = \"y\"\n\
         [tasks.c]\noutputs = [\"c.md\"]\nprompt = \"z\"\n",
        server.url
    ));
    p.write("s.json", r#"{"type":"object","required":["steps"],"properties":{"steps":{"type":"array","maxItems":3,"items":{"type":"string","maxLength":20}}}}"#);
    p.run(&["build", "-j1", "a", "b", "c"]).ok();
    let bodies: Vec<serde_json::Value> = server.requests().iter().map(|r| r.json()).collect();
    assert_eq!(bodies.len(), 3);
    let system_of = |prompt: &str| {
        let body = bodies
            .iter()
            .find(|b| b["messages"].as_array().unwrap().last().unwrap()["content"] == prompt)
            .unwrap();
        assert!(body.get("response_format").is_none(), "{body}");
        let messages = body["messages"].as_array().unwrap();
        messages
            .iter()
            .find(|m| m["role"] == "system")
            .map(|m| m["content"].as_str().unwrap().to_string())
    };
    // As an Anthropic model is told (without the schema: small models
    // copy it instead of following it).
    assert_eq!(
        system_of("x").as_deref(),
        Some("Answer with one JSON value only, no prose.")
    );
    assert_eq!(
        system_of("y").as_deref(),
        Some("Be brief.\n\nAnswer with one JSON value only, no prose.")
    );
    // A text task is not told anything.
    assert_eq!(system_of("z"), None);
}

#[test]
fn an_anthropic_prefill_starts_the_assistant_turn_and_the_answer() {
    let server = Server::start();
    // Anthropic returns what follows the prefill.
    server.default_reply(anthropic_answer("\"steps\": [\"dig\"]}"));
    let p = Project::new(&format!(
        "[pipeline]\nmodel = \"m\"\n[models.m]\nprovider = \"anthropic\"\nbase_url = \"{}/v1\"\nmodel = \"x\"\nstream = false\nprefill = \"{{\"\n\
         [tasks.a]\noutputs = [\"a.json\"]\nformat = \"json\"\nprompt = \"x\"\n\
         [tasks.t]\noutputs = [\"t.md\"]\nprompt = \"y\"\n",
        server.url
    ));
    p.run(&["build", "a"]).ok();
    assert_eq!(p.read("a.json"), "{\n  \"steps\": [\n    \"dig\"\n  ]\n}\n");
    let body = server.requests()[0].json();
    let last = body["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last,
        serde_json::json!({"role": "assistant", "content": "{"})
    );
    // A text task is not prefilled.
    p.run(&["build", "t"]).ok();
    let body = server.requests()[1].json();
    assert_eq!(body["messages"].as_array().unwrap().len(), 1);
    // Only Anthropic takes a prefill.
    let q = Project::new(&format!(
        "[models.m]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"x\"\nprefill = \"{{\"\n[tasks.a]\noutputs = [\"a\"]\ncommand = \"true\"\n",
        server.url
    ));
    q.build()
        .code(2)
        .stderr_has("`prefill` applies to provider = \"anthropic\"");
}

#[test]
fn a_json_answer_cut_off_says_what_was_found_before_the_cut() {
    for (answer, says, feedback) in [
        // Prose only: no JSON was found, not JSON left incomplete.
        (
            "Sure! To build a shed you first need to",
            "the answer holds no JSON: it was cut off at the token limit (7 tokens) before any JSON value began",
            "before it gave any JSON",
        ),
        // A complete value that fails the schema, then chatter cut off.
        (
            "{\"other\": 1}\n\nThis object lists the st",
            "does not match the schema: at /: \"steps\" is a required property; the answer was also cut off at the token limit (7 tokens)",
            "does not satisfy the required schema",
        ),
        // Cut inside the value.
        (
            "{\"steps\": [\"dig\", \"pour",
            "the answer was cut off at the token limit (7 tokens) before its JSON was complete",
            "before the JSON was complete",
        ),
    ] {
        let server = Server::start();
        server.script([
            openai_finish(answer, "length"),
            openai_finish(answer, "length"),
        ]);
        let p = project(
            &model(&server, "local", "stream = false"),
            "[tasks.one]\noutputs = [\"one.json\"]\nschema = \"s.json\"\nretries = 1\nprompt = \"x\"\n",
        );
        p.write(
            "s.json",
            r#"{"type":"object","required":["steps"],"properties":{"steps":{"type":"array","maxItems":3,"items":{"type":"string","maxLength":20}}}}"#,
        );
        p.build().code(1).stderr_has(says);
        let status = p.status_json("one");
        assert_eq!(status["error"]["kind"], "truncated");
        let message = status["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
        let reask = server.requests()[1].json();
        let sent = reask["messages"].as_array().unwrap().last().unwrap()["content"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(sent.contains(feedback), "{sent}");
        let failures = p.jsonl(".planexe/failures.jsonl");
        assert!(failures.iter().all(|f| f["error_type"] == "truncated"));
    }
}

/// A command task whose command has ended runs on while its judge is
/// asked: every reader says it is running (its record's pid, the
/// command's, is gone), not `stale: stopped last time`: `status TASK`,
/// `explain`, `build -n`, the JUnit report and the HTML report.
#[test]
fn a_command_being_judged_is_running_in_every_reader() {
    let server = Server::start();
    server.default_reply(Reply::Hang);
    let p = project(
        &model(&server, "local", "stream = false"),
        "[tasks.c]\noutputs = [\"c.md\"]\ncommand = \"echo c > c.md\"\n\
         [tasks.c.judge]\nprompt = \"Score {{ output }}\"\n",
    );
    let mut build = p.spawn_quiet(&["build"]);
    wait_for("the judge's call", || server.requests().len() == 1);
    let mut detail = String::new();
    wait_for("status c to say running", || {
        detail = p.run(&["status", "c"]).stdout;
        detail.starts_with("c: running\n")
    });
    assert!(!detail.contains("stopped last time"), "{detail}");
    let json: Value = serde_json::from_str(&p.run(&["status", "c", "--json"]).stdout).unwrap();
    assert_eq!(json["running"], true, "{json}");
    assert_eq!(json["stale"], false, "{json}");
    // The command has exited: its pid is not shown as the task's.
    let all: Value = serde_json::from_str(&p.run(&["status", "--json"]).stdout).unwrap();
    let line = all["tasks"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["task"] == "c"))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(line["state"], "running", "{all}");
    assert!(line["pid"].is_null(), "{all}");
    assert!(!detail.contains("pid"), "{detail}");
    let explain = p.run(&["explain", "c"]).stdout;
    // Its command has ended: the pid shown is the build's.
    let now = format!("running now (pid {})", build.id());
    assert!(explain.contains(&now), "{explain}");
    assert!(!explain.contains("stopped"), "{explain}");
    let dry = p.run(&["build", "-n"]);
    assert!(dry.stdout.contains(&format!("c: {now}")), "{}", dry.stdout);
    p.run(&["report", "--format", "junit", "-o", "j.xml"]).ok();
    let junit = p.read("j.xml");
    assert!(!junit.contains("stopped"), "{junit}");
    p.run(&["report", "-o", "r.html"]).ok();
    let html = p.read("r.html");
    assert!(!html.contains("its build ended"), "{html}");
    // SAFETY: signalling the child we spawned.
    unsafe {
        libc::kill(build.id() as i32, libc::SIGINT);
    }
    assert_eq!(build.wait().unwrap().code(), Some(130));
}

/// A prompt task on a model with `max_concurrency = 1`, whose server
/// hangs, and a command whose judge asks that model: the judge's call
/// queues inside the command's run (the scheduler's pool holds prompt
/// tasks of the model, not judges). The command waits for a file `go`,
/// which the test writes once the prompt's call is at the server: which
/// call comes first is not left to the threads' race.
const JUDGED_ON_ONE_SLOT: &str = "[tasks.first]\noutputs = [\"a.md\"]\nprompt = \"A\"\n\
    [tasks.second]\noutputs = [\"b.md\"]\ncommand = \"while [ ! -e go ]; do sleep 0.05; done; echo b > b.md\"\n\
    [tasks.second.judge]\nprompt = \"Score {{ output }}\"\nmodel = \"local\"\n";

/// A task queued for its model's `max_concurrency` is not shown as a call
/// in flight: `status`, `status TASK` and `--json` say it is queued, for
/// which model and limit.
#[test]
fn a_task_queued_for_its_models_slot_says_so_in_status() {
    let server = Server::start();
    server.default_reply(Reply::Hang);
    let p = project(
        &model(&server, "local", "stream = false\nmax_concurrency = 1"),
        JUDGED_ON_ONE_SLOT,
    );
    let mut build = p
        .command(&["build", "-j2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // `second`'s judge asks only once `first`'s call holds the slot.
    wait_for("first's call", || server.requests().len() == 1);
    p.write("go", "");
    let mut queued = Value::Null;
    wait_for("a task to show as queued", || {
        let out = p.run(&["status", "--json"]).stdout;
        let Ok(doc) = serde_json::from_str::<Value>(&out) else {
            return false;
        };
        let tasks = doc["tasks"].as_array().cloned().unwrap_or_default();
        match tasks.iter().find(|t| t["queued"].is_object()) {
            Some(t) => {
                queued = t.clone();
                true
            }
            None => false,
        }
    });
    assert_eq!(queued["task"], "second", "{queued}");
    assert_eq!(queued["state"], "running", "{queued}");
    assert_eq!(queued["call"], Value::Null, "no call in flight: {queued}");
    assert_eq!(queued["queued"]["model"], "local");
    assert_eq!(queued["queued"]["limit"], "max_concurrency");
    assert_eq!(queued["queued"]["max_concurrency"], 1);
    assert!(queued["queued"]["since"].is_string(), "{queued}");
    assert_eq!(server.requests().len(), 1, "one call at a time");
    let text = p.run(&["status"]).stdout;
    assert!(
        text.contains("queued for model local for ")
            && text.contains(": max_concurrency = 1, all in flight"),
        "{text}"
    );
    let detail = p.run(&["status", "second"]).stdout;
    assert!(
        detail.contains("  now       attempt 1, queued for model local for "),
        "{detail}"
    );
    // SAFETY: signalling the child we spawned.
    unsafe {
        libc::kill(build.id() as i32, libc::SIGINT);
    }
    assert_eq!(build.wait().unwrap().code(), Some(130));
}

/// A prompt task held by its model's pool (`max_concurrency = 1`, taken
/// by `first`, whose call hangs) has not started, and `status`, `status
/// --json` and `status second` say it is queued for its model, where
/// before it read as stale like a task waiting for a job slot. `c` waits
/// for a job slot only (`third`, on a model without a limit, holds the
/// other) and reads as before.
#[test]
fn a_task_held_by_its_models_pool_says_it_is_queued_for_the_model() {
    let server = Server::start();
    server.default_reply(Reply::Hang);
    let p = project(
        &format!(
            "{}{}",
            model(&server, "local", "stream = false\nmax_concurrency = 1"),
            model(&server, "other", "stream = false")
        ),
        "[tasks.first]\noutputs = [\"a.md\"]\nprompt = \"A\"\n\
         [tasks.second]\noutputs = [\"b.md\"]\nprompt = \"B\"\n\
         [tasks.third]\noutputs = [\"t.md\"]\nprompt = \"T\"\nmodel = \"other\"\n\
         [tasks.c]\noutputs = [\"c.txt\"]\ncommand = \"echo > c.txt\"\n",
    );
    let mut build = p
        .command(&["build", "-j2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the calls of first and third", || {
        server.requests().len() == 2
    });
    let mut tasks: Vec<Value> = Vec::new();
    wait_for("second to show as queued", || {
        let out = p.run(&["status", "--json"]).stdout;
        let Ok(doc) = serde_json::from_str::<Value>(&out) else {
            return false;
        };
        tasks = doc["tasks"].as_array().cloned().unwrap_or_default();
        tasks
            .iter()
            .any(|t| t["task"] == "second" && t["queued"].is_object())
    });
    let line = |name: &str| tasks.iter().find(|t| t["task"] == name).unwrap().clone();
    let second = line("second");
    assert_eq!(second["state"], "never-built", "not started: {second}");
    assert_eq!(second["call"], Value::Null, "{second}");
    assert_eq!(second["queued"]["model"], "local", "{second}");
    assert_eq!(second["queued"]["limit"], "max_concurrency", "{second}");
    assert_eq!(second["queued"]["max_concurrency"], 1, "{second}");
    assert!(second["queued"]["since"].is_string(), "{second}");
    assert_eq!(line("first")["state"], "running");
    assert_eq!(line("first")["queued"], Value::Null);
    let c = line("c");
    assert_eq!(
        (&c["state"], &c["queued"]),
        (&Value::from("never-built"), &Value::Null),
        "c waits for a job slot only: {c}"
    );
    let text = p.run(&["status"]).stdout;
    let said = |name: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    assert_eq!(
        said("second"),
        "second never built; queued for model local: max_concurrency = 1, all taken by running tasks",
        "{text}"
    );
    assert_eq!(said("c"), "c never built", "{text}");
    let detail = p.run(&["status", "second"]).stdout;
    assert!(
        detail.starts_with("second: stale: never built\n"),
        "{detail}"
    );
    assert!(
        detail.contains(
            "\n  now       not started, queued for model local: max_concurrency = 1, all taken by running tasks\n"
        ),
        "{detail}"
    );
    let detail: Value =
        serde_json::from_str(&p.run(&["status", "second", "--json"]).stdout).unwrap();
    assert_eq!(detail["running"], false, "{detail}");
    assert_eq!(detail["queued"]["model"], "local", "{detail}");
    assert_eq!(detail["queued"]["max_concurrency"], 1, "{detail}");
    let detail: Value = serde_json::from_str(&p.run(&["status", "c", "--json"]).stdout).unwrap();
    assert_eq!(detail["queued"], Value::Null, "{detail}");
    assert_eq!(server.requests().len(), 2, "second never called");
    // SAFETY: signalling the child we spawned.
    unsafe {
        libc::kill(build.id() as i32, libc::SIGINT);
    }
    assert_eq!(build.wait().unwrap().code(), Some(130));
}

/// A task whose own timeout runs out while it is queued for its model
/// says so, rather than a bare `timeout after 1s`, and that it was its
/// judge that queued (in its message and its line of `failures.jsonl`,
/// marked `judge`). `second` (a prompt
/// task on another model) starts a second after `first` took the only
/// slot of `local` (it waits for `pre`), is answered at once, and its
/// judge then queues for `local`, whose answer to `first` takes four.
#[test]
fn a_timeout_while_queued_for_the_model_names_the_queue() {
    let server = Server::start();
    server.script([
        delayed(openai_answer("ok"), Duration::from_secs(4)),
        openai_answer("second's answer"),
    ]);
    let p = project(
        &format!(
            "{}{}",
            model(&server, "local", "stream = false\nmax_concurrency = 1"),
            model(&server, "other", "stream = false")
        ),
        "[tasks.first]\noutputs = [\"a.md\"]\nprompt = \"A\"\n\
         [tasks.pre]\noutputs = [\"pre.txt\"]\ncommand = \"sleep 1; echo > pre.txt\"\n\
         [tasks.second]\ninputs = [\"pre.txt\"]\noutputs = [\"b.md\"]\nprompt = \"B\"\nmodel = \"other\"\ntimeout = \"1s\"\n\
         [tasks.second.judge]\nprompt = \"Score {{ output }}\"\nmodel = \"local\"\n",
    );
    let run = p.run(&["build", "-j2", "-k"]);
    run.code(1).stderr_has(
        "FAILED second: judge local could not score: timeout: the task's timeout (1s) expired while its judge was queued for model local (max_concurrency = 1, all in flight)",
    );
    assert_eq!(p.status_json("first")["state"], "done");
    assert_eq!(server.requests().len(), 2, "the judge never called");
    let failures = p.jsonl(".planexe/failures.jsonl");
    let last = failures.last().unwrap();
    assert_eq!(
        (
            last["task"].as_str(),
            last["model"].as_str(),
            last["kind"].as_str(),
            last["judge"].as_bool()
        ),
        (Some("second"), Some("local"), Some("timeout"), Some(true)),
        "{failures:?}"
    );
    assert_eq!(
        last["error_id"],
        p.status_json("second")["error"]["error_id"]
    );
}

/// A model's `max_concurrency` is a pool for the scheduler: a prompt task
/// that would only wait for its model does not start, so its job slot
/// goes to the command beside it and its `timeout` starts with it. Before,
/// `p1` took the second slot, waited 1.2s for `p0`'s call, and its own
/// call then ran past its 2s.
#[test]
fn a_prompt_task_waiting_for_its_models_pool_takes_no_slot_and_no_time() {
    let server = Server::start();
    server.default_reply(delayed(openai_answer("ok"), Duration::from_millis(1200)));
    let p = project(
        &model(&server, "local", "stream = false\nmax_concurrency = 1"),
        "[tasks.p0]\noutputs = [\"p0.md\"]\nprompt = \"A\"\ntimeout = \"2s\"\n\
         [tasks.p1]\noutputs = [\"p1.md\"]\nprompt = \"B\"\ntimeout = \"2s\"\n\
         [tasks.c]\noutputs = [\"c.txt\"]\ncommand = \"echo > c.txt\"\n",
    );
    let run = p.run(&["build", "-j2"]);
    run.ok();
    let starts: Vec<&str> = run
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("start  "))
        .collect();
    assert_eq!(starts, ["p0", "c", "p1"], "{}", run.stderr);
    assert_eq!(server.requests().len(), 2);
    assert_eq!(server.max_in_flight(), 1);
}

/// `extra_body` sends parameters planexe has no key of its own for
/// (`repeat_penalty`, `top_p`, `stop`), as they are, beside planexe's own;
/// they are part of the task's definition; a key planexe sets itself, a
/// value JSON cannot hold, and a replay model's are refused at load.
#[test]
fn extra_body_is_sent_as_it_is_and_checked() {
    let server = Server::start();
    server.default_reply(openai_answer("done"));
    let extra =
        "extra_body = { repeat_penalty = 1.3, stop = [\"\\n\\n\"], options = { top_k = 40 } }";
    let p = project(
        &model(
            &server,
            "local",
            &format!("stream = false\ntemperature = 0\n{extra}"),
        ),
        ASK,
    );
    p.build().ok();
    let body = server.requests()[0].json();
    assert_eq!(body["repeat_penalty"], 1.3, "{body}");
    assert_eq!(body["stop"], serde_json::json!(["\n\n"]));
    assert_eq!(body["options"]["top_k"], 40);
    assert_eq!(body["temperature"], 0.0);
    assert_eq!(body["model"], "local-model");

    // Part of the definition: a change re-runs the task, and says so.
    let text = p.read("pipeline.toml").replace("1.3", "1.2");
    p.write("pipeline.toml", &text);
    p.run(&["explain", "ask"]).ok().stdout_has(
        "+ sampling: temperature 0, max_tokens default, extra_body {\"options\":{\"top_k\":40},\"repeat_penalty\":1.2,\"stop\":[\"\\n\\n\"]}",
    );
    p.build().ok().ran(&["ask"]);

    // Refused at load, with where.
    for (extra, says) in [
        (
            "extra_body = { max_tokens = 10 }",
            "`extra_body` sets `max_tokens`, which planexe sets itself",
        ),
        (
            "extra_body = { when = 2026-01-01 }",
            "`extra_body.when` holds a date, which a JSON request cannot",
        ),
    ] {
        let p = project(&model(&server, "local", extra), ASK);
        p.build()
            .code(2)
            .stderr_has(&format!("pipeline.toml:8:14: {says}"));
    }
    let replay = format!(
        "{}[models.rec]\nprovider = \"replay\"\ndir = \"rec\"\nreplays = \"local\"\nextra_body = {{ top_p = 0.5 }}\n",
        model(&server, "local", "")
    );
    let p = project(&replay, ASK);
    p.build()
        .code(2)
        .stderr_has("`extra_body` does not apply to a replay model");
}

/// `structured_output = "json_object"` asks for JSON but carries no
/// schema: the system text gives it, as an Anthropic model's does (and
/// says "JSON", which OpenAI's `json_object` requires of the messages).
#[test]
fn a_json_object_model_is_given_the_schema_in_its_system_text() {
    let server = Server::start();
    server.default_reply(openai_answer("{\"steps\": [\"dig\"]}"));
    let p = Project::new(&format!(
        "[pipeline]\nmodel = \"m\"\n[models.m]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"x\"\nstream = false\nstructured_output = \"json_object\"\n\
         [tasks.a]\noutputs = [\"a.json\"]\nformat = \"json\"\nprompt = \"x\"\n\
         [tasks.b]\noutputs = [\"b.json\"]\nschema = \"s.json\"\nsystem = \"Be brief.\"\nprompt = \"y\"\n\
         [tasks.c]\noutputs = [\"c.md\"]\nprompt = \"z\"\n",
        server.url
    ));
    let schema = r#"{"type":"object","required":["steps"],"properties":{"steps":{"type":"array","maxItems":3,"items":{"type":"string","maxLength":20}}}}"#;
    p.write("s.json", schema);
    p.run(&["build", "-j1", "a", "b", "c"]).ok();
    let bodies: Vec<serde_json::Value> = server.requests().iter().map(|r| r.json()).collect();
    let body_of = |prompt: &str| {
        bodies
            .iter()
            .find(|b| b["messages"].as_array().unwrap().last().unwrap()["content"] == prompt)
            .unwrap()
            .clone()
    };
    let system_of = |body: &serde_json::Value| {
        body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["role"] == "system")
            .map(|m| m["content"].as_str().unwrap().to_string())
    };
    let a = body_of("x");
    assert_eq!(a["response_format"]["type"], "json_object", "{a}");
    assert_eq!(
        system_of(&a).as_deref(),
        Some("Answer with one JSON value only, no prose.")
    );
    let b = body_of("y");
    assert_eq!(b["response_format"]["type"], "json_object", "{b}");
    let system = system_of(&b).unwrap();
    assert!(
        system.starts_with(
            "Be brief.\n\nAnswer with one JSON value only, no prose, that satisfies this JSON Schema:\n"
        ),
        "{system}"
    );
    let sent: serde_json::Value = serde_json::from_str(system.lines().last().unwrap()).unwrap();
    assert_eq!(
        sent,
        serde_json::from_str::<serde_json::Value>(schema).unwrap()
    );
    // A text task is told nothing.
    let c = body_of("z");
    assert!(c.get("response_format").is_none(), "{c}");
    assert_eq!(system_of(&c), None);
}
