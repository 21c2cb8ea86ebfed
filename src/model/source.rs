//! A pipeline file's text as diagnostics point into it: `file:line:col`,
//! the line (a window of a long one, control characters made visible, the
//! secret parts of a URL hidden) and
//! a caret under the span (laid out as a terminal shows the line: a CJK
//! character two columns, a combining one none, a tab a tab); the refusal of a file that is not UTF-8; the
//! whole refusal of a file toml or serde could not read (a duplicate key
//! named, the closest key to an unknown one, a value of the wrong type in
//! the pipeline's terms: [`wrong_type`](super::wrong_type)); and the
//! closest name to a mistyped one (a key, a task, a model, an output).

use std::ops::Range;

use unicode_width::UnicodeWidthChar;

use super::advice::{Advice, Trouble};
use crate::error::{Error, Position, Result};

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
    /// `file:line:col: message`, then the line and a caret under the span.
    pub fn diagnostic(&self, span: Range<usize>, message: &str) -> String {
        let pos = Position::of_offset(self.text, span.start);
        let line_text = self.text.lines().nth(pos.line - 1).unwrap_or("");
        let width = {
            let end = span.end.min(self.text.len()).max(span.start);
            let spanned = self.text.get(span.start..end).unwrap_or("");
            let first_line = spanned.lines().next().unwrap_or("");
            first_line.chars().count().max(1)
        };
        let gutter = pos.line.to_string().len();
        // A hook's token never shows, whatever the error on its line.
        let mut hidden = line_text.as_bytes().to_vec();
        for r in super::hidden_url::line_secret_spans(line_text) {
            hidden[r].fill(b'*');
        }
        // Every byte of a character replaced, or none: still UTF-8.
        let line_text = String::from_utf8_lossy(&hidden);
        // The file may hold anything (binary garbage, escape sequences):
        // show control characters as one placeholder each, so the terminal
        // is safe and the caret stays aligned.
        let line_text = visible(&line_text, &['\t']);
        let message = visible(message, &['\t', '\n']);
        let (line_text, col, width) = window(&line_text, pos.col - 1, width);
        let (space, carets) = under(&line_text, col, width);
        format!(
            "{file}:{pos}: {message}\n{pad} |\n{line} | {line_text}\n{pad} | {space}{carets}",
            file = self.display,
            pad = " ".repeat(gutter),
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

/// The part of a long line shown under a message: at most [`SHOWN`]
/// characters around column `col` (0-based), cut ends marked `…`; and the
/// caret's column and width in it. A minified or binary line can be
/// megabytes long.
fn window(line: &str, col: usize, width: usize) -> (String, usize, usize) {
    const SHOWN: usize = 120;
    let chars: Vec<char> = line.chars().collect();
    if chars.len() <= SHOWN {
        return (line.to_string(), col, width);
    }
    let col = col.min(chars.len());
    let start = col.saturating_sub(SHOWN / 3);
    let end = (start + SHOWN).min(chars.len());
    let mut shown: String = chars[start..end].iter().collect();
    let mut caret = col - start;
    if start > 0 {
        shown.insert(0, '…');
        caret += 1;
    }
    if end < chars.len() {
        shown.push('…');
    }
    (shown, caret, width.min(end.saturating_sub(col)).max(1))
}

/// What goes under `line` to point at its characters `col..col + width`:
/// the space before them as the terminal lays out the line (a tab where
/// it has a tab, two spaces under a CJK character, none under a combining
/// one), and a caret for each column they take.
fn under(line: &str, col: usize, width: usize) -> (String, String) {
    let mut space = String::new();
    let mut columns = 0;
    for (i, c) in line.chars().enumerate().take(col + width) {
        let w = c.width().unwrap_or(0);
        if i < col {
            match c {
                '\t' => space.push('\t'),
                _ => space.extend(std::iter::repeat_n(' ', w)),
            }
        } else {
            columns += if c == '\t' { 1 } else { w };
        }
    }
    (space, "^".repeat(columns.max(1)))
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
