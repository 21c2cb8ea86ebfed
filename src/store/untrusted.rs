//! Text from outside (a server's answers and error bodies, model ids, what
//! a judge says) made safe to keep and to show: [`Secrets`] takes every
//! secret out of it in every spelling JSON allows, and [`printable`]
//! escapes the characters that would drive a terminal rather than be
//! shown on it (docs/security.md).
//!
//! Invariants: after [`Secrets::redact`], no secret is left in the text
//! literally nor in any JSON-escaped spelling, at any depth of nesting (a
//! JSON string holding JSON); after [`printable`], the text holds no C0
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
            list: list.iter().map(|s| units(s)).collect(),
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
        out
    }

    /// Whether `text` holds a secret in any spelling.
    pub fn found_in(&self, text: &str) -> bool {
        self.list.iter().any(|s| redact_one(text, s).is_some())
    }
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
        if literal || bytes[pos] == b'\\' {
            if let Some(end) = match_at(text, pos, secret) {
                out.push_str(&text[copied..pos]);
                out.push_str(REDACTED);
                copied = end;
                pos = end;
                found = true;
                continue;
            }
            if !literal {
                // A match starting inside the run would end where one
                // from its start does: none.
                pos = run(text, pos).0;
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
                }
                Unit::Char(c) => {
                    if text[pos..].starts_with(c) {
                        next.push((pos + c.len_utf8(), false));
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

/// Pushes the ends of `c` spelled at `pos` as the end of an escape: its
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
mod tests {
    use super::*;

    fn scrub(secret: &str, text: &str) -> String {
        Secrets::new([secret.to_string()], 4).redact(text)
    }

    #[test]
    fn every_json_spelling_of_a_secret_is_redacted() {
        let key = "sk-SE/CRET123xyz";
        for text in [
            "sk-SE/CRET123xyz",
            r"sk-SE\/CRET123xyz",
            r"sk-SE\u002fCRET123xyz",
            r"sk-SE\u002FCRET123xyz",
            r"\u0073\u006b-SE\/CRET123xy\u007a",
            // A JSON string of JSON, and once more.
            r"sk-SE\\\/CRET123xyz",
            r"sk-SE\\/CRET123xyz",
            r"sk-SE\\u002fCRET123xyz",
            r"sk-SE\u005cu002fCRET123xyz",
            r"sk-SE\\\\\\\/CRET123xyz",
        ] {
            let got = scrub(key, &format!("bad key {text}!"));
            assert_eq!(got, "bad key [REDACTED]!", "{text}");
        }
        for (key, text) in [
            ("sk-SE\"CRET123xyz", r#"sk-SE\"CRET123xyz"#),
            ("sk-SE\"CRET123xyz", r#"sk-SE\\\"CRET123xyz"#),
            ("sk-SE\\CRET123xyz", r"sk-SE\\CRET123xyz"),
            ("sk-SE\\CRET123xyz", r"sk-SE\\\\CRET123xyz"),
            ("sk-SE\\CRET123xyz", r"sk-SE\u005cCRET123xyz"),
            ("sk-SE\tCRET123xyz", r"sk-SE\tCRET123xyz"),
            ("sk-SE😀CRET123xyz", r"sk-SE\ud83d\uDE00CRET123xyz"),
            ("sk-SEéCRET123xyz", r"sk-SE\u00e9CRET123xyz"),
        ] {
            assert_eq!(scrub(key, &format!("<{text}>")), "<[REDACTED]>", "{text}");
            let json = serde_json::to_string(&format!("a {key} b")).unwrap();
            assert_eq!(scrub(key, &json), "\"a [REDACTED] b\"", "{json}");
        }
    }

    #[test]
    fn other_text_is_left_alone() {
        let key = "sk-SE/CRET123xyz";
        for text in [
            "",
            "sk-SE/CRET123xy",
            r"sk-SE\\CRET123xyz",
            "é\\u00",
            "\\\\\\",
        ] {
            assert_eq!(scrub(key, text), text);
        }
        assert!(!Secrets::new([key.to_string()], 4).found_in("sk-SE"));
        assert!(Secrets::new([key.to_string()], 4).found_in(r"x sk-SE\/CRET123xyz"));
        // Too short to be a secret.
        assert_eq!(Secrets::new(["none".to_string()], 8).redact("none"), "none");
    }

    #[test]
    fn long_runs_of_backslashes_are_quick() {
        for key in [r"\\\\x-secret", r"x-se\\cret", "x-secret"] {
            for text in ["\\".repeat(200_000), r"\u005c".repeat(50_000)] {
                let started = std::time::Instant::now();
                assert_eq!(scrub(key, &text), text);
                assert!(started.elapsed() < std::time::Duration::from_secs(2));
            }
        }
        assert_eq!(scrub(r"\\x-secret", r"a\\\\\\x-secret"), "a[REDACTED]");
    }

    #[test]
    fn control_characters_are_escaped() {
        let text = "denied \x1b[31mRED\x1b[0m \x1b]0;t\x07 \r\tdone\nFAKE \u{9b}2J \u{202e}x\u{7f}";
        assert_eq!(
            printable(text),
            "denied \\u{1b}[31mRED\\u{1b}[0m \\u{1b}]0;t\\u{7} \\r\\tdone\\nFAKE \\u{9b}2J \\u{202e}x\\u{7f}"
        );
        assert_eq!(printable_lines("a\nb\x1b"), "a\nb\\u{1b}");
        assert!(matches!(printable("plain é"), Cow::Borrowed(_)));
    }
}
