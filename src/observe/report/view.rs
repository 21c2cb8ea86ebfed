//! The report's view model: a [`Page`] turned into plain serializable data
//! for the templates in `templates/`. Everything a reader sees is worked
//! out here — labels (durations, money, times), colours from the palette,
//! timeline percentages and ticks, the task graph's layout (barycentre
//! ordering of its columns, node positions, edge paths) — so the templates
//! only place it. Strings stay raw: the template environment escapes every
//! one of them when it prints it (see `render`).

use std::collections::BTreeSet;

use serde::Serialize;

use super::labels::{differ, duration, fit, money, state_label, tick_step, when, Judging, Tokens};
use super::{Page, Timeline};
use crate::clock::micros;
use crate::model::{Advice, Trouble};
use crate::observe::palette::{call_colour as palette_call_colour, colour_of};
use crate::observe::status::totals::cost_in;
use crate::store::record::with_kind;
use crate::store::rundir;

/// Columns of a task name that fit in a graph node, a CJK character two
/// (the full name is in the node's tooltip and in the task table).
const NODE_COLUMNS: usize = 22;
const NODE_W: usize = 180;
const NODE_H: usize = 36;
const COL_GAP: usize = 56;
const ROW_GAP: usize = 10;
const PAD: usize = 8;

/// A model call: answered, or failed.
fn call_colour(outcome: &str) -> &'static str {
    palette_call_colour(outcome == "ok")
}

/// What `page.html` is rendered with.
#[derive(Serialize)]
pub(super) struct View<'a> {
    version: &'static str,
    /// The pipeline's name.
    name: &'a str,
    /// When the page was written.
    generated: String,
    header: Header<'a>,
    /// The run record, when a build has run here.
    run: Option<Run<'a>>,
    failures: Vec<Failure<'a>>,
    /// Most recent first; the first one is shown open.
    timelines: Vec<Gantt>,
    /// Builds in the trace older than the timelines shown.
    omitted: usize,
    /// Where they are, as the page names it.
    trace: String,
    legend: [Swatch; 5],
    /// `None` when the pipeline has no tasks.
    graph: Option<Svg>,
    table: Table<'a>,
}

impl<'a> View<'a> {
    pub(super) fn of(page: &'a Page) -> View<'a> {
        View {
            version: env!("CARGO_PKG_VERSION"),
            name: &page.name,
            generated: when(&page.summary.generated_at),
            header: Header::of(page),
            run: page.run.as_ref().map(Run::of),
            failures: failures(page),
            timelines: page.timelines.iter().map(Gantt::of).collect(),
            omitted: page.omitted,
            trace: rundir::state_rel(rundir::file::TRACE),
            legend: [
                Swatch::new("task done", colour_of("done")),
                Swatch::new("task failed", colour_of("failed")),
                Swatch::new("task stopped", colour_of("stopped")),
                Swatch::new("model call", call_colour("ok")),
                Swatch::new("failed call", call_colour("error")),
            ],
            graph: Svg::of(page),
            table: Table::of(page),
        }
    }
}

/// A label on its colour.
#[derive(Serialize)]
struct Swatch {
    label: &'static str,
    colour: &'static str,
}

impl Swatch {
    fn new(label: &'static str, colour: &'static str) -> Swatch {
        Swatch { label, colour }
    }
}

/// The top of the page, apart from the run record.
#[derive(Serialize)]
struct Header<'a> {
    /// `last build failed`, or `never built`.
    outcome: String,
    outcome_colour: &'static str,
    run_dir: &'a str,
    pipeline: &'a str,
    tasks: usize,
    /// How many tasks stand in each state, as `status` counts them.
    counts: Vec<Count>,
    /// Every model call of the run (`status`'s totals), only when some
    /// used tokens or cost money.
    usage: Option<Tokens>,
    /// How many model calls the run made, and how many of them failed.
    calls: u64,
    failed_calls: u64,
    /// The judges' share of `usage`, when a judge was asked.
    judging: Option<Judging>,
    /// Model calls answered from a recording or the response cache.
    replayed_calls: u64,
    /// Done tasks whose failed command's outputs their checks accepted.
    rescued: usize,
    warnings: &'a [String],
}

#[derive(Serialize)]
struct Count {
    n: usize,
    label: &'static str,
    colour: &'static str,
}

