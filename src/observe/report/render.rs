//! The page of a gathered [`Page`], as HTML: a pure function of it.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::{Page, Timeline};
use crate::clock::micros;
use crate::observe::palette::{call_colour as palette_call_colour, colour_of};

/// Characters of a task name that fit in a graph node (the full name is in
/// the node's tooltip and in the task table).
const NODE_CHARS: usize = 22;
const NODE_W: usize = 180;
const NODE_H: usize = 36;
const COL_GAP: usize = 56;
const ROW_GAP: usize = 10;
const PAD: usize = 8;

fn colour(state: &str) -> &'static str {
    colour_of(state)
}

/// `text`, safe as HTML text and as a quoted attribute value. Control
/// characters other than newline and tab (terminal escapes in logs) are
/// dropped.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// A model call: answered, or failed.
fn call_colour(outcome: &str) -> &'static str {
    palette_call_colour(outcome == "ok")
}

/// An RFC 3339 time as `2026-11-22 16:42:00 UTC`; anything else as it is.
pub(super) fn when(rfc3339: &str) -> String {
    match rfc3339.parse::<jiff::Timestamp>() {
        Ok(t) => t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        Err(_) => rfc3339.to_string(),
    }
}

/// `340 ms`, `1.25 s`, `12.5 s`, `2m 03s`, `1h 02m`.
fn duration(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..10_000 => format!("{:.2} s", ms as f64 / 1000.0),
        10_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m {:02}s", ms / 60_000, ms / 1000 % 60),
        _ => format!("{}h {:02}m", ms / 3_600_000, ms / 60_000 % 60),
    }
}

/// `$1.25`, `$0.0156`, `$0.000025`: cents hide what a model call costs.
fn money(usd: f64) -> String {
    let places = if usd == 0.0 || usd >= 1.0 {
        2
    } else if usd >= 0.0001 {
        4
    } else {
        6
    };
    format!("${usd:.places$}")
}

/// The state as a reader says it.
fn state_label(state: &str) -> &str {
    if state == "not-run" {
        "not run"
    } else {
        state
    }
}

/// The page, as HTML.
pub fn render(page: &Page) -> String {
    let mut out = String::with_capacity(32 * 1024 + 1024 * page.tasks.len());
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"planexe {}\">\n\
         <title>planexe report: {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n",
        env!("CARGO_PKG_VERSION"),
        esc(&page.name)
    );
    header(&mut out, page);
    failures(&mut out, page);
    timelines(&mut out, page);
    graph(&mut out, page);
    task_table(&mut out, page);
    let _ = write!(
        out,
        "<footer>Written by planexe {} at {}.</footer>\n</main>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION"),
        esc(&when(&page.summary.generated_at))
    );
    out
}

