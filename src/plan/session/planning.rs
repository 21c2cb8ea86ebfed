//! How a session sees its graph planned: the `foreach` fan-outs whose
//! lists are ready brought in line with them before a build or a reader
//! looks ([`Session::expand_ready`]), a run opened as a reader sees it
//! ([`Session::read`]), and the plan of the tasks a reader asks about, in
//! which a list that cannot be expanded is made again, as a build makes
//! it.

use super::super::certificate::Certificate;
use super::super::check::{Checker, Reason};
use super::super::Plan;
use super::{ModelChoice, Session};
use crate::error::Result;
use crate::model::{Lists, TaskId};
use crate::plan::location::Located;
use crate::store::{CheckMode, Stamper};

/// What [`Session::expand_ready`] leaves to do.
pub struct Expanded {
    /// Tasks that made a `foreach` list that cannot be expanded, each with
    /// its list.
    pub remake: Vec<(TaskId, String)>,
    /// The plan of every task of the graph as it now stands, when one was
    /// made for it.
    pub plan: Option<Plan>,
}

impl Session {
    /// Expands the `foreach` task `group` now that its list is ready (see
    /// [`Graph::expand`]); `false` when its list file does not exist or
    /// did not change. Every instance is admitted: a build judges the
    /// instances it will run with the other tasks, before any runs
    /// ([`super::super::Seeds`]).
    pub fn expand(&mut self, group: &str) -> Result<bool> {
        *self.made_plan() = None;
        Ok(self
            .graph
            .expand(&self.pipeline, &self.run_dir, group, &|_, _| Ok(()))?
            .is_some())
    }

    pub(super) fn made_plan(&self) -> std::sync::MutexGuard<'_, Option<(CheckMode, Plan)>> {
        self.made.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Brings every `foreach` task whose list is ready (no task produces
    /// it, or its producer is up to date) in line with its list, until
    /// none changes: an expansion can make another list's producer up to
    /// date. A fan-out whose list is to be built stays a placeholder, and
    /// what reads it waits for it ([`Reason::AwaitsFanout`]): this is how
    /// a build sees the run before it starts, and how a reader sees it
    /// ([`Session::read`]).
    ///
    /// A list a task made that cannot be expanded leaves its fan-out a
    /// placeholder; [`Expanded::remake`] names those tasks, each with its
    /// list (a build makes the list again).
    ///
    /// [`Reason::AwaitsFanout`]: super::Reason::AwaitsFanout
    pub fn expand_ready(&mut self, mode: CheckMode) -> Result<Expanded> {
        let mut remake: Vec<(TaskId, String)> = Vec::new();
        loop {
            let waiting: Vec<(String, String, Option<TaskId>)> = self
                .graph
                .lists()
                .map(|(name, list)| {
                    (
                        name.to_string(),
                        list.to_string(),
                        self.graph.producer(list),
                    )
                })
                .filter(|(_, _, producer)| !remake.iter().any(|(p, _)| Some(*p) == *producer))
                .collect();
            if waiting.is_empty() {
                return Ok(Expanded { remake, plan: None });
            }
            // Only lists with a producer need the plan.
            let plan = if waiting.iter().any(|(_, _, p)| p.is_some()) {
                Some(self.plan_all(mode)?)
            } else {
                None
            };
            let mut grew = false;
            let mut failed = false;
            for (name, list, producer) in waiting {
                let ready = match (producer, &plan) {
                    (None, _) => true,
                    (Some(p), Some(plan)) => plan.reasons[p].is_none(),
                    (Some(_), None) => false,
                };
                if !ready {
                    continue;
                }
                match (self.expand(&name), producer) {
                    (Ok(expanded), _) => grew |= expanded,
                    (Err(_), Some(p)) => {
                        failed = true;
                        remake.push((p, list));
                    }
                    (Err(e), None) => return Err(e),
                }
            }
            if !grew {
                // The graph is the one planned, unless an expansion failed
                // half-way.
                let plan = plan.filter(|_| !failed);
                return Ok(Expanded { remake, plan });
            }
        }
    }

    /// Opens the run as a command that reads it sees it: as a build would
    /// before it starts ([`Session::expand_ready`]; a fan-out whose list is
    /// to be built is a placeholder), judged in `mode`.
    pub fn read(located: Located, model: &ModelChoice, mode: CheckMode) -> Result<Session> {
        let mut session = Session::open_as(located, model, Lists::Unproduced, true, None)?;
        let expanded = session.expand_ready(mode)?;
        if let Some(plan) = expanded.plan {
            *session.made_plan() = Some((mode, plan));
        }
        session.remake = expanded.remake;
        Ok(session)
    }

    /// Checks the `wanted` tasks against disk, forcing nothing: the plan a
    /// read-only command reports on.
    pub fn plan(&self, wanted: Vec<bool>, mode: CheckMode) -> Result<Plan> {
        // All of them up to date, by the certificate: no need to look
        // task by task.
        let all = self.graph.ids().iter().all(|&id| wanted[id]);
        if all
            && self.remake.is_empty()
            && Certificate::read(&self.run_dir)
                .and_then(|c| c.holds(&self.run_dir, &self.certificate_key(), mode))
                .is_some_and(|h| h.tasks == self.graph.len() as u64)
        {
            return Ok(Plan::up_to_date(&self.graph));
        }
        let stamper = Stamper::default();
        let checker = Checker {
            graph: &self.graph,
            source: self.pipeline.source(),
            run_dir: &self.run_dir,
            store: &self.store,
            stamper: &stamper,
            mode,
        };
        // A list that cannot be expanded is made again, as a build would.
        let mut remade = vec![false; self.graph.id_bound()];
        for (p, _) in &self.remake {
            remade[*p] = wanted[*p];
        }
        let mut plan = Plan::make(&checker, wanted, &remade)?;
        for (p, list) in &self.remake {
            if plan.reasons[*p].is_some() {
                plan.reasons[*p] = Some(Reason::BadList(list.clone()));
            }
        }
        Ok(plan)
    }

    /// The plan of every task.
    pub fn plan_all(&self, mode: CheckMode) -> Result<Plan> {
        if let Some((made, plan)) = self.made_plan().take() {
            if made == mode {
                return Ok(plan);
            }
        }
        self.plan(vec![true; self.graph.id_bound()], mode)
    }
}
