//! `status` from `.planexe/status.snapshot`: what is saved, and when it
//! may be trusted.
//!
//! - Live: a running build saves its view of the tasks as it goes; it is
//!   trusted while the run record says that build runs.
//! - Idle: saved with the up-to-date certificate, with what `status`
//!   prints already rendered (the groups of task lines as text, the tasks
//!   array as compact JSON) and an [`Excerpt`] of the certificate: the
//!   entries `status` checks. It is trusted while that certificate is in
//!   place (its generation, from its first bytes) and every entry of the
//!   excerpt holds: the pipeline file and the files beside it, every
//!   source (a task input no task produces; a `foreach` list), globbed
//!   folders, planexe's own state (the log, which may have grown by
//!   restamps alone, `run.json`, `pipeline`), and, by their stat, the
//!   folders on the way to task files and `tasks/`, and the outputs that
//!   sit directly in the run directory's root. It does not check other
//!   task outputs nor the tasks' sidecars and markers: an output edited in
//!   place by hand shows at the next build (or `status --full`); one
//!   deleted or replaced in a folder the certificate lists changes that
//!   folder, which is checked.
//!
//! Sections of the file: the task lines (postcard); their text, in two
//! parts around the groups of clocked lines (FAILED-PENDING-CHECK and
//! RUNNING: how long a task has run reads differently as time passes), which
//! the head holds as lines to render when printed; and, in an idle
//! snapshot, their JSON.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::lines::{About, Known, TaskLine};
use super::{assemble, last_progress, text, StatusReport};
use crate::observe::palette::Paint;
use crate::observe::{summary, Standing};
use crate::plan::certificate::{self, Excerpt, Kind, Watch};
use crate::plan::session::Located;
use crate::plan::{Plan, Session};
use crate::store::run_record::RunRecord;
use crate::store::rundir::{file, state_rel};
use crate::store::snapshot::{self, Live, Snapshot};
use crate::store::{CheckMode, RunDir};

/// The sections of a snapshot, in order.
const LINES: usize = 0;
const BEFORE: usize = 1;
const AFTER: usize = 2;
const JSON: usize = 3;

/// The head of a snapshot: what `status` reports besides the task lines.
#[derive(Debug, Deserialize)]
struct Cover {
    about: About,
    counts: BTreeMap<Standing, usize>,
    /// Idle: what of the certificate `status` checks.
    excerpt: Option<Excerpt>,
    /// The text sections hold the lines, rendered, but for these.
    clocked: Vec<TaskLine>,
    /// The names' column in the text.
    width: usize,
    /// The JSON section holds the lines, rendered.
    json: bool,
}

/// [`Cover`] as written, borrowed.
#[derive(Serialize)]
struct CoverOut<'a> {
    about: &'a About,
    counts: BTreeMap<Standing, usize>,
    excerpt: Option<&'a Excerpt>,
    clocked: &'a [TaskLine],
    width: usize,
    json: bool,
}

/// How many tasks stand where.
pub(super) fn counts(tasks: &[TaskLine]) -> BTreeMap<Standing, usize> {
    let mut counts = BTreeMap::new();
    for l in tasks {
        *counts.entry(l.state).or_default() += 1;
    }
    counts
}

impl Known {
    /// Saves what `status` would report now, for the certificate of
    /// `generation` just written: while it holds, `status` reads this
    /// instead of checking every task. `warnings`: the quality warnings,
    /// when the caller has the summary already. Best effort.
    pub fn save_idle(
        session: &Session,
        generation: u64,
        warnings: Option<Vec<String>>,
        lines: Option<IdleLines>,
    ) {
        let read_excerpt = || {
            let _t = crate::phases::phase("status snapshot: certificate excerpt");
            certificate::read_excerpt(&session.run_dir, generation, watch(session))
        };
        // The certificate is read back while the lines are made, unless
        // they were made while it was written.
        let (excerpt, lines) = match lines {
            Some(lines) => (read_excerpt(), Some(lines)),
            None => rayon::join(read_excerpt, || Known::idle_lines(session)),
        };
        let (Some(excerpt), Some(IdleLines { mut known, made })) = (excerpt, lines) else {
            return;
        };
        known.about.warnings =
            warnings.unwrap_or_else(|| summary::warnings(&session.graph, &session.store));
        let _t = crate::phases::phase("status snapshot: file");
        snapshot::write_idle(
            &session.run_dir,
            generation,
            &made.cover(&known, Some(&excerpt)),
            &made
                .sections()
                .iter()
                .map(Vec::as_slice)
                .collect::<Vec<_>>(),
        );
    }

