//! The totals `status` ends with: every model call of the run (from
//! `usage.jsonl`) with the judges' share, then the quality warnings; and
//! how it says tokens that are estimates and a cost that is not known in
//! full (which `status TASK` and the report say the same way), and a
//! duration, short.

use std::fmt::Write;
use std::time::Duration;

use super::StatusReport;
use crate::observe::palette::{Paint, Style};
use crate::observe::Standing;
use crate::store::untrusted::printable;

/// `; estimated in part` when some calls reported no usage.
pub fn estimated(usage: &crate::store::Usage) -> &'static str {
    if usage.tokens_estimated {
        "; estimated in part"
    } else {
        ""
    }
}

/// The cost of `usage` in dollars, as `status` shows it: with no prices
/// for some of its calls' models, it says so rather than show what is
/// unknown as free (unknown outright when the priced calls cost nothing).
pub fn cost(usage: &crate::store::Usage) -> String {
    cost_in(usage, |usd| format!("${usd:.4}"))
}

/// [`cost`], dollars written by `money` (the report has its own places).
pub fn cost_in(usage: &crate::store::Usage, money: impl Fn(f64) -> String) -> String {
    match (usage.unpriced, usage.cost_usd) {
        (false, usd) => money(usd),
        (true, 0.0) => "cost unknown (calls without prices)".to_string(),
        (true, usd) => format!("{} and calls without prices", money(usd)),
    }
}

/// Totals of model calls and quality warnings, each after an empty line.
pub fn tail(out: &mut String, report: &StatusReport, paint: Paint) {
    let t = &report.totals;
    if t.calls > 0 {
        let replayed = if t.replayed_calls > 0 {
            format!(", {} replayed", t.replayed_calls)
        } else {
            String::new()
        };
        let stopped = if t.stopped_calls > 0 {
            format!(", {} stopped", t.stopped_calls)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "\nmodel calls {} ({} failed{stopped}{replayed}), {} tokens ({} in, {} out{}), {}, {} in calls",
            t.calls,
            t.failed_calls,
            t.usage.total_tokens,
            t.usage.prompt_tokens,
            t.usage.completion_tokens,
            estimated(&t.usage),
            cost(&t.usage),
            short_duration(Duration::from_millis(t.llm_time_ms))
        );
        let j = &t.judge_usage;
        if j.calls > 0 {
            let _ = writeln!(
                out,
                "  of which judge calls {}, {} tokens ({} in, {} out{}), {}",
                j.calls,
                j.usage.total_tokens,
                j.usage.prompt_tokens,
                j.usage.completion_tokens,
                estimated(&j.usage),
                cost(&j.usage)
            );
        }
    }
    if !report.warnings.is_empty() {
        let _ = write!(
            out,
            "\n{}\n",
            paint.paint(Style::State(Standing::Stale), "WARNINGS")
        );
        for w in &report.warnings {
            let _ = writeln!(out, "  {}", printable(w));
        }
    }
}

/// A duration, short: `42s`, `3m 12s`, `2h 5m`.
pub fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}
