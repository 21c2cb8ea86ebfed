//! A request to a model in its wire format: OpenAI-compatible
//! `/chat/completions` or Anthropic `/messages`, its URL, headers (the key
//! among them, never logged) and body, as it is sent ([`wire`]: a schema
//! in its file's order) and as it is recorded ([`body`]: sorted). Pure
//! functions over JSON; no I/O here.

use serde_json::{json, Value};

use super::json_instruction;
use crate::model::models::{ModelConfig, Provider, Structured, DEFAULT_ANTHROPIC_MAX_TOKENS};
use crate::model::prompt::Schema;

/// One turn of the conversation.
#[derive(Debug, Clone)]
pub struct Message {
    /// `user` or `assistant`.
    pub role: &'static str,
    pub content: String,
}

/// What the request asks for.
pub struct Request<'a> {
    pub model: &'a ModelConfig,
    pub system: Option<&'a str>,
    pub messages: &'a [Message],
    /// Ask for JSON (with this schema, if any).
    pub json: bool,
    pub schema: Option<&'a Schema>,
    /// The task's own answer length limit, over the model's.
    pub max_tokens: Option<u64>,
}

/// The URL of the endpoint.
pub fn endpoint(model: &ModelConfig) -> String {
    match model.provider {
        Provider::OpenAi => format!("{}/chat/completions", model.base_url),
        Provider::Anthropic => format!("{}/messages", model.base_url),
    }
}

/// Request headers, the key among them (never logged).
pub fn headers(model: &ModelConfig, key: Option<&str>) -> Vec<(&'static str, String)> {
    let mut headers = vec![("content-type", "application/json".to_string())];
    match model.provider {
        Provider::OpenAi => {
            if let Some(key) = key {
                headers.push(("authorization", format!("Bearer {key}")));
            }
        }
        Provider::Anthropic => {
            headers.push(("anthropic-version", "2023-06-01".to_string()));
            if let Some(key) = key {
                headers.push(("x-api-key", key.to_string()));
            }
        }
    }
    if model.stream {
        headers.push(("accept", "text/event-stream".to_string()));
    }
    headers
}

/// The answer's token limit a request sends: the task's, else the
/// model's, else (Anthropic, which needs one) planexe's default.
pub fn token_limit(task: Option<u64>, m: &ModelConfig) -> Option<u64> {
    task.or(m.max_tokens).or(match m.provider {
        Provider::Anthropic => Some(DEFAULT_ANTHROPIC_MAX_TOKENS),
        _ => None,
    })
}

/// What is sent: [`body`], but for the schema, in its file's order
/// (`ordered.rs`), in `response_format` and in the system text alike.
pub fn wire(req: &Request) -> String {
    let body = with_extra(req, own_body(req, true));
    match req.schema {
        Some(schema) if req.json && req.model.provider == Provider::OpenAi => {
            let path = ["response_format", "json_schema", "schema"];
            super::ordered::compact_with(&body, &path, &schema.text)
        }
        _ => body.to_string(),
    }
}

/// The JSON body of a request, with the model's `extra_body`: what its
/// recording key is made of. Its maps are sorted, the schema's too, in the
/// system text as well: a schema whose keys were only put in another
/// order keeps its recorded answers, as it did before schemas were sent
/// in their order.
pub fn body(req: &Request) -> Value {
    with_extra(req, own_body(req, false))
}

/// `body` with the model's `extra_body`.
fn with_extra(req: &Request, mut body: Value) -> Value {
    if let (Some(extra), Some(map)) = (&req.model.extra_body, body.as_object_mut()) {
        map.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    body
}

/// The JSON body of a request, as planexe writes it; the schema in the
/// system text `in_order` (its file's) or sorted.
fn own_body(req: &Request, in_order: bool) -> Value {
    let m = req.model;
    let messages: Vec<Value> = req
        .messages
        .iter()
        .map(|msg| json!({"role": msg.role, "content": msg.content}))
        .collect();
    match m.provider {
        Provider::OpenAi => {
            let mut all = Vec::with_capacity(messages.len() + 1);
            // Without `response_format` (`structured_output = "none"`),
            // only the system text can ask for JSON, as for Anthropic; a
            // `json_object` one holds no schema, so the system text gives
            // it (and says "JSON", which OpenAI's `json_object` requires
            // of the messages).
            let system = match m.structured {
                Structured::None | Structured::JsonObject => json_instruction::system(
                    req.system,
                    req.json,
                    req.schema,
                    m.structured,
                    in_order,
                ),
                Structured::JsonSchema => req.system.map(str::to_string),
            };
            if let Some(system) = system {
                all.push(json!({"role": "system", "content": system}));
            }
            all.extend(messages);
            let mut body = json!({"model": m.model, "messages": all});
            if let Some(t) = m.temperature {
                body["temperature"] = json!(t);
            }
            if let Some(n) = token_limit(req.max_tokens, m) {
                body["max_tokens"] = json!(n);
            }
            if let Some(seed) = m.seed {
                body["seed"] = json!(seed);
            }
            if m.stream {
                body["stream"] = json!(true);
                body["stream_options"] = json!({"include_usage": true});
            }
            if req.json {
                match (m.structured, req.schema) {
                    (Structured::JsonSchema, Some(schema)) => {
                        body["response_format"] = json!({
                            "type": "json_schema",
                            "json_schema": {"name": "answer", "schema": schema.value}
                        });
                    }
                    (Structured::JsonSchema | Structured::JsonObject, _) => {
                        body["response_format"] = json!({"type": "json_object"});
                    }
                    (Structured::None, _) => {}
                }
            }
            body
        }
        Provider::Anthropic => {
            // Anthropic has no response_format: the schema goes in the
            // system text (unless `structured_output = "none"`: small
            // models copy a schema instead of following it), and the
            // answer is validated regardless.
            let system =
                json_instruction::system(req.system, req.json, req.schema, m.structured, in_order)
                    .unwrap_or_default();
            let mut messages = messages;
            if let Some(prefill) = m.prefill.as_deref().filter(|_| req.json) {
                // The assistant's turn starts here; the answer continues it.
                messages.push(json!({"role": "assistant", "content": prefill}));
            }
            let mut body = json!({
                "model": m.model,
                "max_tokens": token_limit(req.max_tokens, m).unwrap_or(DEFAULT_ANTHROPIC_MAX_TOKENS),
                "messages": messages,
            });
            if !system.is_empty() {
                body["system"] = json!(system);
            }
            if let Some(t) = m.temperature {
                body["temperature"] = json!(t);
            }
            if m.stream {
                body["stream"] = json!(true);
            }
            body
        }
    }
}
