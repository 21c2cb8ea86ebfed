//! Finding the answer in what a model wrote: pure functions over text.
//!
//! Reasoning models put their thinking before the answer, in
//! `<think>…</think>` (Qwen 3, DeepSeek R1) or `<thinking>…</thinking>`;
//! [`strip_reasoning`] removes it. Only reasoning that *leads* the text is
//! removed, so an answer that talks about such tags keeps them:
//!
//! - leading blocks, one after the other, tag names case-insensitive;
//! - everything up to a closing tag that no opening tag precedes (servers
//!   whose chat template opens `<think>` in the prompt, so the model's text
//!   starts inside its reasoning);
//! - a leading opening tag that is never closed: all of the rest is
//!   reasoning (the model ran out of tokens or never answered), and the
//!   answer is empty.
//!
//! What remains is a suffix of the text, so positions in it are positions
//! in what the model wrote.
//!
//! Small models wrap JSON in prose and code fences. [`extract_json`] takes
//! the first of: the whole text as JSON; a ```` ```json ```` (or bare
//! ```` ``` ````) fenced block, the first that satisfies the schema among
//! those that parse, else the first that parses; a balanced top-level
//! `{…}` or `[…]` in the text (never one inside a value that is JSON up to
//! where the text is cut off), chosen the same way. When none parses it says
//! what came closest, with the parser's position, so a re-ask can say
//! exactly what was wrong.

use serde_json::Value;

/// How many `{`/`[` candidates in running text are tried at most: each try
/// may scan to the end of the text, so the bound keeps a long answer of
/// stray brackets linear.
const MAX_INLINE_CANDIDATES: usize = 64;

/// What [`strip_reasoning`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stripped<'a> {
    /// The text after the reasoning, leading whitespace removed when
    /// reasoning was; the whole text when there was none.
    pub answer: &'a str,
    /// Where `answer` starts in the text.
    pub offset: usize,
    /// Whether any reasoning was removed.
    pub removed: bool,
    /// Whether the reasoning was never closed (then `answer` is empty).
    pub unclosed: bool,
}

const OPEN: [&str; 2] = ["<think>", "<thinking>"];
const CLOSE: [&str; 2] = ["</think>", "</thinking>"];

/// Removes the reasoning that leads `text` (see the module docs).
pub fn strip_reasoning(text: &str) -> Stripped<'_> {
    // ASCII lowercasing keeps every byte offset.
    let lower = text.to_ascii_lowercase();
    let mut at = 0;
    let mut removed = false;
    let first_open = OPEN.iter().filter_map(|t| lower.find(t)).min();
    let first_close = CLOSE
        .iter()
        .filter_map(|t| lower.find(t).map(|i| (i, t.len())))
        .min();
    if let Some((close, len)) = first_close {
        if first_open.is_none_or(|open| open > close) {
            at = close + len;
            removed = true;
        }
    }
    loop {
        let start = at + (lower.len() - at - lower[at..].trim_start().len());
        let Some((open, close)) = OPEN
            .iter()
            .zip(CLOSE)
            .find(|(open, _)| lower[start..].starts_with(**open))
        else {
            break;
        };
        let body = start + open.len();
        match lower[body..].find(close) {
            Some(end) => {
                at = body + end + close.len();
                removed = true;
            }
            None => {
                return Stripped {
                    answer: "",
                    offset: text.len(),
                    removed: true,
                    unclosed: true,
                }
            }
        }
    }
    if removed {
        let answer = text[at..].trim_start();
        Stripped {
            answer,
            offset: text.len() - answer.len(),
            removed,
            unclosed: false,
        }
    } else {
        Stripped {
            answer: text,
            offset: 0,
            removed,
            unclosed: false,
        }
    }
}

/// Where in the answer a JSON value was found (or looked for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// The whole answer.
    Whole,
    /// A fenced block: its number among the JSON fences (from 1), how many
    /// there were, and the line of its opening fence.
    Fence {
        index: usize,
        count: usize,
        line: usize,
    },
    /// A `{…}` or `[…]` in running text, at this line and column.
    Inline { line: usize, column: usize },
}

