//! `planexe init [DIR]`: a small pipeline that builds as it stands, to
//! start from. Writes `pipeline.toml` (a command task and two prompt
//! tasks), `prompts/summary.md`, `schemas/steps.json` (bounded, so
//! constrained decoding ends) and an example `plan.txt`, from the
//! templates in `src/cli/init/`.
//!
//! Never overwrites: when any of the files exists, nothing is written.

use std::io::Write;
use std::path::Path;

use super::args::{Cli, InitArgs};
use super::printer::Printer;
use crate::error::{Error, Result};

// ---------------------------------------------------------------------------
// TODO(replay): the default model of the starter pipeline's prompt tasks.
//
// Until `provider = "replay"` exists, `planexe init` points the prompt tasks
// at a local OpenAI-compatible server (llama.cpp's llama-server with SmolLM2
// on port 8080), so a full `planexe build` of a fresh `init` needs that
// server; `planexe build -n` and `planexe build stats` need nothing.
//
// When the replay model is merged, switch these two constants to it (name
// and `[models.NAME]` table, with its comment), so that `planexe init &&
// planexe build` works with no network and no API key, and add the full
// build test to tests/integration/new_init.rs.
// ---------------------------------------------------------------------------

/// The name of the starter pipeline's default model (`[pipeline].model`).
const DEFAULT_MODEL_NAME: &str = "local";

/// The `[models.NAME]` table of [`DEFAULT_MODEL_NAME`], as TOML.
const DEFAULT_MODEL_TABLE: &str = r#"# The model the prompt tasks ask: an OpenAI-compatible server on this
# machine (llama.cpp's llama-server, LM Studio, Ollama, vLLM) serving
# SmolLM2. Temperature 0 and a fixed seed make its answers repeatable;
# max_tokens bounds every answer.
[models.local]
provider = "openai"
base_url = "http://127.0.0.1:8080/v1"
model = "smollm2"
temperature = 0
seed = 1
max_tokens = 512
max_concurrency = 1
"#;

// ---------------------------------------------------------------------------

/// The pipeline template: `@MODEL_NAME@` and `@MODEL_TABLE@` are replaced
/// by the constants above.
const PIPELINE: &str = include_str!("init/pipeline.toml");

/// The files `init` writes, relative to DIR, and their text.
fn files() -> [(&'static str, String); 4] {
    [
        ("pipeline.toml", pipeline()),
        (
            "prompts/summary.md",
            include_str!("init/summary.md").to_string(),
        ),
        (
            "schemas/steps.json",
            include_str!("init/steps.json").to_string(),
        ),
        ("plan.txt", include_str!("init/plan.txt").to_string()),
    ]
}

/// The starter pipeline file, with its default model filled in.
fn pipeline() -> String {
    PIPELINE
        .replace("@MODEL_NAME@", DEFAULT_MODEL_NAME)
        .replace("@MODEL_TABLE@", DEFAULT_MODEL_TABLE.trim_end())
}

pub fn init(cli: &Cli, args: &InitArgs, printer: &Printer) -> Result<()> {
    if cli.file.is_some() {
        return Err(
            Error::usage("`planexe init` writes pipeline.toml; -f is not used")
                .hint("run `planexe init [DIR]`, then `planexe build -C DIR`"),
        );
    }
    let named = match (&args.dir, &cli.directory) {
        (Some(_), Some(_)) => {
            return Err(Error::usage("`planexe init` got both DIR and -C DIR")
                .hint("name the folder once: `planexe init DIR`"))
        }
        (Some(dir), None) | (None, Some(dir)) => Some(dir.clone()),
        (None, None) => None,
    };
    let cwd = std::env::current_dir().map_err(|e| Error::io_at(Path::new("."), e))?;
    let dir = named.as_ref().map_or_else(|| cwd.clone(), |d| cwd.join(d));
    let shown = |rel: &str| match &named {
        Some(d) => d.join(rel).display().to_string(),
        None => rel.to_string(),
    };

    if let Ok(meta) = std::fs::metadata(&dir) {
        if !meta.is_dir() {
            return Err(Error::usage(format!(
                "cannot write a pipeline in {}: it is not a folder",
                dir.display()
            ))
            .hint("name a folder (it is made if missing): `planexe init DIR`"));
        }
    }
    let files = files();
    // Every file is checked before any is written.
    let existing: Vec<String> = files
        .iter()
        .filter(|(rel, _)| std::fs::symlink_metadata(dir.join(rel)).is_ok())
        .map(|(rel, _)| shown(rel))
        .collect();
    if !existing.is_empty() {
        return Err(Error::usage(format!(
            "{} already exist{}; `planexe init` overwrites nothing, so it wrote nothing",
            existing.join(", "),
            if existing.len() == 1 { "s" } else { "" }
        ))
        .hint("run `planexe init DIR` with a new folder, or move the file(s) away"));
    }

    for (rel, text) in &files {
        let path = dir.join(rel);
        write_new(&path, text.as_bytes())?;
        printer.data(&shown(rel));
    }
    let at = match &named {
        Some(d) => {
            let d = d.display().to_string();
            let quoted = shlex::try_quote(&d).map_or_else(|_| d.clone(), |q| q.into());
            format!(" -C {quoted}")
        }
        None => String::new(),
    };
    printer.note(&format!(
        "wrote a starter pipeline ({} files); next:",
        files.len()
    ));
    printer.note(&format!(
        "  planexe build{at} -n     # what would run, and why"
    ));
    printer.note(&format!(
        "  planexe build{at} stats  # the command task (no model needed)"
    ));
    printer.note(&format!(
        "  planexe build{at}        # everything: the prompt tasks ask the model in pipeline.toml"
    ));
    printer.note(&format!(
        "  planexe status{at}       # where each task stands"
    ));
    Ok(())
}

/// Writes a file that must not exist yet, making its folder.
fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs_err::create_dir_all(parent)?;
    }
    let mut file = fs_err::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all(bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_has_no_marker_left() {
        let text = pipeline();
        assert!(!text.contains('@'), "{text}");
        assert!(text.contains(&format!("[models.{DEFAULT_MODEL_NAME}]")));
    }

    #[test]
    fn every_file_ends_with_a_newline() {
        for (rel, text) in files() {
            assert!(text.ends_with('\n'), "{rel}");
        }
    }
}
