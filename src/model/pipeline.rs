//! The parsed `pipeline.toml`: serde structs that mirror the file (every
//! table of it is defined here), never mutated, plus the source text so
//! that every later check can point at `file:line:col` with a caret.
//!
//! This module only knows TOML shape (unknown keys, wrong types). Meaning
//! (paths, edges, cycles, models) is checked when the graph is resolved.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::advice::{Advice, Trouble};
use super::limits::{self, ReadError};
use super::source::text_of;
pub use super::source::Source;
use crate::error::{Error, Result};

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineDef {
    #[serde(default)]
    pub pipeline: PipelineSection,
    #[serde(default)]
    pub models: BTreeMap<Spanned<String>, ModelDef>,
    /// Boxed: a task's definition is large, and a map's node holds room
    /// for eleven.
    #[serde(default)]
    pub tasks: BTreeMap<Spanned<String>, Box<TaskDef>>,
    /// `[[hooks]]`: where events are pushed.
    #[serde(default)]
    pub hooks: Vec<Spanned<HookDef>>,
}

/// `[pipeline]`: settings for the whole pipeline.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSection {
    /// What the report, the JUnit suite and `status --json` call it.
    pub name: Option<Spanned<String>>,
    /// Default for `-j`.
    pub jobs: Option<Spanned<i64>>,
    /// Default per-task timeout.
    pub timeout: Option<Spanned<toml::Value>>,
    /// Default model for prompt tasks.
    pub model: Option<Spanned<String>>,
    /// What a build makes for people to read: outputs it names at its end.
    pub results: Option<Spanned<Vec<Spanned<String>>>>,
    /// The response cache: a folder of answers, relative to the pipeline
    /// file's folder (docs/llm.md#record-replay-and-the-response-cache).
    pub cache: Option<Spanned<String>>,
}

impl PipelineSection {
    /// `name`, refused when empty or blank (it would title nothing).
    pub fn name(&self, source: &Source) -> Result<Option<String>> {
        match &self.name {
            Some(n) if n.get_ref().trim().is_empty() => {
                Err(Error::pipeline(source.diagnostic(n.span(), "`name` is empty")).hint(
                    "name the pipeline, such as name = \"plan\", or remove the key to use its folder's name",
                ))
            }
            n => Ok(n.as_ref().map(|n| n.get_ref().clone())),
        }
    }
}

/// `[models.NAME]`: one model endpoint prompt tasks can use.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelDef {
    /// `openai` (any OpenAI-compatible server), `anthropic`, or `replay`
    /// (answers recorded for another model, from `dir`).
    pub provider: Spanned<String>,
    /// Required, but for a replay model.
    pub base_url: Option<Spanned<String>>,
    /// Required, but for a replay model.
    pub model: Option<Spanned<String>>,
    /// Replay models: the folder of recorded answers, relative to the
    /// pipeline file's folder.
    pub dir: Option<Spanned<String>>,
    /// Replay models: the model whose requests are answered.
    pub replays: Option<Spanned<String>>,
    /// Name of the environment variable holding the API key.
    pub api_key_env: Option<Spanned<String>>,
    /// Bound on one HTTP request.
    pub timeout: Option<Spanned<toml::Value>>,
    /// Bound on silence within a streamed answer.
    pub idle_timeout: Option<Spanned<toml::Value>>,
    pub max_concurrency: Option<Spanned<i64>>,
    pub requests_per_minute: Option<Spanned<f64>>,
    pub temperature: Option<Spanned<f64>>,
    /// Sampling seed, for answers that repeat (OpenAI-compatible servers).
    pub seed: Option<Spanned<i64>>,
    pub max_tokens: Option<Spanned<i64>>,
    pub input_cost_per_mtok: Option<Spanned<f64>>,
    pub output_cost_per_mtok: Option<Spanned<f64>>,
    /// Bound on one answer: bytes, or a size such as `"4 MiB"`.
    pub max_answer_bytes: Option<Spanned<toml::Value>>,
    /// The longest wait a server may ask for (`Retry-After`) before the
    /// model is given up for its fallback.
    pub max_retry_wait: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub fallback: Vec<Spanned<String>>,
    /// `json_schema`, `json_object` or `none`.
    pub structured_output: Option<Spanned<String>>,
    /// Anthropic: the text a JSON answer starts with, sent as the start
    /// of the assistant's turn (a prefill).
    pub prefill: Option<Spanned<String>>,
    /// Stream answers with server-sent events (default true).
    pub stream: Option<bool>,
    /// More request parameters, sent as they are (`extra_body.rs`).
    pub extra_body: Option<Spanned<toml::Table>>,
}

