//! What the files a session resolved its pipeline from were when it read
//! them: the pipeline file stat before it is read, the other files and
//! folders resolution reads (prompt, schema and template files, `foreach`
//! lists no task makes, the folders globs walk) stat once it has. Such a
//! stat vouches for what was read when it is older than the read; one that
//! is not (changed within [`super::RACY`] before the session began to read,
//! or since) may be of an edit made between the read and the stat, and the
//! file must then still hold what resolution read ([`Graph::read_as`]). A
//! folder is held to what resolution read of it whenever its stat moved:
//! the build's own tasks writing into a folder a glob walks change its
//! stat, not what the glob matches. A build runs for minutes or hours,
//! and its user may edit the pipeline file meanwhile: the certificate it
//! writes at its end must not take that edit for what the build ran (the
//! next build would find nothing to do, the edit never seen).
//! [`AsRead::changed`] says when one of them is no longer as it was read;
//! the build then writes no certificate, and the next build checks every
//! task, the edit with them.

use std::collections::HashMap;
use std::path::Path;

use super::stat::{self, FileId};
use super::{content_hash, path_of, Entry};
use crate::model::{Graph, Pipeline};
use crate::store::RunDir;

/// The stats of the files resolution read, as it read them, by the paths
/// certificate entries name them with.
#[derive(Debug, Default)]
pub struct AsRead {
    ids: HashMap<String, Read>,
    /// A run-directory path resolution read that cannot be vouched for as
    /// read: through a symlink that leads to a folder or out of the run,
    /// or one that is neither file, folder nor symlink.
    unvouched: bool,
}

/// One file or folder resolution read.
#[derive(Debug)]
struct Read {
    /// Its stat once read.
    id: FileId,
    /// Whether that stat is no older than the read (changed around it).
    around: bool,
    /// A hash of what was read (`None` or empty: unknown).
    hash: Option<String>,
}

/// The pipeline file's stat before it is read (`None` when it cannot be
/// statted: its read then fails, or it is not vouched for).
#[derive(Debug, Clone, Copy)]
pub struct PipelineStat {
    id: Option<FileId>,
    /// Stamps from this moment on (ns since the epoch) may be of changes
    /// made after the session began to read.
    young: i64,
}

impl PipelineStat {
    /// Stats `path`, following a symlink, as the certificate's entry for
    /// it does. Call before reading the file: a change made after this
    /// stat, even one the read then saw, shows as a change.
    pub fn before_reading(path: &Path) -> PipelineStat {
        PipelineStat {
            young: super::young_from(std::time::SystemTime::now()),
            id: stat::file_id(path, true).ok(),
        }
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
        let mut unvouched = false;
        for path in graph.source_paths(pipeline) {
            let read = if path == file {
                before.id.map(|id| Read {
                    id,
                    around: false,
                    hash: None,
                })
            } else {
                // As the certificate stats them: a path in the run
                // directory without following a symlink, one beside the
                // pipeline file through it.
                match stat::file_id(&path_of(run_dir, &path), path.starts_with('/')) {
                    Ok(id) => Some(Read {
                        around: super::is_young(&id, before.young),
                        hash: graph.read_as(&path).map(str::to_string),
                        id,
                    }),
                    Err(()) if !path.starts_with('/') => {
                        match through_link(run_dir, graph, &path, before.young) {
                            Some((target, behind, link)) => {
                                ids.insert(target, behind);
                                Some(link)
                            }
                            None => {
                                unvouched = true;
                                None
                            }
                        }
                    }
                    Err(()) => None,
                }
            };
            if let Some(read) = read {
                ids.insert(path, read);
            }
        }
        AsRead { ids, unvouched }
    }

    /// Whether an entry of `entries` that is not a task's file, and is one
    /// of the files statted as read, is not as it was read: a file's stat
    /// moved, or, changed around its read, it no longer holds what was
    /// read; a folder's stat moved or changed around its read, and its
    /// listing (hashed now as resolution reads it) is not the one read.
    /// A path that was not statted as read (one a fan-out expanded during
    /// the build names) is taken as it is. `graph` is the build's.
    pub(super) fn changed(&self, run_dir: &RunDir, graph: &Graph, entries: &[Entry]) -> bool {
        let produced = std::cell::OnceCell::new();
        self.unvouched
            || entries.iter().any(|e| {
                let Some(read) = self.ids.get(&e.path).filter(|_| !e.task) else {
                    return false;
                };
                if read.id == e.id && !read.around {
                    return false;
                }
                let Some(hash) = read.hash.as_deref().filter(|h| !h.is_empty()) else {
                    return true;
                };
                let path = path_of(run_dir, &e.path);
                if read.id.kind == 2 && e.id.kind == 2 {
                    let Ok(names) = std::fs::read_dir(&path).and_then(|list| {
                        list.map(|e| e.map(|e| e.file_name().into_encoded_bytes()))
                            .collect::<std::io::Result<Vec<_>>>()
                    }) else {
                        return true;
                    };
                    let produced = produced.get_or_init(|| graph.produced());
                    graph.listing_hash(&e.path, names, produced) != hash
                } else {
                    read.id != e.id || content_hash(&path, e.id.kind).as_deref() != Some(hash)
                }
            })
    }
}

