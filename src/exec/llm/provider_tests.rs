//! Wire shapes of answers, streams and error bodies, read as servers send them.

use super::*;
use serde_json::json;

#[test]
fn openai_stream_with_usage_chunk() {
    let mut s = Stream::default();
    for data in [
        r#"{"choices":[{"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
        r#"{"choices":[{"delta":{"content":"Hel"},"finish_reason":null}]}"#,
        r#"{"choices":[{"delta":{"content":"lo"},"finish_reason":"stop"}]}"#,
        r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#,
        "[DONE]",
    ] {
        s.feed(Provider::OpenAi, None, data).unwrap();
    }
    assert_eq!(s.text, "Hello");
    assert_eq!(s.finish, Some(Finish::Stop));
    assert_eq!(s.usage.completion_tokens, Some(2));
    assert!(s.ended);
}

#[test]
fn anthropic_stream() {
    let mut s = Stream::default();
    for (event, data) in [
        (
            "message_start",
            r#"{"type":"message_start","message":{"usage":{"input_tokens":9,"output_tokens":1}}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
        ),
        (
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"output_tokens":3}}"#,
        ),
        ("message_stop", r#"{"type":"message_stop"}"#),
    ] {
        s.feed(Provider::Anthropic, Some(event), data).unwrap();
    }
    assert_eq!(s.text, "Hi");
    assert_eq!(s.finish, Some(Finish::Length));
    assert_eq!(
        s.usage,
        Usage {
            prompt_tokens: Some(9),
            completion_tokens: Some(3)
        }
    );
    assert!(s.ended);
}

#[test]
fn a_long_stream_keeps_its_first_and_last_events_only() {
    let mut s = Stream::default();
    let piece = "x".repeat(1000);
    let data =
        json!({"choices": [{"delta": {"content": piece}, "finish_reason": null}]}).to_string();
    for _ in 0..2000 {
        s.feed(Provider::OpenAi, None, &data).unwrap();
    }
    s.feed(
        Provider::OpenAi,
        None,
        r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#,
    )
    .unwrap();
    assert_eq!(s.text.len(), 2_000_000);
    let kept = s.raw_events();
    assert!(kept.len() < 300, "{}", kept.len());
    assert_eq!(kept.len() as u64 + s.omitted, 2001);
    assert_eq!(kept.last().unwrap()["choices"][0]["finish_reason"], "stop");
}

#[test]
fn error_shapes() {
    let llama = r#"{"error":{"code":400,"message":"the request exceeds the available context size","type":"exceed_context_size_error"}}"#;
    assert!(is_context_overflow(llama));
    assert_eq!(
        error_details(llama).0.as_deref(),
        Some("exceed_context_size_error")
    );
    let anthropic =
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
    assert_eq!(
        error_details(anthropic),
        (Some("overloaded_error".into()), "Overloaded".into())
    );
    // Ollama's and LM Studio's: the error is the message.
    let ollama = r#"{"error":"model 'qwen' not found, try pulling it first"}"#;
    assert_eq!(
        error_details(ollama),
        (None, "model 'qwen' not found, try pulling it first".into())
    );
}

/// A whole response that names no reason for its end is finished, or cut
/// when its token count reached the limit sent; a reason of the wrong
/// shape is still refused.
#[test]
fn a_whole_response_without_a_finish_reason() {
    let parse = |body: &str, max_tokens| {
        parse_response(
            Provider::OpenAi,
            &serde_json::from_str(body).unwrap(),
            max_tokens,
        )
    };
    for body in [
        r#"{"choices":[{"message":{"content":"hi"}}],"usage":{"completion_tokens":2}}"#,
        r#"{"choices":[{"message":{"content":"hi"},"finish_reason":null}],"usage":{"completion_tokens":2}}"#,
    ] {
        let a = parse(body, Some(100)).unwrap();
        assert_eq!((a.text.as_str(), &a.finish), ("hi", &Finish::Stop));
        assert!(a.finish_note.unwrap().contains("taken as finished"));
        let a = parse(body, Some(2)).unwrap();
        assert_eq!(a.finish, Finish::Length, "{body}");
        assert!(a.finish_note.unwrap().contains("reached max_tokens (2)"));
        assert_eq!(parse(body, None).unwrap().finish, Finish::Stop);
    }
    let named = parse(
        r#"{"choices":[{"message":{"content":"hi"},"finish_reason":"stop"}]}"#,
        None,
    );
    assert!(named.unwrap().finish_note.is_none());
    let wrong = parse(
        r#"{"choices":[{"message":{"content":"hi"},"finish_reason":3}]}"#,
        None,
    );
    assert!(wrong.unwrap_err().contains("is a number, not text"));
    let anthropic = parse_response(
        Provider::Anthropic,
        &serde_json::json!({"content": [{"type": "text", "text": "hi"}], "usage": {"output_tokens": 9}}),
        Some(9),
    )
    .unwrap();
    assert_eq!(anthropic.finish, Finish::Length);
}
