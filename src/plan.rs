//! The per-build plan: which of the wanted tasks are stale and why.
//!
//! A task is up to date when its `.DONE` marker exists, its fingerprint
//! equals the recorded one, every output exists, the set of inputs is the
//! recorded set, and every input and output matches its recorded stamp (see
//! docs/staleness.md). The check only stats files whose stamps match.
//!
//! Two kinds of stamp difference do not make a task stale: a file rewritten
//! with the same bytes (its new mtime is recorded), and an output edited by
//! hand (its new content is accepted and recorded, so the task's dependents
//! see a changed input and re-run).

use std::collections::BTreeMap;
use std::fmt;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::graph::{Graph, TaskId};
use crate::rundir::RunDir;
use crate::stamp::{CheckMode, Comparison, Stamp, Stamper};
use crate::state::{StateStore, Status, TaskState};

/// Why a task must run. Printed by `-n`, `status` and the build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    Forced,
    NeverBuilt,
    FailedLastTime(String),
    InterruptedLastTime,
    MarkerMissing,
    ActionChanged(&'static str),
    OutputMissing(String),
    /// The task declares an output its last run did not record.
    OutputAdded(String),
    InputAdded(String),
    InputRemoved(String),
    InputChanged(String),
    /// A task it depends on will run first; it may turn out up to date.
    Upstream(String),
    /// A `foreach` placeholder: expands once its list file is built.
    AwaitsList(String),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Forced => write!(f, "forced (-B)"),
            Reason::NeverBuilt => write!(f, "never built"),
            Reason::FailedLastTime(m) => write!(f, "failed last time: {m}"),
            Reason::InterruptedLastTime => write!(f, "interrupted last time"),
            Reason::MarkerMissing => write!(f, ".DONE marker missing"),
            Reason::ActionChanged(kind) => write!(f, "{kind} changed"),
            Reason::OutputMissing(p) => write!(f, "output {p} missing"),
            Reason::OutputAdded(p) => write!(f, "output {p} added"),
            Reason::InputAdded(p) => write!(f, "input {p} added"),
            Reason::InputRemoved(p) => write!(f, "input {p} removed"),
            Reason::InputChanged(p) => write!(f, "input {p} changed"),
            Reason::Upstream(t) => write!(f, "upstream {t} will re-run"),
            Reason::AwaitsList(l) => write!(f, "expands when {l} is built"),
        }
    }
}

/// The result of checking one task against disk.
#[derive(Debug)]
pub enum Check {
    /// Up to date. `update` is a record to write when stamps moved without
    /// a change of meaning (same bytes, or an output edited by hand).
    Fresh {
        update: Option<Box<Status>>,
        edited: Vec<String>,
    },
    Stale(Reason),
}

/// Checks tasks against their records and the files on disk.
pub struct Checker<'a> {
    pub graph: &'a Graph,
    pub run_dir: &'a RunDir,
    pub store: &'a StateStore,
    pub stamper: &'a Stamper,
    pub mode: CheckMode,
}

impl Checker<'_> {
    /// Checks one task as if nothing upstream were going to run.
    pub fn check(&self, id: TaskId) -> Result<Check> {
        let task = &self.graph.tasks[id];
        let root = self.run_dir.root();
        if let crate::graph::Action::Expand(list) = &task.action {
            return Ok(Check::Stale(Reason::AwaitsList(list.clone())));
        }
        let from_sidecar = |fallback: Reason| match self.store.last_status(self.run_dir, &task.name)
        {
            Some(s) if s.state == TaskState::Failed => Reason::FailedLastTime(
                s.error
                    .map(|e| first_line(&e.message).to_string())
                    .unwrap_or_default(),
            ),
            Some(s) if matches!(s.state, TaskState::Stopped | TaskState::Running) => {
                Reason::InterruptedLastTime
            }
            _ => fallback,
        };
        let Some(record) = self.store.done_record(self.run_dir, &task.name) else {
            return Ok(Check::Stale(from_sidecar(Reason::NeverBuilt)));
        };
        if let Some(last) = self.store.record(&task.name).and_then(|r| r.last.as_ref()) {
            match last.state {
                TaskState::Failed => {
                    return Ok(Check::Stale(Reason::FailedLastTime(
                        last.error
                            .as_ref()
                            .map(|e| first_line(&e.message).to_string())
                            .unwrap_or_default(),
                    )))
                }
                TaskState::Stopped => return Ok(Check::Stale(Reason::InterruptedLastTime)),
                _ => {}
            }
        }
        if !self.store.has_marker(self.run_dir, &task.name) {
            // A run that started (and removed the marker) but never ended,
            // or a marker deleted by hand.
            return Ok(Check::Stale(from_sidecar(Reason::MarkerMissing)));
        }
        if record.fingerprint != task.fingerprint {
            return Ok(Check::Stale(Reason::ActionChanged(task.action.kind())));
        }
        let io = |e: std::io::Error| Error::Io(e);

        // Outputs must exist; differences are judged after the inputs.
        let mut output_checks = Vec::with_capacity(task.outputs.len());
        for out in &task.outputs {
            let comparison = match record.outputs.get(&out.path) {
                Some(stamp) => self
                    .stamper
                    .compare(root, &out.path, stamp, self.mode)
                    .map_err(io)?,
                None => {
                    // A newly declared output: its file, if any, was not
                    // written by this task's last run.
                    if crate::stamp::stat_inside(root, &out.path)
                        .map_err(io)?
                        .is_none()
                    {
                        Comparison::Missing
                    } else {
                        return Ok(Check::Stale(Reason::OutputAdded(out.path.clone())));
                    }
                }
            };
            if comparison == Comparison::Missing {
                return Ok(Check::Stale(Reason::OutputMissing(out.path.clone())));
            }
            output_checks.push((out.path.as_str(), comparison));
        }

        for input in &task.inputs {
            if !record.inputs.contains_key(&input.path) {
                return Ok(Check::Stale(Reason::InputAdded(input.path.clone())));
            }
        }
        if record.inputs.len() != task.inputs.len() {
            if let Some(gone) = record
                .inputs
                .keys()
                .find(|p| !task.inputs.iter().any(|i| &i.path == *p))
            {
                return Ok(Check::Stale(Reason::InputRemoved(gone.clone())));
            }
        }
        let mut touched: BTreeMap<String, Stamp> = BTreeMap::new();
        for input in &task.inputs {
            let recorded = &record.inputs[&input.path];
            match self
                .stamper
                .compare(root, &input.path, recorded, self.mode)
                .map_err(io)?
            {
                Comparison::Same => {}
                Comparison::Touched(now) => {
                    touched.insert(input.path.clone(), now);
                }
                Comparison::Changed | Comparison::Missing => {
                    return Ok(Check::Stale(Reason::InputChanged(input.path.clone())))
                }
            }
        }

        let mut edited = Vec::new();
        let mut new_outputs = record.outputs.clone();
        for (path, comparison) in output_checks {
            match comparison {
                Comparison::Same => {}
                Comparison::Touched(now) => {
                    new_outputs.insert(path.to_string(), now);
                }
                Comparison::Changed => {
                    let now = self.stamper.stamp(root, path).map_err(io)?.ok_or_else(|| {
                        Error::Io(std::io::Error::other(format!(
                            "{path} vanished while checked"
                        )))
                    })?;
                    new_outputs.insert(path.to_string(), now);
                    edited.push(path.to_string());
                }
                Comparison::Missing => unreachable!("missing outputs returned above"),
            }
        }
        // Outputs no longer declared are no longer recorded.
        new_outputs.retain(|p, _| task.outputs.iter().any(|o| &o.path == p));

        let update = if touched.is_empty() && new_outputs == record.outputs {
            None
        } else {
            let mut status = record.into_owned();
            status.inputs.extend(touched);
            status.outputs = new_outputs;
            Some(Box::new(status))
        };
        Ok(Check::Fresh { update, edited })
    }
}

