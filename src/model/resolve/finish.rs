//! Pass 5 of resolution: a prompt task's prompt and any task's judge,
//! resolved once its inputs are known, and every task's fingerprint
//! sealed (what it does, what checks it, and for an instance its item).
//! [`Resolver::finished`] reads the graph and writes nothing, so that
//! tasks can be finished at once; [`Finished::apply`] puts what it found
//! in the graph.

use toml::Spanned;

use super::super::advice::Trouble;
use super::super::fingerprint::Fingerprint;
use super::super::graph::{Action, Graph, TaskId};
use super::super::judge::{self, JudgeContext};
use super::super::list_schema::{self, Part};
use super::super::models;
use super::super::prompt::{self, PromptContext, PromptSpec};
use super::super::template::Vars;
use super::Resolver;
use crate::error::{Error, Result};

/// What [`Resolver::finished`] found for one task, for
/// [`Finished::apply`] to put in the graph.
pub(super) struct Finished {
    id: TaskId,
    /// A prompt task's resolved prompt.
    action: Option<Action>,
    /// A placeholder's: the models its instances will ask.
    asks: Option<Vec<usize>>,
    judge: Option<judge::Judge>,
    fingerprint: String,
    action_fingerprint: String,
    template_fingerprint: Option<String>,
}

impl Finished {
    pub(super) fn apply(self, graph: &mut Graph) {
        let task = &mut graph.tasks[self.id];
        if let Some(action) = self.action {
            task.action = action;
        }
        if let Some(asks) = self.asks {
            task.origin.asks = asks;
        }
        if let Some(judge) = self.judge {
            task.checks.judge = Some(judge);
        }
        task.fingerprint = self.fingerprint;
        task.action_fingerprint = self.action_fingerprint;
        task.template_fingerprint = self.template_fingerprint;
    }
}