impl<'a> Header<'a> {
    fn of(page: &'a Page) -> Header<'a> {
        let s = &page.summary;
        let outcome_colour = match s.outcome.as_deref() {
            Some(o @ ("completed" | "failed" | "stopped" | "running")) => colour_of(o),
            _ => colour_of("not-run"),
        };
        let count = |n: usize, state: &'static str| Count {
            n,
            label: state_label(state),
            colour: colour_of(state),
        };
        let c = &s.counts;
        // The run's spend, as `status` says it: not the tasks' last runs,
        // which miss what earlier runs cost, and every instance of a
        // fan-out back to waiting for its list.
        let calls = &s.totals;
        let u = &calls.usage;
        Header {
            outcome: match &s.outcome {
                Some(o) => format!("last build {o}"),
                None => "never built".to_string(),
            },
            outcome_colour,
            run_dir: &s.run_dir,
            pipeline: &s.pipeline,
            tasks: c.tasks,
            counts: (page.counts.iter())
                .map(|&(state, n)| count(n, state.as_str()))
                .collect(),
            usage: (u.total_tokens > 0 || u.cost_usd > 0.0).then(|| Tokens::of(u)),
            calls: calls.calls,
            failed_calls: calls.failed_calls,
            judging: (calls.judge_usage.calls > 0).then(|| Judging {
                calls: calls.judge_usage.calls,
                tokens: Tokens::of(&calls.judge_usage.usage),
            }),
            replayed_calls: calls.replayed_calls,
            rescued: s.rescued,
            warnings: &s.warnings,
        }
    }
}

/// The run record: its facts and its builds.
#[derive(Serialize)]
struct Run<'a> {
    id: &'a str,
    created: String,
    last: Option<LastBuild<'a>>,
    /// Most recent first.
    builds: Vec<Build<'a>>,
}

#[derive(Serialize)]
struct LastBuild<'a> {
    started: String,
    finished: Option<String>,
    /// How long it took, when it finished after it started.
    took: Option<String>,
    outcome: &'static str,
    ran: usize,
    model: Option<&'a str>,
}

/// A row of the table of all builds.
#[derive(Serialize)]
struct Build<'a> {
    started: String,
    finished: String,
    outcome: &'static str,
    ran: usize,
    model: &'a str,
}

impl<'a> Run<'a> {
    fn of(run: &'a crate::store::run_record::RunRecord) -> Run<'a> {
        let last = run.builds.last().map(|b| LastBuild {
            started: when(&b.started_at),
            finished: b.finished_at.as_deref().map(when),
            took: b
                .finished_at
                .as_deref()
                .and_then(|f| match (micros(&b.started_at), micros(f)) {
                    (Some(a), Some(z)) if z >= a => Some(duration(((z - a) / 1000) as u64)),
                    _ => None,
                }),
            outcome: b.outcome.as_str(),
            ran: b.ran,
            model: b.model.as_deref(),
        });
        Run {
            id: &run.run_id,
            created: when(&run.created_at),
            last,
            builds: (run.builds.iter().rev())
                .map(|b| Build {
                    started: when(&b.started_at),
                    finished: b.finished_at.as_deref().map(when).unwrap_or_default(),
                    outcome: b.outcome.as_str(),
                    ran: b.ran,
                    model: b.model.as_deref().unwrap_or(""),
                })
                .collect(),
        }
    }
}

/// A failed (or stopped) task's error and the end of its log.
#[derive(Serialize)]
struct Failure<'a> {
    /// The task's position, for `#task-N`.
    index: usize,
    task: &'a str,
    colour: &'static str,
    kind: &'static str,
    message: &'a str,
    error_id: Option<&'a str>,
    /// Whether a build again, changing nothing, may fix it; what to do.
    recoverable: bool,
    hint: String,
    log_tail: &'a [String],
    /// Where the log is, as the page names it.
    log: String,
}

fn failures(page: &Page) -> Vec<Failure<'_>> {
    let rows = page.summary.tasks.iter().zip(&page.tasks).enumerate();
    rows.filter_map(|(index, (row, detail))| {
        let error = detail.error.as_ref()?;
        Some(Failure {
            index,
            task: &row.task,
            colour: colour_of(detail.standing.as_str()),
            kind: error.kind.as_str(),
            message: &error.message,
            error_id: error.error_id.as_deref(),
            // Records of earlier versions have no `recoverable`.
            recoverable: error.recoverable || error.kind.recoverable(),
            hint: Advice::COMMAND_LINE.hint(&Trouble::Failed(error.remedy())),
            log_tail: &detail.log_tail,
            log: rundir::task_log_rel(&row.task),
        })
    })
    .collect()
}

/// One build as lanes of bars, on an axis from its first start to its last
/// end; tasks fill their lane, model calls run along its bottom.
#[derive(Serialize)]
struct Gantt {
    label: String,
    /// How long the build ran, first start to last end.
    total: String,
    tasks: usize,
    calls: usize,
    ticks: Vec<Tick>,
    lanes: Vec<Lane>,
}

