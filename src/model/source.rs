//! A pipeline file's text as diagnostics point into it: `file:line:col`,
//! the line (the secret parts of a URL hidden) and carets under the span,
//! laid out in terminal columns ([`frame`](super::frame)); the refusal of a file that is not UTF-8; the
//! whole refusal of a file toml or serde could not read (a duplicate key
//! named, the closest key to an unknown one, a value of the wrong type in
//! the pipeline's terms: [`wrong_type`](super::wrong_type)); and the
//! closest name to a mistyped one (a key, a task, a model, an output).

use std::ops::Range;

use super::advice::{Advice, Trouble};
use crate::error::{floor_char_boundary, Error, Position, Result};

/// The text of a pipeline file, or a refusal at the first byte that is not
/// UTF-8 (with its line and column, as for any other mistake in the file;
/// for binary data, with `advice`'s hint).
pub(super) fn text_of(display: &str, bytes: Vec<u8>, advice: &Advice) -> Result<String> {
    let e = match String::from_utf8(bytes) {
        Ok(text) => return Ok(text),
        Err(e) => e,
    };
    let at = e.utf8_error().valid_up_to();
    let bytes = e.into_bytes();
    // Everything before the bad byte is valid, so its line and column are
    // those of the lossy text.
    let text = String::from_utf8_lossy(&bytes);
    let source = Source {
        display,
        text: &text,
    };
    let binary = bytes.iter().take(8192).any(|&b| b == 0);
    let message = format!(
        "the file is not UTF-8: byte 0x{:02X} at offset {at} cannot start or continue a character",
        bytes[at]
    );
    let hint = if binary {
        advice.hint(&Trouble::Binary)
    } else {
        "save the file as UTF-8 (for example `iconv -f latin1 -t utf-8`); paths and strings in it must be UTF-8 too".into()
    };
    Err(Error::pipeline(source.diagnostic(at..at + 1, &message)).hint(hint))
}

/// Text plus name, enough to render a diagnostic.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub display: &'a str,
    pub text: &'a str,
}

impl Source<'_> {
    /// `file:line:col: message`, then the line and carets under the span
    /// (under its first line, if it has more): see [`frame`](super::frame).
    /// `col` counts characters from 1, as rustc and most editors do, not
    /// the terminal columns the carets are laid out in.
    pub fn diagnostic(&self, span: Range<usize>, message: &str) -> String {
        let text = self.text;
        let pos = Position::of_offset(text, span.start);
        let at = floor_char_boundary(text, span.start.min(text.len()));
        let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
        let mut line_text = &text[line_start..line_end];
        if line_end < text.len() {
            // A `\r\n` ending is not part of the line.
            line_text = line_text.strip_suffix('\r').unwrap_or(line_text);
        }
        let from = (at - line_start).min(line_text.len());
        let to = span.end.clamp(at, line_end) - line_start;
        // A hook's token never shows, whatever the error on its line.
        let hidden = super::hidden_url::line_secret_spans(line_text);
        let (line_text, under) = super::frame::frame(line_text, from..to, &hidden);
        let message = visible(message, &['\t', '\n']);
        format!(
            "{file}:{pos}: {message}\n{pad} |\n{line} | {line_text}\n{pad} | {under}",
            file = self.display,
            pad = " ".repeat(pos.line.to_string().len()),
            line = pos.line,
        )
    }

    /// [`Source::diagnostic`], with the bytes of the file in `hidden`
    /// (absolute ranges) shown as `*`: the line of a URL refusal is shown
    /// without the credentials, query or token it holds.
    pub fn diagnostic_hiding(
        &self,
        span: Range<usize>,
        message: &str,
        hidden: &[Range<usize>],
    ) -> String {
        let mut bytes = self.text.as_bytes().to_vec();
        for r in hidden {
            let end = r.end.min(bytes.len());
            for b in &mut bytes[r.start.min(end)..end] {
                *b = b'*';
            }
        }
        // Every byte of a character replaced, or none: still UTF-8.
        let text = String::from_utf8_lossy(&bytes);
        Source {
            display: self.display,
            text: &text,
        }
        .diagnostic(span, message)
    }

    /// Just `file:line:col`.
    pub fn locate(&self, span: Range<usize>) -> String {
        format!(
            "{}:{}",
            self.display,
            Position::of_offset(self.text, span.start)
        )
    }
}

