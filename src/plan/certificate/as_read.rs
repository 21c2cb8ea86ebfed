//! What the files a session resolved its pipeline from were when it read
//! them: the pipeline file stat before it is read, the other files and
//! folders resolution reads (prompt, schema and template files, `foreach`
//! lists no task makes, the folders globs walk) stat once it has. A build
//! runs for minutes or hours, and its user may edit the pipeline file
//! meanwhile: the certificate it writes at its end must not take that
//! edit for what the build ran (the next build would find nothing to do,
//! the edit never seen). [`AsRead::changed`] says when one of them is no
//! longer as it was read; the build then writes no certificate, and the
//! next build checks every task, the edit with them.

use std::collections::HashMap;
use std::path::Path;

use super::stat::{self, FileId};
use super::{path_of, Entry};
use crate::model::{Graph, Pipeline};
use crate::store::RunDir;

/// The stats of the files resolution read, as it read them, by the paths
/// certificate entries name them with.
#[derive(Debug, Default)]
pub struct AsRead {
    ids: HashMap<String, FileId>,
}

/// The pipeline file's stat before it is read (`None` when it cannot be
/// statted: its read then fails, or it is not vouched for).
#[derive(Debug, Clone, Copy)]
pub struct PipelineStat(Option<FileId>);

impl PipelineStat {
    /// Stats `path`, following a symlink, as the certificate's entry for
    /// it does. Call before reading the file: a change made after this
    /// stat, even one the read then saw, shows as a change.
    pub fn before_reading(path: &Path) -> PipelineStat {
        PipelineStat(stat::file_id(path, true).ok())
    }
}

impl AsRead {
    /// The pipeline's files as read: the pipeline file as `before` found
    /// it, the others stat now, as resolution has just read them.
    pub fn new(
        before: PipelineStat,
        run_dir: &RunDir,
        pipeline: &Pipeline,
        graph: &Graph,
    ) -> AsRead {
        let file = pipeline.path.to_string_lossy().into_owned();
        let mut ids = HashMap::new();
        for path in graph.source_paths(pipeline) {
            let id = if path == file {
                before.0
            } else {
                // As the certificate stats them: a path in the run
                // directory without following a symlink (refused there),
                // one beside the pipeline file through it.
                stat::file_id(&path_of(run_dir, &path), path.starts_with('/')).ok()
            };
            if let Some(id) = id {
                ids.insert(path, id);
            }
        }
        AsRead { ids }
    }

    /// Whether an entry of `entries` that is not a task's file, and is one
    /// of the files statted as read, is not as it was read. A path that was
    /// not statted as read (one a fan-out expanded during the build names)
    /// is taken as it is.
    pub(super) fn changed(&self, entries: &[Entry]) -> bool {
        entries
            .iter()
            .any(|e| !e.task && self.ids.get(&e.path).is_some_and(|read| *read != e.id))
    }
}
