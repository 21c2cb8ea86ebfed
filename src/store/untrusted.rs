//! Text from outside (a server's answers and error bodies, model ids, what
//! a judge says) made safe to keep and to show: [`Secrets`] takes every
//! secret out of it in every spelling JSON or a URL allows, and [`printable`]
//! escapes the characters that would drive a terminal rather than be
//! shown on it (docs/security.md).
//!
//! Invariants: after [`Secrets::redact`], no secret is left in the text
//! literally nor in any JSON-escaped spelling, at any depth of nesting (a
//! JSON string holding JSON), nor percent-encoded, once or more (a URL
//! inside a URL); after [`printable`], the text holds no C0
//! control character (but newlines where asked), no DEL, no C1 and no
//! bidirectional override.

use std::borrow::Cow;

/// What secrets are replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// The secrets a build knows (API keys, a webhook's token), longest first,
/// and their removal from any text.
///
/// A server may echo a key the way JSON spells it: `/` as `\/`, `"` as
/// `\"`, `\` as `\\`, any character as `\uXXXX` (a hostile server may
/// escape every one), and a proxy may wrap an upstream's JSON in a string
/// of its own, doubling every backslash. Two designs were weighed:
///
/// - parse the text as JSON, scrub each decoded string, serialize again:
///   only works on text that is valid JSON (error bodies are often cut
///   off or not JSON at all, and those are the ones kept as `raw_error`),
///   rewrites the bytes kept for debugging, and misses JSON nested inside
///   a string unless it recurses into strings that happen to parse;
/// - match every spelling of the secret in the text as it is: works on
///   any text (JSON, cut-off JSON, plain text, a pretty-printed file), at
///   any nesting depth, and leaves the rest of the bytes alone.
///
/// This takes the second. A character of a secret matches itself, or an
/// escape: a run of backslashes and `u005c`s (a backslash spelled once
/// more: one level of nesting each), then the character itself (`\/`,
/// `\"`), its `uXXXX` code (either case; a surrogate pair beyond the
/// BMP) or its short escape (`\n`, `\t`, ...). Backslashes of the secret
/// itself match as runs: `k` of them match any run of at least `k`. Runs
/// are taken whole, so the match never backtracks and no input makes it
/// slow. It is lenient (`\q` counts as `q`, a longer run as a shorter
/// one): it may redact a little more than a strict decoder would, never
/// less.
///
/// A server or a proxy may also echo a secret the way a URL spells it (a
/// key in a query string it quotes, a webhook token in a link): a
/// character matches its UTF-8 bytes percent-encoded too (`%2F` or `%2f`
/// for `/`; `%C3%A9` for `é`), each `%` of which may itself be spelled
/// `%25` any number of times (a URL encoded once more inside another), and
/// a space and a `+` match each other in every spelling (`+`, `%20`,
/// `%2B`: form encoding). A secret that holds percent escapes itself (a
/// webhook URL as written in the pipeline, `?token=a%2Fb`) is matched
/// decoded, so `a/b`, `a%2Fb`, `a%2fb` and `a%252Fb` all match it. The
/// `%25`s after a `%` are read as one run, like backslashes, so this
/// keeps the match linear too.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    list: Vec<Vec<Unit>>,
}

/// A piece of a secret as it is matched.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Unit {
    /// A character other than a backslash.
    Char(char),
    /// This many backslashes in a row.
    Backslashes(usize),
}

impl Secrets {
    /// The secrets of at least `min_len` bytes (shorter ones are
    /// placeholders, and scrubbing them would mangle ordinary text).
    pub fn new(secrets: impl IntoIterator<Item = String>, min_len: usize) -> Secrets {
        let mut list: Vec<String> = secrets.into_iter().filter(|s| s.len() >= min_len).collect();
        // Longest first, so a URL goes whole before a token within it.
        list.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        list.dedup();
        Secrets {
            list: list
                .iter()
                .map(|s| units(&percent_decoded(s).unwrap_or_else(|| s.clone())))
                .collect(),
        }
    }

