//! Reasoning fields in the shapes servers send them
//! (`tests/fixtures/answers/`, see its README): never the answer, always
//! kept apart, and counted as streamed pieces.

use super::*;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/answers/",
            $name
        ))
    };
}

const ANSWER: &str = r#"{"city": "Paris", "country": "France"}"#;

fn response(provider: Provider, body: &str) -> Answer {
    parse_response(provider, &serde_json::from_str(body).unwrap(), None).unwrap()
}

/// Feeds a recorded event stream (`event:` and `data:` lines, events
/// separated by blank lines).
fn stream(provider: Provider, sse: &str) -> Stream {
    let mut s = Stream::default();
    for block in sse.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let mut event = None;
        let mut data = String::new();
        for line in block.lines() {
            if let Some(e) = line.strip_prefix("event: ") {
                event = Some(e);
            } else if let Some(d) = line.strip_prefix("data: ") {
                data.push_str(d);
            }
        }
        s.feed(provider, event, &data).unwrap();
    }
    s
}

#[test]
fn openai_reasoning_content_is_not_the_answer() {
    let a = response(Provider::OpenAi, fixture!("openai_reasoning_content.json"));
    assert_eq!(a.text, ANSWER);
    assert!(a.reasoning.starts_with("The user wants"), "{}", a.reasoning);

    let a = response(Provider::OpenAi, fixture!("openai_reasoning_only.json"));
    assert_eq!(a.text, "");
    assert!(a.reasoning.contains("Paris"));

    let a = response(Provider::OpenAi, fixture!("ollama_reasoning.json"));
    assert_eq!(a.text, ANSWER);
    assert_eq!(
        a.reasoning,
        "Paris is the capital of France. Keys: city, country."
    );

    let a = response(Provider::OpenAi, fixture!("llamacpp_response.json"));
    assert!(a.text.starts_with("```json"));
    assert_eq!(a.reasoning, "");
}

#[test]
fn anthropic_thinking_blocks_are_not_the_answer() {
    let a = response(Provider::Anthropic, fixture!("anthropic_thinking.json"));
    assert_eq!(a.text, ANSWER);
    assert_eq!(
        a.reasoning,
        "The user wants city and country for Paris: France."
    );
}

#[test]
fn streamed_reasoning_is_kept_apart_and_counted() {
    let s = stream(
        Provider::OpenAi,
        fixture!("openai_reasoning_content_stream.sse"),
    );
    assert_eq!(
        (s.text.as_str(), s.reasoning.as_str()),
        (ANSWER, "Paris is in France.")
    );
    assert_eq!(s.deltas, 4);
    assert_eq!(s.finish, Some(Finish::Stop));
    assert!(s.ended);

    let s = stream(Provider::OpenAi, fixture!("ollama_reasoning_stream.sse"));
    assert_eq!(
        (s.text.as_str(), s.reasoning.as_str()),
        (ANSWER, "Keys: city, country.")
    );
    assert_eq!(s.deltas, 3);

    let s = stream(
        Provider::Anthropic,
        fixture!("anthropic_thinking_stream.sse"),
    );
    assert_eq!(
        (s.text.as_str(), s.reasoning.as_str()),
        (ANSWER, "Paris is in France.")
    );
    assert_eq!(s.deltas, 4);
    assert_eq!(s.usage.completion_tokens, Some(50));
    assert!(s.ended);
}

#[test]
fn a_real_llama_cpp_stream() {
    let s = stream(Provider::OpenAi, fixture!("llamacpp_stream.sse"));
    assert_eq!(
        s.text,
        response(Provider::OpenAi, fixture!("llamacpp_response.json")).text
    );
    assert_eq!(s.reasoning, "");
    assert_eq!(s.finish, Some(Finish::Stop));
}
