//! `[[hooks]]`, checked: each has a `url` (http or https) or a command
//! that is not blank, a known `format`, and `events` that name events
//! planexe sends (a typo would leave a hook that never fires). Delivering
//! events to them is the observe layer's.

use super::pipeline::{HookDef, Pipeline};
use crate::error::{Error, Result};

/// The pipeline's hooks, checked; an error points at the first `[[hooks]]`
/// table and says which hook is wrong and why.
pub fn resolve(pipeline: &Pipeline) -> Result<Vec<HookDef>> {
    let defs: Vec<HookDef> = pipeline
        .def
        .hooks
        .iter()
        .map(|h| h.get_ref().clone())
        .collect();
    check(&defs).map_err(|m| {
        let span = pipeline.def.hooks.first().map_or(0..0, |h| h.span());
        Error::pipeline(pipeline.source().diagnostic(span, &m))
            .hint("[[hooks]] takes `url` or `command`, and optionally `events` and `format`")
    })?;
    Ok(defs)
}

/// Every event a build sends (docs/observability.md).
pub const EVENTS: [&str; 10] = [
    "pipeline.started",
    "task.started",
    "task.check_failed",
    "task.completed",
    "task.rescued",
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

fn check(defs: &[HookDef]) -> std::result::Result<(), String> {
    for (i, def) in defs.iter().enumerate() {
        let n = i + 1;
        if def.command.as_deref().is_some_and(|c| c.trim().is_empty()) {
            return Err(format!("hook {n}: `command` is empty"));
        }
        if let Some(bad) = def.events.iter().find(|e| !known(e)) {
            return Err(format!(
                "hook {n}: `events` names `{bad}`, which planexe never sends (events are {}; `task.*` matches every task event)",
                EVENTS.join(", ")
            ));
        }
        match (&def.url, &def.command) {
            (None, None) => return Err(format!("hook {n} has neither `url` nor `command`")),
            (Some(_), Some(_)) => return Err(format!("hook {n} has both `url` and `command`")),
            (Some(url), None) if !(url.starts_with("http://") || url.starts_with("https://")) => {
                return Err(format!(
                    "hook {n}: `url` must start with http:// or https://"
                ))
            }
            _ => {}
        }
        if let Some(f) = &def.format {
            if !matches!(f.as_str(), "json" | "discord" | "slack") {
                return Err(format!(
                    "hook {n}: unknown format `{f}` (json, discord or slack)"
                ));
            }
        }
    }
    Ok(())
}
