//! LLM judges (`[tasks.NAME.judge]`): a model scores what a task wrote
//! from 0 to 1 with a reason, under a fixed schema. Below the threshold a
//! prompt task's own model is asked again with that reason (a command task
//! is run again with it in `$PLANEXE_JUDGE_REASON`), and in the end a low
//! score fails the task (or, with `severity = "warn"`, is a quality
//! warning). A judge is one of the task's output checks
//! ([`super::checks::Checks`]): changing it judges the current outputs
//! again rather than re-running the task. Resolved and checked here, once,
//! when the pipeline is read; asked in `exec::llm`.

use std::ops::Range;
use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;
use serde_json::{json, Value};
use toml::Spanned;

use super::fingerprint::Fingerprint;
use super::pipeline::{JudgeDef, Pipeline};
use super::schema::Schema;
use super::template::{self, Item, Vars};
use crate::error::{Error, Result};

/// The threshold when a judge names none.
pub const DEFAULT_THRESHOLD: f64 = 0.7;
/// Re-asks of a prompt task's model with the judge's reason when a judge
/// names none. A command task is run again only when `retries` says so.
pub const DEFAULT_RETRIES: u32 = 1;
/// The longest reason a judge may give (bytes), so its answer ends.
const REASON_MAX: u64 = 400;
/// Enough for `{"score": 0.85, "reason": "..."}` at its longest.
pub const MAX_TOKENS: u64 = 500;

/// A task's judge, resolved.
#[derive(Debug, Clone)]
pub struct Judge {
    /// The judge's prompt template; sees `output`, `outputs`, `inputs`,
    /// `task`.
    pub template: String,
    /// The judging model (index into the graph's models).
    pub model: usize,
    /// The model as the pipeline names it (none: the task's), for the
    /// fingerprint: a `--model` override does not change it.
    pub model_named: Option<String>,
    pub threshold: f64,
    pub retries: u32,
    /// A low score is a quality warning, not a failure.
    pub warn: bool,
    /// `{"score": number 0..1, "reason": string}`.
    pub schema: Arc<Schema>,
}

/// Steps of the scores a judge is asked for on servers that enforce a
/// schema by grammar: 0, 0.05, ..., 1.
const SCORE_STEPS: u32 = 20;

/// The schema every judge answers under. What is accepted is a number from
/// 0 to 1; what servers are sent lists the scores in steps of 0.05, since
/// grammar-constrained decoding (llama.cpp, ...) enforces a list of values
/// but not a number's `minimum` and `maximum`: a small model asked for a
/// number scores 3 or 8 on a scale of its own and never ends up in range.
fn schema() -> Result<Arc<Schema>> {
    let shape = |score: Value| {
        json!({
            "type": "object",
            "required": ["score", "reason"],
            "properties": {
                "score": score,
                "reason": {"type": "string", "maxLength": REASON_MAX}
            }
        })
    };
    let steps: Vec<Value> = (0..=SCORE_STEPS)
        .map(|i| json!(f64::from(i) / f64::from(SCORE_STEPS)))
        .collect();
    let asked = shape(json!({"type": "number", "enum": steps}));
    let accepted = shape(json!({"type": "number", "minimum": 0, "maximum": 1}));
    let validator = jsonschema::validator_for(&accepted)
        .map_err(|e| Error::pipeline(format!("the judge schema does not compile: {e}")))?;
    Ok(Arc::new(Schema {
        path: "(judge)".into(),
        text: asked.to_string(),
        value: asked,
        validator,
    }))
}

/// What a judge is resolved for.
pub struct JudgeContext<'a> {
    pub pipeline: &'a Pipeline,
    pub model_index: &'a HashMap<String, usize>,
    pub task_name: &'a str,
    /// The judge's default model: the one a prompt task asks, or for a
    /// command task `--model` or `[pipeline] model` (none: the judge must
    /// name one).
    pub default_model: Option<usize>,
    /// A command task: re-runs are not the default.
    pub command: bool,
    /// The task's input and output paths, for the template check.
    pub inputs: &'a [String],
    pub outputs: &'a [String],
    /// A fan-out instance's variables; `None` for the placeholder of a
    /// `foreach` whose list is not built (any item: the template's names
    /// are checked).
    pub vars: Option<&'a Vars>,
}

