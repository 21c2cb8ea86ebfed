//! Pass 4 of resolution: a task's inputs and edges. An input is a source
//! file (which must exist), another task's output (an edge to its
//! producer), a glob over source files, or the name of a fan-out task (all
//! of its instances' outputs, in item order); `after` adds edges without
//! files. A task may not read its own output, and a source file must be a
//! regular file (a folder is read through a glob; a FIFO would hang the
//! build that hashes it) or a dangling symlink (its task fails with
//! `missing_input` when it runs). The refusal of a source file (missing,
//! not a regular file) is of the run's files, not of the pipeline file
//! (`Error::of_run_file`).

use std::collections::BTreeSet;

use toml::Spanned;

use super::super::graph::{GlobInput, Graph, Input, TaskId};
use super::super::source::did_you_mean;
use super::super::template;
use super::paths::{checked_path, expand_glob, is_glob};
use super::Resolver;
use crate::error::Result;
use crate::model::Trouble;
use crate::store::{rundir, stamp, wrong_kind};

/// What this pass found for one task, for [`apply`] to put in the graph.
pub(super) struct Found {
    id: TaskId,
    inputs: Vec<Input>,
    deps: Vec<TaskId>,
    groups: Vec<String>,
    /// Whether an input is a glob pattern.
    globs: bool,
    /// What decided it beyond task files, in order (see `Graph::watched`).
    watched: Vec<String>,
    glob_inputs: Vec<GlobInput>,
}

/// Resolves the inputs and deps of task `id`, replacing any it had.
pub(super) fn resolve(r: &Resolver, graph: &mut Graph, id: TaskId) -> Result<()> {
    let found = find(r, graph, id)?;
    apply(graph, found);
    Ok(())
}

/// Puts what [`find`] found for a task in the graph, in place of what the
/// task had.
pub(super) fn apply(graph: &mut Graph, found: Found) {
    let id = found.id;
    if graph.tasks[id].origin.globs {
        graph.globs.retain(|g| g.task != id);
        graph.watched.retain(|(t, _)| *t != id);
    }
    graph
        .watched
        .extend(found.watched.into_iter().map(|path| (id, path)));
    graph.globs.extend(found.glob_inputs);
    let task = &mut graph.tasks[id];
    task.inputs = found.inputs;
    task.deps = found.deps;
    task.origin.groups = found.groups;
    task.origin.globs = found.globs;
}

