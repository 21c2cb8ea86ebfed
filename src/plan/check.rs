//! Checking one task against its records and the files on disk.
//!
//! A task is up to date when its records say its last run succeeded (see
//! [`Recorded`]), its fingerprint equals the recorded one, every output
//! exists, the set of inputs is the recorded set, and every input and
//! output matches its recorded stamp (docs/staleness.md). The check only
//! stats files whose stamps match.
//!
//! Two kinds of stamp difference do not make a task stale: a file rewritten
//! with the same bytes (its new mtime is recorded), and an output edited by
//! hand (its new content is accepted and recorded, so the task's dependents
//! see a changed input and re-run).

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::ops::Range;

use crate::error::{Error, Result};
use crate::model::source::Source;
use crate::model::{Action, Graph, TaskId};
use crate::store::stamp::{self, CheckMode, Comparison, Stamp, Stamper};
use crate::store::{Recorded, RunDir, StateStore, Status, TaskState};

/// Why a task must run. Printed by `-n`, `status` and the build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    Forced,
    /// No successful run is recorded; `cleaned` when `clean` forgot the
    /// last one (and nothing has run since).
    NeverBuilt {
        cleaned: bool,
    },
    /// The last run failed. `recheck`: it was a re-check (its checks
    /// alone had changed) that could not examine the last good run's
    /// outputs (its judge's model down), which are still as that run
    /// wrote them: they are examined again, and it runs only if they fail.
    FailedLastTime {
        message: String,
        recheck: bool,
    },
    /// The last run was stopped (or never ended). `recheck`: it was a
    /// re-check stopped before it could examine the last good run's
    /// outputs, which are still as that run wrote them: they are examined
    /// again, as for [`Reason::FailedLastTime`].
    InterruptedLastTime {
        recheck: bool,
    },
    MarkerMissing,
    ActionChanged(&'static str),
    /// A fan-out instance whose item changed, its template the same.
    ItemChanged,
    /// Only the task's output checks changed: its outputs are checked
    /// again, and it runs only if they fail.
    ChecksChanged,
    OutputMissing(String),
    /// The task declares an output its last run did not record.
    OutputAdded(String),
    InputAdded(String),
    InputRemoved(String),
    InputChanged(String),
    /// A command naming `{inputs}` would be given them in another order.
    InputsReordered,
    /// A task it depends on will run first; it may turn out up to date.
    Upstream(String),
    /// A `foreach` placeholder: expands once its list file is built.
    AwaitsList(String),
    /// It reads (or runs after) a `foreach` task that has not expanded,
    /// whose list is to be built: what it reads is not known yet, so it
    /// is judged once the fan-out has expanded.
    AwaitsFanout {
        fanout: String,
        list: String,
    },
    /// It made this `foreach` list, which cannot be expanded: it makes it
    /// again.
    BadList(String),
}

impl Reason {
    /// Whether it says something of the task's inputs (which are not
    /// known while a fan-out it reads has not expanded).
    pub fn about_inputs(&self) -> bool {
        matches!(
            self,
            Reason::InputAdded(_)
                | Reason::InputRemoved(_)
                | Reason::InputChanged(_)
                | Reason::InputsReordered
        )
    }

    /// The last run failed with `message` (the error's first line).
    pub fn failed(message: String) -> Reason {
        Reason::FailedLastTime {
            message,
            recheck: false,
        }
    }

    /// Whether the task's current outputs are examined again before it
    /// runs (it runs only if they fail).
    pub fn rechecks(&self) -> bool {
        matches!(
            self,
            Reason::ChecksChanged
                | Reason::FailedLastTime { recheck: true, .. }
                | Reason::InterruptedLastTime { recheck: true }
        )
    }