/// `matrix = { NAME = [VALUE, ...], ... }`.
pub type Matrix = BTreeMap<String, Vec<toml::Value>>;

/// `[tasks.NAME]`: one task. Exactly one of `command` or `prompt` is set.
/// Rare tables (`judge`, `foreach`, `matrix`) are boxed: every task holds
/// room for them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskDef {
    #[serde(default)]
    pub inputs: Vec<Spanned<String>>,
    #[serde(default)]
    pub outputs: Vec<Spanned<String>>,
    #[serde(default)]
    pub after: Vec<Spanned<String>>,
    pub command: Option<Spanned<String>>,
    pub prompt: Option<Spanned<String>>,
    /// A file holding the prompt template, relative to the pipeline file.
    pub prompt_file: Option<Spanned<String>>,
    pub system: Option<Spanned<String>>,
    /// A JSON Schema file the answer must satisfy (implies `format = "json"`).
    pub schema: Option<Spanned<String>>,
    /// `text` (default) or `json`.
    pub format: Option<Spanned<String>>,
    pub model: Option<Spanned<String>>,
    /// How often a model is re-asked after an invalid answer.
    pub retries: Option<Spanned<i64>>,
    /// Write a text answer's leading reasoning (`<think>…</think>`) too.
    pub keep_reasoning: Option<Spanned<bool>>,
    /// This task's answer length limit, over the model's.
    pub max_tokens: Option<Spanned<i64>>,
    /// `[tasks.NAME.judge]`: a model that scores what the task wrote.
    pub judge: Option<Box<Spanned<JudgeDef>>>,
    /// One instance per item of a JSON list.
    pub foreach: Option<Box<Spanned<ForeachDef>>>,
    /// One instance per combination of these values.
    pub matrix: Option<Box<Spanned<Matrix>>>,
    pub timeout: Option<Spanned<toml::Value>>,
    /// A command that judges the outputs before they are accepted
    /// (docs/checks.md).
    pub check: Option<Spanned<String>>,
    /// The smallest size of an output (default 1: never empty).
    pub min_bytes: Option<Spanned<i64>>,
    /// `error` (default) or `warn`: what a failed check does.
    pub severity: Option<Spanned<String>>,
    /// Accept a failed command's outputs if its check does.
    pub rescue: Option<Spanned<bool>>,
}

/// `[tasks.NAME.judge]`: a model scores what a task wrote from 0 to 1;
/// below `threshold` the task's model is asked again with the reason (a
/// command is run again with it).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgeDef {
    /// A template that sees `output` (the first output's text), `outputs`
    /// (each output's text by path), `inputs` and `task`.
    pub prompt: Spanned<String>,
    /// The judging model (default: the task's).
    pub model: Option<Spanned<String>>,
    /// The lowest passing score, 0 to 1 (default 0.7).
    pub threshold: Option<Spanned<f64>>,
    /// Re-asks of the task's model with the judge's reason (default 1), or
    /// re-runs of its command (default 0).
    pub retries: Option<Spanned<i64>>,
    /// `error` (default: a low score fails the task) or `warn`.
    pub severity: Option<Spanned<String>>,
}

/// `foreach = { file = "...", items = "/pointer", key = "field" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForeachDef {
    /// The JSON file holding the list, relative to the run directory.
    pub file: String,
    /// A JSON pointer to the array (default: the whole document).
    #[serde(default)]
    pub items: String,
    /// A field of each item that names it stably (default: its index).
    pub key: Option<String>,
}

