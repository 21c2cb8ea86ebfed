//! Rewriting a file that is rewritten again and again (a task's sidecar,
//! and the state files every build rewrites: `summary.json`,
//! `status.snapshot`, `uptodate`, `run.json`, a compacted `log`) without
//! making or deleting a file each time: the file a rewrite replaces is
//! kept as a spare, and the next rewrite writes over it (when nothing else
//! holds it) and swaps it in. Built on [`super::files`]'s unnamed and
//! temporary files; the same guarantees hold: readers see the old content
//! or the new, never a mix, and nothing is followed through a symlink.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use super::files::{link_temporary, link_unnamed, no_follow, unnamed, write_named};
use super::rundir::spare_of;
use crate::error::{Error, Result};

/// [`write_atomic`](super::files::write_atomic) for a file rewritten again
/// and again (a task's sidecar): the file it replaces is kept at `spare`, and the next rewrite
/// writes over that file and swaps it in (`RENAME_EXCHANGE`). No file is
/// made or deleted per rewrite: on a file system that discards freed
/// blocks synchronously (ext4 mounted with `discard`), deleting even a
/// small file waits for the disk, and costs more than a trivial command;
/// and a file written over keeps its pages in the page cache, where a new
/// one takes fresh pages (about 4 ms for 5 MB here, against 0.1 ms).
/// A spare is written over only when nothing else holds it: it must have
/// one name (not a `.DONE` marker's too) and no reader may have it open
/// (a reader that opened the file before it was swapped out still sees
/// the content it opened); otherwise it is replaced, as with
/// [`write_atomic`](super::files::write_atomic). With `new` (nothing is
/// likely at `path` yet), no spare is looked for first.
pub fn write_atomic_reusing(path: &Path, spare: &Path, bytes: &[u8], new: bool) -> Result<()> {
    write_parts_reusing(path, spare, &[bytes], new)
}

/// [`write_atomic_reusing`] of a state file every build rewrites, its
/// spare beside it ([`spare_of`]), made of `parts` one after the other.
pub fn rewrite(path: &Path, parts: &[&[u8]]) -> Result<()> {
    write_parts_reusing(path, &spare_of(path), parts, false)
}

/// Takes the file at `path` out of the way, keeping it as the spare of the
/// next [`rewrite`] when there is none yet (else it is deleted): the
/// up-to-date certificate, which goes before a build changes the state
/// and comes back when it ends.
pub fn set_aside(path: &Path) -> Result<()> {
    let spare = spare_of(path);
    if std::fs::symlink_metadata(&spare).is_err() {
        match std::fs::rename(path, &spare) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(_) => {}
        }
    }
    super::files::remove_if_exists(path).map(|_| ())
}

fn write_parts_reusing(path: &Path, spare: &Path, parts: &[&[u8]], new: bool) -> Result<()> {
    if let Some(file) = (!new).then(|| claim_spare(spare)).flatten() {
        let written = overwrite(&file, parts);
        drop(file);
        written.map_err(|e| Error::io_at(spare, e))?;
        return swap_in(spare, path);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let Some(file) = unnamed(dir) else {
        return write_named(dir, path, parts);
    };
    let mut file = file.map_err(|e| Error::io_at(path, e))?;
    for part in parts {
        file.write_all(part).map_err(|e| Error::io_at(path, e))?;
    }
    match link_unnamed(&file, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // Replacing: the new file goes in under a temporary name, and
            // the old one comes out as the next spare (a spare that could
            // not be used is replaced).
            let temporary = link_temporary(&file, dir)?;
            swap_in(&temporary, path)?;
            if std::fs::rename(&temporary, spare).is_err() {
                let _ = std::fs::remove_file(&temporary);
            }
            Ok(())
        }
        Err(_) => write_named(dir, path, parts),
    }
}

