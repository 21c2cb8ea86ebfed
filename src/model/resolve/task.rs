//! Pass 2 of resolution: a task's action (command, prompt, or the
//! placeholder of a `foreach`), its timeout and its outputs, with the
//! checks that need no inputs: one of `command` or `prompt`, keys that only
//! apply to prompt tasks, one producer per file, no glob outputs, and no
//! output that is the pipeline file itself (a task's outputs are moved
//! aside before it runs, and `clean` deletes them).
//!
//! What a task's table alone decides ([`prepare`]) needs no graph, so a
//! pipeline of many tasks has it found at once on the pool's threads; who
//! else produces an output, and the task's id, are decided one task after
//! another, in the listing's order ([`commit`]).

use std::collections::BTreeSet;
use std::ops::Range;

use toml::Spanned;

use super::super::checks::Checks;
use super::super::graph::{Action, Graph, Origin, Output, Task, TaskId};
use super::super::pipeline::parse_timeout;
use super::super::prompt;
use super::super::shell_template;
use super::super::template::{self, Vars};
use super::entries::Entry;
use super::paths::{checked_path, is_glob};
use super::Resolver;
use crate::error::Result;

/// How a fan-out field is rendered for an instance: as a template, or as
/// a command (its values quoted for the shell).
type Render = fn(&str, &Vars) -> std::result::Result<String, String>;

/// What pass 2 finds of one task from its table alone.
pub(super) struct Prepared {
    action: Action,
    timeout: Option<std::time::Duration>,
    checks: Checks,
    /// Its outputs, as far as they were found: each is checked against
    /// the other tasks' outputs, in order, before `error` is given.
    outputs: Vec<Output>,
    /// What is wrong with the output after the last of `outputs` (or, for
    /// an output that is the pipeline file, with the last of them).
    error: Option<crate::error::Error>,
}

/// Adds the task of `entry` to the graph with a new id (its inputs come
/// in pass 4; its place in the listing is the caller's) and returns the id.
pub(super) fn add(r: &Resolver, graph: &mut Graph, entry: &Entry) -> Result<TaskId> {
    let prepared = prepare(r, entry)?;
    commit(r, graph, entry, prepared)
}

