//! CI annotations of a build: a failed task as a GitHub Actions workflow
//! command (`::error file=F,line=N,title=T::MESSAGE`) on stdout, which the
//! runner shows on the pipeline file's line that defines the task.
//!
//! Whatever a task's error says is escaped as the runner expects (and
//! unescapes): in the message `%`, CR and LF; in a property (file, title)
//! also `:` and `,`. So a message can never end the command early or start
//! another one.

use crate::model::{Pipeline, Task};

/// Where failed tasks point: the pipeline file, as a path from the
/// current directory (GitHub resolves it from the workspace, where a
/// workflow's steps start), and its text, to find a task's line.
pub struct Github {
    file: String,
    text: String,
}

impl Github {
    /// For tasks of `pipeline`.
    pub fn new(pipeline: &Pipeline) -> Github {
        let cwd = std::env::current_dir().unwrap_or_default();
        let file = pipeline
            .path
            .strip_prefix(&cwd)
            .map_or_else(|_| pipeline.display.clone(), |p| p.display().to_string());
        Github {
            file,
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
}
