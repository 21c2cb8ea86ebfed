//! Where an invocation works: the run directory its caller named, and the
//! pipeline file chosen for it ([`Location::locate`]), not yet read.
//!
//! Which pipeline file: `-f FILE`; else the one this run directory recorded
//! at its last build (`.planexe/pipeline`); else `$PLANEXE_PIPELINE`; else
//! `pipeline.toml` in the run directory.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::model::{Advice, Trouble};
use crate::store::{files, wrong_kind, RunDir};

/// Where an invocation works, as its caller named it.
#[derive(Debug, Clone, Default)]
pub struct Location {
    /// The run directory (absolute, or relative to the current directory).
    pub run_dir: PathBuf,
    /// A pipeline file named for this invocation (`-f`): its path and how
    /// messages show it.
    pub file: Option<(PathBuf, String)>,
    /// The pipeline file named by the environment (`$PLANEXE_PIPELINE`).
    pub env_file: Option<(PathBuf, String)>,
    /// Whether the run directory was named (`-C`): messages then show the
    /// default pipeline file with its full path.
    pub named_dir: bool,
    /// What to tell the caller's user when the pipeline file cannot be
    /// used, in its terms (`-f FILE` for the command line).
    pub advice: Advice,
}

/// A run directory and the pipeline file chosen for it, not yet read.
#[derive(Debug, Clone)]
pub struct Located {
    pub run_dir: RunDir,
    pub pipeline: PathBuf,
    /// How messages name the pipeline file.
    pub display: String,
    /// Whether the file was named for this invocation (`-f`): then it is
    /// this invocation's whatever the run directory records.
    pub named: bool,
    /// Whether the file is the one the run directory records
    /// (`.planexe/pipeline`), not named for this invocation.
    pub recorded: bool,
    /// Something to tell the user about the choice.
    pub warning: Option<String>,
    /// What to tell the user when the file cannot be used.
    pub advice: Advice,
}

impl Location {
    /// Opens the run directory and chooses its pipeline file, without
    /// reading it.
    pub fn locate(&self) -> Result<Located> {
        let run_dir = RunDir::open(&self.run_dir)?;
        let (pipeline, display, warning) = self.choose(&run_dir)?;
        let recorded = self.file.is_none()
            && recorded_pipeline(&run_dir, &self.advice)?.is_some_and(|r| r == pipeline);
        Ok(Located {
            run_dir,
            pipeline,
            display,
            named: self.file.is_some(),
            recorded,
            warning,
            advice: self.advice.clone(),
        })
    }

    fn choose(&self, run_dir: &RunDir) -> Result<(PathBuf, String, Option<String>)> {
        if let Some((path, shown)) = &self.file {
            // `-f` is a path from where planexe runs, not from `-C`'s run
            // directory: said so, and the path meant when it is there.
            if std::fs::symlink_metadata(path)
                .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
            {
                let from_run = crate::store::stamp::lexical(&run_dir.root().join(shown));
                let hint = if self.named_dir && Path::new(shown).is_relative() && from_run.is_file()
                {
                    format!(
                        "-f is a path from the current folder, not from the run directory: pass -f {}",
                        from_run.display()
                    )
                } else {
                    "check the path given to -f: it is read from the current folder (an absolute path works from anywhere)".to_string()
                };
                return Err(Error::pipeline(format!(
                    "pipeline file {shown} (-f) not found: there is no {}",
                    crate::store::stamp::lexical(path).display()
                ))
                .hint(hint));
            }
            return Ok((path.clone(), shown.clone(), None));
        }
        if let Some(recorded) = recorded_pipeline(run_dir, &self.advice)? {
            if !recorded.exists() {
                return Err(Error::pipeline(format!(
                    "this run directory was built with {}, which no longer exists",
                    recorded.display()
                ))
                .hint(self.advice.hint(&Trouble::RecordedGone)));
            }
            let warning = self
                .env_file
                .as_ref()
                .and_then(|(env, shown)| {
                    let same =
                        std::fs::canonicalize(env).ok().as_deref() == Some(recorded.as_path());
                    (!same).then(|| {
                        format!(
                            "using {} (recorded by an earlier build here), not $PLANEXE_PIPELINE={shown}",
                            recorded.display()
                        )
                    })
                })
                .or_else(|| recorded_elsewhere(run_dir, &recorded, &self.advice));
            let display = run_dir.show(&recorded);
            return Ok((recorded, display, warning));
        }
        if let Some((path, shown)) = &self.env_file {
            if !path.exists() {
                // A file where a folder on its way should be is named, as
                // for `-f`: "not found" would send the user looking for
                // the wrong thing.
                let message = match wrong_kind::blocked(path, Path::new(shown)) {
                    Some(blocked) => format!(
                        "cannot read pipeline file {shown} (named by $PLANEXE_PIPELINE): {blocked}"
                    ),
                    None => format!("pipeline file {shown} (named by $PLANEXE_PIPELINE) not found"),
                };
                return Err(Error::pipeline(message).hint(self.advice.hint(&Trouble::EnvGone)));
            }
            return Ok((path.clone(), shown.clone(), None));
        }
        let default = run_dir.root().join("pipeline.toml");
        // Run from a folder inside a run (its `out/`, say), as git and
        // cargo would find it: not taken, but named.
        if !self.named_dir && !default.exists() {
            if let Some(dir) = run_above(run_dir.root()) {
                return Err(Error::pipeline("pipeline file pipeline.toml not found")
                    .hint(self.advice.hint(&Trouble::RunAbove { dir: &dir })));
            }
        }
        let display = if self.named_dir {
            default.display().to_string()
        } else {
            "pipeline.toml".to_string()
        };
        Ok((default, display, None))
    }
}

