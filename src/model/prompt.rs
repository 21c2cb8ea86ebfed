//! Prompt tasks, resolved: the template (inline or from `prompt_file`,
//! checked for undefined names before the build), the system text, the
//! schema (compiled once), the answer format, whether a text answer keeps
//! its reasoning, the model asked first and how often it is re-asked; and
//! the fingerprint of all of it.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;
use toml::Spanned;

use super::advice::{Advice, ModelSourceKind, Trouble};
use super::fingerprint::Fingerprint;
use super::limits;
use super::models::{self, ModelConfig};
use super::pipeline::{Pipeline, TaskDef};
use super::reads::Reads;
use super::template::{self, Item, Vars};
use super::template_files::Files;
use crate::error::{Error, Result};
use crate::store::{wrong_kind, RunDir};

/// Default number of re-asks after an invalid answer, per model.
pub const DEFAULT_RETRIES: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

impl Format {
    /// Its name, as a task's `format` is written.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Json => "json",
        }
    }
}

pub use super::schema::Schema;

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
    /// The task's own answer length limit (over the model's `max_tokens`).
    pub max_tokens: Option<u64>,
    /// Write a text answer's leading reasoning (`<think>…</think>`) too.
    pub keep_reasoning: bool,
    /// Fan-out instances: `item`, `key`, `index` or the matrix variables.
    pub vars: Vars,
    /// A task's judge asks, for a score, not the task itself: its calls
    /// are marked so in `usage.jsonl`.
    pub judge: bool,
    /// The sampling parameters of the model the task names, as its
    /// fingerprint has them ([`sampling`]); `None` when it names none.
    pub sampling: Option<String>,
}

impl PromptSpec {
    /// What `explain` compares of a prompt task with its last run:
    /// everything its fingerprint covers ([`prompt_fingerprint`]), each
    /// line named by what it holds (every line of the schema too), so that
    /// a changed schema or model parameter shows, not only a changed
    /// template.
    pub fn definition(&self) -> String {
        let mut out = String::new();
        if let Some(sampling) = &self.sampling {
            out.push_str(&format!("sampling: {sampling}\n"));
        }
        if let Some(n) = self.max_tokens {
            out.push_str(&format!("max_tokens: {n}\n"));
        }
        if self.keep_reasoning {
            out.push_str("keep_reasoning: true\n");
        }
        out.push_str(&format!("format: {}\n", self.format.as_str()));
        if let Some(schema) = &self.schema {
            for line in schema.text.lines() {
                out.push_str(&format!("schema: {line}\n"));
            }
        }
        if let Some(system) = &self.system {
            out.push_str(&format!("system: {system}\n"));
        }
        // A fan-out instance is also what its item is.
        if !self.vars.is_empty() {
            let vars = serde_json::to_string(&self.vars).unwrap_or_default();
            out.push_str(&format!("vars: {vars}\n"));
        }
        out.push_str(&format!("prompt: {}", self.template));
        out
    }

