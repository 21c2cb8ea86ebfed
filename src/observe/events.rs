//! What happens during a build, pushed to whoever wants it:
//! `.planexe/events.jsonl` (appended as things happen), `[[hooks]]` webhooks
//! (`json`, `discord`, `slack`) and command hooks, and a webhook named by
//! the environment (`$PLANEXE_WEBHOOK_URL`, read by the caller).
//!
//! Delivery never slows or fails a build: hooks run on one thread of their
//! own behind a bounded queue (events that do not fit are dropped and
//! counted), each delivery has a short timeout and a few retries
//! (`webhook.rs`, `hook_command.rs`). The build's last event
//! (`pipeline.completed`, `.failed`, `.stopped`), the one a chat channel or
//! a dashboard shows, is never queued behind the others: at the end of a
//! build planexe waits [`DRAIN`] for the events still queued, gives up on
//! those left, and sends the last event to each hook on a thread of its
//! own, waiting for it [`LAST`] at most. It is still the last a hook gets:
//! each hook has one lane, held by whoever delivers to it, so the last
//! event goes to a hook only once the event on its way there as the build
//! ended (a request sent, a command running) is over, answered or failed,
//! and nothing starts on the lane after it. Then planexe stops a command
//! hook still running and sends nothing more (a watch lives on: late
//! events would mix with the next build's). A signal while it waits (a
//! second Ctrl-C, after the one that stopped the build, or a first after
//! a build that completed) ends the wait at once: the command hooks are
//! stopped and reaped, and the caller exits 130.
//! A webhook URL is never printed whole: messages show its scheme and host.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::hook_command::{self, Running};
use super::webhook::{self, Tries};
use crate::exec::Interrupt;
use crate::model::pipeline::HookDef;
use crate::store::files;
use crate::store::RunDir;

/// Events waiting for delivery beyond this are dropped.
const QUEUE: usize = 1024;
/// How long a finished build waits for the events still queued, in order,
/// before it gives them up for its last.
const DRAIN: Duration = Duration::from_secs(1);
/// How long a finished build then waits for its last event: as long as
/// one attempt's timeout, so an endpoint that answers within it gets the
/// event.
const LAST: Duration = webhook::TIMEOUT;

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

impl Target {
    /// The hook as a message names it: a URL's scheme and host only.
    fn shown(&self) -> String {
        match self {
            Target::Url { url, .. } => format!("webhook {}", webhook::redact_url(url)),
            Target::Command(_) => "hook command".into(),
        }
    }
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

/// The event log and hook delivery of one build.
pub struct Events {
    log: Mutex<Option<std::fs::File>>,
    log_path: PathBuf,
    queue: Option<SyncSender<Event>>,
    worker: Option<JoinHandle<()>>,
    /// What the worker and the senders of the last event share.
    shared: Arc<Shared>,
    dropped: AtomicUsize,
    /// Events queued for the hooks; those the worker is done with are
    /// `shared.handled`: the difference was still waiting when the build
    /// ended.
    queued: AtomicUsize,
    /// The build's last event, recorded: sent by [`Events::finish`].
    last: Mutex<Option<Event>>,
}

/// The hooks, and what their deliveries leave.
struct Shared {
    hooks: Vec<Hook>,
    /// One per hook, held by whoever delivers to it (the worker, the
    /// sender of the last event): one delivery at a time, in order.
    lanes: Vec<Mutex<()>>,
    agent: ureq::Agent,
    /// Where command hooks run.
    cwd: PathBuf,
    /// Queued events the worker is done with (delivered or failed).
    handled: AtomicUsize,
    failures: Mutex<Vec<String>>,
    /// The build ended: the worker starts no delivery, and no attempt,
    /// of a queued event any more.
    ended: AtomicBool,
    /// The command hooks running now, stopped when the build stops
    /// waiting for its hooks (and then no delivery starts).
    commands: Running,
}

impl Shared {
    /// One warning per distinct failure: a dead endpoint fails every
    /// event the same way.
    fn failed(&self, e: String) {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if f.len() < 5 && !f.contains(&e) {
            f.push(e);
        }
    }

