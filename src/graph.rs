//! The resolved graph: tasks with normalized paths, edges as indices, a
//! topological order, and each task's fingerprint. Built once from a parsed
//! [`Pipeline`] and checked once: every refusal of a pipeline that cannot be
//! built (bad names, bad paths, missing sources, duplicate producers,
//! unknown `after` tasks, cycles) happens here, before anything runs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use globset::GlobBuilder;

use crate::error::{Error, Result};
use crate::fanout::{self, Vars};
use crate::fingerprint::Fingerprint;
use crate::llm::config::{self as llm_config, ModelConfig, PromptContext, PromptSpec};
use crate::pipeline::{parse_timeout, Pipeline, Source, TaskDef};
use crate::rundir::{self, RunDir, STATE_DIR};
use toml::Spanned;

pub type TaskId = usize;

/// What a task does when it runs.
#[derive(Debug, Clone)]
pub enum Action {
    /// A shell command, run with `sh -c` in the run directory.
    Command(String),
    /// A prompt for a model (handled by the LLM runner).
    Prompt(Box<PromptSpec>),
    /// A `foreach` task whose list file is not built yet: it expands into
    /// instances once it is, and never runs itself.
    Expand(String),
}

impl Action {
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Command(_) => "command",
            Action::Prompt(_) => "prompt",
            Action::Expand(_) => "foreach",
        }
    }
}

/// One input file of a task, after glob expansion.
#[derive(Debug, Clone)]
pub struct Input {
    /// Normalized run-directory-relative path.
    pub path: String,
    /// The task that produces it, if any; otherwise it is a source file.
    pub producer: Option<TaskId>,
    /// Where the input (or the glob it came from) is written.
    pub span: Range<usize>,
}

#[derive(Debug, Clone)]
pub struct Output {
    pub path: String,
    pub span: Range<usize>,
}

#[derive(Debug, Clone)]
pub struct Task {
    pub id: TaskId,
    pub name: String,
    pub name_span: Range<usize>,
    pub inputs: Vec<Input>,
    pub outputs: Vec<Output>,
    /// Tasks this one waits for (producers of inputs, and `after`), sorted.
    pub deps: Vec<TaskId>,
    /// Tasks that wait for this one, sorted.
    pub dependents: Vec<TaskId>,
    pub action: Action,
    pub timeout: Option<Duration>,
    pub fingerprint: String,
}

#[derive(Debug)]
pub struct Graph {
    pub name: String,
    pub jobs: Option<usize>,
    /// In declaration order.
    pub tasks: Vec<Task>,
    pub by_name: HashMap<String, TaskId>,
    /// Output path to the task that produces it.
    pub producers: HashMap<String, TaskId>,
    /// Every task after all of its dependencies.
    pub order: Vec<TaskId>,
    /// `[models.*]`, in declaration order.
    pub models: Vec<ModelConfig>,
    /// Fan-out tasks by name.
    pub fanouts: BTreeMap<String, FanoutGroup>,
    /// `[[hooks]]`, checked.
    pub hooks: Vec<crate::events::HookDef>,
    /// Paths whose existence or listing decided the resolution beyond the
    /// task files themselves: folders a glob walked, and glob patterns that
    /// would be taken literally if such a file appeared.
    pub watched: Vec<String>,
}

/// The tasks a fan-out expanded into.
#[derive(Debug, Clone)]
pub struct FanoutGroup {
    /// Instances in item order (or the placeholder alone).
    pub members: Vec<TaskId>,
    /// Whether the group is a placeholder waiting for its list file.
    pub placeholder: bool,
    /// The list file of a `foreach`.
    pub list: Option<String>,
}

/// A task as the graph sees it before resolution: a plain task, one
/// instance of a fan-out, or the placeholder of an unexpanded `foreach`.
struct Entry<'a> {
    name: String,
    name_span: Range<usize>,
    def: &'a TaskDef,
    vars: Option<Vars>,
    /// The list file, for a placeholder.
    placeholder: Option<String>,
}

/// A fan-out group while the graph is being built.
struct PendingGroup {
    names: Vec<String>,
    ids: Vec<TaskId>,
    placeholder: bool,
    list: Option<String>,
}

