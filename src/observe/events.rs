//! What happens during a build, pushed to whoever wants it:
//! `.planexe/events.jsonl` (appended as things happen), `[[hooks]]` webhooks
//! (`json`, `discord`, `slack`) and command hooks, and a webhook named by
//! the environment (`$PLANEXE_WEBHOOK_URL`, read by the caller).
//!
//! Delivery never slows or fails a build: hooks run on one thread of their
//! own behind a bounded queue (events that do not fit are dropped and
//! counted), each delivery has a short timeout and a few retries, and at the
//! end of a build planexe waits at most a moment for the queue to drain,
//! then stops a command hook still running (`hook_command.rs`) and sends
//! nothing more (a watch lives on: late events would mix with the next
//! build's).
//! A webhook URL is never printed whole: messages show its scheme and host.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::hook_command::{self, Running};
use crate::model::pipeline::HookDef;
use crate::store::files;
use crate::store::RunDir;

/// Events waiting for delivery beyond this are dropped.
const QUEUE: usize = 1024;
/// One delivery attempt.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
const DELIVERY_ATTEMPTS: u32 = 3;
/// How long a finished build waits for hooks to drain.
const DRAIN: Duration = Duration::from_secs(1);

/// The longest line a `discord` or `slack` hook posts: Discord refuses a
/// message over 2000 characters (HTTP 400), so the event would be lost.
const CHAT_LINE: usize = 2000;

/// `text` cut to at most `max` characters, an ellipsis last when cut.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    crate::model::limits::shorten_to(text, max.saturating_sub(1))
}

/// One line of `events.jsonl`, and the body of a `json` webhook.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// `pipeline.started`, `task.started`, `task.check_failed` (a check
    /// or judge refused a task's outputs, or warned), `task.completed`,
    /// `task.rescued` (done by its checks' leave), `task.unrecorded`
    /// (it succeeded, but its result could not be recorded), `task.failed`,
    /// `task.stopped`, `pipeline.completed`, `pipeline.failed`,
    /// `pipeline.stopped`.
    pub event: String,
    pub task: Option<String>,
    pub run_dir: String,
    pub timestamp_utc: String,
    pub attempt: Option<u32>,
    pub model: Option<String>,
    pub duration_ms: Option<u64>,
    pub error_summary: Option<String>,
    pub error_id: Option<String>,
    /// `task.failed`, `task.stopped`: whether `planexe build` again,
    /// changing nothing, may succeed.
    #[serde(default)]
    pub recoverable: Option<bool>,
    /// `task.check_failed`: `error` (the check failed the task) or `warn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
}

impl Event {
    pub fn new(event: &str, task: Option<&str>, run_dir: &Path) -> Event {
        Event {
            event: event.to_string(),
            task: task.map(str::to_string),
            run_dir: run_dir.display().to_string(),
            timestamp_utc: crate::clock::now_rfc3339(),
            attempt: None,
            model: None,
            duration_ms: None,
            error_summary: None,
            error_id: None,
            recoverable: None,
            severity: None,
        }
    }

    /// A short human line, for chat webhooks: at most [`CHAT_LINE`]
    /// characters, the error summary cut short to fit (a build whose
    /// fan-out failed names every failed instance), the run directory kept.
    pub fn human(&self) -> String {
        let task = self
            .task
            .as_deref()
            .map(|t| format!(" {t}"))
            .unwrap_or_default();
        let mut line = format!("planexe{task}: {}", self.event);
        if let Some(ms) = self.duration_ms {
            line.push_str(&format!(" in {:.1}s", ms as f64 / 1000.0));
        }
        let tail = format!(" ({})", self.run_dir);
        if let Some(e) = &self.error_summary {
            let used = line.chars().count() + 2 + tail.chars().count();
            line.push_str(": ");
            line.push_str(&cut(e, CHAT_LINE.saturating_sub(used)));
        }
        line.push_str(&tail);
        cut(&line, CHAT_LINE)
    }
}

#[derive(Debug, Clone)]
enum Target {
    Url { url: String, format: String },
    Command(String),
}

#[derive(Debug, Clone)]
struct Hook {
    target: Target,
    events: Vec<String>,
}