/// Opens `spare` to be written over, if that is safe: a regular file with
/// one name that no one else has open (a write lease, which the kernel
/// grants only then, is taken while it is written over).
fn claim_spare(spare: &Path) -> Option<Claimed> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking: a FIFO planted there must not hold the build (it is no
    // regular file, and is not used).
    let file = no_follow()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(spare)
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.file_type().is_file() || meta.nlink() != 1 {
        return None;
    }
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own. A lease break (someone opens
    // the file while it is held) is told by a signal, SIGIO unless set:
    // SIGURG, whose default is to be ignored, is set instead.
    let leased = unsafe {
        libc::fcntl(fd, F_SETSIG, libc::SIGURG) == 0
            && libc::fcntl(fd, libc::F_SETLEASE, libc::F_WRLCK) == 0
    };
    leased.then_some(Claimed {
        file,
        len: meta.len(),
    })
}

/// `fcntl`'s command to choose the signal of a lease break (Linux; the
/// `libc` crate does not name it).
const F_SETSIG: libc::c_int = 10;

/// A spare held under a write lease; the lease goes when it is dropped.
struct Claimed {
    file: File,
    /// Its length when claimed.
    len: u64,
}

impl Drop for Claimed {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: fcntl on a descriptor we own (closing it would also end
        // the lease).
        unsafe {
            libc::fcntl(self.file.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK);
        }
    }
}

/// Writes `parts` over the claimed file, from its start, and cuts what is
/// left of its old content.
fn overwrite(claimed: &Claimed, parts: &[&[u8]]) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // Writing part of a block whose page is no longer cached reads the
    // block first. The bytes go in block by block from the start (parts
    // gathered in whole blocks first), so only the last block is written
    // in part; zeroing that block (it stays allocated, marked unwritten)
    // spares its read. Where the file system cannot, the write reads.
    // (Zeroing every block would also drop their cached pages: a big file
    // written over would take fresh pages, as a new file does.) A block
    // whose page is still cached (the file was written or read lately, as
    // a spare mostly was) is written without a read, and is not zeroed: a
    // read that must not wait asks the cache, for a fraction of the
    // zeroing's cost.
    let len: u64 = parts.iter().map(|p| p.len() as u64).sum();
    let from = len / BLOCK * BLOCK;
    let to = len.div_ceil(BLOCK).min(claimed.len.div_ceil(BLOCK)) * BLOCK;
    if to > from && !cached(&claimed.file, from) {
        // SAFETY: fallocate on a descriptor we own; no memory is passed.
        unsafe {
            libc::fallocate(
                claimed.file.as_raw_fd(),
                libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE,
                from as libc::off_t,
                (to - from) as libc::off_t,
            );
        }
    }
    write_in_blocks(&claimed.file, parts)?;
    if claimed.len > len {
        claimed.file.set_len(len)?;
    }
    Ok(())
}

/// The size of a file system block, as far as [`overwrite`] cares: writes
/// before the last start and end on multiples of it.
const BLOCK: u64 = 4096;

/// How many bytes of small parts [`write_in_blocks`] gathers for one
/// write: a multiple of [`BLOCK`], and small beside the files written in
/// many parts (megabytes at ten thousand tasks), whose joining would take
/// as much fresh memory again.
const GATHER: usize = 256 * 1024;

/// Writes `parts` one after the other from the start of `file`, each write
/// but the last starting and ending on a block's edge: a large part's
/// whole blocks go straight from it, smaller pieces are gathered first.
fn write_in_blocks(file: &File, parts: &[&[u8]]) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    if let [one] = parts {
        return file.write_all_at(one, 0);
    }
    let mut gathered: Vec<u8> = Vec::new();
    let mut at = 0u64;
    for part in parts {
        let mut rest = *part;
        while !rest.is_empty() {
            if gathered.is_empty() && rest.len() as u64 >= BLOCK {
                let whole = rest.len() / BLOCK as usize * BLOCK as usize;
                file.write_all_at(&rest[..whole], at)?;
                at += whole as u64;
                rest = &rest[whole..];
                continue;
            }
            if gathered.capacity() == 0 {
                gathered.reserve_exact(GATHER);
            }
            let take = (GATHER - gathered.len()).min(rest.len());
            gathered.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if gathered.len() == GATHER {
                file.write_all_at(&gathered, at)?;
                at += GATHER as u64;
                gathered.clear();
            }
        }
    }
    file.write_all_at(&gathered, at)
}

/// Whether the page of `file` holding byte `at` is in the page cache: a
/// read of that byte that must not wait for the disk gets it. `false`
/// when it would wait, and where the kernel cannot say.
fn cached(file: &File, at: u64) -> bool {
    read_nowait(file, at).is_ok_and(|read| read == 1)
}