/// What the table of `entry` alone decides: its action, timeout, checks
/// and outputs. The refusals are those [`add`] gives, in the same order
/// (one that depends on another task comes from [`commit`]).
pub(super) fn prepare(r: &Resolver, entry: &Entry) -> Result<Prepared> {
    let task = entry.def;
    let task_name = &entry.name;
    let name_span = entry.name_span.clone();
    const SEEN: &str =
        "fan-out fields see `item` and `key` (foreach), or `key` and the matrix variables";
    let render_with = |text: &str, span: Range<usize>, how: Render, hint: &str| match &entry.vars {
        None => Ok(text.to_string()),
        Some(vars) => {
            how(text, vars).map_err(|m| r.err(span, &format!("task `{task_name}`: {m}")).hint(hint))
        }
    };
    let render =
        |text: &str, span: Range<usize>| render_with(text, span, template::render_field, SEEN);
    if entry.placeholder.is_some() {
        placeholder_fields(r, entry, SEEN)?;
    }
    let has_prompt = task.prompt.is_some() || task.prompt_file.is_some();
    let action = match (&task.command, has_prompt) {
        (Some(c), false) => {
            if let Some((key, span)) = prompt::prompt_only_keys(task).into_iter().next() {
                return Err(r
                    .err(span, &format!("`{key}` only applies to prompt tasks, and `{task_name}` runs a command"))
                    .hint("remove the key, or replace `command` with a `prompt`"));
            }
            match &entry.placeholder {
                Some(list) => Action::Expand(list.clone()),
                None => {
                    let command = render_with(
                        c.get_ref(),
                        c.span(),
                        shell_template::render,
                        &format!("{SEEN}; a command prints each value quoted for the shell (`{{{{ flags | raw }}}}` prints one as it is)"),
                    )?;
                    if command.trim().is_empty() {
                        return Err(r.err(
                            c.span(),
                            &format!("task `{task_name}` has an empty command"),
                        )
                        .hint("give the task a shell command to run, such as `command = \"make\"`"));
                    }
                    Action::Command(command)
                }
            }
        }
        (None, true) => {
            if let (Some(_), Some(f)) = (&task.prompt, &task.prompt_file) {
                return Err(r
                    .err(
                        f.span(),
                        &format!("task `{task_name}` has both `prompt` and `prompt_file`"),
                    )
                    .hint("keep one: the template inline, or in a file"));
            }
            if task.outputs.len() != 1 {
                return Err(r
                    .err(
                        name_span.clone(),
                        &format!(
                            "prompt task `{task_name}` must have exactly one output (it has {})",
                            task.outputs.len()
                        ),
                    )
                    .hint("a prompt task writes the model's answer to its one output"));
            }
            match &entry.placeholder {
                Some(list) => Action::Expand(list.clone()),
                // Resolved once inputs are known (templates see them).
                None => Action::Command(String::new()),
            }
        }
        (None, false) => {
            return Err(r
                .err(
                    name_span.clone(),
                    &format!("task `{task_name}` has neither `command` nor `prompt`"),
                )
                .hint("give the task a `command = \"...\"` to run, or a `prompt` (or `prompt_file`) to ask a model"))
        }
        (Some(_), true) => {
            // Named as the user wrote them: `prompt_file` is not `prompt`.
            let given: Vec<(&str, Range<usize>)> = [("prompt", &task.prompt), ("prompt_file", &task.prompt_file)]
                .into_iter()
                .filter_map(|(key, value)| value.as_ref().map(|v| (key, v.span())))
                .collect();
            let span = given.first().map_or(name_span.clone(), |g| g.1.clone());
            let message = match given.as_slice() {
                [(key, _)] => format!("task `{task_name}` has both `command` and `{key}`"),
                _ => format!("task `{task_name}` has `command`, `prompt` and `prompt_file`"),
            };
            return Err(r
                .err(span, &message)
                .hint("a task either runs a command or asks a model; split it into two tasks"));
        }
    };
    let timeout = match &task.timeout {
        None => r.default_timeout,
        Some(t) => Some(parse_timeout(t.get_ref()).map_err(|m| {
            r.err(t.span(), &m)
                .hint("write a timeout as \"90s\", \"10m\", \"1h\" or a number of seconds")
        })?),
    };
    let mut checks = Checks::resolve(&r.source, task)?;
    // A fan-out instance's check sees its variables, as its command does
    // (each value quoted for the shell): `grep -q {{ expert }} "$1"`.
    if let (Some(check), Some(def)) = (&mut checks.command, &task.check) {
        *check = render_with(
            check,
            def.span(),
            shell_template::render,
            &format!("{SEEN}; a check prints each value quoted for the shell, as a command does"),
        )?;
    }
    let declared: &[Spanned<String>] = if entry.placeholder.is_some() {
        &[]
    } else {
        &task.outputs
    };
    let mut outputs = Vec::with_capacity(declared.len());
    let error = outputs_of(r, entry, declared, &render, &mut outputs).err();
    Ok(Prepared {
        action,
        timeout,
        checks,
        outputs,
        error,
    })
}

/// The fields of a `foreach` task whose list is not built, checked for
/// any item: each parses, and names only `item`, `key` and what it sets
/// itself. A typo is refused now, not once the tasks its list waits for
/// have run.
fn placeholder_fields(r: &Resolver, entry: &Entry, seen: &str) -> Result<()> {
    let task = entry.def;
    let fields = task
        .outputs
        .iter()
        .chain(&task.inputs)
        .chain(&task.command)
        .chain(&task.check);
    for field in fields {
        template::check_names(field.get_ref(), &["item", "key"]).map_err(|(_, m)| {
            r.err(field.span(), &format!("task `{}`: {m}", entry.name))
                .hint(seen)
        })?;
    }
    Ok(())
}

