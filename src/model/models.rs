//! `[models.*]`, resolved: providers, URLs, timeouts, limits, sampling
//! parameters and fallbacks, checked once with `file:line:col` errors.
//!
//! Every number is range-checked here, so nothing downstream can overflow
//! on it: a duration computed from a rate, a deadline, a cost or a buffer
//! size is finite and bounded by construction.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustc_hash::FxHashMap as HashMap;
use toml::Spanned;

use super::pipeline::{parse_duration, ModelDef, Pipeline, Source};
pub use super::size::parse_size;
use crate::error::{Diagnostic, Error, Result};

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
    /// Anthropic: what a JSON answer's assistant turn starts with.
    pub prefill: Option<String>,
    pub stream: bool,
    /// More request parameters, sent as they are (`extra_body.rs`).
    pub extra_body: Option<serde_json::Map<String, serde_json::Value>>,
    /// `provider = "replay"`: answered only from recorded answers. The
    /// rest of the config is that of the model it replays, so its
    /// requests (and their keys) are that model's.
    pub replay: Option<Replay>,
}

/// Where a replay model's answers come from.
#[derive(Debug, Clone)]
pub struct Replay {
    /// The folder of recorded answers.
    pub dir: PathBuf,
    /// The model whose requests it answers.
    pub of: usize,
    /// What a build says when `dir` is not a folder (nothing there, or a
    /// file): `file:line:col`, the line and a caret under `dir`.
    pub missing: Diagnostic,
}

/// The duration `key` (`timeout`, spoken of as "a timeout", or
/// `idle_timeout`, named) is set to, else `default`.
fn duration(
    source: &Source,
    key: &str,
    value: &Option<Spanned<toml::Value>>,
    default: Duration,
) -> Result<Duration> {
    match value {
        None => Ok(default),
        Some(v) => parse_duration(v.get_ref(), key).map_err(|m| {
            Error::pipeline(source.diagnostic(v.span(), &m))
                .hint("write a duration as \"90s\", \"10m\", \"1h\" or a number of seconds")
        }),
    }
}