/// Turns the parsed tasks into entries, expanding `matrix` tasks and the
/// `foreach` tasks that `expand` allows and whose list file exists.
fn expand_fanouts<'a>(
    source: &Source,
    run_dir: &RunDir,
    sorted: &[(&'a Spanned<String>, &'a TaskDef)],
    expand: &dyn Fn(&str) -> bool,
) -> Result<(Vec<Entry<'a>>, BTreeMap<String, PendingGroup>)> {
    let err = |span: Range<usize>, message: &str| Error::pipeline(source.diagnostic(span, message));
    let mut entries = Vec::new();
    let mut groups = BTreeMap::new();
    for (name, task) in sorted {
        let base = name.get_ref();
        if !valid_task_name(base) {
            return Err(err(
                name.span(),
                &format!("task name `{base}` is not a plain identifier"),
            )
            .hint("use only letters, digits, `-` and `_` in task names"));
        }
        let instances = match (&task.foreach, &task.matrix) {
            (None, None) => {
                entries.push(Entry {
                    name: base.clone(),
                    name_span: name.span(),
                    def: task,
                    vars: None,
                    placeholder: None,
                });
                continue;
            }
            (Some(f), Some(_)) => {
                return Err(err(
                    f.span(),
                    &format!("task `{base}` has both `foreach` and `matrix`"),
                )
                .hint("a task fans out over a list or over a matrix, not both"))
            }
            (None, Some(m)) => Some(fanout::matrix_instances(
                source,
                base,
                m.span(),
                m.get_ref(),
            )?),
            (Some(f), None) => {
                let list = rundir::normalize(&f.get_ref().file)
                    .map_err(|m| err(f.span(), &format!("list file of task `{base}`: {m}")))?;
                let mut def = f.get_ref().clone();
                def.file = list.clone();
                let found = if expand(base) {
                    fanout::foreach_instances(run_dir, base, &def)?
                } else {
                    None
                };
                match found {
                    Some(instances) => {
                        groups.insert(
                            base.clone(),
                            PendingGroup {
                                names: Vec::new(),
                                ids: Vec::new(),
                                placeholder: false,
                                list: Some(list),
                            },
                        );
                        Some(instances)
                    }
                    None => {
                        groups.insert(
                            base.clone(),
                            PendingGroup {
                                names: vec![base.clone()],
                                ids: Vec::new(),
                                placeholder: true,
                                list: Some(list.clone()),
                            },
                        );
                        entries.push(Entry {
                            name: base.clone(),
                            name_span: name.span(),
                            def: task,
                            vars: None,
                            placeholder: Some(list),
                        });
                        None
                    }
                }
            }
        };
        let Some(instances) = instances else { continue };
        let group = groups.entry(base.clone()).or_insert_with(|| PendingGroup {
            names: Vec::new(),
            ids: Vec::new(),
            placeholder: false,
            list: None,
        });
        for instance in instances {
            let name_of = fanout::instance_name(base, &instance.key);
            group.names.push(name_of.clone());
            entries.push(Entry {
                name: name_of,
                name_span: name.span(),
                def: task,
                vars: Some(instance.vars),
                placeholder: None,
            });
        }
    }
    Ok((entries, groups))
}

/// Whether a task name is a plain identifier.
pub fn valid_task_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '[', '{'])
}

