//! What `status` checks of the up-to-date certificate, kept in its
//! snapshot ([`Excerpt`]) so that it reads neither the certificate (an
//! entry per task file: megabytes) nor stats every task's files. The
//! caller says how each entry is watched ([`Watch`]): task outputs and
//! sidecars not at all, folders by their stat alone, the rest (sources,
//! files beside the pipeline, globbed folders, planexe's own state files)
//! as a build checks them. [`generation`] says which certificate is in
//! place from its first bytes alone.
//!
//! Two differences with a build's check: an entry watched by its stat is
//! never compared by content (a folder of a hundred thousand outputs
//! written within the racy window would otherwise be listed at every
//! `status`); and the state log may have grown by `restamp` lines alone,
//! which a no-op build appends when it records files touched over the
//! same bytes (the certificate then keeps its generation).

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::stat::{file_id, FileId, Folders};
use super::{check, path_of, Certificate, Entry, Key, Verdict, LOG, MAGIC};
use crate::store::log;
use crate::store::stamp::CheckMode;
use crate::store::{files, RunDir};

/// How `status` watches one entry of the certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watch {
    /// Not at all: trusted to be as the certificate recorded it.
    Trust,
    /// By its stat alone: any difference is a change.
    Stat,
    /// As a build checks it: its stat, and its content when the stat moved
    /// over a recorded hash or was recorded young.
    Full,
}

/// The entries of one certificate that `status` checks, and what the
/// certificate was for.
#[derive(Debug, Serialize, Deserialize)]
pub struct Excerpt {
    generation: u64,
    pipeline: String,
    model: Option<String>,
    entries: Vec<Watched>,
}

/// One entry of the certificate, as recorded, and how it is watched.
#[derive(Debug, Serialize, Deserialize)]
struct Watched {
    path: String,
    kind: u8,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    ino: u64,
    hash: Option<String>,
    task: bool,
    racy: bool,
    /// Compared by its stat alone ([`Watch::Stat`]).
    by_stat: bool,
}

impl Watched {
    fn id(&self) -> FileId {
        FileId {
            kind: self.kind,
            size: self.size,
            mtime_ns: self.mtime_ns,
            ctime_ns: self.ctime_ns,
            ino: self.ino,
        }
    }

    fn entry(&self) -> Entry {
        Entry {
            path: self.path.clone(),
            id: self.id(),
            hash: self.hash.clone(),
            task: self.task,
            racy: self.racy,
        }
    }

    /// Whether the entry is as recorded, or changed only as a status
    /// snapshot may ignore.
    fn holds(&self, run_dir: &RunDir, folders: &Folders, mode: CheckMode) -> bool {
        if self.by_stat {
            let now = if self.path.starts_with('/') {
                file_id(&path_of(run_dir, &self.path), true)
            } else {
                folders.file_id(run_dir, &self.path)
            };
            return now == Ok(self.id());
        }
        if self.path == *LOG {
            // Grown by restamps alone: the same file, longer.
            let now = folders.file_id(run_dir, &self.path);
            return match now {
                Ok(now) if now == self.id() => true,
                Ok(now) => {
                    now.kind == 1
                        && now.ino == self.ino
                        && now.size > self.size
                        && log::only_restamps_from(run_dir, self.size)
                }
                Err(()) => false,
            };
        }
        !matches!(
            check(run_dir, folders, &self.entry(), mode),
            Verdict::Differs
        )
    }
}

impl Certificate {
    /// The entries `status` checks, each watched as `watch` says from its
    /// path and whether it is a folder.
    pub fn excerpt(&self, watch: impl Fn(&str, bool) -> Watch) -> Excerpt {
        let entries = self
            .entries
            .iter()
            .filter_map(|e| {
                let by_stat = match watch(&e.path, e.id.kind == 2) {
                    Watch::Trust => return None,
                    Watch::Stat => true,
                    Watch::Full => false,
                };
                Some(Watched {
                    path: e.path.clone(),
                    kind: e.id.kind,
                    size: e.id.size,
                    mtime_ns: e.id.mtime_ns,
                    ctime_ns: e.id.ctime_ns,
                    ino: e.id.ino,
                    hash: e.hash.clone(),
                    task: e.task,
                    racy: e.racy,
                    by_stat,
                })
            })
            .collect();
        Excerpt {
            generation: self.generation,
            pipeline: self.pipeline.clone(),
            model: self.model.clone(),
            entries,
        }
    }
}

impl Excerpt {
    /// The generation of the certificate it was taken from.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// How many entries it checks.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether the certificate it was taken from is still in place, was
    /// for `key`, and every entry it watches still holds.
    pub fn holds(&self, run_dir: &RunDir, key: &Key, mode: CheckMode) -> bool {
        if self.pipeline.as_str() != key.pipeline.to_string_lossy()
            || self.model.as_deref() != key.model
            || generation(run_dir) != Some(self.generation)
        {
            return false;
        }
        let folders = Folders::open(run_dir, self.entries.iter().map(|e| e.path.as_str()));
        // A few sources are quicker to stat than to start threads for.
        if self.entries.len() < 512 {
            self.entries
                .iter()
                .all(|e| e.holds(run_dir, &folders, mode))
        } else {
            self.entries
                .par_iter()
                .all(|e| e.holds(run_dir, &folders, mode))
        }
    }
}

/// The generation of the certificate in `run_dir`, read from its first
/// bytes alone (the rest is not checked): `None` when there is none, or it
/// is not one of this planexe's.
pub fn generation(run_dir: &RunDir) -> Option<u64> {
    use std::io::Read;
    let mut head = Vec::with_capacity(256);
    files::open_read(&run_dir.certificate_path())
        .ok()?
        .take(256)
        .read_to_end(&mut head)
        .ok()?;
    peek_generation(&head)
}

/// The generation in the first bytes of a certificate: after the magic
/// line, the version (a length, then its bytes), which must be this
/// planexe's.
fn peek_generation(head: &[u8]) -> Option<u64> {
    let rest = head.strip_prefix(MAGIC)?;
    let (len, rest) = rest.split_at_checked(4)?;
    let len = u32::from_le_bytes(len.try_into().ok()?) as usize;
    let (version, rest) = rest.split_at_checked(len)?;
    if version != env!("CARGO_PKG_VERSION").as_bytes() {
        return None;
    }
    let (generation, _) = rest.split_at_checked(8)?;
    Some(u64::from_le_bytes(generation.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generation_is_read_from_the_first_bytes_of_what_encode_writes() {
        let cert = Certificate {
            generation: 0x0123_4567_89ab_cdef,
            pipeline: "/p/pipeline.toml".into(),
            model: None,
            tasks: 0,
            entries: Vec::new(),
        };
        let bytes = cert.encode();
        assert_eq!(peek_generation(&bytes), Some(cert.generation));
        assert_eq!(
            peek_generation(&bytes[..bytes.len().min(40)]),
            Some(cert.generation)
        );
        assert_eq!(peek_generation(&bytes[..MAGIC.len() + 6]), None);
        assert_eq!(peek_generation(b"planexe uptodate 0\n"), None);
        let mut other = bytes.clone();
        other[MAGIC.len() + 4] ^= 1;
        assert_eq!(peek_generation(&other), None, "another version");
    }
}
