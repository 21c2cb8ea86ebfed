//! `planexe status [TASK] [--json]` and `planexe wait`: the run at a
//! glance, as text.
//!
//! Text: a header (run directory, pipeline, model, times, run state with
//! `stalled` when a running build made no progress for `--stall-after`),
//! then groups in the order FAILED, RUNNING, STOPPED, STALE, PENDING, DONE,
//! then totals of model calls and quality warnings. A fan-out shows as one
//! line with progress. `--json` prints the query's document as it is
//! (docs/state.md). `status TASK` shows one task in full.

use std::collections::BTreeMap;
use std::time::Duration;

use super::args::{CheckArg, Cli, StatusArgs, WaitArgs};
use super::printer::Printer;
use super::Context;
use crate::clock;
use crate::error::{Error, Result, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_TIMEOUT};
use crate::model::pipeline::parse_timeout;
use crate::observe::palette::{Paint, Style};
use crate::observe::status::{
    self, Answer, CallInFlight, Known, StatusReport, TaskDetail, TaskLine,
};
use crate::observe::Standing;
use crate::plan::Session;
use crate::store::record::with_error_id;
use crate::store::run_record::{BuildOutcome, RunRecord};

pub fn status(cli: &Cli, ctx: &Context, args: &StatusArgs, printer: &Printer) -> Result<()> {
    let stall_after = duration(&args.stall_after, "--stall-after")?;
    let check = args.check.into();
    if args.task.is_none() {
        // A warning about the pipeline's choice is for the full path to print.
        let located = ctx.location(cli)?.locate()?;
        if located.warning.is_none() {
            let run = RunRecord::load(&located.run_dir);
            if let Some(known) = Known::saved(&located, run.as_ref(), check, ctx.env_model()) {
                let report = status::report(
                    &located.run_dir,
                    run.as_ref(),
                    known,
                    stall_after,
                    ctx.env_model(),
                );
                return show(ctx, &report, args, printer);
            }
        }
    }
    // Never freed: the process exits next, and freeing ten thousand records
    // one by one costs more than reading them.
    let session: &Session = Box::leak(Box::new(super::open(cli, ctx, printer)?));
    match status::query(
        session,
        args.task.as_deref(),
        check,
        stall_after,
        ctx.env_model(),
    )? {
        Answer::Run(report) => show(ctx, &report, args, printer),
        Answer::Task(detail) => {
            if args.json {
                printer.json(&detail)?;
            } else {
                printer.data(&one_task(&detail));
            }
            Ok(())
        }
    }
}

fn duration(text: &str, flag: &str) -> Result<Duration> {
    parse_timeout(&toml::Value::String(text.to_string()))
        .map_err(|m| Error::usage(format!("{flag}: {m}")))
}

fn show(ctx: &Context, report: &StatusReport, args: &StatusArgs, printer: &Printer) -> Result<()> {
    if args.json {
        printer.json(report)?;
    } else {
        printer.data(&render(
            report,
            Paint::new(ctx.stdout_colour()),
            args.task.is_some(),
        ));
    }
    Ok(())
}

/// How long ago an RFC 3339 time was, short (`3m 12s`); empty when it is
/// not a time.
fn age(rfc3339: Option<&str>) -> String {
    rfc3339
        .and_then(clock::since)
        .map(short_duration)
        .unwrap_or_default()
}

/// What a running task's model call is doing: `, model M: 153 tokens in
/// 40s, the last 0s ago`, or the wait before the next call.
fn in_flight(call: Option<&CallInFlight>, waiting_until: Option<&str>) -> String {
    if let Some(until) = waiting_until {
        let mut d = format!(", waiting to retry until {until}");
        if let Some(left) = time_left(until) {
            d.push_str(&format!(" ({} left)", short_duration(left)));
        }
        return d;
    }
    let Some(call) = call else {
        return String::new();
    };
    let mut d = format!(
        ", model {}: {} token(s) in {}",
        call.model,
        call.tokens,
        age(call.started_at.as_deref())
    );
    if call.last_token_at.is_some() {
        d.push_str(&format!(
            ", the last {} ago",
            age(call.last_token_at.as_deref())
        ));
    }
    d
}

/// `; estimated in part` when some calls reported no usage.
fn estimated(usage: &crate::store::Usage) -> &'static str {
    if usage.tokens_estimated {
        "; estimated in part"
    } else {
        ""
    }
}