impl Graph {
    /// Resolves and checks `pipeline` against the files in `run_dir`.
    /// `model_override` (from `--model` or `$PLANEXE_MODEL`) replaces every
    /// prompt task's model for this invocation.
    pub fn resolve(
        pipeline: &Pipeline,
        run_dir: &RunDir,
        model_override: Option<&str>,
        expand: &dyn Fn(&str) -> bool,
    ) -> Result<Graph> {
        let source = pipeline.source();
        let def = &pipeline.def;
        let err =
            |span: Range<usize>, message: &str| Error::pipeline(source.diagnostic(span, message));

        let jobs = match &def.pipeline.jobs {
            None => None,
            Some(j) if *j.get_ref() >= 1 => Some(*j.get_ref() as usize),
            Some(j) => {
                return Err(err(j.span(), "`jobs` must be at least 1")
                    .hint("remove `jobs` to use one job per CPU"))
            }
        };
        let default_timeout = match &def.pipeline.timeout {
            None => None,
            Some(t) => Some(parse_timeout(t.get_ref()).map_err(|m| {
                err(t.span(), &m)
                    .hint("write a timeout as \"90s\", \"10m\", \"1h\" or a number of seconds")
            })?),
        };
        let name = def.pipeline.name.clone().unwrap_or_else(|| {
            pipeline
                .dir()
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("pipeline")
                .to_string()
        });

        // Declaration order: by position in the file.
        let mut sorted: Vec<_> = def.tasks.iter().collect();
        sorted.sort_by_key(|(name, _)| name.span().start);
        if sorted.is_empty() {
            return Err(
                Error::pipeline(format!("{}: the pipeline has no tasks", source.display))
                    .hint("add a [tasks.NAME] table with a `command`; see docs/pipeline.md"),
            );
        }
        let (entries, mut fanout_names) = expand_fanouts(&source, run_dir, &sorted, expand)?;

        let (models, model_index) = llm_config::resolve_models(pipeline)?;
        let hook_defs: Vec<crate::events::HookDef> =
            def.hooks.iter().map(|h| h.get_ref().clone()).collect();
        let hooks = crate::events::resolve_hooks(&hook_defs).map_err(|m| {
            let span = def.hooks.first().map_or(0..0, |h| h.span());
            err(span, &m)
                .hint("[[hooks]] takes `url` or `command`, and optionally `events` and `format`")
        })?;
        let mut prompt_tasks = Vec::new();
        let mut tasks = Vec::with_capacity(entries.len());
        let mut by_name = HashMap::with_capacity(entries.len());
        let mut producers: HashMap<String, TaskId> = HashMap::new();

        // First pass: names, actions, timeouts, outputs.
        for (id, entry) in entries.iter().enumerate() {
            let task = entry.def;
            let task_name = &entry.name;
            let name_span = entry.name_span.clone();
            let vars = entry.vars.as_ref();
            let render = |text: &str, span: Range<usize>| -> Result<String> {
                match vars {
                    None => Ok(text.to_string()),
                    Some(vars) => fanout::render_field(text, vars).map_err(|m| {
                        err(span, &format!("task `{task_name}`: {m}"))
                            .hint("fan-out fields see `item` and `key` (foreach), or `key` and the matrix variables")
                    }),
                }
            };
            let has_prompt = task.prompt.is_some() || task.prompt_file.is_some();
            let action = match (&task.command, has_prompt) {
                (Some(c), false) => {
                    if let Some((key, span)) = llm_config::prompt_only_keys(task).into_iter().next()
                    {
                        return Err(err(span, &format!("`{key}` only applies to prompt tasks, and `{task_name}` runs a command"))
                            .hint("remove the key, or replace `command` with a `prompt`"));
                    }
                    if let Some(list) = &entry.placeholder {
                        Action::Expand(list.clone())
                    } else {
                        Action::Command(render(c.get_ref(), c.span())?)
                    }
                }
                (None, true) => {
                    if let (Some(_), Some(f)) = (&task.prompt, &task.prompt_file) {
                        return Err(err(
                            f.span(),
                            &format!("task `{task_name}` has both `prompt` and `prompt_file`"),
                        )
                        .hint("keep one: the template inline, or in a file"));
                    }
                    if task.outputs.len() != 1 {
                        return Err(err(
                            name_span.clone(),
                            &format!("prompt task `{task_name}` must have exactly one output (it has {})", task.outputs.len()),
                        )
                        .hint("a prompt task writes the model's answer to its one output"));
                    }
                    if let Some(list) = &entry.placeholder {
                        Action::Expand(list.clone())
                    } else {
                        prompt_tasks.push(id);
                        // Resolved once inputs are known (templates see them).
                        Action::Command(String::new())
                    }
                }
                (None, false) => {
                    return Err(err(
                        name_span.clone(),
                        &format!("task `{task_name}` has neither `command` nor `prompt`"),
                    )
                    .hint(
                        "give the task a `command = \"...\"` to run, or a `prompt` to ask a model",
                    ))
                }
                (Some(_), true) => {
                    let span = task
                        .prompt
                        .as_ref()
                        .or(task.prompt_file.as_ref())
                        .map_or(name_span.clone(), |p| p.span());
                    return Err(err(
                        span,
                        &format!("task `{task_name}` has both `command` and `prompt`"),
                    )
                    .hint(
                        "a task either runs a command or asks a model; split it into two tasks",
                    ));
                }
            };
            if let (Action::Command(c), false) = (&action, has_prompt) {
                if c.trim().is_empty() {
                    let span = task
                        .command
                        .as_ref()
                        .map(|c| c.span())
                        .unwrap_or(name_span.clone());
                    return Err(err(
                        span,
                        &format!("task `{task_name}` has an empty command"),
                    ));
                }
            }
            let timeout = match &task.timeout {
                None => default_timeout,
                Some(t) => Some(parse_timeout(t.get_ref()).map_err(|m| {
                    err(t.span(), &m)
                        .hint("write a timeout as \"90s\", \"10m\", \"1h\" or a number of seconds")
                })?),
            };
            let mut outputs = Vec::new();
            let mut seen = BTreeSet::new();
            let declared: &[Spanned<String>] = if entry.placeholder.is_some() {
                &[]
            } else {
                &task.outputs
            };
            for out in declared {
                let rendered = render(out.get_ref(), out.span())?;
                let path =
                    checked_path(&source, run_dir, &rendered, out.span(), task_name, "output")?;
                if is_glob(&rendered) {
                    return Err(err(
                        out.span(),
                        &format!("output `{rendered}` is a glob pattern"),
                    )
                    .hint("name each output file; globs are allowed only for source inputs"));
                }
                if !seen.insert(path.clone()) {
                    return Err(err(
                        out.span(),
                        &format!("task `{task_name}` lists output `{path}` twice"),
                    ));
                }
                if let Some(&other) = producers.get(&path) {
                    let other: &Task = &tasks[other];
                    return Err(err(
                        out.span(),
                        &format!(
                            "output `{path}` is produced by two tasks: `{}` and `{task_name}`",
                            other.name
                        ),
                    )
                    .hint(format!(
                        "each file has one producer; first declared at {}",
                        source.locate(
                            other
                                .outputs
                                .iter()
                                .find(|o| o.path == path)
                                .map_or(other.name_span.clone(), |o| o.span.clone())
                        )
                    )));
                }
                producers.insert(path.clone(), id);
                outputs.push(Output {
                    path,
                    span: out.span(),
                });
            }
            by_name.insert(task_name.clone(), id);
            tasks.push(Task {
                id,
                name: task_name.clone(),
                name_span: name_span.clone(),
                inputs: Vec::new(),
                outputs,
                deps: Vec::new(),
                dependents: Vec::new(),
                action,
                timeout,
                fingerprint: String::new(),
            });
        }

        // Fan-out groups, by task name: their instances (or placeholder).
        for group in fanout_names.values_mut() {
            group.ids = group
                .names
                .iter()
                .filter_map(|n| by_name.get(n).copied())
                .collect();
        }
        // Source files already found on disk (many tasks read the same).
        let mut checked_sources: std::collections::HashSet<String> = Default::default();
        let mut watched: Vec<String> = Vec::new();
        // Second pass: inputs (with globs), `after`, edges.
        for (id, entry) in entries.iter().enumerate() {
            let task = entry.def;
            let task_name = &entry.name;
            let vars = entry.vars.as_ref();
            let mut inputs: Vec<Input> = Vec::new();
            let mut seen = BTreeSet::new();
            let mut deps = BTreeSet::new();
            // A placeholder waits for its list file only.
            let list_input: Vec<Spanned<String>>;
            let declared: &[Spanned<String>] = match (&entry.placeholder, &task.foreach) {
                (Some(list), Some(f)) => {
                    list_input = vec![Spanned::new(f.span(), list.clone())];
                    &list_input
                }
                _ => &task.inputs,
            };
            for raw in declared {
                let rendered = match vars {
                    None => raw.get_ref().clone(),
                    Some(vars) => fanout::render_field(raw.get_ref(), vars)
                        .map_err(|m| err(raw.span(), &format!("task `{task_name}`: {m}")))?,
                };
                let pattern = rendered.as_str();
                // Naming a fan-out task means all of its instance outputs,
                // in item order.
                if let Some(group) = fanout_names.get(pattern) {
                    if group.ids.contains(&id) {
                        return Err(err(
                            raw.span(),
                            &format!("task `{task_name}` reads its own fan-out `{pattern}`"),
                        ));
                    }
                    for &member in &group.ids {
                        deps.insert(member);
                        for out in &tasks[member].outputs {
                            if seen.insert(out.path.clone()) {
                                inputs.push(Input {
                                    path: out.path.clone(),
                                    producer: Some(member),
                                    span: raw.span(),
                                });
                            }
                        }
                    }
                    continue;
                }
                // A name with glob characters that exists, or that a task
                // produces, is taken literally (`data[1].txt`).
                let literal = rundir::normalize(pattern).is_ok_and(|p| {
                    producers.contains_key(&p)
                        || std::fs::symlink_metadata(run_dir.path(&p)).is_ok()
                });
                if is_glob(pattern) {
                    if let Ok(path) = rundir::normalize(pattern) {
                        watched.push(path);
                    }
                }
                let paths = if is_glob(pattern) && !literal {
                    expand_glob(
                        &source,
                        run_dir,
                        pattern,
                        raw.span(),
                        task_name,
                        &producers,
                        &mut watched,
                    )?
                } else {
                    let path =
                        checked_path(&source, run_dir, pattern, raw.span(), task_name, "input")?;
                    vec![path]
                };
                for path in paths {
                    if !seen.insert(path.clone()) {
                        continue;
                    }
                    let producer = producers.get(&path).copied();
                    match producer {
                        Some(p) if p == id => {
                            return Err(err(
                                raw.span(),
                                &format!("task `{task_name}` reads its own output `{path}`"),
                            ))
                        }
                        Some(p) => {
                            deps.insert(p);
                        }
                        None if checked_sources.contains(&path) => {}
                        None => {
                            let found =
                                crate::stamp::stat_inside(run_dir.root(), &path).map_err(|e| {
                                    err(raw.span(), &format!("input of task `{task_name}`: {e}"))
                                        .hint("name files inside the run directory")
                                })?;
                            if found.is_none() {
                                return Err(err(
                                    raw.span(),
                                    &format!(
                                        "input `{path}` of task `{task_name}` does not exist and no task produces it"
                                    ),
                                )
                                .hint(format!(
                                    "create {path} in {}, or add a task with `outputs = [\"{path}\"]`",
                                    run_dir.root().display()
                                )));
                            }
                            checked_sources.insert(path.clone());
                        }
                    }
                    inputs.push(Input {
                        path,
                        producer,
                        span: raw.span(),
                    });
                }
            }
            for after in &task.after {
                if let Some(group) = fanout_names.get(after.get_ref()) {
                    deps.extend(group.ids.iter().copied().filter(|&m| m != id));
                    continue;
                }
                match by_name.get(after.get_ref()) {
                    Some(&p) if p == id => {
                        return Err(err(
                            after.span(),
                            &format!("task `{task_name}` lists itself in `after`"),
                        ))
                    }
                    Some(&p) => {
                        deps.insert(p);
                    }
                    None => {
                        let mut names: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
                        names.sort_unstable();
                        return Err(err(
                            after.span(),
                            &format!("`after` names unknown task `{}`", after.get_ref()),
                        )
                        .hint(format!("tasks are: {}", names.join(", "))));
                    }
                }
            }
            let t = &mut tasks[id];
            t.inputs = inputs;
            t.deps = deps.into_iter().collect();
        }
        for id in 0..tasks.len() {
            for dep in tasks[id].deps.clone() {
                tasks[dep].dependents.push(id);
            }
        }

        let prompt_ctx = PromptContext {
            pipeline,
            models: &models,
            model_index: &model_index,
            model_override,
        };
        for &id in &prompt_tasks {
            let entry = &entries[id];
            let def = entry.def;
            let template = match (&def.prompt, &def.prompt_file) {
                (Some(p), _) => (p.get_ref().clone(), source.display.to_string(), p.span()),
                (None, Some(f)) => {
                    let (text, shown) = llm_config::read_prompt_file(pipeline, f)?;
                    (text, shown, f.span())
                }
                (None, None) => unreachable!("prompt tasks have a prompt or a prompt_file"),
            };
            let inputs: Vec<String> = tasks[id].inputs.iter().map(|i| i.path.clone()).collect();
            let spec = llm_config::resolve_prompt(
                &prompt_ctx,
                &entry.name,
                entry.name_span.clone(),
                def,
                template,
                &inputs,
                entry.vars.clone().unwrap_or_default(),
            )?;
            // Sampling parameters of the model the file names, not of an
            // override: switching models does not re-run finished tasks.
            let named = def
                .model
                .as_ref()
                .or(pipeline.def.pipeline.model.as_ref())
                .and_then(|m| model_index.get(m.get_ref()))
                .map(|&i| &models[i]);
            tasks[id].fingerprint = llm_config::prompt_fingerprint(&spec, named);
            tasks[id].action = Action::Prompt(Box::new(spec));
        }
        for (task, entry) in tasks.iter_mut().zip(&entries) {
            if !matches!(task.action, Action::Prompt(_)) {
                task.fingerprint = fingerprint(&task.action);
            }
            // An instance is also what its item is.
            if let Some(vars) = &entry.vars {
                let mut fp = Fingerprint::new("instance");
                fp.field("task", task.fingerprint.as_bytes());
                fp.field(
                    "vars",
                    serde_json::to_string(vars).unwrap_or_default().as_bytes(),
                );
                task.fingerprint = fp.finish();
            }
        }

        let order = topological_order(&tasks).map_err(|cycle| {
            let names: Vec<&str> = cycle.iter().map(|&t| tasks[t].name.as_str()).collect();
            err(
                tasks[cycle[0]].name_span.clone(),
                &format!("cycle: {}", names.join(" -> ")),
            )
            .hint(
                "break the cycle: remove an input that the next task produces, or an `after` entry",
            )
        })?;

        Ok(Graph {
            name,
            jobs,
            tasks,
            by_name,
            producers,
            order,
            models,
            hooks,
            watched,
            fanouts: fanout_names
                .into_iter()
                .map(|(name, g)| {
                    (
                        name,
                        FanoutGroup {
                            members: g.ids,
                            placeholder: g.placeholder,
                            list: g.list,
                        },
                    )
                })
                .collect(),
        })
    }