/// Checks and resolves a task's judge.
pub fn resolve(ctx: &JudgeContext, def: &Spanned<JudgeDef>) -> Result<Judge> {
    let source = ctx.pipeline.source();
    let task_name = ctx.task_name;
    let err = |span: Range<usize>, m: &str| Error::pipeline(source.diagnostic(span, m));
    let (def_span, def) = (def.span(), def.get_ref());
    let model = match &def.model {
        None => ctx.default_model.ok_or_else(|| {
            err(
                def_span.clone(),
                &format!("the judge of command task `{task_name}` has no model"),
            )
            .hint("set `model = \"NAME\"` in the judge's table, or a default `model` in [pipeline]")
        })?,
        Some(m) => *ctx.model_index.get(m.get_ref()).ok_or_else(|| {
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
        None if ctx.command => 0,
        None => DEFAULT_RETRIES,
        Some(r) if (0..=10).contains(r.get_ref()) => *r.get_ref() as u32,
        Some(r) => {
            return Err(
                err(r.span(), "`retries` of a judge must be between 0 and 10")
                    .hint("each retry asks the task's model again (or runs its command again) with the judge's reason"),
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
    let blank: serde_json::Map<String, Value> = ctx
        .outputs
        .iter()
        .map(|p| (p.clone(), Value::String(String::new())))
        .collect();
    let vars = ctx
        .vars
        .map(|vars| judged_vars(vars, String::new(), Value::Object(blank)));
    let item = match &vars {
        Some(vars) => Item::Known(vars),
        None => Item::Any(&["output", "outputs"]),
    };
    if def.prompt.get_ref().trim().is_empty() {
        return Err(err(
            def.prompt.span(),
            &format!("the judge prompt of task `{task_name}` is empty"),
        )
        .hint("write what the judge scores, such as prompt = \"Score this plan from 0 to 10: {{ output }}\""));
    }
    template::check(def.prompt.get_ref(), ctx.inputs, task_name, item).map_err(|(line, m)| {
        err(
            def.prompt.span(),
            &format!("judge prompt of task `{task_name}`, template line {line}: {m}"),
        )
        .hint("a judge's prompt sees `output` (the text of the first output), `outputs` (each output's text by path), `inputs` and `task`")
    })?;
    Ok(Judge {
        template: def.prompt.get_ref().clone(),
        model,
        model_named: def.model.as_ref().map(|m| m.get_ref().clone()),
        threshold,
        retries,
        warn,
        schema: schema()?,
    })
}

/// The variables a judge's prompt sees besides `inputs` and `task`, as the
/// check of its template before the build gives them: a fan-out
/// instance's, `output` (the text of the first output) and `outputs` (each
/// output's text by path). A build renders it with the outputs read as it
/// names them ([`super::template::render_judged`]).
pub fn judged_vars(vars: &Vars, output: String, outputs: Value) -> Vars {
    let mut vars = vars.clone();
    vars.insert("output".into(), Value::String(output));
    vars.insert("outputs".into(), outputs);
    vars
}

/// The score and reason in a judge's accepted answer (the schema held: a
/// number from 0 to 1 and a string).
pub fn read_answer(text: &str) -> (f64, String) {
    let value: Value = serde_json::from_str(text).unwrap_or_default();
    let score = value["score"].as_f64().unwrap_or(0.0).clamp(0.0, 1.0);
    (score, value["reason"].as_str().unwrap_or("").to_string())
}

/// Adds a judge to a task's checks' fingerprint: changing it judges the
/// current outputs again (see [`super::checks::Checks::seal`]).
pub fn fingerprint(fp: &mut Fingerprint, judge: &Judge) {
    fp.field("judge_prompt", judge.template.as_bytes());
    fp.field(
        "judge_model",
        judge.model_named.as_deref().unwrap_or("").as_bytes(),
    );
    fp.field("judge_threshold", judge.threshold.to_string().as_bytes());
    fp.field("judge_retries", judge.retries.to_string().as_bytes());
    fp.field("judge_warn", if judge.warn { b"1" } else { b"0" });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_asked_for_steps_and_any_score_in_range_is_accepted() {
        let schema = schema().unwrap();
        let steps = schema.value["properties"]["score"]["enum"]
            .as_array()
            .unwrap();
        assert_eq!(steps.len(), 21);
        assert_eq!(steps[1], json!(0.05));
        assert_eq!(steps[20], json!(1.0));
        let ok = |score: Value| {
            schema
                .validator
                .is_valid(&json!({"score": score, "reason": "r"}))
        };
        assert!(ok(json!(0.87)) && ok(json!(0)) && ok(json!(1)));
        assert!(!ok(json!(3.0)) && !ok(json!(-0.1)) && !ok(json!("0.5")));
    }
}
