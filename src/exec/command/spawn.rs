//! Starting a command's process: a child that shares planexe's memory until
//! it runs `execve` (`clone` with `CLONE_VM | CLONE_VFORK`, as glibc's
//! `posix_spawn` does), on a stack each thread keeps for all its commands.
//! `posix_spawn` maps a stack for every child and unmaps it afterwards, and
//! an unmap in a process whose threads run on other processors interrupts
//! each of them to flush its address translations: with two jobs, that
//! cost more than any other step of starting a trivial command.
//!
//! The calling thread is suspended until the child has run `execve` or
//! exited, so the child may use the stack and everything the caller
//! prepared, but nothing that allocates, locks or unwinds: it resets the
//! handler of every signal that has one (and SIGPIPE, which planexe
//! ignores) to the default, makes a process group of its own, takes stdin
//! from `/dev/null` and stdout and stderr from the output sink, moves to
//! the run directory, unblocks every signal and runs the program. The
//! error of a step that fails comes back through memory the caller reads
//! once it resumes; the child then exits with status 127.

use std::cell::RefCell;
use std::ffi::CStr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::raw::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicI32, Ordering};

/// The size of the stack a child runs on until `execve`.
const STACK: usize = 64 * 1024;

thread_local! {
    /// This thread's children's stack (each runs while the thread waits).
    static CHILD_STACK: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// `/dev/null`, opened once (close-on-exec, above stderr, so that no
/// standard stream of the child is it) for every child's stdin.
fn dev_null() -> std::io::Result<c_int> {
    static NULL: std::sync::OnceLock<OwnedFd> = std::sync::OnceLock::new();
    if let Some(fd) = NULL.get() {
        return Ok(fd.as_raw_fd());
    }
    let file = std::fs::File::open("/dev/null")?;
    // SAFETY: fcntl duplicates a descriptor we own; the new one is ours.
    let high = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if high < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `high` was just returned to us and nothing else owns it.
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(high) };
    Ok(NULL.get_or_init(|| fd).as_raw_fd())
}

/// What the child needs, prepared by the caller (the child must not
/// allocate).
struct Child {
    argv: *const *const c_char,
    envp: *const *const c_char,
    cwd: *const c_char,
    out: c_int,
    null: c_int,
    /// The error number of the step that failed, 0 while none did.
    error: AtomicI32,
}

/// Starts `argv[0]` with `argv` and `envp` (each ending with a null
/// pointer) in `cwd`, in a process group of its own, stdin from
/// `/dev/null`, stdout and stderr to `out`. Returns its pid.
///
/// # Safety
///
/// `argv` and `envp` must end with a null pointer, and every pointer in
/// them must point to a NUL-terminated string that outlives the call.
pub unsafe fn start(
    argv: &[*const c_char],
    envp: &[*const c_char],
    cwd: &CStr,
    out: c_int,
) -> std::io::Result<u32> {
    if argv.last().is_none_or(|p| !p.is_null()) || envp.last().is_none_or(|p| !p.is_null()) {
        return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput));
    }
    let child = Child {
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        cwd: cwd.as_ptr(),
        out,
        null: dev_null()?,
        error: AtomicI32::new(0),
    };
    let pid = CHILD_STACK.with(|stack| {
        let mut stack = stack.borrow_mut();
        if stack.len() < STACK {
            stack.resize(STACK, 0);
        }
        let base = stack.as_mut_ptr() as usize;
        // The stack grows down from its top, 16-byte aligned.
        let top = ((base + stack.len()) & !15) as *mut c_void;
        // SAFETY: sigset_t is plain data; the sets are initialised by
        // sigfillset and pthread_sigmask before they are read. Every
        // signal is blocked around the clone, so none runs a handler of
        // planexe in the child before the child has reset them; the
        // caller's mask comes back once the child has run execve (or
        // exited). The child runs `run` on `stack`, which nothing else
        // uses while this thread is suspended (CLONE_VFORK), and reads
        // `child`, which outlives it.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
            let pid = libc::clone(
                run,
                top,
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                &child as *const Child as *mut c_void,
            );
            let cloned = std::io::Error::last_os_error();
            libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            if pid < 0 {
                Err(cloned)
            } else {
                Ok(pid)
            }
        }
    })?;
    match child.error.load(Ordering::Acquire) {
        0 => Ok(pid as u32),
        error => {
            // The child exited at once: reap it.
            let mut status: c_int = 0;
            // SAFETY: waitpid on our own child, writing its status.
            unsafe {
                while libc::waitpid(pid, &mut status, 0) < 0
                    && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
                {
                }
            }
            Err(std::io::Error::from_raw_os_error(error))
        }
    }
}

