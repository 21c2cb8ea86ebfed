//! `planexe clean`: list what tasks produced, ask on a terminal (without
//! one, `-y` is needed), and delete it. The list is the user's outputs and
//! the tasks' records; planexe's internal files that go with them (spares,
//! the certificate) are counted, not listed.

use std::io::{BufRead, IsTerminal, Write};

use super::args::{CleanArgs, Cli};
use super::printer::Printer;
use super::Context;
use crate::error::{Error, Result};
use crate::exec::clean::{CleanPlan, Selection};

pub fn clean(cli: &Cli, ctx: &Context, args: &CleanArgs, printer: &Printer) -> Result<()> {
    // A `+` recipe runs under `make -n`: it lists, as `--dry-run`.
    let make = ctx.makeflags().changes_nothing();
    if let Some(flag) = make.filter(|_| !args.dry_run) {
        printer.note(&format!(
            "{flag}: planexe clean deletes nothing; it lists what it would delete"
        ));
    }
    let dry_run = args.dry_run || make.is_some();
    // A list for `xargs -0` of files that are being deleted would name
    // files already gone: as `find -print0`, it is a listing's.
    if args.print0 && !dry_run {
        return Err(
            Error::usage("--print0 lists what clean would delete: it needs --dry-run")
                .hint("planexe clean --dry-run --print0 TASK... | xargs -0 ..."),
        );
    }
    let (mut session, _lock) = if dry_run {
        (super::open(cli, ctx, printer)?, None)
    } else {
        let (session, lock) = super::open_locked(cli, ctx, printer, "clean", args.no_wait)?;
        (session, Some(lock))
    };
    let selection = if args.all {
        Selection::All
    } else {
        Selection::Tasks {
            names: args.tasks.clone(),
            downstream: args.downstream,
        }
    };
    let plan = CleanPlan::new(&session, &selection)?;
    for (path, task) in &plan.kept {
        printer.note(&format!(
            "keeping {path}: {task} wrote it, but no task writes it now and the pipeline reads it: it is a source file"
        ));
    }
    for (path, task) in &plan.given {
        printer.note(&format!(
            "keeping {path}: the run was given it when it was made (planexe new --input, or run_create's files); {task} names it as an output but never wrote it"
        ));
    }
    // Internal files alone (a spare left beside a sidecar already gone)
    // are nothing the user asked about.
    if plan.files.is_empty() {
        printer.note("nothing to clean");
        if !dry_run {
            recover(&mut session, printer);
            plan.apply(&mut session)?;
        }
        return Ok(());
    }
    if args.print0 {
        let listed: String = plan
            .files
            .iter()
            .map(|(shown, _)| format!("{shown}\0"))
            .collect();
        printer.bytes(listed.as_bytes())?;
    } else {
        for (shown, _) in &plan.files {
            printer.data(shown);
        }
    }
    if dry_run {
        printer.note(&format!("would delete {}", count(&plan)));
        return Ok(());
    }
    if !args.yes && !confirm(plan.files.len())? {
        printer.note("nothing deleted");
        return Ok(());
    }
    recover(&mut session, printer);
    plan.apply(&mut session)?;
    printer.note(&format!("deleted {}", count(&plan)));
    Ok(())
}

/// Puts right what a crashed build left (see [`super::recover`]); clean
/// works on a full disk, so a recovery that cannot write is a warning,
/// and the next build tries again (unless the run was forgotten).
fn recover(session: &mut crate::plan::Session, printer: &Printer) {
    if let Err(e) = super::recover(session, printer) {
        printer.warn(&format!(
            "could not put right what the last build, which was killed, left: {e}"
        ));
    }
}

/// `N file(s)`, and how many of planexe's internal files go with them.
fn count(plan: &CleanPlan) -> String {
    match plan.internal.len() {
        0 => format!("{} file(s)", plan.files.len()),
        n => format!(
            "{} file(s), and {n} internal file(s) of planexe's own",
            plan.files.len()
        ),
    }
}

/// Asks on the terminal; refuses without one.
fn confirm(files: usize) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::usage(format!(
            "clean would delete {files} file(s) and needs confirmation, but stdin is not a terminal"
        ))
        .hint("pass -y to delete without asking, or --dry-run to only list"));
    }
    Ok(ask("Proceed? [y/N] ", false))
}

/// Asks `question` on stderr and reads a line from stdin: yes or no, and
/// `default` for an empty line. End of input is no. The caller made sure
/// stdin is a terminal.
pub(super) fn ask(question: &str, default: bool) -> bool {
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if !matches!(std::io::stdin().lock().read_line(&mut answer), Ok(n) if n > 0) {
        return false;
    }
    match answer.trim() {
        "" => default,
        a => matches!(a, "y" | "Y" | "yes" | "YES" | "Yes"),
    }
}