fn header(out: &mut String, page: &Page) {
    let s = &page.summary;
    let outcome = s.outcome.as_deref().unwrap_or("never built");
    let outcome_colour = match outcome {
        "completed" => colour("done"),
        "failed" => colour("failed"),
        "stopped" => colour("stopped"),
        "running" => colour("running"),
        _ => colour("not-run"),
    };
    let _ = write!(
        out,
        "<header>\n<h1>{} <span class=\"badge\" style=\"background:{outcome_colour}\">{}</span></h1>\n\
         <nav><a href=\"#failures\">Failures</a> <a href=\"#timeline\">Timeline</a> \
         <a href=\"#graph\">Graph</a> <a href=\"#tasks\">Tasks</a></nav>\n<dl class=\"facts\">\n",
        esc(&page.name),
        match &s.outcome {
            Some(o) => format!("last build {}", esc(o)),
            None => outcome.to_string(),
        }
    );
    let mut fact = |term: &str, value: String| {
        let _ = writeln!(out, "<dt>{term}</dt><dd>{value}</dd>");
    };
    fact("Run directory", format!("<code>{}</code>", esc(&s.run_dir)));
    fact("Pipeline", format!("<code>{}</code>", esc(&s.pipeline)));
    match &page.run {
        Some(run) => {
            fact("Run id", format!("<code>{}</code>", esc(&run.run_id)));
            fact("Created", esc(&when(&run.created_at)));
            if let Some(last) = run.builds.last() {
                let finished = match &last.finished_at {
                    Some(f) => {
                        let took = match (micros(&last.started_at), micros(f)) {
                            (Some(a), Some(b)) if b >= a => {
                                format!(" (took {})", duration(((b - a) / 1000) as u64))
                            }
                            _ => String::new(),
                        };
                        format!(", finished {}{took}", esc(&when(f)))
                    }
                    None => String::new(),
                };
                let model = match &last.model {
                    Some(m) => format!(", model <code>{}</code>", esc(m)),
                    None => String::new(),
                };
                fact(
                    "Last build",
                    format!(
                        "started {}{finished}: <b>{}</b>, {} task(s) run{model}",
                        esc(&when(&last.started_at)),
                        esc(last.outcome.as_str()),
                        last.ran
                    ),
                );
            }
            fact("Builds", run.builds.len().to_string());
        }
        None => fact("Run", "no build has run here yet".to_string()),
    }
    out.push_str("</dl>\n<ul class=\"counts\">\n");
    let c = &s.counts;
    let _ = writeln!(out, "<li><b>{}</b> tasks</li>", c.tasks);
    for (n, state) in [
        (c.done, "done"),
        (c.failed, "failed"),
        (c.stopped, "stopped"),
        (c.not_run, "not-run"),
    ] {
        let _ = writeln!(
            out,
            "<li style=\"background:{}\"><b>{n}</b> {}</li>",
            colour(state),
            state_label(state)
        );
    }
    if s.usage.total_tokens > 0 || s.usage.cost_usd > 0.0 {
        let _ = writeln!(
            out,
            "<li><b>{}</b> tokens ({} prompt, {} completion)</li><li><b>{}</b></li>",
            s.usage.total_tokens,
            s.usage.prompt_tokens,
            s.usage.completion_tokens,
            money(s.usage.cost_usd)
        );
    }
    out.push_str("</ul>\n");
    if !s.warnings.is_empty() {
        out.push_str("<ul class=\"warnings\">\n");
        for w in &s.warnings {
            let _ = writeln!(out, "<li>{}</li>", esc(w));
        }
        out.push_str("</ul>\n");
    }
    if let Some(run) = page.run.as_ref().filter(|r| r.builds.len() > 1) {
        let _ = write!(
            out,
            "<details><summary>All {} builds</summary>\n<table>\n\
             <tr><th>Started</th><th>Finished</th><th>Outcome</th><th>Tasks run</th><th>Model</th></tr>\n",
            run.builds.len()
        );
        for b in run.builds.iter().rev() {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                esc(&when(&b.started_at)),
                esc(&b.finished_at.as_deref().map(when).unwrap_or_default()),
                esc(b.outcome.as_str()),
                b.ran,
                esc(b.model.as_deref().unwrap_or(""))
            );
        }
        out.push_str("</table>\n</details>\n");
    }
    out.push_str("</header>\n");
}

fn failures(out: &mut String, page: &Page) {
    out.push_str("<section id=\"failures\">\n<h2>Failures</h2>\n");
    let mut any = false;
    for (i, (row, detail)) in page.summary.tasks.iter().zip(&page.tasks).enumerate() {
        let Some(error) = &detail.error else {
            continue;
        };
        any = true;
        let _ = write!(
            out,
            "<article class=\"failure\" style=\"border-color:{}\">\n\
             <h3><a href=\"#task-{i}\"><code>{}</code></a> <span class=\"kind\">{}</span></h3>\n\
             <pre>{}</pre>\n",
            colour(row.state.as_str()),
            esc(&row.task),
            esc(error.kind.as_str()),
            esc(&error.message)
        );
        if let Some(id) = &error.error_id {
            let _ = writeln!(out, "<p>error_id <code>{}</code></p>", esc(id));
        }
        if !detail.log_tail.is_empty() {
            let _ = write!(
                out,
                "<details open><summary>Last lines of <code>.planexe/logs/{}.log</code></summary>\n<pre>",
                esc(&row.task)
            );
            for line in &detail.log_tail {
                out.push_str(&esc(line));
                out.push('\n');
            }
            out.push_str("</pre>\n</details>\n");
        }
        out.push_str("</article>\n");
    }
    if !any {
        out.push_str("<p>No task failed.</p>\n");
    }
    out.push_str("</section>\n");
}