    /// The prompt and the system text, rendered with the task's inputs
    /// (and an instance's variables): what its first request asks.
    pub fn render(&self, inputs: &Files, task: &str) -> Result<(String, Option<String>), String> {
        let prompt = template::render(&self.template, inputs, task, &self.vars)?;
        let system = match &self.system {
            Some(s) => Some(template::render(s, inputs, task, &self.vars)?),
            None => None,
        };
        Ok((prompt, system))
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
    if let Some(v) = &task.max_tokens {
        keys.push(("max_tokens", v.span()));
    }
    if let Some(v) = &task.keep_reasoning {
        keys.push(("keep_reasoning", v.span()));
    }
    keys
}

/// Everything a prompt task needs to be resolved.
pub struct PromptContext<'a> {
    pub pipeline: &'a Pipeline,
    pub models: &'a [ModelConfig],
    pub model_index: &'a HashMap<String, usize>,
    /// The model override for this build, and where it came from.
    pub model_override: Option<(ModelSourceKind, &'a str)>,
    /// Where the override came from, in the caller's terms.
    pub advice: Advice,
    /// Where `prompt_file` and `schema` may also lie (besides the pipeline's
    /// folder).
    pub run_dir: &'a RunDir,
    /// Where the schema file is noted as read.
    pub reads: &'a Reads,
}

/// Resolves a prompt task. `template` is the prompt text (inline or read
/// from `prompt_file`); `inputs` are the task's input paths; `vars` a
/// fan-out instance's variables, `None` for the placeholder of a `foreach`
/// whose list is not built (its templates' names are checked, and
/// everything else as for an instance).
pub fn resolve_prompt(
    ctx: &PromptContext,
    task_name: &str,
    name_span: Range<usize>,
    task: &TaskDef,
    template: (String, String, Range<usize>),
    inputs: &[String],
    vars: Option<Vars>,
) -> Result<PromptSpec> {
    let pipeline = ctx.pipeline;
    let source = pipeline.source();
    let err = |span: Range<usize>, m: &str| Error::pipeline(source.diagnostic(span, m));
    let (template, template_origin, template_span) = template;

    let schema = match &task.schema {
        None => None,
        Some(rel) => {
            let (path, text) = read_beside(ctx.pipeline, ctx.run_dir, task_name, rel, "schema")?;
            ctx.reads.file(read_path(pipeline, rel), text.as_bytes());
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
                .hint(
                    "a schema file holds one JSON Schema document, such as {\"type\": \"object\"}",
                )
            })?;
            let validator = jsonschema::validator_for(&value).map_err(|e| {
                err(
                    rel.span(),
                    &format!("schema {} is not a valid JSON Schema: {e}", rel.get_ref()),
                )
                .hint("see https://json-schema.org for what a schema may say")
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
        Some(r) => {
            return Err(err(r.span(), "`retries` must be between 0 and 100")
                .hint("remove `retries` for the default of 2"))
        }
    };
    let max_tokens = match &task.max_tokens {
        None => None,
        Some(n) if (1..=i64::from(u32::MAX)).contains(n.get_ref()) => Some(*n.get_ref() as u64),
        Some(n) => {
            return Err(err(
                n.span(),
                &format!("`max_tokens` must be between 1 and {}", u32::MAX),
            )
            .hint("remove `max_tokens` for the model's"))
        }
    };
    let keep_reasoning = match &task.keep_reasoning {
        Some(k) if *k.get_ref() && format == Format::Json => return Err(err(
            k.span(),
            "`keep_reasoning` applies to text answers; a JSON answer never includes the reasoning",
        )
        .hint("remove `keep_reasoning`, or set `format = \"text\"`")),
        Some(k) => *k.get_ref(),
        None => false,
    };

    // Where the model's name comes from: a key of the file, or an override.
    enum NamedBy {
        /// The key's span, and what it is to this task.
        Key(Range<usize>, String),
        Override(ModelSourceKind),
    }
    let named = match (
        ctx.model_override,
        &task.model,
        &pipeline.def.pipeline.model,
    ) {
        (Some((from, o)), _, _) => Some((o.to_string(), NamedBy::Override(from))),
        (None, Some(m), _) => Some((
            m.get_ref().clone(),
            NamedBy::Key(m.span(), format!("the `model` of task `{task_name}`")),
        )),
        (None, None, Some(m)) => Some((
            m.get_ref().clone(),
            NamedBy::Key(
                m.span(),
                format!("the pipeline's default `model`, which task `{task_name}` asks"),
            ),
        )),
        (None, None, None) => None,
    };
    let model = match named {
        None => {
            return Err(err(
                name_span,
                &format!("prompt task `{task_name}` has no model"),
            )
            .hint(
                "set `model = \"NAME\"` on the task or in [pipeline], naming a [models.NAME] table",
            ))
        }
        Some((m, named_by)) => match ctx.model_index.get(&m) {
            Some(&i) => i,
            None => {
                let e = match named_by {
                    NamedBy::Key(span, key) => err(span, &format!("unknown model `{m}` ({key})")),
                    NamedBy::Override(from) => Error::usage(format!(
                        "unknown model `{m}` ({})",
                        ctx.advice.hint(&Trouble::ModelOverride { from })
                    )),
                };
                return Err(e.hint(models::unknown_hint(&m, ctx.model_index)));
            }
        },
    };

    if template.trim().is_empty() {
        return Err(Error::pipeline(source.diagnostic(
            template_span.clone(),
            &match task.prompt_file {
                Some(_) => {
                    format!("the prompt file {template_origin} of task `{task_name}` is empty")
                }
                None => format!("the prompt of task `{task_name}` is empty"),
            },
        ))
        .hint("write what to ask the model: the prompt is the user message of the request"));
    }
    let item = match &vars {
        Some(vars) => Item::Known(vars),
        None => Item::Any(&[]),
    };
    template::check(&template, inputs, task_name, item).map_err(|(line, m)| {
        let place = format!("{template_origin}, template line {line}");
        Error::pipeline(source.diagnostic(
            template_span.clone(),
            &format!("prompt of task `{task_name}` ({place}): {m}"),
        ))
        .hint(template_sees(inputs))
    })?;
    if let Some(system) = &task.system {
        template::check(system.get_ref(), inputs, task_name, item).map_err(|(line, m)| {
            err(
                system.span(),
                &format!("system text of task `{task_name}`, template line {line}: {m}"),
            )
            .hint("the system text is a template too: it sees `inputs`, `task` and a fan-out's variables")
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
        max_tokens,
        keep_reasoning,
        vars: vars.unwrap_or_default(),
        judge: false,
        sampling: None,
    })
}

/// The fingerprint of a prompt task: templates, schema, format, and the
/// sampling parameters of the model it names (not of a `--model` override,
/// so switching a run to another model does not re-run finished work). A
/// judge is one of the task's checks ([`super::checks::Checks::seal`]).
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
    fp.field("format", spec.format.as_str().as_bytes());
    // Only when set, so fingerprints of existing tasks stay as they were.
    if spec.keep_reasoning {
        fp.field("keep_reasoning", b"true");
    }
    if let Some(n) = spec.max_tokens {
        fp.field("task_max_tokens", n.to_string().as_bytes());
    }
    if let Some(m) = sampling {
        fp.field("temperature", format!("{:?}", m.temperature).as_bytes());
        fp.field("max_tokens", format!("{:?}", m.max_tokens).as_bytes());
        if let Some(seed) = m.seed {
            fp.field("seed", seed.to_string().as_bytes());
        }
        if let Some(prefill) = &m.prefill {
            fp.field("prefill", prefill.as_bytes());
        }
        if let Some(extra) = &m.extra_body {
            fp.field(
                "extra_body",
                serde_json::Value::Object(extra.clone())
                    .to_string()
                    .as_bytes(),
            );
        }
    }
    fp.finish()
}

/// The sampling parameters of `model` a prompt task's fingerprint covers,
/// as its definition shows them: `temperature 0.2, max_tokens 300`
/// (`default` for one the model leaves to the server).
pub fn sampling(model: &ModelConfig) -> String {
    let or_default = |v: Option<String>| v.unwrap_or_else(|| "default".into());
    let mut line = format!(
        "temperature {}, max_tokens {}",
        or_default(model.temperature.map(|t| t.to_string())),
        or_default(model.max_tokens.map(|n| n.to_string()))
    );
    if let Some(seed) = model.seed {
        line.push_str(&format!(", seed {seed}"));
    }
    if let Some(prefill) = &model.prefill {
        line.push_str(&format!(", prefill {prefill:?}"));
    }
    if let Some(extra) = &model.extra_body {
        line.push_str(&format!(
            ", extra_body {}",
            serde_json::Value::Object(extra.clone())
        ));
    }
    line
}

/// Reads `prompt_file` relative to the pipeline's folder: its text, and
/// how messages name it.
pub fn read_prompt_file(
    pipeline: &Pipeline,
    run_dir: &RunDir,
    task_name: &str,
    rel: &Spanned<String>,
) -> Result<(String, String)> {
    let (path, text) = read_beside(pipeline, run_dir, task_name, rel, "prompt file")?;
    Ok((text, display_path(&path, pipeline.dir())))
}

/// How [`crate::model::Graph::source_paths`] names a file a prompt task
/// names (its prompt file or schema): beside the pipeline file.
pub fn read_path(pipeline: &Pipeline, rel: &Spanned<String>) -> String {
    pipeline
        .dir()
        .join(rel.get_ref())
        .to_string_lossy()
        .into_owned()
}

/// Reads a file a prompt task names (`what`: its prompt file or schema),
/// relative to the pipeline file's folder. Its contents go to a model, so
/// it must lie, symlinks resolved, in that folder or in the run directory,
/// as inputs must: never `/etc/passwd` or `../elsewhere/secret`.
fn read_beside(
    pipeline: &Pipeline,
    run_dir: &RunDir,
    task_name: &str,
    rel: &Spanned<String>,
    what: &str,
) -> Result<(PathBuf, String)> {
    let path = pipeline.dir().join(rel.get_ref());
    let refuse = |m: String, hint: &str| {
        Error::pipeline(pipeline.source().diagnostic(
            rel.span(),
            &format!("{what} `{}` of task `{task_name}`: {m}", rel.get_ref()),
        ))
        .hint(hint.to_string())
    };
    const RELATIVE: &str = "prompt_file and schema are relative to the pipeline file's folder";
    let real = std::fs::canonicalize(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            refuse(format!("{} does not exist", path.display()), RELATIVE)
        }
        std::io::ErrorKind::NotADirectory => refuse(
            format!(
                "cannot read {}: {}",
                path.display(),
                wrong_kind::why(&path, Path::new(rel.get_ref()), &e)
            ),
            &wrong_kind::hint(rel.get_ref()),
        ),
        _ => refuse(format!("cannot read {}: {e}", path.display()), RELATIVE),
    })?;
    let beside = std::fs::canonicalize(pipeline.dir()).unwrap_or_else(|_| pipeline.dir().into());
    if !real.starts_with(&beside) && !real.starts_with(run_dir.root()) {
        return Err(refuse(
            format!(
                "{} lies outside the pipeline file's folder and the run directory",
                real.display()
            ),
            "a prompt task reads only files in the pipeline file's folder or the run directory (symlinks resolved), as its contents go to the model: move or copy the file there",
        ));
    }
    // A FIFO or a device would block or never end.
    if real.metadata().is_ok_and(|m| !m.is_file() && !m.is_dir()) {
        return Err(refuse(
            format!("{} is not a regular file", path.display()),
            RELATIVE,
        ));
    }
    let bytes = limits::read_bounded(&real)
        .map_err(|e| refuse(format!("cannot read {}: {e}", path.display()), RELATIVE))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        refuse(
            format!(
                "{} is not UTF-8 (offset {})",
                path.display(),
                e.utf8_error().valid_up_to()
            ),
            "save the file as UTF-8 text",
        )
    })?;
    Ok((path, text))
}

