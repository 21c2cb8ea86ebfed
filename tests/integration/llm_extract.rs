//! Answer extraction through the real binary: JSON wrapped in prose and
//! fences (as SmolLM2 on llama.cpp writes it), `<think>` reasoning in the
//! text, reasoning fields beside it (`reasoning_content`, Anthropic
//! `thinking`), `keep_reasoning`, and the feedback of a re-ask. Answers come
//! from `tests/fixtures/answers/`.

use serde_json::Value;

use crate::harness::*;
use crate::llm_server::*;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/answers/",
            $name
        ))
    };
}

const PARIS: &str = "{\n  \"city\": \"Paris\",\n  \"country\": \"France\"\n}\n";

fn project(server: &Server, provider: &str, model_extra: &str, task_extra: &str) -> Project {
    Project::new(&format!(
        "[pipeline]\nmodel = \"local\"\n\n[models.local]\nprovider = \"{provider}\"\nbase_url = \"{}/v1\"\nmodel = \"test-model\"\n{model_extra}\n\n[tasks.ask]\noutputs = [\"out\"]\nprompt = \"Give me a JSON object with keys city and country for Paris.\"\n{task_extra}\n",
        server.url
    ))
}

fn usage_lines(p: &Project) -> usize {
    p.read(".planexe/usage.jsonl").lines().count()
}

fn raw(p: &Project) -> Value {
    serde_json::from_str(&p.read(".planexe/raw/ask.json")).unwrap()
}

/// A recorded event stream as a scripted reply.
fn sse(text: &str) -> Reply {
    let events = text
        .split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|block| {
            let event = block
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .map(str::to_string);
            let data = block
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect::<String>();
            (event, data)
        })
        .collect();
    Reply::Sse {
        events,
        end: StreamEnd::Close,
    }
}

