//! The one error type of planexe and its mapping to exit codes.
//!
//! Every failure travels up to [`crate::run`] as an [`Error`]; `run` prints it
//! once (message, then `hint:` lines) and returns [`Error::code`]. Nothing
//! below `run` calls `process::exit` or panics on input a user or a server
//! controls.

use std::fmt;
use std::path::Path;

/// Exit status: everything requested is up to date.
pub const EXIT_OK: i32 = 0;
/// Exit status: a task failed (or `-q` found something stale).
pub const EXIT_FAILED: i32 = 1;
/// Exit status: usage error or a pipeline that cannot be built.
pub const EXIT_USAGE: i32 = 2;
/// Exit status: interrupted by SIGINT, SIGTERM or SIGHUP.
pub const EXIT_INTERRUPTED: i32 = 130;
/// Exit status: `wait --timeout` ran out.
pub const EXIT_TIMEOUT: i32 = 124;

/// A failure that ends a planexe command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line is wrong (unknown target, missing `-y`, ...).
    #[error("{message}")]
    Usage { message: String, hints: Vec<String> },
    /// The pipeline file is wrong; `message` already names `file:line:col`.
    /// `place`: where in the file it points, start and end, when it was
    /// made from a span ([`Diagnostic`]); for a program, never printed.
    /// `about`: what is to be fixed, the pipeline file or a file of the
    /// run it reads.
    #[error("{message}")]
    Pipeline {
        message: String,
        hints: Vec<String>,
        place: Option<Place>,
        about: About,
    },
    /// A file-system operation failed; the message names the path (fs_err).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A write of planexe's own failed for want of space (or quota): the
    /// message names the file, the hint says what to free and how to go on.
    #[error("{message}")]
    NoSpace { message: String, hint: String },
    /// One or more tasks failed; their output was already printed. `run`:
    /// the run directory, as the command line shows it, when it is not the
    /// current one (the hint's paths are relative to it).
    #[error(
        "task(s) failed{}: {}",
        run.as_deref().map(|r| format!(" in {r}")).unwrap_or_default(),
        listed(names)
    )]
    TasksFailed {
        names: Vec<String>,
        hint: String,
        run: Option<String>,
    },
    /// `-q` found something that is not up to date.
    #[error("not up to date")]
    NotUpToDate,
    /// SIGINT, SIGTERM or SIGHUP arrived.
    #[error("interrupted")]
    Interrupted,
    /// A command that reports an outcome through its exit status alone
    /// (`wait`); already printed.
    #[error("exit status {0}")]
    Outcome(i32),
}

impl Error {
    pub fn usage(message: impl Into<String>) -> Self {
        Error::Usage {
            message: message.into(),
            hints: Vec::new(),
        }
    }

    /// A pipeline error saying `message`: text (which may start with
    /// `file:line:col`), or a [`Diagnostic`], whose place it keeps.
    pub fn pipeline(message: impl Into<Diagnostic>) -> Self {
        let Diagnostic { text, place } = message.into();
        Error::Pipeline {
            message: text,
            hints: Vec::new(),
            place,
            about: About::PipelineFile,
        }
    }

    /// This pipeline error, said of a file of the run the pipeline reads
    /// ([`About::RunFile`]); any other error as it is.
    pub fn of_run_file(mut self) -> Self {
        if let Error::Pipeline { about, .. } = &mut self {
            *about = About::RunFile;
        }
        self
    }

    /// Whether this is a pipeline error to fix in the pipeline file (or a
    /// file it names beside it), not in the run ([`About`]).
    pub fn is_about_pipeline_file(&self) -> bool {
        matches!(
            self,
            Error::Pipeline {
                about: About::PipelineFile,
                ..
            }
        )
    }

    /// Where in a file the error points, start and end, when known.
    pub fn place(&self) -> Option<&Place> {
        match self {
            Error::Pipeline { place, .. } => place.as_ref(),
            _ => None,
        }
    }

    /// Adds a `hint:` line shown under the message.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        match &mut self {
            Error::Usage { hints, .. } | Error::Pipeline { hints, .. } => hints.push(hint.into()),
            _ => {}
        }
        self
    }

    /// An I/O error that names the path it is about (most of std's do not).
    pub fn io_at(path: &Path, e: std::io::Error) -> Self {
        Error::Io(std::io::Error::new(
            e.kind(),
            format!("{}: {e}", path.display()),
        ))
    }

    /// Whether this is an I/O error of a full disk (or an exceeded quota).
    pub fn is_no_space(&self) -> bool {
        matches!(self, Error::Io(e) if no_space(e))
    }

    /// A full disk's I/O error as [`Error::NoSpace`], with `hint` (the
    /// door's words); any other error as it is.
    pub fn with_no_space_hint(self, hint: impl FnOnce() -> String) -> Self {
        match self {
            Error::Io(e) if no_space(&e) => Error::NoSpace {
                message: e.to_string(),
                hint: hint(),
            },
            other => other,
        }
    }

    pub fn hints(&self) -> &[String] {
        match self {
            Error::Usage { hints, .. } | Error::Pipeline { hints, .. } => hints,
            Error::TasksFailed { hint, .. } | Error::NoSpace { hint, .. } => {
                std::slice::from_ref(hint)
            }
            _ => &[],
        }
    }

    /// The process exit status for this error.
    pub fn code(&self) -> i32 {
        match self {
            Error::Usage { .. } | Error::Pipeline { .. } => EXIT_USAGE,
            // An I/O failure in planexe's own bookkeeping is not a task
            // failure; treat it as an environment problem the user must fix.
            Error::Io(_) | Error::NoSpace { .. } => EXIT_USAGE,
            Error::TasksFailed { .. } | Error::NotUpToDate => EXIT_FAILED,
            Error::Interrupted => EXIT_INTERRUPTED,
            Error::Outcome(code) => *code,
        }
    }

    /// Whether `run` should print the error (some were already reported).
    pub fn is_silent(&self) -> bool {
        matches!(
            self,
            Error::NotUpToDate | Error::Interrupted | Error::Outcome(_)
        )
    }
}