fn display_path(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .map_or_else(|_| path.display().to_string(), |p| p.display().to_string())
}

/// The hint under a prompt template's error: what the template sees,
/// with this task's input paths (the keys `inputs` has).
fn template_sees(inputs: &[String]) -> String {
    const SHOWN: usize = 8;
    let keys = if inputs.is_empty() {
        "this task has no inputs".to_string()
    } else {
        let mut keys: Vec<String> = inputs
            .iter()
            .take(SHOWN)
            .map(|p| format!("'{p}'"))
            .collect();
        if inputs.len() > SHOWN {
            keys.push(format!("and {} more", inputs.len() - SHOWN));
        }
        format!("this task's: {}", keys.join(", "))
    };
    format!(
        "templates see `inputs` (each input path to its contents; {keys}), `task` (the task name) and a fan-out's variables"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(template: &str) -> PromptSpec {
        PromptSpec {
            template: template.into(),
            template_origin: "pipeline.toml".into(),
            system: None,
            schema: None,
            format: Format::Text,
            model: 0,
            retries: 2,
            max_tokens: None,
            keep_reasoning: false,
            vars: Vars::new(),
            judge: false,
            sampling: None,
        }
    }

    /// The definition `explain` diffs names every part the fingerprint
    /// covers, an instance's item included, each on lines of its own.
    #[test]
    fn a_definition_holds_what_the_fingerprint_covers() {
        assert_eq!(
            spec("Plan it").definition(),
            "format: text\nprompt: Plan it"
        );
        let mut full = spec("About {{ item }}");
        full.sampling = Some("temperature 0.2, max_tokens 300".into());
        full.max_tokens = Some(50);
        full.keep_reasoning = true;
        full.system = Some("Be brief.".into());
        full.vars.insert("item".into(), serde_json::json!("pears"));
        assert_eq!(
            full.definition(),
            "sampling: temperature 0.2, max_tokens 300\nmax_tokens: 50\nkeep_reasoning: true\n\
             format: text\nsystem: Be brief.\nvars: {\"item\":\"pears\"}\nprompt: About {{ item }}"
        );
    }
}
