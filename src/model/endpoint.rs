//! Whether a model's `base_url` can be called, decided once when the
//! pipeline is read: a URL no request can be sent to is a pipeline error
//! (exit 2, `file:line:col`), not a `connection` failure retried five
//! times per task. Credentials in the URL are refused too: everything
//! planexe writes names the URL, and keys come from the environment only.

/// Why `base_url` (its trailing `/` already removed) cannot be used: the
/// message and the hint, or `None` when it can.
pub fn refusal(base_url: &str) -> Option<(String, &'static str)> {
    let example = "for example \"http://127.0.0.1:1234/v1\"";
    let Some(rest) = base_url
        .strip_prefix("http://")
        .or_else(|| base_url.strip_prefix("https://"))
    else {
        return Some((
            "`base_url` must start with http:// or https://".into(),
            example,
        ));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        // Only the shape is named: the message must not carry the secret.
        return Some((
            "`base_url` holds a user name or password (`user:...@host`), which would reach every log and record planexe writes".into(),
            "remove it from base_url; put the key in an environment variable and name it in api_key_env",
        ));
    }
    if rest.contains(['?', '#']) {
        return Some((
            "`base_url` holds a query or fragment (`?` or `#`): planexe appends /chat/completions or /messages to it".into(),
            "end base_url with the path before /chat/completions, such as \"http://127.0.0.1:1234/v1\"; keys go in api_key_env",
        ));
    }
    // The URL parser takes any digits as a port; a connection cannot.
    let after_host = authority.rsplit(']').next().unwrap_or("");
    if let Some((_, port)) = after_host.rsplit_once(':') {
        if !port.is_empty() && !port.parse::<u16>().is_ok_and(|p| p > 0) {
            return Some((
                format!("`base_url` has port {port}; a port is a number from 1 to 65535"),
                example,
            ));
        }
    }
    match base_url.parse::<ureq::http::Uri>() {
        Ok(uri) if uri.host().is_some_and(|h| !h.is_empty()) => None,
        Ok(_) => Some(("`base_url` names no host".into(), example)),
        Err(e) => Some((format!("`base_url` is not a valid URL: {e}"), example)),
    }
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
}