impl Resolver<'_> {
    /// Resolves the prompt of a prompt task and the judge of any task (its
    /// inputs known), and seals every task's fingerprint: what it does,
    /// what checks it, and for an instance its item.
    pub(super) fn finish_task(&self, graph: &mut Graph, id: TaskId) -> Result<()> {
        let finished = self.finished(graph, id)?;
        finished.apply(graph);
        Ok(())
    }

    /// [`Resolver::finish_task`], the graph unchanged: what reads the graph
    /// and the disk, so that tasks can be finished at once.
    pub(super) fn finished(&self, graph: &Graph, id: TaskId) -> Result<Finished> {
        let task = &graph.tasks[id];
        let def = self.def(&task.origin.def);
        let placeholder = task.origin.placeholder.is_some();
        let has_prompt = def.prompt.is_some() || def.prompt_file.is_some();
        let is_prompt = has_prompt && !placeholder;
        let inputs: Vec<String> = task.inputs.iter().map(|i| i.path.clone()).collect();
        let vars = task.origin.vars.clone().unwrap_or_default();
        let mut action = None;
        // A placeholder's prompt is checked as its instances' will be, for
        // any item (a typo found before the tasks its list waits for run):
        // the model its instances and its judge will ask.
        let placeholder_model = match (placeholder, has_prompt) {
            (true, true) => Some(self.prompt_of(graph, id, None)?.model),
            _ => None,
        };
        let (fingerprint, task_model) = if is_prompt {
            let mut spec = self.prompt_of(graph, id, Some(vars.clone()))?;
            // Sampling parameters of the model the file names, not of an
            // override: switching models does not re-run finished work.
            let named = def
                .model
                .as_ref()
                .or(self.pipeline.def.pipeline.model.as_ref())
                .and_then(|m| self.model_index.get(m.get_ref()))
                .map(|&i| &graph.models[i]);
            let fingerprint = prompt::prompt_fingerprint(&spec, named);
            spec.sampling = named.map(prompt::sampling);
            let model = spec.model;
            action = Some(Action::Prompt(Box::new(spec)));
            (fingerprint, Some(model))
        } else {
            // A command's judge asks `--model`, else `[pipeline] model`.
            let model = match (&graph.model_override, &self.pipeline.def.pipeline.model) {
                (Some((from, m)), _) if def.judge.is_some() => {
                    Some(*self.model_index.get(m).ok_or_else(|| {
                        Error::usage(format!(
                            "unknown model `{m}` ({})",
                            graph.advice.hint(&Trouble::ModelOverride { from: *from })
                        ))
                        .hint(models::unknown_hint(m, &self.model_index))
                    })?)
                }
                (Some(_), _) => None,
                (None, m) => m
                    .as_ref()
                    .and_then(|m| self.model_index.get(m.get_ref()).copied()),
            };
            (task.action.fingerprint(), model)
        };
        // An instance before its item is put in: a prompt's fingerprint
        // holds its templates; a command's is of the text rendered.
        let template_fingerprint = task.origin.vars.as_ref().map(|_| match &def.command {
            Some(command) if !is_prompt => Fingerprint::new("command template")
                .field("command", command.get_ref().as_bytes())
                .finish(),
            _ => fingerprint.clone(),
        });
        let mut asks = None;
        if placeholder {
            // The models its instances will ask, known before its list.
            let named = |m: Option<&Spanned<String>>| {
                graph
                    .model_override
                    .as_ref()
                    .map(|(_, m)| m.as_str())
                    .or(m.map(|m| m.get_ref().as_str()))
                    .or(self
                        .pipeline
                        .def
                        .pipeline
                        .model
                        .as_ref()
                        .map(|m| m.get_ref().as_str()))
                    .and_then(|m| self.model_index.get(m).copied())
            };
            let prompt = def.prompt.is_some() || def.prompt_file.is_some();
            let mut models: Vec<usize> = Vec::new();
            models.extend(named(def.model.as_ref()).filter(|_| prompt));
            if let Some(judge) = &def.judge {
                let own = judge.get_ref().model.as_ref();
                models.extend(match own {
                    Some(m) => self.model_index.get(m.get_ref()).copied(),
                    None => named(def.model.as_ref()),
                });
            }
            asks = Some(models);
        }
        let mut judged = None;
        if let Some(judge_def) = &def.judge {
            let outputs: Vec<String> = task.outputs.iter().map(|o| o.path.clone()).collect();
            let ctx = JudgeContext {
                pipeline: self.pipeline,
                model_index: &self.model_index,
                task_name: &task.name,
                default_model: placeholder_model.or(task_model),
                command: !has_prompt,
                inputs: &inputs,
                outputs: &outputs,
                vars: (!placeholder).then_some(&vars),
            };
            let judge = judge::resolve(&ctx, judge_def)?;
            // A placeholder's is checked for any item, and kept by none.
            judged = (!placeholder).then_some(judge);
        }
        let instance = |fingerprint: String| match &task.origin.vars {
            None => fingerprint,
            // An instance is also what its item is.
            Some(vars) => {
                let mut fp = Fingerprint::new("instance");
                fp.field("task", fingerprint.as_bytes());
                fp.field(
                    "vars",
                    serde_json::to_string(vars).unwrap_or_default().as_bytes(),
                );
                fp.finish()
            }
        };
        // What checks the task, its judge included.
        let sealed = match &judged {
            None => task.checks.seal(fingerprint.clone()),
            Some(judge) => {
                let mut checks = task.checks.clone();
                checks.judge = Some(judge.clone());
                checks.seal(fingerprint.clone())
            }
        };
        Ok(Finished {
            id,
            action,
            asks,
            judge: judged,
            fingerprint: instance(sealed),
            action_fingerprint: instance(fingerprint),
            template_fingerprint,
        })
    }

    /// Refuses a `foreach` whose list a prompt task writes under a JSON
    /// Schema when no answer the schema allows has an array at its
    /// `items`: a typo (`/step` for `/steps`) found before the model is
    /// asked, not once its answer fails the fan-out.
    pub(super) fn lists_under_schemas(&self, graph: &Graph) -> Result<()> {
        // In the file's order: the first refusal is the first fan-out's.
        let placeholders = graph
            .listing
            .iter()
            .map(|&t| &graph[t])
            .filter(|t| t.origin.placeholder.is_some());
        for name in placeholders.map(|t| &t.origin.def) {
            let Some(group) = graph.fanouts.get(name) else {
                continue;
            };
            let (Some(list), true) = (&group.list, group.placeholder) else {
                continue;
            };
            let Some(producer) = graph.producer(list) else {
                continue;
            };
            let Action::Prompt(spec) = &graph[producer].action else {
                continue;
            };
            let (Some(schema), Some(foreach)) = (&spec.schema, &self.def(name).foreach) else {
                continue;
            };
            let (items, key) = (&foreach.get_ref().items, foreach.get_ref().key.as_deref());
            let Err((part, why)) = list_schema::check(&schema.value, items, key) else {
                continue;
            };
            let writer = &graph[producer];
            let file = self.def(&writer.origin.def).schema.as_ref().map_or_else(
                || schema.path.display().to_string(),
                |s| s.get_ref().clone(),
            );
            let hint = match (part, list_schema::arrays(&schema.value).as_slice()) {
                (Part::Key, _) => format!("`key` names a field of each item that is a string or a number; remove it to number the items, or give {file} one"),
                (Part::Items, []) => format!("`items` is a JSON pointer to the list in the answer, and {file} allows no array in it: give the list's task a schema with one"),
                (Part::Items, found) => format!(
                    "`items` is a JSON pointer to the list in the answer; {file} allows {}",
                    found.iter().map(|p| format!("items = \"{p}\"")).collect::<Vec<_>>().join(", ")
                ),
            };
            let at = match part {
                Part::Items => String::new(),
                Part::Key => format!(" the list at `{items}`:"),
            };
            return Err(self
                .err(
                    foreach.span(),
                    &format!(
                        "task `{name}`: its list {list} is the answer of task `{}` under the schema {file}, where{at} {why}",
                        writer.name
                    ),
                )
                .hint(hint));
        }
        Ok(())
    }

    /// The prompt of task `id`, a prompt task (`vars`: an instance's
    /// variables; `None`: a placeholder's, any item).
    fn prompt_of(&self, graph: &Graph, id: TaskId, vars: Option<Vars>) -> Result<PromptSpec> {
        let task = &graph.tasks[id];
        let def = self.def(&task.origin.def);
        let (text, origin, span) = match (&def.prompt, &def.prompt_file) {
            (Some(p), _) => (
                p.get_ref().clone(),
                self.source.display.to_string(),
                p.span(),
            ),
            (None, Some(f)) => {
                let (text, shown) =
                    prompt::read_prompt_file(self.pipeline, self.run_dir, &task.name, f)?;
                self.reads
                    .file(prompt::read_path(self.pipeline, f), text.as_bytes());
                (text, shown, f.span())
            }
            (None, None) => unreachable!("prompt tasks have a prompt or a prompt_file"),
        };
        let ctx = PromptContext {
            pipeline: self.pipeline,
            models: &graph.models,
            model_index: &self.model_index,
            model_override: graph.model_override.as_ref().map(|(k, m)| (*k, m.as_str())),
            advice: graph.advice.clone(),
            run_dir: self.run_dir,
            reads: &self.reads,
        };
        // A placeholder reads its list; its instances, what `inputs` says.
        let inputs: Vec<String> = match &vars {
            Some(_) => task.inputs.iter().map(|i| i.path.clone()).collect(),
            None => def.inputs.iter().map(|i| i.get_ref().clone()).collect(),
        };
        prompt::resolve_prompt(
            &ctx,
            &task.name,
            task.name_span.clone(),
            def,
            (text, origin, span),
            &inputs,
            vars,
        )
    }
}
