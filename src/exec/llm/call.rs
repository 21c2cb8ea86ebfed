//! One HTTP call to a model (what can go wrong with it is classified in
//! [`fault`](super::fault)), the server's list of models, and `Retry-After`.
//!
//! Whatever the server sends, memory stays within a small multiple of the
//! model's `max_answer_bytes`: a response body, a stream's line and event,
//! and a streamed answer's text and reasoning are each bounded while they
//! are read, and past the bound the call fails as `too_large`.

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde_json::Value;
use ureq::config::IpFamily;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use super::fault::{status_error, too_large, transport_error, Size, ERROR_BODY_LIMIT};
pub use super::fault::{wire_limit, CallError, CallOk, CallSpec, Partial};
use super::provider;
use super::redirect::redirected;
use super::reported::error_in_answer;
use super::sse;
pub use super::sse::{Pieces, SoFar};
use crate::store::ErrorKind;

/// How many idle connections the agent keeps to one server (host and
/// port), and to all. ureq keeps 3 a server by default: a build with more
/// calls in flight at one server than that made a new connection (a TLS
/// handshake, for a cloud API) for most of its calls, one after another
/// (a wave of a fan-out), and a local server paid a thread start for each.
/// Kept idle, a connection is one socket; past this many a build opens
/// and closes them as before.
const IDLE_PER_SERVER: usize = 64;
const IDLE_IN_ALL: usize = 256;

/// The agent all calls of a build share (connection reuse).
pub fn agent() -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_idle_connections_per_host(IDLE_PER_SERVER)
        .max_idle_connections(IDLE_IN_ALL)
        .timeout_connect(Some(Duration::from_secs(30)))
        .user_agent(concat!("planexe/", env!("CARGO_PKG_VERSION")))
        .build();
    ureq::Agent::with_parts(config, DefaultConnector::default(), Resolver::default())
}

/// ureq's resolver, except that a server named by its address
/// (`127.0.0.1`, `[::1]`, as local model servers mostly are) is answered at
/// once. ureq resolves before every request, even one that goes out on a
/// pooled connection, and bounds the lookup by the call's timeout with a
/// thread of its own: a thread started and ended for every call, with
/// nothing to look up.
#[derive(Debug, Default)]
struct Resolver(DefaultResolver);

impl ureq::unversioned::resolver::Resolver for Resolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let ip = uri.host().and_then(|host| {
            let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
            bare.unwrap_or(host).parse::<IpAddr>().ok()
        });
        let port = uri.port_u16().or(match uri.scheme_str() {
            Some("http") => Some(80),
            Some("https") => Some(443),
            _ => None,
        });
        match (ip, port) {
            (Some(ip), Some(port)) if config.ip_family() == IpFamily::Any => {
                let mut addrs = self.empty();
                addrs.push(SocketAddr::new(ip, port));
                Ok(addrs)
            }
            _ => self.0.resolve(uri, config, timeout),
        }
    }
}

