//! `planexe init [DIR]`: a small pipeline that builds as it stands, to
//! start from. Writes `pipeline.toml` (a command task and two prompt
//! tasks), `prompts/summary.md`, `schemas/steps.json` (bounded, so
//! constrained decoding ends), an example `plan.txt` and, in
//! `responses/`, the answers a local model gave to its prompt tasks, which
//! the pipeline's default model replays: it builds with no network and no
//! key. From the templates in `src/cli/init/`.
//!
//! Never overwrites: when any of the files exists, nothing is written.

use std::io::Write;
use std::path::Path;

use super::args::{Cli, InitArgs};
use super::printer::Printer;
use crate::error::{Error, Result};
use crate::store::wrong_kind;

const PIPELINE: &str = include_str!("init/pipeline.toml");

/// The files `init` writes, relative to DIR, and their text.
fn files() -> Vec<(&'static str, String)> {
    vec![
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
        // The answers of `local` to the two prompt tasks, recorded from
        // SmolLM2 on llama.cpp: `planexe build` replays them.
        (
            "responses/2accf840d8027f3d84ee11d1b397d65fa5db4360cf9340a2c49bee0b47fb8085.json",
            include_str!("init/responses/2accf840d8027f3d84ee11d1b397d65fa5db4360cf9340a2c49bee0b47fb8085.json").to_string(),
        ),
        (
            "responses/b09a03b6141d7ff4f7c82a16e571be610595d8f0fe1ff2d962f3ed1dddab2463.json",
            include_str!("init/responses/b09a03b6141d7ff4f7c82a16e571be610595d8f0fe1ff2d962f3ed1dddab2463.json").to_string(),
        ),
    ]
}

fn pipeline() -> String {
    PIPELINE.to_string()
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

    if let Some(blocked) = wrong_kind::blocked(&dir, named.as_deref().unwrap_or(Path::new("."))) {
        return Err(Error::usage(format!(
            "cannot write a pipeline in {}: {blocked}",
            dir.display()
        ))
        .hint("name a folder (it is made if missing): `planexe init DIR`"));
    }
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
        "  planexe build{at}        # everything, from the recorded answers in responses/"
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
    fn the_pipeline_defaults_to_its_recorded_answers() {
        let text = pipeline();
        assert!(text.contains("model = \"recorded\""), "{text}");
        assert!(
            text.contains("[models.recorded]\nprovider = \"replay\""),
            "{text}"
        );
    }

    #[test]
    fn every_file_ends_with_a_newline() {
        for (rel, text) in files() {
            assert!(text.ends_with('\n'), "{rel}");
        }
    }
}
