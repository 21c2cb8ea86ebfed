//! One event posted to a webhook (a hook's `url`, `$PLANEXE_WEBHOOK_URL`),
//! its body made in the hook's format by the caller: its attempts, and
//! what its failure says.
//!
//! An event is tried [`ATTEMPTS`] times, each for at most [`TIMEOUT`].
//! Between two attempts it waits a short backoff, or what a server that
//! answered 429 or 503 asked (`Retry-After`, seconds or an HTTP date) up to
//! [`RETRY_AFTER_CAP`]: one that asks longer is not tried again (sooner
//! than it asked, it would refuse again), and the failure says so. Every wait, and every
//! attempt, ends by the deadline it is given (the end of a build's last wait
//! for its hooks), and a wait ends early when the build gives up on the
//! event. A redirect is not followed (a POST redirected by 301, 302 or 303
//! would go on as a GET without the event, which may be answered 200: every
//! event lost, and none said to be): it is told instead.
//! A URL is never shown whole: messages show its scheme and host
//! ([`redact_url`]), a webhook's token being in its path or query.

use std::time::{Duration, Instant};

use super::status::totals::short_duration;
use crate::exec::llm::call::parse_retry_after;

/// One attempt at most, as a build goes on.
pub(super) const TIMEOUT: Duration = Duration::from_secs(5);
/// How many times an event is tried.
pub(super) const ATTEMPTS: u32 = 3;
/// The longest `Retry-After` waited for before an event's next attempt.
pub(super) const RETRY_AFTER_CAP: Duration = Duration::from_secs(10);

/// How long one event's delivery may go on.
pub(super) struct Tries<'a> {
    /// When its last attempt must be over; `None` while the build runs.
    pub deadline: Option<Instant>,
    /// Whether the build gave up on the event: no attempt, and no wait,
    /// goes on then (but a request already on its way).
    pub give_up: &'a (dyn Fn() -> bool + Sync),
}

impl Tries<'_> {
    /// The time left before the deadline, if there is one.
    pub(super) fn left(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// How long one attempt may take now: [`TIMEOUT`], or less when the
    /// deadline is nearer.
    pub(super) fn timeout(&self) -> Duration {
        self.left().map_or(TIMEOUT, |left| left.min(TIMEOUT))
    }

    /// Sleeps for `wait`; `false`, at once, when the build gives up on the
    /// event meanwhile.
    fn pause(&self, wait: Duration) -> bool {
        let until = Instant::now() + wait;
        loop {
            if (self.give_up)() {
                return false;
            }
            let now = Instant::now();
            if now >= until {
                return true;
            }
            std::thread::sleep((until - now).min(Duration::from_millis(20)));
        }
    }
}

/// The agent every webhook's POST goes through: no redirect followed, a
/// status of any kind an answer to read.
pub(super) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}

/// Posts `body` (JSON) to `url`, tried as `tries` allows; `Err` says what
/// went wrong and how many times it was tried, for a warning.
pub(super) fn post(
    agent: &ureq::Agent,
    url: &str,
    body: &str,
    tries: &Tries,
) -> Result<(), String> {
    let mut last = String::new();
    let mut tried = 0;
    // What the last answer asked to wait (`Retry-After`).
    let mut asked = None;
    // Why the event was not tried again, when the server asked to wait.
    let mut note = String::new();
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            let asked = asked.take();
            if let Some(too_long) = asked.and_then(|asked| too_long(asked, tries)) {
                note = too_long;
                break;
            }
            let wait = asked.unwrap_or(Duration::from_millis(250 << attempt));
            if tries.left().is_some_and(|left| left <= wait) || !tries.pause(wait) {
                break;
            }
        }
        let timeout = tries.timeout();
        if timeout.is_zero() || (tries.give_up)() {
            break;
        }
        tried += 1;
        let sent = agent
            .post(url)
            .config()
            .timeout_global(Some(timeout))
            .build()
            .header("content-type", "application/json")
            .send(body);
        match sent {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) if r.status().is_redirection() => return Err(redirected(url, &r)),
            Ok(r) if r.status().is_client_error() && r.status().as_u16() != 429 => {
                return Err(format!(
                    "webhook {}: answered {}",
                    redact_url(url),
                    r.status().as_u16()
                ))
            }
            Ok(r) => {
                let status = r.status().as_u16();
                asked = matches!(status, 429 | 503)
                    .then(|| r.headers().get("retry-after"))
                    .flatten()
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after);
                last = format!("answered {status}");
            }
            // ureq says `timeout: global`.
            Err(ureq::Error::Timeout(_)) => {
                last = format!("no answer within {}", short_duration(timeout))
            }
            Err(e) => last = e.to_string().replace(url, &redact_url(url)),
        }
    }
    if tried == 0 {
        return Err(format!(
            "webhook {}: not sent: the build ended first",
            redact_url(url)
        ));
    }
    let times = if tried == 1 { "attempt" } else { "attempts" };
    Err(format!(
        "webhook {}: {last} ({tried} {times}){note}",
        redact_url(url)
    ))
}

/// Why a wait of `asked` (a server's `Retry-After`) is no retry: it is
/// longer than planexe waits to retry a webhook, or than the build's end
/// leaves `tries`; `None` when it is not.
fn too_long(asked: Duration, tries: &Tries) -> Option<String> {
    let asked_for = format!(
        "; the server asked to wait {} (Retry-After)",
        short_duration(asked)
    );
    if asked > RETRY_AFTER_CAP {
        return Some(format!(
            "{asked_for}, longer than planexe waits to retry a webhook ({})",
            short_duration(RETRY_AFTER_CAP)
        ));
    }
    let left = tries.left().filter(|&left| asked >= left)?;
    Some(format!(
        "{asked_for}, longer than the build's end left for it ({})",
        short_duration(left)
    ))
}

/// Shows a URL without its secret parts: scheme and host only.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or(host);
    if scheme.is_empty() {
        format!("{host}/...")
    } else {
        format!("{scheme}://{host}/...")
    }
}

/// Why a webhook that answered a redirect got nothing: the status and
/// where it leads (its scheme and host only: a token may be in its path).
fn redirected(url: &str, response: &ureq::http::Response<ureq::Body>) -> String {
    let to = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let to = match to {
        Some(to) if to.starts_with("http://") || to.starts_with("https://") => {
            format!(" to {}", redact_url(to))
        }
        Some(to) if !to.is_empty() => " to another path".to_string(),
        _ => String::new(),
    };
    format!(
        "webhook {}: answered {} (a redirect{to}), which planexe does not follow: set the webhook's url to the address it leads to",
        redact_url(url),
        response.status().as_u16()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_secret_parts() {
        assert_eq!(
            redact_url("https://discord.com/api/webhooks/123/SECRET-TOKEN?x=1"),
            "https://discord.com/..."
        );
        assert_eq!(
            redact_url("http://user:pw@host:8080/hook"),
            "http://host:8080/..."
        );
    }
}