/// Performs one call. `pieces` counts streamed pieces as they arrive; a
/// stream is read into `so_far`, for whoever gives up on the call.
pub fn call(
    agent: &ureq::Agent,
    spec: &CallSpec,
    pieces: &Pieces,
    so_far: &SoFar,
) -> Result<CallOk, CallError> {
    let mut request = agent
        .post(&spec.url)
        .config()
        .timeout_global(Some(spec.timeout))
        // A POST redirected elsewhere would be sent again as a GET (301,
        // 302, 303), or lost: the redirect is told as it is (`redirected`).
        .max_redirects(0)
        .timeout_per_read(if spec.stream {
            Some(spec.idle_timeout)
        } else {
            None
        })
        .build();
    for (name, value) in &spec.headers {
        request = request.header(*name, value);
    }
    let mut response = request
        .send(spec.body.as_str())
        .map_err(|e| transport_error(e, false, spec))?;
    let status = response.status().as_u16();
    if (300..400).contains(&status) {
        let location = response
            .headers()
            .get("location")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        return Err(redirected(status, location.as_deref(), spec));
    }
    if !(200..300).contains(&status) {
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        // Its first bytes, up to the bound, whatever its length (a limit
        // of ureq's would refuse a longer body whole) and however its
        // reading ends; what is not UTF-8 in it is replaced, not the body
        // dropped.
        let mut body = Vec::new();
        let _ = response
            .body_mut()
            .as_reader()
            .take(ERROR_BODY_LIMIT)
            .read_to_end(&mut body);
        let body = String::from_utf8_lossy(&body);
        return Err(status_error(status, &body, retry_after));
    }
    let is_sse = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if is_sse {
        sse::read_stream(
            response.body_mut().as_reader(),
            status,
            spec,
            pieces,
            so_far,
        )
    } else {
        let limit = wire_limit(spec.max_answer_bytes);
        if let Some(announced) = response.body().content_length().filter(|&n| n > limit) {
            return Err(too_large(
                spec,
                Size::Wire,
                &format!("the server announced a response of {announced} bytes"),
                "; it was not read",
            ));
        }
        // Bytes, not a string: a body that is not UTF-8 arrived whole, and
        // is a `bad_response` like any other body that is not JSON, not a
        // connection that broke while it was read.
        // Read here rather than by `read_to_vec`, which drops what came
        // when it fails: a body cut short is kept for `.planexe/raw/`.
        let mut bytes = Vec::new();
        let read = response
            .body_mut()
            .with_config()
            .limit(limit)
            .reader()
            .read_to_end(&mut bytes);
        if let Err(e) = read {
            let e = match ureq::Error::from(e) {
                ureq::Error::BodyExceedsLimit(n) => too_large(
                    spec,
                    Size::Wire,
                    &format!("the response passed {n} bytes"),
                    "; the rest was not read",
                ),
                e => transport_error(e, true, spec),
            };
            return Err(CallError {
                response: Some(cut_short(status, &bytes)),
                ..e
            });
        }
        // The message quotes the start of what came (a captive portal's
        // page, another API's JSON), as the advice for it says, once the
        // whole body is scrubbed (`CallError::quote`).
        let bad = |message: String, body: &str| CallError {
            status: Some(status),
            raw: body.to_string(),
            quote: true,
            ..CallError::new(ErrorKind::BadResponse, message)
        };
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                let at = e.utf8_error().valid_up_to();
                let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
                return Err(bad(
                    format!("the server's answer (HTTP {status}) is not JSON: it is not UTF-8 text (an invalid byte at offset {at})"),
                    &lossy,
                ));
            }
        };
        let value: Value = serde_json::from_str(&text).map_err(|e| {
            bad(
                format!("the server's answer (HTTP {status}) is not JSON: {e}"),
                &text,
            )
        })?;
        if let Some(reported) = error_in_answer(spec.provider, status, &value, &text) {
            return Err(reported);
        }
        let answer = provider::parse_response(spec.provider, &value, spec.max_tokens)
            .map_err(|m| bad(m, &text))?;
        if answer.text.len() as u64 > spec.max_answer_bytes {
            return Err(CallError {
                usage: answer.usage,
                ..too_large(
                    spec,
                    Size::Text,
                    &format!("the answer is {} bytes", answer.text.len()),
                    "",
                )
            });
        }
        if answer.reasoning.len() as u64 > spec.max_answer_bytes {
            return Err(CallError {
                usage: answer.usage,
                ..too_large(
                    spec,
                    Size::Text,
                    &format!("the reasoning is {} bytes", answer.reasoning.len()),
                    "",
                )
            });
        }
        pieces.add(answer.usage.completion_tokens.unwrap_or(0));
        Ok(CallOk { answer, raw: value })
    }
}

/// What `.planexe/raw/` keeps of a body that was cut short (or outgrew
/// its bound): the bytes that came, as text, up to the bound a stream's
/// first events have.
fn cut_short(status: u16, bytes: &[u8]) -> Box<Partial> {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(PARTIAL_BODY_BYTES)]);
    let mut raw =
        serde_json::json!({ "status": status, "body": text, "received_bytes": bytes.len() });
    if bytes.len() > PARTIAL_BODY_BYTES {
        raw["omitted_bytes"] = serde_json::json!(bytes.len() - PARTIAL_BODY_BYTES);
    }
    // One string, scrubbed whole where it is written: no text apart.
    Box::new(Partial {
        raw,
        text: String::new(),
        reasoning: String::new(),
    })
}

/// How much of a body cut short `.planexe/raw/` keeps.
const PARTIAL_BODY_BYTES: usize = 256 * 1024;

