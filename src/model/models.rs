//! `[models.*]`, resolved: providers, URLs, timeouts, limits, sampling
//! parameters and fallbacks, checked once with `file:line:col` errors.
//!
//! Every number is range-checked here, so nothing downstream can overflow
//! on it: a duration computed from a rate, a deadline, a cost or a buffer
//! size is finite and bounded by construction.

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
/// Default bound on one answer: far above any real answer, far below what
/// hurts a machine.
pub const DEFAULT_MAX_ANSWER_BYTES: u64 = 4 * 1024 * 1024;
/// The largest `max_answer_bytes` accepted.
pub const MAX_ANSWER_BYTES_CEILING: u64 = 1024 * 1024 * 1024;
/// Default bound on a wait a server asks for (`Retry-After`).
pub const DEFAULT_MAX_RETRY_WAIT: Duration = Duration::from_secs(300);
/// `requests_per_minute` bounds: one request every 1000 minutes at least,
/// so the spacing between requests is a representable duration.
const MIN_RPM: f64 = 0.001;
const MAX_RPM: f64 = 1_000_000.0;
/// No server takes more tokens than this in one answer.
const MAX_TOKENS_CEILING: i64 = u32::MAX as i64;
/// Prices above this (USD per million tokens) are typos, and would let a
/// cost overflow to infinity.
const MAX_COST_PER_MTOK: f64 = 1_000_000.0;

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
    /// Sampling seed (OpenAI-compatible servers; Anthropic has none).
    pub seed: Option<u64>,
    pub input_cost_per_mtok: Option<f64>,
    pub output_cost_per_mtok: Option<f64>,
    /// Bound on the text of one answer, and (with room for the JSON around
    /// it) on what is read of one response.
    pub max_answer_bytes: u64,
    /// The longest wait a server may ask for before the model is given up
    /// for its fallback; also caps the backoff between retries.
    pub max_retry_wait: Duration,
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

/// Like [`duration`], but zero is allowed (never wait).
fn wait(
    source: &Source,
    value: &Option<Spanned<toml::Value>>,
    default: Duration,
) -> Result<Duration> {
    let zero = value.as_ref().is_some_and(|v| match v.get_ref() {
        toml::Value::Integer(0) => true,
        toml::Value::Float(f) => *f == 0.0,
        toml::Value::String(s) => humantime::parse_duration(s.trim()).is_ok_and(|d| d.is_zero()),
        _ => false,
    });
    if zero {
        return Ok(Duration::ZERO);
    }
    duration(source, value, default)
}

