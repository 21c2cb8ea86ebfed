//! What `status` checks of the up-to-date certificate, kept in its
//! snapshot ([`Excerpt`]) so that it reads neither the certificate (an
//! entry per task file: megabytes) nor stats every task's files. The
//! caller says how each entry is watched ([`Watch`]): task outputs and
//! sidecars not at all, folders by their stat alone, the rest (sources,
//! files beside the pipeline, globbed folders, planexe's own state files)
//! as a build checks them. [`read_excerpt`] takes it from the file without
//! making every entry; [`generation`] says which certificate is in place
//! from its first bytes alone.
//!
//! Two differences with a build's check: an entry watched by its stat is
//! never compared by content (a folder of a hundred thousand outputs
//! written within the racy window would otherwise be listed at every
//! `status`); and the state log may have grown by `restamp` lines alone,
//! which a no-op build appends when it records files touched over the
//! same bytes (the certificate then keeps its generation).

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::format::Reader;
use super::stat::{file_id, FileId, Folders};
use super::{check, path_of, Entry, Key, Verdict, LOG, MAGIC};
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

/// What an entry of the certificate is, as far as choosing how to watch
/// it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A task's input or output (a file).
    TaskFile,
    /// A folder: on the way to a task file, walked by a glob, `tasks/`.
    Folder,
    /// Anything else: the pipeline file and the files beside it, a task's
    /// sidecar, planexe's own state files, outputs of removed tasks.
    Other,
}

impl Kind {
    fn of(task: bool, id: &FileId) -> Kind {
        if task {
            Kind::TaskFile
        } else if id.kind == 2 {
            Kind::Folder
        } else {
            Kind::Other
        }
    }
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
    fn new(
        path: String,
        id: FileId,
        hash: Option<String>,
        task: bool,
        racy: bool,
        by_stat: bool,
    ) -> Watched {
        Watched {
            path,
            kind: id.kind,
            size: id.size,
            mtime_ns: id.mtime_ns,
            ctime_ns: id.ctime_ns,
            ino: id.ino,
            hash,
            task,
            racy,
            by_stat,
        }
    }

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
                folders.id_as(run_dir, &self.path, self.kind)
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

/// The excerpt of the certificate in `run_dir`, when it is whole, this
/// planexe's and of `generation`: what [`Certificate::read`] and then
/// [`Certificate::excerpt`] give, without making every entry (a path and a
/// hash per task file: at 100,000 tasks most of the time a build spends
/// saving its status snapshot). Walks the bytes as `format.rs` writes them.
pub fn read_excerpt(
    run_dir: &RunDir,
    generation: u64,
    watch: impl Fn(&str, Kind) -> Watch,
) -> Option<Excerpt> {
    let bytes = files::read(&run_dir.certificate_path()).ok()?;
    let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
    if blake3::hash(body).as_bytes() != sum {
        return None;
    }
    let mut r = Reader(body.strip_prefix(MAGIC)?);
    if r.str()? != env!("CARGO_PKG_VERSION") || r.u64()? != generation {
        return None;
    }
    let pipeline = r.str()?.to_string();
    let model = match r.u8()? {
        0 => None,
        _ => Some(r.str()?.to_string()),
    };
    let _tasks = r.u64()?;
    let count = r.u64()?;
    let mut entries = Vec::new();
    for _ in 0..count {
        let path = r.str()?;
        let id = FileId {
            kind: r.u8()?,
            size: r.u64()?,
            mtime_ns: r.u64()? as i64,
            ctime_ns: r.u64()? as i64,
            ino: r.u64()?,
        };
        // Checked to be text only when kept: most entries are not.
        let hash = r.bytes()?;
        let task = r.u8()? != 0;
        let racy = r.u8()? != 0;
        let by_stat = match watch(path, Kind::of(task, &id)) {
            Watch::Trust => continue,
            Watch::Stat => true,
            Watch::Full => false,
        };
        let hash = std::str::from_utf8(hash).ok()?;
        entries.push(Watched::new(
            path.to_string(),
            id,
            (!hash.is_empty()).then(|| hash.to_string()),
            task,
            racy,
            by_stat,
        ));
    }
    r.0.is_empty().then_some(Excerpt {
        generation,
        pipeline,
        model,
        entries,
    })
}

impl Excerpt {
    /// The generation of the certificate it was taken from.
    pub fn generation(&self) -> u64 {
        self.generation
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
    use super::super::Certificate;
    use super::*;

    /// The excerpt of a decoded certificate, entry by entry: what
    /// `read_excerpt` must agree with.
    fn excerpt_of(cert: &Certificate, watch: impl Fn(&str, Kind) -> Watch) -> Excerpt {
        let entries = cert
            .entries
            .iter()
            .filter_map(|e| {
                let by_stat = match watch(&e.path, Kind::of(e.task, &e.id)) {
                    Watch::Trust => return None,
                    Watch::Stat => true,
                    Watch::Full => false,
                };
                Some(Watched::new(
                    e.path.clone(),
                    e.id,
                    e.hash.clone(),
                    e.task,
                    e.racy,
                    by_stat,
                ))
            })
            .collect();
        Excerpt {
            generation: cert.generation,
            pipeline: cert.pipeline.clone(),
            model: cert.model.clone(),
            entries,
        }
    }

    /// What `read_excerpt` takes from the bytes is what the certificate
    /// decoded says: the two readers of `format.rs`'s layout agree.
    #[test]
    fn an_excerpt_read_from_the_bytes_is_the_decoded_certificate_s() {
        let dir = tempfile::tempdir().unwrap();
        let run_dir = RunDir::open(dir.path()).unwrap();
        let entry = |path: &str, kind: u8, hash: Option<&str>, task: bool, racy: bool| Entry {
            path: path.into(),
            id: FileId {
                kind,
                size: 3,
                mtime_ns: -5,
                ctime_ns: 7,
                ino: 9,
            },
            hash: hash.map(Into::into),
            task,
            racy,
        };
        let cert = Certificate {
            generation: 42,
            pipeline: "/p/pipeline.toml".into(),
            model: Some("m".into()),
            tasks: 2,
            entries: vec![
                entry("src/a.txt", 1, Some("ab"), true, true),
                entry("out/b.txt", 1, Some("cd"), true, false),
                entry("out", 2, None, false, false),
                entry(".planexe/log", 1, None, false, false),
            ],
        };
        let path = run_dir.certificate_path();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, cert.encode()).unwrap();
        let watch = |path: &str, kind: Kind| match (path, kind) {
            ("out/b.txt", _) => Watch::Trust,
            (_, Kind::Folder) => Watch::Stat,
            _ => Watch::Full,
        };
        let read = read_excerpt(&run_dir, 42, watch).expect("reads");
        let decoded = excerpt_of(&Certificate::read(&run_dir).expect("decodes"), watch);
        assert_eq!(format!("{read:?}"), format!("{decoded:?}"));
        assert_eq!(read.entries.len(), 3);
        assert_eq!(generation(&run_dir), Some(42));
        assert!(
            read_excerpt(&run_dir, 43, watch).is_none(),
            "another generation"
        );
        let bytes = cert.encode();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert!(read_excerpt(&run_dir, 42, watch).is_none(), "torn");
    }

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