/// The names the server lists at `GET {base_url}/models` (OpenAI and
/// Anthropic both answer `{"data": [{"id": ...}]}`; Ollama's `/api/tags`
/// is not asked), at most 20, or none when it does not answer in a few
/// seconds.
pub fn list_models(
    agent: &ureq::Agent,
    base_url: &str,
    headers: &[(&'static str, String)],
) -> Vec<String> {
    let mut request = agent
        .get(format!("{base_url}/models"))
        .config()
        .timeout_global(Some(Duration::from_secs(5)))
        .build();
    for (name, value) in headers.iter().filter(|(n, _)| *n != "content-type") {
        request = request.header(*name, value);
    }
    let Ok(mut response) = request.call() else {
        return Vec::new();
    };
    if response.status().as_u16() != 200 {
        return Vec::new();
    }
    let Ok(text) = response
        .body_mut()
        .with_config()
        .limit(ERROR_BODY_LIMIT)
        .read_to_string()
    else {
        return Vec::new();
    };
    let Ok(value) = serde_json::from_str::<Value>(&text) else {
        return Vec::new();
    };
    value
        .get("data")
        .or_else(|| value.get("models"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| {
            m.get("id")
                .or_else(|| m.get("name"))
                .and_then(Value::as_str)
        })
        .take(20)
        .map(|name| provider::truncate(name, 200).to_string())
        .collect()
}

/// The longest `Retry-After` read as such (a hundred years): any longer
/// one means the same, and every duration stays representable.
const RETRY_AFTER_CEILING: u64 = 100 * 365 * 86_400;

/// `Retry-After`: seconds, or an HTTP date (one in the past means now). The
/// wait is as asked, up to a ceiling; whether it is too long is the
/// model's `max_retry_wait` to say.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(RETRY_AFTER_CEILING as f64)));
    }
    let when = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let now = jiff::Timestamp::now();
    let secs = when
        .as_second()
        .saturating_sub(now.as_second())
        .clamp(0, RETRY_AFTER_CEILING as i64);
    Some(Duration::from_secs(secs as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(
            parse_retry_after("315360000"),
            Some(Duration::from_secs(315_360_000))
        );
        let ceiling = Some(Duration::from_secs(RETRY_AFTER_CEILING));
        assert_eq!(parse_retry_after("1e300"), ceiling);
        assert_eq!(parse_retry_after("99999999999999999999999999"), ceiling);
        assert_eq!(parse_retry_after("Wed, 01 Jan 9000 00:00:00 GMT"), ceiling);
        // Beyond what a timestamp holds: no wait at all, the usual backoff.
        assert_eq!(parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT"), None);
        assert_eq!(
            parse_retry_after("Mon, 01 Jan 1900 00:00:00 GMT"),
            Some(Duration::ZERO)
        );
        for odd in ["-5", "NaN", "inf", "-inf", ""] {
            assert_eq!(parse_retry_after(odd), None, "{odd}");
        }
    }

    #[test]
    fn a_server_named_by_its_address_needs_no_lookup() {
        use ureq::unversioned::resolver::Resolver as _;
        let config = ureq::config::Config::default();
        // No time at all to look anything up: ureq's own resolver gives
        // up before its thread answers.
        let none_left = || NextTimeout {
            after: Duration::ZERO.into(),
            reason: ureq::Timeout::Resolve,
            per_read: None,
            per_write: None,
        };
        for (url, want) in [
            (
                "http://127.0.0.1:8095/v1/chat/completions",
                "127.0.0.1:8095",
            ),
            ("http://[::1]:1234/v1", "[::1]:1234"),
            ("https://10.0.0.7/v1", "10.0.0.7:443"),
            ("http://192.168.1.2/", "192.168.1.2:80"),
        ] {
            let uri: Uri = url.parse().unwrap();
            let addrs = Resolver::default()
                .resolve(&uri, &config, none_left())
                .unwrap_or_else(|e| panic!("{url}: {e}"));
            let got: Vec<String> = addrs.iter().map(ToString::to_string).collect();
            assert_eq!(got, [want], "{url}");
        }
        // A name is still looked up, as ureq does.
        let uri: Uri = "http://localhost:9/".parse().unwrap();
        let generous = NextTimeout {
            after: Duration::from_secs(10).into(),
            ..none_left()
        };
        let addrs = Resolver::default()
            .resolve(&uri, &config, generous)
            .unwrap();
        assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 9));
    }

    #[test]
    fn statuses_classify() {
        assert_eq!(status_error(429, "", None).kind, ErrorKind::RateLimited);
        assert_eq!(status_error(529, "", None).kind, ErrorKind::ServerError);
        assert_eq!(status_error(401, "{}", None).kind, ErrorKind::Auth);
        assert_eq!(
            status_error(
                400,
                r#"{"error":{"code":"context_length_exceeded","message":"too long"}}"#,
                None
            )
            .kind,
            ErrorKind::ContextOverflow
        );
        assert!(ErrorKind::ServerError.transient());
        assert!(!ErrorKind::Truncated.transient());
    }
}
