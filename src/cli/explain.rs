//! `planexe explain TASK`: why a task is or is not stale, as text.

use std::fmt::Write as _;

use super::args::{Cli, ExplainArgs};
use super::printer::Printer;
use super::Context;
use crate::error::Result;
use crate::observe::explain::{self, FileLine, FileVerdict};
use crate::store::record::{with_error_id, with_kind};
use crate::store::untrusted::printable;
use crate::store::Stamp;

pub fn explain(cli: &Cli, ctx: &Context, args: &ExplainArgs, printer: &Printer) -> Result<()> {
    let session = super::read(cli, ctx, printer, args.check.into())?;
    let e = explain::explain(&session, &args.task, args.check.into())?;
    let mut out = String::new();
    // What the records say is printed escaped: a record of an earlier
    // version may hold a server's control characters.
    let verdict = match &e.reason {
        None => "up to date".to_string(),
        Some(r) => format!("stale: {}", printable(r)),
    };
    let _ = writeln!(out, "{}: {verdict}", e.task);
    match &e.last_success {
        None => {
            let cleaned = crate::plan::Reason::NeverBuilt { cleaned: true }.to_string();
            if e.reason.as_deref() == Some(cleaned.as_str()) {
                let _ = writeln!(
                    out,
                    "  no successful run is recorded: `planexe clean` forgot the last one"
                );
            } else {
                let _ = writeln!(out, "  no successful run is recorded");
            }
            if let Some(n) = e.done_before {
                let _ = writeln!(out, "  {}", crate::observe::status::text::done_before(n));
            }
        }
        Some(last) => {
            let _ = writeln!(
                out,
                "  last successful run: {} ({} ms)",
                last.finished_at.as_deref().unwrap_or("?"),
                last.duration_ms
            );
            let same = last.recorded == last.now;
            let _ = writeln!(
                out,
                "  fingerprint: recorded {}, now {}{}",
                short(&last.recorded),
                short(&last.now),
                if same { " (same)" } else { " (changed)" }
            );
            if let Some(diff) = &last.diff {
                let _ = writeln!(out, "  {} (recorded → now):", last.kind);
                // A fan-out's item (a model's answer) may be in it.
                for line in diff {
                    let _ = writeln!(out, "    {}", printable(line));
                }
            }
        }
    }
    if let Some((kind, message, id)) = &e.last_error {
        let said = with_kind(kind.as_str(), message);
        let message = with_error_id(&printable(&said), id.as_deref().map(printable).as_deref());
        let _ = writeln!(out, "  last error: {message}");
    }
    section(&mut out, "inputs", &e.inputs);
    section(&mut out, "outputs", &e.outputs);
    if !e.upstream.is_empty() {
        let _ = writeln!(
            out,
            "  upstream tasks that will re-run: {}",
            e.upstream.join(", ")
        );
    }
    if e.marker_missing {
        let _ = writeln!(out, "  .DONE marker: missing");
    }
    printer.data(out.trim_end());
    Ok(())
}

fn section(out: &mut String, title: &str, files: &[FileLine]) {
    if files.is_empty() {
        return;
    }
    let _ = writeln!(out, "  {title}:");
    for f in files {
        let line = match &f.verdict {
            FileVerdict::Missing => "missing".to_string(),
            FileVerdict::New => "not recorded (new)".to_string(),
            FileVerdict::Same(r) => format!("same ({})", describe(r)),
            FileVerdict::Touched { recorded } => {
                format!("same bytes, new mtime (recorded {})", describe(recorded))
            }
            FileVerdict::Changed { recorded, now } => {
                format!(
                    "changed: recorded {}; now {}",
                    describe(recorded),
                    describe(now)
                )
            }
        };
        let producer = f
            .producer
            .as_deref()
            .map(|p| format!(" [from {p}]"))
            .unwrap_or_default();
        let kept = if f.edited {
            "; edited by hand, kept (what reads it re-runs)"
        } else {
            ""
        };
        // A glob matches any file's name: escapes in it are shown, not run.
        let _ = writeln!(out, "    {}{producer}: {line}{kept}", printable(&f.path));
    }
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

fn describe(stamp: &Stamp) -> String {
    let when = jiff::Timestamp::from_nanosecond(stamp.mtime_ns as i128)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|_| stamp.mtime_ns.to_string());
    format!("{} B, {when}, blake3 {}", stamp.size, short(&stamp.blake3))
}
