//! Glob inputs, kept after resolution for what they leave out. A glob
//! matches source files only (pipeline.md), so a glob that would match
//! another task's output neither reads it nor waits for that task: the two
//! run side by side and the reader's result depends on which ends first.
//! [`Graph::glob_warnings`] says so, naming the outputs left out and how
//! to read them (name them, or the fan-out, in `inputs`).

use std::collections::BTreeMap;

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
            let under = |path: &str| {
                glob.base.is_empty()
                    || path
                        .strip_prefix(glob.base.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            };
            // An output its task also names in `inputs` is read all the
            // same.
            let reader = &self.tasks[glob.task];
            let named = |path: &str| reader.inputs.iter().any(|i| i.path == path);
            // Left out, by the definition that makes them (a fan-out's
            // instances together).
            let mut left: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for &(path, t) in &outputs {
                if t != glob.task && under(path) && glob.matcher.is_match(path) && !named(path) {
                    left.entry(self.tasks[t].origin.def.as_str())
                        .or_default()
                        .push(path);
                }
            }
            for (def, mut paths) in left {
                paths.sort_unstable();
                out.push(self.left_out(glob, def, &paths));
            }
        }
        out
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
