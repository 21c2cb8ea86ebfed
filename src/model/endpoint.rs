//! Whether a model's `base_url` or a hook's `url` can be called, decided
//! once when the pipeline is read: a URL no request can be sent to is a
//! pipeline error (exit 2, `file:line:col`), not a `connection` failure
//! retried five times per task or a hook that never delivers. Credentials
//! in the URL are refused too: everything planexe writes names the URL,
//! and keys come from the environment only. No code frame shows a URL's
//! secret parts (`hidden_url.rs`).

use std::ops::Range;

use super::hidden_url::secret_spans;
use super::source::Source;
use crate::error::Diagnostic;

/// What makes a URL unusable, found by [`flaw`], which a model's
/// `base_url` and a hook's `url` share; each words it in its own terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flaw {
    /// Not `http://` or `https://`.
    Scheme,
    /// A user name or password before the host (never quoted: a secret).
    Credentials,
    /// A `?` or `#` (refused only where `query_ok` is false).
    Query,
    /// A port that is not a number from 1 to 65535.
    Port(String),
    NoHost,
    /// What the URL parser said.
    Invalid(String),
}

/// What makes `url` unusable for an HTTP request, if anything; a query
/// or fragment counts only when `query_ok` is false.
pub fn flaw(url: &str, query_ok: bool) -> Option<Flaw> {
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return Some(Flaw::Scheme);
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Some(Flaw::Credentials);
    }
    if !query_ok && rest.contains(['?', '#']) {
        return Some(Flaw::Query);
    }
    // The URL parser takes any digits as a port; a connection cannot.
    let after_host = authority.rsplit(']').next().unwrap_or("");
    if let Some((_, port)) = after_host.rsplit_once(':') {
        if !port.is_empty() && !port.parse::<u16>().is_ok_and(|p| p > 0) {
            return Some(Flaw::Port(port.to_string()));
        }
    }
    match url.parse::<ureq::http::Uri>() {
        Ok(uri) if uri.host().is_some_and(|h| !h.is_empty()) => None,
        Ok(_) => Some(Flaw::NoHost),
        Err(e) => Some(Flaw::Invalid(e.to_string())),
    }
}

impl Flaw {
    /// What is wrong, after the name of the setting (`` `base_url` ``).
    pub fn message(&self, key: &str) -> String {
        match self {
            Flaw::Scheme => format!("{key} must start with http:// or https://"),
            // Only the shape is named: the message must not carry the secret.
            Flaw::Credentials => format!("{key} holds a user name or password (`user:...@host`), which would reach every log and record planexe writes"),
            Flaw::Query => format!("{key} holds a query or fragment (`?` or `#`): planexe appends /chat/completions or /messages to it"),
            Flaw::Port(port) => format!("{key} has port {port}; a port is a number from 1 to 65535"),
            Flaw::NoHost => format!("{key} names no host"),
            Flaw::Invalid(e) => format!("{key} is not a valid URL: {e}"),
        }
    }
}

/// The diagnostic of a URL refusal at `span` (the quoted value), its
/// code frame without [`secret_spans`] (with `path`, the path hidden too).
pub fn frame(source: &Source, span: Range<usize>, message: &str, path: bool) -> Diagnostic {
    let literal = source.text.get(span.clone()).unwrap_or("");
    let hidden = secret_spans(literal, span.start, path);
    source.diagnostic_hiding(span, message, &hidden)
}

/// Why `base_url` (its trailing `/` already removed) cannot be used: the
/// message and the hint, or `None` when it can.
pub fn refusal(base_url: &str) -> Option<(String, &'static str)> {
    let flaw = flaw(base_url, false)?;
    let hint = match flaw {
        Flaw::Credentials => "remove it from base_url; put the key in an environment variable and name it in api_key_env",
        Flaw::Query => "end base_url with the path before /chat/completions, such as \"http://127.0.0.1:1234/v1\"; keys go in api_key_env",
        _ => "for example \"http://127.0.0.1:1234/v1\"",
    };
    Some((flaw.message("`base_url`"), hint))
}

#[cfg(test)]
mod tests {
    use super::refusal;

    #[test]
    fn callable_urls_pass() {
        for url in [
            "http://127.0.0.1:1234/v1",
            "https://api.anthropic.com/v1",
            "http://[::1]:8080/v1",
            "http://localhost",
            "http://host.example/a%20b",
        ] {
            assert_eq!(refusal(url), None, "{url}");
        }
    }

    #[test]
    fn urls_no_request_can_use_are_refused() {
        for url in [
            "ftp://x",
            "http://[::1",
            "http://a b/v1",
            "http:///v1",
            "http://127.0.0.1:99999/v1",
            "http://127.0.0.1:0/v1",
            "http://user:secret@127.0.0.1/v1",
            "http://token@127.0.0.1/v1",
            "http://127.0.0.1/v1?key=secret",
            "http://127.0.0.1/v1#x",
        ] {
            let (message, _) = refusal(url).unwrap_or_else(|| panic!("{url} passed"));
            assert!(!message.contains("secret"), "{message}");
        }
    }

    #[test]
    fn a_query_is_a_flaw_only_where_it_cannot_be() {
        let url = "https://hooks.example/T1/B2?wait=true";
        assert_eq!(super::flaw(url, true), None);
        assert_eq!(super::flaw(url, false), Some(super::Flaw::Query));
        assert_eq!(
            super::flaw("https://u:p@hooks.example/x?y", true),
            Some(super::Flaw::Credentials)
        );
    }
}