    /// `text` with every spelling of every secret replaced by
    /// [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.list {
            if let Some(done) = redact_one(&out, secret) {
                out = done;
            }
        }
        for secret in &self.list {
            out = redact_cut(out, secret);
        }
        out
    }

    /// Whether there is no secret to look for.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether `text` holds a secret in any spelling.
    pub fn found_in(&self, text: &str) -> bool {
        self.list.iter().any(|s| redact_one(text, s).is_some())
    }
}

/// `secret` with its percent escapes (`%2F`) decoded, when it has some
/// and what they decode to is UTF-8 text.
fn percent_decoded(secret: &str) -> Option<String> {
    let bytes = secret.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match hex_pair(bytes, i + 1).filter(|_| bytes[i] == b'%') {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    (out.len() != bytes.len())
        .then(|| String::from_utf8(out).ok())
        .flatten()
}

fn units(secret: &str) -> Vec<Unit> {
    let mut out = Vec::new();
    for c in secret.chars() {
        match (c, out.last_mut()) {
            ('\\', Some(Unit::Backslashes(n))) => *n += 1,
            ('\\', _) => out.push(Unit::Backslashes(1)),
            (c, _) => out.push(Unit::Char(c)),
        }
    }
    out
}

/// The fewest characters of a secret taken for a piece of it at an edge of
/// a text (and at least half of it: a secret that is a URL starts as
/// other URLs do).
const EDGE_PIECE: usize = 8;

/// `text`, which may be cut out of a longer one (the first 2 KB of a
/// server's error body, the last lines of a log), with a piece of `secret`
/// at its edges replaced: its start ending the text, its end starting it,
/// at least [`EDGE_PIECE`] characters and half of it, as written. A cut
/// through a secret leaves at most half of it readable.
fn redact_cut(mut text: String, secret: &[Unit]) -> String {
    let written: Vec<char> = secret
        .iter()
        .flat_map(|u| match *u {
            Unit::Char(c) => vec![c],
            Unit::Backslashes(n) => vec!['\\'; n],
        })
        .collect();
    let least = EDGE_PIECE.max(written.len().div_ceil(2));
    if written.len() <= least {
        return text;
    }
    let piece = |chars: &[char]| chars.iter().collect::<String>();
    for k in (least..written.len()).rev() {
        if text.ends_with(&piece(&written[..k])) {
            let at = text.len() - piece(&written[..k]).len();
            text.replace_range(at.., REDACTED);
            break;
        }
    }
    for k in (least..written.len()).rev() {
        let end = piece(&written[written.len() - k..]);
        if text.starts_with(&end) {
            text.replace_range(..end.len(), REDACTED);
            break;
        }
    }
    text
}

/// `text` with `secret` replaced wherever it is spelled, or `None` when
/// it is nowhere.
fn redact_one(text: &str, secret: &[Unit]) -> Option<String> {
    let first = *secret.first()?;
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut pos = 0;
    let mut found = false;
    while pos < bytes.len() {
        let literal = matches!(first, Unit::Char(c) if text[pos..].starts_with(c));
        // The first byte of an escape or a percent escape, or the other
        // spelling of a space or a `+` that starts the secret.
        let spelled = matches!(bytes[pos], b'\\' | b'%')
            || (matches!(first, Unit::Char(' ' | '+')) && matches!(bytes[pos], b' ' | b'+'));
        if literal || spelled {
            if let Some(end) = match_at(text, pos, secret) {
                out.push_str(&text[copied..pos]);
                out.push_str(REDACTED);
                copied = end;
                pos = end;
                found = true;
                continue;
            }
            // A match starting inside a run would end where one from
            // its start does: none.
            if !literal && bytes[pos] == b'\\' {
                pos = run(text, pos).0;
                continue;
            }
            if matches!(first, Unit::Backslashes(_)) && bytes[pos] == b'%' {
                pos = percent_run(text, pos).0.max(pos + 1);
                continue;
            }
        }
        pos += 1;
        while pos < bytes.len() && !text.is_char_boundary(pos) {
            pos += 1;
        }
    }
    if !found {
        return None;
    }
    out.push_str(&text[copied..]);
    Some(out)
}

/// The end of the longest spelling of `secret` that starts at `start`.
fn match_at(text: &str, start: usize, secret: &[Unit]) -> Option<usize> {
    // Where the text may go on, and whether a run of backslashes just
    // ended there (so the next character may be a bare `uXXXX` or letter).
    let mut here = vec![(start, false)];
    let mut next = Vec::new();
    for &unit in secret {
        next.clear();
        for &(pos, after_run) in &here {
            match unit {
                Unit::Backslashes(k) => {
                    let (end, count) = run(text, pos);
                    if count >= k {
                        next.push((end, true));
                    }
                    let (end, count) = percent_run(text, pos);
                    if count >= k {
                        next.push((end, false));
                    }
                }
                Unit::Char(c) => {
                    if text[pos..].starts_with(c) {
                        next.push((pos + c.len_utf8(), false));
                    }
                    for alike in same_in_urls(c) {
                        if alike != c && text[pos..].starts_with(alike) {
                            next.push((pos + 1, false));
                        }
                        percent_char(text, pos, alike, &mut next);
                    }
                    if after_run {
                        terminal(text, pos, c, &mut next);
                    }
                    let (end, count) = run(text, pos);
                    if count > 0 {
                        if text[end..].starts_with(c) {
                            next.push((end + c.len_utf8(), false));
                        }
                        terminal(text, end, c, &mut next);
                    }
                }
            }
        }
        if next.is_empty() {
            return None;
        }
        next.sort_unstable();
        next.dedup();
        std::mem::swap(&mut here, &mut next);
    }
    here.iter().map(|&(end, _)| end).max()
}

/// The characters a URL may spell `c` as: a space and a `+` stand for
/// each other (form encoding); any other character only for itself.
fn same_in_urls(c: char) -> impl Iterator<Item = char> {
    let (one, other) = match c {
        ' ' | '+' => (' ', Some('+')),
        c => (c, None),
    };
    std::iter::once(one).chain(other)
}

/// Pushes the ends of `c` spelled at `pos` percent-encoded: each of its
/// UTF-8 bytes as [`percent_byte`].
fn percent_char(text: &str, pos: usize, c: char, ends: &mut Vec<(usize, bool)>) {
    let mut here = vec![pos];
    let mut next = Vec::new();
    for &byte in c.encode_utf8(&mut [0; 4]).as_bytes() {
        next.clear();
        for &at in &here {
            percent_byte(text, at, byte, &mut next);
        }
        if next.is_empty() {
            return;
        }
        std::mem::swap(&mut here, &mut next);
    }
    ends.extend(here.into_iter().map(|end| (end, false)));
}

/// Pushes the ends of `byte` spelled at `pos` as a percent escape: `%`,
/// then `25` any number of times (the `%` escaped once more each time),
/// then the byte's two hex digits in either case. Its `25`s are read as
/// one run, so there is one end, but for the byte `%` itself, whose
/// escape any of the `25`s may end.
fn percent_byte(text: &str, pos: usize, byte: u8, ends: &mut Vec<usize>) {
    let bytes = text.as_bytes();
    if bytes.get(pos) != Some(&b'%') {
        return;
    }
    let mut at = pos + 1;
    while hex_pair(bytes, at) == Some(b'%') {
        at += 2;
        if byte == b'%' {
            ends.push(at);
        }
    }
    if byte != b'%' && hex_pair(bytes, at) == Some(byte) {
        ends.push(at + 2);
    }
}

/// The run of percent-escaped backslashes (`%5C`, `%255c`, ...) that
/// starts at `pos`: its end, and how many backslashes it spells.
fn percent_run(text: &str, pos: usize) -> (usize, usize) {
    let (mut end, mut count, mut after) = (pos, 0, Vec::new());
    loop {
        percent_byte(text, end, b'\\', &mut after);
        match after.pop() {
            Some(at) => (end, count) = (at, count + 1),
            None => return (end, count),
        }
    }
}

/// The byte that the two hex digits (either case) at `at` spell.
fn hex_pair(bytes: &[u8], at: usize) -> Option<u8> {
    let pair = bytes.get(at..at.checked_add(2)?)?;
    let digit = |b: u8| char::from(b).to_digit(16);
    Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8)
}