/// `[[hooks]]`: where a build's events are pushed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookDef {
    /// A webhook to POST to.
    pub url: Option<Spanned<String>>,
    /// A command run with `sh -c`, the event JSON on its stdin.
    pub command: Option<Spanned<String>>,
    /// Which events (left out: all; an empty list is refused, as a hook
    /// that never fires). `task.*` matches every task event.
    pub events: Option<Spanned<Vec<Spanned<String>>>>,
    /// `json` (default), `discord` or `slack`.
    pub format: Option<Spanned<String>>,
}

/// A pipeline file as read from disk: its location, text and parsed form.
#[derive(Debug)]
pub struct Pipeline {
    /// Absolute path of the file.
    pub path: PathBuf,
    /// How to name the file in messages (as the user gave it).
    pub display: String,
    pub text: String,
    pub def: PipelineDef,
}

impl Pipeline {
    /// Reads and parses `path`. `display` is how messages name the file.
    /// A file that cannot be used is refused in the command line's terms.
    pub fn load(path: &Path, display: String) -> Result<Pipeline> {
        Pipeline::load_with(path, display, &Advice::COMMAND_LINE)
    }

    /// [`Pipeline::load`], with `advice` saying what to do when the file
    /// cannot be used (missing, unreadable or binary), in the caller's
    /// terms.
    pub fn load_with(path: &Path, display: String, advice: &Advice) -> Result<Pipeline> {
        let bytes = match limits::read_bounded(path) {
            Ok(bytes) => bytes,
            Err(ReadError::Missing) => {
                return Err(
                    Error::pipeline(format!("pipeline file {display} not found"))
                        .hint(advice.hint(&Trouble::Missing)),
                );
            }
            Err(e) => {
                // A file on the way is named as the user spelled the path
                // (`conf`, not `/abs/conf`), as for `$PLANEXE_PIPELINE`.
                let why = match e {
                    ReadError::Io(_) => {
                        crate::store::wrong_kind::blocked(path, Path::new(&display))
                            .unwrap_or_else(|| e.to_string())
                    }
                    _ => e.to_string(),
                };
                return Err(
                    Error::pipeline(format!("cannot read pipeline file {display}: {why}"))
                        .hint(advice.hint(&Trouble::Unreadable)),
                );
            }
        };
        let text = text_of(&display, bytes, advice)?;
        let path = fs_err::canonicalize(path)?;
        Pipeline::parse_advised(path, display, text, advice)
    }

    /// Parses `text` as the contents of `path`. Line ends are read as
    /// `\n` whatever the file uses (as TOML allows): a multi-line command
    /// written on Windows runs as written, not with a `\r` ending each
    /// line but the last. Lines and columns are the same either way. A
    /// leading byte order mark (some Windows editors save one) is dropped,
    /// so columns on the first line count as an editor shows them.
    pub fn parse(path: PathBuf, display: String, text: String) -> Result<Pipeline> {
        Pipeline::parse_advised(path, display, text, &Advice::COMMAND_LINE)
    }

    /// [`Pipeline::parse`], binary data refused with `advice`'s hint.
    fn parse_advised(
        path: PathBuf,
        display: String,
        text: String,
        advice: &Advice,
    ) -> Result<Pipeline> {
        let text = match text.strip_prefix('\u{feff}') {
            Some(rest) => rest.to_string(),
            None => text,
        };
        let text = if text.contains("\r\n") {
            text.replace("\r\n", "\n")
        } else {
            text
        };
        let parsed = match super::pieces::parse(&text, |d: &mut PipelineDef| &mut d.tasks) {
            Some(def) => Ok(def),
            None => toml::from_str::<PipelineDef>(&text),
        };
        let def = match parsed {
            Ok(def) => def,
            Err(e) => return Err(super::source::parse_error(&e, &text, &display, advice)),
        };
        Ok(Pipeline {
            path,
            display,
            text,
            def,
        })
    }

    /// The folder that files referenced by the pipeline resolve against.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("/"))
    }

    pub fn source(&self) -> Source<'_> {
        Source {
            display: &self.display,
            text: &self.text,
        }
    }
}

