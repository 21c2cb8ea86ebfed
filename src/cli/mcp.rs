//! `planexe mcp [--root DIR]`: the MCP server on this process's stdin and
//! stdout. What belongs to the process is read here (the current
//! directory, the environment, this binary's path) and handed to
//! [`crate::mcp::serve`]; nothing is printed on stdout, which is the
//! protocol's.

use std::path::Path;

use super::args::{Cli, McpArgs};
use super::Context;
use crate::error::{Error, Result};
use crate::mcp::{self, Config};

pub fn mcp(cli: &Cli, ctx: &Context, args: &McpArgs) -> Result<()> {
    if cli.directory.is_some() {
        return Err(
            Error::usage("`planexe mcp` serves the runs under --root DIR, not -C")
                .hint("run `planexe mcp --root DIR`"),
        );
    }
    let cwd = std::env::current_dir().map_err(|e| Error::io_at(Path::new("."), e))?;
    let root = match &args.root {
        Some(dir) => cwd.join(dir),
        None => cwd.clone(),
    };
    let exe = std::env::current_exe().map_err(|e| {
        Error::usage(format!("cannot tell where the planexe binary is: {e}"))
            .hint("builds are started with this binary; run planexe by its full path")
    })?;
    // New runs' pipeline, and that of runs that record none: -f, else
    // $PLANEXE_PIPELINE, else ROOT/pipeline.toml.
    let pipeline = match (&cli.file, &ctx.pipeline) {
        (Some(f), _) | (None, Some(f)) => (cwd.join(f), f.display().to_string()),
        (None, None) => (root.join("pipeline.toml"), "pipeline.toml".to_string()),
    };
    let config = Config {
        root,
        exe,
        pipeline,
        env_model: ctx.env_model().map(str::to_string),
        // What read_output returns is scrubbed of the webhook's token, as
        // of the API keys.
        env: ctx.scrubbing_env(),
    };
    mcp::serve(config, std::io::stdin().lock(), std::io::stdout())
}