/// `uXXXX` code (for a surrogate pair, a second escape follows) or its
/// short escape's letter.
fn terminal(text: &str, pos: usize, c: char, ends: &mut Vec<(usize, bool)>) {
    if let Some(letter) = short_escape(c) {
        if text.as_bytes().get(pos) == Some(&letter) {
            ends.push((pos + 1, false));
        }
    }
    let mut units = [0u16; 2];
    let units: &[u16] = c.encode_utf16(&mut units);
    if unit_at(text, pos) != Some(units[0]) {
        return;
    }
    match units.get(1) {
        None => ends.push((pos + 5, false)),
        Some(&low) => {
            let (end, count) = run(text, pos + 5);
            if count > 0 && unit_at(text, end) == Some(low) {
                ends.push((end + 5, false));
            }
        }
    }
}

/// The run of backslashes that starts at `pos`: a backslash, then any
/// number of backslashes or `u005c`s. Its end, and how many backslashes
/// it spells (0 when `pos` is no backslash).
fn run(text: &str, pos: usize) -> (usize, usize) {
    let bytes = text.as_bytes();
    if bytes.get(pos) != Some(&b'\\') {
        return (pos, 0);
    }
    let (mut p, mut count) = (pos + 1, 1);
    loop {
        if bytes.get(p) == Some(&b'\\') {
            p += 1;
        } else if unit_at(text, p) == Some(u16::from(b'\\')) {
            p += 5;
        } else {
            return (p, count);
        }
        count += 1;
    }
}

