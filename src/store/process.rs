//! Other processes the store hears of: the build named in `run.json`, the
//! writer of a temporary file, the holder of the lock. Whether one is alive
//! decides whether its traces are a live build's or a crash's leftovers;
//! `/proc` says when it started and what it runs.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Whether a process with this pid exists and has not exited (also when
/// it belongs to another user, which signal 0 reports as `EPERM`).
pub fn alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let exists = unsafe { libc::kill(pid, 0) } == 0;
    let exists = exists || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    // A process that exited but was not reaped yet (a crashed build's
    // command, handed to an init that reaps late) exists to kill(2) but
    // does nothing any more.
    exists && !matches!(state(pid as u32), Some('Z' | 'X'))
}

/// The state letter of a process (field 3 of `/proc/PID/stat`: `R`, `S`,
/// `Z` for a zombie...).
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

/// Whether process `pid` is this process's parent, or its parent's, and
/// so on up to init.
pub fn is_ancestor(pid: u32) -> bool {
    let mut at = std::os::unix::process::parent_id();
    // A chain of parents ends at init (1) or the kernel (0); the bound
    // keeps a /proc that says something odd from looping.
    for _ in 0..4096 {
        if at == pid {
            return true;
        }
        if at <= 1 {
            return false;
        }
        match parent(at) {
            Some(p) => at = p,
            None => return false,
        }
    }
    false
}

/// The parent of process `pid` (field 4 of `/proc/PID/stat`).
fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// When the process started: the boot time plus its start in clock ticks
/// after boot (field 22 of `/proc/PID/stat`).
pub fn start_time(pid: u32) -> Option<SystemTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold anything:
    // fields are counted from the last `)`, which ends it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let ticks: u64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    // SAFETY: sysconf only reads a system setting.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = u64::try_from(per_second).ok().filter(|&n| n > 0)?;
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    let boot: u64 = boot
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let after_boot = Duration::from_secs(ticks / per_second)
        + Duration::from_nanos((ticks % per_second) * 1_000_000_000 / per_second);
    UNIX_EPOCH
        .checked_add(Duration::from_secs(boot))?
        .checked_add(after_boot)
}

/// The command line of a process, its arguments joined by spaces.
pub fn command_line(pid: u32) -> Option<String> {
    let bytes = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let words: Vec<String> = bytes
        .split(|&b| b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// The process holding a `flock` on the file with this device and inode,
/// from `/proc/locks` (lines like `1: FLOCK ADVISORY WRITE PID MAJ:MIN:INODE
/// 0 EOF`, device numbers in hex).
pub fn lock_holder(dev: u64, ino: u64) -> Option<u32> {
    let locks = proc_locks().ok()?;
    flock_holder(&locks, dev, ino)
}

/// Whether process `pid` holds a `flock` on the file with this device and
/// inode. When `/proc/locks` cannot be read there is no telling: true, so
/// that whether the process is alive decides, as it did before.
pub fn holds_lock(pid: u32, dev: u64, ino: u64) -> bool {
    proc_locks().map_or(true, |locks| flock_holder(&locks, dev, ino) == Some(pid))
}

/// The text of `/proc/locks`, read whole in one `read(2)`. The kernel
/// lists the locks under its lock of the list for one call; read in
/// pieces (as `read_to_string` reads it, from a small first read), each
/// piece starts at a line number, and a lock another process takes or
/// lets go of between two pieces shifts the lines: one is skipped, and
/// a build that holds its run directory's lock reads for a moment as one
/// that does not (`status` then took it for crashed).
fn proc_locks() -> std::io::Result<String> {
    use std::io::Read;
    /// Thousands of lines; read again with more room when it fills it.
    const FIRST: usize = 256 * 1024;
    const MOST: usize = 64 << 20;
    let mut room = FIRST;
    loop {
        let mut buf = vec![0u8; room];
        let read = std::fs::File::open("/proc/locks")?.read(&mut buf)?;
        if read < room || room >= MOST {
            buf.truncate(read);
            return Ok(String::from_utf8_lossy(&buf).into_owned());
        }
        room *= 4;
    }
}

/// The holder of the `flock` on the file with this device and inode in the
/// text of `/proc/locks`.
fn flock_holder(locks: &str, dev: u64, ino: u64) -> Option<u32> {
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // `->` marks a process waiting for the lock, not holding it.
        if fields.get(1) != Some(&"FLOCK") {
            return None;
        }
        let pid: u32 = fields.get(4)?.parse().ok()?;
        let mut id = fields.get(5)?.split(':');
        let maj = u32::from_str_radix(id.next()?, 16).ok()?;
        let min = u32::from_str_radix(id.next()?, 16).ok()?;
        let inode: u64 = id.next()?.parse().ok()?;
        (maj == major && min == minor && inode == ino).then_some(pid)
    })
}