    pub fn task(&self, name: &str) -> Option<&Task> {
        self.by_name.get(name).map(|&id| &self.tasks[id])
    }

    /// The tasks a name on the command line means: one task or instance
    /// (`wbs3[7]`), or every instance of a fan-out task (`wbs3`).
    pub fn named(&self, name: &str) -> Option<Vec<TaskId>> {
        if let Some(&id) = self.by_name.get(name) {
            return Some(vec![id]);
        }
        self.fanouts.get(name).map(|g| g.members.clone())
    }

    /// The tasks `roots` need, transitively, including the roots.
    pub fn closure(&self, roots: &[TaskId]) -> Vec<bool> {
        let mut wanted = vec![false; self.tasks.len()];
        let mut stack: Vec<TaskId> = roots.to_vec();
        while let Some(t) = stack.pop() {
            if !std::mem::replace(&mut wanted[t], true) {
                stack.extend(&self.tasks[t].deps);
            }
        }
        wanted
    }

    /// The tasks that depend on `roots`, transitively, including the roots.
    pub fn downstream(&self, roots: &[TaskId]) -> Vec<bool> {
        let mut marked = vec![false; self.tasks.len()];
        let mut stack: Vec<TaskId> = roots.to_vec();
        while let Some(t) = stack.pop() {
            if !std::mem::replace(&mut marked[t], true) {
                stack.extend(&self.tasks[t].dependents);
            }
        }
        marked
    }

