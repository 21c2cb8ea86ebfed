//! `planexe graph [--format dot|mermaid|json]`: the task graph, each task
//! coloured by its state with the one palette.

use std::fmt::Write as _;

use super::args::{Cli, GraphArgs, GraphFormat};
use super::printer::Printer;
use super::Context;
use crate::error::Result;
use crate::observe::explain::{self, GraphView};
use crate::observe::palette::colour;
use crate::observe::Standing;
use crate::store::untrusted::printable;
use crate::store::CheckMode;

pub fn graph(cli: &Cli, ctx: &Context, args: &GraphArgs, printer: &Printer) -> Result<()> {
    let session = super::read(cli, ctx, printer, CheckMode::Content)?;
    let view = explain::graph(&session, CheckMode::Content)?;
    let out = match args.format {
        GraphFormat::Dot => dot(&view),
        GraphFormat::Mermaid => mermaid(&view),
        GraphFormat::Json => return printer.json(&json(&view)),
    };
    printer.data(out.trim_end());
    Ok(())
}

fn dot(view: &GraphView) -> String {
    let mut out = String::new();
    // The pipeline's name may be anyone's (a shared pipeline file): its
    // escape sequences are shown on a terminal, not run.
    let _ = writeln!(out, "digraph \"{}\" {{", dot_quoted(&printable(&view.name)));
    let _ = writeln!(
        out,
        "  rankdir=LR;\n  node [shape=box, style=\"rounded,filled\", fontname=\"sans-serif\"];"
    );
    for node in &view.nodes {
        let kind = if node.kind == "prompt" {
            " (prompt)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  \"{0}\" [label=\"{0}{kind}\\n{1}\", fillcolor=\"{2}\"];",
            dot_quoted(&node.name),
            node.standing,
            colour(node.standing)
        );
    }
    for &(a, b) in &view.edges {
        let _ = writeln!(
            out,
            "  \"{}\" -> \"{}\";",
            dot_quoted(&view.nodes[a].name),
            dot_quoted(&view.nodes[b].name)
        );
    }
    out.push('}');
    out
}

/// `text` as it goes between the double quotes of a DOT string: a quote
/// and a backslash escaped, so that a name ending in a backslash cannot
/// swallow the closing quote and a quote shows as itself.
fn dot_quoted(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

fn mermaid(view: &GraphView) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "flowchart LR");
    for (i, node) in view.nodes.iter().enumerate() {
        let _ = writeln!(
            out,
            "  t{i}[\"{} ({})\"]:::{}",
            node.name.replace('"', "'"),
            node.standing,
            node.standing.as_str().replace('-', "_")
        );
    }
    for (a, b) in &view.edges {
        let _ = writeln!(out, "  t{a} --> t{b}");
    }
    for state in [
        Standing::Done,
        Standing::Stale,
        Standing::Pending,
        Standing::Failed,
        Standing::Running,
        Standing::FailedPendingCheck,
        Standing::Stopped,
        Standing::NeverBuilt,
    ] {
        let _ = writeln!(
            out,
            "  classDef {} fill:{}",
            state.as_str().replace('-', "_"),
            colour(state)
        );
    }
    out
}

fn json(view: &GraphView) -> serde_json::Value {
    let nodes: Vec<serde_json::Value> = view
        .nodes
        .iter()
        .map(|n| {
            serde_json::json!({
                "task": n.name,
                "kind": n.kind,
                "state": n.standing,
                "reason": n.reason,
                "inputs": n.inputs,
                "outputs": n.outputs,
            })
        })
        .collect();
    let edges: Vec<serde_json::Value> = view
        .edges
        .iter()
        .map(|&(a, b)| serde_json::json!({"from": view.nodes[a].name, "to": view.nodes[b].name}))
        .collect();
    serde_json::json!({"pipeline": view.name, "tasks": nodes, "edges": edges})
}