/// `text` with every control character but those in `keep` shown as `�`.
fn visible(text: &str, keep: &[char]) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && !keep.contains(&c) {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

/// The one of `names` closest to `name` (Jaro-Winkler similarity, as
/// clap's own suggestions), when close enough to be a typo of it.
pub fn closest<'a>(name: &str, names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    names
        .into_iter()
        .filter(|&n| n != name)
        .map(|n| (strsim::jaro_winkler(name, n), n))
        .filter(|&(score, _)| score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0).then_with(|| b.1.cmp(a.1)))
        .map(|(_, n)| n)
}

/// `error` with a `did you mean` hint naming `near`, when there is one.
pub fn did_you_mean(error: Error, near: Option<&str>) -> Error {
    match near {
        Some(near) => error.hint(format!("did you mean `{near}`?")),
        None => error,
    }
}

/// The error of a pipeline file toml or serde could not read, in a
/// pipeline author's words: what and where (`file:line:col`, the key a
/// duplicate names), and what to do (the closest key to an unknown one).
pub(super) fn parse_error(
    e: &toml::de::Error,
    text: &str,
    display: &str,
    advice: &Advice,
) -> Error {
    let span = e.span().unwrap_or(0..0);
    let raw = e.message().trim_end();
    let shape = raw.starts_with("invalid type: ") || raw.starts_with("invalid length ");
    let at = text.get(span.start..).unwrap_or("");
    let (message, shape_hint) = if shape && at.starts_with("[[") {
        // serde sees the array `[[x]]` makes from where it wanted the one
        // table `[x]` is.
        (
            "`[[...]]` makes an array of tables, and this takes one table".to_string(),
            Some("write the header with one pair of brackets, such as [tasks.NAME]".to_string()),
        )
    } else if shape
        && raw.starts_with("invalid type: map, expected a sequence")
        && at.starts_with('[')
    {
        // And the other way round: `[hooks]` where hooks are `[[hooks]]`.
        (
            "`[...]` makes one table, and this takes an array of tables".to_string(),
            Some("write the header with two pairs of brackets, one for each entry, such as [[hooks]]".to_string()),
        )
    } else {
        super::wrong_type::shape_error(raw, text, span.clone())
    };
    // toml says `duplicate key` and marks it: named, with what to do (a
    // table given twice is the likelier slip).
    let (message, duplicate) = match text.get(span.clone()) {
        Some(key) if message == "duplicate key" && !key.trim().is_empty() => {
            let key = key.trim();
            let line_start = text[..span.start].rfind('\n').map_or(0, |at| at + 1);
            let line = text[line_start..].lines().next().unwrap_or("").trim();
            let hint = match line.strip_prefix('[') {
                Some(header) => format!(
                    "the table [{}] is given twice: merge the two into one (a task's keys go under one [tasks.NAME] header)",
                    header.split(']').next().unwrap_or(key).trim()
                ),
                None => format!("`{key}` is given twice in this table: keep one"),
            };
            (format!("duplicate key `{key}`"), Some(hint))
        }
        _ => (message, None),
    };
    let source = Source { display, text };
    let hint = if let Some(hint) = duplicate {
        hint
    } else if text.contains('\0') {
        advice.hint(&Trouble::Binary)
    } else if let Some(hint) = shape_hint {
        hint
    } else if message.starts_with("unknown field") {
        "see docs/pipeline.md for every key a pipeline file may hold".to_string()
    } else if ["invalid type", "invalid value", "missing field"]
        .iter()
        .any(|p| message.starts_with(p))
    {
        "fix the value at the marked position: docs/pipeline.md gives every key's type".to_string()
    } else {
        "fix the TOML syntax at the marked position".to_string()
    };
    let error = Error::pipeline(source.diagnostic(span, &message));
    let near = unknown_field(&message);
    did_you_mean(error, near.as_deref()).hint(hint)
}

/// The closest expected key to the one serde calls unknown
/// (``unknown field `comand`, expected one of `inputs`, `command`, ...``),
/// when close enough to be a typo of it.
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, expected) = rest.split_once('`')?;
    let names = expected.split('`').skip(1).step_by(2);
    closest(field, names).map(str::to_string)
}