/// The UTF-16 unit of `uXXXX` at `pos` (hex digits in either case).
fn unit_at(text: &str, pos: usize) -> Option<u16> {
    let digits = text.as_bytes().get(pos..pos.checked_add(5)?)?;
    if digits[0] != b'u' || !digits[1..].iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u16::from_str_radix(std::str::from_utf8(&digits[1..]).ok()?, 16).ok()
}

/// The letter of JSON's short escape of `c`, if it has one.
fn short_escape(c: char) -> Option<u8> {
    Some(match c {
        '\u{8}' => b'b',
        '\u{c}' => b'f',
        '\n' => b'n',
        '\r' => b'r',
        '\t' => b't',
        _ => return None,
    })
}

/// `text` with every character that could steer a terminal escaped as
/// Rust writes it (`\u{1b}`, `\r`, `\t`): C0 controls (newlines too: a
/// server's line break must not start a line that looks like planexe's),
/// DEL, C1 controls, and the bidirectional overrides and isolates that
/// reorder what is shown.
pub fn printable(text: &str) -> Cow<'_, str> {
    escape(text, false)
}

/// [`printable`], but newlines are kept: for a message whose lines
/// planexe itself broke, once what a server said in it is [`printable`].
pub fn printable_lines(text: &str) -> Cow<'_, str> {
    escape(text, true)
}

fn escape(text: &str, keep_newlines: bool) -> Cow<'_, str> {
    let unsafe_char = |c: char| unsafe_char(c) && !(keep_newlines && c == '\n');
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if !unsafe_char(c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            _ => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    Cow::Owned(out)
}

fn unsafe_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
#[path = "untrusted_tests.rs"]
mod tests;
