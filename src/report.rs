//! `planexe report`: one self-contained HTML page of the run.

use crate::cli::{Cli, ReportArgs};
use crate::error::Result;
use crate::printer::Printer;

pub fn report(_cli: &Cli, _args: &ReportArgs, _printer: &Printer) -> Result<()> {
    Err(crate::error::Error::usage("report: being written"))
}