#[test]
fn a_fenced_answer_wrapped_in_prose_is_accepted_first_time() {
    let server = Server::start();
    server.script([openai_answer(fixture!("smollm2_fence_then_prose.txt"))]);
    let p = project(&server, "openai", "stream = false", "format = \"json\"");
    p.build().ok();
    assert_eq!(
        p.read("out"),
        "{\n  \"city\": \"Paris\",\n  \"country\": \"FRANCE\"\n}\n"
    );
    assert_eq!(usage_lines(&p), 1);
    assert!(!p.exists(".planexe/failures.jsonl"));

    // Prose before the fence, and a schema.
    let server = Server::start();
    server.script([openai_answer(fixture!("smollm2_prose_fence_prose.txt"))]);
    let p = project(&server, "openai", "stream = false", "schema = \"s.json\"");
    p.write("s.json", r#"{"type": "object", "required": ["point"]}"#);
    p.build().ok();
    assert_eq!(
        p.read("out"),
        "{\n  \"point\": {\n    \"x\": 10,\n    \"y\": 10\n  }\n}\n"
    );
    assert_eq!(usage_lines(&p), 1);
}

#[test]
fn think_blocks_are_stripped_from_json_answers() {
    let server = Server::start();
    let text = fixture!("qwen3_think_then_json.txt");
    let (a, b) = text.split_at(40);
    server.script([openai_stream(&[a, b], Some("stop"), StreamEnd::Close)]);
    let p = project(&server, "openai", "", "format = \"json\"");
    p.build().ok();
    assert_eq!(p.read("out"), PARIS);
    assert_eq!(usage_lines(&p), 1);
}

#[test]
fn reasoning_content_is_kept_in_raw_but_never_the_answer() {
    // Not streamed: the raw response holds it as the server sent it.
    let server = Server::start();
    let body: Value = serde_json::from_str(fixture!("openai_reasoning_content.json")).unwrap();
    server.script([json(200, body)]);
    let p = project(&server, "openai", "stream = false", "format = \"json\"");
    p.build().ok();
    assert_eq!(p.read("out"), PARIS);
    let r = raw(&p);
    assert!(r["response"]["choices"][0]["message"]["reasoning_content"]
        .as_str()
        .unwrap()
        .contains("Lyon"));

    // Streamed: the raw value gains the reasoning next to the events.
    let server = Server::start();
    server.script([sse(fixture!("openai_reasoning_content_stream.sse"))]);
    let p = project(&server, "openai", "", "format = \"json\"");
    p.build().ok();
    assert_eq!(p.read("out"), PARIS);
    assert_eq!(raw(&p)["response"]["reasoning"], "Paris is in France.");

    // Anthropic, streamed thinking.
    let server = Server::start();
    server.script([sse(fixture!("anthropic_thinking_stream.sse"))]);
    let p = project(&server, "anthropic", "", "format = \"json\"");
    p.build().ok();
    assert_eq!(p.read("out"), PARIS);
    assert_eq!(raw(&p)["response"]["reasoning"], "Paris is in France.");
}

#[test]
fn reasoning_without_content_is_an_empty_answer() {
    let server = Server::start();
    let body: Value = serde_json::from_str(fixture!("openai_reasoning_only.json")).unwrap();
    server.default_reply(json(200, body));
    let p = project(
        &server,
        "openai",
        "stream = false",
        "format = \"json\"\nretries = 0",
    );
    p.build().code(1).stderr_has("empty_answer");
    assert!(!p.exists("out"));
    assert_eq!(p.status_json("ask")["error"]["kind"], "empty_answer");

    // An unclosed <think> in the text: only reasoning, no answer.
    let server = Server::start();
    server.default_reply(openai_answer(fixture!("think_unclosed.txt")));
    let p = project(&server, "openai", "stream = false", "retries = 0");
    p.build()
        .code(1)
        .stderr_has("empty_answer")
        .stderr_has("never closed");
}

#[test]
fn text_answers_lose_their_reasoning_unless_kept() {
    let text = fixture!("qwen3_think_then_text.txt");
    let server = Server::start();
    server.default_reply(openai_answer(text));
    let p = project(&server, "openai", "stream = false", "");
    p.build().ok();
    assert_eq!(p.read("out"), "Paris is the capital of France.");

    // Flipping keep_reasoning re-runs the task, and the reasoning stays.
    let pipeline = p.read("pipeline.toml");
    p.write(
        "pipeline.toml",
        &format!("{pipeline}keep_reasoning = true\n"),
    );
    p.build().ok().ran(&["ask"]);
    assert_eq!(p.read("out"), text);
    p.build().ok().ran(&[]);
}

#[test]
fn keep_reasoning_is_refused_where_it_means_nothing() {
    let p = Project::new(
        "[tasks.a]\noutputs = [\"a\"]\ncommand = \"echo > a\"\nkeep_reasoning = true\n",
    );
    p.build()
        .code(2)
        .stderr_has("`keep_reasoning` only applies to prompt tasks");

    let server = Server::start();
    let p = project(
        &server,
        "openai",
        "",
        "format = \"json\"\nkeep_reasoning = true",
    );
    p.build()
        .code(2)
        .stderr_has("`keep_reasoning` applies to text answers");
    assert!(server.requests().is_empty());
}

#[test]
fn an_answer_without_json_is_re_asked_saying_so() {
    let server = Server::start();
    server.script([
        openai_answer(fixture!("smollm2_prose_only.txt")),
        openai_answer("```json\n{\"a\": 1,\n \"b\": }\n```"),
        openai_answer(fixture!("smollm2_bare_json.txt")),
    ]);
    let p = project(&server, "openai", "stream = false", "format = \"json\"");
    p.build().ok();
    assert_eq!(p.read("out"), "{\n  \"city\": \"Paris\"\n}\n");
    let reqs = server.requests();
    assert_eq!(reqs.len(), 3);
    let messages = reqs[1].json()["messages"].clone();
    assert_eq!(messages[1]["content"], "Paris is in France.");
    assert_eq!(
        messages[2]["content"],
        "Your answer contains no JSON value. Answer again with the JSON value only: no prose, no code fence."
    );
    let messages = reqs[2].json()["messages"].clone();
    assert_eq!(
        messages[4]["content"],
        "The JSON in your code block is not valid: expected value at line 2, column 7 of the block. Answer again with the JSON value only: no prose, no code fence."
    );

    let failures: Vec<Value> = p
        .read(".planexe/failures.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(failures.len(), 2);
    assert_eq!(failures[0]["error_type"], "invalid_json");
    assert!(failures[0]["message"]
        .as_str()
        .unwrap()
        .contains("looked at the whole answer, ```json blocks, and {…} or […] in the text"));
    assert!(failures[1]["message"]
        .as_str()
        .unwrap()
        .contains("the ```json block at line 1 is not valid JSON"));
}

/// SmolLM2 on llama.cpp under `max_tokens = 6` wrote `{"risks":[]` and
/// was cut off: the `[]` inside the object that never closed is not a
/// top-level value, so it is never the answer (it was written as the
/// output, or refused as "[] is not of type object"); the answer was cut
/// off before its JSON was complete.
#[test]
fn a_value_inside_a_cut_off_object_is_never_the_answer() {
    let server = Server::start();
    server.default_reply(openai_finish(
        "{\"risks\": [], \"notes\": \"and then",
        "length",
    ));
    let p = project(&server, "openai", "stream = false", "format = \"json\"");
    p.build()
        .code(1)
        .stderr_has("truncated: the answer was cut off at the token limit")
        .stderr_has("before its JSON was complete");
    assert!(!p.exists("out"));

    // Not cut off by the server: the same text is JSON that does not end.
    let server = Server::start();
    server.default_reply(openai_answer("Here: {\"risks\": [], \"notes\": \"and then"));
    let p = project(&server, "openai", "stream = false", "format = \"json\"");
    p.build()
        .code(1)
        .stderr_has("invalid_json: the answer holds no valid JSON; the JSON value in the text at line 1, column 7 is not: EOF while parsing");
    assert!(!p.exists("out"));

    // A closed value before the cut-off one is still found.
    let server = Server::start();
    server.default_reply(openai_answer("{\"city\": \"Paris\"} and {\"more\": [1]"));
    let p = project(&server, "openai", "stream = false", "format = \"json\"");
    p.build().ok();
    assert_eq!(p.read("out"), "{\n  \"city\": \"Paris\"\n}\n");
}