impl Hook {
    fn wants(&self, event: &str) -> bool {
        self.events.is_empty()
            || self.events.iter().any(|f| {
                f == event
                    || f.strip_suffix('*')
                        .is_some_and(|prefix| event.starts_with(prefix))
            })
    }
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

/// The event log and hook delivery of one build.
pub struct Events {
    log: Mutex<Option<std::fs::File>>,
    log_path: PathBuf,
    queue: Option<SyncSender<Event>>,
    worker: Option<JoinHandle<()>>,
    dropped: Arc<AtomicUsize>,
    /// Events queued for the hooks, and those the worker is done with
    /// (delivered or failed): the difference was still waiting when the
    /// build ended.
    queued: AtomicUsize,
    handled: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    /// The command hook running now, stopped when the build stops
    /// waiting for its hooks (and then no delivery starts).
    commands: Arc<Running>,
}

impl Events {
    /// Opens the event log of `run_dir` and starts delivering to `defs`
    /// and to `extra_url` (a webhook named outside the pipeline).
    pub fn start(run_dir: &RunDir, defs: &[HookDef], extra_url: Option<&str>) -> Events {
        let mut hooks: Vec<Hook> = defs
            .iter()
            .map(|d| Hook {
                target: match (&d.url, &d.command) {
                    (Some(url), _) => Target::Url {
                        url: url.get_ref().clone(),
                        format: d.format.clone().unwrap_or_else(|| "json".into()),
                    },
                    (None, Some(c)) => Target::Command(c.clone()),
                    (None, None) => Target::Command("true".into()),
                },
                events: d.events.clone().unwrap_or_default(),
            })
            .collect();
        if let Some(url) = extra_url.map(str::trim).filter(|u| !u.is_empty()) {
            hooks.push(Hook {
                target: Target::Url {
                    url: url.to_string(),
                    format: "json".into(),
                },
                events: Vec::new(),
            });
        }
        let dropped = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let handled = Arc::new(AtomicUsize::new(0));
        let commands = Arc::new(Running::default());
        let (queue, worker) = if hooks.is_empty() {
            (None, None)
        } else {
            let (tx, rx) = mpsc::sync_channel::<Event>(QUEUE);
            let failures = Arc::clone(&failures);
            let handled = Arc::clone(&handled);
            let cwd = run_dir.root().to_path_buf();
            let commands = Arc::clone(&commands);
            let worker = std::thread::Builder::new()
                .name("planexe-hooks".into())
                .spawn(move || deliver_all(rx, hooks, failures, handled, cwd, &commands))
                .ok();
            (Some(tx), worker)
        };
        Events {
            log: Mutex::new(None),
            log_path: run_dir.events_path(),
            queue,
            worker,
            dropped,
            queued: AtomicUsize::new(0),
            handled,
            failures,
            commands,
        }
    }

    /// Records an event and queues it for the hooks.
    pub fn emit(&self, event: Event) {
        // Sized for a usual event, so serializing it does not grow it.
        let mut line = Vec::with_capacity(384);
        if serde_json::to_writer(&mut line, &event).is_ok() {
            line.push(b'\n');
            let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
            if log.is_none() {
                *log = files::open_append(&self.log_path).ok();
            }
            if let Some(f) = log.as_ref() {
                let _ = files::append_whole(f, &line);
            }
        }
        if let Some(queue) = &self.queue {
            if queue.try_send(event).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            } else {
                self.queued.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Waits a moment for queued deliveries, then gives up on them. Returns
    /// warnings for the user (failed or dropped deliveries).
    pub fn finish(mut self) -> Vec<String> {
        drop(self.queue.take());
        let read = |events: &Events| {
            (
                events
                    .failures
                    .lock()
                    .map(|f| f.clone())
                    .unwrap_or_default(),
                events.handled.load(Ordering::Relaxed),
            )
        };
        let mut stopped = None;
        if let Some(worker) = self.worker.take() {
            let deadline = Instant::now() + DRAIN;
            while !worker.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if worker.is_finished() {
                let _ = worker.join();
            } else {
                // What the hooks did until now is what is said: the
                // command stopped next was not delivered (its worker would
                // then tell of a SIGKILL, in a race with this).
                stopped = Some(read(&self));
                // A command hook still running would outlive the build.
                self.commands.stop_all();
            }
        }
        let (mut warnings, handled) = stopped.unwrap_or_else(|| read(&self));
        let dropped = self.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            warnings.push(format!(
                "{dropped} event(s) were not delivered to hooks: the queue was full"
            ));
        }
        let left = self.queued.load(Ordering::Relaxed).saturating_sub(handled);
        if left > 0 {
            warnings.push(format!(
                "{left} event(s) were not delivered to hooks: the build ended while a hook was still being tried (a slow or unreachable endpoint; planexe waits {}s at most)",
                DRAIN.as_secs()
            ));
        }
        warnings
    }
}

fn deliver_all(
    rx: Receiver<Event>,
    hooks: Vec<Hook>,
    failures: Arc<Mutex<Vec<String>>>,
    handled: Arc<AtomicUsize>,
    cwd: PathBuf,
    commands: &Running,
) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(DELIVERY_TIMEOUT))
        .http_status_as_error(false)
        // A POST redirected would be sent again as a GET without its body
        // (301, 302, 303), which the endpoint may answer 200: every event
        // lost, and none said to be. The redirect is told instead.
        .max_redirects(0)
        .build()
        .into();
    for event in rx {
        // Given up on: a watch, which lives on, would send this build's
        // events late, among the next build's, after a warning that said
        // they were not delivered.
        if commands.stopped() {
            break;
        }
        for hook in hooks.iter().filter(|h| h.wants(&event.event)) {
            if let Err(e) = deliver(&agent, hook, &event, &cwd, commands) {
                if let Ok(mut f) = failures.lock() {
                    // One warning per distinct failure: a dead endpoint
                    // fails every event the same way.
                    if f.len() < 5 && !f.contains(&e) {
                        f.push(e);
                    }
                }
            }
        }
        handled.fetch_add(1, Ordering::Relaxed);
    }
}

