//! LLM judges (`[tasks.NAME.judge]`): a model scores a prompt task's
//! answer from 0 to 1 with a reason, under a fixed schema; below the
//! threshold the task's own model is asked again with that reason, and in
//! the end a low score fails the task (or, with `severity = "warn"`, is a
//! quality warning). Resolved and checked here, once, when the pipeline is
//! read; asked in `exec::llm`.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use serde_json::{json, Value};

use super::fingerprint::Fingerprint;
use super::pipeline::{JudgeDef, Pipeline};
use super::schema::Schema;
use super::template::{self, Vars};
use crate::error::{Error, Result};

/// The threshold when a judge names none.
pub const DEFAULT_THRESHOLD: f64 = 0.7;
/// Re-asks with the judge's reason when a judge names none.
pub const DEFAULT_RETRIES: u32 = 1;
/// The longest reason a judge may give (bytes), so its answer ends.
const REASON_MAX: u64 = 400;
/// Enough for `{"score": 0.85, "reason": "..."}` at its longest.
pub const MAX_TOKENS: u64 = 500;

/// A task's judge, resolved.
#[derive(Debug, Clone)]
pub struct Judge {
    /// The judge's prompt template; sees `output`, `inputs`, `task`.
    pub template: String,
    /// The judging model (index into the graph's models).
    pub model: usize,
    pub threshold: f64,
    pub retries: u32,
    /// A low score is a quality warning, not a failure.
    pub warn: bool,
    /// `{"score": number 0..1, "reason": string}`.
    pub schema: Arc<Schema>,
}

/// The schema every judge answers under.
fn schema() -> Result<Arc<Schema>> {
    let value = json!({
        "type": "object",
        "required": ["score", "reason"],
        "properties": {
            "score": {"type": "number", "minimum": 0, "maximum": 1},
            "reason": {"type": "string", "maxLength": REASON_MAX}
        }
    });
    let validator = jsonschema::validator_for(&value)
        .map_err(|e| Error::pipeline(format!("the judge schema does not compile: {e}")))?;
    Ok(Arc::new(Schema {
        path: "(judge)".into(),
        text: value.to_string(),
        value,
        validator,
    }))
}

/// Checks and resolves a task's judge. `task_model` is the model the task
/// asks (the judge's default); `inputs` the task's input paths.
pub fn resolve(
    pipeline: &Pipeline,
    model_index: &HashMap<String, usize>,
    task_name: &str,
    def: &JudgeDef,
    task_model: usize,
    inputs: &[String],
    vars: &Vars,
) -> Result<Judge> {
    let source = pipeline.source();
    let err = |span: Range<usize>, m: &str| Error::pipeline(source.diagnostic(span, m));
    let model = match &def.model {
        None => task_model,
        Some(m) => *model_index.get(m.get_ref()).ok_or_else(|| {
            err(
                m.span(),
                &format!(
                    "unknown model `{}` for the judge of `{task_name}`",
                    m.get_ref()
                ),
            )
            .hint("name a [models.NAME] table, or remove `model` to judge with the task's model")
        })?,
    };
    let threshold = match &def.threshold {
        None => DEFAULT_THRESHOLD,
        Some(t) if (0.0..=1.0).contains(t.get_ref()) => *t.get_ref(),
        Some(t) => {
            return Err(err(t.span(), "`threshold` must be between 0 and 1")
                .hint("a judge scores from 0 (worthless) to 1 (perfect); 0.7 is the default"))
        }
    };
    let retries = match &def.retries {
        None => DEFAULT_RETRIES,
        Some(r) if (0..=10).contains(r.get_ref()) => *r.get_ref() as u32,
        Some(r) => {
            return Err(
                err(r.span(), "`retries` of a judge must be between 0 and 10")
                    .hint("each retry asks the task's model again with the judge's reason"),
            )
        }
    };
    let warn = match def
        .severity
        .as_ref()
        .map(|s| (s.get_ref().as_str(), s.span()))
    {
        None | Some(("error", _)) => false,
        Some(("warn", _)) => true,
        Some((other, span)) => {
            return Err(err(span, &format!("unknown severity `{other}`"))
                .hint("use \"error\" (a low score fails the task) or \"warn\""))
        }
    };
    let mut with_output = vars.clone();
    with_output.insert("output".into(), Value::String(String::new()));
    template::check(def.prompt.get_ref(), inputs, task_name, &with_output).map_err(
        |(line, m)| {
            err(
                def.prompt.span(),
                &format!("judge prompt of task `{task_name}`, template line {line}: {m}"),
            )
            .hint("a judge's prompt sees `output` (the answer), `inputs` and `task`")
        },
    )?;
    Ok(Judge {
        template: def.prompt.get_ref().clone(),
        model,
        threshold,
        retries,
        warn,
        schema: schema()?,
    })
}

/// Adds a judge to a prompt task's fingerprint: changing it re-runs the
/// task (and so judges its answer again).
pub fn fingerprint(fp: &mut Fingerprint, judge: &Judge, model_name: &str) {
    fp.field("judge_prompt", judge.template.as_bytes());
    fp.field("judge_model", model_name.as_bytes());
    fp.field("judge_threshold", judge.threshold.to_string().as_bytes());
    fp.field("judge_retries", judge.retries.to_string().as_bytes());
    fp.field("judge_warn", if judge.warn { b"1" } else { b"0" });
}