/// How long until an RFC 3339 time, when it is still ahead.
fn time_left(rfc3339: &str) -> Option<Duration> {
    let then: jiff::Timestamp = rfc3339.parse().ok()?;
    let secs = then.as_second() - jiff::Timestamp::now().as_second();
    (secs > 0).then(|| Duration::from_secs(secs as u64))
}

fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

/// The report as text: a header, then tasks grouped by state, fan-outs
/// collapsed unless `expanded`, then totals and warnings.
fn render(report: &StatusReport, paint: Paint, expanded: bool) -> String {
    let fanouts = &report.fanouts;
    let mut out = String::new();
    let mut header = |k: &str, v: String| out.push_str(&format!("{k:<9}{v}\n"));
    header(
        "run",
        format!("{} ({})", report.run_dir, report.pipeline_file),
    );
    let state = match (report.state, report.build_pid) {
        ("running", Some(pid)) => {
            let elapsed = age(report.last_build_started_at.as_deref());
            let mut s = format!("running (pid {pid}, {elapsed})");
            if report.stalled {
                s.push_str(", STALLED: no progress lately");
            }
            s
        }
        (other, _) => other.to_string(),
    };
    header("state", state);
    if let Some(m) = &report.model {
        header("model", m.clone());
    }
    if let Some(c) = &report.created_at {
        let last = report.last_build_started_at.clone().unwrap_or_default();
        header("created", format!("{c}, last build {last}"));
    }
    if let Some(p) = &report.last_progress_at {
        let ago = age(Some(p));
        header("progress", format!("{p} ({ago} ago)"));
    }

    // Fan-outs collapse into one line, unless expanded; their failed and
    // running instances still show in their groups.
    let mut fanout_lines: BTreeMap<&str, Vec<&TaskLine>> = BTreeMap::new();
    if !expanded {
        for l in &report.tasks {
            if let Some(f) = &l.fanout {
                fanout_lines.entry(f.as_str()).or_default().push(l);
            } else if fanouts.get(&l.task).is_some_and(|&placeholder| placeholder) {
                fanout_lines.entry(l.task.as_str()).or_default().push(l);
            }
        }
    }
    let collapsed = |l: &TaskLine| {
        !expanded
            && (l.fanout.is_some() || fanouts.contains_key(&l.task))
            && !matches!(
                l.state,
                Standing::Failed | Standing::Running | Standing::FailedPendingCheck
            )
    };
    let width = report
        .tasks
        .iter()
        .map(|l| l.task.len())
        .chain(fanout_lines.keys().map(|k| k.len()))
        .max()
        .unwrap_or(0);
    for (title, states) in [
        ("FAILED", &[Standing::Failed][..]),
        ("FAILED-PENDING-CHECK", &[Standing::FailedPendingCheck][..]),
        ("RUNNING", &[Standing::Running][..]),
        ("STOPPED", &[Standing::Stopped][..]),
        ("STALE", &[Standing::Stale, Standing::NeverBuilt][..]),
        ("PENDING", &[Standing::Pending][..]),
        ("DONE", &[Standing::Done][..]),
    ] {
        let members: Vec<&TaskLine> = report
            .tasks
            .iter()
            .filter(|l| states.contains(&l.state) && !collapsed(l))
            .collect();
        if members.is_empty() {
            continue;
        }
        out.push_str(&format!(
            "\n{}\n",
            paint.paint(
                Style::State(states[0]),
                &format!("{title} ({})", members.len())
            )
        ));
        for l in members {
            let detail = match l.state {
                Standing::Failed | Standing::Stopped => {
                    let mut d = format!(
                        "{}: {}",
                        l.error_kind.as_deref().unwrap_or("error"),
                        with_error_id(l.error.as_deref().unwrap_or(""), l.error_id.as_deref())
                    );
                    if let Some(a) = l.attempt {
                        d.push_str(&format!(", attempt {a}"));
                    }
                    if let Some(m) = &l.model {
                        d.push_str(&format!(", model {m}"));
                    }
                    if let Some(r) = l.recoverable {
                        d.push_str(if r {
                            ", recoverable"
                        } else {
                            ", not recoverable"
                        });
                    }
                    if let Some(h) = &l.hint {
                        d.push_str(&format!("\n  {:width$}  hint: {h}", ""));
                    }
                    d
                }
                Standing::Running => {
                    let since_start = age(l.started_at.as_deref());
                    let mut d = format!(
                        "since {} ({since_start}), attempt {}{}",
                        l.started_at.as_deref().unwrap_or("?"),
                        l.attempt.unwrap_or(1),
                        l.pid.map(|p| format!(", pid {p}")).unwrap_or_default()
                    );
                    d.push_str(&in_flight(l.call.as_ref(), l.waiting_until.as_deref()));
                    d
                }
                Standing::Done => {
                    let mut d = l
                        .duration_ms
                        .map(|ms| format!("{:.2}s", ms as f64 / 1000.0))
                        .unwrap_or_default();
                    if let Some(j) = &l.judge {
                        d.push_str(&format!(
                            ", judge {:.2}{}",
                            j.score,
                            if j.passed {
                                ""
                            } else {
                                " (below its threshold)"
                            }
                        ));
                    }
                    d
                }
                Standing::FailedPendingCheck => format!(
                    "{}; its rescue's checks examine what it wrote (since {})",
                    l.error.as_deref().unwrap_or("the command failed"),
                    age(l.started_at.as_deref())
                ),
                Standing::NeverBuilt => "never built".to_string(),
                _ => l.reason.clone().unwrap_or_default(),
            };
            out.push_str(&format!(
                "  {}{:width$}  {detail}\n",
                paint.symbol(l.state),
                l.task
            ));
        }
    }
    if !fanout_lines.is_empty() {
        out.push_str(&format!("\n{}\n", paint.paint(Style::Bold, "FAN-OUT")));
        for (name, members) in &fanout_lines {
            let detail = if fanouts.get(*name).is_some_and(|&placeholder| placeholder) {
                members
                    .first()
                    .and_then(|l| l.reason.clone())
                    .unwrap_or_default()
            } else {
                let count = |s: Standing| members.iter().filter(|l| l.state == s).count();
                let mut d = format!("{}/{} done", count(Standing::Done), members.len());
                for (s, label) in [
                    (Standing::Failed, "failed"),
                    (Standing::Running, "running"),
                    (Standing::FailedPendingCheck, "failed-pending-check"),
                    (Standing::Stopped, "stopped"),
                    (Standing::Stale, "stale"),
                    (Standing::NeverBuilt, "never built"),
                    (Standing::Pending, "pending"),
                ] {
                    let k = count(s);
                    if k > 0 {
                        d.push_str(&format!(", {k} {label}"));
                    }
                }
                d
            };
            out.push_str(&format!("  {:width$}  {detail}\n", name));
        }
    }
    let t = &report.totals;
    if t.calls > 0 {
        out.push_str(&format!(
            "\nmodel calls {} ({} failed{}), {} tokens ({} in, {} out{}), ${:.4}, {} in calls\n",
            t.calls,
            t.failed_calls,
            if t.replayed_calls > 0 {
                format!(", {} replayed", t.replayed_calls)
            } else {
                String::new()
            },
            t.usage.total_tokens,
            t.usage.prompt_tokens,
            t.usage.completion_tokens,
            estimated(&t.usage),
            t.usage.cost_usd,
            short_duration(Duration::from_millis(t.llm_time_ms))
        ));
    }
    if !report.warnings.is_empty() {
        out.push_str(&format!(
            "\n{}\n",
            paint.paint(Style::State(Standing::Stale), "WARNINGS")
        ));
        for w in &report.warnings {
            out.push_str(&format!("  {w}\n"));
        }
    }
    out.trim_end().to_string()
}

