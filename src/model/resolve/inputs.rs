//! Pass 4 of resolution: a task's inputs and edges. An input is a source
//! file (which must exist), another task's output (an edge to its
//! producer), a glob over source files, or the name of a fan-out task (all
//! of its instances' outputs, in item order); `after` adds edges without
//! files. A task may not read its own output, and a source file must be a
//! regular file (a folder is read through a glob; a FIFO would hang the
//! build that hashes it) or a dangling symlink (its task fails with
//! `missing_input` when it runs).

use std::collections::BTreeSet;

use toml::Spanned;

use super::super::graph::{Graph, Input, TaskId};
use super::super::source::did_you_mean;
use super::super::template;
use super::paths::{checked_path, expand_glob, is_glob};
use super::Resolver;
use crate::error::Result;
use crate::store::{rundir, stamp, wrong_kind};

/// Resolves the inputs and deps of task `id`, replacing any it had.
pub(super) fn resolve(r: &mut Resolver, graph: &mut Graph, id: TaskId) -> Result<()> {
    if graph.tasks[id].origin.globs {
        graph.globs.retain(|g| g.task != id);
        graph.watched.retain(|(t, _)| *t != id);
    }
    let task = &graph.tasks[id];
    let def = r.def(&task.origin.def);
    let task_name = task.name.clone();
    let vars = task.origin.vars.clone();
    let mut inputs: Vec<Input> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut deps = BTreeSet::new();
    let mut groups = Vec::new();
    let mut globs = false;
    // A placeholder waits for its list file only.
    let list_input: Vec<Spanned<String>>;
    let declared: &[Spanned<String>] = match (&task.origin.placeholder, &def.foreach) {
        (Some(list), Some(f)) => {
            list_input = vec![Spanned::new(f.span(), list.clone())];
            &list_input
        }
        _ => &def.inputs,
    };
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
        if glob {
            globs = true;
            if let Ok(path) = rundir::normalize(pattern) {
                graph.watched.push((id, path));
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
            graph
                .watched
                .extend(walked.into_iter().map(|path| (id, path)));
            graph.globs.push(input);
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
                None if r.checked_sources.contains(&path) => {}
                None => {
                    let found = stamp::stat_inside_typed(r.run_dir.root(), &path).map_err(|e| {
                        let hint = match e.kind() {
                            std::io::ErrorKind::NotADirectory => wrong_kind::hint(&path),
                            _ => "name files inside the run directory".to_string(),
                        };
                        r.err(raw.span(), &format!("input of task `{task_name}`: {e}"))
                            .hint(hint)
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
                        return Err(r
                            .err(
                                raw.span(),
                                &format!(
                                    "input `{path}` of task `{task_name}` does not exist and no task produces it"
                                ),
                            )
                            .hint(format!(
                                "create {path} in {}, or add a task with `outputs = [\"{path}\"]`",
                                r.run_dir.root().display()
                            )));
                    }
                    r.checked_sources.insert(path.clone());
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
    let task = &mut graph.tasks[id];
    task.inputs = inputs;
    task.deps = deps.into_iter().collect();
    task.origin.groups = groups;
    task.origin.globs = globs;
    Ok(())
}

/// Whether `path` is a symlink (here, one that leads nowhere).
fn is_link(r: &Resolver, path: &str) -> bool {
    std::fs::symlink_metadata(r.run_dir.path(path)).is_ok_and(|m| m.file_type().is_symlink())
}

/// The refusal of a source input at `path` that is not a regular file.
fn not_a_file(
    r: &Resolver,
    span: std::ops::Range<usize>,
    task_name: &str,
    path: &str,
    kind: std::fs::FileType,
) -> crate::error::Error {
    let what = crate::store::files::kind_of(kind);
    let error = r.err(
        span,
        &format!("input `{path}` of task `{task_name}` is {what}, not a regular file"),
    );
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
