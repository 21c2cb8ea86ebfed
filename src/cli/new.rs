//! `planexe new RUN_DIR (--plan TEXT | --plan-file FILE) [-f PIPELINE]`:
//! one more run of a pipeline. Makes a fresh run directory, seeds it with
//! `plan.txt` and records the pipeline file there, so that a plain
//! `planexe build -C RUN_DIR` builds it.
//!
//! Nothing is made unless everything checks out first: the plan (not
//! empty, UTF-8 text), the run directory (missing or empty) and the
//! pipeline (parsed and resolved by the same code as a build, so a broken
//! one is refused with `file:line:col`). The record itself is the one a
//! build writes ([`Session::record_pipeline`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::args::{Cli, NewArgs};
use super::printer::Printer;
use super::Context;
use crate::error::{Error, Result};
use crate::model::limits::{self, ReadError};
use crate::model::{Lists, Pipeline};
use crate::plan::session::{Location, ModelChoice};
use crate::plan::Session;

/// The file every run's tasks take their plan from, in the run directory.
const PLAN: &str = "plan.txt";

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
    check_fresh(&run_dir, &shown_dir)?;

    // The pipeline: -f, else $PLANEXE_PIPELINE, else ./pipeline.toml (the
    // order a build in a fresh run directory follows, from here).
    let (file, shown) = match (&cli.file, &ctx.pipeline) {
        (Some(f), _) | (None, Some(f)) => (cwd.join(f), f.display().to_string()),
        (None, None) => (cwd.join("pipeline.toml"), "pipeline.toml".to_string()),
    };
    // Parsed before anything is made; resolved (which needs the run
    // directory) once it exists, and undone if that fails.
    Pipeline::load(&file, shown.clone())?;

    let made = make_dirs(&run_dir)?;
    let plan_path = run_dir.join(PLAN);
    let opened = write_new(&plan_path, &plan).and_then(|()| {
        let location = Location {
            run_dir: run_dir.clone(),
            file: Some((file, shown)),
            env_file: None,
            named_dir: true,
        };
        Session::open(location.locate()?, &ModelChoice::default(), Lists::Present)
    });
    let session = match opened {
        Ok(session) => session,
        Err(e) => {
            undo(&plan_path, &made);
            return Err(e);
        }
    };
    session.record_pipeline()?;

    let pipeline_shown = session.pipeline.path.display().to_string();
    let reads_plan = session
        .graph
        .tasks()
        .any(|t| t.inputs.iter().any(|i| i.path == PLAN));
    if !reads_plan {
        printer.warn(&format!(
            "no task of {pipeline_shown} reads {PLAN}; a run's tasks take their plan from \
             {PLAN} in the run directory (inputs = [\"{PLAN}\"])"
        ));
    }
    let quoted = shlex::try_quote(&shown_dir).map_or_else(|_| shown_dir.clone(), |q| q.into());
    printer.note(&format!(
        "created run directory {shown_dir} with {PLAN}, for pipeline {pipeline_shown}"
    ));
    printer.note(&format!("build it with: planexe build -C {quoted}"));
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

fn read_plan_file(path: &Path, shown: &Path) -> Result<String> {
    let shown = shown.display();
    let refuse = |why: String| {
        Error::usage(format!("cannot use {shown} as the plan: {why}"))
            .hint("pass --plan-file FILE naming a text file, or --plan TEXT")
    };
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(refuse("it does not exist".into()))
        }
        Err(e) => return Err(refuse(e.to_string())),
        Ok(meta) if !meta.is_file() => {
            let kind = if meta.is_dir() {
                "a folder"
            } else {
                "not a regular file"
            };
            return Err(refuse(format!("it is {kind}")));
        }
        Ok(_) => {}
    }
    let bytes = limits::read_bounded(path).map_err(|e: ReadError| refuse(e.to_string()))?;
    let text = String::from_utf8(bytes).map_err(|_| refuse("it is not UTF-8 text".into()))?;
    if text.contains('\0') {
        return Err(refuse("it holds NUL bytes, not text".into()));
    }
    Ok(text)
}

/// Refuses a run directory that exists and is not an empty folder.
fn check_fresh(run_dir: &Path, shown: &str) -> Result<()> {
    let meta = match std::fs::symlink_metadata(run_dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io_at(run_dir, e)),
        Ok(meta) => meta,
    };
    let quoted = shlex::try_quote(shown).map_or_else(|_| shown.to_string(), |q| q.into());
    if !std::fs::metadata(run_dir).is_ok_and(|m| m.is_dir()) {
        let kind = if meta.file_type().is_symlink() {
            "a symlink that leads to no folder"
        } else {
            "a file"
        };
        return Err(Error::usage(format!(
            "cannot make run directory {shown}: it exists and is {kind}"
        ))
        .hint("choose another name for the run directory"));
    }
    let mut entries = fs_err::read_dir(run_dir)?;
    if entries.next().is_some() {
        return Err(Error::usage(format!(
            "run directory {shown} already exists and is not empty"
        ))
        .hint(format!(
            "choose another name, or `planexe build -C {quoted}` to resume it"
        )));
    }
    Ok(())
}

/// Makes `dir` and its missing parents; returns those it made, outermost
/// first.
fn make_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut missing: Vec<PathBuf> = dir
        .ancestors()
        .take_while(|d| std::fs::symlink_metadata(d).is_err())
        .map(Path::to_path_buf)
        .collect();
    missing.reverse();
    fs_err::create_dir_all(dir)?;
    Ok(missing)
}

/// Writes a file that must not exist yet.
fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = fs_err::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all(bytes)?;
    Ok(())
}

/// Removes what a refused `new` made: the plan, then the folders it made
/// (innermost first, only while empty).
fn undo(plan: &Path, made: &[PathBuf]) {
    let _ = std::fs::remove_file(plan);
    for dir in made.iter().rev() {
        let _ = std::fs::remove_dir(dir);
    }
}