/// `status TASK`: one task in full.
fn one_task(detail: &TaskDetail) -> String {
    let standing = match (&detail.reason, detail.running) {
        (_, true) => "running".to_string(),
        (Some(r), false) => format!("stale: {r}"),
        (None, false) => "up to date".to_string(),
    };
    let mut out = format!("{}: {standing}\n", detail.task);
    if detail.running {
        let call = detail.call.as_ref();
        let attempt = call
            .map(|c| c.attempt)
            .or(detail.status.as_ref().map(|s| s.attempt));
        if let Some(a) = attempt.filter(|&a| a > 0) {
            out.push_str(&format!(
                "  now       attempt {a}{}\n",
                in_flight(call, detail.waiting_until.as_deref())
            ));
        }
    }
    match &detail.status {
        None => out.push_str("  never run\n"),
        Some(s) => {
            out.push_str(&format!("  state     {}\n", s.state.as_str()));
            if let Some(a) = &s.started_at {
                out.push_str(&format!(
                    "  ran       {a} → {} ({} ms)\n",
                    s.finished_at.as_deref().unwrap_or("…"),
                    s.duration_ms.unwrap_or(0)
                ));
            }
            if let Some(m) = &s.model {
                out.push_str(&format!("  model     {m}\n"));
            }
            if let Some(u) = &s.usage {
                out.push_str(&format!(
                    "  usage     {} tokens ({} in, {} out{}), ${:.4}\n",
                    u.total_tokens,
                    u.prompt_tokens,
                    u.completion_tokens,
                    estimated(u),
                    u.cost_usd
                ));
            }
            for a in &s.attempts {
                out.push_str(&format!(
                    "  attempt   {} {} {} ms: {}{}\n",
                    a.attempt,
                    a.model,
                    a.duration_ms,
                    a.outcome,
                    a.error_id
                        .as_deref()
                        .map(|i| format!(" (error_id {i})"))
                        .unwrap_or_default()
                ));
            }
            if let Some(j) = &s.judge {
                out.push_str(&format!(
                    "  judge     {} scored {:.2} (threshold {:.2}, {}): {}\n",
                    j.model,
                    j.score,
                    j.threshold,
                    if j.passed { "passed" } else { "failed" },
                    j.reason
                ));
            }
            if let Some(e) = &s.error {
                out.push_str(&format!(
                    "  error     {}: {}\n",
                    e.kind,
                    with_error_id(e.message.trim(), e.error_id.as_deref())
                ));
            }
            for (path, st) in &s.inputs {
                out.push_str(&format!(
                    "  input     {path} ({} B, blake3 {})\n",
                    st.size,
                    &st.blake3[..st.blake3.len().min(12)]
                ));
            }
        }
    }
    // Every declared output, as it is now against what the last success
    // recorded.
    for o in &detail.outputs {
        let short = |b: &str| b[..b.len().min(12)].to_string();
        let what = match (&o.recorded, o.size) {
            (_, None) => "missing".to_string(),
            (Some(r), Some(size)) if r.size == size => {
                format!("{size} B, blake3 {}", short(&r.blake3))
            }
            (Some(r), Some(size)) => format!(
                "{size} B now; recorded {} B, blake3 {}",
                r.size,
                short(&r.blake3)
            ),
            (None, Some(size)) => format!("{size} B, not recorded"),
        };
        out.push_str(&format!("  output    {} ({what})\n", o.path));
    }
    out.trim_end().to_string()
}

