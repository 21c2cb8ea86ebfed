//! Resolving `[models.*]` and the prompt keys of a task into checked,
//! ready-to-use settings: providers, URLs, limits, prompt templates (checked
//! for undefined variables before the build), schemas (compiled once).

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;
use crate::pipeline::{parse_timeout, ModelDef, Pipeline, Source, TaskDef};

/// Default bound on one HTTP request.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(600);
/// Default bound on silence within a stream.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Default number of re-asks after an invalid answer, per model.
pub const DEFAULT_RETRIES: u32 = 2;
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// A JSON Schema an answer must satisfy.
#[derive(Debug)]
pub struct Schema {
    pub path: PathBuf,
    pub text: String,
    pub value: serde_json::Value,
    pub validator: jsonschema::Validator,
}

/// What a prompt task asks, resolved.
#[derive(Debug, Clone)]
pub struct PromptSpec {
    pub template: String,
    /// Where the template comes from, for messages.
    pub template_origin: String,
    pub system: Option<String>,
    pub schema: Option<Arc<Schema>>,
    pub format: Format,
    /// The model asked first (index into the graph's models).
    pub model: usize,
    pub retries: u32,
    /// Fan-out instances: `item`, `key`, `index` or the matrix variables.
    pub vars: crate::fanout::Vars,
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

fn names(index: &HashMap<String, usize>) -> String {
    let mut names: Vec<&str> = index.keys().map(String::as_str).collect();
    names.sort_unstable();
    if names.is_empty() {
        "(none: add a [models.NAME] table)".to_string()
    } else {
        names.join(", ")
    }
}

/// The keys only prompt tasks may have, with their spans.
pub fn prompt_only_keys(task: &TaskDef) -> Vec<(&'static str, Range<usize>)> {
    let mut keys = Vec::new();
    if let Some(v) = &task.system {
        keys.push(("system", v.span()));
    }
    if let Some(v) = &task.schema {
        keys.push(("schema", v.span()));
    }
    if let Some(v) = &task.format {
        keys.push(("format", v.span()));
    }
    if let Some(v) = &task.model {
        keys.push(("model", v.span()));
    }
    if let Some(v) = &task.retries {
        keys.push(("retries", v.span()));
    }
    keys
}

/// Everything a prompt task needs to be resolved.
pub struct PromptContext<'a> {
    pub pipeline: &'a Pipeline,
    pub models: &'a [ModelConfig],
    pub model_index: &'a HashMap<String, usize>,
    /// `--model` or `$PLANEXE_MODEL` for this build.
    pub model_override: Option<&'a str>,
}

/// Resolves a prompt task. `template` is the prompt text (inline or read
/// from `prompt_file`); `inputs` are the task's input paths.
pub fn resolve_prompt(
    ctx: &PromptContext,
    task_name: &str,
    name_span: Range<usize>,
    task: &TaskDef,
    template: (String, String, Range<usize>),
    inputs: &[String],
    vars: crate::fanout::Vars,
) -> Result<PromptSpec> {
    let pipeline = ctx.pipeline;
    let source = pipeline.source();
    let err = |span: Range<usize>, m: &str| Error::pipeline(source.diagnostic(span, m));
    let (template, template_origin, template_span) = template;

    let schema = match &task.schema {
        None => None,
        Some(rel) => {
            let path = pipeline.dir().join(rel.get_ref());
            let text = std::fs::read_to_string(&path).map_err(|e| {
                err(
                    rel.span(),
                    &format!("cannot read schema {}: {e}", path.display()),
                )
                .hint("schema paths are relative to the pipeline file's folder")
            })?;
            let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                err(
                    rel.span(),
                    &format!(
                        "schema {}:{}:{}: not JSON: {e}",
                        rel.get_ref(),
                        e.line(),
                        e.column()
                    ),
                )
            })?;
            let validator = jsonschema::validator_for(&value).map_err(|e| {
                err(
                    rel.span(),
                    &format!("schema {} is not a valid JSON Schema: {e}", rel.get_ref()),
                )
            })?;
            Some(Arc::new(Schema {
                path,
                text,
                value,
                validator,
            }))
        }
    };
    let format = match task.format.as_ref().map(|f| f.get_ref().as_str()) {
        None if schema.is_some() => Format::Json,
        None | Some("text") => {
            if let (Some(f), Some(_)) = (&task.format, &schema) {
                return Err(
                    err(f.span(), "a task with a `schema` answers in JSON, not text")
                        .hint("remove `format`, or set it to \"json\""),
                );
            }
            Format::Text
        }
        Some("json") => Format::Json,
        Some(other) => {
            let span = task.format.as_ref().map_or(name_span.clone(), |f| f.span());
            return Err(
                err(span, &format!("unknown format `{other}`")).hint("use \"text\" or \"json\"")
            );
        }
    };
    let retries = match &task.retries {
        None => DEFAULT_RETRIES,
        Some(r) if *r.get_ref() >= 0 && *r.get_ref() <= 100 => *r.get_ref() as u32,
        Some(r) => return Err(err(r.span(), "`retries` must be between 0 and 100")),
    };

    let named = match (
        ctx.model_override,
        &task.model,
        &pipeline.def.pipeline.model,
    ) {
        (Some(o), _, _) => Some((o.to_string(), None)),
        (None, Some(m), _) => Some((m.get_ref().clone(), Some(m.span()))),
        (None, None, Some(m)) => Some((m.get_ref().clone(), Some(m.span()))),
        (None, None, None) => None,
    };
    let model =
        match named {
            None => return Err(err(
                name_span,
                &format!("prompt task `{task_name}` has no model"),
            )
            .hint(
                "set `model = \"NAME\"` on the task or in [pipeline], naming a [models.NAME] table",
            )),
            Some((m, span)) => match ctx.model_index.get(&m) {
                Some(&i) => i,
                None => {
                    let e = match span {
                        Some(span) => err(span, &format!("unknown model `{m}`")),
                        None => Error::usage(format!(
                            "unknown model `{m}` (from --model or $PLANEXE_MODEL)"
                        )),
                    };
                    return Err(e.hint(format!("models are: {}", names(ctx.model_index))));
                }
            },
        };

    check_template(&template, inputs, task_name, &vars).map_err(|(line, m)| {
        let place = format!("{template_origin}, template line {line}");
        Error::pipeline(source.diagnostic(
            template_span.clone(),
            &format!("prompt of task `{task_name}` ({place}): {m}"),
        ))
        .hint("templates see `inputs` (a map from each input path to its contents) and `task` (the task name)")
    })?;
    if let Some(system) = &task.system {
        check_template(system.get_ref(), inputs, task_name, &vars).map_err(|(line, m)| {
            err(
                system.span(),
                &format!("system text of task `{task_name}`, template line {line}: {m}"),
            )
        })?;
    }

    Ok(PromptSpec {
        template,
        template_origin,
        system: task.system.as_ref().map(|s| s.get_ref().clone()),
        schema,
        format,
        model,
        retries,
        vars,
    })
}