/// Reads the byte of `file` at `at` only if that needs no wait for the
/// disk (`RWF_NOWAIT`): how many bytes it got (0 past the end).
fn read_nowait(file: &File, at: u64) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    let mut byte = 0u8;
    let iov = libc::iovec {
        iov_base: std::ptr::addr_of_mut!(byte).cast(),
        iov_len: 1,
    };
    // SAFETY: one iovec over a byte that outlives the call, on a
    // descriptor we own.
    let read = unsafe {
        libc::preadv2(
            file.as_raw_fd(),
            &iov,
            1,
            at as libc::off_t,
            libc::RWF_NOWAIT,
        )
    };
    usize::try_from(read).map_err(|_| std::io::Error::last_os_error())
}

/// Puts the file at `new` in place at `path` and the file that was there at
/// `new`; when nothing was there (or the file system cannot swap), `new`
/// is renamed to `path`.
fn swap_in(new: &Path, path: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes());
    let (Ok(from), Ok(to)) = (c(new), c(path)) else {
        fs_err::rename(new, path)?;
        return Ok(());
    };
    // SAFETY: both strings are NUL-terminated and outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    fs_err::rename(new, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether files in `dir` can be leased.
    fn leases(dir: &Path) -> bool {
        let probe = dir.join("probe");
        std::fs::write(&probe, "x").unwrap();
        let leased = claim_spare(&probe).is_some();
        std::fs::remove_file(&probe).unwrap();
        leased
    }

    #[test]
    fn a_page_just_written_is_cached_and_a_byte_past_the_end_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut file = File::create(&path).unwrap();
        file.write_all(&[7u8; 5000]).unwrap();
        let file = File::open(&path).unwrap();
        // Both pages were written just now (where the file system answers
        // reads that must not wait: ext4, xfs, btrfs; not tmpfs).
        let answers = !matches!(read_nowait(&file, 0),
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP));
        if answers {
            assert!(cached(&file, 0));
            assert!(cached(&file, 4999));
        }
        // Past the end there is nothing to read: not taken for cached, so
        // the caller zeroes, as it would for a block on disk alone.
        assert!(!cached(&file, 5000));
        // A descriptor opened for writing only cannot read: not cached.
        let write_only = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        assert!(!cached(&write_only, 0));
    }

    #[test]
    fn rewrites_reuse_the_file_they_replaced_when_nothing_else_holds_it() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.status");
        let spare = dir.path().join(".t.status.spare");
        let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
        write_atomic_reusing(&path, &spare, b"first, and long", false).unwrap();
        assert!(!spare.exists());
        let first = ino(&path);
        write_atomic_reusing(&path, &spare, b"second", false).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        // The replaced file is the spare, and the next rewrite's file.
        assert_eq!(ino(&spare), first);
        write_atomic_reusing(&path, &spare, b"third", false).unwrap();
        // (Where the file system grants no leases, spares are replaced.)
        if leases(dir.path()) {
            assert_eq!(ino(&path), first);
        }
        assert_eq!(std::fs::read(&path).unwrap(), b"third");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);

        // A spare with a second name (a `.DONE` marker) is never written
        // over, nor one a reader has open.
        let marker = dir.path().join("t.DONE");
        std::fs::hard_link(&spare, &marker).unwrap();
        write_atomic_reusing(&path, &spare, b"fourth", false).unwrap();
        assert_eq!(std::fs::read(&marker).unwrap(), b"second");
        assert_eq!(std::fs::read(&path).unwrap(), b"fourth");
        let reader = std::fs::File::open(&spare).unwrap();
        let held = std::fs::read(&spare).unwrap();
        write_atomic_reusing(&path, &spare, b"fifth", false).unwrap();
        use std::io::Read;
        let mut seen = Vec::new();
        (&reader).read_to_end(&mut seen).unwrap();
        assert_eq!(seen, held);
        assert_eq!(std::fs::read(&path).unwrap(), b"fifth");
        assert_eq!(std::fs::read(&marker).unwrap(), b"second");

        // A spare planted as a symlink is replaced, not followed.
        let outside = dir.path().join("outside");
        std::fs::write(&outside, "keep").unwrap();
        std::fs::remove_file(&spare).unwrap();
        std::os::unix::fs::symlink(&outside, &spare).unwrap();
        write_atomic_reusing(&path, &spare, b"sixth", false).unwrap();
        write_atomic_reusing(&path, &spare, b"seventh", false).unwrap();
        assert_eq!(std::fs::read(&outside).unwrap(), b"keep");
        assert_eq!(std::fs::read(&path).unwrap(), b"seventh");
        // A FIFO planted as the spare holds nothing up.
        std::fs::remove_file(&spare).unwrap();
        let fifo = std::ffi::CString::new(spare.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        write_atomic_reusing(&path, &spare, b"eighth", false).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"eighth");
        // Said to be new while it is not: still replaced whole.
        write_atomic_reusing(&path, &spare, b"ninth", true).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"ninth");
    }

    #[test]
    fn a_rewrite_over_a_spare_longer_or_shorter_holds_exactly_the_new_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.status");
        let spare = dir.path().join(".t.status.spare");
        for (n, len) in [10_000, 100, 5_000, 4_096, 7, 9_000, 8_192, 1]
            .into_iter()
            .enumerate()
        {
            let bytes: Vec<u8> = (0..len).map(|i| b'a' + ((i + n) % 26) as u8).collect();
            write_atomic_reusing(&path, &spare, &bytes, false).unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), bytes, "{len} bytes");
        }
    }

    #[test]
    fn a_state_file_rewritten_in_parts_holds_exactly_them_over_the_file_it_replaced() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.json");
        let spare = dir.path().join(".summary.json.spare");
        let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
        // Sizes around whole blocks, and parts that cut blocks anywhere.
        let mut inodes = Vec::new();
        for (n, len) in [300_000, 20_000, 4_096, 123_457, 8_191, 1, 65_536]
            .into_iter()
            .enumerate()
        {
            let bytes: Vec<u8> = (0..len).map(|i| b'a' + ((i * 7 + n) % 26) as u8).collect();
            let parts: Vec<&[u8]> = bytes.chunks(1_000 + 777 * n).collect();
            rewrite(&path, &parts).unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), bytes, "{len} bytes");
            inodes.push(ino(&path));
        }
        // Two files in turn, once the first rewrite has left a spare.
        if leases(dir.path()) {
            assert_eq!(inodes[2], inodes[0]);
            assert_eq!(inodes[3], inodes[1]);
            assert_eq!(ino(&spare), inodes[5]);
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn parts_small_and_large_are_written_in_order_whole_blocks_or_gathered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let sizes: [&[usize]; 5] = [
            &[10, 5_000, 300_000, 3, 4_096, 700_000, 1],
            &[4_096, 4_096, 1, 4_095, GATHER, GATHER + 1, 2],
            &[GATHER - 1, 2, BLOCK as usize * 3, 17],
            &[1; 9_000],
            &[0, 0, 8_192, 0],
        ];
        for (n, sizes) in sizes.iter().enumerate() {
            let total: usize = sizes.iter().sum();
            let bytes: Vec<u8> = (0..total).map(|i| (i * 31 + n) as u8).collect();
            let mut parts = Vec::new();
            let mut at = 0;
            for &size in *sizes {
                parts.push(&bytes[at..at + size]);
                at += size;
            }
            std::fs::write(&path, vec![b'x'; total]).unwrap();
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            write_in_blocks(&file, &parts).unwrap();
            assert!(std::fs::read(&path).unwrap() == bytes, "sizes {sizes:?}");
        }
    }

    #[test]
    fn a_file_set_aside_is_gone_and_becomes_the_next_rewrite() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("uptodate");
        let spare = dir.path().join(".uptodate.spare");
        // Nothing there: nothing to do.
        set_aside(&path).unwrap();
        assert!(!spare.exists());
        rewrite(&path, &[b"first"]).unwrap();
        let first = std::fs::metadata(&path).unwrap().ino();
        set_aside(&path).unwrap();
        assert!(!path.exists());
        assert_eq!(std::fs::read(&spare).unwrap(), b"first");
        rewrite(&path, &[b"second", b", whole"]).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second, whole");
        if leases(dir.path()) {
            assert_eq!(std::fs::metadata(&path).unwrap().ino(), first);
            assert!(!spare.exists());
        }
        // With a spare already there, the file is deleted.
        std::fs::write(&spare, "spare").unwrap();
        set_aside(&path).unwrap();
        assert!(!path.exists());
        assert_eq!(std::fs::read(&spare).unwrap(), b"spare");
        // A reader of the file set aside keeps what it opened.
        std::fs::remove_file(&spare).unwrap();
        rewrite(&path, &[b"third"]).unwrap();
        let reader = std::fs::File::open(&path).unwrap();
        set_aside(&path).unwrap();
        rewrite(&path, &[b"fourth"]).unwrap();
        use std::io::Read;
        let mut seen = String::new();
        (&reader).read_to_string(&mut seen).unwrap();
        assert_eq!(seen, "third");
        assert_eq!(std::fs::read(&path).unwrap(), b"fourth");
    }
}
