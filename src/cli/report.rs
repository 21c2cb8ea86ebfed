//! `planexe report [--format html|junit] [-o FILE]`: writes the HTML
//! report (or the run as JUnit XML, `observe::junit`) to FILE (relative to
//! the current directory, like `-f`): atomically over a regular file (or a
//! new one), in place into anything else that is not a folder (a device, a
//! FIFO), so that `-o /dev/stdout` works and a device is never replaced.
//! `-o -` writes it on stdout instead, as `-` means for other tools (a
//! file named `-` is `-o ./-`).
//! A write that fails is an error naming the file. The page says where
//! each task stands as `status` does: it is given `status`'s answer,
//! from the same session kind (`super::read`).

use std::io::Write;

use super::args::{Cli, ReportArgs, ReportFormat};
use super::printer::Printer;
use super::Context;
use crate::error::{Error, Result};
use crate::exec::env;
use crate::observe::{junit, report, status};
use crate::plan::Session;
use crate::store::{files, wrong_kind, CheckMode};

pub fn report(cli: &Cli, ctx: &Context, args: &ReportArgs, printer: &Printer) -> Result<()> {
    // The log lines shown are scrubbed as the build scrubs what it prints.
    let secrets = |session: &Session| env::secrets_of(&session.graph, &ctx.scrubbing_env());
    let (text, default) = match args.format {
        ReportFormat::Html => {
            // Where each task stands, as `status` says (from its snapshot
            // when it may, else checked in the session it would open).
            let session = super::read(cli, ctx, printer, CheckMode::Content)?;
            let located = ctx.location(cli)?.locate()?;
            let stall_after = std::time::Duration::from_secs(600);
            let status = status::of_run(
                &located,
                CheckMode::Content,
                stall_after,
                ctx.env_model(),
                || Ok::<_, Error>(&session),
            )?;
            let html = report::html(&session, &status, &secrets(&session))?;
            (html, "report.html")
        }
        ReportFormat::Junit => {
            let session = super::open(cli, ctx, printer)?;
            let gathered = junit::gather(&session, CheckMode::Content, &secrets(&session))?;
            (junit::render(&gathered), "junit.xml")
        }
    };
    if args.output.as_deref() == Some(std::path::Path::new("-")) {
        return printer.bytes(text.as_bytes());
    }
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| std::path::PathBuf::from(default));
    let cwd = std::env::current_dir().map_err(|e| Error::io_at(std::path::Path::new("."), e))?;
    let target = cwd.join(&output);
    if let Some(blocked) = wrong_kind::blocked(&target, &output) {
        return Err(Error::usage(format!(
            "cannot write the report to {}: {blocked}",
            output.display()
        ))
        .hint(wrong_kind::hint(&output.display().to_string())));
    }
    match std::fs::metadata(&target) {
        Ok(meta) if meta.is_dir() => {
            return Err(Error::usage(format!(
                "cannot write the report to {}: it is a folder",
                output.display()
            ))
            .hint(format!("name a file with -o, such as -o {default}")))
        }
        // A device or a FIFO: write into it, never over it.
        Ok(meta) if !meta.is_file() => {
            let mut file = fs_err::OpenOptions::new().write(true).open(&target)?;
            file.write_all(text.as_bytes())?;
            file.flush()?;
        }
        _ => files::write_atomic(&target, text.as_bytes())?,
    }
    printer.note(&format!("wrote {}", output.display()));
    Ok(())
}