    /// The lines of the idle snapshot of `session`, every task up to date,
    /// rendered, without the quality warnings (the cover, written with
    /// them, is not rendered): what [`Known::save_idle`] saves. A build
    /// makes them while it writes the certificate they go with.
    pub fn idle_lines(session: &Session) -> Option<IdleLines> {
        let plan = Plan::up_to_date(&session.graph);
        let t = crate::phases::phase("status snapshot: task lines");
        let known = Known::of_session_without_warnings(session, &plan);
        drop(t);
        let _t = crate::phases::phase("status snapshot: render");
        let made = Rendered::of(&known, true)?;
        Some(IdleLines { known, made })
    }

    /// Saves what `status` should report while the build `live` runs: it
    /// reads this instead of checking every task. Best effort.
    pub fn save_live(&self, run_dir: &RunDir, live: Live) {
        let Some(made) = Rendered::of(self, false) else {
            return;
        };
        let sections = made.sections();
        let sections: Vec<&[&[u8]]> = sections.iter().map(Vec::as_slice).collect();
        snapshot::write_live(run_dir, live, &made.cover(self, None), &sections);
    }

    /// The saved report, when the certificate it was saved with is still
    /// in place for this pipeline file and model override (`model`: the
    /// one named for this invocation) and what it checks holds; or, while
    /// a build runs, the snapshot that build keeps up to date.
    pub fn saved(
        located: &Located,
        run: Option<&RunRecord>,
        mode: CheckMode,
        model: Option<&str>,
    ) -> Option<Saved> {
        let run_dir = &located.run_dir;
        let snapshot: Snapshot<Cover> = Snapshot::read(run_dir)?;
        if let Some(build) = run.and_then(|r| r.running_build(run_dir)) {
            let this = Live {
                pid: build.pid,
                started_at: build.started_at.clone(),
            };
            let same_pipeline =
                snapshot.payload.about.pipeline_file == located.pipeline.display().to_string();
            return (snapshot.live.as_ref() == Some(&this) && same_pipeline)
                .then_some(Saved { snapshot });
        }
        let excerpt = snapshot.payload.excerpt.as_ref()?;
        if snapshot.live.is_some() || snapshot.generation != excerpt.generation() {
            return None;
        }
        let key = certificate::Key {
            pipeline: &located.pipeline,
            model,
        };
        let _t = crate::phases::phase("status: check the snapshot's sources");
        excerpt
            .holds(run_dir, &key, mode)
            .then_some(Saved { snapshot })
    }
}

/// The idle snapshot's lines, made before it is saved
/// ([`Known::idle_lines`]).
pub struct IdleLines {
    known: Known,
    made: Rendered,
}

/// The sections of a snapshot: the lines, their text but for the clocked
/// groups, and their JSON when asked for.
struct Rendered {
    lines: Vec<u8>,
    before: String,
    clocked: Vec<TaskLine>,
    after: String,
    width: usize,
    /// The JSON array's elements, in pieces of many.
    json: Option<Vec<Vec<u8>>>,
}

impl Rendered {
    /// Made on two threads when `json` is asked for: it is most of the
    /// work.
    fn of(known: &Known, json: bool) -> Option<Rendered> {
        let tasks = &known.tasks;
        let text = || {
            let lines = postcard::to_allocvec(tasks).ok();
            let groups = text::Groups::of(tasks, &known.about.fanouts, Paint::new(false), false);
            (lines, groups)
        };
        let ((lines, groups), json) = if json {
            let (made, json) = rayon::join(text, || json_elements(tasks));
            (made, Some(json?))
        } else {
            (text(), None)
        };
        Some(Rendered {
            lines: lines?,
            before: groups.before,
            clocked: groups.clocked.into_iter().cloned().collect(),
            after: groups.after,
            width: groups.width,
            json,
        })
    }

