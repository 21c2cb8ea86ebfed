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
    fn every_url_spelling_of_a_secret_is_redacted() {
        let key = "sk-Ab/cd+ef=é gh";
        for text in [
            "sk-Ab%2Fcd%2Bef%3D%C3%A9%20gh",
            "sk-Ab%2fcd%2bef%3d%c3%a9+gh",
            "sk-Ab/cd+ef=%C3%A9+gh",
            "sk-Ab/cd ef=é gh",
            "%73%6B%2D%41%62%2F%63%64%2B%65%66%3D%C3%A9%20%67%68",
            // Encoded once more, and twice more.
            "sk-Ab%252Fcd%252Bef%253D%25C3%25A9%2520gh",
            "sk-Ab%25252Fcd+ef=é%252520gh",
        ] {
            assert_eq!(scrub(key, &format!("<{text}>")), "<[REDACTED]>", "{text}");
        }
        // JSON and URL spellings in one text.
        assert_eq!(
            scrub(
                key,
                r"a sk-Ab\/cd+ef=é gh b sk-Ab%2Fcd%2Bef%3D%C3%A9%20gh c"
            ),
            "a [REDACTED] b [REDACTED] c"
        );
        // A secret that holds percent escapes (a webhook URL as written)
        // matches decoded, and encoded in any case, once or more.
        let token = "Tok%20en%2Fsecret+0123";
        for text in [
            "Tok%20en%2Fsecret+0123",
            "Tok en/secret+0123",
            "Tok en/secret 0123",
            "Tok+en%2fsecret%2B0123",
            "Tok%2520en%252Fsecret%252B0123",
        ] {
            assert_eq!(scrub(token, &format!("<{text}>")), "<[REDACTED]>", "{text}");
        }
        for (key, text) in [
            ("sk-1%x-secret", "sk-1%25x-secret"),
            ("sk-1%x-secret", "sk-1%2525x-secret"),
            ("sk-1\\\\x-secret", "sk-1%5C%5cx-secret"),
            ("sk-1\\\\x-secret", "sk-1%255C%5C%5Cx-secret"),
        ] {
            assert_eq!(scrub(key, &format!("<{text}>")), "<[REDACTED]>", "{text}");
        }
        for text in [
            "sk-Ab%2Fcd%2Bef%3D%C3%A9%20g",
            "sk-Ab%2Fcd%2Bef%3D%C3%20gh",
            "sk-Ab%2cd+ef=é gh",
            "%",
            "%2",
            "%zz",
            "%25%",
        ] {
            assert_eq!(scrub(key, text), text);
        }
        assert_eq!(
            scrub("sk-1\\\\x-secret", "sk-1%5Cx-secret"),
            "sk-1%5Cx-secret"
        );
    }

    #[test]
    fn long_runs_of_percent_escapes_are_quick() {
        for key in [
            r"\\x-secret",
            r"x-se\cret",
            "%x-secret",
            "x-secret",
            "x-se cret",
        ] {
            for text in [
                "%5C".repeat(100_000),
                "%255c".repeat(60_000),
                "%25".repeat(100_000),
                format!("%{}", "25".repeat(150_000)),
                "+".repeat(300_000),
                "%20".repeat(100_000),
            ] {
                let started = std::time::Instant::now();
                assert_eq!(scrub(key, &text), text);
                assert!(
                    started.elapsed() < std::time::Duration::from_secs(2),
                    "{key}"
                );
            }
        }
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