fn deliver(
    agent: &ureq::Agent,
    hook: &Hook,
    event: &Event,
    cwd: &Path,
    commands: &Running,
) -> std::result::Result<(), String> {
    match &hook.target {
        Target::Url { url, format } => {
            let body = match format.as_str() {
                // What the line quotes (a server's error, what a check
                // printed, a model's words within it) mentions no one:
                // `@everyone` in it would ping a whole Discord server.
                "discord" => serde_json::json!({
                    "content": event.human(),
                    "allowed_mentions": { "parse": [] },
                }),
                // Slack reads `<!channel>`, `<@U123>` and links between
                // `<` and `>`: the three characters are escaped, as its
                // docs ask.
                "slack" => serde_json::json!({ "text": slack_escaped(&event.human()) }),
                _ => serde_json::to_value(event).unwrap_or_default(),
            }
            .to_string();
            let mut last = String::new();
            let mut tried = 0;
            for attempt in 0..DELIVERY_ATTEMPTS {
                if attempt > 0 {
                    std::thread::sleep(Duration::from_millis(250 << attempt));
                    if commands.stopped() {
                        break;
                    }
                }
                tried += 1;
                match agent
                    .post(url)
                    .header("content-type", "application/json")
                    .send(body.as_str())
                {
                    Ok(r) if r.status().is_success() => return Ok(()),
                    Ok(r) if r.status().is_redirection() => return Err(redirected(url, &r)),
                    Ok(r) if r.status().is_client_error() && r.status().as_u16() != 429 => {
                        return Err(format!(
                            "webhook {}: answered {}",
                            redact_url(url),
                            r.status().as_u16()
                        ))
                    }
                    Ok(r) => last = format!("answered {}", r.status().as_u16()),
                    // ureq says `timeout: global`.
                    Err(ureq::Error::Timeout(_)) => {
                        last = format!("no answer within {}s", DELIVERY_TIMEOUT.as_secs())
                    }
                    Err(e) => last = e.to_string().replace(url.as_str(), &redact_url(url)),
                }
            }
            let times = if tried == 1 { "attempt" } else { "attempts" };
            Err(format!(
                "webhook {}: {last} ({tried} {times})",
                redact_url(url)
            ))
        }
        Target::Command(command) => {
            let json = serde_json::to_string(event).unwrap_or_default();
            hook_command::run(command, &json, cwd, DELIVERY_TIMEOUT, commands)
        }
    }
}

/// `line` as Slack shows it as it is: `&`, `<` and `>` escaped, which
/// would otherwise make mentions (`<!channel>`) and links.
fn slack_escaped(line: &str) -> String {
    line.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
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

    #[test]
    fn filters() {
        let hook = Hook {
            target: Target::Command("true".into()),
            events: vec!["task.*".into(), "pipeline.failed".into()],
        };
        assert!(hook.wants("task.failed"));
        assert!(hook.wants("pipeline.failed"));
        assert!(!hook.wants("pipeline.completed"));
    }
}
