//! SIGINT, SIGTERM and SIGHUP: a flag the build loop and running tasks poll.
//!
//! Task processes run in process groups of their own (so a timeout can kill
//! a task's whole tree), which also means a terminal's Ctrl-C, or its
//! hangup when it closes, reaches only planexe. planexe then stops starting
//! tasks, kills the running ones, marks them `stopped` and exits 130. A
//! SIGHUP ignored when planexe starts (`nohup`) stays ignored, as in make,
//! and so does a SIGINT (a background job of a script); an ignored SIGTERM
//! does not ([`KEPT_IGNORED`]).
//!
//! An interrupt before any task starts ends the build where it is: reading
//! (the pipeline, the state) is abandoned at once
//! ([`Interrupt::unless_requested`]), and the build stops before it takes
//! the lock, before its plan and before it announces its tasks.
//!
//! A second signal while stopping kills planexe with the default action,
//! as the user asks, but one: while planexe waits for its hooks at a
//! build's end ([`Interrupt::catch_next`]), the first signal to come is
//! caught instead, so that the wait ends at once and the hook commands it
//! started are stopped with it, not left running; a signal after that one
//! kills as before.
//!
//! The signal handlers are installed once per process ([`Interrupt::signals`]),
//! however many builds it runs; an [`Interrupt::new`] flag is set by its
//! owner alone (a server cancelling one build, a test).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// Set once a SIGINT, SIGTERM or SIGHUP arrived (or its owner asked to
/// stop).
#[derive(Debug, Clone)]
pub struct Interrupt {
    flag: Arc<AtomicBool>,
    /// How many times a stop was asked (signals, requests): a wait tells
    /// one asked while it lasts from one asked before.
    asked: Arc<AtomicUsize>,
    /// Whether this is the process's signal flag ([`Interrupt::signals`]).
    signals: bool,
}

/// No signal is spared the default action.
const NONE_SPARED: usize = usize::MAX;

/// The count of signals at which a [`Catching`] began: the signal that
/// finds this count is caught even while stopping ([`NONE_SPARED`] when
/// no wait catches one).
static SPARED: AtomicUsize = AtomicUsize::new(NONE_SPARED);

impl Interrupt {
    /// The process's signal flag, its handlers installed on first use. A
    /// second signal while stopping restores the default action, so a user
    /// can always kill planexe with a second Ctrl-C.
    pub fn signals() -> Interrupt {
        type Shared = (Arc<AtomicBool>, Arc<AtomicUsize>);
        static FLAG: OnceLock<Shared> = OnceLock::new();
        let (flag, asked) = FLAG.get_or_init(|| {
            let flag = Arc::new(AtomicBool::new(false));
            let asked = Arc::new(AtomicUsize::new(0));
            for signal in STOPPING {
                if KEPT_IGNORED.contains(&signal) && ignored(signal) {
                    continue;
                }
                let (flag, asked) = (Arc::clone(&flag), Arc::clone(&asked));
                // Atomics alone, and the default action emulated as
                // signal_hook's own `register_conditional_default` does it:
                // all async-signal-safe.
                let action = move || {
                    let before = asked.fetch_add(1, Ordering::SeqCst);
                    let stopping = flag.swap(true, Ordering::SeqCst);
                    if stopping && SPARED.load(Ordering::SeqCst) != before {
                        let _ = signal_hook::low_level::emulate_default_handler(signal);
                    }
                };
                // SAFETY: the action is async-signal-safe (above).
                // Registration only fails for forbidden signals; these are not.
                let _ = unsafe { signal_hook::low_level::register(signal, action) };
            }
            (flag, asked)
        });
        Interrupt {
            flag: Arc::clone(flag),
            asked: Arc::clone(asked),
            signals: true,
        }
    }

    /// A flag no signal sets: for commands that never run tasks, and for
    /// an owner that stops a build itself ([`Interrupt::request`]).
    pub fn new() -> Interrupt {
        Interrupt {
            flag: Arc::new(AtomicBool::new(false)),
            asked: Arc::new(AtomicUsize::new(0)),
            signals: false,
        }
    }

    /// Asks whoever polls this flag to stop.
    pub fn request(&self) {
        self.asked.fetch_add(1, Ordering::SeqCst);
        self.flag.store(true, Ordering::SeqCst);
    }

