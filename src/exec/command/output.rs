//! A command's output: a pipe the job thread copies into the task's log,
//! made at the first byte. The thread waits on the pipe, and once the
//! command has run for a moment, on a pidfd of the child too; when the
//! child has ended, what is left in the pipe is drained and the pipe
//! closed, whatever a background process it left behind still holds.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::store::files;

/// How much is read from the pipe at once.
const CHUNK: usize = 64 * 1024;

/// A pipe for a command's output: (reading end, writing end), both closed
/// on exec (the spawn duplicates the writing end onto the child's stdout
/// and stderr). Fails where pidfds do not exist: the caller then lets the
/// command write its log itself.
pub fn pipe() -> std::io::Result<(File, File)> {
    if !pidfds() {
        return Err(std::io::Error::from(std::io::ErrorKind::Unsupported));
    }
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two new descriptors into `fds` on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned here.
    Ok(unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) })
}

/// Whether this kernel has pidfds (asked once).
fn pidfds() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| pidfd(std::process::id()).is_ok())
}

/// A pidfd of `pid`: readable once the process has ended.
fn pidfd(pid: u32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new
    // descriptor or -1; nothing is passed by pointer.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the descriptor was just returned to us and is ours to own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// The task's log, made when the first byte arrives.
struct Log<'a> {
    path: &'a Path,
    file: Option<File>,
}

impl Log<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        // The error names the log and keeps its kind (a full disk is
        // told from the rest by it).
        let named = |e: std::io::Error| {
            std::io::Error::new(e.kind(), format!("{}: {e}", self.path.display()))
        };
        if self.file.is_none() {
            let file = files::create(self.path).map_err(|e| match e {
                crate::error::Error::Io(e) => e,
                e => std::io::Error::other(e.to_string()),
            })?;
            self.file = Some(file);
        }
        match &mut self.file {
            Some(file) => file.write_all(bytes).map_err(named),
            None => Ok(()),
        }
    }
}

/// Removes the log of an earlier run, before the command starts: a
/// command that prints nothing leaves none. A log planted as a symlink is
/// refused (and left alone), as every state file is.
pub fn clear(log: &Path) -> Result<(), String> {
    match std::fs::symlink_metadata(log) {
        Ok(meta) if meta.file_type().is_symlink() => Err(format!(
            "{} is a symlink; planexe does not write through links in its state folder",
            log.display()
        )),
        Ok(_) => std::fs::remove_file(log).map_err(|e| format!("{}: {e}", log.display())),
        Err(_) => Ok(()),
    }
}

/// How long the pipe of a command is watched alone before its process is
/// watched too (a pidfd): most commands end, closing the pipe, sooner, and
/// a pidfd is a file to make per task.
const PIPE_ALONE: Duration = Duration::from_millis(20);

thread_local! {
    /// The read buffer of [`copy_until_exit`], one per thread, zeroed once.
    static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Copies what the child `pid` writes to `pipe` into the log at `log`
/// until the child has ended (or closed the pipe), then what is left in
/// the pipe. The child is not reaped here.
pub fn copy_until_exit(pipe: File, pid: u32, log: &Path) -> std::io::Result<()> {
    BUFFER.with(|buf| {
        let mut buf = buf.borrow_mut();
        if buf.len() < CHUNK {
            buf.resize(CHUNK, 0);
        }
        copy_with(pipe, pid, log, &mut buf)
    })
}

fn copy_with(mut pipe: File, pid: u32, log: &Path, buf: &mut [u8]) -> std::io::Result<()> {
    let mut log = Log {
        path: log,
        file: None,
    };
    // Opened once the pipe has been watched alone for `PIPE_ALONE`.
    let mut exited: Option<OwnedFd> = None;
    let alone_until = Instant::now() + PIPE_ALONE;
    let mut fds = [
        libc::pollfd {
            fd: pipe.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: -1,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        let timeout = match exited {
            Some(_) => -1,
            None => alone_until
                .saturating_duration_since(Instant::now())
                .as_millis() as libc::c_int,
        };
        // SAFETY: `fds` is an array of two initialised pollfd structs (a
        // negative fd is ignored).
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 && exited.is_none() {
            // A longer command: its end is watched too, so a process it
            // leaves holding the pipe cannot hold the task.
            let fd = pidfd(pid)?;
            fds[1].fd = fd.as_raw_fd();
            exited = Some(fd);
            continue;
        }
        // Every writer closed it and nothing is left in it (a pipe that
        // holds bytes polls readable as well): a read would return 0.
        if fds[0].revents == libc::POLLHUP {
            return Ok(());
        }
        if fds[0].revents != 0 {
            match read(&mut pipe, buf)? {
                // Every writer closed it: nothing more can come (the
                // caller waits for the child).
                0 => return Ok(()),
                got => log.write(&buf[..got])?,
            }
        }
        if fds[1].revents != 0 {
            break;
        }
    }
    // What the child wrote before it ended; not what a process it left
    // behind writes later.
    set_nonblocking(&pipe)?;
    loop {
        match pipe.read(buf) {
            Ok(0) => break,
            Ok(got) => log.write(&buf[..got])?,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One read, retried when a signal interrupts it.
fn read(pipe: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match pipe.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

fn set_nonblocking(file: &File) -> std::io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own, reading then setting flags.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