#[derive(Serialize)]
struct Tick {
    /// Percent of the axis, as CSS wants it (`12.345`).
    left: String,
    label: String,
}

#[derive(Serialize)]
struct Lane {
    lane: u64,
    bars: Vec<Bar>,
}

#[derive(Serialize)]
struct Bar {
    /// `bar` (a task) or `call` (a model call).
    class: &'static str,
    left: String,
    width: String,
    fill: &'static str,
    /// The tooltip: name, duration, state and note.
    tip: String,
    /// What the bar says: a task's name; nothing on a call.
    text: String,
}

impl Gantt {
    fn of(t: &Timeline) -> Gantt {
        let start = t.spans.iter().map(|s| s.start_us).min().unwrap_or(0);
        let end = t.spans.iter().map(|s| s.start_us + s.dur_us).max();
        let total = (end.unwrap_or(start) - start).max(1);
        let pct = |us: i64| {
            let p = (us as f64 * 100.0 / total as f64).clamp(0.0, 100.0);
            format!("{p:.3}")
        };
        let tasks = t.spans.iter().filter(|s| !s.call).count();
        let step = tick_step(total);
        let ticks = (0..=total / step)
            .map(|i| Tick {
                left: pct(i * step),
                label: duration((i * step / 1000) as u64),
            })
            .collect();
        let lanes: BTreeSet<u64> = t.spans.iter().map(|s| s.lane).collect();
        let lanes = lanes.into_iter().map(|lane| Lane {
            lane,
            bars: (t.spans.iter().filter(|s| s.lane == lane))
                .map(|s| {
                    let mut tip = format!(
                        "{} · {} · {}",
                        s.name,
                        duration((s.dur_us / 1000) as u64),
                        s.state
                    );
                    if let Some(note) = &s.note {
                        tip.push_str(": ");
                        tip.push_str(note);
                    }
                    Bar {
                        class: if s.call { "call" } else { "bar" },
                        left: pct(s.start_us - start),
                        width: pct(s.dur_us),
                        fill: if s.call {
                            call_colour(&s.state)
                        } else {
                            colour_of(&s.state)
                        },
                        tip,
                        text: if s.call {
                            String::new()
                        } else {
                            s.name.clone()
                        },
                    }
                })
                .collect(),
        });
        Gantt {
            label: t.label.clone(),
            total: duration((total / 1000) as u64),
            tasks,
            calls: t.spans.len() - tasks,
            ticks,
            lanes: lanes.collect(),
        }
    }
}

/// The task graph, laid out for SVG.
#[derive(Serialize)]
struct Svg {
    width: usize,
    height: usize,
    node_w: usize,
    node_h: usize,
    /// Path data of each edge, a curve from a dependency to its dependent.
    edges: Vec<String>,
    /// In declaration order.
    nodes: Vec<Node>,
}

#[derive(Serialize)]
struct Node {
    index: usize,
    task: String,
    kind: &'static str,
    /// The name as it fits in the node.
    shown: String,
    /// State and duration.
    sub: String,
    colour: &'static str,
    x: usize,
    y: usize,
    /// Where the name and the line under it start.
    text_x: usize,
    name_y: usize,
    sub_y: usize,
}

