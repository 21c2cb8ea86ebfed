//! A pipeline file's text as diagnostics point into it: `file:line:col`,
//! the line (the secret parts of a URL hidden) and carets under the span
//! (under its first and last line, a span over several),
//! laid out in terminal columns ([`frame`](super::frame)); the refusal of a file that is not UTF-8; the
//! whole refusal of a file toml or serde could not read (a duplicate key
//! named, the closest key to an unknown one, a value of the wrong type in
//! the pipeline's terms: [`wrong_type`](super::wrong_type)); and the
//! closest name to a mistyped one (a key, a task, a model, an output).

use std::ops::Range;

use super::advice::{Advice, Trouble};
use crate::error::{floor_char_boundary, Diagnostic, Error, Place, Position, Result};

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
    /// `file:line:col: message`, then the line and carets under the span:
    /// see [`frame`](super::frame). A span over several lines shows two:
    /// its first, carets from the span's start to the line's end, and its
    /// last, carets from the line's first character that is not blank to
    /// the span's end, with a `...` line between them when lines are left
    /// out; never more, however long the span. `col` counts characters
    /// from 1, as rustc and most editors do, not the terminal columns the
    /// carets are laid out in, and is the span's start. Its [`Place`]
    /// holds that start and the last character the carets are under, for
    /// a program.
    pub fn diagnostic(&self, span: Range<usize>, message: &str) -> Diagnostic {
        self.framed(self.text, span, message)
    }

    /// [`Source::diagnostic`], with the bytes of the file in `hidden`
    /// (absolute ranges) shown as `*`: the line of a URL refusal is shown
    /// without the credentials, query or token it holds.
    pub fn diagnostic_hiding(
        &self,
        span: Range<usize>,
        message: &str,
        hidden: &[Range<usize>],
    ) -> Diagnostic {
        let mut bytes = self.text.as_bytes().to_vec();
        for r in hidden {
            let end = r.end.min(bytes.len());
            for b in &mut bytes[r.start.min(end)..end] {
                *b = b'*';
            }
        }
        // Every byte of a character replaced, or none: still UTF-8.
        let text = String::from_utf8_lossy(&bytes);
        self.framed(&text, span, message)
    }

    /// [`Source::diagnostic`] of `text`, this file's text or a copy of it
    /// with bytes hidden (the same length, each hidden character as many
    /// `*` as it has bytes): its place counts the characters of the file
    /// as it is, so a hidden `é` is one column, not two.
    fn framed(&self, text: &str, span: Range<usize>, message: &str) -> Diagnostic {
        let pos = Position::of_offset(text, span.start);
        let at = floor_char_boundary(text, span.start.min(text.len()));
        let (first_start, first) = line_at(text, at);
        let from = (at - first_start).min(first.len());
        // Where the span's last character that is not blank ends: a span
        // taking in the line ending or the blank lines after its value
        // ends on the line its value does.
        let end = floor_char_boundary(text, span.end.clamp(at, text.len()));
        let end = at + text[at..end].trim_end().len();
        let below = text[at..end].matches('\n').count();
        let message = tame(&visible(message, &['\t', '\n']));
        let last_line = pos.line + below;
        let pad = " ".repeat(last_line.to_string().len());
        let mut shown = format!("{file}:{pos}: {message}\n{pad} |", file = self.display);
        // The bytes of the line the carets are under, last: `start..end`
        // of the file.
        let marked = if below == 0 {
            let to = span
                .end
                .min(first_start + first.len())
                .saturating_sub(first_start);
            push_frame(&mut shown, pos.line, &pad, first, from..to.max(from));
            first_start + from..first_start + to.max(from)
        } else {
            let to = first.trim_end().len().max(from);
            push_frame(&mut shown, pos.line, &pad, first, from..to);
            if below > 1 {
                shown.push_str("\n...");
            }
            let (last_start, last) = line_at(text, end);
            let from = last.len() - last.trim_start().len();
            let to = (end - last_start).clamp(from, last.len());
            push_frame(&mut shown, last_line, &pad, last, from..to);
            last_start + from..last_start + to
        };
        Diagnostic {
            text: shown,
            place: Some(self.place(span.start, marked)),
        }
    }

    /// Where a diagnostic of the span from byte `start` points: that
    /// start, its `file:line:col`, and the last character its last line's
    /// carets are under, `marked` (the one caret of an empty span is
    /// under its start).
    fn place(&self, start: usize, marked: Range<usize>) -> Place {
        let pos = Position::of_offset(self.text, start);
        // A byte's position is that of the character it is in.
        let last = Position::of_offset(self.text, marked.end.max(marked.start + 1) - 1);
        Place {
            file: self.display.to_string(),
            line: pos.line,
            col: pos.col,
            end_line: last.line,
            end_col: last.col,
        }
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

/// The line of `text` byte `at` is on: where it starts, and its text
/// without its line ending (a `\r\n` one included).
fn line_at(text: &str, at: usize) -> (usize, &str) {
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    let line = &text[start..end];
    if end < text.len() {
        return (start, line.strip_suffix('\r').unwrap_or(line));
    }
    (start, line)
}

/// Line `number`, `line`, as shown, and the carets under the bytes
/// `span` of it, after `out`: every URL's secret parts on it hidden (a
/// hook's token never shows, whatever the error on its line).
fn push_frame(out: &mut String, number: usize, pad: &str, line: &str, span: Range<usize>) {
    let hidden = super::hidden_url::line_secret_spans(line);
    let (line, under) = super::frame::frame(line, span, &hidden);
    let width = pad.len();
    out.push_str(&format!("\n{number:<width$} | {line}\n{pad} | {under}"));
}

/// The longest run of characters without a blank a message shows whole:
/// a task name (at most 200 bytes) or a path fits; a key or value of
/// thousands (a minified line, a paste gone wrong) is cut.
const WHOLE: usize = 200;
/// How much of a longer run is shown, before its `…`.
const SHOWN: usize = 120;

/// `message` with every run of characters without a blank longer than
/// [`WHOLE`] cut after [`SHOWN`] of them, marked `…`, the quotes and
/// brackets that close it kept (``unknown field `xxx…`, expected ...``).
fn tame(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(4096));
    let mut rest = message;
    while !rest.is_empty() {
        let blank = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (run, after) = rest.split_at(blank);
        // What it quotes: the quotes and brackets around it, and the
        // punctuation after, are not counted, and kept.
        let opened = run.trim_start_matches(['`', '"', '\'', '[', '(', '{']);
        let body = opened.trim_end_matches(['`', '"', '\'', ']', ')', '}', ',', ':', ';', '.']);
        match body.char_indices().nth(WHOLE) {
            None => out.push_str(run),
            Some(_) => {
                let cut = body
                    .char_indices()
                    .nth(SHOWN)
                    .map_or(body.len(), |(i, _)| i);
                out.push_str(&run[..run.len() - opened.len()]);
                out.push_str(&body[..cut]);
                out.push('…');
                out.push_str(&opened[body.len()..]);
            }
        }
        let word = after
            .find(|c: char| !c.is_whitespace())
            .unwrap_or(after.len());
        out.push_str(&after[..word]);
        rest = &after[word..];
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The frame `text` shows for the span from the first `from` to just
    /// after the last `to` in it, without its first line.
    fn frame(text: &str, from: &str, to: &str) -> String {
        let source = Source {
            display: "p.toml",
            text,
        };
        let span = text.find(from).unwrap()..text.rfind(to).unwrap() + to.len();
        let shown = source.diagnostic(span, "here").text;
        let (first, rest) = shown.split_once('\n').unwrap();
        assert!(first.starts_with("p.toml:") && first.ends_with(": here"));
        rest.to_string()
    }

    #[test]
    fn a_run_without_a_blank_longer_than_whole_is_cut_its_closers_kept() {
        let long = "x".repeat(300);
        assert_eq!(
            tame(&format!("unknown field `{long}`, expected one of `a`")),
            format!(
                "unknown field `{}…`, expected one of `a`",
                "x".repeat(SHOWN)
            )
        );
        // Names and paths up to WHOLE characters, and blanks, as they are.
        let name = "n".repeat(WHOLE);
        let text = format!("task `{name}`  fails:\n\tagain ");
        assert_eq!(tame(&text), text);
        // Characters, not bytes: a cut never falls inside one.
        let wide = "é".repeat(WHOLE + 1);
        assert_eq!(tame(&wide), format!("{}…", "é".repeat(SHOWN)));
        assert_eq!(tame(""), "");
    }

    #[test]
    fn a_span_over_two_lines_shows_both() {
        assert_eq!(
            frame("a = 1\ntimeout = [ 1,\n   2 ]\nb = 2\n", "[", "]"),
            "  |\n2 | timeout = [ 1,\n  |           ^^^^\n3 |    2 ]\n  |    ^^^"
        );
        // Blank at the end of its first line has no caret; a `\r\n` line
        // ending is no part of either line.
        assert_eq!(
            frame("timeout = [ 1,  \r\n\t2 ]\r\n", "[", "]"),
            "  |\n1 | timeout = [ 1,  \n  |           ^^^^\n2 |     2 ]\n  |     ^^^"
        );
    }

    #[test]
    fn a_span_over_many_lines_shows_its_first_and_last_with_dots_between() {
        let text = format!(
            "{}command = [\n{}]\n",
            "\n".repeat(8),
            "  \"echo\",\n".repeat(10_000)
        );
        let shown = frame(&text, "[", "]");
        assert_eq!(
            shown,
            "      |\n9     | command = [\n      |           ^\n...\n10010 | ]\n      | ^"
        );
        assert_eq!(shown.lines().count(), 6, "bounded whatever the span");
        let source = Source {
            display: "p.toml",
            text: &text,
        };
        let at = text.find('[').unwrap();
        assert!(source
            .diagnostic(at..text.len(), "here")
            .text
            .starts_with("p.toml:9:11: here\n"));
    }

    #[test]
    fn a_span_ending_in_blank_lines_is_on_one_line() {
        let text = "timeout = \"soon\"\n\n\n";
        let source = Source {
            display: "p.toml",
            text,
        };
        assert_eq!(
            source.diagnostic(10..text.len(), "here").text,
            "p.toml:1:11: here\n  |\n1 | timeout = \"soon\"\n  |           ^^^^^^"
        );
    }

    /// The place of the diagnostic of the span from the first `from` to
    /// just after the last `to` in `text`: start and end, as
    /// `(line, col, end_line, end_col)`.
    fn place(text: &str, from: &str, to: &str) -> (usize, usize, usize, usize) {
        let source = Source {
            display: "p.toml",
            text,
        };
        let span = text.find(from).unwrap()..text.rfind(to).unwrap() + to.len();
        let p = source.diagnostic(span, "here").place.unwrap();
        assert_eq!(p.file, "p.toml");
        (p.line, p.col, p.end_line, p.end_col)
    }

    #[test]
    fn a_place_ends_at_the_last_character_under_a_caret() {
        // Over several lines: the value's last character, in characters.
        let text = "a = 1\ntimeout = [ 1,\n  é, 2 ]\nb = 2\n";
        assert_eq!(place(text, "[", "]"), (2, 11, 3, 8));
        // On one line, inclusive: a one-character value starts and ends
        // at its column.
        assert_eq!(place("jobs = 0\n", "0", "0"), (1, 8, 1, 8));
        assert_eq!(place("k = \"計画\"\n", "\"", "\""), (1, 5, 1, 8));
        // A span taking in its line ending and blank lines ends where its
        // value does, as its carets.
        assert_eq!(place("t = \"soon\"\n\n\n", "\"", "\n\n"), (1, 5, 1, 10));
        assert_eq!(place("t = [\n  1,\n]\r\n\n", "[", "\n\n"), (1, 5, 3, 1));
        // An empty span (the end of the file) ends where it starts.
        let text = "[tasks.a\n";
        let source = Source {
            display: "p.toml",
            text,
        };
        let p = source
            .diagnostic(text.len()..text.len(), "here")
            .place
            .unwrap();
        assert_eq!((p.line, p.col, p.end_line, p.end_col), (2, 1, 2, 1));
        // A hidden character counts as one, as in the file.
        let text = "u = \"https://é:pw@h/\"\n";
        let source = Source {
            display: "p.toml",
            text,
        };
        // `é:pw`, bytes 13 to 18.
        let hidden = vec![Range { start: 13, end: 18 }];
        let shown = source.diagnostic_hiding(4..text.len() - 1, "here", &hidden);
        assert!(!shown.text.contains("pw"), "{shown}");
        let p = shown.place.unwrap();
        assert_eq!((p.line, p.col, p.end_line, p.end_col), (1, 5, 1, 21));
    }

    #[test]
    fn the_last_line_is_laid_out_as_any_line() {
        // In terminal columns, cut at 120 with its carets stopping there.
        let text = format!("x = \"\"\"\n計 {}\"\"\"\n", "y".repeat(300));
        let shown = frame(&text, "\"\"\"", "\"\"\"");
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines[3], format!("2 | 計 {}…", "y".repeat(116)));
        assert_eq!(lines[4], format!("  | {}", "^".repeat(119)));

        // A URL's password (and path, a hook's token may be there) on it
        // is hidden.
        let text = "urls = [\n  \"https://me:hunter2@host/v1\" ]\n";
        let shown = frame(text, "[", "]");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("\"https://**********@host***\" ]"),
            "{shown}"
        );
    }
}
