//! `planexe report [-o FILE]`: writes the HTML report to FILE (relative to
//! the current directory, like `-f`): atomically over a regular file (or a
//! new one), in place into anything else that is not a folder (a device, a
//! FIFO), so that `-o /dev/stdout` works and a device is never replaced.
//! A write that fails is an error naming the file.

use std::io::Write;

use super::args::{Cli, ReportArgs};
use super::printer::Printer;
use super::Context;
use crate::error::{Error, Result};
use crate::observe::report;
use crate::store::files;

pub fn report(cli: &Cli, ctx: &Context, args: &ReportArgs, printer: &Printer) -> Result<()> {
    let session = super::open(cli, ctx, printer)?;
    let html = report::html(&session)?;
    let cwd = std::env::current_dir().map_err(|e| Error::io_at(std::path::Path::new("."), e))?;
    let target = cwd.join(&args.output);
    match std::fs::metadata(&target) {
        Ok(meta) if meta.is_dir() => {
            return Err(Error::usage(format!(
                "cannot write the report to {}: it is a folder",
                args.output.display()
            ))
            .hint("name a file with -o, such as -o report.html"))
        }
        // A device or a FIFO: write into it, never over it.
        Ok(meta) if !meta.is_file() => {
            let mut file = fs_err::OpenOptions::new().write(true).open(&target)?;
            file.write_all(html.as_bytes())?;
            file.flush()?;
        }
        _ => files::write_atomic(&target, html.as_bytes())?,
    }
    printer.note(&format!("wrote {}", args.output.display()));
    Ok(())
}
