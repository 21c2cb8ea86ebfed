//! `planexe check [TASK...]`: runs tasks' output checks again on their
//! current outputs and says, one line per task on stdout, what they think:
//! `ok TASK`, `warn TASK: message`, `FAILED TASK: message`. Changes no
//! output and no record. Exit status 1 when an error-severity check
//! fails.

use super::args::{CheckArgs, Cli};
use super::printer::Printer;
use super::Context;
use crate::error::{Error, Result};
use crate::exec::checks;
use crate::store::record::first_line;

pub fn check(cli: &Cli, ctx: &Context, args: &CheckArgs, printer: &Printer) -> Result<()> {
    let session = super::open(cli, ctx, printer)?;
    let rechecked = checks::recheck(&session, ctx.env(), &args.tasks)?;
    let mut failed = false;
    for r in &rechecked {
        let line = if let Some(e) = &r.judgement.error {
            failed = true;
            format!("FAILED {}: {}", r.task, first_line(&e.message))
        } else if let Some(w) = r.judgement.warnings().next() {
            let message = w.message.as_deref().unwrap_or("failed");
            format!("warn {}: {}", r.task, first_line(message))
        } else {
            format!("ok {}", r.task)
        };
        printer.data(&line);
    }
    if rechecked.is_empty() {
        printer.note("no done task has a check or a min_bytes above 0");
    }
    if failed {
        return Err(Error::Outcome(crate::error::EXIT_FAILED));
    }
    Ok(())
}
