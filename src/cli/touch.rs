//! `planexe touch TASK... [--downstream] [--no-check]`: accept tasks'
//! current outputs (and, with `--downstream`, those of every task depending
//! on them) as done, once their checks accept them; says which tasks it touched, the
//! warnings of their checks, and the judges it did not ask.

use super::args::{Cli, TouchArgs};
use super::printer::Printer;
use super::Context;
use crate::error::Result;
use crate::exec::touch::{self, Checking, Touched};
use crate::exec::{Env, Interrupt};
use crate::model::advice::{self, Advice};

pub fn touch(cli: &Cli, ctx: &Context, args: &TouchArgs, printer: &Printer) -> Result<()> {
    // A `+` recipe runs under `make -n`: it names what it would touch.
    if let Some(flag) = ctx.makeflags().changes_nothing() {
        let session = super::open(cli, ctx, printer)?;
        let tasks = named(&session, args)?;
        let names: Vec<&str> = tasks
            .iter()
            .map(|&t| session.graph[t].name.as_str())
            .collect();
        printer.note(&format!(
            "{flag}: planexe touch changes nothing; it would touch {}",
            names.join(", ")
        ));
        return Ok(());
    }
    let (mut session, _lock) = super::open_locked(cli, ctx, printer, "touch", args.no_wait)?;
    let interrupt = Interrupt::signals();
    let env = ctx.scrubbing_env();
    let checking = checking(&env, args.no_check, &interrupt);
    let ids = named(&session, args)?;
    // Once the names are known good: a typo changes nothing.
    super::recover(&mut session, printer)?;
    for touched in touch::touch_tasks(&mut session, &ids, checking)? {
        printer.note(&format!("touched {}", touched.task));
        report(&touched, session.advice(), printer);
    }
    stale_upstream(&session, &ids, printer)
}

/// How many stale upstream tasks a touch warns of by name.
const STALE_SHOWN: usize = 5;

/// Warns of the stale tasks upstream of the touched ones: the next build
/// runs them, and then the touched tasks again if what they read changes,
/// which the touch did not prevent.
fn stale_upstream(
    session: &crate::plan::Session,
    ids: &[crate::model::TaskId],
    printer: &Printer,
) -> Result<()> {
    // The touch is recorded by now: a judgement that fails is said, and
    // the command still succeeds, as it did.
    let (stale, all) = match touch::stale_upstream(session, ids, STALE_SHOWN) {
        Ok(found) => found,
        Err(e) => {
            printer.warn(&format!(
                "could not judge the tasks upstream of what was touched: {e}"
            ));
            return Ok(());
        }
    };
    let door = session.advice();
    for up in &stale {
        let task = &up.task;
        let touched = listed(&up.touched);
        printer.warn(&format!(
            "{task}, upstream of {touched}, is stale ({}): the next build runs it, then {touched} again \
             if {task}'s outputs change; `{}` keeps {touched} (or touch {touched} after \
             building {task})",
            up.reason,
            door.command(&format!("touch {} --downstream", advice::quoted(task))),
        ));
    }
    if all > stale.len() {
        printer.warn(&format!(
            "and {} more stale task(s) upstream of what was touched (`{}` lists them)",
            all - stale.len(),
            door.command("build -n"),
        ));
    }
    Ok(())
}

/// `a`, `a and b`, or the first three and how many more.
fn listed(names: &[String]) -> String {
    match names {
        [one] => one.clone(),
        [a, b] => format!("{a} and {b}"),
        [a, b, c] => format!("{a}, {b} and {c}"),
        [a, b, c, rest @ ..] => format!("{a}, {b}, {c} and {} more", rest.len()),
        [] => String::new(),
    }
}

/// The tasks named, with `--downstream` every task depending on them.
fn named(session: &crate::plan::Session, args: &TouchArgs) -> Result<Vec<crate::model::TaskId>> {
    if args.downstream {
        touch::downstream(session, &args.tasks)
    } else {
        touch::named(session, &args.tasks)
    }
}

/// How a touch (`touch`, `edit --keep`) checks the outputs.
/// Its check commands get `env` (the environment builds run in), whose
/// secrets no message of theirs shows.
pub fn checking<'a>(env: &'a Env, no_check: bool, interrupt: &'a Interrupt) -> Checking<'a> {
    if no_check {
        Checking::Skip
    } else {
        Checking::Run { env, interrupt }
    }
}

/// The warnings of a touched task's checks, the files the run was given
/// that it now records as its outputs, and its judge not asked.
pub fn report(touched: &Touched, door: &Advice, printer: &Printer) {
    let task = &touched.task;
    for warning in &touched.warnings {
        let message = warning.message.as_deref().unwrap_or("failed");
        printer.warn(&format!(
            "{task}: {}: {message} (severity warn: touched all the same)",
            warning.name
        ));
    }
    for path in &touched.given {
        printer.warn(&format!(
            "{task}: {path} is a file the run was given when it was made; touched, it is recorded as {task}'s output, which a later run of {task} replaces"
        ));
    }
    if touched.unjudged {
        printer.note(&format!(
            "{task}: its judge was not run (touch asks no model); `{}` has it score the outputs",
            door.command(&format!("check {}", advice::quoted(task)))
        ));
    }
}
