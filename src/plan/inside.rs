//! Whether the outputs of the tasks a build will run can be written inside
//! the run directory, asked before anything runs: a symlink that leads out,
//! or a path that cannot be looked at (a file where a folder should be, a
//! loop of links, a name too long), refuses the build at the output's
//! place in the pipeline file.
//!
//! Each output is one `lstat`, except in a folder where many are to be
//! looked at: that folder is listed once, and only a name it holds as
//! something other than a file or a folder (a symlink, a FIFO, a type the
//! listing does not give) is looked at on its own. A build resuming a
//! crashed run of thousands of tasks has that many outputs not written
//! yet; the file system answers each missing name by searching the
//! folder's blocks, a listing reads them once.
//!
//! What is looked at here guards nothing by itself: the writes check
//! again as they write. It is the early, precise refusal.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::FileType;
use std::io;

use rayon::prelude::*;

use super::check::{Checker, Side};
use crate::error::Result;
use crate::model::graph::Output;
use crate::model::TaskId;
use crate::store::stamp;

/// A folder holding at least this many of the outputs to look at is
/// listed rather than each output looked at.
const LISTED: usize = 64;

/// The longest name most file systems take, and the longest path Linux
/// takes: an output past either that a listing does not hold is looked
/// at, for the error that says so.
const NAME_MAX: usize = 255;
const PATH_MAX: usize = 4096;

/// The listed folders (relative, `""` for the run directory itself): each
/// name in it and its type, or `None` when it could not be listed (its
/// outputs are then looked at one by one).
pub struct Outputs {
    listed: HashMap<String, Option<HashMap<OsString, FileType>>>,
}

impl Outputs {
    /// Lists the folders that hold at least [`LISTED`] outputs of the
    /// tasks `runs` (those that will run: stale or forced).
    pub fn look(checker: &Checker, runs: &[TaskId]) -> Outputs {
        let mut count: HashMap<&str, usize> = HashMap::new();
        for &id in runs {
            for out in &checker.graph[id].outputs {
                *count.entry(split(&out.path).0).or_default() += 1;
            }
        }
        let folders: Vec<&str> = count
            .into_iter()
            .filter(|&(_, n)| n >= LISTED)
            .map(|(folder, _)| folder)
            .collect();
        let root = checker.run_dir.root();
        let listed = folders
            .par_iter()
            .map(|&folder| (folder.to_string(), list(&root.join(folder))))
            .collect();
        Outputs { listed }
    }

    /// Refuses task `id` (one that will run) when an output of it cannot
    /// be written inside the run directory.
    pub fn inside(&self, checker: &Checker, id: TaskId) -> Result<()> {
        let root = checker.run_dir.root().as_os_str().len();
        for out in &checker.graph[id].outputs {
            let (folder, name) = split(&out.path);
            let plain = match self.listed.get(folder) {
                Some(Some(names)) => match names.get(std::ffi::OsStr::new(name)) {
                    None => name.len() <= NAME_MAX && root + 1 + out.path.len() < PATH_MAX,
                    Some(kind) => kind.is_file() || kind.is_dir(),
                },
                _ => false,
            };
            if !plain {
                outputs_inside_one(checker, id, out)?;
            }
        }
        Ok(())
    }
}

fn outputs_inside_one(checker: &Checker, id: TaskId, out: &Output) -> Result<()> {
    stamp::stat_inside(checker.run_dir.root(), &out.path)
        .map_err(|e| checker.refusal(id, Side::Output, out.span.clone(), &out.path, &e))?;
    Ok(())
}

/// A normalized relative path's folder (`""` at the top) and name.
fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

/// A folder's names and their types as its listing gives them; empty when
/// it does not exist (nothing is in the way of what will be written
/// there), `None` when it cannot be listed.
fn list(folder: &std::path::Path) -> Option<HashMap<OsString, FileType>> {
    let entries = match std::fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Some(HashMap::new()),
        Err(_) => return None,
    };
    let mut names = HashMap::new();
    for entry in entries {
        let entry = entry.ok()?;
        names.insert(entry.file_name(), entry.file_type().ok()?);
    }
    Some(names)
}