/// `max_retry_wait`: like [`duration`], but zero is allowed (never wait),
/// and its messages name the setting, not "a timeout".
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
    match value {
        _ if zero => Ok(Duration::ZERO),
        None => Ok(default),
        Some(v) => parse_duration(v.get_ref(), "max_retry_wait").map_err(|m| {
            Error::pipeline(source.diagnostic(v.span(), &m)).hint(
                "`max_retry_wait` takes a duration such as \"30s\" or \"5m\", a number of seconds, or 0 to never wait",
            )
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
    let mut models: Vec<Option<ModelConfig>> = Vec::with_capacity(entries.len());
    // Replay models copy the model they replay: resolved after the rest.
    let mut replays = Vec::new();
    for (i, (name, def)) in entries.iter().enumerate() {
        let provider = match def.provider.get_ref().as_str() {
            "openai" => Provider::OpenAi,
            "anthropic" => Provider::Anthropic,
            "replay" => {
                replays.push(i);
                models.push(None);
                continue;
            }
            other => {
                return Err(
                    err(def.provider.span(), &format!("unknown provider `{other}`"))
                        .hint("use \"openai\" (any OpenAI-compatible server), \"anthropic\", or \"replay\" (recorded answers)"),
                )
            }
        };
        for (key, value) in [("dir", &def.dir), ("replays", &def.replays)] {
            if let Some(v) = value {
                return Err(err(v.span(), &format!("`{key}` is for replay models"))
                    .hint("a model answered from recorded answers has provider = \"replay\", dir and replays"));
            }
        }
        let Some(base_url) = &def.base_url else {
            return Err(err(
                name.span(),
                &format!("model `{}` has no `base_url`", name.get_ref()),
            )
            .hint("for example base_url = \"http://127.0.0.1:1234/v1\""));
        };
        let Some(model_name) = &def.model else {
            return Err(err(
                name.span(),
                &format!("model `{}` has no `model`", name.get_ref()),
            )
            .hint("the model name the server knows, such as model = \"qwen3-4b\""));
        };
        let base_url_span = base_url.span();
        let base_url = base_url.get_ref().trim_end_matches('/').to_string();
        if let Some((message, hint)) = super::endpoint::refusal(&base_url) {
            let shown = super::endpoint::frame(&source, base_url_span, &message, false);
            return Err(Error::pipeline(shown).hint(hint));
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
        let prefill = match &def.prefill {
            None => None,
            Some(p) if provider != Provider::Anthropic => {
                return Err(err(p.span(), "`prefill` applies to provider = \"anthropic\"")
                    .hint("remove `prefill`; OpenAI-compatible servers take a schema instead (structured_output)"))
            }
            Some(p) if p.get_ref().trim().is_empty() || p.get_ref().len() > 200 => {
                return Err(err(p.span(), "`prefill` must be 1 to 200 bytes of text, such as \"{\"")
                    .hint("prefill = \"{\" makes the answer start as a JSON object"))
            }
            Some(p) => Some(p.get_ref().clone()),
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
        let fallback = fallbacks(&source, name, def, &index)?;
        models.push(Some(ModelConfig {
            name: name.get_ref().clone(),
            provider,
            base_url,
            model: model_name.get_ref().clone(),
            api_key_env: def.api_key_env.as_ref().map(|e| e.get_ref().clone()),
            timeout: duration(&source, "timeout", &def.timeout, DEFAULT_REQUEST_TIMEOUT)?,
            idle_timeout: duration(
                &source,
                "idle_timeout",
                &def.idle_timeout,
                DEFAULT_IDLE_TIMEOUT,
            )?,
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
            prefill,
            stream: def.stream.unwrap_or(true),
            extra_body: super::extra_body::resolve(&source, &def.extra_body)?,
            replay: None,
        }));
    }
    for i in replays {
        let model = replay_model(pipeline, &entries, i, &index, &models)?;
        models[i] = Some(model);
    }
    Ok((models.into_iter().flatten().collect(), index))
}

/// The models a model falls back to, by index.
fn fallbacks(
    source: &Source,
    name: &Spanned<String>,
    def: &ModelDef,
    index: &HashMap<String, usize>,
) -> Result<Vec<usize>> {
    let mut fallback = Vec::new();
    for f in &def.fallback {
        match index.get(f.get_ref()) {
            Some(_) if f.get_ref() == name.get_ref() => {
                return Err(Error::pipeline(
                    source.diagnostic(f.span(), "a model cannot fall back to itself"),
                )
                .hint("name another [models.NAME] table, or remove the entry"));
            }
            Some(&i) => fallback.push(i),
            None => {
                return Err(Error::pipeline(source.diagnostic(
                    f.span(),
                    &format!("`fallback` names unknown model `{}`", f.get_ref()),
                ))
                .hint(unknown_hint(f.get_ref(), index)))
            }
        }
    }
    Ok(fallback)
}

/// A `provider = "replay"` model: the config of the model it replays
/// (whose requests it answers), its own name and fallbacks, and where its
/// answers are. Keys that would change the request are refused.
fn replay_model(
    pipeline: &Pipeline,
    entries: &[(&Spanned<String>, &ModelDef)],
    i: usize,
    index: &HashMap<String, usize>,
    models: &[Option<ModelConfig>],
) -> Result<ModelConfig> {
    let source = pipeline.source();
    let err = |span: Range<usize>, m: &str| Error::pipeline(source.diagnostic(span, m));
    let (name, def) = entries[i];
    let foreign = [
        ("base_url", def.base_url.as_ref().map(Spanned::span)),
        ("model", def.model.as_ref().map(Spanned::span)),
        ("api_key_env", def.api_key_env.as_ref().map(Spanned::span)),
        ("temperature", def.temperature.as_ref().map(Spanned::span)),
        ("seed", def.seed.as_ref().map(Spanned::span)),
        ("max_tokens", def.max_tokens.as_ref().map(Spanned::span)),
        (
            "structured_output",
            def.structured_output.as_ref().map(Spanned::span),
        ),
        ("prefill", def.prefill.as_ref().map(Spanned::span)),
        ("extra_body", def.extra_body.as_ref().map(Spanned::span)),
    ];
    if let Some((key, Some(span))) = foreign.into_iter().find(|(_, s)| s.is_some()) {
        return Err(err(
            span,
            &format!("`{key}` does not apply to a replay model: it asks exactly what the model it replays would ask"),
        )
        .hint("set it on the model named by `replays`; a replay model takes provider, dir, replays and fallback"));
    }
    let Some(target) = &def.replays else {
        return Err(err(
            name.span(),
            &format!("replay model `{}` has no `replays`", name.get_ref()),
        )
        .hint("name the model whose recorded answers it gives, such as replays = \"local\""));
    };
    let of = match index.get(target.get_ref()) {
        None => {
            return Err(err(
                target.span(),
                &format!("`replays` names unknown model `{}`", target.get_ref()),
            )
            .hint(unknown_hint(target.get_ref(), index)))
        }
        Some(&of) if of == i => {
            return Err(err(target.span(), "a replay model cannot replay itself")
                .hint("name the live model whose answers were recorded"))
        }
        Some(&of) => of,
    };
    let Some(replayed) = &models[of] else {
        return Err(err(
            target.span(),
            &format!("`replays` names `{}`, itself a replay model", target.get_ref()),
        )
        .hint("name the live model whose answers were recorded (provider \"openai\" or \"anthropic\")"));
    };
    let Some(dir) = &def.dir else {
        return Err(err(
            name.span(),
            &format!("replay model `{}` has no `dir`", name.get_ref()),
        )
        .hint("the folder of recorded answers, relative to the pipeline file, such as dir = \"answers\""));
    };
    if dir.get_ref().trim().is_empty() {
        return Err(err(dir.span(), "`dir` is empty")
            .hint("the folder of recorded answers, such as dir = \"answers\""));
    }
    let path = pipeline.dir().join(Path::new(dir.get_ref()));
    let missing = source.diagnostic(
        dir.span(),
        &format!(
            "replay model `{}`: its dir {} {}",
            name.get_ref(),
            path.display(),
            crate::store::wrong_kind::absent_folder(&path, &path)
        ),
    );
    Ok(ModelConfig {
        name: name.get_ref().clone(),
        api_key_env: None,
        max_concurrency: None,
        requests_per_minute: None,
        input_cost_per_mtok: None,
        output_cost_per_mtok: None,
        fallback: fallbacks(&source, name, def, index)?,
        replay: Some(Replay {
            dir: path,
            of,
            missing,
        }),
        ..replayed.clone()
    })
}

/// The hint for an unknown model `name`: the closest model's name when it
/// looks like a typo of one, and the models there are.
pub fn unknown_hint(name: &str, index: &HashMap<String, usize>) -> String {
    match super::source::closest(name, index.keys().map(String::as_str)) {
        Some(near) => format!("did you mean `{near}`? models are: {}", names(index)),
        None => format!("models are: {}", names(index)),
    }
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
