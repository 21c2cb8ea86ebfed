//! The pipeline files the server uses. A pipeline's commands run as the
//! server's user, so the server takes only a file its operator chose: its
//! own default (`-f`, `$PLANEXE_PIPELINE` or `ROOT/pipeline.toml`), or a
//! file under the root, outside every run, that `run_create` named
//! ([`named`]). A run's files (its plan, its outputs, whatever its commands
//! write) are written by clients and models: never a pipeline.
//!
//! Which file a run is opened and built with ([`of_run`]): the one it
//! records (`.planexe/pipeline`), checked again each time as `run_create`'s
//! was (the record could have been rewritten since); a run that records
//! none takes the server's default, never the `pipeline.toml` beside its
//! plan, which the command line's rules would take. Builds the server
//! starts are given it with `-f`, so no rule of the build's own picks
//! another.

use std::path::{Component, Path, PathBuf};

use super::advice::ADVICE;
use super::runs::Root;
use crate::error::{Error, Result};
use crate::plan::session::Location;
use crate::store::rundir::STATE_DIR;

/// Why the file at `canonical` (a canonical path) is not a pipeline the
/// server takes, if it is not: it is outside the root, or inside a run.
fn refused(root: &Root, canonical: &Path) -> Option<String> {
    let root = root.path();
    if !canonical.starts_with(root) {
        return Some("it leads outside the server's root".into());
    }
    // A run holds what clients and models wrote (its plan, its outputs):
    // taken as a pipeline, its commands would run anything a client asked
    // for. Pipelines are the operator's.
    let run = canonical
        .ancestors()
        .skip(1)
        .take_while(|dir| *dir != root)
        .find(|dir| std::fs::symlink_metadata(dir.join(STATE_DIR)).is_ok())?;
    Some(format!(
        "it is inside the run `{}`, and a run's files (its plan, its outputs) are written by \
         clients and models, not by the operator",
        run.strip_prefix(root).unwrap_or(run).display()
    ))
}

/// The pipeline file `rel` names (`run_create`'s `pipeline`), relative to
/// the root: an existing file inside the root once links are resolved, and
/// not inside a run. Returns its canonical path and how messages show it.
pub fn named(root: &Root, rel: &str) -> Result<(PathBuf, String)> {
    let refuse = |why: String| {
        Error::usage(format!(
            "cannot use `{}` as the pipeline: {why}",
            super::limits::quoted(rel)
        ))
        .hint("name a pipeline file by its path relative to the server's root, or leave pipeline out for the server's")
    };
    let path = Path::new(rel);
    if rel.is_empty() || path.is_absolute() {
        return Err(refuse(
            "it must be a path relative to the server's root".into(),
        ));
    }
    if path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(refuse("it uses `..`; it must stay inside the root".into()));
    }
    let canonical = match std::fs::canonicalize(root.path().join(path)) {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(refuse("it does not exist".into()))
        }
        Err(e) => return Err(refuse(e.to_string())),
    };
    if !canonical.starts_with(root.path()) {
        return Err(refuse(
            "it leads outside the server's root (a symlink)".into(),
        ));
    }
    if !canonical.is_file() {
        return Err(refuse("it is not a file".into()));
    }
    if let Some(why) = refused(root, &canonical) {
        return Err(refuse(why));
    }
    Ok((canonical, rel.to_string()))
}

/// The pipeline file the run at `run` (named `name`) is opened and built
/// with: the one it records, when that is `default` (the server's) or a
/// file [`named`] would take; `default` when it records none. A record
/// that cannot be used (damaged, its file gone) is refused as the command
/// line refuses it, in the tools' terms; one naming a file inside a run,
/// or outside the root (not the server's default), is refused.
pub fn of_run(
    root: &Root,
    run: &Path,
    name: &str,
    default: &(PathBuf, String),
) -> Result<(PathBuf, String)> {
    // Located as the command line would, without `-f` or the environment:
    // the record's own faults are said as for any command.
    let located = Location {
        run_dir: run.to_path_buf(),
        file: None,
        env_file: None,
        named_dir: true,
        advice: ADVICE,
    }
    .locate()?;
    if !located.recorded {
        return Ok(default.clone());
    }
    let canonical =
        std::fs::canonicalize(&located.pipeline).map_err(|e| Error::io_at(&located.pipeline, e))?;
    if std::fs::canonicalize(&default.0).is_ok_and(|d| d == canonical) {
        return Ok((canonical, located.display));
    }
    match refused(root, &canonical) {
        None => Ok((canonical, located.display)),
        Some(why) => Err(Error::pipeline(format!(
            "run `{name}` records {} as its pipeline file, but {why}; the server builds only with \
             its own pipeline or one under its root, outside every run",
            located.display
        ))
        .hint(
            "make a new run with run_create, its `pipeline` argument naming a pipeline file by its \
             path relative to the server's root (left out, the server's default)",
        )),
    }
}
