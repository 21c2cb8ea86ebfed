//! Paths as a pipeline writes them, checked and expanded: a path must be
//! relative and stay inside the run directory (no `..`, no symlinked folder
//! leading out); a glob matches source files on disk, never a file some
//! task produces, nor anything under `.planexe/`, and its walk ends
//! whatever loops the links on disk make.

use std::ops::Range;

use globset::GlobBuilder;
use rustc_hash::FxHashMap as HashMap;

use super::super::graph::{GlobInput, TaskId};
use super::super::reads::Produced;
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
            .hint("name files relative to the run directory, without `..` and without control characters (a line break, a tab)")
    };
    let path = rundir::normalize(raw).map_err(refuse)?;
    if let Err(m) = r.run_dir.check_inside(&path) {
        let error = r.err(span, &format!("{what} of task `{task}`: {m}"));
        return Err(match leading_link(r, &path) {
            Some((link, target)) => error.hint(format!(
                "{link} is a symlink to {target}: name a file in a folder of the run directory, or make {link} a real folder there"
            )),
            None => error.hint("name files in folders of the run directory"),
        });
    }
    Ok(path)
}

/// The first folder on the way to `path` that is a symlink, and where it
/// leads: what takes a path out of the run directory.
fn leading_link(r: &Resolver, path: &str) -> Option<(String, String)> {
    let mut at = String::new();
    for part in path.split('/') {
        if !at.is_empty() {
            at.push('/');
        }
        at.push_str(part);
        let full = r.run_dir.root().join(&at);
        if full.symlink_metadata().ok()?.file_type().is_symlink() {
            let target = std::fs::read_link(&full).ok()?;
            let target = crate::store::untrusted::printable(&target.to_string_lossy()).into_owned();
            return Some((at, target));
        }
    }
    None
}

/// Expands a glob of task `id` against source files on disk, sorted, and
/// keeps it (to say which outputs it leaves out). Files some task produces
/// are never matched (name them explicitly), nor anything under
/// `.planexe/`. Every folder walked is added to `walked`.
///
/// The walk ends whatever the links on disk: it goes no deeper than the
/// pattern reaches (any depth only below a `**`), and `**` does not go
/// into a symlinked folder (as zsh, git and ripgrep do not),
/// so `loop -> .` or `a/b -> ..` is not followed round and round.
pub(super) fn expand_glob(
    r: &Resolver,
    pattern: &str,
    span: Range<usize>,
    (id, task): (TaskId, &str),
    producers: &HashMap<String, TaskId>,
    walked: &mut Vec<String>,
) -> Result<(Vec<String>, GlobInput)> {
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
    let base_len = literal.min(parts.len() - 1);
    let base = parts[..base_len].join("/");
    let input = GlobInput {
        task: id,
        pattern: normalized.clone(),
        base: base.clone(),
        matcher: glob.clone(),
    };
    let walk = Walk::of(&parts[base_len..]);
    let run_dir = r.run_dir;
    let mut found = Vec::new();
    // Each folder with its depth below the base.
    let mut stack = vec![(base, 0)];
    while let Some((dir, depth)) = stack.pop() {
        let full = if dir.is_empty() {
            run_dir.root().to_path_buf()
        } else {
            run_dir.path(&dir)
        };
        let shown = if dir.is_empty() {
            ".".to_string()
        } else {
            dir.clone()
        };
        walked.push(shown.clone());
        let Ok(entries) = std::fs::read_dir(&full) else {
            continue;
        };
        let depth = depth + 1;
        // Every entry as listed, for the folder's hash as read; a folder
        // whose listing failed midway has none (nothing can match it).
        let entries: Vec<_> = entries.collect();
        match entries
            .iter()
            .map(|e| e.as_ref().ok())
            .collect::<Option<Vec<_>>>()
        {
            Some(listed) => {
                let produced = r
                    .produced
                    .get_or_init(|| Produced::of(producers.keys().map(String::as_str)));
                let names = listed
                    .iter()
                    .map(|e| e.file_name().into_encoded_bytes())
                    .collect();
                let hash = produced.listing_hash(&shown, names, |p| producers.contains_key(p));
                r.reads.put_hash(shown, hash);
            }
            None => r.reads.put_hash(shown, String::new()),
        }
        for entry in entries.into_iter().flatten() {
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
            let link = kind.is_symlink();
            // (A dangling link stays a link and is matched, as a plain
            // path naming it is taken: its task fails with
            // `missing_input` when it runs.)
            if link {
                if let Ok(target) = std::fs::metadata(run_dir.path(&rel)) {
                    kind = target.file_type();
                }
            }
            if kind.is_dir() {
                if walk.enters(depth, link) {
                    stack.push((rel, depth));
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
    Ok((found, input))
}

/// How far a glob's walk goes below its literal base folder.
struct Walk {
    /// How many components the pattern has below the base.
    parts: usize,
    /// Which of them is the first `**`, if any: below it, any depth.
    globstar: Option<usize>,
}

impl Walk {
    fn of(parts: &[&str]) -> Walk {
        Walk {
            parts: parts.len(),
            globstar: parts.iter().position(|p| p.contains("**")),
        }
    }

    /// Whether the walk goes into a folder `depth` components below the
    /// base (1: right in it), reached through a symlink (`link`): only
    /// where the pattern can match below it, and through a link only where
    /// a component before any `**` names it (a depth the pattern bounds).
    fn enters(&self, depth: usize, link: bool) -> bool {
        match self.globstar {
            Some(star) => !link || depth <= star,
            None => depth < self.parts,
        }
    }
}