/// A run-directory `path` resolution read through a symlink: the file it
/// leads to (its path, and its stat with what was read, which it must
/// still hold) and the link as it is now (changed around the read, it may
/// have led elsewhere then). `None` for anything else, a folder behind a
/// link included: not vouched for.
fn through_link(
    run_dir: &RunDir,
    graph: &Graph,
    path: &str,
    young: i64,
) -> Option<(String, Read, Read)> {
    let link = stat::link_id(&run_dir.path(path))?;
    let target = super::collect::link_target(run_dir, path)?;
    let id = stat::file_id(&run_dir.path(&target), false).ok()?;
    if id.kind != 1 {
        return None;
    }
    let behind = Read {
        around: super::is_young(&id, young),
        hash: graph.read_as(path).map(str::to_string),
        id,
    };
    let link = Read {
        around: super::is_young(&link, young),
        hash: None,
        id: link,
    };
    Some((target, behind, link))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder a glob walks, edited after resolution listed it and before
    /// its stat: the stat is of the edit, so only the listing as read can
    /// say that the folder no longer holds what was read.
    #[test]
    fn a_folder_edited_between_its_read_and_its_stat_is_not_as_read() {
        for edit in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("pipeline.toml");
            std::fs::write(
                &file,
                "[tasks.all]\ninputs = [\"notes/*.md\"]\noutputs = [\"all.txt\"]\ncommand = \"cat notes/*.md > all.txt\"\n",
            )
            .unwrap();
            std::fs::create_dir(dir.path().join("notes")).unwrap();
            std::fs::write(dir.path().join("notes/a.md"), "a\n").unwrap();
            let run_dir = RunDir::open(dir.path()).unwrap();
            let before = PipelineStat::before_reading(&file);
            let pipeline = Pipeline::load(&file, "pipeline.toml".into()).unwrap();
            let graph =
                Graph::resolve(&pipeline, &run_dir, None, crate::model::Lists::Unproduced).unwrap();
            if edit {
                std::fs::write(dir.path().join("notes/b.md"), "b\n").unwrap();
            }
            let read = AsRead::new(before, &run_dir, &pipeline, &graph);
            // The folder's entry as a certificate written now has it.
            let entry = Entry {
                path: "notes".into(),
                id: stat::file_id(&dir.path().join("notes"), false).unwrap(),
                hash: None,
                task: false,
                racy: false,
            };
            assert_eq!(
                read.changed(&run_dir, &graph, &[entry]),
                edit,
                "edited: {edit}"
            );
        }
    }

    /// The same of a prompt file, rewritten with the same size.
    #[test]
    fn a_prompt_file_edited_between_its_read_and_its_stat_is_not_as_read() {
        for edit in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("pipeline.toml");
            std::fs::write(
                &file,
                "[models.m]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n\n[tasks.p]\nprompt_file = \"p.txt\"\noutputs = [\"p.md\"]\nmodel = \"m\"\n",
            )
            .unwrap();
            std::fs::write(dir.path().join("p.txt"), "Say one.\n").unwrap();
            let run_dir = RunDir::open(dir.path()).unwrap();
            let before = PipelineStat::before_reading(&file);
            let pipeline = Pipeline::load(&file, "pipeline.toml".into()).unwrap();
            let graph =
                Graph::resolve(&pipeline, &run_dir, None, crate::model::Lists::Unproduced).unwrap();
            let prompt = pipeline.dir().join("p.txt");
            if edit {
                std::fs::write(&prompt, "Say two.\n").unwrap();
            }
            let read = AsRead::new(before, &run_dir, &pipeline, &graph);
            let entry = Entry {
                path: prompt.to_string_lossy().into_owned(),
                id: stat::file_id(&prompt, true).unwrap(),
                hash: None,
                task: false,
                racy: false,
            };
            assert_eq!(
                read.changed(&run_dir, &graph, &[entry]),
                edit,
                "edited: {edit}"
            );
        }
    }
}
