//! The text of `planexe status`: a header (run directory, pipeline, model,
//! times, run state with `stalled` when a running build made no progress
//! for `--stall-after`), then the tasks in groups in the order FAILED,
//! RUNNING, STOPPED, STALE, PENDING, DONE (a fan-out as one line with
//! progress), then totals of model calls and quality warnings. A task
//! that has not started because its model's pool is full says so in its
//! group (`queued for model M: ...`).
//!
//! Here rather than with the CLI because a `status` snapshot holds the
//! groups already rendered ([`Groups`], plain), but for the clocked ones
//! (FAILED-PENDING-CHECK and RUNNING: how long a task has run), rendered
//! when printed: a hundred thousand lines cost more to format than to
//! copy, and the snapshot is written by the build, below the CLI. Each
//! part writes into one string; nothing is allocated per line but what a
//! failure's message needs.
//!
//! Names line up by the columns they take on a terminal
//! ([`columns`]: a CJK character two, a combining or zero-width one none),
//! in a column no wider than [`NAME_COLUMN_MAX`]: a longer name has a line
//! of its own, what follows it on the next, at the column.
//!
//! Recorded text (messages, reasons, model names, hints, warnings) is
//! printed [`printable`]: a record written before planexe escaped what
//! servers say may hold control characters, which must not reach a
//! terminal. (`status --json` keeps the text, escaped by JSON's rules.)

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use super::columns::{columns, detail_column, name_cell, pad, NAME_COLUMN_MAX};
use super::totals::short_duration;
use super::{CallInFlight, QueuedCall, StatusReport, TaskLine};
use crate::clock;
use crate::observe::palette::{Paint, Style};
use crate::observe::Standing;
use crate::plan::Reason;
use crate::store::record::{with_error_id, with_kind};
use crate::store::untrusted::printable;

/// The report as text, without a final newline: its [`header`], the
/// [`groups`] of its tasks (fan-outs collapsed unless `expanded`), and its
/// [`tail`](super::totals::tail).
pub fn render(report: &StatusReport, paint: Paint, expanded: bool) -> String {
    let mut out = String::new();
    header(&mut out, report);
    groups(&mut out, &report.tasks, &report.fanouts, paint, expanded);
    super::totals::tail(&mut out, report, paint);
    let end = out.trim_end().len();
    out.truncate(end);
    out
}

/// How long ago an RFC 3339 time was, short (`3m 12s`); empty when it is
/// not a time.
pub fn age(rfc3339: Option<&str>) -> String {
    rfc3339
        .and_then(clock::since)
        .map(short_duration)
        .unwrap_or_default()
}

/// What a running task's model call is doing: `, model M: 153 tokens in
/// 40s, the last 0s ago`, or the wait before the next call: to retry, or
/// queued for the model's limits (`, queued for model M for 1m 5s:
/// max_concurrency = 2, all in flight`).
pub fn in_flight(
    call: Option<&CallInFlight>,
    waiting_until: Option<&str>,
    queued: Option<&QueuedCall>,
) -> String {
    if let Some(q) = queued {
        let mut d = format!(
            ", queued for model {} for {}: {}",
            printable(&q.model),
            age(q.since.as_deref()),
            q.limit
        );
        if let Some(max) = q.max_concurrency {
            let _ = write!(d, " = {max}, all in flight");
        }
        if let Some(left) = q.starts_at.as_deref().and_then(time_left) {
            let _ = write!(d, ", starts in {}", short_duration(left));
        }
        return d;
    }
    if let Some(until) = waiting_until {
        let mut d = format!(", waiting to retry until {until}");
        if let Some(left) = time_left(until) {
            let _ = write!(d, " ({} left)", short_duration(left));
        }
        return d;
    }
    let Some(call) = call else {
        return String::new();
    };
    let mut d = format!(
        ", model {}: {} token(s) in {}",
        printable(&call.model),
        call.tokens,
        age(call.started_at.as_deref())
    );
    if call.last_token_at.is_some() {
        let _ = write!(d, ", the last {} ago", age(call.last_token_at.as_deref()));
    }
    d
}

/// What a task that has not started because its model's pool is full
/// waits for: `queued for model M: max_concurrency = 2, all taken by
/// running tasks`. (No time: the line is rendered once, in a snapshot.)
pub fn held(q: &QueuedCall) -> String {
    let mut d = format!("queued for model {}: {}", printable(&q.model), q.limit);
    if let Some(max) = q.max_concurrency {
        let _ = write!(d, " = {max}, all taken by running tasks");
    }
    d
}

/// How many of the last lines a failed command printed `status` shows
/// under its line; `status TASK` shows more.
const LIST_TAIL_LINES: usize = 3;