/// The nearest folder above `dir` that holds a run (`.planexe/`) or a
/// pipeline file, as a path from `dir` (`..`, `../..`).
fn run_above(dir: &Path) -> Option<String> {
    let mut up = String::from("..");
    for parent in dir.ancestors().skip(1) {
        if parent.join(crate::store::rundir::STATE_DIR).is_dir()
            || parent.join("pipeline.toml").is_file()
        {
            return Some(up);
        }
        up.push_str("/..");
    }
    None
}

/// Records `pipeline` as the run directory's pipeline file, for later
/// commands there, unless it is already.
pub(super) fn record_pipeline(run_dir: &RunDir, pipeline: &Path) -> Result<()> {
    let path = run_dir.recorded_pipeline_path();
    // A file inside the run directory by its path there: a copy of the
    // run directory (`cp -a run1 run2`), or the run directory moved, then
    // uses its own file, not the one it was copied or moved from.
    let current = match pipeline.strip_prefix(run_dir.root()) {
        Ok(inside) if !inside.as_os_str().is_empty() => inside.to_string_lossy(),
        _ => pipeline.to_string_lossy(),
    };
    if std::fs::read_to_string(&path)
        .ok()
        .as_deref()
        .map(str::trim)
        != Some(current.as_ref())
    {
        files::write_atomic(&path, format!("{current}\n").as_bytes())?;
    }
    Ok(())
}

/// A warning when the run directory records a pipeline file (`recorded`)
/// inside another run directory and has a `pipeline.toml` of its own: most
/// likely a copy of that run (`cp -a run1 run2`) made when the record held
/// an absolute path, which builds the original's file, so an edit of its
/// own is never seen.
fn recorded_elsewhere(run_dir: &RunDir, recorded: &Path, advice: &Advice) -> Option<String> {
    if recorded.starts_with(run_dir.root()) {
        return None;
    }
    let other = recorded.parent()?;
    let own = run_dir.root().join("pipeline.toml");
    if !other.join(".planexe").is_dir() || !own.is_file() {
        return None;
    }
    // Whole: `-f` is read from the current folder, which need not be the
    // run directory (`-C`).
    let shown = own.display().to_string();
    Some(format!(
        "using {} (recorded by an earlier build here), which is in another run directory, {}, not this one's own {shown}; if this run directory is a copy of that one, {}",
        recorded.display(),
        other.display(),
        advice.hint(&Trouble::RecordedElsewhere { own: &shown })
    ))
}

/// The pipeline file the run directory recorded at its last build, if any:
/// an absolute path, or one relative to the run directory (a file inside
/// it, recorded so). A record that is neither in text (damaged, or written
/// by hand; a relative path that leaves the run directory) is an error
/// that says what it holds, and `advice`'s hint.
pub(super) fn recorded_pipeline(run_dir: &RunDir, advice: &Advice) -> Result<Option<PathBuf>> {
    let path = run_dir.recorded_pipeline_path();
    let Ok(bytes) = files::read(&path) else {
        return Ok(None);
    };
    let shown = run_dir.show(&path);
    let refuse = |what: String| {
        Error::pipeline(format!(
            "{shown} should hold the path of the pipeline file this run directory uses, but {what}"
        ))
        .hint(advice.hint(&Trouble::RecordBroken { record: &shown }))
    };
    let Ok(text) = String::from_utf8(bytes) else {
        return Err(refuse("it is not text".into()));
    };
    let text = text.trim_end_matches(['\n', '\r']);
    if text.trim().is_empty() {
        return Ok(None);
    }
    let inside = |text: &str| {
        Path::new(text)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
    };
    if text.contains(|c: char| c.is_control()) || !(text.starts_with('/') || inside(text)) {
        let mut quoted: String = text.escape_debug().take(80).collect();
        if text.chars().count() > 80 {
            quoted.push('…');
        }
        return Err(refuse(format!(
            "it holds \"{quoted}\", neither an absolute path nor one inside the run directory"
        )));
    }
    Ok(Some(run_dir.root().join(text)))
}
