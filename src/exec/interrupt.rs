//! SIGINT, SIGTERM and SIGHUP: a flag the build loop and running tasks poll.
//!
//! Task processes run in process groups of their own (so a timeout can kill
//! a task's whole tree), which also means a terminal's Ctrl-C, or its
//! hangup when it closes, reaches only planexe. planexe then stops starting
//! tasks, kills the running ones, marks them `stopped` and exits 130. A
//! SIGHUP ignored when planexe starts (`nohup`) stays ignored, as in make.
//!
//! The signal handlers are installed once per process ([`Interrupt::signals`]),
//! however many builds it runs; an [`Interrupt::new`] flag is set by its
//! owner alone (a server cancelling one build, a test).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// Set once a SIGINT, SIGTERM or SIGHUP arrived (or its owner asked to
/// stop).
#[derive(Debug, Clone)]
pub struct Interrupt {
    flag: Arc<AtomicBool>,
}

impl Interrupt {
    /// The process's signal flag, its handlers installed on first use. A
    /// second signal while stopping restores the default action, so a user
    /// can always kill planexe with a second Ctrl-C.
    pub fn signals() -> Interrupt {
        static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
        let flag = FLAG.get_or_init(|| {
            let flag = Arc::new(AtomicBool::new(false));
            for signal in STOPPING {
                if signal == libc::SIGHUP && ignored(signal) {
                    continue;
                }
                // Registration only fails for forbidden signals; these are not.
                let _ = signal_hook::flag::register_conditional_default(signal, Arc::clone(&flag));
                let _ = signal_hook::flag::register(signal, Arc::clone(&flag));
            }
            flag
        });
        Interrupt {
            flag: Arc::clone(flag),
        }
    }

    /// A flag no signal sets: for commands that never run tasks, and for
    /// an owner that stops a build itself ([`Interrupt::request`]).
    pub fn new() -> Interrupt {
        Interrupt {
            flag: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Asks whoever polls this flag to stop.
    pub fn request(&self) {
        self.flag.store(true, Ordering::SeqCst);
    }

    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

/// The signals that stop a build.
const STOPPING: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Whether `signal` is ignored (as `nohup` leaves SIGHUP).
fn ignored(signal: libc::c_int) -> bool {
    // SAFETY: sigaction with a null new action only reads the current one
    // into a zeroed struct we own.
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal, std::ptr::null(), &mut current) == 0
            && current.sa_sigaction == libc::SIG_IGN
    }
}

/// SIGINT, SIGTERM and SIGHUP held back (blocked) for the calling thread until
/// this is dropped: a signal that arrives in between waits, and is then
/// delivered to the handler installed meanwhile, or with its default
/// action. So a signal that comes while the process starts is never lost
/// to the default action when the command means to catch it.
pub struct Held {
    previous: libc::sigset_t,
}

/// Holds SIGINT, SIGTERM and SIGHUP back for the calling thread (see
/// [`Held`]).
/// Call it before any thread starts: threads inherit the mask.
pub fn hold() -> Held {
    // SAFETY: the sets are initialised by sigemptyset before use, and
    // pthread_sigmask only changes this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut previous: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in STOPPING {
            libc::sigaddset(&mut set, signal);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut previous);
        Held { previous }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved by `hold` on this thread.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.previous, std::ptr::null_mut());
        }
    }
}

impl Default for Interrupt {
    fn default() -> Self {
        Interrupt::new()
    }
}
