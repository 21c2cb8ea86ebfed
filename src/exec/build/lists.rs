//! `foreach` tasks during a build: a placeholder expands as soon as its
//! list file is ready (no task produces it, or its producer is up to
//! date), so its instances run in the same build; and instances whose item
//! is gone lose their outputs and records.

use super::super::observer::{Notice, Observer};
use crate::error::Result;
use crate::plan::Session;
use crate::store::files;
use crate::store::CheckMode;

/// Expands every placeholder whose list is ready, until none is: an
/// expansion can make another list's producer up to date.
pub(super) fn expand_ready(session: &mut Session, mode: CheckMode) -> Result<()> {
    loop {
        let waiting: Vec<(String, Option<usize>)> = session
            .graph
            .placeholders()
            .map(|(name, list)| (name.to_string(), session.graph.producer(list)))
            .collect();
        if waiting.is_empty() {
            return Ok(());
        }
        // Only lists with a producer need the plan.
        let plan = if waiting.iter().any(|(_, p)| p.is_some()) {
            Some(session.plan_all(mode)?)
        } else {
            None
        };
        let mut grew = false;
        for (name, producer) in waiting {
            let ready = match (producer, &plan) {
                (None, _) => true,
                (Some(p), Some(plan)) => plan.reasons[p].is_none(),
                (Some(_), None) => false,
            };
            if ready && session.expand(&name)? {
                grew = true;
            }
        }
        if !grew {
            return Ok(());
        }
    }
}

/// Removes the outputs, log and records of instances whose item is gone.
/// Only outputs no current task produces are removed.
pub(super) fn remove_vanished(session: &mut Session, observer: &dyn Observer) -> Result<()> {
    let mut gone: Vec<(String, Vec<String>)> = Vec::new();
    for (base, group) in &session.graph.fanouts {
        if group.placeholder {
            continue;
        }
        let prefix = format!("{base}[");
        for (name, record) in session.store.records() {
            if name.starts_with(&prefix) && session.graph.task(name).is_none() {
                let outputs = record
                    .done
                    .iter()
                    .flat_map(|d| d.outputs.keys().cloned())
                    .collect();
                gone.push((name.clone(), outputs));
            }
        }
    }
    gone.sort();
    for (name, outputs) in gone {
        let mut removed = Vec::new();
        for out in outputs {
            if session.graph.producer(&out).is_some() {
                continue;
            }
            if files::remove_if_exists(&session.run_dir.path(&out))? {
                removed.push(out);
            }
        }
        files::remove_if_exists(&session.run_dir.task_log_path(&name))?;
        session.store.forget(&session.run_dir, &name)?;
        observer.notice(&Notice::InstanceRemoved {
            task: name,
            outputs: removed,
        });
    }
    Ok(())
}