impl Svg {
    /// A column per depth, each task placed near the middle of what it
    /// depends on so edges stay short, columns centred.
    fn of(page: &Page) -> Option<Svg> {
        let n = page.tasks.len();
        let columns = page.tasks.iter().map(|t| t.depth).max()? + 1;
        let mut column: Vec<Vec<usize>> = vec![Vec::new(); columns];
        for (t, detail) in page.tasks.iter().enumerate() {
            column[detail.depth].push(t);
        }
        let mut rank = vec![0.0_f64; n];
        for tasks in &mut column {
            // Barycentres: the mean rank of a task's dependencies (earlier
            // columns, already placed); a stable sort keeps declaration
            // order among equals and in the first column.
            let key = |t: usize| {
                let deps = &page.tasks[t].deps;
                if deps.is_empty() {
                    0.0
                } else {
                    deps.iter().map(|&d| rank[d]).sum::<f64>() / deps.len() as f64
                }
            };
            tasks.sort_by(|&a, &b| key(a).total_cmp(&key(b)));
            for (r, &t) in tasks.iter().enumerate() {
                rank[t] = r as f64;
            }
        }
        let tallest = column.iter().map(Vec::len).max().unwrap_or(1);
        let mut pos = vec![(0, 0); n];
        for (depth, tasks) in column.iter().enumerate() {
            let offset = (tallest - tasks.len()) * (NODE_H + ROW_GAP) / 2;
            for (r, &t) in tasks.iter().enumerate() {
                pos[t] = (
                    PAD + depth * (NODE_W + COL_GAP),
                    PAD + offset + r * (NODE_H + ROW_GAP),
                );
            }
        }
        let mut edges = Vec::new();
        for (t, detail) in page.tasks.iter().enumerate() {
            let (x2, y2) = (pos[t].0, pos[t].1 + NODE_H / 2);
            for &d in &detail.deps {
                let (x1, y1) = (pos[d].0 + NODE_W, pos[d].1 + NODE_H / 2);
                let mid = (x1 + x2) / 2;
                edges.push(format!("M{x1} {y1} C{mid} {y1} {mid} {y2} {x2} {y2}"));
            }
        }
        let rows = page.summary.tasks.iter().zip(&page.tasks).enumerate();
        let nodes = rows.map(|(index, (row, detail))| {
            let (x, y) = pos[index];
            let shown = fit(&row.task, NODE_COLUMNS);
            let mut sub = state_label(detail.standing.as_str()).to_string();
            if let Some(ms) = row.duration_ms {
                sub.push_str(" · ");
                sub.push_str(&duration(ms));
            }
            Node {
                index,
                task: row.task.clone(),
                kind: detail.kind,
                shown,
                sub,
                colour: colour_of(detail.standing.as_str()),
                x,
                y,
                text_x: x + 8,
                name_y: y + 15,
                sub_y: y + 29,
            }
        });
        Some(Svg {
            width: 2 * PAD + columns * NODE_W + (columns - 1) * COL_GAP,
            height: 2 * PAD + tallest * NODE_H + (tallest - 1) * ROW_GAP,
            node_w: NODE_W,
            node_h: NODE_H,
            edges,
            nodes: nodes.collect(),
        })
    }
}

/// The table of every task.
#[derive(Serialize)]
struct Table<'a> {
    /// Whether any task used tokens: then the table has Tokens and Cost
    /// columns and a total row.
    usage: bool,
    rows: Vec<Row<'a>>,
    /// The sums of the rows: each task's last run.
    tokens: u64,
    cost: String,
    /// Every model call of the run, when it spent more than the rows
    /// show (earlier runs, instances of a fan-out that waits for its list
    /// again): a last row, which `status`'s totals say too.
    run: Option<Tokens>,
}

#[derive(Serialize)]
struct Row<'a> {
    index: usize,
    task: &'a str,
    kind: &'static str,
    state: &'static str,
    colour: &'static str,
    duration: String,
    finished: String,
    model: &'a str,
    tokens: String,
    cost: String,
    /// The error and the warnings, a line each.
    notes: String,
    /// Done, its failed command's outputs accepted by its checks.
    rescued: bool,
}

impl<'a> Table<'a> {
    fn of(page: &'a Page) -> Table<'a> {
        let s = &page.summary;
        let rows = s.tasks.iter().zip(&page.tasks).enumerate();
        let rows = rows.map(|(index, (t, detail))| {
            let mut notes: Vec<String> = Vec::new();
            if let Some(e) = &t.error {
                let kind = t.error_kind.as_deref().unwrap_or("error");
                notes.push(with_kind(kind, e));
            }
            notes.extend(t.warnings.iter().cloned());
            if let Some(j) = t.judge.as_ref().filter(|j| j.passed) {
                notes.push(format!(
                    "judge {}: {:.2} (threshold {:.2}): {}",
                    j.model, j.score, j.threshold, j.reason
                ));
            }
            let state = detail.standing.as_str();
            Row {
                index,
                task: &t.task,
                kind: detail.kind,
                state: state_label(state),
                colour: colour_of(state),
                rescued: t.rescued,
                duration: t.duration_ms.map(duration).unwrap_or_default(),
                finished: t.finished_at.as_deref().map(when).unwrap_or_default(),
                model: t.model.as_deref().unwrap_or(""),
                tokens: t
                    .total_tokens
                    .map(|n| format!("{}{n}", if t.tokens_estimated { "~" } else { "" }))
                    .unwrap_or_default(),
                cost: t.cost_usd.map(money).unwrap_or_default(),
                notes: notes.join("\n"),
            }
        });
        Table {
            usage: s.totals.calls > 0 || s.tasks.iter().any(|t| t.total_tokens.is_some()),
            rows: rows.collect(),
            tokens: s.usage.total_tokens,
            cost: cost_in(&s.usage, money),
            run: differ(&s.totals.usage, &s.usage).then(|| Tokens::of(&s.totals.usage)),
        }
    }
}
