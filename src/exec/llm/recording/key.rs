//! The key of a request to a model, under which its answer is recorded
//! (`--record`, `--replay`, replay models) or cached (`--cache`): the blake3
//! hash of `{"v":1,"provider":...,"body":...}`, the body the wire format
//! builds for the first message of the conversation less `stream` and
//! `stream_options`, serialized canonically (serde_json's map is sorted:
//! the crate is built without `preserve_order`). A response cache's key
//! names the server too (`"base_url"`, as resolved: no trailing `/`): two
//! servers that serve the same model name are two models, and one's answer
//! is not the other's. A recording's key does not, so it replays whatever
//! server it came from, and those made before cache keys named servers
//! still do. Never a header or an API key.

use serde_json::{json, Value};

use super::super::provider::{self, Message, Request};
use crate::model::models::{ModelConfig, Provider};
use crate::model::prompt::{Format, PromptSpec};

/// The key of a request: the hex blake3 of its canonical JSON, with the
/// server it is sent to (`base_url`) for the response cache, without it
/// for a recording.
pub fn key(provider: Provider, server: Option<&str>, body: &Value) -> String {
    let mut body = body.clone();
    if let Some(map) = body.as_object_mut() {
        map.remove("stream");
        map.remove("stream_options");
    }
    let mut canonical = json!({"v": 1, "provider": provider.as_str(), "body": body});
    if let Some(server) = server {
        canonical["base_url"] = server.into();
    }
    blake3::hash(canonical.to_string().as_bytes())
        .to_hex()
        .to_string()
}

/// The key of a conversation's initial request to `model` (its messages
/// and system text as they are sent: scrubbed), naming `server` if any.
pub(in crate::exec::llm) fn request_key(
    model: &ModelConfig,
    server: Option<&str>,
    spec: &PromptSpec,
    messages: &[Message],
    system: Option<&str>,
) -> String {
    key(
        model.provider,
        server,
        &provider::body(&Request {
            model,
            system,
            messages,
            json: spec.format == Format::Json,
            schema: spec.schema.as_deref(),
            max_tokens: spec.max_tokens,
        }),
    )
}

/// Whether `model`, a replay model, holds the answer to a prompt task's
/// first request: its prompt rendered from `inputs`, as a build sends it
/// (a prompt with no secret in it: nothing to scrub). `None` when `model`
/// replays nothing or the prompt cannot be rendered. What a new run's
/// maker is told: a replay model answers the plan its answers were
/// recorded for.
pub fn replay_holds(
    model: &ModelConfig,
    spec: &PromptSpec,
    task: &str,
    inputs: &crate::model::template_files::Files,
) -> Option<bool> {
    let dir = &model.replay.as_ref()?.dir;
    let (prompt, system) = spec.render(inputs, task).ok()?;
    let messages = [Message {
        role: "user",
        content: prompt,
    }];
    let key = request_key(model, None, spec, &messages, system.as_deref());
    Some(matches!(super::lookup(dir, &key), super::Lookup::Hit(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_ignore_streaming_and_key_order() {
        let a = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": true, "stream_options": {"include_usage": true}});
        let b: Value =
            serde_json::from_str(r#"{"messages":[{"content":"hi","role":"user"}],"model":"m"}"#)
                .unwrap();
        let open = |body: &Value| key(Provider::OpenAi, None, body);
        assert_eq!(open(&a), open(&b));
        assert_ne!(open(&a), key(Provider::Anthropic, None, &a));
        let c = json!({"model": "m", "messages": [{"role": "user", "content": "hi!"}]});
        assert_ne!(open(&a), open(&c));
        assert_eq!(open(&a).len(), 64);
    }

    #[test]
    fn a_recording_key_is_as_it_was_and_a_cache_key_names_the_server() {
        let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        // Recordings made before cache keys named the server still replay.
        let old = r#"{"body":{"messages":[{"content":"hi","role":"user"}],"model":"m"},"provider":"openai","v":1}"#;
        let recorded = key(Provider::OpenAi, None, &body);
        assert_eq!(recorded, blake3::hash(old.as_bytes()).to_hex().to_string());
        let a = key(Provider::OpenAi, Some("http://127.0.0.1:8080/v1"), &body);
        let b = key(Provider::OpenAi, Some("http://127.0.0.1:11434/v1"), &body);
        assert!(a != b && a != recorded && b != recorded);
    }
}