fn timelines(out: &mut String, page: &Page) {
    out.push_str("<section id=\"timeline\">\n<h2>Timeline</h2>\n");
    if page.timelines.is_empty() {
        out.push_str("<p>Nothing has run yet.</p>\n");
    }
    for (i, t) in page.timelines.iter().enumerate() {
        timeline(out, t, i == 0);
    }
    if page.omitted > 0 {
        let _ = writeln!(
            out,
            "<p>{} earlier build(s) are in <code>.planexe/trace.json</code> \
             (open it in Perfetto or chrome://tracing).</p>",
            page.omitted
        );
    }
    let _ = writeln!(
        out,
        "<p class=\"legend\"><span style=\"background:{}\">task done</span> \
         <span style=\"background:{}\">task failed</span> <span style=\"background:{}\">task stopped</span> \
         <span style=\"background:{}\">model call</span> <span style=\"background:{}\">failed call</span></p>",
        colour("done"),
        colour("failed"),
        colour("stopped"),
        call_colour("ok"),
        call_colour("error")
    );
    out.push_str("</section>\n");
}

/// One build as lanes of bars, on an axis from its first start to its last
/// end; tasks fill their lane, model calls run along its bottom.
fn timeline(out: &mut String, t: &Timeline, open: bool) {
    let start = t.spans.iter().map(|s| s.start_us).min().unwrap_or(0);
    let end = t
        .spans
        .iter()
        .map(|s| s.start_us + s.dur_us)
        .max()
        .unwrap_or(start);
    let total = (end - start).max(1);
    let pct = |us: i64| (us as f64 * 100.0 / total as f64).clamp(0.0, 100.0);
    let tasks = t.spans.iter().filter(|s| !s.call).count();
    let calls = t.spans.len() - tasks;
    let _ = write!(
        out,
        "<details class=\"build\"{}><summary>{} · {} · {tasks} task run(s){}</summary>\n<div class=\"gantt\">\n<div class=\"axis\">",
        if open { " open" } else { "" },
        esc(&t.label),
        duration((total / 1000) as u64),
        if calls > 0 {
            format!(" · {calls} model call(s)")
        } else {
            String::new()
        }
    );
    let step = tick_step(total);
    let mut tick = 0;
    while tick <= total {
        let _ = write!(
            out,
            "<span style=\"left:{:.3}%\">{}</span>",
            pct(tick),
            duration((tick / 1000) as u64)
        );
        tick += step;
    }
    out.push_str("</div>\n");
    let lanes: BTreeSet<u64> = t.spans.iter().map(|s| s.lane).collect();
    for lane in lanes {
        let _ = write!(
            out,
            "<div class=\"lane\"><div class=\"lane-name\">lane {lane}</div><div class=\"track\">"
        );
        for s in t.spans.iter().filter(|s| s.lane == lane) {
            let (class, fill) = if s.call {
                ("call", call_colour(&s.state))
            } else {
                ("bar", colour(&s.state))
            };
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
            let _ = write!(
                out,
                "<div class=\"{class}\" style=\"left:{:.3}%;width:{:.3}%;background:{fill}\" title=\"{}\">{}</div>",
                pct(s.start_us - start),
                pct(s.dur_us),
                esc(&tip),
                if s.call { String::new() } else { esc(&s.name) }
            );
        }
        out.push_str("</div></div>\n");
    }
    out.push_str("</div>\n</details>\n");
}

