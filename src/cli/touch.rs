//! `planexe touch TASK...`: accept tasks' current outputs as done.

use super::args::{Cli, TouchArgs};
use super::printer::Printer;
use super::Context;
use crate::error::Result;
use crate::exec::touch;

pub fn touch(cli: &Cli, ctx: &Context, args: &TouchArgs, printer: &Printer) -> Result<()> {
    let mut session = super::open(cli, ctx, printer)?;
    let _lock = session.run_dir.lock("touch")?;
    for name in touch::touch(&mut session, &args.tasks)? {
        printer.note(&format!("touched {name}"));
    }
    Ok(())
}