    /// Begins a wait that the next stop asked cuts short, even when the
    /// process is already stopping: the next signal is caught, not fatal
    /// ([`Catching::caught`] says it came), so the waiter can stop what it
    /// started before planexe exits. One signal more kills as before.
    pub fn catch_next(&self) -> Catching<'_> {
        let from = self.asked.load(Ordering::SeqCst);
        if self.signals {
            SPARED.store(from, Ordering::SeqCst);
        }
        Catching {
            interrupt: self,
            from,
        }
    }

    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Runs `work` on a thread of its own and waits for it, unless the
    /// interrupt comes first: then it returns `None` at once (within
    /// [`POLL`]), leaving the work to end unwatched and its result to be
    /// dropped. Only for work that changes nothing (reading a pipeline and
    /// a run's state), so that a build stopped while it loads a large
    /// pipeline stops now, not once the load is over. A panic of the work
    /// goes on in the caller.
    pub fn unless_requested<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        if self.requested() {
            return None;
        }
        Started::start(work).wait(self)
    }
}

/// A wait cut short by the next stop asked ([`Interrupt::catch_next`]);
/// dropped, a second signal kills again.
#[derive(Debug)]
pub struct Catching<'a> {
    interrupt: &'a Interrupt,
    /// How many stops were asked when the wait began.
    from: usize,
}

impl Catching<'_> {
    /// Whether a stop was asked since the wait began.
    pub fn caught(&self) -> bool {
        self.interrupt.asked.load(Ordering::SeqCst) != self.from
    }
}

impl Drop for Catching<'_> {
    fn drop(&mut self) {
        if self.interrupt.signals {
            SPARED.store(NONE_SPARED, Ordering::SeqCst);
        }
    }
}

/// Work that changes nothing, begun on a thread of its own before the
/// caller knows whether it will want the result (the pipeline opened while
/// the up-to-date certificate is still being judged). [`Started::wait`]
/// takes the result as [`Interrupt::unless_requested`] does; dropped, the
/// work ends unwatched and its result is dropped.
#[derive(Debug)]
pub struct Started<T> {
    worker: std::thread::JoinHandle<()>,
    result: std::sync::mpsc::Receiver<T>,
}

impl<T: Send + 'static> Started<T> {
    pub fn start(work: impl FnOnce() -> T + Send + 'static) -> Started<T> {
        let (done, result) = std::sync::mpsc::channel();
        let worker = std::thread::spawn(move || {
            // The receiver is gone when the interrupt came first, or the
            // result was not wanted.
            let _ = done.send(work());
        });
        Started { worker, result }
    }

    /// The work's result, unless `interrupt` comes first: then `None`
    /// within [`POLL`]. A panic of the work goes on in the caller.
    pub fn wait(self, interrupt: &Interrupt) -> Option<T> {
        use std::sync::mpsc::RecvTimeoutError;
        loop {
            match self.result.recv_timeout(POLL) {
                Ok(value) => return Some(value),
                Err(RecvTimeoutError::Timeout) if interrupt.requested() => return None,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    // The work ended without a value: it panicked.
                    if let Err(panic) = self.worker.join() {
                        std::panic::resume_unwind(panic);
                    }
                    return None;
                }
            }
        }
    }
}

/// How often [`Interrupt::unless_requested`] looks at the flag while it
/// waits.
pub const POLL: std::time::Duration = std::time::Duration::from_millis(10);

/// The signals that stop a build.
const STOPPING: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// The stopping signals that stay ignored when planexe starts with them
/// ignored, as in make: SIGHUP under `nohup`, SIGINT in a background job
/// of a shell without job control (`planexe build &` in a script), where
/// a Ctrl-C is for the foreground job. Not SIGTERM: `timeout`, CI systems
/// and service managers send it to stop a build, and one a parent ignored
/// for itself is no request to carry on.
const KEPT_IGNORED: [libc::c_int; 2] = [libc::SIGHUP, libc::SIGINT];

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn work_is_waited_for_unless_the_interrupt_comes_first() {
        let interrupt = Interrupt::new();
        assert_eq!(interrupt.unless_requested(|| 7), Some(7));
        // Requested while the work runs: the answer comes at once.
        let asker = interrupt.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            asker.request();
        });
        let start = Instant::now();
        let slow = interrupt.unless_requested(|| std::thread::sleep(Duration::from_secs(5)));
        assert_eq!(slow, None);
        assert!(start.elapsed() < Duration::from_secs(2));
        // Requested before: the work does not even start.
        assert_eq!(interrupt.unless_requested(|| 7), None);
    }

    #[test]
    fn a_wait_catches_only_a_stop_asked_while_it_lasts() {
        let interrupt = Interrupt::new();
        interrupt.request();
        // Asked before the wait: not the wait's.
        let catching = interrupt.catch_next();
        assert!(!catching.caught());
        interrupt.request();
        assert!(catching.caught());
    }
}