    /// Whether the task waits for others and runs only if, once they have
    /// run, it is still stale.
    pub fn waits(&self) -> bool {
        matches!(self, Reason::Upstream(_) | Reason::AwaitsFanout { .. })
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Forced => write!(f, "forced (-B)"),
            Reason::NeverBuilt { cleaned: false } => write!(f, "never built"),
            Reason::NeverBuilt { cleaned: true } => write!(f, "cleaned"),
            Reason::FailedLastTime {
                message,
                recheck: false,
            } => write!(f, "failed last time: {message}"),
            Reason::FailedLastTime {
                message,
                recheck: true,
            } => write!(f, "failed last time: {message} (outputs checked again)"),
            Reason::InterruptedLastTime { recheck: false } => write!(f, "stopped last time"),
            Reason::InterruptedLastTime { recheck: true } => {
                write!(f, "stopped last time (outputs checked again)")
            }
            Reason::MarkerMissing => write!(f, ".DONE marker missing"),
            Reason::ActionChanged(kind) => write!(f, "{kind} changed"),
            Reason::ItemChanged => write!(f, "its item changed"),
            Reason::ChecksChanged => write!(f, "checks changed (outputs checked again)"),
            Reason::OutputMissing(p) => write!(f, "output {p} missing"),
            Reason::OutputAdded(p) => write!(f, "output {p} added"),
            Reason::InputAdded(p) => write!(f, "input {p} added"),
            Reason::InputRemoved(p) => write!(f, "input {p} removed"),
            Reason::InputChanged(p) => write!(f, "input {p} changed"),
            Reason::InputsReordered => write!(f, "inputs reordered"),
            Reason::Upstream(t) => write!(f, "upstream {t} will re-run"),
            Reason::AwaitsList(l) => write!(f, "expands when {l} is built"),
            Reason::AwaitsFanout { fanout, list } => {
                write!(f, "waits for {fanout}, which expands when {list} is built")
            }
            Reason::BadList(l) => write!(f, "its list {l} cannot be expanded"),
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
    /// The pipeline file's text: a path that cannot be looked at is
    /// refused at its place in it.
    pub source: Source<'a>,
    pub run_dir: &'a RunDir,
    pub store: &'a StateStore,
    pub stamper: &'a Stamper,
    pub mode: CheckMode,
}

impl Checker<'_> {
    /// Checks one task as if nothing upstream were going to run.
    pub fn check(&self, id: TaskId) -> Result<Check> {
        // Counted under `PLANEXE_STATS`: how many tasks a build checked.
        let _t = crate::phases::phase("plan: check a task");
        let task = &self.graph[id];
        let root = self.run_dir.root();
        if let Action::Expand(list) = &task.action {
            return Ok(Check::Stale(Reason::AwaitsList(list.clone())));
        }
        let record = match self.store.recorded_for_check(self.run_dir, &task.name) {
            Recorded::Done(record) => record,
            Recorded::Never => {
                let cleaned = self.store.was_cleaned(&task.name);
                return Ok(Check::Stale(Reason::NeverBuilt { cleaned }));
            }
            Recorded::Failed(s) => {
                let message = s
                    .error
                    .as_ref()
                    .map(|e| e.first_line().to_string())
                    .unwrap_or_default();
                let recheck = s.rechecked && self.kept(id)?;
                return Ok(Check::Stale(Reason::FailedLastTime { message, recheck }));
            }
            Recorded::Interrupted(s) => {
                let recheck = s.state == TaskState::Stopped && s.rechecked && self.kept(id)?;
                return Ok(Check::Stale(Reason::InterruptedLastTime { recheck }));
            }
            Recorded::Unmarked(_) => return Ok(Check::Stale(Reason::MarkerMissing)),
        };
        // A record of a task without checks has one fingerprint for both.
        let checks_changed = record.fingerprint != task.fingerprint
            && record
                .action_fingerprint
                .as_deref()
                .unwrap_or(&record.fingerprint)
                == task.action_fingerprint;
        if record.fingerprint != task.fingerprint && !checks_changed {
            let item = task.template_fingerprint.is_some()
                && record.template_fingerprint == task.template_fingerprint;
            return Ok(Check::Stale(match item {
                true => Reason::ItemChanged,
                false => Reason::ActionChanged(task.action.kind()),
            }));
        }
        // Outputs must exist; differences are judged after the inputs.
        let mut output_checks = Vec::with_capacity(task.outputs.len());
        for out in &task.outputs {
            let refuse = |e| self.refusal(id, Side::Output, out.span.clone(), &out.path, &e);
            let comparison = match record.outputs.get(&out.path) {
                Some(stamp) => self
                    .stamper
                    .compare(root, &out.path, stamp, self.mode)
                    .map_err(refuse)?,
                None => {
                    // A newly declared output: its file, if any, was not
                    // written by this task's last run.
                    if stamp::stat_inside(root, &out.path)
                        .map_err(refuse)?
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
            output_checks.push((out, comparison));
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
                .map_err(|e| self.refusal(id, Side::Input, input.span.clone(), &input.path, &e))?
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
        // A record from before planexe recorded the order says nothing.
        if let Some(recorded) = &record.input_order {
            if task.input_order().is_some_and(|now| now != *recorded) {
                return Ok(Check::Stale(Reason::InputsReordered));
            }
        }

        let mut edited = Vec::new();
        let mut new_outputs = record.outputs.clone();
        for (out, comparison) in output_checks {
            let path = out.path.as_str();
            match comparison {
                Comparison::Same => {}
                Comparison::Touched(now) => {
                    new_outputs.insert(path.to_string(), now);
                }
                Comparison::Changed => {
                    let now = self
                        .stamper
                        .stamp(root, path)
                        .map_err(|e| self.refusal(id, Side::Output, out.span.clone(), path, &e))?
                        .ok_or_else(|| {
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

        if checks_changed {
            return Ok(Check::Stale(Reason::ChecksChanged));
        }
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

impl Checker<'_> {
    /// Whether the outputs of task `id`'s last good run stand as it wrote
    /// them, for a re-check that failed after it (`Status::rechecked`) to
    /// be made again: the task does what that run did, with the inputs it
    /// read, and every output has the stamp it recorded (or the same
    /// bytes). Anything else (an output edited or gone, an input changed)
    /// and the task runs in full.
    fn kept(&self, id: TaskId) -> Result<bool> {
        let task = &self.graph[id];
        let root = self.run_dir.root();
        let Some(done) = self.store.done_record(self.run_dir, &task.name) else {
            return Ok(false);
        };
        let action = done.action_fingerprint.as_deref();
        if action.unwrap_or(&done.fingerprint) != task.action_fingerprint
            || done.outputs.len() != task.outputs.len()
            || done.inputs.len() != task.inputs.len()
        {
            return Ok(false);
        }
        if let Some(recorded) = &done.input_order {
            if task.input_order().is_some_and(|now| now != *recorded) {
                return Ok(false);
            }
        }
        let sides = (task
            .outputs
            .iter()
            .map(|o| (Side::Output, o.span.clone(), &o.path)))
        .chain(
            task.inputs
                .iter()
                .map(|i| (Side::Input, i.span.clone(), &i.path)),
        );
        for (side, span, path) in sides {
            let stamps = match side {
                Side::Output => &done.outputs,
                Side::Input => &done.inputs,
            };
            let Some(stamp) = stamps.get(path) else {
                return Ok(false);
            };
            let comparison = self
                .stamper
                .compare(root, path, stamp, self.mode)
                .map_err(|e| self.refusal(id, side, span, path, &e))?;
            if !matches!(comparison, Comparison::Same | Comparison::Touched(_)) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Which of a task's lists a path is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Input,
    Output,
}

impl Checker<'_> {
    /// The refusal of a path of task `id` that cannot be looked at (`e`: a
    /// symlink leading out of the run directory, a file where a folder
    /// should be, a loop of links, a name too long): at the place the
    /// pipeline file writes it, naming the task, as the refusals made
    /// while loading it are.
    pub fn refusal(
        &self,
        id: TaskId,
        side: Side,
        span: Range<usize>,
        path: &str,
        e: &io::Error,
    ) -> Error {
        let what = match side {
            Side::Input => "input",
            Side::Output => "output",
        };
        let task = &self.graph[id].name;
        let error = Error::pipeline(
            self.source
                .diagnostic(span, &format!("{what} of task `{task}`: {e}")),
        );
        error.hint(match e.kind() {
            io::ErrorKind::NotADirectory => crate::store::wrong_kind::hint(path),
            io::ErrorKind::InvalidFilename => format!(
                "{path} is too long for the file system (a name is at most 255 bytes on most): name a shorter path"
            ),
            // The system's own refusal, not a link leading out (which
            // `stamp::stat_inside` reports with no error number).
            io::ErrorKind::PermissionDenied if e.raw_os_error().is_some() => format!(
                "planexe may not look at {path} or a folder on its way: check their permissions"
            ),
            io::ErrorKind::PermissionDenied => format!(
                "tasks read and write only inside the run directory: replace {path}, or a folder on its way, with a copy or a link that stays inside"
            ),
            _ => format!(
                "every folder on the way to {path} must be a folder or a link to one inside the run directory, not a loop of links"
            ),
        })
    }
}