impl Place {
    /// A phrase for messages: "the whole answer", "the ```json block at
    /// line 3", ...
    pub fn describe(&self) -> String {
        match self {
            Place::Whole => "the whole answer".into(),
            Place::Fence { count: 1, line, .. } => {
                format!("the ```json block at line {line}")
            }
            Place::Fence { index, count, line } => {
                format!("```json block {index} of {count}, at line {line}")
            }
            Place::Inline { line, column } => {
                format!("the JSON value in the text at line {line}, column {column}")
            }
        }
    }
}

/// A JSON value taken from the answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub value: Value,
    pub place: Place,
    /// Its text, as the answer wrote it: what keeps the order of its
    /// objects' keys, which `value` sorts.
    pub text: String,
}

/// JSON that was there but did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub place: Place,
    /// The parser's complaint, without its position.
    pub error: String,
    /// The parser's position, within the block or value at `place`.
    pub line: usize,
    pub column: usize,
}

/// What [`extract_json`] made of an answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Extracted {
    Found(Found),
    /// Something that looked like JSON, closest first, did not parse.
    Invalid(Invalid),
    /// Nothing looked like JSON. `other_fences` lists the languages of the
    /// fenced blocks that were not JSON (` ```python `), for the message.
    Nothing {
        other_fences: Vec<String>,
    },
}

/// Finds the JSON value in `text[from..]` (see the module docs). `fits`
/// says whether a value satisfies the schema; it picks among several
/// candidates of the same kind. Lines and columns count from the start of
/// `text`.
pub fn extract_json(text: &str, from: usize, fits: &dyn Fn(&Value) -> bool) -> Extracted {
    let body = &text[from..];
    let trimmed = body.trim();
    let whole = serde_json::from_str::<Value>(trimmed);
    if let Ok(value) = whole {
        return Extracted::Found(Found {
            value,
            place: Place::Whole,
            text: trimmed.to_string(),
        });
    }

    let (blocks, other_fences) = fences(body);
    let count = blocks.len();
    let mut first_error = None;
    let mut parsed = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        let place = Place::Fence {
            index: i + 1,
            count,
            line: line_col(text, from + block.fence_at).0,
        };
        let json = block.content.trim();
        match serde_json::from_str::<Value>(json) {
            Ok(value) => parsed.push(Found {
                value,
                place,
                text: json.to_string(),
            }),
            Err(e) if first_error.is_none() => first_error = Some(invalid(place, &e)),
            Err(_) => {}
        }
    }
    if let Some(found) = pick(parsed, fits) {
        return Extracted::Found(found);
    }

    if first_error.is_none() && looks_like_json(trimmed) {
        if let Err(e) = &whole {
            first_error = Some(invalid(Place::Whole, e));
        }
    }
    let mut parsed = Vec::new();
    let mut start = 0;
    let mut tried = 0;
    while tried < MAX_INLINE_CANDIDATES {
        let Some(open) = body[start..].find(['{', '[']).map(|i| start + i) else {
            break;
        };
        tried += 1;
        let (line, column) = line_col(text, from + open);
        let place = Place::Inline { line, column };
        match balanced_end(&body[open..]) {
            Ok(len) => {
                let json = &body[open..open + len];
                match serde_json::from_str::<Value>(json) {
                    Ok(value) => parsed.push(Found {
                        value,
                        place,
                        text: json.to_string(),
                    }),
                    Err(e) if first_error.is_none() && looks_like_json(&body[open..]) => {
                        first_error = Some(invalid(place, &e));
                    }
                    Err(_) => {}
                }
                // Top-level only: what is inside a candidate is not one.
                start = open + len;
            }
            Err(unbalanced) => {
                let meant = looks_like_json(&body[open..]);
                let error = meant
                    .then(|| serde_json::from_str::<Value>(&body[open..]).err())
                    .flatten();
                // A value that never closes and is JSON up to the end of
                // the text (an answer cut off inside it) holds the rest of
                // the text: nothing after its opener is top-level, so `[]`
                // inside `{"risks": [], "notes": "…` is never taken for the
                // answer. An opener of prose (`{ foo`), of JSON that goes
                // wrong before the end (an example written `[ ... ]`), or
                // one closed by the wrong bracket is stepped over.
                let cut_off = unbalanced == Unbalanced::Unclosed
                    && error.as_ref().is_some_and(serde_json::Error::is_eof);
                if let Some(e) = error.filter(|_| first_error.is_none()) {
                    first_error = Some(invalid(place, &e));
                }
                if cut_off {
                    break;
                }
                start = open + 1;
            }
        }
    }
    if let Some(found) = pick(parsed, fits) {
        return Extracted::Found(found);
    }
    match first_error {
        Some(e) => Extracted::Invalid(e),
        None => Extracted::Nothing { other_fences },
    }
}

