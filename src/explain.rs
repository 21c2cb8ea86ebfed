//! `planexe explain TASK` (why a task is or is not stale, in full) and
//! `planexe graph` (the task graph with each task's state as a colour).
//! Both only read.

use std::fmt::Write as _;

use crate::cli::{Cli, ExplainArgs, GraphArgs, GraphFormat};
use crate::error::{Error, Result};
use crate::graph::{Action, Graph, TaskId};
use crate::plan::{Plan, Reason};
use crate::printer::Printer;
use crate::session::Session;
use crate::stamp::{self, Stamp, Stamper};
use crate::state;

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

fn describe(stamp: &Stamp) -> String {
    let when = jiff::Timestamp::from_nanosecond(stamp.mtime_ns as i128)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|_| stamp.mtime_ns.to_string());
    format!("{} B, {when}, blake3 {}", stamp.size, short(&stamp.blake3))
}

pub fn explain(cli: &Cli, args: &ExplainArgs, printer: &Printer) -> Result<()> {
    let session = Session::open(cli, printer, None)?;
    let graph = &session.graph;
    let Some(task) = graph.task(&args.task) else {
        return Err(Error::usage(format!("unknown task `{}`", args.task))
            .hint("run `planexe status` to list tasks; instances are named like `wbs3[7]`"));
    };
    let plan = session.plan(graph.closure(&[task.id]), args.check)?;
    // Current stamps of the task's files, hashed only when needed.
    let stamper = Stamper::default();
    let root = session.run_dir.root();
    let mut out = String::new();
    let verdict = match &plan.reasons[task.id] {
        None => "up to date".to_string(),
        Some(r) => format!("stale: {r}"),
    };
    let _ = writeln!(out, "{}: {verdict}", task.name);
    let record = session.store.done_record(&session.run_dir, &task.name);
    let sidecar = session.store.sidecar(&session.run_dir, &task.name);
    match &record {
        None => {
            let _ = writeln!(out, "  no successful run is recorded");
        }
        Some(rec) => {
            let _ = writeln!(
                out,
                "  last successful run: {} ({} ms)",
                rec.finished_at.as_deref().unwrap_or("?"),
                rec.duration_ms.unwrap_or(0)
            );
            let same = rec.fingerprint == task.fingerprint;
            let _ = writeln!(
                out,
                "  fingerprint: recorded {}, now {}{}",
                short(&rec.fingerprint),
                short(&task.fingerprint),
                if same { " (same)" } else { " (changed)" }
            );
            if !same {
                let before = sidecar.as_ref().and_then(|s| s.definition.clone());
                let now = crate::build::definition(&task.action);
                if let (Some(before), Some(now)) = (before, now) {
                    let _ = writeln!(out, "  {} (recorded → now):", task.action.kind());
                    for line in diff(&before, &now) {
                        let _ = writeln!(out, "    {line}");
                    }
                }
            }
        }
    }
    if let Some(s) = &sidecar {
        if let Some(e) = &s.error {
            let id = e
                .error_id
                .as_deref()
                .map(|i| format!(" (error_id {i})"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  last error: {}: {}{id}",
                e.kind,
                crate::plan::first_line(&e.message)
            );
        }
    }
    let section = |out: &mut String, title: &str, paths: Vec<(&str, Option<&Stamp>)>| {
        if paths.is_empty() {
            return;
        }
        let _ = writeln!(out, "  {title}:");
        for (path, recorded) in paths {
            let now = stamp::stat_inside(root, path).ok().flatten();
            let line = match (recorded, now) {
                (_, None) => "missing".to_string(),
                (None, Some(_)) => "not recorded (new)".to_string(),
                (Some(r), Some(m)) if r.size == m.size && r.mtime_ns == m.mtime_ns => {
                    format!("same ({})", describe(r))
                }
                (Some(r), Some(_)) => {
                    let current = stamper.stamp(root, path).ok().flatten();
                    match current {
                        Some(c) if c.blake3 == r.blake3 => {
                            format!("same bytes, new mtime (recorded {})", describe(r))
                        }
                        Some(c) => {
                            format!("changed: recorded {}; now {}", describe(r), describe(&c))
                        }
                        None => "missing".to_string(),
                    }
                }
            };
            let producer = graph
                .producers
                .get(path)
                .map(|&p| format!(" [from {}]", graph.tasks[p].name))
                .unwrap_or_default();
            let _ = writeln!(out, "    {path}{producer}: {line}");
        }
    };
    let rec = record.as_deref();
    section(
        &mut out,
        "inputs",
        task.inputs
            .iter()
            .map(|i| (i.path.as_str(), rec.and_then(|r| r.inputs.get(&i.path))))
            .collect(),
    );
    section(
        &mut out,
        "outputs",
        task.outputs
            .iter()
            .map(|o| (o.path.as_str(), rec.and_then(|r| r.outputs.get(&o.path))))
            .collect(),
    );
    let upstream: Vec<&str> = task
        .deps
        .iter()
        .filter(|&&d| plan.reasons[d].is_some())
        .map(|&d| graph.tasks[d].name.as_str())
        .collect();
    if !upstream.is_empty() {
        let _ = writeln!(
            out,
            "  upstream tasks that will re-run: {}",
            upstream.join(", ")
        );
    }
    if !state::has_marker(&session.run_dir, &task.name) {
        let _ = writeln!(out, "  .DONE marker: missing");
    }
    printer.data(out.trim_end());
    Ok(())
}

/// A line diff: removed lines as `- `, added lines as `+ `, with the
/// common prefix and suffix elided.
fn diff(before: &str, now: &str) -> Vec<String> {
    let a: Vec<&str> = before.lines().collect();
    let b: Vec<&str> = now.lines().collect();
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let mut out = Vec::new();
    for line in &a[prefix..a.len() - suffix] {
        out.push(format!("- {line}"));
    }
    for line in &b[prefix..b.len() - suffix] {
        out.push(format!("+ {line}"));
    }
    out
}

/// A task's state for the graph: done, stale, failed, running, never-built.
fn states(session: &Session, graph: &Graph, plan: &Plan) -> Vec<&'static str> {
    (0..graph.tasks.len())
        .map(|t| match &plan.reasons[t] {
            None => "done",
            Some(Reason::NeverBuilt) => "never-built",
            Some(Reason::FailedLastTime(_)) => "failed",
            Some(Reason::InterruptedLastTime) => {
                let running = session
                    .store
                    .sidecar(&session.run_dir, &graph.tasks[t].name)
                    .is_some_and(|s| s.state == state::TaskState::Running);
                if running {
                    "running"
                } else {
                    "stopped"
                }
            }
            Some(_) => "stale",
        })
        .collect()
}