    /// The head's payload, for the lines of `known`.
    fn cover<'a>(&'a self, known: &'a Known, excerpt: Option<&'a Excerpt>) -> CoverOut<'a> {
        CoverOut {
            about: &known.about,
            counts: counts(&known.tasks),
            excerpt,
            clocked: &self.clocked,
            width: self.width,
            json: self.json.is_some(),
        }
    }

    /// The sections, in order, the JSON in pieces: the array, its
    /// elements' pieces between `,`.
    fn sections(&self) -> Vec<Vec<&[u8]>> {
        let mut json: Vec<&[u8]> = Vec::new();
        if let Some(pieces) = &self.json {
            json.reserve(pieces.len() * 2 + 1);
            json.push(b"[");
            for (i, piece) in pieces.iter().enumerate() {
                if i > 0 {
                    json.push(b",");
                }
                json.push(piece);
            }
            json.push(b"]");
        }
        vec![
            vec![&self.lines[..]],
            vec![self.before.as_bytes()],
            vec![self.after.as_bytes()],
            json,
        ]
    }
}

/// The elements of `tasks` as serde writes them in a JSON array on one
/// line (`,` between two), in pieces made on every thread.
fn json_elements(tasks: &[TaskLine]) -> Option<Vec<Vec<u8>>> {
    tasks
        .par_chunks(4096)
        .map(|chunk| {
            let mut out = Vec::with_capacity(chunk.len() * 280);
            for (i, line) in chunk.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut out, line).ok()?;
            }
            Some(out)
        })
        .collect()
}

/// How `status` watches each entry of the certificate of `session`'s run
/// (see the module's documentation). Called for every entry (two per
/// task), so it looks each up in the sources alone, which are few.
fn watch(session: &Session) -> impl Fn(&str, Kind) -> Watch {
    let graph = &session.graph;
    let mut sources: BTreeSet<String> = graph.source_paths(&session.pipeline).into_iter().collect();
    sources.extend(
        graph
            .tasks()
            .flat_map(|t| &t.inputs)
            .filter(|i| i.producer.is_none())
            .map(|i| i.path.clone()),
    );
    let sidecars = format!("{}/", state_rel(file::TASKS));
    move |path, kind| match kind {
        Kind::Other if path.starts_with(&sidecars) => Watch::Trust,
        Kind::Other => Watch::Full,
        Kind::Folder if sources.contains(path) => Watch::Full,
        Kind::Folder => Watch::Stat,
        Kind::TaskFile if sources.contains(path) => Watch::Full,
        // An output in the run directory's root: no folder the certificate
        // lists changes when it is deleted or replaced (the root is not
        // listed: everything planexe writes changes it). They are few.
        Kind::TaskFile if !path.contains('/') => Watch::Stat,
        Kind::TaskFile => Watch::Trust,
    }
}

/// A snapshot `status` may answer from ([`Known::saved`]).
pub struct Saved {
    snapshot: Snapshot<Cover>,
}

impl Saved {
    /// The snapshot in `run_dir` as it is, whether or not it may be
    /// trusted now (what [`Known::saved`] decides).
    pub fn read(run_dir: &RunDir) -> Option<Saved> {
        Snapshot::read(run_dir).map(|snapshot| Saved { snapshot })
    }

    /// The whole report but its task lines (`tasks` is empty; `counts` says
    /// how many there are in each state): the run's header and totals
    /// read now. See [`super::report`].
    pub fn report(
        &self,
        run_dir: &RunDir,
        run: Option<&RunRecord>,
        stall_after: Duration,
        env_model: Option<&str>,
    ) -> StatusReport {
        let cover = &self.snapshot.payload;
        // The running tasks' lines are the clocked ones, with their calls.
        let progress = last_progress(run_dir, &cover.clocked);
        assemble(
            run_dir,
            run,
            cover.about.clone(),
            (cover.counts.clone(), progress),
            Vec::new(),
            stall_after,
            env_model,
        )
    }

    /// The task lines; `None` when they cannot be read whole.
    pub fn lines(&self) -> Option<Vec<TaskLine>> {
        postcard::from_bytes(&self.snapshot.section(LINES)?).ok()
    }

    /// The whole report, task lines included.
    pub fn into_report(
        self,
        run_dir: &RunDir,
        run: Option<&RunRecord>,
        stall_after: Duration,
        env_model: Option<&str>,
    ) -> Option<StatusReport> {
        let mut report = self.report(run_dir, run, stall_after, env_model);
        report.tasks = self.lines()?;
        Some(report)
    }

