//! `[[hooks]]`, checked: each has a `url` that a request can be sent to
//! (http or https, no credentials before the host: `endpoint::flaw`, as
//! for a model's `base_url`) or a command that is not blank, a known `format` (a chat one
//! only for a `url`), and `events` that name events
//! planexe sends (a typo would leave a hook that never fires). Delivering
//! events to them is the observe layer's.

use std::ops::Range;

use super::endpoint::{self, Flaw};
use super::pipeline::{HookDef, Pipeline};
use crate::error::{Error, Result};

/// The pipeline's hooks, checked; an error points at the value that is
/// wrong (`file:line:col`: the `url`, the event, the `format`...), else at
/// its `[[hooks]]` table, and says which hook is wrong and why.
pub fn resolve(pipeline: &Pipeline) -> Result<Vec<HookDef>> {
    let source = pipeline.source();
    for (i, hook) in pipeline.def.hooks.iter().enumerate() {
        let n = i + 1;
        let url = hook.get_ref().url.as_ref();
        if let Some(flaw) = url.and_then(|u| endpoint::flaw(u.get_ref(), true)) {
            let hint = match flaw {
                Flaw::Credentials => "remove `user:...@` from the url; a webhook's token goes in its path or query, which planexe keeps out of what it prints and writes",
                _ => "a hook's url is a webhook such as \"https://discord.com/api/webhooks/...\"",
            };
            let at = url.map_or(hook.span(), |u| u.span());
            let message = flaw.message(&format!("hook {n}: `url`"));
            // A webhook's token is often in its path: the frame hides it.
            let shown = endpoint::frame(&source, at, &message, true);
            return Err(Error::pipeline(shown).hint(hint));
        }
        check(n, hook.get_ref()).map_err(|(at, m)| {
            Error::pipeline(source.diagnostic(at.unwrap_or_else(|| hook.span()), &m))
                .hint("[[hooks]] takes `url` or `command`, and optionally `events` and `format`")
        })?;
    }
    Ok(pipeline
        .def
        .hooks
        .iter()
        .map(|h| h.get_ref().clone())
        .collect())
}

/// Every event a build sends (docs/observability.md).
pub const EVENTS: [&str; 11] = [
    "pipeline.started",
    "task.started",
    "task.check_failed",
    "task.completed",
    "task.rescued",
    "task.unrecorded",
    "task.failed",
    "task.stopped",
    "pipeline.completed",
    "pipeline.failed",
    "pipeline.stopped",
];

/// Whether an `events` entry names an event, or ends with `*` and matches
/// some.
fn known(filter: &str) -> bool {
    match filter.strip_suffix('*') {
        Some(prefix) => EVENTS.iter().any(|e| e.starts_with(prefix)),
        None => EVENTS.contains(&filter),
    }
}

/// What is wrong with hook `n`, and the value it is wrong about (none:
/// the hook's table).
fn check(n: usize, def: &HookDef) -> std::result::Result<(), (Option<Range<usize>>, String)> {
    if let Some(c) = def
        .command
        .as_ref()
        .filter(|c| c.get_ref().trim().is_empty())
    {
        return Err((Some(c.span()), format!("hook {n}: `command` is empty")));
    }
    if let Some(events) = &def.events {
        if events.get_ref().is_empty() {
            return Err((
                Some(events.span()),
                format!("hook {n}: `events` is empty, so the hook would never fire (leave `events` out to send every event)"),
            ));
        }
        if let Some(bad) = events.get_ref().iter().find(|e| !known(e.get_ref())) {
            return Err((
                Some(bad.span()),
                format!(
                    "hook {n}: `events` names `{}`, which planexe never sends (events are {}; `task.*` matches every task event)",
                    bad.get_ref(),
                    EVENTS.join(", ")
                ),
            ));
        }
    }
    match (&def.url, &def.command) {
        (None, None) => return Err((None, format!("hook {n} has neither `url` nor `command`"))),
        (Some(_), Some(c)) => {
            return Err((
                Some(c.span()),
                format!("hook {n} has both `url` and `command`"),
            ))
        }
        _ => {}
    }
    if let Some(f) = &def.format {
        let (at, f) = (Some(f.span()), f.get_ref());
        if !matches!(f.as_str(), "json" | "discord" | "slack") {
            return Err((
                at,
                format!("hook {n}: unknown format `{f}` (json, discord or slack)"),
            ));
        }
        // A command would get the JSON all the same: not what was asked.
        if def.command.is_some() && f != "json" {
            return Err((
                at,
                format!(
                    "hook {n}: `format = \"{f}\"` is for a `url` hook; a `command` gets the event's JSON on its stdin (its line: `jq -r .event`, `.task`, `.error_summary`)"
                ),
            ));
        }
    }
    Ok(())
}
