//! Glob inputs, kept after resolution for what they leave out. A glob
//! matches source files only (pipeline.md), so a glob that would match
//! another task's output neither reads it nor waits for that task: the two
//! run side by side and the reader's result depends on which ends first.
//! [`Graph::glob_warnings`] says so, naming the outputs left out and how
//! to read them (name them, or the fan-out, in `inputs`); for a `foreach`
//! fan-out whose list is still to be built, from its outputs' templates,
//! before the build would run the reader on what the glob finds now.

use std::collections::BTreeMap;

use super::glob_overlap;
use super::graph::{GlobInput, Graph, TaskId};

/// Outputs named in a warning; the rest are counted.
const SHOWN: usize = 3;

impl Graph {
    /// One warning per glob input that would match an output of one of
    /// `producers` (a task other than the glob's own); every task when
    /// `producers` is `None`.
    pub fn glob_warnings(&self, producers: Option<&[TaskId]>) -> Vec<String> {
        if self.globs.is_empty() {
            return Vec::new();
        }
        let outputs: Vec<(&str, TaskId)> = match producers {
            Some(ids) => ids
                .iter()
                .flat_map(|&t| {
                    self.tasks[t]
                        .outputs
                        .iter()
                        .map(move |o| (o.path.as_str(), t))
                })
                .collect(),
            None => self
                .tasks()
                .flat_map(|t| t.outputs.iter().map(move |o| (o.path.as_str(), t.id)))
                .collect(),
        };
        let mut out = Vec::new();
        for glob in &self.globs {
            if self.rank[glob.task] == super::graph::RETIRED {
                continue;
            }
            // An output its task also names in `inputs` is read all the
            // same.
            let reader = &self.tasks[glob.task];
            let named = |path: &str| reader.inputs.iter().any(|i| i.path == path);
            // Left out, by the definition that makes them (a fan-out's
            // instances together).
            let mut left: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for &(path, t) in &outputs {
                // A reader that waits for the task (`after`) reads what
                // it made all the same.
                if t != glob.task
                    && under(glob, path)
                    && glob.matcher.is_match(path)
                    && !named(path)
                    && reader.deps.binary_search(&t).is_err()
                {
                    left.entry(self.tasks[t].origin.def.as_str())
                        .or_default()
                        .push(path);
                }
            }
            for (def, mut paths) in left {
                // Warned of at load time, from its templates.
                if producers.is_some() && self.may_match(glob, def) {
                    continue;
                }
                paths.sort_unstable();
                out.push(self.left_out(glob, def, &paths));
            }
            if producers.is_none() {
                out.extend(self.unexpanded_left_out(glob));
            }
        }
        out
    }

    /// The warnings for `glob` of the `foreach` tasks not expanded yet
    /// whose instances' outputs it may match ([`Graph::may_match`]), as
    /// their templates say: before the list exists, the build would run
    /// its reader at once.
    fn unexpanded_left_out<'a>(&'a self, glob: &'a GlobInput) -> impl Iterator<Item = String> + 'a {
        let task = &self.tasks[glob.task];
        let reader = &task.name;
        // A reader that names the fan-out (in `inputs` or `after`) waits
        // for it.
        let waits = |group: &super::graph::FanoutGroup| {
            group
                .members
                .iter()
                .any(|m| task.deps.binary_search(m).is_ok())
        };
        self.fanouts
            .iter()
            .filter(move |(def, group)| {
                group.placeholder && *def != &task.origin.def && !waits(group)
            })
            .filter(|(def, _)| self.may_match(glob, def))
            .map(move |(def, group)| {
                let templates: Vec<String> =
                    group.templates.iter().map(|t| format!("`{t}`")).collect();
                format!(
                    "task `{reader}`: input glob `{}` may match the outputs of fan-out `{def}` ({}), made once its list {} is built: a glob matches source files only, so `{reader}` does not wait for fan-out `{def}` and may run before it; name the fan-out in `inputs` to read them all: inputs = [\"{def}\"]",
                    glob.pattern,
                    templates.join(", "),
                    group.list.as_deref().unwrap_or_default(),
                )
            })
    }

    /// Whether `glob` may match an output of the `foreach` task `def`'s
    /// instances, as its templates say: a path one of them may render
    /// for some item that the glob matches (glob_overlap.rs).
    fn may_match(&self, glob: &GlobInput, def: &str) -> bool {
        let Some(group) = self.fanouts.get(def) else {
            return false;
        };
        group
            .templates
            .iter()
            .any(|template| glob_overlap::may_write_into(template, &glob.matcher))
    }

    /// The warning for `glob`, which leaves out `paths`, made by `def`.
    fn left_out(&self, glob: &GlobInput, def: &str, paths: &[&str]) -> String {
        let reader = &self.tasks[glob.task].name;
        let mut named: Vec<String> = paths.iter().take(SHOWN).map(|p| p.to_string()).collect();
        if paths.len() > SHOWN {
            named.push(format!("{} more", paths.len() - SHOWN));
        }
        let named = match named.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
            _ => named.join(""),
        };
        let (whose, fix) = if self.fanouts.contains_key(def) {
            (
                format!("fan-out `{def}`"),
                format!("name the fan-out in `inputs` to read them all: inputs = [\"{def}\"]"),
            )
        } else {
            let quoted: Vec<String> = paths.iter().map(|p| format!("\"{p}\"")).collect();
            let it = if paths.len() == 1 { "it" } else { "them" };
            (
                format!("task `{def}`"),
                format!(
                    "name {it} in `inputs` to read {it}: inputs = [{}]",
                    quoted.join(", ")
                ),
            )
        };
        format!(
            "task `{reader}`: input glob `{}` leaves out {named}, made by {whose}: a glob matches source files only, so `{reader}` does not wait for {whose} and may run before it; {fix}",
            glob.pattern
        )
    }
}

/// Whether `path` is under the folder `glob` walks.
fn under(glob: &GlobInput, path: &str) -> bool {
    glob.base.is_empty()
        || path
            .strip_prefix(glob.base.as_str())
            .is_some_and(|rest| rest.starts_with('/'))
}
