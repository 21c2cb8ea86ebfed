//! A model call the server redirects (HTTP 3xx): never followed, since a
//! POST redirected is sent again as a GET (301, 302, 303) or not at all,
//! and the cause is nearly always the model's `base_url` (`http://` where
//! `https://` is needed, a path segment missing), to fix at once.

use super::fault::{CallError, CallSpec};
use super::provider;
use crate::store::untrusted::printable;
use crate::store::ErrorKind;

/// A redirect of the request (HTTP 3xx): never followed, since a POST
/// redirected is sent again as a GET or not at all, and an `http://` that
/// needs `https://` or a path one segment short is a `base_url` to fix, at
/// once (permanent). The message names the status and the target, and the
/// `base_url` the target implies when it ends in the request's endpoint.
pub(super) fn redirected(status: u16, location: Option<&str>, spec: &CallSpec) -> CallError {
    let location = location.map(|l| printable(provider::truncate(l.trim(), 300)).into_owned());
    let mut message = match &location {
        Some(to) => format!("the server redirected the request (HTTP {status} to {to})"),
        None => format!("the server redirected the request (HTTP {status}, with no Location)"),
    };
    message
        .push_str("; planexe does not follow a redirect of a model call: fix the model's base_url");
    if let Some(base) = location
        .as_deref()
        .and_then(|to| redirect_base(&spec.url, to))
    {
        message.push_str(&format!(" (base_url = \"{base}\")"));
    }
    CallError {
        status: Some(status),
        raw: location.unwrap_or_default(),
        ..CallError::new(ErrorKind::BadRequest, message)
    }
}

/// The `base_url` a redirect's target implies: the target (made absolute
/// against the request's origin) less the endpoint the request went to
/// (`/chat/completions`, `/messages`); none when it does not end so.
fn redirect_base(url: &str, to: &str) -> Option<String> {
    let endpoint = ["/chat/completions", "/messages"]
        .into_iter()
        .find(|e| url.ends_with(e))?;
    let absolute = if to.starts_with("http://") || to.starts_with("https://") {
        to.to_string()
    } else if to.starts_with('/') && !to.starts_with("//") {
        let scheme_end = url.find("://")? + 3;
        let origin_end = url[scheme_end..]
            .find('/')
            .map_or(url.len(), |i| scheme_end + i);
        format!("{}{to}", &url[..origin_end])
    } else {
        return None;
    };
    absolute
        .strip_suffix(endpoint)
        .map(|base| base.trim_end_matches('/').to_string())
        .filter(|base| base.contains("://"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redirect_names_the_base_url_it_implies() {
        let url = "http://h:1/chat/completions";
        assert_eq!(
            redirect_base(url, "https://h/v1/chat/completions").as_deref(),
            Some("https://h/v1")
        );
        assert_eq!(
            redirect_base(url, "/v1/chat/completions").as_deref(),
            Some("http://h:1/v1")
        );
        assert_eq!(redirect_base(url, "https://h/login"), None);
        assert_eq!(redirect_base(url, "v1/chat/completions"), None);
        assert_eq!(
            redirect_base("https://a/v1/messages", "https://b/api/v1/messages").as_deref(),
            Some("https://b/api/v1")
        );
    }
}