/// The widest a line a command printed is shown, in characters.
const TAIL_LINE_CHARS: usize = 200;

/// The last `n` lines of `tail` (what a failed command printed) that are
/// not blank, made printable (a command's output may hold escapes) and cut
/// to [`TAIL_LINE_CHARS`].
pub fn printed_lines(tail: &str, n: usize) -> Vec<String> {
    let lines: Vec<&str> = tail.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|line| {
            let line = printable(line.trim_end());
            match line.char_indices().nth(TAIL_LINE_CHARS) {
                Some((at, _)) => format!("{}...", &line[..at]),
                None => line.into_owned(),
            }
        })
        .collect()
}

/// `; ` and [`held`] when a task that has not started is held by its
/// model's pool.
fn held_note(out: &mut String, l: &TaskLine) {
    if let Some(q) = &l.queued {
        out.push_str("; ");
        out.push_str(&held(q));
    }
}

/// How long until an RFC 3339 time, when it is still ahead.
fn time_left(rfc3339: &str) -> Option<Duration> {
    let then: jiff::Timestamp = rfc3339.parse().ok()?;
    let secs = then.as_second() - jiff::Timestamp::now().as_second();
    (secs > 0).then(|| Duration::from_secs(secs as u64))
}

/// The header: where the run is, its state, model and times.
pub fn header(out: &mut String, report: &StatusReport) {
    let mut line = |k: &str, v: &dyn std::fmt::Display| {
        let _ = writeln!(out, "{k:<9}{v}");
    };
    line(
        "run",
        &format_args!(
            "{} ({})",
            printable(&report.run_dir),
            printable(&report.pipeline_file)
        ),
    );
    let behind: usize = (report.counts.iter().filter(|c| *c.0 != Standing::Done))
        .map(|c| c.1)
        .sum();
    match (report.state, report.build_pid) {
        ("running", Some(pid)) => {
            let elapsed = age(report.last_build_started_at.as_deref());
            let stalled = if report.stalled {
                ", STALLED: no progress lately"
            } else {
                ""
            };
            line(
                "state",
                &format_args!("running (pid {pid}, {elapsed}){stalled}"),
            );
        }
        ("never-built", _) => line("state", &"never-built"),
        // The last build's outcome, not the run's: tasks may have gone
        // stale since (an input changed), which it says.
        (last, _) if behind == 0 => line("state", &format_args!("{last} (last build)")),
        (last, _) => line(
            "state",
            &format_args!("{last} (last build); {behind} task(s) not up to date"),
        ),
    }
    if let Some(m) = &report.model {
        line("model", &printable(m));
    }
    match (&report.created_at, &report.last_build_started_at) {
        (Some(c), Some(last)) => line("created", &format_args!("{c}, last build {last}")),
        (Some(c), None) => line("created", c),
        _ => {}
    }
    if let Some(p) = &report.last_progress_at {
        let ago = age(Some(p));
        line("progress", &format_args!("{p} ({ago} ago)"));
    }
}

/// The groups whose lines read differently as time passes (how long a
/// task has been running), in the order they are printed. A status
/// snapshot holds the other groups rendered and these as lines, rendered
/// when printed ([`Groups`]).
const CLOCKED: [(&str, Standing); 2] = [
    ("FAILED-PENDING-CHECK", Standing::FailedPendingCheck),
    ("RUNNING", Standing::Running),
];

/// The tasks in groups by state, each group after an empty line, then the
/// fan-outs, one line each, collapsed unless `expanded` (their failed and
/// running instances still show in their groups).
pub fn groups(
    out: &mut String,
    tasks: &[TaskLine],
    fanouts: &BTreeMap<String, bool>,
    paint: Paint,
    expanded: bool,
) {
    let parts = Groups::of(tasks, fanouts, paint, expanded);
    out.push_str(&parts.before);
    clocked(out, parts.clocked.iter().copied(), parts.width, paint);
    out.push_str(&parts.after);
}

/// [`groups`] in three parts around the clocked groups (FAILED-PENDING-CHECK
/// and RUNNING), which [`clocked`] renders at the moment of printing.
pub struct Groups<'a> {
    /// The groups before the clocked ones (FAILED).
    pub before: String,
    /// The lines of the clocked groups, in the tasks' order.
    pub clocked: Vec<&'a TaskLine>,
    /// The groups after them (STOPPED, STALE, PENDING, DONE) and the
    /// fan-outs.
    pub after: String,
    /// The names' column.
    pub width: usize,
}

