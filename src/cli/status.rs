//! `planexe status [TASK] [--json] [--full]` and `planexe wait`: the run
//! at a glance.
//!
//! Without a task name, from the status snapshot when it can be trusted
//! (`observe::status::Saved`): printed as the snapshot holds it rendered
//! when the output is plain (a pipe, a file, no colour), else rendered
//! from its lines; otherwise (or with `--full`) every task is checked.
//! The text is `observe::status::text`'s; `--json` prints the query's
//! document as it is (docs/observability.md). `status TASK` shows one
//! task in full.

use std::time::Duration;

use super::args::{CheckArg, Cli, StatusArgs, WaitArgs};
use super::printer::Printer;
use super::Context;
use crate::error::{Error, Result, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_TIMEOUT};
use crate::model::pipeline::parse_duration;
use crate::model::{Advice, Lists};
use crate::observe::palette::Paint;
use crate::observe::status::text::{held, in_flight};
use crate::observe::status::totals::{cost, estimated};
use crate::observe::status::{self, text, Answer, Known, StatusReport, TaskDetail};
use crate::plan::Session;
use crate::store::record::{with_error_id, with_kind, AttemptRecord, JudgeVerdict};
use crate::store::run_record::{BuildOutcome, LastBuild, RunRecord};
use crate::store::untrusted::{printable, printable_lines};
use crate::store::RunDir;