/// The colour of a task state, shared by `graph` and `report`.
pub fn colour(state: &str) -> &'static str {
    match state {
        "done" => "#9be29b",
        "failed" => "#f28b82",
        "running" => "#8ab4f8",
        "stopped" => "#fbbc04",
        "stale" => "#fdd663",
        _ => "#dadce0",
    }
}

pub fn graph(cli: &Cli, args: &GraphArgs, printer: &Printer) -> Result<()> {
    let session = Session::open(cli, printer, None)?;
    let graph = &session.graph;
    let plan = session.plan(
        vec![true; graph.tasks.len()],
        crate::stamp::CheckMode::Content,
    )?;
    let states = states(&session, graph, &plan);
    let edges: Vec<(TaskId, TaskId)> = graph
        .order
        .iter()
        .flat_map(|&t| graph.tasks[t].deps.iter().map(move |&d| (d, t)))
        .collect();
    let mut out = String::new();
    match args.format {
        GraphFormat::Dot => {
            let _ = writeln!(out, "digraph \"{}\" {{", graph.name.replace('"', "'"));
            let _ = writeln!(out, "  rankdir=LR;\n  node [shape=box, style=\"rounded,filled\", fontname=\"sans-serif\"];");
            for task in &graph.tasks {
                let kind = if matches!(task.action, Action::Prompt(_)) {
                    " (prompt)"
                } else {
                    ""
                };
                let _ = writeln!(
                    out,
                    "  \"{0}\" [label=\"{0}{kind}\\n{1}\", fillcolor=\"{2}\"];",
                    task.name,
                    states[task.id],
                    colour(states[task.id])
                );
            }
            for (a, b) in &edges {
                let _ = writeln!(
                    out,
                    "  \"{}\" -> \"{}\";",
                    graph.tasks[*a].name, graph.tasks[*b].name
                );
            }
            out.push('}');
        }
        GraphFormat::Mermaid => {
            let _ = writeln!(out, "flowchart LR");
            for task in &graph.tasks {
                let _ = writeln!(
                    out,
                    "  t{}[\"{} ({})\"]:::{}",
                    task.id,
                    task.name.replace('"', "'"),
                    states[task.id],
                    states[task.id].replace('-', "_")
                );
            }
            for (a, b) in &edges {
                let _ = writeln!(out, "  t{a} --> t{b}");
            }
            for state in [
                "done",
                "stale",
                "failed",
                "running",
                "stopped",
                "never-built",
            ] {
                let _ = writeln!(
                    out,
                    "  classDef {} fill:{}",
                    state.replace('-', "_"),
                    colour(state)
                );
            }
        }
        GraphFormat::Json => {
            let nodes: Vec<serde_json::Value> = graph
                .tasks
                .iter()
                .map(|t| {
                    serde_json::json!({
                        "task": t.name,
                        "kind": t.action.kind(),
                        "state": states[t.id],
                        "reason": plan.reasons[t.id].as_ref().map(ToString::to_string),
                        "inputs": t.inputs.iter().map(|i| &i.path).collect::<Vec<_>>(),
                        "outputs": t.outputs.iter().map(|o| &o.path).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let edges: Vec<serde_json::Value> = edges
                .iter()
                .map(|(a, b)| serde_json::json!({"from": graph.tasks[*a].name, "to": graph.tasks[*b].name}))
                .collect();
            out = serde_json::to_string_pretty(
                &serde_json::json!({"pipeline": graph.name, "tasks": nodes, "edges": edges}),
            )
            .map_err(std::io::Error::other)?;
        }
    }
    printer.data(out.trim_end());
    Ok(())
}
