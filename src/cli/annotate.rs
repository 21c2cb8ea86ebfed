//! CI annotations of a build: a failed task as a GitHub Actions workflow
//! command (`::error file=F,line=N,title=T::MESSAGE`) on stdout, which the
//! runner shows on the pipeline file's line that defines the task; and a
//! build that ended in an error of its own (a pipeline file it refused, a
//! lock held) as one such line, on the refused line and column.
//!
//! Whatever a task's error says is escaped as the runner expects (and
//! unescapes): in the message `%`, CR and LF; in a property (file, title)
//! also `:` and `,`. So a message can never end the command early or start
//! another one.

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::model::{Pipeline, Task};

/// Where failed tasks point: the pipeline file, as a path from the
/// workspace (GitHub resolves it from there, whatever folder a step runs
/// in), and its text, to find a task's line.
pub struct Github {
    file: String,
    text: String,
}

impl Github {
    /// For tasks of `pipeline`; `base`: the workspace.
    pub fn new(pipeline: &Pipeline, base: &Path) -> Github {
        Github {
            file: from_base(&pipeline.path, &pipeline.display, base),
            text: pipeline.text.clone(),
        }
    }

    /// The `::error` line of `task`, which failed with `message`.
    pub fn failed(&self, task: &Task, message: &str) -> String {
        error_line(
            &self.file,
            task.line(&self.text),
            &format!("planexe: {} failed", task.name),
            message,
        )
    }
}

/// `path` (relative ones from the current directory) as a path from
/// `base`, the workspace, as the run directory's path was resolved
/// (symlinks); `display` (how messages name it) when it is not under it.
fn from_base(path: &Path, display: &str, base: &Path) -> String {
    let cwd = std::env::current_dir().unwrap_or_default();
    let path = cwd.join(path);
    let real = std::fs::canonicalize(base).ok();
    std::iter::once(base)
        .chain(real.as_deref())
        .find_map(|base| path.strip_prefix(base).ok())
        .map_or_else(|| display.to_string(), |p| p.display().to_string())
}

/// The `::error` line of a build that ended in `error` before or instead
/// of a task's failure (a pipeline refusal, a usage error, a lock held, a
/// write of planexe's own that failed): `None` for failed tasks (each has
/// its own line) and for what prints no error (a question's answer, an
/// interrupt). `pipeline`: the pipeline file's path and how messages name
/// it, once known; a message that starts `DISPLAY:LINE:COL: ` points the
/// line there, the rest of its first line and its hints the message.
pub fn refused(error: &Error, pipeline: Option<&(PathBuf, String)>, base: &Path) -> Option<String> {
    if error.is_silent() || matches!(error, Error::TasksFailed { .. }) {
        return None;
    }
    let title = match error {
        Error::Pipeline { .. } => "planexe: pipeline error",
        _ => "planexe: build error",
    };
    let text = error.to_string();
    let first = text.lines().next().unwrap_or("");
    let place = pipeline.and_then(|(path, display)| {
        let rest = first.strip_prefix(display.as_str())?.strip_prefix(':')?;
        let (line, rest) = rest.split_once(':')?;
        let (col, rest) = rest.split_once(": ")?;
        let at = (line.parse::<usize>().ok()?, col.parse::<usize>().ok()?);
        Some((from_base(path, display, base), at, rest))
    });
    let mut message = place
        .as_ref()
        .map_or(first, |(_, _, rest)| rest)
        .to_string();
    for hint in error.hints() {
        message.push_str("\nhint: ");
        message.push_str(hint);
    }
    let properties = match &place {
        Some((file, (line, col), _)) => {
            format!("file={},line={line},col={col},", property(file))
        }
        None => String::new(),
    };
    Some(format!(
        "::error {properties}title={}::{}",
        property(title),
        data(&message)
    ))
}

/// `::error file=F,line=N,title=T::MESSAGE`, every part escaped.
pub fn error_line(file: &str, line: usize, title: &str, message: &str) -> String {
    format!(
        "::error file={},line={line},title={}::{}",
        property(file),
        property(title),
        data(message)
    )
}

/// A workflow command's message: `%`, CR and LF escaped.
fn data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A workflow command's property: as data, and `:` and `,` too.
fn property(text: &str) -> String {
    data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_properties_are_escaped_so_nothing_ends_the_command() {
        let line = error_line(
            "dir,a/pipe:line.toml",
            7,
            "planexe: x failed",
            "50% done\r\nthen ::error::boom, again",
        );
        assert_eq!(
            line,
            "::error file=dir%2Ca/pipe%3Aline.toml,line=7,title=planexe%3A x failed::\
             50%25 done%0D%0Athen ::error::boom, again"
        );
        assert_eq!(line.lines().count(), 1);
    }

    #[test]
    fn an_error_points_at_the_pipeline_only_where_its_message_does() {
        let file = (PathBuf::from("/nowhere/p.toml"), "p.toml".to_string());
        let e = Error::pipeline("p.toml:4:12: bad, really\n  |\n4 | x\n  |   ^").hint("fix it");
        assert_eq!(
            refused(&e, Some(&file), Path::new("/elsewhere")).unwrap(),
            "::error file=p.toml,line=4,col=12,title=planexe%3A pipeline error::bad, really%0Ahint: fix it"
        );
        // Another file's message, or none known: no place.
        let e = Error::pipeline("schema.json:1:2: bad");
        assert_eq!(
            refused(&e, Some(&file), Path::new("/elsewhere")).unwrap(),
            "::error title=planexe%3A pipeline error::schema.json:1:2: bad"
        );
        assert!(refused(&Error::NotUpToDate, Some(&file), Path::new("/")).is_none());
        assert!(refused(&Error::Interrupted, None, Path::new("/")).is_none());
    }
}