pub fn status(cli: &Cli, ctx: &Context, args: &StatusArgs, printer: &Printer) -> Result<()> {
    let stall_after = duration(&args.stall_after, "--stall-after")?;
    let check = args.check.into();
    // The hints the build recorded are written for the run directory; from
    // elsewhere (`-C DIR`), their commands get the `-C`, so the snapshot's
    // rendering is not printed as it is.
    let location = ctx.location(cli)?;
    let door = location.advice.clone();
    if args.task.is_none() && !args.full {
        // A warning about the pipeline's choice is for the full path to print.
        let located = location.locate()?;
        if located.warning.is_none() {
            let run = RunRecord::load(&located.run_dir);
            if let Some(saved) = Known::saved(&located, run.as_ref(), check, ctx.env_model()) {
                let mut report =
                    saved.report(&located.run_dir, run.as_ref(), stall_after, ctx.env_model());
                // What the snapshot holds rendered, printed as it is.
                if door.names_run() {
                    // Rendered from its lines below.
                } else if args.json && !printer.stdout_is_terminal() {
                    let mut out = std::io::stdout().lock();
                    if let Some(written) = saved.write_json(&report, &mut out) {
                        return printer.written(written);
                    }
                } else if !args.json && !ctx.stdout_colour() {
                    if let Some(bytes) = saved.text(&report) {
                        return printer.bytes(&bytes);
                    }
                }
                if let Some(lines) = saved.lines() {
                    report.tasks = lines;
                    return show(ctx, report, &door, args, printer);
                }
            }
        }
    }
    let mut once = || {
        // Never freed: the process exits next, and freeing ten thousand
        // records one by one costs more than reading them.
        let session: &Session = Box::leak(Box::new(super::read(cli, ctx, printer, check)?));
        let _t = crate::phases::phase("status: check every task");
        status::query(
            session,
            args.task.as_deref(),
            check,
            stall_after,
            ctx.env_model(),
        )
    };
    let answer = match RunDir::open(&location.run_dir) {
        Ok(run_dir) => status::settled(&run_dir, &mut once)?,
        // The read says what is wrong with it.
        Err(_) => once()?,
    };
    match answer {
        Answer::Run(report) => show(ctx, *report, &door, args, printer),
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

/// `--stall-after` (a duration) or `wait --timeout` (a timeout), named as
/// what it is in its messages.
fn duration(text: &str, flag: &str) -> Result<Duration> {
    let what = if flag == "--timeout" {
        "timeout"
    } else {
        "duration"
    };
    parse_duration(&toml::Value::String(text.to_string()), what).map_err(|m| {
        Error::usage(format!("{flag}: {m}"))
            .hint(format!("pass a duration, such as {flag} 90s or {flag} 10m"))
    })
}

/// Prints `report`, its hints in the words of `door` (with its `-C`).
fn show(
    ctx: &Context,
    mut report: StatusReport,
    door: &Advice,
    args: &StatusArgs,
    printer: &Printer,
) -> Result<()> {
    if door.names_run() {
        let hints = (report.tasks.iter_mut()).filter_map(|line| line.hint.as_mut());
        for text in hints.chain(report.warnings.iter_mut()) {
            *text = door.localize(text).into_owned();
        }
    }
    if args.json {
        printer.json(&report)?;
    } else {
        printer.data(&text::render(
            &report,
            Paint::new(ctx.stdout_colour()),
            args.task.is_some(),
        ));
    }
    Ok(())
}

/// `status TASK`: one task in full. What its records say is printed
/// [`printable`]: a record of an earlier version may hold a server's
/// control characters; and so are paths, which a glob matches in any
/// file's name (an escape sequence, a right-to-left override).
fn one_task(detail: &TaskDetail) -> String {
    let standing = match (&detail.reason, detail.running) {
        (_, true) => "running".to_string(),
        (Some(r), false) => format!("stale: {}", printable(r)),
        (None, false) => "up to date".to_string(),
    };
    let mut out = format!("{}: {standing}\n", detail.task);
    if detail.running {
        let call = detail.call.as_ref();
        let attempt = call
            .map(|c| c.attempt)
            .or(detail.status.as_ref().map(|s| s.attempt));
        let now = in_flight(
            call,
            detail.waiting_until.as_deref(),
            detail.queued.as_ref(),
        );
        match attempt.filter(|&a| a > 0) {
            Some(a) => out.push_str(&format!("  now       attempt {a}{now}\n")),
            // Queued for its first call.
            None if detail.queued.is_some() => {
                out.push_str(&format!("  now       {}\n", now.trim_start_matches(", ")))
            }
            None => {}
        }
    } else if let Some(q) = &detail.queued {
        // Not started: its model's pool is full.
        out.push_str(&format!("  now       not started, {}\n", held(q)));
    }
    match &detail.status {
        None => out.push_str("  never run\n"),
        Some(s) => {
            out.push_str(&format!("  state     {}\n", s.state.as_str()));
            // A run that has not ended has no duration yet.
            match (&s.started_at, &s.finished_at) {
                (Some(a), Some(f)) => out.push_str(&format!(
                    "  ran       {a} → {f} ({} ms)\n",
                    s.duration_ms.unwrap_or(0)
                )),
                (Some(a), None) => out.push_str(&format!("  ran       {a} → …\n")),
                (None, _) => {}
            }
            if let Some(m) = &s.model {
                out.push_str(&format!("  model     {}\n", printable(m)));
            }
            if let Some(u) = &s.usage {
                out.push_str(&format!(
                    "  usage     {} tokens ({} in, {} out{}), {}\n",
                    u.total_tokens,
                    u.prompt_tokens,
                    u.completion_tokens,
                    estimated(u),
                    cost(u)
                ));
            }
            if let Some(j) = &s.judge_usage {
                out.push_str(&format!(
                    "  judging   {} call(s), {} tokens ({} in, {} out{}), {}\n",
                    j.calls,
                    j.usage.total_tokens,
                    j.usage.prompt_tokens,
                    j.usage.completion_tokens,
                    estimated(&j.usage),
                    cost(&j.usage)
                ));
            }
            for a in &s.attempts {
                out.push_str(&attempt_line(a, s.judge.as_ref()));
            }
            if let Some(j) = &s.judge {
                out.push_str(&format!(
                    "  judge     {} scored {:.2} (threshold {:.2}, {}): {}\n",
                    printable(&j.model),
                    j.score,
                    j.threshold,
                    if j.passed { "passed" } else { "failed" },
                    printable(&j.reason)
                ));
            }
            // The output checks of the last run: a failed one of
            // severity warn is a quality warning of a done task.
            for c in &s.checks {
                let verdict = match (c.passed, c.severity) {
                    (true, _) => "passed".to_string(),
                    (false, severity) => format!("failed ({})", severity.as_str()),
                };
                // Its lines (the check's own output follows the first),
                // each under the first, as an error's.
                let why = c
                    .message
                    .as_deref()
                    .map(|m| format!(": {}", under_first(&printable_lines(m.trim()))))
                    .unwrap_or_default();
                out.push_str(&format!(
                    "  check     {} {verdict}{why}\n",
                    printable(&c.name)
                ));
            }
            if let Some(e) = &s.error {
                // Its lines are planexe's (a list's diagnostic, a check's
                // output), each under the first; what a server said in
                // them is escaped.
                let message = with_error_id(
                    &printable_lines(&with_kind(e.kind.as_str(), e.message.trim())),
                    e.error_id.as_deref().map(printable).as_deref(),
                );
                out.push_str(&format!("  error     {}\n", under_first(&message)));
                let printed = text::printed_lines(e.log_tail.as_deref().unwrap_or(""), 10);
                for (i, line) in printed.iter().enumerate() {
                    let label = if i == 0 { "printed" } else { "" };
                    out.push_str(&format!("  {label:9} | {line}\n"));
                }
            }
            for (path, st) in &s.inputs {
                out.push_str(&format!(
                    "  input     {} ({} B, blake3 {})\n",
                    printable(path),
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
        let what = match o.edited {
            true => format!("{what}; edited by hand, kept"),
            false => what,
        };
        out.push_str(&format!("  output    {} ({what})\n", printable(&o.path)));
    }
    out.trim_end().to_string()
}

/// A value of `status TASK` that spans lines: each line after the first
/// indented to stand under it (none can pass for a line of planexe's).
fn under_first(text: &str) -> String {
    text.replace('\n', "\n            ")
}

/// How long `wait` looks for a build to start in a run where none has.
const NEVER_BUILT_GRACE: Duration = Duration::from_secs(1);

/// `planexe wait`: blocks until the build running in this directory ends
/// (at once if none runs), prints the status, and exits 0 (completed), 1
/// (failed), 130 (stopped), 124 (timed out) or 2 (no build ever ran). Reads `.planexe/run.json`
/// and who holds the lock; never takes it.
pub fn wait(cli: &Cli, ctx: &Context, args: &WaitArgs, printer: &Printer) -> Result<()> {
    let limit = match &args.timeout {
        None => None,
        Some(t) => Some(duration(t, "--timeout")?),
    };
    // The pipeline is read (a broken one is an error), not judged.
    let location = ctx.location(cli)?;
    let door = location.advice.clone();
    let located = location.locate()?;
    if let Some(warning) = &located.warning {
        printer.warn(warning);
    }
    let run_dir = Session::open(located, &ctx.model(None), Lists::Unproduced)?.run_dir;
    let started = std::time::Instant::now();
    loop {
        let last = LastBuild::now(&run_dir, RunRecord::load(&run_dir).as_ref());
        // A build that holds the lock but has not recorded its start yet
        // runs too: its `run.json` entry follows in a moment.
        let running = last.running().is_some() || run_dir.build_holds_lock();
        // A build started in the background just before (`planexe build &
        // planexe wait`) may not hold the lock yet: a moment is given.
        if !running && last.entry().is_none() && started.elapsed() < NEVER_BUILT_GRACE {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        if !running {
            status(
                cli,
                ctx,
                &StatusArgs {
                    task: None,
                    json: false,
                    check: CheckArg::Content,
                    stall_after: "10m".into(),
                    full: false,
                },
                printer,
            )?;
            return match last.entry().map(|b| b.outcome) {
                Some(BuildOutcome::Failed) => Err(Error::Outcome(EXIT_FAILED)),
                Some(BuildOutcome::Stopped | BuildOutcome::Running) => {
                    Err(Error::Outcome(EXIT_INTERRUPTED))
                }
                Some(BuildOutcome::Completed) => Ok(()),
                // No outcome to give: 0 would pass for a completed build
                // (`planexe wait && publish` in a script).
                None => Err(Error::usage(format!(
                    "no build has run in {}: there is nothing to wait for",
                    run_dir.root().display()
                ))
                .hint(format!("start one: {}", door.command("build")))),
            };
        }
        if limit.is_some_and(|l| started.elapsed() >= l) {
            printer.note("wait: timed out; the build is still running");
            return Err(Error::Outcome(EXIT_TIMEOUT));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One model call of `status TASK`: a judge's call says so, and the score
/// it gave against the threshold of `verdict` (the judge's last).
fn attempt_line(a: &AttemptRecord, verdict: Option<&JudgeVerdict>) -> String {
    let mut outcome = printable(&a.outcome).into_owned();
    if let Some(score) = a.score {
        outcome.push_str(&format!(", scored {score:.2}"));
        match verdict {
            Some(v) if score >= v.threshold => outcome.push_str(" (passed)"),
            Some(v) => outcome.push_str(&format!(" (below the threshold {:.2})", v.threshold)),
            None => {}
        }
    }
    format!(
        "  attempt   {} {}{} {} ms: {outcome}{}\n",
        a.attempt,
        if a.judge { "judge " } else { "" },
        printable(&a.model),
        a.duration_ms,
        a.error_id
            .as_deref()
            .map(|i| format!(" (error_id {})", printable(i)))
            .unwrap_or_default()
    )
}