/// What a pipeline error asks to fix. Both are refused alike (exit 2, the
/// kind `pipeline` of a JSON error); a door that made the run's files
/// tells them apart (`run_create` gives only the first as data: the
/// second is the files it was given, or lacks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum About {
    /// The pipeline file, or a file it names beside it (a prompt file, a
    /// schema): a TOML syntax error, an unknown key, a task that names no
    /// task.
    PipelineFile,
    /// A file in the run directory that the pipeline reads: a source
    /// input missing, or not a regular file; a `foreach` list that is not
    /// a list. Fixed in the run, not in the pipeline file.
    RunFile,
}

/// Whether `e` says the disk is full (`ENOSPC`) or a quota is exceeded
/// (`EDQUOT`): the kind survives [`Error::io_at`], which rewords it.
pub fn no_space(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

/// The most names a line of a build's outcome lists; `status` lists them
/// all.
pub const LISTED: usize = 10;

/// `names` joined with commas, at most [`LISTED`] of them, then how many
/// more (a fan-out failing by the hundred would make a line of thousands
/// of characters): `a, b, ... and 101 more`.
pub fn listed(names: &[String]) -> String {
    match names.len().checked_sub(LISTED) {
        None | Some(0) => names.join(", "),
        Some(more) => format!("{} and {more} more", names[..LISTED].join(", ")),
    }
}

/// The `FILE:LINE:COL` a message's first line starts with (`FILE:LINE:COL:
/// what`), as its file, line and column.
pub fn position(first: &str) -> Option<(&str, usize, usize)> {
    first.match_indices(": ").find_map(|(at, _)| {
        let mut parts = first[..at].rsplitn(3, ':');
        let col = parts.next()?.parse::<usize>().ok()?;
        let line = parts.next()?.parse::<usize>().ok()?;
        let file = parts.next().filter(|f| !f.is_empty())?;
        Some((file, line, col))
    })
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The text of a pipeline error and, when it was made from a span of a
/// file (`Source::diagnostic`), where it points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// `file:line:col: message`, then the code frame under it.
    pub text: String,
    pub place: Option<Place>,
}

impl From<String> for Diagnostic {
    fn from(text: String) -> Self {
        Diagnostic { text, place: None }
    }
}

impl From<&str> for Diagnostic {
    fn from(text: &str) -> Self {
        Diagnostic::from(text.to_string())
    }
}

impl From<&String> for Diagnostic {
    fn from(text: &String) -> Self {
        Diagnostic::from(text.clone())
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Where in a file an error points: the span's first character
/// (`line`, `col`, as `file:line:col` names it) and its last (`end_line`,
/// `end_col`, inclusive: the character the last caret is under, or would
/// be on a line cut for width; a value over several lines ends at its
/// last character that is not blank). Lines and columns count from 1,
/// columns in characters (not bytes, not terminal columns). An empty
/// span ends where it starts. Serialized as the `where` of a JSON error
/// (`--json`, the MCP server's `pipeline_error`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Place {
    /// The file as the message names it.
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub end_line: usize,
    pub end_col: usize,
}

/// A position in a source file, 1-based, for `file:line:col` messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub col: usize,
}

impl Position {
    /// The line and column (in characters) of byte `offset` in `text`.
    pub fn of_offset(text: &str, offset: usize) -> Self {
        let offset = offset.min(text.len());
        let before = &text[..floor_char_boundary(text, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        Position { line, col }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// The start of the character byte `i` of `text` is in (`str::floor_char_boundary`
/// is newer than the crate's minimum Rust).
pub(crate) fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let text = "ab\ncdé\nf";
        assert_eq!(Position::of_offset(text, 0), Position { line: 1, col: 1 });
        assert_eq!(Position::of_offset(text, 3), Position { line: 2, col: 1 });
        assert_eq!(Position::of_offset(text, 7), Position { line: 2, col: 4 });
        assert_eq!(Position::of_offset(text, 99), Position { line: 3, col: 2 });
    }
}