/// `planexe wait`: blocks until the build running in this directory ends
/// (at once if none runs), prints the status, and exits 0 (completed), 1
/// (failed), 130 (stopped) or 124 (timed out). Reads `.planexe/run.json`
/// only; never takes the lock.
pub fn wait(cli: &Cli, ctx: &Context, args: &WaitArgs, printer: &Printer) -> Result<()> {
    let limit = match &args.timeout {
        None => None,
        Some(t) => Some(duration(t, "--timeout")?),
    };
    let run_dir = super::open(cli, ctx, printer)?.run_dir;
    let started = std::time::Instant::now();
    loop {
        let run = RunRecord::load(&run_dir);
        let last = run.as_ref().and_then(|r| r.builds.last().cloned());
        if !last.as_ref().is_some_and(|b| b.running()) {
            status(
                cli,
                ctx,
                &StatusArgs {
                    task: None,
                    json: false,
                    check: CheckArg::Content,
                    stall_after: "10m".into(),
                },
                printer,
            )?;
            return match last.map(|b| b.outcome) {
                Some(BuildOutcome::Failed) => Err(Error::Outcome(EXIT_FAILED)),
                Some(BuildOutcome::Stopped | BuildOutcome::Running) => {
                    Err(Error::Outcome(EXIT_INTERRUPTED))
                }
                _ => Ok(()),
            };
        }
        if limit.is_some_and(|l| started.elapsed() >= l) {
            printer.note("wait: timed out; the build is still running");
            return Err(Error::Outcome(EXIT_TIMEOUT));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
