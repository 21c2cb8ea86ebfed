//! The parts of a URL that a code frame never shows: a user name and
//! password, a query and fragment, and a path where a token may be (a
//! webhook's). A URL refusal hides them in the string it points at
//! (`endpoint::frame`); every diagnostic hides them in the line it shows
//! (`Source::diagnostic`), whatever its error.

use std::ops::Range;

/// The parts of a URL as written in the file (`literal`, the quoted
/// value at offset `at`) that a refusal's code frame must not show: a
/// user name and password, a query and fragment, and with `path` the path
/// too (a webhook's token is often there). Byte ranges of the file.
pub fn secret_spans(literal: &str, at: usize, path: bool) -> Vec<Range<usize>> {
    let Some(scheme) = literal.find("://") else {
        return Vec::new();
    };
    let start = scheme + 3;
    let rest = &literal[start..];
    let value_end = rest.rfind(['"', '\'']).unwrap_or(rest.len());
    let rest = &rest[..value_end];
    let authority = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let mut spans = Vec::new();
    if let Some(user) = rest[..authority].rfind('@') {
        spans.push(at + start..at + start + user);
    }
    let from = if path {
        Some(authority)
    } else {
        rest.find(['?', '#'])
    };
    if let Some(from) = from.filter(|&f| f < rest.len()) {
        spans.push(at + start + from..at + start + rest.len());
    }
    spans
}

/// The parts of every URL in `line` (one line of the file) that no
/// diagnostic showing the line may show, as byte ranges of the line: a
/// user name and password, a query and fragment, and the path too but
/// for a `base_url`'s (a webhook's token is often there). An error about
/// anything else on the line of a hook's `url` (an inline table, a string
/// left open) shows it as a refusal of the url does.
pub fn line_secret_spans(line: &str) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(i) = line[from..].find("://") {
        let scheme = from + i;
        let after = scheme + 3;
        // The string it is in: from the quote before it to the same quote
        // after it (or, outside one, to the next space).
        let open = line[..scheme].rfind(['"', '\'']);
        let start = open.map_or(0, |o| o + 1);
        let end = match open.map(|o| &line[o..=o]) {
            Some(quote) => line[after..].find(quote),
            None => line[after..].find(char::is_whitespace),
        }
        .map_or(line.len(), |e| after + e);
        // The key the string is the value of, if any.
        let key = line[..start.saturating_sub(1)]
            .trim_end()
            .strip_suffix('=')
            .map(|k| k.trim_end().trim_end_matches(['"', '\'']));
        let path = !key.is_some_and(|k| k.ends_with("base_url"));
        spans.extend(secret_spans(&line[start..end], start, path));
        from = end.max(after);
    }
    spans
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_code_frame_hides_credentials_queries_and_a_hooks_path() {
        use super::secret_spans;
        let hide = |literal: &str, path: bool| {
            let mut bytes = literal.as_bytes().to_vec();
            for r in secret_spans(literal, 0, path) {
                bytes[r].fill(b'*');
            }
            String::from_utf8(bytes).unwrap()
        };
        assert_eq!(
            hide("\"http://user:pw@host:8/v1?k=s\"", false),
            "\"http://*******@host:8/v1****\""
        );
        assert_eq!(
            hide("\"https://hooks.example/T1/SECRET?x=1\"", true),
            "\"https://hooks.example**************\""
        );
        assert_eq!(
            hide("\"http://127.0.0.1:99999/v1\"", false),
            "\"http://127.0.0.1:99999/v1\""
        );
        assert_eq!(hide("\"ftp://x\"", true), "\"ftp://x\"");
        assert_eq!(hide("\"no scheme\"", true), "\"no scheme\"");
    }

    #[test]
    fn a_line_shown_hides_every_urls_secret_parts_but_a_base_urls_path() {
        let hide = |line: &str| {
            let mut bytes = line.as_bytes().to_vec();
            for r in super::line_secret_spans(line) {
                bytes[r].fill(b'*');
            }
            String::from_utf8(bytes).unwrap()
        };
        assert_eq!(
            hide(r#"h = [{ url = "https://h.example/T/SECRET", command = "x" }]"#),
            r#"h = [{ url = "https://h.example*********", command = "x" }]"#
        );
        assert_eq!(
            hide(r#"base_url = "http://u:p@h:8/v1?k=s", x = 'https://a.example/b'"#),
            r#"base_url = "http://***@h:8/v1****", x = 'https://a.example**'"#
        );
        assert_eq!(
            hide("url = \"https://h.example/open"),
            "url = \"https://h.example*****"
        );
        assert_eq!(
            hide("# see https://h.example/x y"),
            "# see https://h.example** y"
        );
        assert_eq!(hide("no url: a://"), "no url: a://");
    }
}