    /// Delivers `event` to `hook` as `tries` allows.
    fn deliver(&self, hook: &Hook, event: &Event, tries: &Tries) -> Result<(), String> {
        match &hook.target {
            Target::Url { url, format } => {
                webhook::post(&self.agent, url, &body(format, event), tries)
            }
            Target::Command(command) => {
                let json = serde_json::to_string(event).unwrap_or_default();
                let timeout = tries.timeout();
                hook_command::run(command, &json, &self.cwd, timeout, &self.commands)
            }
        }
    }
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
                        format: d
                            .format
                            .as_ref()
                            .map_or_else(|| "json".into(), |f| f.get_ref().clone()),
                    },
                    (None, Some(c)) => Target::Command(c.get_ref().clone()),
                    (None, None) => Target::Command("true".into()),
                },
                events: d.events.as_ref().map_or_else(Vec::new, |e| {
                    e.get_ref().iter().map(|e| e.get_ref().clone()).collect()
                }),
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
        let some = !hooks.is_empty();
        let shared = Arc::new(Shared {
            lanes: hooks.iter().map(|_| Mutex::new(())).collect(),
            hooks,
            agent: webhook::agent(),
            cwd: run_dir.root().to_path_buf(),
            handled: AtomicUsize::new(0),
            failures: Mutex::new(Vec::new()),
            ended: AtomicBool::new(false),
            commands: Running::default(),
        });
        let (queue, worker) = if some {
            let (tx, rx) = mpsc::sync_channel::<Event>(QUEUE);
            let shared = Arc::clone(&shared);
            let worker = std::thread::Builder::new()
                .name("planexe-hooks".into())
                .spawn(move || deliver_all(rx, &shared))
                .ok();
            (Some(tx), worker)
        } else {
            (None, None)
        };
        Events {
            log: Mutex::new(None),
            log_path: run_dir.events_path(),
            queue,
            worker,
            shared,
            dropped: AtomicUsize::new(0),
            queued: AtomicUsize::new(0),
            last: Mutex::new(None),
        }
    }

    /// Records an event and queues it for the hooks.
    pub fn emit(&self, event: Event) {
        self.record(&event);
        if let Some(queue) = &self.queue {
            if queue.try_send(event).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            } else {
                self.queued.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Records the build's last event, which [`Events::finish`] sends
    /// to the hooks, queued behind no other.
    pub fn emit_last(&self, event: Event) {
        self.record(&event);
        if self.queue.is_some() {
            *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(event);
        }
    }

    /// Appends `event` to the event log.
    fn record(&self, event: &Event) {
        // Sized for a usual event, so serializing it does not grow it.
        let mut line = Vec::with_capacity(384);
        if serde_json::to_writer(&mut line, event).is_ok() {
            line.push(b'\n');
            let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
            if log.is_none() {
                *log = files::open_append(&self.log_path).ok();
            }
            if let Some(f) = log.as_ref() {
                let _ = files::append_whole(f, &line);
            }
        }
    }

    /// Waits [`DRAIN`] at most for the events queued, gives up on those
    /// left, and sends the last event, waiting [`LAST`] at most; then stops
    /// what still runs. A stop `interrupt` is asked meanwhile (a signal)
    /// ends the wait at once. Says what went wrong (failed or dropped
    /// deliveries) and whether the wait was cut short so.
    pub fn finish(mut self, interrupt: &Interrupt) -> Delivered {
        let catching = interrupt.catch_next();
        drop(self.queue.take());
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(worker) = &self.worker {
            let drained = Instant::now() + DRAIN;
            while !worker.is_finished() && Instant::now() < drained && !catching.caught() {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        // Those still queued are given up on, so the last is not held
        // behind them; one on its way holds its hook's lane until it is
        // over, and the last waits for it there.
        self.shared.ended.store(true, Ordering::SeqCst);
        // A moment beyond `LAST`: the first attempt has a whole timeout.
        let deadline = Instant::now() + LAST + Duration::from_millis(100);
        let wanted = last
            .as_ref()
            .is_some_and(|l| self.shared.hooks.iter().any(|h| h.wants(&l.event)));
        let senders = match last.filter(|_| !catching.caught()) {
            Some(last) => send_last(&self.shared, last, deadline),
            None => Vec::new(),
        };
        // A sender's last attempt ends by the deadline; a moment more for
        // it to say how.
        let waited = deadline + Duration::from_millis(400);
        while senders.iter().any(|s| !s.is_finished())
            && Instant::now() < waited
            && !catching.caught()
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        let cut = catching.caught();
        // What the hooks did until now is what is said: a command stopped
        // next was not delivered (its delivery would then tell of a
        // SIGKILL, in a race with this).
        let last_left = senders.iter().any(|s| !s.is_finished()) || (wanted && senders.is_empty());
        let handled = self.shared.handled.load(Ordering::Relaxed);
        let mut warnings = (self.shared.failures.lock())
            .map(|f| f.clone())
            .unwrap_or_default();
        // A command hook still running would outlive the build.
        self.shared.commands.stop_all();
        if cut {
            // Reaped before planexe exits: a moment, they were killed.
            self.shared
                .commands
                .reaped(Instant::now() + Duration::from_secs(1));
        }
        drop(catching);
        if let Some(worker) = self.worker.take().filter(|w| w.is_finished()) {
            let _ = worker.join();
        }
        let dropped = self.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            warnings.push(format!(
                "{dropped} event(s) were not delivered to hooks: the queue was full"
            ));
        }
        let left =
            self.queued.load(Ordering::Relaxed).saturating_sub(handled) + usize::from(last_left);
        if cut {
            warnings.push(format!(
                "{left} event(s) were not delivered to hooks: interrupted while planexe waited for them; the hook commands still running were stopped"
            ));
        } else if left > 0 {
            warnings.push(format!(
                "{left} event(s) were not delivered to hooks: the build ended while a hook was still being tried (a slow or unreachable endpoint; as a build ends, planexe waits {}s for the events still queued, then gives them up and sends its last event, waiting {}s at most)",
                DRAIN.as_secs(),
                LAST.as_secs()
            ));
        }
        Delivered { warnings, cut }
    }
}

/// How the hooks' deliveries ended ([`Events::finish`]).
#[derive(Debug, Default)]
pub struct Delivered {
    /// For the user: failed or dropped deliveries.
    pub warnings: Vec<String>,
    /// A signal ended the wait for the hooks: the process is to exit as
    /// interrupted.
    pub cut: bool,
}

/// Delivers the queued events, in order, until the build ends.
fn deliver_all(rx: Receiver<Event>, shared: &Shared) {
    // Given up on once the build ended: the last event is not to wait
    // for them, and a watch, which lives on, would send them late, among
    // the next build's, after a warning that said they were not delivered.
    let give_up = || shared.ended.load(Ordering::SeqCst) || shared.commands.stopped();
    let tries = Tries {
        deadline: None,
        give_up: &give_up,
    };
    for event in rx {
        for (hook, lane) in shared.hooks.iter().zip(&shared.lanes) {
            if !hook.wants(&event.event) {
                continue;
            }
            // Looked at with the lane held: once the build ended, the
            // sender of the last event may hold it, or have held it, and
            // nothing may follow the last event on it.
            let _lane = lane.lock().unwrap_or_else(|p| p.into_inner());
            if give_up() {
                return;
            }
            if let Err(e) = shared.deliver(hook, &event, &tries) {
                // Cut short by the build's end: not delivered, as said.
                if give_up() {
                    return;
                }
                shared.failed(e);
            }
        }
        shared.handled.fetch_add(1, Ordering::Relaxed);
    }
}

/// Sends `last` to each hook that wants it, each on a thread of its own
/// (a dead endpoint does not hold another's), by `deadline`: on the hook's
/// lane, once the event on its way there is over.
fn send_last(shared: &Arc<Shared>, last: Event, deadline: Instant) -> Vec<JoinHandle<()>> {
    let last = Arc::new(last);
    (0..shared.hooks.len())
        .filter(|&h| shared.hooks[h].wants(&last.event))
        .filter_map(|h| {
            let shared = Arc::clone(shared);
            let last = Arc::clone(&last);
            let sent = move || {
                let give_up = || shared.commands.stopped();
                let Some(_lane) = lane(&shared.lanes[h], deadline, &give_up) else {
                    shared.failed(format!(
                        "{}: the build's last event was not sent: the event before it was still being delivered when planexe stopped waiting",
                        shared.hooks[h].target.shown()
                    ));
                    return;
                };
                let tries = Tries {
                    deadline: Some(deadline),
                    give_up: &give_up,
                };
                if let Err(e) = shared.deliver(&shared.hooks[h], &last, &tries) {
                    shared.failed(e);
                }
            };
            let thread = std::thread::Builder::new().name("planexe-hooks-last".into());
            thread.spawn(sent).ok()
        })
        .collect()
}

/// `lane`, held, once free; `None` when it is not by `deadline`, or when
/// `give_up` says so first.
fn lane<'a>(
    lane: &'a Mutex<()>,
    deadline: Instant,
    give_up: &dyn Fn() -> bool,
) -> Option<std::sync::MutexGuard<'a, ()>> {
    loop {
        match lane.try_lock() {
            Ok(held) => return Some(held),
            Err(std::sync::TryLockError::Poisoned(p)) => return Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => {}
        }
        if give_up() || Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What a webhook in `format` is sent of `event`.
fn body(format: &str, event: &Event) -> String {
    match format {
        // What the line quotes (a server's error, what a check printed, a
        // model's words within it) mentions no one: `@everyone` in it
        // would ping a whole Discord server.
        "discord" => serde_json::json!({
            "content": event.human(),
            "allowed_mentions": { "parse": [] },
        }),
        // Slack reads `<!channel>`, `<@U123>` and links between `<` and
        // `>`: the three characters are escaped, as its docs ask.
        "slack" => serde_json::json!({ "text": slack_escaped(&event.human()) }),
        _ => serde_json::to_value(event).unwrap_or_default(),
    }
    .to_string()
}

/// `line` as Slack shows it as it is: `&`, `<` and `>` escaped, which
/// would otherwise make mentions (`<!channel>`) and links.
fn slack_escaped(line: &str) -> String {
    line.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

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
