//! `[models.*]`, resolved: providers, URLs, timeouts, limits, sampling
//! parameters and fallbacks, checked once with `file:line:col` errors.

use std::collections::HashMap;
use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use super::pipeline::{parse_timeout, ModelDef, Pipeline, Source};
use crate::error::{Error, Result};

/// Default bound on one HTTP request.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(600);
/// Default bound on silence within a stream.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Anthropic requires `max_tokens`; this is used when a model sets none.
pub const DEFAULT_ANTHROPIC_MAX_TOKENS: u64 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// `/chat/completions`, as OpenAI, LM Studio, Ollama, vLLM, llama.cpp.
    OpenAi,
    /// `/messages`.
    Anthropic,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
        }
    }
}

/// How a server is asked for JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Structured {
    JsonSchema,
    JsonObject,
    None,
}

/// One model endpoint, resolved.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub name: String,
    pub provider: Provider,
    /// Without a trailing slash.
    pub base_url: String,
    pub model: String,
    pub api_key_env: Option<String>,
    pub timeout: Duration,
    pub idle_timeout: Duration,
    pub max_concurrency: Option<usize>,
    pub requests_per_minute: Option<f64>,
    pub temperature: Option<f64>,
    pub max_tokens: Option<u64>,
    pub input_cost_per_mtok: Option<f64>,
    pub output_cost_per_mtok: Option<f64>,
    /// Indices of fallback models, in order.
    pub fallback: Vec<usize>,
    pub structured: Structured,
    pub stream: bool,
}

fn duration(
    source: &Source,
    value: &Option<Spanned<toml::Value>>,
    default: Duration,
) -> Result<Duration> {
    match value {
        None => Ok(default),
        Some(v) => parse_timeout(v.get_ref()).map_err(|m| {
            Error::pipeline(source.diagnostic(v.span(), &m))
                .hint("write a duration as \"90s\", \"10m\", \"1h\" or a number of seconds")
        }),
    }
}

/// Resolves `[models.*]` in declaration order.
pub fn resolve_models(pipeline: &Pipeline) -> Result<(Vec<ModelConfig>, HashMap<String, usize>)> {
    let source = pipeline.source();
    let err = |span: Range<usize>, m: &str| Error::pipeline(source.diagnostic(span, m));
    let mut entries: Vec<(&Spanned<String>, &ModelDef)> = pipeline.def.models.iter().collect();
    entries.sort_by_key(|(n, _)| n.span().start);
    let index: HashMap<String, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, (n, _))| (n.get_ref().clone(), i))
        .collect();
    let mut models = Vec::with_capacity(entries.len());
    for (name, def) in &entries {
        let provider = match def.provider.get_ref().as_str() {
            "openai" => Provider::OpenAi,
            "anthropic" => Provider::Anthropic,
            other => {
                return Err(
                    err(def.provider.span(), &format!("unknown provider `{other}`"))
                        .hint("use \"openai\" (any OpenAI-compatible server) or \"anthropic\""),
                )
            }
        };
        let base_url = def.base_url.get_ref().trim_end_matches('/').to_string();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(err(
                def.base_url.span(),
                "`base_url` must start with http:// or https://",
            )
            .hint("for example \"http://127.0.0.1:1234/v1\""));
        }
        let positive = |v: &Option<Spanned<i64>>, key: &str| -> Result<Option<u64>> {
            match v {
                None => Ok(None),
                Some(n) if *n.get_ref() >= 1 => Ok(Some(*n.get_ref() as u64)),
                Some(n) => Err(err(n.span(), &format!("`{key}` must be at least 1"))),
            }
        };
        let max_concurrency =
            positive(&def.max_concurrency, "max_concurrency")?.map(|n| n as usize);
        let max_tokens = positive(&def.max_tokens, "max_tokens")?;
        let requests_per_minute = match &def.requests_per_minute {
            None => None,
            Some(r) if *r.get_ref() > 0.0 && r.get_ref().is_finite() => Some(*r.get_ref()),
            Some(r) => return Err(err(r.span(), "`requests_per_minute` must be positive")),
        };
        let structured = match def.structured_output.as_ref().map(|s| s.get_ref().as_str()) {
            None | Some("json_schema") => Structured::JsonSchema,
            Some("json_object") => Structured::JsonObject,
            Some("none") => Structured::None,
            Some(other) => {
                let span = def
                    .structured_output
                    .as_ref()
                    .map_or(name.span(), |s| s.span());
                return Err(err(span, &format!("unknown structured_output `{other}`"))
                    .hint("use \"json_schema\", \"json_object\" or \"none\""));
            }
        };
        if let Some(env) = &def.api_key_env {
            let valid = !env.get_ref().is_empty()
                && env
                    .get_ref()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(err(env.span(), "`api_key_env` names an environment variable, not a key")
                    .hint("write the variable's name, such as \"OPENAI_API_KEY\"; keys never go in pipeline files"));
            }
        }
        let mut fallback = Vec::new();
        for f in &def.fallback {
            match index.get(f.get_ref()) {
                Some(&i) if f.get_ref() == name.get_ref() => {
                    let _ = i;
                    return Err(err(f.span(), "a model cannot fall back to itself"));
                }
                Some(&i) => fallback.push(i),
                None => {
                    return Err(err(
                        f.span(),
                        &format!("`fallback` names unknown model `{}`", f.get_ref()),
                    )
                    .hint(format!("models are: {}", names(&index))))
                }
            }
        }
        models.push(ModelConfig {
            name: name.get_ref().clone(),
            provider,
            base_url,
            model: def.model.clone(),
            api_key_env: def.api_key_env.as_ref().map(|e| e.get_ref().clone()),
            timeout: duration(&source, &def.timeout, DEFAULT_REQUEST_TIMEOUT)?,
            idle_timeout: duration(&source, &def.idle_timeout, DEFAULT_IDLE_TIMEOUT)?,
            max_concurrency,
            requests_per_minute,
            temperature: def.temperature,
            max_tokens,
            input_cost_per_mtok: def.input_cost_per_mtok,
            output_cost_per_mtok: def.output_cost_per_mtok,
            fallback,
            structured,
            stream: def.stream.unwrap_or(true),
        });
    }
    Ok((models, index))
}

pub fn names(index: &HashMap<String, usize>) -> String {
    let mut names: Vec<&str> = index.keys().map(String::as_str).collect();
    names.sort_unstable();
    if names.is_empty() {
        "(none: add a [models.NAME] table)".to_string()
    } else {
        names.join(", ")
    }
}

/// A model and its fallbacks, depth first, each once.
pub fn chain(models: &[ModelConfig], first: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut stack = vec![first];
    while let Some(m) = stack.pop() {
        if out.contains(&m) {
            continue;
        }
        out.push(m);
        for &f in models[m].fallback.iter().rev() {
            stack.push(f);
        }
    }
    out
}
