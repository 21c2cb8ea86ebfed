//! The order of a JSON answer's keys, and of a schema's: an answer is
//! written with its keys as the model gave them (not sorted), and a schema
//! file is sent as its author ordered it, since servers that enforce a
//! schema generate its keys in that order.

use crate::harness::*;
use crate::llm_server::*;

/// A SWOT schema in the order people read one, which sorted would be
/// opportunities, strengths, threats, weaknesses.
const SWOT: &str = r#"{
  "type": "object",
  "required": ["strengths", "weaknesses", "opportunities", "threats"],
  "properties": {
    "strengths": {"type": "array", "items": {"type": "string", "maxLength": 40}, "maxItems": 3},
    "weaknesses": {"type": "array", "items": {"type": "string", "maxLength": 40}, "maxItems": 3},
    "opportunities": {"type": "array", "items": {"type": "string", "maxLength": 40}, "maxItems": 3},
    "threats": {"type": "array", "items": {"type": "string", "maxLength": 40}, "maxItems": 3}
  }
}"#;

fn project(server: &Server, provider: &str) -> Project {
    let p = Project::new(&format!(
        "[pipeline]\nmodel = \"m\"\n\n[models.m]\nprovider = \"{provider}\"\nbase_url = \"{}/v1\"\nmodel = \"test-model\"\nstream = false\n\n[tasks.swot]\noutputs = [\"swot.json\"]\nprompt = \"A SWOT of the plan.\"\nschema = \"swot.schema.json\"\n",
        server.url
    ));
    p.write("swot.schema.json", SWOT);
    p
}

/// An answer the schema takes, in its order.
const ANSWER: &str = r#"{"strengths": ["sun"], "weaknesses": ["cost"], "opportunities": ["grant"], "threats": ["theft"]}"#;

const WRITTEN: &str = "{\n  \"strengths\": [\n    \"sun\"\n  ],\n  \"weaknesses\": [\n    \"cost\"\n  ],\n  \"opportunities\": [\n    \"grant\"\n  ],\n  \"threats\": [\n    \"theft\"\n  ]\n}\n";

/// Where `needle`s are in `hay`, in order.
fn in_order(hay: &str, needles: &[&str]) -> bool {
    let at: Vec<Option<usize>> = needles.iter().map(|n| hay.find(n)).collect();
    at.iter().all(Option::is_some) && at.windows(2).all(|w| w[0] < w[1])
}

#[test]
fn an_answers_keys_are_written_in_the_order_the_model_gave_them() {
    let server = Server::start();
    // No schema to follow: the answer's own order, at every level.
    server.script([openai_answer(
        r#"{"risks": [{"risk": "theft", "impact": "high"}], "notes": "x"}"#,
    )]);
    let p = project(&server, "openai");
    p.write("swot.schema.json", r#"{"type": "object"}"#);
    p.build().ok();
    assert_eq!(
        p.read("swot.json"),
        "{\n  \"risks\": [\n    {\n      \"risk\": \"theft\",\n      \"impact\": \"high\"\n    }\n  ],\n  \"notes\": \"x\"\n}\n"
    );

    // From a fence in prose, as small models answer.
    let server = Server::start();
    server.script([openai_answer(&format!(
        "Here is the SWOT:\n\n```json\n{ANSWER}\n```\nHope it helps."
    ))]);
    let p = project(&server, "openai");
    p.build().ok();
    assert_eq!(p.read("swot.json"), WRITTEN);
}

#[test]
fn a_key_an_answer_gives_twice_is_written_once_with_its_last_value() {
    let server = Server::start();
    server.script([openai_answer(r#"{"b": 1, "a": 2, "b": 3}"#)]);
    let p = project(&server, "openai");
    p.write("swot.schema.json", r#"{"type": "object"}"#);
    p.build().ok();
    assert_eq!(p.read("swot.json"), "{\n  \"b\": 3,\n  \"a\": 2\n}\n");
}

#[test]
fn a_schema_is_sent_in_the_order_its_file_gives_its_keys() {
    // OpenAI-compatible servers: in `response_format`, which llama.cpp,
    // vLLM and OpenAI generate in the order of.
    let server = Server::start();
    server.script([openai_answer(ANSWER)]);
    let p = project(&server, "openai");
    p.build().ok();
    let requests = server.requests();
    let sent = &requests[0].body;
    let schema = &sent[sent.find("\"response_format\"").unwrap()..];
    assert!(
        in_order(
            schema,
            &[
                "\"strengths\"",
                "\"weaknesses\"",
                "\"opportunities\"",
                "\"threats\""
            ]
        ),
        "{sent}"
    );
    assert_eq!(p.read("swot.json"), WRITTEN);

    // Anthropic: in the system text.
    let server = Server::start();
    server.script([anthropic_answer(ANSWER)]);
    let p = project(&server, "anthropic");
    p.build().ok();
    let requests = server.requests();
    let system = requests[0].json()["system"].as_str().unwrap().to_string();
    assert!(
        in_order(
            &system,
            &[
                "\"strengths\"",
                "\"weaknesses\"",
                "\"opportunities\"",
                "\"threats\""
            ]
        ),
        "{system}"
    );
    assert_eq!(p.read("swot.json"), WRITTEN);
}

#[test]
fn a_schema_put_in_another_order_keeps_its_recorded_answers() {
    // A recording's key is made of the request with its schema sorted:
    // answers recorded before schemas were sent in their order, or before
    // a schema's keys were put in another, still replay.
    for provider in ["openai", "anthropic"] {
        let server = Server::start();
        server.script([match provider {
            "openai" => openai_answer(ANSWER),
            _ => anthropic_answer(ANSWER),
        }]);
        let recordings = tempfile::tempdir().unwrap();
        let dir = recordings.path().to_str().unwrap();
        let live = project(&server, provider);
        live.run(&["build", "--record", dir]).ok();
        let reordered: serde_json::Value = serde_json::from_str(SWOT).unwrap();
        let replay = project(&server, provider);
        // The same schema, its properties last to first.
        let properties = reordered["properties"].as_object().unwrap();
        let backwards: Vec<String> = properties
            .iter()
            .rev()
            .map(|(k, v)| format!("{}: {v}", serde_json::to_string(k).unwrap()))
            .collect();
        replay.write(
            "swot.schema.json",
            &format!(
                "{{\"properties\": {{{}}}, \"required\": {}, \"type\": \"object\"}}",
                backwards.join(", "),
                reordered["required"]
            ),
        );
        replay.run(&["build", "--replay", dir]).ok();
        assert_eq!(
            server.requests().len(),
            1,
            "{provider}: replayed, not asked"
        );
        assert_eq!(replay.read("swot.json"), WRITTEN, "{provider}");
    }
}