/// The first candidate that fits the schema, else the first.
fn pick(mut parsed: Vec<Found>, fits: &dyn Fn(&Value) -> bool) -> Option<Found> {
    let i = parsed.iter().position(|f| fits(&f.value)).unwrap_or(0);
    (i < parsed.len()).then(|| parsed.swap_remove(i))
}

fn invalid(place: Place, e: &serde_json::Error) -> Invalid {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    Invalid {
        place,
        error: full.strip_suffix(&suffix).unwrap_or(&full).to_string(),
        line: e.line(),
        column: e.column(),
    }
}

/// Whether text starting with `{` or `[` is meant as JSON rather than
/// prose in brackets: an object that opens with a key (or closes at once),
/// an array that opens with a value.
fn looks_like_json(text: &str) -> bool {
    let mut chars = text.chars();
    let open = chars.next();
    let next = chars.as_str().trim_start().chars().next();
    match (open, next) {
        (Some('{'), Some('"' | '}')) => true,
        (Some('['), Some(c)) => matches!(c, '{' | '[' | '"' | ']' | '-' | '0'..='9'),
        _ => false,
    }
}

/// Why a `{` or `[` has no balanced end.
#[derive(Debug, PartialEq, Eq)]
enum Unbalanced {
    /// The text ends inside it.
    Unclosed,
    /// A bracket closes the wrong opener.
    Mismatched,
}

/// The length of the balanced `{…}` or `[…]` that `text` starts with,
/// strings and escapes respected; else whether it never closes or a
/// bracket closes the wrong opener.
fn balanced_end(text: &str) -> Result<usize, Unbalanced> {
    let mut stack = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    for (i, b) in text.bytes().enumerate() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' => stack.push(b'}'),
            b'[' => stack.push(b']'),
            b'}' | b']' => {
                if stack.pop() != Some(b) {
                    return Err(Unbalanced::Mismatched);
                }
                if stack.is_empty() {
                    return Ok(i + 1);
                }
            }
            _ => {}
        }
    }
    Err(Unbalanced::Unclosed)
}

/// A JSON fenced block: where its opening fence starts, and what it holds.
struct Block<'a> {
    fence_at: usize,
    content: &'a str,
}

/// The JSON fenced blocks of `text` (info string `json`, any case, or
/// none), and the languages of the others. A block never closed runs to
/// the end of the text (an answer cut off inside it).
fn fences(text: &str) -> (Vec<Block<'_>>, Vec<String>) {
    let mut blocks = Vec::new();
    let mut others = Vec::new();
    let mut lines = line_spans(text).peekable();
    while let Some((at, line)) = lines.next() {
        let opening = line.trim_start();
        let ticks = opening.len() - opening.trim_start_matches('`').len();
        if ticks < 3 {
            continue;
        }
        let info = opening[ticks..].trim();
        let content_start = lines.peek().map_or(text.len(), |(next, _)| *next);
        let mut content_end = text.len();
        for (at, line) in lines.by_ref() {
            let t = line.trim();
            if t.starts_with("```") && t.trim_start_matches('`').is_empty() {
                content_end = at;
                break;
            }
            if let Some(before) = t.strip_suffix("```").filter(|b| !b.ends_with('`')) {
                // `}```: the fence closes on the value's last line.
                content_end = at + (line.len() - line.trim_start().len()) + before.len();
                break;
            }
        }
        let content = &text[content_start.min(content_end)..content_end];
        if info.is_empty() || info.eq_ignore_ascii_case("json") {
            blocks.push(Block {
                fence_at: at,
                content,
            });
        } else {
            others.push(info.split_whitespace().next().unwrap_or(info).to_string());
        }
    }
    (blocks, others)
}

/// Each line of `text` with its byte offset, line ends excluded.
fn line_spans(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut at = 0;
    text.split('\n').map(move |line| {
        let start = at;
        at += line.len() + 1;
        (start, line.strip_suffix('\r').unwrap_or(line))
    })
}

/// The 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

#[cfg(test)]
#[path = "extract_tests.rs"]
mod tests;