    /// Resolves command-line targets (task names or output paths) to tasks.
    pub fn targets(&self, targets: &[String]) -> Result<Vec<TaskId>> {
        let mut ids = Vec::new();
        for target in targets {
            if let Some(found) = self.named(target) {
                ids.extend(found);
                continue;
            }
            if let Ok(path) = rundir::normalize(target) {
                if let Some(&id) = self.producers.get(&path) {
                    ids.push(id);
                    continue;
                }
            }
            let mut names: Vec<&str> = self.tasks.iter().map(|t| t.name.as_str()).collect();
            names.sort_unstable();
            let shown = if names.len() > 20 {
                format!("{}, ... ({} in all)", names[..20].join(", "), names.len())
            } else {
                names.join(", ")
            };
            return Err(Error::usage(format!(
                "unknown target `{target}`: no task has that name and no task produces that file"
            ))
            .hint(format!("tasks are: {shown}"))
            .hint("run `planexe status` to list tasks"));
        }
        Ok(ids)
    }
}

/// The fingerprint of a command task (prompt tasks: see
/// [`llm_config::prompt_fingerprint`]).
pub fn fingerprint(action: &Action) -> String {
    let mut fp = Fingerprint::new(action.kind());
    if let Action::Command(c) = action {
        fp.field("command", c.as_bytes());
    }
    fp.finish()
}

