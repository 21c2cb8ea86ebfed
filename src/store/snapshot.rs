//! `.planexe/status.snapshot`: what `status` would report, saved so that it
//! need not check every task. Two kinds: an idle snapshot, saved with the
//! up-to-date certificate and valid while that certificate (of the same
//! generation) holds; and a live one, kept by a running build and valid
//! while that build runs. This module owns the file and its framing (this
//! planexe's version, which certificate or build it goes with); the
//! payload and the sections are whatever the status query saves.
//!
//! The file: a magic line, the length of the head, the head (postcard: the
//! version, generation or build, each section's length and blake3, the
//! payload), the head's blake3, then the sections, raw, one after the
//! other. A reader reads the head alone, and a section only when it wants
//! it (the text `status` prints, its JSON), checking its length and blake3
//! then: a torn, altered or foreign file is no snapshot, and a damaged
//! section is none either.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::files;
use super::rundir::RunDir;

/// The file's first line. Its number changes with the layout of what the
/// file holds (the head, and the sections' postcard, as the task lines of
/// `observe::status`): a file of another layout is no snapshot, whatever
/// planexe's version says.
const MAGIC: &[u8] = b"planexe status.snapshot 6\n";

/// Which running build wrote a live snapshot: as in its run record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Live {
    pub pid: u32,
    pub started_at: String,
}

/// The head of the file, as written.
#[derive(Serialize, Deserialize)]
struct Head<T> {
    version: String,
    generation: u64,
    live: Option<Live>,
    /// Each section's length and blake3, in the order they follow.
    sections: Vec<(u64, [u8; 32])>,
    payload: T,
}

/// A snapshot read back: what it goes with, its payload, and where its
/// sections lie in the file (read on demand).
pub struct Snapshot<T> {
    /// The certificate generation it goes with (idle snapshots).
    pub generation: u64,
    /// The build that wrote it while running (live snapshots).
    pub live: Option<Live>,
    pub payload: T,
    file: File,
    /// Each section: where it starts, its length, its blake3.
    sections: Vec<(u64, u64, [u8; 32])>,
}

/// Saves a snapshot that goes with the certificate of `generation`, each
/// section given in pieces (written one after the other, never joined in
/// memory). Best effort: without one, `status` checks every task, as it
/// would anyway.
pub fn write_idle<T: Serialize>(
    run_dir: &RunDir,
    generation: u64,
    payload: &T,
    sections: &[&[&[u8]]],
) {
    write(run_dir, generation, None, payload, sections);
}

/// Saves the snapshot of the running build `live`. Best effort.
pub fn write_live<T: Serialize>(run_dir: &RunDir, live: Live, payload: &T, sections: &[&[&[u8]]]) {
    write(run_dir, 0, Some(live), payload, sections);
}

fn write<T: Serialize>(
    run_dir: &RunDir,
    generation: u64,
    live: Option<Live>,
    payload: &T,
    sections: &[&[&[u8]]],
) {
    let summed = |pieces: &[&[u8]]| {
        let mut hasher = blake3::Hasher::new();
        let mut len = 0u64;
        for piece in pieces {
            hasher.update(piece);
            len += piece.len() as u64;
        }
        (len, *hasher.finalize().as_bytes())
    };
    let head = Head {
        version: env!("CARGO_PKG_VERSION").to_string(),
        generation,
        live,
        sections: sections.iter().map(|pieces| summed(pieces)).collect(),
        payload,
    };
    let Ok(head) = postcard::to_allocvec(&head) else {
        return;
    };
    let mut start = Vec::with_capacity(MAGIC.len() + 8 + head.len() + 32);
    start.extend_from_slice(MAGIC);
    start.extend_from_slice(&(head.len() as u64).to_le_bytes());
    start.extend_from_slice(&head);
    start.extend_from_slice(blake3::hash(&head).as_bytes());
    let mut parts = vec![start.as_slice()];
    parts.extend(sections.iter().flat_map(|pieces| pieces.iter().copied()));
    let _ = super::spare::rewrite(&run_dir.snapshot_path(), &parts);
}

impl<T: DeserializeOwned> Snapshot<T> {
    /// The saved snapshot, when this planexe wrote it whole (its head: the
    /// sections are checked when read).
    pub fn read(run_dir: &RunDir) -> Option<Snapshot<T>> {
        let mut file = files::open_read(&run_dir.snapshot_path()).ok()?;
        let len = file.metadata().ok()?.len();
        let mut start = [0u8; MAGIC.len() + 8];
        file.read_exact(&mut start).ok()?;
        let (magic, head_len) = start.split_at(MAGIC.len());
        if magic != MAGIC {
            return None;
        }
        let head_len = u64::from_le_bytes(head_len.try_into().ok()?);
        let at = (start.len() as u64)
            .checked_add(head_len)?
            .checked_add(32)?;
        if at > len {
            return None;
        }
        let mut head = vec![0u8; usize::try_from(head_len).ok()?];
        let mut sum = [0u8; 32];
        file.read_exact(&mut head).ok()?;
        file.read_exact(&mut sum).ok()?;
        if blake3::hash(&head).as_bytes() != &sum {
            return None;
        }
        let head: Head<T> = postcard::from_bytes(&head).ok()?;
        if head.version != env!("CARGO_PKG_VERSION") {
            return None;
        }
        let mut sections = Vec::with_capacity(head.sections.len());
        let mut offset = at;
        for (size, sum) in head.sections {
            sections.push((offset, size, sum));
            offset = offset.checked_add(size)?;
        }
        (offset == len).then_some(Snapshot {
            generation: head.generation,
            live: head.live,
            payload: head.payload,
            file,
            sections,
        })
    }
}