/// A round step between axis ticks that gives at most about eight of them.
fn tick_step(total_us: i64) -> i64 {
    const MS: i64 = 1_000;
    const S: i64 = 1_000 * MS;
    const STEPS: [i64; 21] = [
        MS,
        2 * MS,
        5 * MS,
        10 * MS,
        20 * MS,
        50 * MS,
        100 * MS,
        200 * MS,
        500 * MS,
        S,
        2 * S,
        5 * S,
        10 * S,
        15 * S,
        30 * S,
        60 * S,
        120 * S,
        300 * S,
        600 * S,
        1800 * S,
        3600 * S,
    ];
    STEPS
        .into_iter()
        .find(|&step| total_us / step <= 8)
        .unwrap_or_else(|| (total_us / 8 / (3600 * S) + 1) * 3600 * S)
}

/// The task graph as SVG: a column per depth, each task placed near the
/// middle of what it depends on so edges stay short, columns centred.
fn graph(out: &mut String, page: &Page) {
    out.push_str("<section id=\"graph\">\n<h2>Task graph</h2>\n");
    let n = page.tasks.len();
    if n == 0 {
        out.push_str("<p>The pipeline has no tasks.</p>\n</section>\n");
        return;
    }
    let columns = page.tasks.iter().map(|t| t.depth).max().unwrap_or(0) + 1;
    let mut column: Vec<Vec<usize>> = vec![Vec::new(); columns];
    for (t, detail) in page.tasks.iter().enumerate() {
        column[detail.depth].push(t);
    }
    let mut rank = vec![0.0_f64; n];
    for tasks in &mut column {
        // Barycentres: the mean rank of a task's dependencies (earlier
        // columns, already placed); a stable sort keeps declaration order
        // among equals and in the first column.
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
    let width = 2 * PAD + columns * NODE_W + (columns - 1) * COL_GAP;
    let height = 2 * PAD + tallest * NODE_H + (tallest - 1) * ROW_GAP;
    let _ = write!(
        out,
        "<div class=\"graph\"><svg width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" \
         role=\"img\" aria-label=\"task graph\">\n<g class=\"edges\">\n"
    );
    for (t, detail) in page.tasks.iter().enumerate() {
        let (x2, y2) = (pos[t].0, pos[t].1 + NODE_H / 2);
        for &d in &detail.deps {
            let (x1, y1) = (pos[d].0 + NODE_W, pos[d].1 + NODE_H / 2);
            let mid = (x1 + x2) / 2;
            let _ = writeln!(
                out,
                "<path d=\"M{x1} {y1} C{mid} {y1} {mid} {y2} {x2} {y2}\"/>"
            );
        }
    }
    out.push_str("</g>\n<g class=\"nodes\">\n");
    for (t, row) in page.summary.tasks.iter().enumerate() {
        let (x, y) = pos[t];
        let mut shown: String = row.task.chars().take(NODE_CHARS).collect();
        if row.task.chars().count() > NODE_CHARS {
            shown.push('…');
        }
        let mut sub = state_label(row.state.as_str()).to_string();
        if let Some(ms) = row.duration_ms {
            sub.push_str(" · ");
            sub.push_str(&duration(ms));
        }
        let _ = writeln!(
            out,
            "<a href=\"#task-{t}\"><title>{} ({}): {}</title>\
             <rect x=\"{x}\" y=\"{y}\" width=\"{NODE_W}\" height=\"{NODE_H}\" rx=\"6\" fill=\"{}\"/>\
             <text x=\"{}\" y=\"{}\">{}</text><text class=\"sub\" x=\"{}\" y=\"{}\">{}</text></a>",
            esc(&row.task),
            page.tasks[t].kind,
            esc(&sub),
            colour(row.state.as_str()),
            x + 8,
            y + 15,
            esc(&shown),
            x + 8,
            y + 29,
            esc(&sub)
        );
    }
    out.push_str("</g>\n</svg></div>\n</section>\n");
}

fn task_table(out: &mut String, page: &Page) {
    let s = &page.summary;
    let usage = s.tasks.iter().any(|t| t.total_tokens.is_some());
    out.push_str(
        "<section id=\"tasks\">\n<h2>Tasks</h2>\n<table>\n<tr><th>Task</th><th>Kind</th><th>State</th>\
         <th>Duration</th><th>Finished</th><th>Model</th>",
    );
    if usage {
        out.push_str("<th>Tokens</th><th>Cost</th>");
    }
    out.push_str("<th>Notes</th></tr>\n");
    for (i, (t, detail)) in s.tasks.iter().zip(&page.tasks).enumerate() {
        let mut notes: Vec<String> = Vec::new();
        if let Some(e) = &t.error {
            notes.push(format!(
                "{}: {e}",
                t.error_kind.as_deref().unwrap_or("error")
            ));
        }
        notes.extend(t.warnings.iter().cloned());
        let _ = write!(
            out,
            "<tr id=\"task-{i}\"><td><code>{}</code></td><td>{}</td>\
             <td><span class=\"state\" style=\"background:{}\">{}</span></td>\
             <td class=\"num\">{}</td><td>{}</td><td>{}</td>",
            esc(&t.task),
            detail.kind,
            colour(t.state.as_str()),
            state_label(t.state.as_str()),
            t.duration_ms.map(duration).unwrap_or_default(),
            esc(&t.finished_at.as_deref().map(when).unwrap_or_default()),
            esc(t.model.as_deref().unwrap_or(""))
        );
        if usage {
            let _ = write!(
                out,
                "<td class=\"num\">{}</td><td class=\"num\">{}</td>",
                t.total_tokens.map(|n| n.to_string()).unwrap_or_default(),
                t.cost_usd.map(money).unwrap_or_default()
            );
        }
        let _ = writeln!(out, "<td>{}</td></tr>", esc(&notes.join("\n")));
    }
    if usage {
        let _ = writeln!(
            out,
            "<tr class=\"total\"><td>Total</td><td></td><td></td><td></td><td></td><td></td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td></td></tr>",
            s.usage.total_tokens,
            money(s.usage.cost_usd)
        );
    }
    out.push_str("</table>\n</section>\n");
}

const STYLE: &str = "
:root { color-scheme: light; font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', sans-serif; color: #202124; }
body { margin: 0; background: #f8f9fa; }
main { max-width: 1200px; margin: 0 auto; padding: 16px 24px 40px; }
h1 { font-size: 24px; margin: 8px 0; }
h2 { font-size: 18px; margin: 28px 0 10px; border-bottom: 1px solid #dadce0; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 0 0 6px; }
code, pre { font-family: ui-monospace, 'SFMono-Regular', Menlo, Consolas, monospace; font-size: 12.5px; }
pre { white-space: pre-wrap; word-break: break-word; background: #fff; border: 1px solid #e8eaed; padding: 8px; margin: 6px 0; }
a { color: #1a73e8; text-decoration: none; }
nav a { margin-right: 12px; }
.badge, .state { border-radius: 10px; padding: 1px 9px; font-size: 13px; font-weight: 600; vertical-align: middle; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 3px 16px; margin: 12px 0; }
.facts dt { color: #5f6368; }
.facts dd { margin: 0; word-break: break-all; }
.counts { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 8px; }
.counts li { background: #fff; border: 1px solid #dadce0; border-radius: 6px; padding: 3px 10px; }
.warnings li { color: #b06000; }
.failure { background: #fff; border-left: 5px solid; padding: 10px 12px; margin: 10px 0; }
.failure .kind { font-weight: normal; color: #5f6368; }
.build { margin: 8px 0; }
.build summary, details summary { cursor: pointer; font-weight: 600; }
.gantt { background: #fff; border: 1px solid #e8eaed; padding: 6px 8px 8px; margin-top: 6px; }
.axis { position: relative; height: 18px; margin-left: 64px; color: #5f6368; font-size: 11px; border-bottom: 1px solid #dadce0; }
.axis span { position: absolute; top: 0; padding-left: 2px; border-left: 1px solid #dadce0; white-space: nowrap; }
.lane { display: flex; align-items: center; }
.lane-name { width: 64px; flex: none; color: #5f6368; font-size: 11px; }
.track { position: relative; flex: 1; height: 26px; border-bottom: 1px dashed #f1f3f4; overflow: hidden; }
.bar, .call { position: absolute; box-sizing: border-box; min-width: 2px; }
.bar { top: 2px; height: 16px; border-radius: 3px; font-size: 11px; line-height: 16px; padding: 0 3px; overflow: hidden; white-space: nowrap; text-overflow: ellipsis; border: 1px solid rgba(0,0,0,.15); }
.call { bottom: 1px; height: 5px; border-radius: 2px; }
.legend span { display: inline-block; border-radius: 3px; padding: 0 6px; margin-right: 6px; font-size: 12px; }
.graph { overflow: auto; background: #fff; border: 1px solid #e8eaed; max-height: 80vh; }
.graph svg { display: block; }
.edges path { fill: none; stroke: #9aa0a6; stroke-width: 1.2; }
.nodes rect { stroke: rgba(0,0,0,.25); }
.nodes text { font-size: 12px; fill: #202124; font-family: ui-monospace, Menlo, Consolas, monospace; }
.nodes text.sub { font-size: 10.5px; fill: #3c4043; font-family: system-ui, sans-serif; }
table { border-collapse: collapse; width: 100%; background: #fff; margin: 6px 0; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #e8eaed; vertical-align: top; }
th { background: #f1f3f4; font-weight: 600; }
td.num { text-align: right; white-space: nowrap; }
td:last-child { white-space: pre-wrap; }
tr.total td { font-weight: 600; }
tr:target { outline: 2px solid #1a73e8; }
footer { margin-top: 32px; color: #5f6368; font-size: 12px; }
";

#[cfg(test)]
mod tests {
    use super::super::{Span, TaskDetail};
    use super::*;
    use crate::observe::summary::{Outcome, Summary, TaskSummary};
    use crate::store::run_record::Counts;
    use crate::store::{ErrorKind, TaskError, Usage};

    const EVIL: &str = "<script>alert(1)</script>";

    fn row(task: &str, state: Outcome) -> TaskSummary {
        TaskSummary {
            task: task.to_string(),
            state,
            duration_ms: Some(1500),
            finished_at: Some("2026-11-22T16:42:01.5Z".to_string()),
            outputs: Vec::new(),
            model: None,
            total_tokens: None,
            cost_usd: None,
            error_kind: None,
            error: None,
            error_id: None,
            warnings: Vec::new(),
        }
    }

    fn detail(deps: Vec<usize>, depth: usize) -> TaskDetail {
        TaskDetail {
            kind: "command",
            deps,
            depth,
            error: None,
            log_tail: Vec::new(),
        }
    }

    /// Two tasks, the second failed, with hostile text wherever a user or a
    /// server can put text.
    fn hostile_page() -> Page {
        let mut failed = row("wbs3[7]", Outcome::Failed);
        failed.error_kind = Some("exit".to_string());
        failed.error = Some(EVIL.to_string());
        failed.model = Some(format!("m{EVIL}"));
        failed.warnings = vec![format!("output {EVIL} is empty")];
        let mut bad = detail(vec![0], 1);
        bad.error = Some(TaskError {
            kind: ErrorKind::Exit,
            message: format!("first line\n{EVIL}\n<img src=x onerror=alert(2)>"),
            error_id: Some(format!("id{EVIL}")),
        });
        bad.log_tail = vec![format!("\x1b[31mlog {EVIL}\x1b[0m")];
        Page {
            name: format!("demo {EVIL} & \"co\""),
            summary: Summary {
                run_id: None,
                pipeline: format!("/p/{EVIL}/pipeline.toml"),
                run_dir: format!("/runs/{EVIL}"),
                generated_at: "2026-11-22T16:43:00Z".to_string(),
                outcome: Some("failed".to_string()),
                counts: Counts {
                    tasks: 2,
                    done: 1,
                    failed: 1,
                    ..Default::default()
                },
                usage: Usage::default(),
                warnings: vec![format!("wbs3[7]: {EVIL}")],
                tasks: vec![row("outline", Outcome::Done), failed],
            },
            run: None,
            tasks: vec![detail(Vec::new(), 0), bad],
            timelines: vec![Timeline {
                label: format!("Build {EVIL}"),
                spans: vec![
                    Span {
                        name: "outline".to_string(),
                        call: false,
                        lane: 0,
                        start_us: 0,
                        dur_us: 1_000_000,
                        state: "done".to_string(),
                        note: None,
                    },
                    Span {
                        name: "wbs3[7]".to_string(),
                        call: false,
                        lane: 1,
                        start_us: 1_000_000,
                        dur_us: 500_000,
                        state: "failed".to_string(),
                        note: Some(EVIL.to_string()),
                    },
                    Span {
                        name: format!("local{EVIL} #1"),
                        call: true,
                        lane: 1,
                        start_us: 1_100_000,
                        dur_us: 200_000,
                        state: format!("auth{EVIL}"),
                        note: Some(format!("\"{EVIL}")),
                    },
                ],
            }],
            omitted: 0,
        }
    }

    #[test]
    fn hostile_text_is_escaped_everywhere() {
        let html = render(&hostile_page());
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains('\x1b'));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("&lt;img src=x onerror=alert(2)&gt;"));
        // An attribute value cannot be closed early by a quote.
        assert!(html.contains("&quot;&lt;script&gt;"));
        assert!(html.contains("demo &lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;co&quot;"));
    }

    #[test]
    fn the_page_loads_nothing_and_runs_nothing() {
        let html = render(&hostile_page());
        for needle in [
            "http:", "https:", "<script", "<img", "<link", "<iframe", "<object", "<embed",
            "@import", "url(",
        ] {
            assert!(!html.contains(needle), "{needle} in\n{html}");
        }
        assert!(html.contains("default-src 'none'; style-src 'unsafe-inline'"));
    }

    #[test]
    fn every_task_is_in_the_graph_and_the_table() {
        let html = render(&hostile_page());
        for id in ["task-0", "task-1"] {
            assert!(html.contains(&format!("<tr id=\"{id}\">")));
            assert!(html.contains(&format!("<a href=\"#{id}\">")));
        }
        assert!(html.contains("<code>wbs3[7]</code>"));
        assert!(html.contains("<path d="), "an edge outline -> wbs3[7]");
    }

    #[test]
    fn durations_and_ticks_read_well() {
        assert_eq!(duration(340), "340 ms");
        assert_eq!(duration(1250), "1.25 s");
        assert_eq!(duration(12_500), "12.5 s");
        assert_eq!(duration(123_000), "2m 03s");
        assert_eq!(duration(3_720_000), "1h 02m");
        assert_eq!(money(0.0), "$0.00");
        assert_eq!(money(12.345), "$12.35");
        assert_eq!(money(0.0156), "$0.0156");
        assert_eq!(money(0.000025), "$0.000025");
        assert_eq!(tick_step(1_500_000), 200_000);
        assert_eq!(tick_step(1), 1_000);
        assert!(10 * 3_600_000_000 / tick_step(10 * 3_600_000_000) <= 8);
    }
}