impl<'a> Groups<'a> {
    /// The groups of `tasks`, in one pass over them.
    pub fn of(
        tasks: &'a [TaskLine],
        fanouts: &BTreeMap<String, bool>,
        paint: Paint,
        expanded: bool,
    ) -> Groups<'a> {
        const TITLES: [&str; 7] = ["FAILED", "", "", "STOPPED", "STALE", "PENDING", "DONE"];
        let mut fanout_lines: BTreeMap<&str, Vec<&TaskLine>> = BTreeMap::new();
        let mut members: [Vec<&TaskLine>; 7] = Default::default();
        // The names' column: as wide as the names shown, in terminal
        // columns (the instances a fan-out's line stands for widen
        // nothing), up to NAME_COLUMN_MAX.
        let mut width = 0;
        for l in tasks {
            let member_of_fanout = !expanded
                && if let Some(f) = &l.fanout {
                    fanout_lines.entry(f.as_str()).or_default().push(l);
                    true
                } else if let Some(&placeholder) = fanouts.get(&l.task) {
                    if placeholder {
                        fanout_lines.entry(l.task.as_str()).or_default().push(l);
                    }
                    true
                } else {
                    false
                };
            let group = match l.state {
                Standing::Failed => 0,
                Standing::FailedPendingCheck => 1,
                Standing::Running => 2,
                Standing::Stopped => 3,
                Standing::Stale | Standing::NeverBuilt => 4,
                Standing::Pending => 5,
                Standing::Done => 6,
            };
            // A fan-out's instances show in its line, but for those that
            // failed or run.
            if !member_of_fanout || group <= 2 {
                width = width.max(columns(&l.task).min(NAME_COLUMN_MAX));
                members[group].push(l);
            }
        }
        width = fanout_lines
            .keys()
            .fold(width, |w, k| w.max(columns(k).min(NAME_COLUMN_MAX)));
        let render = |out: &mut String, range: std::ops::Range<usize>| {
            for g in range {
                let lines = &members[g];
                if !lines.is_empty() {
                    group(out, TITLES[g], lines, width, paint);
                }
            }
        };
        let mut before = String::new();
        render(&mut before, 0..1);
        let size: usize = members[3..].iter().map(Vec::len).sum();
        let mut after = String::with_capacity(size * (width + 16));
        render(&mut after, 3..7);
        fanout_groups(&mut after, &fanout_lines, fanouts, width, paint);
        let [_, pending_check, running, ..] = &mut members;
        let mut clocked = std::mem::take(pending_check);
        clocked.append(running);
        Groups {
            before,
            clocked,
            after,
            width,
        }
    }
}

/// The clocked groups (FAILED-PENDING-CHECK, RUNNING) of `lines`, rendered
/// now (`width`: the names' column, as [`Groups`] found it).
pub fn clocked<'a>(
    out: &mut String,
    lines: impl IntoIterator<Item = &'a TaskLine> + Clone,
    width: usize,
    paint: Paint,
) {
    for (title, state) in CLOCKED {
        let members: Vec<&TaskLine> = lines
            .clone()
            .into_iter()
            .filter(|l| l.state == state)
            .collect();
        if !members.is_empty() {
            group(out, title, &members, width, paint);
        }
    }
}

/// One group: its title with its count, then a line per member.
fn group(out: &mut String, title: &str, lines: &[&TaskLine], width: usize, paint: Paint) {
    let state = lines[0].state;
    // STALE holds the never built too; its colour is stale's.
    let style = if state == Standing::NeverBuilt {
        Standing::Stale
    } else {
        state
    };
    let _ = write!(
        out,
        "\n{}\n",
        paint.paint(Style::State(style), &format!("{title} ({})", lines.len()))
    );
    let column = detail_column(paint, width);
    for l in lines {
        out.push_str("  ");
        let symbol = paint.symbol(l.state);
        out.push_str(symbol);
        name_cell(out, &l.task, 2 + columns(symbol), column);
        detail(out, l, column);
        out.push('\n');
    }
}

/// What `status` and `explain` say of a fan-out waiting for its list whose
/// records hold `n` instances that last succeeded.
pub fn done_before(n: usize) -> String {
    format!("{n} instance(s) done before, each kept if its item and its inputs are unchanged")
}