fn checked_path(
    source: &Source,
    run_dir: &RunDir,
    raw: &str,
    span: Range<usize>,
    task: &str,
    what: &str,
) -> Result<String> {
    let refuse = |m: String| {
        Error::pipeline(source.diagnostic(span.clone(), &format!("{what} of task `{task}`: {m}")))
            .hint("name files relative to the run directory, without `..`")
    };
    let path = rundir::normalize(raw).map_err(refuse)?;
    run_dir.check_inside(&path).map_err(refuse)?;
    Ok(path)
}

/// Expands a glob against source files on disk. Files some task produces
/// are never matched (name them explicitly), nor anything under `.planexe/`.
fn expand_glob(
    source: &Source,
    run_dir: &RunDir,
    pattern: &str,
    span: Range<usize>,
    task: &str,
    producers: &HashMap<String, TaskId>,
    walked: &mut Vec<String>,
) -> Result<Vec<String>> {
    let refuse = |m: String| {
        Error::pipeline(source.diagnostic(span.clone(), &format!("input of task `{task}`: {m}")))
    };
    let normalized = rundir::normalize(pattern).map_err(refuse)?;
    let glob = GlobBuilder::new(&normalized)
        .literal_separator(true)
        .build()
        .map_err(|e| refuse(format!("bad glob pattern: {e}")))?
        .compile_matcher();
    // Walk from the longest literal prefix folder.
    let parts: Vec<&str> = normalized.split('/').collect();
    let literal = parts.iter().take_while(|p| !is_glob(p)).count();
    let base = parts[..literal.min(parts.len() - 1)].join("/");
    let recursive = normalized.contains("**") || parts.len() - literal > 1;
    let mut found = Vec::new();
    let mut stack = vec![base];
    while let Some(dir) = stack.pop() {
        let full = if dir.is_empty() {
            run_dir.root().to_path_buf()
        } else {
            run_dir.path(&dir)
        };
        walked.push(if dir.is_empty() {
            ".".into()
        } else {
            dir.clone()
        });
        let Ok(entries) = std::fs::read_dir(&full) else {
            continue;
        };
        for entry in entries.flatten() {
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if dir.is_empty() && name == STATE_DIR {
                continue;
            }
            let rel = if dir.is_empty() {
                name
            } else {
                format!("{dir}/{name}")
            };
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false)
                || (entry.file_type().map(|t| t.is_symlink()).unwrap_or(false)
                    && Path::new(&run_dir.path(&rel)).is_dir());
            if is_dir {
                if recursive {
                    stack.push(rel);
                }
            } else if glob.is_match(&rel) && !producers.contains_key(&rel) {
                run_dir.check_inside(&rel).map_err(&refuse)?;
                found.push(rel);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Kahn's algorithm; on a cycle, returns the tasks on one cycle in order.
fn topological_order(tasks: &[Task]) -> std::result::Result<Vec<TaskId>, Vec<TaskId>> {
    let mut indegree: Vec<usize> = tasks.iter().map(|t| t.deps.len()).collect();
    let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<TaskId>> = indegree
        .iter()
        .enumerate()
        .filter(|(_, &d)| d == 0)
        .map(|(i, _)| std::cmp::Reverse(i))
        .collect();
    let mut order = Vec::with_capacity(tasks.len());
    while let Some(std::cmp::Reverse(t)) = ready.pop() {
        order.push(t);
        for &d in &tasks[t].dependents {
            indegree[d] -= 1;
            if indegree[d] == 0 {
                ready.push(std::cmp::Reverse(d));
            }
        }
    }
    if order.len() == tasks.len() {
        return Ok(order);
    }
    // Walk dependencies among the remaining tasks until one repeats.
    let start = (0..tasks.len()).find(|&t| indegree[t] > 0).unwrap_or(0);
    let mut path = vec![start];
    let mut position = HashMap::from([(start, 0usize)]);
    let mut current = start;
    loop {
        let Some(&next) = tasks[current].deps.iter().find(|&&d| indegree[d] > 0) else {
            return Err(path);
        };
        if let Some(&i) = position.get(&next) {
            // The cycle runs from `next` through `current`; print it in the
            // direction work flows (producer before consumer).
            let mut cycle: Vec<TaskId> = path[i..].to_vec();
            cycle.reverse();
            cycle.push(cycle[0]);
            return Err(cycle);
        }
        position.insert(next, path.len());
        path.push(next);
        current = next;
    }
}
