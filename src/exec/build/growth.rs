//! Fan-outs inside the running build: the moment a task that writes a
//! `foreach` list ends (or is found up to date), the fan-out expands (or
//! follows its list again) and the scheduler is told how the graph grew.
//! New instances are planned on the spot (a new item runs; one done in an
//! earlier build is up to date), the placeholder and instances whose item
//! changed or is gone leave the run (the gone ones' outputs and records
//! are removed), and what depends on the fan-out waits for its instances.
//! No barrier: unrelated tasks keep running throughout.
//!
//! A list that cannot be read or expanded fails the fan-out (kind
//! `bad_list`, with the list's `file:line:col` message) and what depends
//! on it does not start; so does one that makes an instance that would
//! write a file the run was given (`plan::seeds`).

use std::collections::HashSet;
use std::time::Duration;

use super::super::observer::{Notice, TaskEnd};
use super::super::scheduler::{Growth, Step};
use super::hooks::BuildHooks;
use super::lists;
use crate::error::Error;
use crate::model::{Expansion, Graph, TaskId};
use crate::plan::{Check, Checker, Reason};
use crate::store::{sidecar, ErrorKind, Status, TaskError, TaskState};

impl BuildHooks<'_> {
    /// Expands the fan-outs of this build whose list `t` writes; `None`
    /// when `t` writes none.
    pub(super) fn expand_lists_of(&mut self, t: TaskId) -> Option<Growth> {
        let groups: Vec<String> = self
            .graph
            .lists()
            .filter(|&(name, list)| {
                self.expanding.contains(name) && self.graph.producer(list) == Some(t)
            })
            .map(|(name, _)| name.to_string())
            .collect();
        if groups.is_empty() {
            return None;
        }
        let mut growth = Growth::default();
        for group in groups {
            let members = self.graph.fanouts[&group].members.clone();
            // What the build wants of the fan-out: a placeholder, all of
            // it; instances, those of these names.
            let wanted: HashSet<String> = members
                .iter()
                .filter(|&&m| self.wanted.get(m).copied().unwrap_or(false))
                .map(|&m| self.graph[m].name.clone())
                .collect();
            // An instance that would write a file the run was given fails
            // the fan-out, as a list that cannot be expanded does.
            let (pipeline, run_dir, store) = (self.pipeline, self.run_dir, &*self.store);
            let (stamper, mode, seeds) = (self.stamper, self.mode, self.seeds);
            let admit = |graph: &Graph, added: &[TaskId]| {
                let checker = Checker {
                    graph,
                    source: pipeline.source(),
                    run_dir,
                    store,
                    stamper,
                    mode,
                };
                seeds.check(&checker, added)
            };
            match self.graph.expand(pipeline, run_dir, &group, &admit) {
                Ok(Some(expansion)) => self.follow(&group, expansion, wanted, &mut growth),
                // The list is what the instances came from: they stand.
                Ok(None) if !self.graph.fanouts[&group].placeholder => {}
                Ok(None) => {
                    let list = self.graph.fanouts[&group].list.clone().unwrap_or_default();
                    let message = format!("its list file {list} was not written");
                    self.fail_members(&members, &message, &[], &mut growth);
                }
                Err(e) => {
                    let message = describe(&e);
                    self.fail_members(&members, &message, e.hints(), &mut growth);
                }
            }
        }
        Some(growth)
    }

    /// The scheduler's part of an expansion of `group`, with the new
    /// instances planned and the vanished ones' files removed. `wanted`:
    /// the names of its members the build wanted before the expansion.
    /// All its new instances are wanted when the build wanted its
    /// placeholder or wants a task that reads them; else those named as a
    /// wanted instance was; the others (all of them in a build of the
    /// list's producer alone, `planexe build outline`) join the graph but
    /// do not run.
    fn follow(
        &mut self,
        group: &str,
        expansion: Expansion,
        wanted: HashSet<String>,
        growth: &mut Growth,
    ) {
        let n = self.graph.id_bound();
        self.reasons.resize(n, None);
        self.running.resize(n, None);
        self.calls.resize(n, None);
        self.pending_check.resize(n, false);
        self.wanted.resize(n, false);
        let all = wanted.contains(group) || expansion.relinked.iter().any(|&t| self.wanted[t]);
        for &t in &expansion.added {
            self.wanted[t] = all || wanted.contains(&self.graph[t].name);
        }
        let instances = self.graph.fanouts[group].members.len();
        self.observer.notice(&Notice::Expanded {
            task: group.to_string(),
            instances,
            added: expansion.added.len(),
        });
        for warning in self.graph.glob_warnings(Some(&expansion.added)) {
            self.observer.notice(&Notice::GlobLeavesOut(warning));
        }
        let removed =
            lists::remove_vanished_from(self.graph, self.store, self.run_dir, self.observer);
        self.keep(removed);
        growth.retired.extend(&expansion.retired);
        let added: HashSet<TaskId> = expansion.added.iter().copied().collect();
        let roots: Vec<TaskId> = expansion
            .added
            .iter()
            .chain(&expansion.relinked)
            .copied()
            .collect();
        let downstream = self.graph.downstream(&roots);
        let force = self.forced.contains(group);
        for &t in self.graph.order().to_vec().iter() {
            if added.contains(&t) {
                if !self.wanted[t] {
                    continue;
                }
                if let Some(tentative) = self.plan_new(t, force) {
                    growth.steps.push((t, Step::Add { tentative }));
                }
            } else if downstream[t] && self.wanted.get(t).copied().unwrap_or(false) {
                growth.steps.push((t, Step::Relink));
            }
        }
    }

    /// Plans a new instance: `None` when it is up to date (done in an
    /// earlier build, its item unchanged), else whether it runs only if
    /// still stale once what it depends on has run.
    fn plan_new(&mut self, t: TaskId, force: bool) -> Option<bool> {
        let own = if force {
            Some(Reason::Forced)
        } else {
            let checker = Checker {
                graph: self.graph,
                source: self.pipeline.source(),
                run_dir: self.run_dir,
                store: self.store,
                stamper: self.stamper,
                mode: self.mode,
            };
            match checker.check(t) {
                Ok(Check::Stale(reason)) => Some(reason),
                Ok(Check::Fresh { update, .. }) => {
                    if let Some(update) = update {
                        let r = self.store.refresh_status(self.run_dir, &update);
                        self.keep(r);
                    }
                    None
                }
                Err(_) => Some(Reason::NeverBuilt { cleaned: false }),
            }
        };
        let graph = &*self.graph;
        let upstream = graph[t]
            .deps
            .iter()
            .find(|&&d| self.reasons[d].is_some())
            .map(|&d| Reason::Upstream(graph[d].name.clone()));
        let (reason, tentative) = match (own, upstream) {
            (Some(own), _) => (own, false),
            (None, Some(upstream)) => (upstream, true),
            (None, None) => return None,
        };
        if !tentative {
            // What `status` shows until it starts, as for the tasks the
            // build planned at its start.
            if let Some(prev) = self.store.done_record(self.run_dir, &graph[t].name) {
                let mut pending =
                    Status::new(&graph[t].name, TaskState::Pending, &graph[t].fingerprint);
                pending.inputs = prev.inputs.clone();
                pending.outputs = prev.outputs.clone();
                let r = self.store.write_status(self.run_dir, &pending);
                self.keep(r);
            }
        }
        self.reasons[t] = Some(reason);
        Some(tentative)
    }

    /// A fan-out whose list cannot be expanded: its members in this build
    /// (the placeholder, or instances waiting for the list) fail with
    /// `message` (which ends with `hints`, also kept apart for `status`),
    /// recorded as any failed task is.
    fn fail_members(
        &mut self,
        members: &[TaskId],
        message: &str,
        hints: &[String],
        growth: &mut Growth,
    ) {
        for &t in members {
            if !self.reasons.get(t).is_some_and(Option::is_some) || !self.wanted[t] {
                continue;
            }
            let task = &self.graph[t];
            let now = crate::clock::now_rfc3339();
            let mut status = Status::new(&task.name, TaskState::Failed, &task.fingerprint);
            status.started_at = Some(now.clone());
            status.finished_at = Some(now);
            status.duration_ms = Some(0);
            let mut error = TaskError::new(ErrorKind::BadList, message);
            error.hints = hints.to_vec();
            self.failures.record(task, &status, &mut error);
            status.error = Some(error);
            let len = match sidecar::publish(self.run_dir, &status) {
                Ok(len) => Some(len),
                Err(e) => {
                    self.keep(Err(e));
                    None
                }
            };
            let r = self.store.record_outcome(self.run_dir, &status, len);
            self.keep(r);
            self.reasons[t] = Some(Reason::failed(message.to_string()));
            self.observer.task_ended(
                &self.graph[t],
                &TaskEnd {
                    status: &status,
                    elapsed: Duration::ZERO,
                    tail: &[],
                    left: &[],
                    restored: 0,
                    unrecorded: None,
                },
            );
            growth.failed.push(t);
        }
    }
}

/// A list's error as a task's message: what, where and the hint.
fn describe(e: &Error) -> String {
    match e {
        Error::Pipeline { message, hints, .. } | Error::Usage { message, hints } => {
            let mut text = message.clone();
            for hint in hints {
                text.push_str(&format!("\nhint: {hint}"));
            }
            text
        }
        other => other.to_string(),
    }
}
