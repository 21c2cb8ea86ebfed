//! Paths as a pipeline writes them, checked and expanded: a path must be
//! relative and stay inside the run directory (no `..`, no symlinked folder
//! leading out); a glob matches source files on disk, never a file some
//! task produces, nor anything under `.planexe/`.

use std::collections::HashMap;
use std::ops::Range;

use globset::GlobBuilder;

use super::super::graph::TaskId;
use super::Resolver;
use crate::error::Result;
use crate::store::rundir::{self, STATE_DIR};

/// Whether a path as written is a glob pattern.
pub(super) fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '[', '{'])
}

/// `raw`, normalized and checked to stay inside the run directory.
pub(super) fn checked_path(
    r: &Resolver,
    raw: &str,
    span: Range<usize>,
    task: &str,
    what: &str,
) -> Result<String> {
    let refuse = |m: String| {
        r.err(span.clone(), &format!("{what} of task `{task}`: {m}"))
            .hint("name files relative to the run directory, without `..`")
    };
    let path = rundir::normalize(raw).map_err(refuse)?;
    r.run_dir.check_inside(&path).map_err(refuse)?;
    Ok(path)
}

/// Expands a glob against source files on disk, sorted. Files some task
/// produces are never matched (name them explicitly), nor anything under
/// `.planexe/`. Every folder walked is added to `walked`.
pub(super) fn expand_glob(
    r: &Resolver,
    pattern: &str,
    span: Range<usize>,
    task: &str,
    producers: &HashMap<String, TaskId>,
    walked: &mut Vec<String>,
) -> Result<Vec<String>> {
    let refuse = |m: String| {
        r.err(span.clone(), &format!("input of task `{task}`: {m}"))
            .hint("globs are relative to the run directory, without `..`: `*`, `?`, `**`, `[abc]`, `{a,b}`")
    };
    let normalized = rundir::normalize(pattern).map_err(refuse)?;
    let glob = GlobBuilder::new(&normalized)
        .literal_separator(true)
        .build()
        .map_err(|e| refuse(format!("bad glob pattern: {e}")))?
        .compile_matcher();
    // Walk from the longest literal prefix folder.
    let parts: Vec<&str> = normalized.split('/').collect();
    let literal = parts.iter().take_while(|p| !is_glob(p)).count();
    let base = parts[..literal.min(parts.len() - 1)].join("/");
    let recursive = normalized.contains("**") || parts.len() - literal > 1;
    let run_dir = r.run_dir;
    let mut found = Vec::new();
    let mut stack = vec![base];
    while let Some(dir) = stack.pop() {
        let full = if dir.is_empty() {
            run_dir.root().to_path_buf()
        } else {
            run_dir.path(&dir)
        };
        walked.push(if dir.is_empty() {
            ".".into()
        } else {
            dir.clone()
        });
        let Ok(entries) = std::fs::read_dir(&full) else {
            continue;
        };
        for entry in entries.flatten() {
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if dir.is_empty() && name == STATE_DIR {
                continue;
            }
            let rel = if dir.is_empty() {
                name
            } else {
                format!("{dir}/{name}")
            };
            // A link counts as what it leads to; a FIFO, socket or device
            // is not matched (hashing it would hang or never end).
            let Ok(mut kind) = entry.file_type() else {
                continue;
            };
            // (A dangling link stays a link and is matched, as a plain
            // path naming it is taken: its task fails with
            // `missing_input` when it runs.)
            if kind.is_symlink() {
                if let Ok(target) = std::fs::metadata(run_dir.path(&rel)) {
                    kind = target.file_type();
                }
            }
            if kind.is_dir() {
                if recursive {
                    stack.push(rel);
                }
            } else if (kind.is_file() || kind.is_symlink())
                && glob.is_match(&rel)
                && !producers.contains_key(&rel)
            {
                run_dir.check_inside(&rel).map_err(&refuse)?;
                found.push(rel);
            }
        }
    }
    found.sort();
    Ok(found)
}
