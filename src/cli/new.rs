//! `planexe new RUN_DIR (--plan TEXT | --plan-file FILE) [--input PATH]...
//! [-f PIPELINE]`: one more run of a pipeline. Makes a fresh run
//! directory, seeds it with `plan.txt` and the `--input` files and records
//! the pipeline file there, so that a plain `planexe build -C RUN_DIR`
//! builds it.
//!
//! The checks of the plan (not empty, UTF-8 text) and of the `--input`
//! files (relative paths inside the current folder, regular files) are
//! here; making the run, and every check of the directory and the
//! pipeline (and that no input is a task's output, or one a fan-out's
//! instance may write), is [`new_run::create`]'s.

use std::path::Path;

use super::args::{Cli, NewArgs};
use super::printer::Printer;
use super::Context;
use crate::error::{Error, Result};
use crate::exec::new_run::{self, Seed, PLAN};
use crate::model::limits::{self, ReadError};
use crate::model::Advice;
use crate::store::wrong_kind;

/// The most outputs listed as where the results will be.
const SHOWN_RESULTS: usize = 5;

pub fn new(cli: &Cli, ctx: &Context, args: &NewArgs, printer: &Printer) -> Result<()> {
    if cli.directory.is_some() {
        return Err(
            Error::usage("`planexe new` takes the run directory as its argument, not -C")
                .hint("run `planexe new RUN_DIR --plan TEXT`, then `planexe build -C RUN_DIR`"),
        );
    }
    let cwd = std::env::current_dir().map_err(|e| Error::io_at(Path::new("."), e))?;
    let shown_dir = args.run_dir.display().to_string();
    let run_dir = cwd.join(&args.run_dir);
    let plan = plan_text(args, &cwd)?;
    let seeds = input_files(&args.inputs, &cwd)?;

    // The pipeline: -f, else $PLANEXE_PIPELINE, else ./pipeline.toml (the
    // order a build in a fresh run directory follows, from here).
    let pipeline = match (&cli.file, &ctx.pipeline) {
        (Some(f), _) | (None, Some(f)) => (cwd.join(f), f.display().to_string()),
        (None, None) => (cwd.join("pipeline.toml"), "pipeline.toml".to_string()),
    };
    let session = new_run::create(
        &run_dir,
        &shown_dir,
        &plan,
        &seeds,
        pipeline,
        Advice::COMMAND_LINE,
    )?;

    let pipeline_shown = session.pipeline.path.display().to_string();
    if !new_run::reads_plan(&session) {
        printer.warn(&format!(
            "no task of {pipeline_shown} reads {PLAN}; a run's tasks take their plan from \
             {PLAN} in the run directory (inputs = [\"{PLAN}\"])"
        ));
    }
    for seed in seeds.iter().filter(|s| !new_run::reads(&session, &s.path)) {
        printer.warn(&format!(
            "no task of {pipeline_shown} reads {} (copied into the run with --input): a task \
             reads the files its inputs name",
            seed.path
        ));
    }
    let quoted = shlex::try_quote(&shown_dir).map_or_else(|_| shown_dir.clone(), |q| q.into());
    printer.note(&format!(
        "created run directory {shown_dir} with {PLAN}, for pipeline {pipeline_shown}"
    ));
    printer.note(&format!("build it with: planexe build -C {quoted}"));
    for note in new_run::replay_notes(&session, &shown_dir) {
        printer.note(&note);
    }
    let results = session.graph.results();
    if !results.is_empty() {
        let base = shown_dir.trim_end_matches('/');
        let mut listed: Vec<String> = results
            .iter()
            .take(SHOWN_RESULTS)
            .map(|r| format!("{base}/{r}"))
            .collect();
        if results.len() > SHOWN_RESULTS {
            listed.push(format!("and {} more", results.len() - SHOWN_RESULTS));
        }
        printer.note(&format!("the results will be in {}", listed.join(", ")));
    }
    Ok(())
}

