//! [`Graph::expand`]: a `foreach` task's instances made what its list
//! says once the list is built, all or nothing: a list or an instance that
//! does not resolve, or new instances its caller does not admit, leave the
//! graph as it was.

use std::collections::HashSet;

use super::super::graph::{Action, Graph, TaskId};
use super::super::pipeline::Pipeline;
use super::{inputs, order, Resolver};
use crate::error::Result;
use crate::store::RunDir;

/// How [`Graph::expand`] changed the graph.
#[derive(Debug, Default)]
pub struct Expansion {
    /// New instances, in item order.
    pub added: Vec<TaskId>,
    /// Tasks no longer in the graph: the placeholder, instances whose
    /// item changed or is gone.
    pub retired: Vec<TaskId>,
    /// Tasks already in the graph resolved again: their inputs or
    /// dependencies may have changed.
    pub relinked: Vec<TaskId>,
    /// Outputs no task produces any more.
    pub gone_outputs: Vec<String>,
}

impl Graph {
    /// Makes the instances of the `foreach` task `group` what its list file
    /// says, now that the list is up to date: the first time, its
    /// placeholder makes way for them; later, unchanged items keep their
    /// tasks, and the others come and go (append-only: nothing is
    /// renumbered). The tasks that can see the difference (those that name
    /// the fan-out, read a glob, or read a file an instance produces or no
    /// longer produces) are resolved again. `false` when nothing changed
    /// (the list file does not exist, or is the one the instances came
    /// from); an error for a list that is not what the task says, or
    /// instances that clash with other tasks or do not resolve (an item's
    /// input missing), or when `admit` refuses the new instances (given
    /// the graph they joined and their ids: a build refuses one that would
    /// write a file the run was given). After an error the graph is as it
    /// was: the fan-out a placeholder, or the instances of its last list.
    pub fn expand(
        &mut self,
        pipeline: &Pipeline,
        run_dir: &RunDir,
        group: &str,
        admit: &dyn Fn(&Graph, &[TaskId]) -> Result<()>,
    ) -> Result<Option<Expansion>> {
        let before = self.clone();
        let expanded = self
            .expand_in_place(pipeline, run_dir, group)
            .and_then(|e| match e {
                Some(e) => admit(self, &e.added).map(|()| Some(e)),
                None => Ok(None),
            });
        if expanded.is_err() {
            *self = before;
        }
        expanded
    }

    /// [`Graph::expand`], leaving the graph half changed on an error.
    fn expand_in_place(
        &mut self,
        pipeline: &Pipeline,
        run_dir: &RunDir,
        group: &str,
    ) -> Result<Option<Expansion>> {
        let mut resolver = Resolver::new(pipeline, run_dir, &self.models)?;
        let Some(mut expansion) = resolver.expand_group(self, group)? else {
            return Ok(None);
        };
        let new: HashSet<TaskId> = expansion.added.iter().copied().collect();
        let touched: HashSet<&str> = expansion
            .added
            .iter()
            .flat_map(|&id| self.tasks[id].outputs.iter().map(|o| o.path.as_str()))
            .chain(expansion.gone_outputs.iter().map(String::as_str))
            .collect();
        let affected: Vec<TaskId> = self
            .listing
            .iter()
            .copied()
            .filter(|id| {
                let task = &self.tasks[*id];
                new.contains(id)
                    || task.origin.globs
                    || task.origin.groups.iter().any(|g| g == group)
                    || task
                        .inputs
                        .iter()
                        .any(|i| touched.contains(i.path.as_str()))
            })
            .collect();
        for &id in &affected {
            inputs::resolve(&resolver, self, id)?;
        }
        for &id in &affected {
            if new.contains(&id) || matches!(self.tasks[id].action, Action::Prompt(_)) {
                resolver.finish_task(self, id)?;
            }
        }
        order::link(self, &pipeline.source())?;
        expansion.relinked = affected
            .into_iter()
            .filter(|id| !new.contains(id))
            .collect();
        Ok(Some(expansion))
    }
}