/// The inputs and deps of task `id`, the graph unchanged: what reads the
/// graph and the disk, so that tasks can be resolved at once.
pub(super) fn find(r: &Resolver, graph: &Graph, id: TaskId) -> Result<Found> {
    let task = &graph.tasks[id];
    let def = r.def(&task.origin.def);
    let task_name = task.name.clone();
    let vars = task.origin.vars.clone();
    let mut inputs: Vec<Input> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut deps = BTreeSet::new();
    let mut groups = Vec::new();
    let mut globs = false;
    let mut watched = Vec::new();
    let mut glob_inputs = Vec::new();
    // A placeholder waits for its list file only.
    let list_input: Option<Vec<Spanned<String>>> = match (&task.origin.placeholder, &def.foreach) {
        (Some(list), Some(f)) => Some(vec![Spanned::new(f.span(), list.clone())]),
        _ => None,
    };
    let declared: &[Spanned<String>] = list_input.as_deref().unwrap_or(&def.inputs);
    for raw in declared {
        let rendered = match &vars {
            None => raw.get_ref().clone(),
            Some(vars) => template::render_field(raw.get_ref(), vars)
                .map_err(|m| {
                    r.err(raw.span(), &format!("task `{task_name}`: {m}"))
                        .hint("fan-out fields see `item` and `key` (foreach), or `key` and the matrix variables")
                })?,
        };
        let pattern = rendered.as_str();
        // Naming a fan-out task means all of its instance outputs, in item
        // order.
        if let Some(group) = graph.fanouts.get(pattern) {
            groups.push(pattern.to_string());
            if group.members.contains(&id) {
                return Err(r.err(
                    raw.span(),
                    &format!("task `{task_name}` reads its own fan-out `{pattern}`"),
                )
                .hint("an instance cannot wait for its own fan-out: gather the outputs in another task"));
            }
            for &member in &group.members {
                deps.insert(member);
                for out in &graph.tasks[member].outputs {
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
        // A name with glob characters that exists, or that a task produces,
        // is taken literally (`data[1].txt`).
        let glob = is_glob(pattern);
        let literal = glob
            && rundir::normalize(pattern).is_ok_and(|p| {
                graph.producers.contains_key(&p)
                    || std::fs::symlink_metadata(r.run_dir.path(&p)).is_ok()
            });
        if glob && !literal && list_input.is_some() {
            // A list is one file: a pattern would match no file a task
            // makes, and the fan-out would wait for it for ever.
            return Err(r
                .err(
                    raw.span(),
                    &format!(
                        "task `{task_name}`: list file {pattern}: it is a glob pattern, and no file has that name"
                    ),
                )
                .hint("`foreach` reads one list file: name it as it is (a task's output or a file on disk); globs are for inputs"));
        }
        if glob {
            globs = true;
            if let Ok(path) = rundir::normalize(pattern) {
                watched.push(path);
            }
        }
        let paths = if glob && !literal {
            let mut walked = Vec::new();
            let (paths, input) = expand_glob(
                r,
                pattern,
                raw.span(),
                (id, &task_name),
                &graph.producers,
                &mut walked,
            )?;
            watched.extend(walked);
            glob_inputs.push(input);
            paths
        } else {
            vec![checked_path(r, pattern, raw.span(), &task_name, "input")?]
        };
        for path in paths {
            if !seen.insert(path.clone()) {
                continue;
            }
            let producer = graph.producer(&path);
            match producer {
                Some(p) if p == id => {
                    return Err(r.err(
                        raw.span(),
                        &format!("task `{task_name}` reads its own output `{path}`"),
                    )
                    .hint(format!(
                        "a task cannot read what it writes: remove `{path}` from `inputs` or `outputs`, or write to a new file"
                    )))
                }
                Some(p) => {
                    deps.insert(p);
                }
                None if r.source_checked(&path) => {}
                None => {
                    let found = stamp::stat_inside_typed(r.run_dir.root(), &path).map_err(|e| {
                        let hint = match e.kind() {
                            std::io::ErrorKind::NotADirectory => wrong_kind::hint(&path),
                            _ => "name files inside the run directory".to_string(),
                        };
                        r.err(raw.span(), &format!("input of task `{task_name}`: {e}"))
                            .hint(hint)
                            .of_run_file()
                    })?;
                    if let Some((_, kind)) = found.filter(|(_, kind)| !kind.is_file()) {
                        return Err(not_a_file(r, raw.span(), &task_name, &path, kind));
                    }
                    // A dangling symlink counts as existing: the name is
                    // there, what it leads to may come. The task fails
                    // with `missing_input` when it runs, as it does for an
                    // input gone since the pipeline was read, and the
                    // other tasks run.
                    if found.is_none() && !is_link(r, &path) {
                        return Err(missing_input(r, graph, raw.span(), &task_name, &path));
                    }
                    // A dangling link that leads out would be refused
                    // once its file is made: refused now.
                    if found.is_none() {
                        if let Some(end) = stamp::dangling_leads_outside(r.run_dir.root(), &path) {
                            return Err(r
                                .err(
                                    raw.span(),
                                    &format!(
                                        "input of task `{task_name}`: {path} is a symlink to {}, outside the run directory",
                                        end.display()
                                    ),
                                )
                                .hint("replace it with a copy or a link that stays inside the run directory")
                                .of_run_file());
                        }
                    }
                    r.source_found(&path);
                }
            }
            inputs.push(Input {
                path,
                producer,
                span: raw.span(),
            });
        }
    }
    for after in &def.after {
        if let Some(group) = graph.fanouts.get(after.get_ref()) {
            groups.push(after.get_ref().clone());
            deps.extend(group.members.iter().copied().filter(|&m| m != id));
            continue;
        }
        match graph.by_name.get(after.get_ref()) {
            Some(&p) if p == id => {
                return Err(r
                    .err(
                        after.span(),
                        &format!("task `{task_name}` lists itself in `after`"),
                    )
                    .hint("`after` names other tasks this one waits for: remove its own name"))
            }
            Some(&p) => {
                deps.insert(p);
            }
            None => {
                let mut names: Vec<&str> = graph.tasks().map(|t| t.name.as_str()).collect();
                names.sort_unstable();
                let error = r.err(
                    after.span(),
                    &format!("`after` names unknown task `{}`", after.get_ref()),
                );
                return Err(did_you_mean(error, graph.closest(after.get_ref()))
                    .hint(format!("tasks are: {}", names.join(", "))));
            }
        }
    }
    Ok(Found {
        id,
        inputs,
        deps: deps.into_iter().collect(),
        groups,
        globs,
        watched,
        glob_inputs,
    })
}

/// Whether `path` is a symlink (here, one that leads nowhere).
fn is_link(r: &Resolver, path: &str) -> bool {
    std::fs::symlink_metadata(r.run_dir.path(path)).is_ok_and(|m| m.file_type().is_symlink())
}

/// The refusal of an input at `path` that does not exist and that no task
/// produces (of the run's files: the run lacks it), with what it most likely meant: a task of that name (to wait
/// for it is `after`; to read it, its outputs), or an output of a name
/// close to it (a typo).
fn missing_input(
    r: &Resolver,
    graph: &Graph,
    span: std::ops::Range<usize>,
    task_name: &str,
    path: &str,
) -> crate::error::Error {
    let error = r
        .err(
            span,
            &format!("input `{path}` of task `{task_name}` does not exist and no task produces it"),
        )
        .of_run_file();
    if let Some(task) = graph.task(path) {
        let outputs: Vec<String> = task
            .outputs
            .iter()
            .map(|o| format!("\"{}\"", o.path))
            .collect();
        return error.hint(format!(
            "`{path}` is a task, not a file: to run after it, write after = [\"{path}\"]; to read what it writes, name its outputs: inputs = [{}]",
            outputs.join(", ")
        ));
    }
    // Not one of the task's own outputs: it cannot read what it writes.
    let others = (graph.producers.iter())
        .filter(|&(_, &id)| graph[id].name != task_name)
        .map(|(output, _)| output.as_str());
    let near = crate::model::source::closest(path, others);
    match near {
        Some(near) => error.hint(format!(
            "did you mean `{near}`, which task `{}` produces?",
            graph[graph.producers[near]].name
        )),
        None => error.hint(graph.advice.hint(&Trouble::SourceMissing {
            path,
            dir: &r.run_dir.root().display().to_string(),
            new_run: graph.advice.makes_run(),
        })),
    }
}

/// The refusal of a source input at `path` that is not a regular file (of
/// the run's files).
fn not_a_file(
    r: &Resolver,
    span: std::ops::Range<usize>,
    task_name: &str,
    path: &str,
    kind: std::fs::FileType,
) -> crate::error::Error {
    let what = crate::store::files::kind_of(kind);
    let error = r
        .err(
            span,
            &format!("input `{path}` of task `{task_name}` is {what}, not a regular file"),
        )
        .of_run_file();
    if kind.is_dir() {
        error.hint(format!(
            "inputs are files: name the files in the folder with a glob, such as `{path}/**`"
        ))
    } else {
        error.hint(format!(
            "inputs are regular files planexe can hash: replace {path} with a file, or remove it from `inputs`"
        ))
    }
}