/// The fingerprint of a prompt task: templates, schema, format, and the
/// sampling parameters of the model it names (not of a `--model` override,
/// so switching a run to another model does not re-run finished work).
pub fn prompt_fingerprint(spec: &PromptSpec, sampling: Option<&ModelConfig>) -> String {
    let mut fp = Fingerprint::new("prompt");
    fp.field("prompt", spec.template.as_bytes());
    fp.field("system", spec.system.as_deref().unwrap_or("").as_bytes());
    fp.field(
        "schema",
        spec.schema
            .as_ref()
            .map_or("", |s| s.text.as_str())
            .as_bytes(),
    );
    fp.field(
        "format",
        match spec.format {
            Format::Text => b"text",
            Format::Json => b"json",
        },
    );
    if let Some(m) = sampling {
        fp.field("temperature", format!("{:?}", m.temperature).as_bytes());
        fp.field("max_tokens", format!("{:?}", m.max_tokens).as_bytes());
    }
    fp.finish()
}

/// The template environment: Jinja syntax, undefined values are errors.
pub fn environment() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env
}

/// Renders a template with the task's inputs (and, for a fan-out
/// instance, its variables).
pub fn render(
    template: &str,
    inputs: &std::collections::BTreeMap<String, String>,
    task: &str,
    vars: &crate::fanout::Vars,
) -> std::result::Result<String, String> {
    let env = environment();
    env.render_str(template, context(inputs, task, vars))
        .map_err(|e| describe(&e).1)
}

fn context<V: serde::Serialize>(
    inputs: &std::collections::BTreeMap<String, V>,
    task: &str,
    vars: &crate::fanout::Vars,
) -> minijinja::Value {
    let base = minijinja::context! { inputs => inputs, task => task };
    if vars.is_empty() {
        base
    } else {
        minijinja::context! { ..base, ..minijinja::Value::from_serialize(vars) }
    }
}

fn describe(e: &minijinja::Error) -> (usize, String) {
    let line = e.line().unwrap_or(1);
    let mut message = e.kind().to_string();
    if let Some(detail) = e.detail() {
        message.push_str(": ");
        message.push_str(detail);
    }
    (line, message)
}

/// Renders with empty inputs to find syntax errors and undefined names
/// before anything runs.
fn check_template(
    template: &str,
    inputs: &[String],
    task: &str,
    vars: &crate::fanout::Vars,
) -> std::result::Result<(), (usize, String)> {
    let map: std::collections::BTreeMap<String, String> =
        inputs.iter().map(|p| (p.clone(), String::new())).collect();
    let env = environment();
    env.render_str(template, context(&map, task, vars))
        .map(|_| ())
        .map_err(|e| describe(&e))
}

/// Reads `prompt_file` relative to the pipeline's folder.
pub fn read_prompt_file(pipeline: &Pipeline, rel: &Spanned<String>) -> Result<(String, String)> {
    let path: PathBuf = pipeline.dir().join(rel.get_ref());
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::pipeline(pipeline.source().diagnostic(
            rel.span(),
            &format!("cannot read prompt file {}: {e}", path.display()),
        ))
        .hint("prompt_file is relative to the pipeline file's folder")
    })?;
    Ok((text, display_path(&path, pipeline.dir())))
}

fn display_path(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .map_or_else(|_| path.display().to_string(), |p| p.display().to_string())
}