/// Parses a size: a number of bytes, or a string such as `"4 MiB"`,
/// `"512KB"` (units B, KB, MB, GB and KiB, MiB, GiB).
pub fn parse_size(value: &toml::Value) -> std::result::Result<u64, String> {
    let bytes = match value {
        toml::Value::Integer(n) => {
            u64::try_from(*n).map_err(|_| format!("invalid size {n}: it must be positive"))?
        }
        toml::Value::String(s) => {
            let t = s.trim();
            let split = t
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(t.len());
            let (number, unit) = t.split_at(split);
            let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
                "" | "b" => 1,
                "kb" => 1000,
                "mb" => 1000 * 1000,
                "gb" => 1000 * 1000 * 1000,
                "kib" => 1024,
                "mib" => 1024 * 1024,
                "gib" => 1024 * 1024 * 1024,
                _ => {
                    return Err(format!(
                        "invalid size {s:?}: unknown unit {:?}",
                        unit.trim()
                    ))
                }
            };
            let n: f64 = number.parse().map_err(|_| {
                format!("invalid size {s:?}: expected a number and a unit such as \"4 MiB\"")
            })?;
            let bytes = n * multiplier as f64;
            if !(bytes.is_finite() && bytes <= u64::MAX as f64) {
                return Err(format!("invalid size {s:?}: too large"));
            }
            bytes as u64
        }
        other => {
            return Err(format!(
                "invalid size {other}: expected a number of bytes or a string such as \"4 MiB\""
            ))
        }
    };
    Ok(bytes)
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
                Some(n) => Err(err(n.span(), &format!("`{key}` must be at least 1"))
                    .hint(format!("leave `{key}` out for no limit"))),
            }
        };
        // A huge limit is no limit: it only counts requests.
        let max_concurrency = positive(&def.max_concurrency, "max_concurrency")?
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        let max_tokens = positive(&def.max_tokens, "max_tokens")?;
        if let Some(n) = def
            .max_tokens
            .as_ref()
            .filter(|n| *n.get_ref() > MAX_TOKENS_CEILING)
        {
            return Err(err(
                n.span(),
                &format!("`max_tokens` can be at most {MAX_TOKENS_CEILING}"),
            )
            .hint(
                "no server answers with more tokens; leave max_tokens out for the server's default",
            ));
        }
        let seed = match &def.seed {
            None => None,
            Some(s) => Some(u64::try_from(*s.get_ref()).map_err(|_| {
                err(s.span(), "`seed` must be 0 or more")
                    .hint("any whole number from 0 up, such as 42")
            })?),
        };
        let requests_per_minute = match &def.requests_per_minute {
            None => None,
            Some(r) if (MIN_RPM..=MAX_RPM).contains(r.get_ref()) => Some(*r.get_ref()),
            Some(r) => {
                return Err(err(
                    r.span(),
                    &format!(
                        "`requests_per_minute` must be between {MIN_RPM} and {MAX_RPM}, not {:?}",
                        r.get_ref()
                    ),
                )
                .hint("0.001 is one request every 1000 minutes; leave the key out for no limit"))
            }
        };
        // TOML allows nan and inf; none of them means anything here.
        let number =
            |v: &Option<Spanned<f64>>, key: &str, max: f64, hint: &str| -> Result<Option<f64>> {
                match v {
                    None => Ok(None),
                    Some(x) if x.get_ref().is_finite() && (0.0..=max).contains(x.get_ref()) => {
                        Ok(Some(*x.get_ref()))
                    }
                    Some(x) => {
                        let range = if max == f64::MAX {
                            "a finite number, at least 0".to_string()
                        } else {
                            format!("a number from 0 to {max}")
                        };
                        Err(err(
                            x.span(),
                            &format!("`{key}` must be {range}, not {:?}", x.get_ref()),
                        )
                        .hint(hint.to_string()))
                    }
                }
            };
        let temperature = number(
            &def.temperature,
            "temperature",
            f64::MAX,
            "most servers take 0 to 2; leave it out for the server's default",
        )?;
        let price_hint = "prices are USD per million tokens, such as 0.15";
        let input_cost_per_mtok = number(
            &def.input_cost_per_mtok,
            "input_cost_per_mtok",
            MAX_COST_PER_MTOK,
            price_hint,
        )?;
        let output_cost_per_mtok = number(
            &def.output_cost_per_mtok,
            "output_cost_per_mtok",
            MAX_COST_PER_MTOK,
            price_hint,
        )?;
        let max_answer_bytes = match &def.max_answer_bytes {
            None => DEFAULT_MAX_ANSWER_BYTES,
            Some(v) => match parse_size(v.get_ref()) {
                Ok(n) if (1..=MAX_ANSWER_BYTES_CEILING).contains(&n) => n,
                Ok(n) => {
                    return Err(err(
                        v.span(),
                        &format!("`max_answer_bytes` must be from 1 byte to 1 GiB, not {n} bytes"),
                    )
                    .hint("the default is \"4 MiB\""))
                }
                Err(m) => {
                    return Err(err(v.span(), &m)
                        .hint("write a size as a number of bytes or \"4 MiB\", \"512 KiB\""))
                }
            },
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
                Some(_) if f.get_ref() == name.get_ref() => {
                    return Err(err(f.span(), "a model cannot fall back to itself")
                        .hint("name another [models.NAME] table, or remove the entry"));
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
            temperature,
            max_tokens,
            seed,
            input_cost_per_mtok,
            output_cost_per_mtok,
            max_answer_bytes,
            max_retry_wait: wait(&source, &def.max_retry_wait, DEFAULT_MAX_RETRY_WAIT)?,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let s = |t: &str| parse_size(&toml::Value::String(t.into()));
        assert_eq!(parse_size(&toml::Value::Integer(4096)), Ok(4096));
        assert_eq!(s("4 MiB"), Ok(4 * 1024 * 1024));
        assert_eq!(s("512KB"), Ok(512_000));
        assert_eq!(s("1.5 KiB"), Ok(1536));
        assert_eq!(s("7"), Ok(7));
        assert!(s("4 parsecs").is_err());
        assert!(s("MiB").is_err());
        assert!(s("1e400 GiB").is_err());
        assert!(s("99999999999999999999999 GiB").is_err());
        assert!(parse_size(&toml::Value::Integer(-1)).is_err());
        assert!(parse_size(&toml::Value::Float(1.0)).is_err());
    }
}