/// The outputs of `entry`, pushed on `outputs` until one is refused.
fn outputs_of(
    r: &Resolver,
    entry: &Entry,
    declared: &[Spanned<String>],
    render: &dyn Fn(&str, Range<usize>) -> Result<String>,
    outputs: &mut Vec<Output>,
) -> Result<()> {
    let task_name = &entry.name;
    let mut seen = BTreeSet::new();
    for out in declared {
        let rendered = render(out.get_ref(), out.span())?;
        let path = checked_path(r, &rendered, out.span(), task_name, "output")?;
        if is_glob(&rendered) {
            return Err(r
                .err(
                    out.span(),
                    &format!("output `{rendered}` is a glob pattern"),
                )
                .hint("an output's name holds none of `*`, `?`, `[` and `{` (an input naming it would be a glob): name the file without them; globs are for source inputs"));
        }
        if !seen.insert(path.clone()) {
            return Err(r
                .err(
                    out.span(),
                    &format!("task `{task_name}` lists output `{path}` twice"),
                )
                .hint("list each output once"));
        }
        let on_disk = on_disk(r, &path, out.span(), task_name);
        outputs.push(Output {
            path,
            span: out.span(),
        });
        on_disk?;
    }
    Ok(())
}

/// Adds the task of `entry`, whose table gave `prepared`, to the graph with
/// a new id: refused when another task produces one of its outputs, else
/// with the refusal `prepared` holds, if any.
pub(super) fn commit(
    r: &Resolver,
    graph: &mut Graph,
    entry: &Entry,
    prepared: Prepared,
) -> Result<TaskId> {
    let task_name = &entry.name;
    let Prepared {
        action,
        timeout,
        checks,
        outputs,
        error,
    } = prepared;
    for out in &outputs {
        if let Some(other) = graph.producer(&out.path) {
            let other: &Task = &graph.tasks[other];
            let first = other
                .outputs
                .iter()
                .find(|o| o.path == out.path)
                .map_or(other.name_span.clone(), |o| o.span.clone());
            return Err(r
                .err(
                    out.span.clone(),
                    &format!(
                        "output `{}` is produced by two tasks: `{}` and `{task_name}`",
                        out.path, other.name
                    ),
                )
                .hint(format!(
                    "each file has one producer; first declared at {}",
                    r.source.locate(first)
                )));
        }
    }
    if let Some(error) = error {
        return Err(error);
    }
    let id = graph.tasks.len();
    for out in &outputs {
        graph.producers.insert(out.path.clone(), id);
    }
    graph.by_name.insert(task_name.clone(), id);
    graph.tasks.push(Task {
        id,
        name: task_name.clone(),
        name_span: entry.name_span.clone(),
        inputs: Vec::new(),
        outputs,
        deps: Vec::new(),
        dependents: Vec::new(),
        action,
        timeout,
        checks,
        fingerprint: String::new(),
        action_fingerprint: String::new(),
        template_fingerprint: None,
        origin: Origin {
            def: entry.def_name.to_string(),
            vars: entry.vars.clone(),
            placeholder: entry.placeholder.clone(),
            groups: Vec::new(),
            globs: false,
            asks: Vec::new(),
        },
    });
    Ok(id)
}

/// Refuses an output that is the pipeline file itself: outputs are files
/// planexe moves aside, overwrites and deletes. Only an output named as
/// the pipeline file is looked at on disk (a link elsewhere to it is moved
/// and deleted as a link, never its target), so a pipeline of ten
/// thousand outputs costs no system call here, nor a path built: the last
/// part of the normalized `path` is its file name. A folder at an output's
/// path is refused where it would be touched: when its task runs, and by
/// `clean`.
fn on_disk(r: &Resolver, path: &str, span: Range<usize>, task_name: &str) -> Result<()> {
    let pipeline = &r.pipeline.path;
    let name = path.rsplit('/').next().unwrap_or(path);
    if pipeline.file_name() != Some(std::ffi::OsStr::new(name)) {
        return Ok(());
    }
    let full = r.run_dir.path(path);
    if full == *pipeline || std::fs::canonicalize(&full).is_ok_and(|c| c == *pipeline) {
        return Err(r
            .err(
                span,
                &format!("output `{path}` of task `{task_name}` is the pipeline file itself"),
            )
            .hint(
                "a task's outputs are moved aside before it runs and deleted by `clean`: write to another file",
            ));
    }
    Ok(())
}