pub fn first_line(s: &str) -> &str {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}

/// The plan of one build over the wanted tasks.
#[derive(Debug)]
pub struct Plan {
    pub wanted: Vec<bool>,
    /// For wanted tasks that will run: why. `Upstream` means the task runs
    /// only if, once its dependencies finish, it is still stale.
    pub reasons: Vec<Option<Reason>>,
    /// Records to update for fresh tasks (same bytes, hand edits).
    pub updates: Vec<Status>,
    /// Hand-edited outputs accepted, as (task, path).
    pub edited: Vec<(TaskId, String)>,
}

impl Plan {
    /// Checks every wanted task, in dependency order.
    pub fn make(checker: &Checker, wanted: Vec<bool>, forced: &[bool]) -> Result<Plan> {
        let graph = checker.graph;
        let mut reasons: Vec<Option<Reason>> = vec![None; graph.tasks.len()];
        let mut updates = Vec::new();
        let mut edited = Vec::new();
        // Each task's own check only reads its record and stats its files:
        // they run in parallel; reasons that flow downstream come after.
        let ids: Vec<TaskId> = graph
            .order
            .iter()
            .copied()
            .filter(|&id| wanted[id] && !forced[id])
            .collect();
        let mut checks: Vec<Option<Check>> = Vec::new();
        checks.resize_with(graph.tasks.len(), || None);
        let results: Vec<(TaskId, Result<Check>)> =
            ids.par_iter().map(|&id| (id, checker.check(id))).collect();
        for (id, check) in results {
            checks[id] = Some(check?);
        }
        for &id in &graph.order {
            if !wanted[id] {
                continue;
            }
            let own = if forced[id] {
                Some(Reason::Forced)
            } else {
                match checks[id]
                    .take()
                    .unwrap_or(Check::Stale(Reason::NeverBuilt))
                {
                    Check::Stale(reason) => Some(reason),
                    Check::Fresh {
                        update,
                        edited: paths,
                    } => {
                        updates.extend(update.map(|u| *u));
                        edited.extend(paths.into_iter().map(|p| (id, p)));
                        None
                    }
                }
            };
            if own.is_some() {
                // Refuse before anything runs when an output is a symlink
                // that leads out of the run directory.
                for out in &graph.tasks[id].outputs {
                    crate::stamp::stat_inside(checker.run_dir.root(), &out.path).map_err(|e| {
                        Error::pipeline(format!("output of task `{}`: {e}", graph.tasks[id].name))
                    })?;
                }
            }
            // A changed input whose producer runs first is expected to
            // change: the task waits and is judged again afterwards.
            let own = match own {
                Some(Reason::InputChanged(path))
                    if graph
                        .producers
                        .get(&path)
                        .is_some_and(|&p| reasons[p].is_some()) =>
                {
                    None
                }
                other => other,
            };
            reasons[id] = own.or_else(|| {
                graph.tasks[id]
                    .deps
                    .iter()
                    .find(|&&d| reasons[d].is_some())
                    .map(|&d| Reason::Upstream(graph.tasks[d].name.clone()))
            });
        }
        Ok(Plan {
            wanted,
            reasons,
            updates,
            edited,
        })
    }

    /// Wanted tasks that will (or may) run, in dependency order.
    pub fn to_run<'a>(&'a self, graph: &'a Graph) -> impl Iterator<Item = TaskId> + 'a {
        graph
            .order
            .iter()
            .copied()
            .filter(|&t| self.wanted[t] && self.reasons[t].is_some())
    }
}
