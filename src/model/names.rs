//! The names users give for tasks: a task, an instance (`review[finance]`),
//! a fan-out (all its instances) or an output path (the task that writes
//! it), as command-line targets and as the tasks `clean`, `touch`,
//! `explain` and the MCP tools take; and the refusal of a name that means
//! none, with the closest name, the tasks there are and how to list them.

use super::advice::Trouble;
use super::graph::{Graph, TaskId};
use super::source::{closest, did_you_mean};
use crate::error::{Error, Result};
use crate::store::rundir;

impl Graph {
    /// The tasks a name on the command line means: one task or instance
    /// (`wbs3[7]`), or every instance of a fan-out task (`wbs3`).
    pub fn named(&self, name: &str) -> Option<Vec<TaskId>> {
        if let Some(&id) = self.by_name.get(name) {
            return Some(vec![id]);
        }
        self.fanouts.get(name).map(|g| g.members.clone())
    }

    /// The task that writes the output `name` is a path of (relative to
    /// the run directory), for commands that take a task or its output as
    /// `build` takes targets.
    pub fn producer_of(&self, name: &str) -> Option<TaskId> {
        self.producer(&rundir::normalize(name).ok()?)
    }

    /// The refusal of a name on the command line that names no task,
    /// instance, fan-out or output, with the closest name (or output path)
    /// when it looks like a typo of one.
    pub fn unknown_task(&self, name: &str) -> Error {
        if let Some(waiting) = self.instance_not_yet(name) {
            return waiting;
        }
        let error = Error::usage(format!(
            "unknown task `{name}`: no task has that name and no task produces that file"
        ));
        self.names_hinted(self.source_or_near(error, name), &Trouble::UnknownTask)
    }

    /// `error` with the names a user may give: the tasks (the first 20),
    /// each expanded fan-out once with its count (`per (100 instances)`,
    /// not a hundred names), how an instance of a fan-out the pipeline has
    /// is named, and where to list them all.
    fn names_hinted(&self, error: Error, trouble: &Trouble<'_>) -> Error {
        let mut fanouts = std::collections::BTreeSet::new();
        let mut names: Vec<String> = self
            .tasks()
            .filter_map(|t| match self.fanouts.get(&t.origin.def) {
                Some(group) if !group.placeholder => {
                    fanouts
                        .insert(&t.origin.def)
                        .then(|| match group.members.len() {
                            1 => format!("{} (1 instance)", t.origin.def),
                            n => format!("{} ({n} instances)", t.origin.def),
                        })
                }
                _ => Some(t.name.clone()),
            })
            .collect();
        names.sort_unstable();
        let shown = if names.len() > 20 {
            format!("{}, ... ({} in all)", names[..20].join(", "), names.len())
        } else {
            names.join(", ")
        };
        let mut error = error.hint(format!("tasks are: {shown}"));
        let instance = self.fanouts.iter().find_map(|(name, group)| {
            let first = *group.members.first()?;
            (!group.placeholder).then(|| (name, &self.tasks[first].name))
        });
        if let Some((fanout, instance)) = instance {
            error = error.hint(format!(
                "a fan-out's instances are named like `{instance}`; `{fanout}` names them all"
            ));
        }
        error.hint(self.advice.hint(trouble))
    }

    /// The refusal of `name` when it is an instance of a fan-out that
    /// waits for its list, which has no instances yet.
    fn instance_not_yet(&self, name: &str) -> Option<Error> {
        let (base, _) = super::fanout::split_instance(name)?;
        let group = self.fanouts.get(base).filter(|g| g.placeholder)?;
        let list = group.list.as_deref()?;
        Some(
            Error::usage(format!(
                "`{name}` is an instance of the fan-out `{base}`, which has none yet: it expands when {list} is built"
            ))
            .hint(format!("name the fan-out, `{base}`, until its list is built")),
        )
    }

    /// `error` about `name`, which names no task and no output: when it is
    /// a source file a task reads, with a hint that says so (rather than
    /// offer an output whose name is near); otherwise with the task or
    /// output path closest to it, when close enough to be a typo of one.
    fn source_or_near(&self, error: Error, name: &str) -> Error {
        let path = rundir::normalize(name).ok();
        let reader = path.as_deref().and_then(|path| {
            self.tasks()
                .find(|t| t.inputs.iter().any(|i| i.path == path))
        });
        match reader {
            Some(reader) => error.hint(format!(
                "{name} is a source file: {} reads it, and no task writes it",
                reader.name
            )),
            None => {
                let near = closest(
                    name,
                    self.tasks()
                        .map(|t| t.name.as_str())
                        .chain(self.fanouts.keys().map(String::as_str))
                        .chain(self.producers.keys().map(String::as_str)),
                );
                did_you_mean(error, near)
            }
        }
    }

    /// The task, instance or fan-out name closest to `name`, when close
    /// enough to be a typo of it.
    pub fn closest(&self, name: &str) -> Option<&str> {
        closest(
            name,
            self.tasks()
                .map(|t| t.name.as_str())
                .chain(self.fanouts.keys().map(String::as_str)),
        )
    }

    /// Resolves command-line targets (task names or output paths) to tasks.
    pub fn targets(&self, targets: &[String]) -> Result<Vec<TaskId>> {
        self.resolve_names(targets, |target| {
            if let Some(waiting) = self.instance_not_yet(target) {
                return waiting;
            }
            let error = Error::usage(format!(
                "unknown target `{target}`: no task has that name and no task produces that file"
            ));
            self.names_hinted(self.source_or_near(error, target), &Trouble::UnknownTarget)
        })
    }

    /// Tasks named on the command line by `planexe clean`, `touch` and the
    /// like: each a task, an instance, a fan-out task, or an output path
    /// relative to the run directory (the task that writes it, as `ninja -t
    /// clean` and `make -t` take files).
    pub fn tasks_named(&self, names: &[String]) -> Result<Vec<TaskId>> {
        self.resolve_names(names, |name| self.unknown_task(name))
    }

    /// The tasks each name means: a task, an instance, every instance of a
    /// fan-out task, or the task that writes the output it is a path of;
    /// `refuse` says why for the first name that means none.
    fn resolve_names(
        &self,
        names: &[String],
        refuse: impl Fn(&str) -> Error,
    ) -> Result<Vec<TaskId>> {
        let mut ids = Vec::new();
        for name in names {
            match self.named(name) {
                Some(found) => ids.extend(found),
                None => ids.push(self.producer_of(name).ok_or_else(|| refuse(name))?),
            }
        }
        Ok(ids)
    }
}
