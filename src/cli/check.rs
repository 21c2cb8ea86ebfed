//! `planexe check [TASK...]`: runs tasks' output checks (`min_bytes`, a
//! prompt task's answer format and schema, `check`, the judge) again on
//! their current outputs and says, one line per task on stdout, what they
//! think: `ok TASK`, `warn TASK: message`, `FAILED TASK: message`. Changes
//! no output and no record. Exit status 1 when an error-severity check
//! fails, 130 when stopped.

use super::args::{CheckArgs, Cli};
use super::printer::Printer;
use super::Context;
use crate::error::{Error, Result};
use crate::exec::recheck::recheck;
use crate::exec::Interrupt;
use crate::model::Lists;
use crate::plan::Session;
use crate::store::record::first_line;
use crate::store::ErrorKind;

pub fn check(cli: &Cli, ctx: &Context, args: &CheckArgs, printer: &Printer) -> Result<()> {
    let answers = super::answers::answers(&args.answers)?;
    super::answers::make_answer_store(&answers)?;
    let located = ctx.location(cli)?.locate()?;
    if let Some(warning) = &located.warning {
        printer.warn(warning);
    }
    let session = Session::open(located, &ctx.model(args.model.as_deref()), Lists::Present)?;
    super::answers::make_pipeline_cache(&session, &answers)?;
    let interrupt = Interrupt::signals();
    let env = ctx.scrubbing_env();
    let rechecked = recheck(&session, &env, &args.tasks, answers, interrupt.clone())?;
    let mut failed = false;
    let mut stopped = false;
    for r in &rechecked {
        let j = &r.judgement;
        let score = j
            .verdict
            .as_ref()
            .map(|v| format!(" (judge {:.2})", v.score))
            .unwrap_or_default();
        let line = if let Some(e) = &j.error {
            failed = true;
            stopped |= e.kind == ErrorKind::Stopped;
            format!("FAILED {}: {}", r.task, first_line(&e.message))
        } else if let Some(w) = j.warnings().next() {
            let message = w.message.as_deref().unwrap_or("failed");
            format!("warn {}: {}: {}", r.task, w.name, first_line(message))
        } else if let Some(v) = j.verdict.as_ref().filter(|v| !v.passed) {
            let message = crate::exec::llm::rejection(v);
            format!("warn {}: judge: {}", r.task, first_line(&message))
        } else {
            format!("ok {}{score}", r.task)
        };
        printer.data(&line);
    }
    if rechecked.is_empty() {
        // Nothing to check: no task has anything to check, or none that
        // has is done yet (a task named is checked whatever its state).
        let checked =
            |t: &crate::model::Task| t.checks.any() || crate::exec::recheck::answers_json(t);
        let note = if !session.graph.tasks().any(checked) {
            "no task has a check, a judge, a min_bytes above 0 or a JSON answer".to_string()
        } else {
            format!(
                "no task with a check, a judge, a min_bytes above 0 or a JSON answer is done yet: build first ({}), then check what it made",
                session.advice().command("build")
            )
        };
        printer.note(&note);
    }
    if stopped || interrupt.requested() {
        return Err(Error::Interrupted);
    }
    if failed {
        return Err(Error::Outcome(crate::error::EXIT_FAILED));
    }
    Ok(())
}
