//! An error as the one JSON object a command asked for JSON prints on
//! stdout (`status --json`, `graph --format json`): a program that reads
//! stdout as JSON gets the error there too, not an empty stdout, while
//! stderr shows the same error to a person as always and the exit status
//! is the error's.
//!
//! `{"error": {kind, message, detail, where, hint, hints, exit_code}}`:
//! `message` is the error's first line as stderr shows it after `error:`;
//! `detail` its other lines (the pipeline file's line and carets, the
//! first and last of a span over several), or null;
//! `where` the `file`, `line` and `col` the message starts with
//! (`pipeline.toml:4:1: ...`), and `end_line` and `end_col`, the last
//! character the carets are under, when the error was made from a span
//! ([`Place`](crate::error::Place)), or null; `hint` the first `hint:` line
//! (null without one) and `hints` all of them. What a document of success
//! holds at its top never includes `error`, so the key tells them apart.

use serde_json::{json, Value};

use crate::error::{position, Error};

/// Which commands print JSON on stdout, asked by their arguments.
pub fn asks_json(command: &super::args::Command) -> bool {
    use super::args::{Command, GraphFormat};
    match command {
        Command::Status(args) => args.json,
        Command::Graph(args) => args.format == GraphFormat::Json,
        _ => false,
    }
}

/// Whether a command line clap refused asked for JSON: `status ... --json`
/// or `graph ... --format json` (or `--format=json`), the option after the
/// command.
pub fn line_asks_json(args: &[std::ffi::OsString]) -> bool {
    let words: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let after = |command: &str| {
        words
            .iter()
            .position(|w| w == command)
            .map_or(&[][..], |at| &words[at + 1..])
    };
    let options = |list: &[String]| {
        let end = list.iter().position(|w| w == "--").unwrap_or(list.len());
        list[..end].to_vec()
    };
    let status = options(after("status"));
    let graph = options(after("graph"));
    status.iter().any(|w| w == "--json")
        || graph.iter().any(|w| w == "--format=json")
        || graph
            .windows(2)
            .any(|w| w[0] == "--format" && w[1] == "json")
}

/// The JSON object of `error`.
pub fn document(error: &Error) -> Value {
    let text = error.to_string();
    let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
    let place = error.place().map(|p| json!(p)).or_else(|| place_in(first));
    object(kind(error), first, place, rest, error.hints(), error.code())
}

/// `where` of an error without a place: the start its message's first
/// line names (`file:line:col: ...`), if any, without an end.
fn place_in(first: &str) -> Option<Value> {
    position(first).map(|(file, line, col)| json!({"file": file, "line": line, "col": col}))
}

/// The JSON object of an error clap reported: `text` as clap renders it
/// (`error: ...`, then usage lines), with `hints` of planexe's own.
pub fn usage_document(text: &str, hints: &[String], code: i32) -> Value {
    let text = text.trim();
    let text = text.strip_prefix("error: ").unwrap_or(text);
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    object("usage", first, place_in(first), rest, hints, code)
}

fn object(
    kind: &str,
    first: &str,
    place: Option<Value>,
    rest: &str,
    hints: &[String],
    code: i32,
) -> Value {
    let rest = rest.trim_matches('\n');
    json!({
        "error": {
            "kind": kind,
            "message": first,
            "detail": (!rest.is_empty()).then_some(rest),
            "where": place,
            "hint": hints.first(),
            "hints": hints,
            "exit_code": code,
        }
    })
}

/// What kind of error it is, in a word a program can match.
fn kind(error: &Error) -> &'static str {
    match error {
        Error::Usage { .. } => "usage",
        Error::Pipeline { .. } => "pipeline",
        Error::Io(_) => "io",
        Error::NoSpace { .. } => "no-space",
        Error::TasksFailed { .. } => "tasks-failed",
        Error::NotUpToDate => "not-up-to-date",
        Error::Interrupted => "interrupted",
        Error::Outcome(_) => "outcome",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Diagnostic, Place};

    #[test]
    fn a_pipeline_error_says_where_it_points() {
        let e =
            Error::pipeline("pipeline.toml:4:1: unknown field `bogus`\n  |\n4 | bogus = 1\n  | ^")
                .hint("see docs/pipeline.md");
        let doc = document(&e);
        let error = &doc["error"];
        assert_eq!(error["kind"], "pipeline");
        assert_eq!(error["message"], "pipeline.toml:4:1: unknown field `bogus`");
        assert_eq!(error["detail"], "  |\n4 | bogus = 1\n  | ^");
        assert_eq!(
            error["where"],
            json!({"file": "pipeline.toml", "line": 4, "col": 1})
        );
        assert_eq!(error["hint"], "see docs/pipeline.md");
        assert_eq!(error["exit_code"], 2);
    }

    #[test]
    fn a_place_says_where_it_ends_too() {
        let place = Place {
            file: "pipeline.toml".into(),
            line: 3,
            col: 11,
            end_line: 5,
            end_col: 2,
        };
        let e = Error::pipeline(Diagnostic {
            text: "pipeline.toml:3:11: `timeout` of task `t`: expected a duration".into(),
            place: Some(place),
        });
        assert_eq!(
            document(&e)["error"]["where"],
            json!({"file": "pipeline.toml", "line": 3, "col": 11, "end_line": 5, "end_col": 2})
        );
    }

    #[test]
    fn an_error_without_a_place_has_none() {
        let e = Error::usage("cannot use run directory /x: it does not exist");
        let doc = document(&e);
        assert_eq!(doc["error"]["where"], Value::Null);
        assert_eq!(doc["error"]["hint"], Value::Null);
        assert_eq!(doc["error"]["detail"], Value::Null);
        assert_eq!(
            position("--stall-after: invalid duration \"1:2:3\": x"),
            None
        );
        assert_eq!(
            position("my runs/p.toml:3:5: x"),
            Some(("my runs/p.toml", 3, 5))
        );
        assert_eq!(
            position("schemas/s.json:3:5: bad"),
            Some(("schemas/s.json", 3, 5))
        );
    }

    #[test]
    fn a_refused_command_line_asks_json_by_its_options_after_the_command() {
        let line = |words: &[&str]| {
            let args: Vec<std::ffi::OsString> = std::iter::once("planexe")
                .chain(words.iter().copied())
                .map(Into::into)
                .collect();
            line_asks_json(&args)
        };
        assert!(line(&["status", "--json", "--bogus"]));
        assert!(line(&["-C", "r", "graph", "--format", "json", "-x"]));
        assert!(line(&["graph", "--format=json", "-x"]));
        assert!(!line(&["build", "--json"]));
        assert!(!line(&["status", "--", "--json"]));
    }
}