impl<T> Snapshot<T> {
    /// Appends section `index` to `out`; false (and `out` as it was) when
    /// there is no such section or it is not what was written.
    pub fn section_into(&self, index: usize, out: &mut Vec<u8>) -> bool {
        let Some(&(offset, size, sum)) = self.sections.get(index) else {
            return false;
        };
        let Ok(size) = usize::try_from(size) else {
            return false;
        };
        let old = out.len();
        out.reserve_exact(size);
        let mut file = &self.file;
        let read = file.seek(SeekFrom::Start(offset)).is_ok()
            && file
                .take(size as u64)
                .read_to_end(out)
                .is_ok_and(|n| n == size);
        if read && blake3::hash(&out[old..]).as_bytes() == &sum {
            true
        } else {
            out.truncate(old);
            false
        }
    }

    /// Whether section `index` is what was written, read through a small
    /// buffer (to copy it elsewhere next without holding it in memory).
    pub fn verify_section(&self, index: usize) -> bool {
        let Some(&(offset, size, sum)) = self.sections.get(index) else {
            return false;
        };
        let mut file = &self.file;
        if file.seek(SeekFrom::Start(offset)).is_err() {
            return false;
        }
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut left = size;
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            match file.read(&mut buf[..want]) {
                Ok(0) | Err(_) => return false,
                Ok(n) => {
                    hasher.update(&buf[..n]);
                    left -= n as u64;
                }
            }
        }
        hasher.finalize().as_bytes() == &sum
    }

    /// Copies section `index` to `out` (by the kernel, file to file or
    /// pipe, when `out` is stdout), unchecked: see
    /// [`Snapshot::verify_section`]. Returns how many bytes it copied.
    pub fn copy_section<W: Write>(&self, index: usize, out: &mut W) -> std::io::Result<u64> {
        let Some(&(offset, size, _)) = self.sections.get(index) else {
            return Ok(0);
        };
        let mut file = &self.file;
        file.seek(SeekFrom::Start(offset))?;
        std::io::copy(&mut file.take(size), out)
    }

    /// The length of section `index`, as written.
    pub fn section_len(&self, index: usize) -> Option<u64> {
        self.sections.get(index).map(|s| s.1)
    }

    /// Section `index`, when it is what was written.
    pub fn section(&self, index: usize) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        self.section_into(index, &mut out).then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::rundir::temp as run_dir;

    #[test]
    fn round_trips_its_sections_and_refuses_damage() {
        let (_dir, run_dir) = run_dir();
        write_idle(
            &run_dir,
            7,
            &"payload".to_string(),
            &[&[b"one"], &[], &[b"th", b"", b"ree"]],
        );
        let s: Snapshot<String> = Snapshot::read(&run_dir).expect("reads");
        assert_eq!(
            (s.generation, s.live.as_ref(), s.payload.as_str()),
            (7, None, "payload")
        );
        let mut out = b"x".to_vec();
        assert!(s.section_into(2, &mut out));
        assert_eq!(out, b"xthree");
        assert_eq!(s.section(1).as_deref(), Some(&b""[..]));
        assert!(s.section(3).is_none());

        // A damaged section is none; the head still reads.
        let path = run_dir.snapshot_path();
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let s: Snapshot<String> = Snapshot::read(&run_dir).expect("the head reads");
        let mut out = b"x".to_vec();
        assert!(!s.section_into(2, &mut out));
        assert_eq!(out, b"x");
        assert!(s.section(0).is_some());

        // A torn file, a damaged head, another format: no snapshot.
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert!(Snapshot::<String>::read(&run_dir).is_none());
        bytes[MAGIC.len() + 9] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(Snapshot::<String>::read(&run_dir).is_none());
        std::fs::write(&path, b"planexe status.snapshot 1\n").unwrap();
        assert!(Snapshot::<String>::read(&run_dir).is_none());
    }

    #[test]
    fn a_snapshot_of_another_version_is_none() {
        let (_dir, run_dir) = run_dir();
        let head = Head {
            version: "0.0.0-other".to_string(),
            generation: 1,
            live: None,
            sections: Vec::new(),
            payload: 5u32,
        };
        let head = postcard::to_allocvec(&head).unwrap();
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&(head.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&head);
        bytes.extend_from_slice(blake3::hash(&head).as_bytes());
        let path = run_dir.snapshot_path();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        assert!(Snapshot::<u32>::read(&run_dir).is_none());
        write_live(
            &run_dir,
            Live {
                pid: 1,
                started_at: "t".into(),
            },
            &5u32,
            &[],
        );
        let s = Snapshot::<u32>::read(&run_dir).expect("this version's reads");
        assert_eq!((s.payload, s.live.map(|l| l.pid)), (5, Some(1)));
    }
}