    /// `status` as plain text, as [`text::render`] would say `report` (this
    /// snapshot's, without task lines) with this snapshot's lines, and a
    /// final newline: the clocked groups rendered now between the two parts
    /// of the rest; `None` when those cannot be read whole.
    pub fn text(&self, report: &StatusReport) -> Option<Vec<u8>> {
        if !report.tasks.is_empty() {
            return None;
        }
        let cover = &self.snapshot.payload;
        let size = [BEFORE, AFTER]
            .iter()
            .map(|&s| {
                self.snapshot
                    .section_len(s)
                    .and_then(|n| usize::try_from(n).ok())
            })
            .sum::<Option<usize>>()?;
        let mut head = String::new();
        text::header(&mut head, report);
        let mut now = String::new();
        text::clocked(&mut now, &cover.clocked, cover.width, Paint::new(false));
        let mut tail = String::new();
        super::totals::tail(&mut tail, report, Paint::new(false));
        let mut out = Vec::with_capacity(head.len() + size + now.len() + tail.len() + 1);
        out.extend_from_slice(head.as_bytes());
        if !self.snapshot.section_into(BEFORE, &mut out) {
            return None;
        }
        out.extend_from_slice(now.as_bytes());
        if !self.snapshot.section_into(AFTER, &mut out) {
            return None;
        }
        out.extend_from_slice(tail.as_bytes());
        let end = std::str::from_utf8(&out).ok()?.trim_end().len();
        out.truncate(end);
        out.push(b'\n');
        Some(out)
    }

    /// Writes `status --json` on one line to `out`, as serde would write
    /// `report` (this snapshot's, without task lines) with this snapshot's
    /// lines, and a final newline, without holding the lines in memory
    /// (copied by the kernel when `out` is stdout): `None` when the
    /// snapshot does not hold them rendered or they are damaged (nothing
    /// written then), else whether writing succeeded.
    pub fn write_json<W: std::io::Write>(
        &self,
        report: &StatusReport,
        out: &mut W,
    ) -> Option<std::io::Result<()>> {
        if !self.snapshot.payload.json || !report.tasks.is_empty() {
            return None;
        }
        let size = self.snapshot.section_len(JSON)?;
        let mut head = serde_json::to_vec(report).ok()?;
        let empty = br#""tasks":[]}"#;
        if !head.ends_with(empty) || !self.snapshot.verify_section(JSON) {
            return None;
        }
        head.truncate(head.len() - 3);
        Some((|| {
            out.write_all(&head)?;
            out.flush()?;
            if self.snapshot.copy_section(JSON, out)? != size {
                return Err(std::io::Error::other("the status snapshot changed"));
            }
            out.write_all(b"}\n")?;
            out.flush()
        })())
    }
}

/// The line of `task` in the live snapshot of the build running now.
pub(super) fn live_line(session: &Session, task: &str) -> Option<TaskLine> {
    let build = session
        .run
        .as_ref()
        .and_then(|r| r.running_build(&session.run_dir))?;
    let snapshot: Snapshot<Cover> = Snapshot::read(&session.run_dir)?;
    let this = Live {
        pid: build.pid,
        started_at: build.started_at.clone(),
    };
    if snapshot.live.as_ref() != Some(&this) {
        return None;
    }
    Saved { snapshot }
        .lines()?
        .into_iter()
        .find(|l| l.task == task)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_made_in_pieces_is_what_serde_writes_whole() {
        for n in [0, 1, 4096, 10_001] {
            let tasks: Vec<TaskLine> = (0..n)
                .map(|i| {
                    let mut line = TaskLine::new(&format!("t\"{i}"), None);
                    line.duration_ms = Some(i as u64);
                    line
                })
                .collect();
            let made = Rendered {
                lines: Vec::new(),
                before: String::new(),
                clocked: Vec::new(),
                after: String::new(),
                width: 0,
                json: Some(json_elements(&tasks).unwrap()),
            };
            let joined: Vec<u8> = made.sections()[JSON].concat();
            assert_eq!(joined, serde_json::to_vec(&tasks).unwrap(), "{n} lines");
        }
    }
}