/// The text of the new `plan.txt`: `--plan` with a trailing newline, or
/// the bytes of `--plan-file` as they are. Refuses an empty plan and a
/// file that is not a readable regular file of UTF-8 text.
fn plan_text(args: &NewArgs, cwd: &Path) -> Result<Vec<u8>> {
    let (text, what) = match (&args.plan.plan, &args.plan.plan_file) {
        (Some(text), _) => {
            let mut text = text.clone();
            if !text.ends_with('\n') {
                text.push('\n');
            }
            (text, "--plan".to_string())
        }
        (None, Some(file)) => (
            read_plan_file(&cwd.join(file), file)?,
            file.display().to_string(),
        ),
        (None, None) => {
            return Err(Error::usage("no plan given").hint("pass --plan TEXT or --plan-file FILE"))
        }
    };
    if text.trim().is_empty() {
        return Err(Error::usage(format!("the plan ({what}) is empty"))
            .hint("a run needs a plan: pass --plan TEXT or --plan-file FILE with some text"));
    }
    Ok(text.into_bytes())
}

fn read_plan_file(path: &Path, given: &Path) -> Result<String> {
    let shown = given.display();
    let refuse = |why: String| {
        Error::usage(format!("cannot use {shown} as the plan: {why}"))
            .hint("pass --plan-file FILE naming a text file, or --plan TEXT")
    };
    let (bytes, _) = read_regular(path, given, &refuse)?;
    let text = String::from_utf8(bytes).map_err(|_| refuse("it is not UTF-8 text".into()))?;
    if text.contains('\0') {
        return Err(refuse("it holds NUL bytes, not text".into()));
    }
    Ok(text)
}

/// The files `--input` names, read: each a relative path inside the
/// current folder `cwd`, the same path in the new run. A path given twice
/// is copied once.
fn input_files(given: &[std::path::PathBuf], cwd: &Path) -> Result<Vec<Seed>> {
    let mut seeds: Vec<Seed> = Vec::new();
    for file in given {
        let shown = file.display().to_string();
        let refuse = |why: String| {
            Error::usage(format!("cannot copy {shown} into the new run: {why}")).hint(
                "--input takes a file by its path from the current folder, inside it \
                 (`notes/budget.md`), and copies it to the same path in the run directory; \
                 the plan is --plan or --plan-file",
            )
        };
        let path = file
            .to_str()
            .ok_or_else(|| refuse("the path is not UTF-8 text".into()))?;
        let path = new_run::seed_path(path).map_err(refuse)?;
        if seeds.iter().any(|s| s.path == path) {
            continue;
        }
        let source = cwd.join(&path);
        if source.is_dir() {
            return Err(refuse(
                "it is a folder; give its files (`--input notes/*.md`)".into(),
            ));
        }
        let (bytes, mode) = read_regular(&source, Path::new(&path), &refuse)?;
        seeds.push(Seed {
            path,
            bytes,
            mode: Some(mode),
        });
    }
    Ok(seeds)
}

/// The bytes of the regular file `path`, spelled `shown` (at most
/// [`limits::MAX_FILE_BYTES`]), and its permission bits; or `refuse`
/// saying why it cannot be read.
fn read_regular(
    path: &Path,
    shown: &Path,
    refuse: &dyn Fn(String) -> Error,
) -> Result<(Vec<u8>, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mode = match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(refuse("it does not exist".into()))
        }
        Err(e) => return Err(refuse(wrong_kind::why(path, shown, &e))),
        Ok(meta) if !meta.is_file() => {
            let kind = if meta.is_dir() {
                "a folder"
            } else {
                "not a regular file"
            };
            return Err(refuse(format!("it is {kind}")));
        }
        Ok(meta) => meta.permissions().mode() & 0o777,
    };
    let bytes = limits::read_bounded(path).map_err(|e: ReadError| refuse(e.to_string()))?;
    Ok((bytes, mode))
}