/// Parses a timeout: `"90s"`, `"10m"`, `"1h30m"`, or a number of seconds.
pub fn parse_timeout(value: &toml::Value) -> std::result::Result<Duration, String> {
    parse_duration(value, "timeout")
}

/// Parses a duration as [`parse_timeout`] does, for the setting `key`: its
/// messages name the setting (`` invalid `max_retry_wait` "-1s" ``), or
/// speak of "a timeout" or "a duration" when `key` is `timeout` or
/// `duration`.
pub fn parse_duration(value: &toml::Value, key: &str) -> std::result::Result<Duration, String> {
    let (named, subject) = match key {
        "timeout" | "duration" => (key.to_string(), format!("a {key}")),
        _ => (format!("`{key}`"), format!("`{key}`")),
    };
    let too_long = || format!("{subject} can be at most 365 days");
    let duration = match value {
        toml::Value::Integer(n) if *n > 0 => Duration::from_secs(*n as u64),
        toml::Value::Float(f) if f.is_finite() && *f > 0.0 && *f <= MAX_TIMEOUT.as_secs_f64() => {
            Duration::from_secs_f64(*f)
        }
        // Named as too long, not as a number that is not positive.
        toml::Value::Float(f) if f.is_finite() && *f > MAX_TIMEOUT.as_secs_f64() => {
            return Err(too_long())
        }
        toml::Value::String(s) if seconds_at_most(s) > 2 * MAX_TIMEOUT.as_secs() => {
            return Err(too_long())
        }
        toml::Value::String(s) => humantime::parse_duration(s.trim())
            .map_err(|_| {
                format!(
                    "invalid {named} {s:?}: expected a number and a unit, such as \"90s\", \"10m\" or \"1h30m\""
                )
            })?,
        other => {
            return Err(format!(
                "invalid {named} {other}: expected a positive number of seconds or a string such as \"90s\", \"10m\", \"1h\""
            ))
        }
    };
    if duration.is_zero() {
        return Err(format!("{subject} must be longer than zero"));
    }
    if duration > MAX_TIMEOUT {
        return Err(too_long());
    }
    Ok(duration)
}

/// An upper bound on the seconds a humantime string such as `"1h 30m"`
/// adds up to, from its numbers and units alone. humantime panics on a sum
/// that reaches `u64::MAX` seconds exactly (`"18446744073709551615s
/// 999999999ns 1ns"`), so such strings never reach it.
fn seconds_at_most(text: &str) -> u64 {
    let mut total: u64 = 0;
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| c.is_ascii_digit()) {
        rest = &rest[start..];
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        // Past u64, as humantime says too; saturate.
        let n: u64 = rest[..digits].parse().unwrap_or(u64::MAX);
        rest = &rest[digits..];
        // A fraction adds less than one more of the unit.
        if let Some(frac) = rest.strip_prefix('.') {
            let end = frac
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(frac.len());
            rest = &frac[end..];
        }
        let unit_start = rest
            .find(|c: char| !c.is_whitespace())
            .unwrap_or(rest.len());
        rest = &rest[unit_start..];
        let unit_len = rest
            .find(|c: char| !c.is_alphabetic())
            .unwrap_or(rest.len());
        // (seconds per unit, units per second), as humantime spells them.
        let (per_unit, per_second): (u64, u64) = match &rest[..unit_len] {
            "nanos" | "nsec" | "ns" => (1, 1_000_000_000),
            "usec" | "us" | "µs" => (1, 1_000_000),
            "millis" | "msec" | "ms" => (1, 1_000),
            "minutes" | "minute" | "min" | "mins" | "m" => (60, 1),
            "hours" | "hour" | "hr" | "hrs" | "h" => (3_600, 1),
            "days" | "day" | "d" => (86_400, 1),
            "weeks" | "week" | "wk" | "wks" | "w" => (604_800, 1),
            "months" | "month" | "M" => (2_630_016, 1),
            "years" | "year" | "yr" | "yrs" | "y" => (31_557_600, 1),
            // Seconds, and anything humantime will refuse.
            _ => (1, 1),
        };
        rest = &rest[unit_len..];
        let seconds = (n / per_second).saturating_add(1).saturating_mul(per_unit);
        total = total.saturating_add(seconds);
    }
    total
}