/// The child, until `execve`: see the module. Only calls that neither
/// allocate nor lock; never returns but by `execve` or `_exit`.
extern "C" fn run(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Child` the caller prepared and keeps alive while
    // it is suspended; every call below is a thin wrapper of a system call.
    unsafe {
        let child = &*(arg as *const Child);
        let fail = || -> c_int {
            child
                .error
                .store(*libc::__errno_location(), Ordering::Release);
            libc::_exit(127)
        };
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        let mut sig: c_int = 1;
        while sig < 65 {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                && (sig == libc::SIGPIPE
                    || (old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN))
            {
                libc::sigaction(sig, &default, std::ptr::null_mut());
            }
            sig += 1;
        }
        if libc::setpgid(0, 0) != 0 {
            return fail();
        }
        // The sink first: it may be fd 0 (`/dev/null` never is).
        for (from, to) in [(child.out, 1), (child.out, 2), (child.null, 0)] {
            // dup2 onto itself keeps close-on-exec: clear it instead.
            let done = if from == to {
                libc::fcntl(to, libc::F_SETFD, 0)
            } else {
                libc::dup2(from, to)
            };
            if done < 0 {
                return fail();
            }
        }
        if libc::chdir(child.cwd) != 0 {
            return fail();
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        libc::execve(*child.argv, child.argv, child.envp);
        fail()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::io::Read;

    fn wait(pid: u32) -> c_int {
        let mut status = 0;
        // SAFETY: waitpid on our own child.
        unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
        status
    }

    #[test]
    fn a_child_gets_its_group_folder_streams_and_signals() {
        let dir = tempfile::tempdir().unwrap();
        let out_path = dir.path().join("out");
        let out = std::fs::File::create(&out_path).unwrap();
        // The masks are the shell's own (`exec`: a shell blocks every
        // signal while it waits for a command it runs).
        let script = CString::new(
            "pwd; cat; echo; echo \"pid $$\"; ps -o pgid= -p $$; echo err >&2; \
             exec grep -E '^Sig(Blk|Ign)' /proc/self/status",
        )
        .unwrap();
        let argv = [
            c"/bin/sh".as_ptr(),
            c"-c".as_ptr(),
            script.as_ptr(),
            std::ptr::null(),
        ];
        let var = CString::new("GREETING=hi").unwrap();
        let envp = [var.as_ptr(), std::ptr::null()];
        let cwd = CString::new(dir.path().to_str().unwrap()).unwrap();
        // SAFETY: both arrays end with null; the strings outlive the call.
        let pid = unsafe { start(&argv, &envp, &cwd, out.as_raw_fd()) }.unwrap();
        assert_eq!(wait(pid), 0);
        let mut text = String::new();
        std::fs::File::open(&out_path)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let canonical = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(lines[0], canonical.to_str().unwrap(), "{text}");
        // stdin is /dev/null: `cat` printed nothing before the blank line.
        assert_eq!(lines[1], "", "{text}");
        assert_eq!(lines[2], format!("pid {pid}"));
        // Its own process group.
        assert_eq!(lines[3].trim(), pid.to_string(), "{text}");
        // Nothing blocked, SIGPIPE (ignored by this test's process) not
        // ignored.
        let mask = |name: &str| {
            let line = lines.iter().find(|l| l.starts_with(name)).unwrap();
            u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
        };
        assert_eq!(mask("SigBlk:"), 0, "{text}");
        assert_eq!(mask("SigIgn:") & (1 << (libc::SIGPIPE - 1)), 0, "{text}");
        assert_eq!(lines[4], "err");
    }

    #[test]
    fn a_child_that_cannot_start_is_an_error() {
        let out = std::fs::File::create("/dev/null").unwrap();
        let argv = [c"/nonexistent/sh".as_ptr(), std::ptr::null()];
        let envp = [std::ptr::null()];
        // SAFETY: both arrays end with null; the strings are static.
        let e = unsafe { start(&argv, &envp, c"/", out.as_raw_fd()) }.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        // SAFETY: a pointer into a static string.
        let e = unsafe { start(&argv, &envp, c"/nonexistent", out.as_raw_fd()) }.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    }
}