/// The FAN-OUT group: a line per fan-out with its instances' progress.
fn fanout_groups(
    out: &mut String,
    fanout_lines: &BTreeMap<&str, Vec<&TaskLine>>,
    fanouts: &BTreeMap<String, bool>,
    width: usize,
    paint: Paint,
) {
    if fanout_lines.is_empty() {
        return;
    }
    let _ = write!(out, "\n{}\n", paint.paint(Style::Bold, "FAN-OUT"));
    let column = detail_column(paint, width);
    for (name, members) in fanout_lines {
        // No symbol, but its place: the details line up with the tasks'.
        pad(out, 2 + columns(paint.symbol(Standing::Done)));
        name_cell(out, name, column - width - 2, column);
        if fanouts.get(*name).is_some_and(|&placeholder| placeholder) {
            let first = members.first();
            let reason = first.and_then(|l| l.reason.as_deref());
            out.push_str(&printable(reason.unwrap_or_default()));
            if let Some(n) = first.and_then(|l| l.done_before) {
                let _ = write!(out, "; {}", done_before(n));
            }
        } else {
            let count = |s: Standing| members.iter().filter(|l| l.state == s).count();
            let _ = write!(out, "{}/{} done", count(Standing::Done), members.len());
            // Of the never built, those `clean` forgot are said apart.
            let said = Reason::NeverBuilt { cleaned: true }.to_string();
            let cleaned = (members.iter())
                .filter(|l| l.state == Standing::NeverBuilt && l.reason.as_deref() == Some(&said))
                .count();
            for (s, label) in [
                (Standing::Failed, "failed"),
                (Standing::Running, "running"),
                (Standing::FailedPendingCheck, "failed-pending-check"),
                (Standing::Stopped, "stopped"),
                (Standing::Stale, "stale"),
                (Standing::NeverBuilt, "never built"),
                (Standing::Pending, "pending"),
            ] {
                let k = count(s)
                    - if s == Standing::NeverBuilt {
                        cleaned
                    } else {
                        0
                    };
                if k > 0 {
                    let _ = write!(out, ", {k} {label}");
                }
                if s == Standing::NeverBuilt && cleaned > 0 {
                    let _ = write!(out, ", {cleaned} cleaned");
                }
            }
        }
        out.push('\n');
    }
}

/// What follows a task's name on its line (`column`: where it starts,
/// and its lines after the first).
fn detail(out: &mut String, l: &TaskLine, column: usize) {
    match l.state {
        Standing::Failed | Standing::Stopped => {
            let said = with_kind(
                l.error_kind.as_deref().unwrap_or("error"),
                l.error.as_deref().unwrap_or(""),
            );
            let _ = write!(
                out,
                "{}",
                with_error_id(
                    &printable(&said),
                    l.error_id.as_deref().map(printable).as_deref()
                )
            );
            // Attempt 0: a prompt task that failed before any call.
            if let Some(a) = l.attempt.filter(|&a| a > 0) {
                let _ = write!(out, ", attempt {a}");
            }
            if let Some(m) = &l.model {
                let _ = write!(out, ", model {}", printable(m));
            }
            if let Some(r) = l.recoverable {
                out.push_str(if r {
                    ", recoverable"
                } else {
                    ", not recoverable"
                });
            }
            held_note(out, l);
            for line in printed_lines(l.log_tail.as_deref().unwrap_or(""), LIST_TAIL_LINES) {
                out.push('\n');
                pad(out, column);
                let _ = write!(out, "| {line}");
            }
            if let Some(h) = &l.hint {
                out.push('\n');
                pad(out, column);
                let _ = write!(out, "hint: {}", printable(h));
            }
        }
        Standing::Running => {
            let _ = write!(
                out,
                "since {} ({}), attempt {}",
                l.started_at.as_deref().unwrap_or("?"),
                age(l.started_at.as_deref()),
                l.attempt.unwrap_or(1),
            );
            if let Some(p) = l.pid {
                let _ = write!(out, ", pid {p}");
            }
            out.push_str(&in_flight(
                l.call.as_ref(),
                l.waiting_until.as_deref(),
                l.queued.as_ref(),
            ));
        }
        Standing::Done => {
            if let Some(ms) = l.duration_ms {
                let _ = write!(out, "{:.2}s", ms as f64 / 1000.0);
            }
            if let Some(j) = &l.judge {
                let below = if j.passed {
                    ""
                } else {
                    " (below its threshold)"
                };
                let _ = write!(out, ", judge {:.2}{below}", j.score);
            }
            if let Some(edited) = &l.edited {
                let paths: Vec<_> = edited.iter().map(|p| printable(p)).collect();
                let _ = write!(out, ", {} edited by hand (kept)", paths.join(", "));
            }
        }
        Standing::FailedPendingCheck => {
            let _ = write!(
                out,
                "{}; its rescue's checks examine what it wrote (since {})",
                printable(l.error.as_deref().unwrap_or("the command failed")),
                age(l.started_at.as_deref())
            );
        }
        Standing::NeverBuilt => {
            // `never built`, or `cleaned` when clean forgot its last run.
            out.push_str(&printable(l.reason.as_deref().unwrap_or("never built")));
            held_note(out, l);
        }
        _ => {
            out.push_str(&printable(l.reason.as_deref().unwrap_or_default()));
            held_note(out, l);
        }
    }
}