/// The longest timeout accepted: long enough for any run, short enough that
/// a deadline computed from it never overflows.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Pipeline> {
        Pipeline::parse(
            PathBuf::from("/p/pipeline.toml"),
            "pipeline.toml".into(),
            text.into(),
        )
    }

    #[test]
    fn task_names_keep_their_spans() {
        let p = parse("[tasks.outline]\ncommand = \"true\"\n").unwrap();
        let (name, _) = p.def.tasks.iter().next().unwrap();
        assert_eq!(name.get_ref(), "outline");
        assert_eq!(&p.text[name.span()], "outline");
    }

    #[test]
    fn unknown_keys_point_at_the_key() {
        let err = parse("[tasks.a]\ncommand = \"true\"\ninptus = []\n").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("pipeline.toml:3:1: unknown field `inptus`"),
            "{msg}"
        );
        assert!(msg.contains("^^^^^^"), "{msg}");
    }

    #[test]
    fn long_lines_are_shown_around_the_caret() {
        let text = format!(
            "[tasks.a]\ncommand = \"true\"\ninputs = {}x\n",
            "[".repeat(5000)
        );
        let p = Pipeline::parse(
            PathBuf::from("/p/pipeline.toml"),
            "pipeline.toml".into(),
            text.clone(),
        );
        let msg = p.unwrap_err().to_string();
        assert!(msg.len() < 600, "{msg}");
        let source = Source {
            display: "p.toml",
            text: &text,
        };
        let at = text.find('x').unwrap();
        let shown = source.diagnostic(at..at + 1, "here");
        let lines: Vec<&str> = shown.text.lines().collect();
        let caret = lines[3].find('^').unwrap();
        // The caret is under the `x`.
        assert_eq!(lines[2].chars().nth(caret), Some('x'), "{shown}");
        assert!(lines[2].starts_with("3 | …[[["), "{shown}");
    }

    #[test]
    fn timeouts() {
        assert_eq!(
            parse_timeout(&toml::Value::String("90s".into())),
            Ok(Duration::from_secs(90))
        );
        assert_eq!(
            parse_timeout(&toml::Value::String("1h 30m".into())),
            Ok(Duration::from_secs(5400))
        );
        assert_eq!(
            parse_timeout(&toml::Value::Integer(5)),
            Ok(Duration::from_secs(5))
        );
        assert!(parse_timeout(&toml::Value::Integer(0)).is_err());
        assert!(parse_timeout(&toml::Value::Integer(i64::MAX)).is_err());
        assert!(parse_timeout(&toml::Value::Float(1e300)).is_err());
        assert!(parse_timeout(&toml::Value::String("soon".into())).is_err());
    }

    #[test]
    fn timeouts_that_would_overflow_are_refused_not_panicked_on() {
        for text in [
            "18446744073709551615s 18446744073709551615s",
            "18446744073709551615s 999999999ns 1ns",
            "584542046091y",
            "99999999999999999999y",
            "18446744073709551615ns",
            "365days 1ns",
            "-1s",
            "0ns",
        ] {
            let value = toml::Value::String(text.into());
            assert!(parse_timeout(&value).is_err(), "{text}");
        }
        // Every unit still reaches 365 days.
        for text in [
            "31536000000000000ns",
            "31536000000000µs",
            "31536000000ms",
            "31536000s",
            "525600m",
            "8760h",
            "365d",
            "52w 1d",
            "1h 30m 15s 500ms",
        ] {
            let value = toml::Value::String(text.into());
            assert!(parse_timeout(&value).is_ok(), "{text}");
        }
        for n in [i64::MIN, -1, 0, 365 * 24 * 3600 + 1, i64::MAX] {
            assert!(parse_timeout(&toml::Value::Integer(n)).is_err(), "{n}");
        }
        for f in [
            f64::NAN,
            f64::INFINITY,
            -0.0,
            1e-300,
            f64::MIN_POSITIVE,
            1e300,
        ] {
            assert!(parse_timeout(&toml::Value::Float(f)).is_err(), "{f}");
        }
    }
}