#[cfg(test)]
mod tests {
    /// A lock held all along is found at every read of `/proc/locks`,
    /// while other threads take and let go of locks on other files (which
    /// shift its lines between the pieces of a read in pieces).
    #[test]
    fn a_lock_held_all_along_is_found_while_others_come_and_go() {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::MetadataExt;
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let flock = |f: &std::fs::File| {
            // SAFETY: flock on a descriptor we own.
            assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0);
        };
        let mine = std::fs::File::create(dir.path().join("mine")).unwrap();
        flock(&mine);
        let meta = mine.metadata().unwrap();
        // Other locks held, so that the list is longer than a small read.
        let held: Vec<std::fs::File> = (0..40)
            .map(|i| {
                let f = std::fs::File::create(dir.path().join(format!("held{i}"))).unwrap();
                flock(&f);
                f
            })
            .collect();
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            for t in 0..4 {
                let (dir, stop) = (dir.path(), &stop);
                scope.spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let files: Vec<std::fs::File> = (0..8)
                            .map(|i| {
                                let name = dir.join(format!("churn{t}-{i}"));
                                let f = std::fs::File::create(name).unwrap();
                                flock(&f);
                                f
                            })
                            .collect();
                        drop(files);
                    }
                });
            }
            let missed = (0..3000)
                .filter(|_| !super::holds_lock(std::process::id(), meta.dev(), meta.ino()))
                .count();
            stop.store(true, Ordering::Relaxed);
            assert_eq!(missed, 0, "reads of /proc/locks that missed a held lock");
        });
        drop(held);
    }

    #[test]
    fn this_process_is_alive_and_pid_zero_is_not_a_process() {
        assert!(super::alive(std::process::id()));
        assert!(!super::alive(0));
        assert!(!super::alive(u32::MAX));
    }

    #[test]
    fn only_the_holder_of_a_lock_holds_it() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let file = std::fs::File::create(&path).unwrap();
        let meta = file.metadata().unwrap();
        let me = std::process::id();
        assert!(!super::holds_lock(me, meta.dev(), meta.ino()));
        file.try_lock().unwrap();
        assert_eq!(super::lock_holder(meta.dev(), meta.ino()), Some(me));
        assert!(super::holds_lock(me, meta.dev(), meta.ino()));
        assert!(!super::holds_lock(me + 1, meta.dev(), meta.ino()));
    }

    #[test]
    fn a_parent_is_an_ancestor_and_a_child_is_not() {
        assert!(super::is_ancestor(std::os::unix::process::parent_id()));
        assert!(!super::is_ancestor(std::process::id()));
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        assert!(!super::is_ancestor(child.id()));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn a_process_that_exited_but_was_not_reaped_is_not_alive() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Not waited for: it stays a zombie once it exits.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while super::state(pid) != Some('Z') && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(super::state(pid), Some('Z'));
        assert!(!super::alive(pid));
        child.wait().unwrap();
    }
}
