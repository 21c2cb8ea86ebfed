//! `planexe report [-o FILE]`: writes the HTML report, atomically, to FILE
//! (relative to the current directory, like `-f`).

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
    files::write_atomic(&cwd.join(&args.output), html.as_bytes())?;
    printer.note(&format!("wrote {}", args.output.display()));
    Ok(())
}
