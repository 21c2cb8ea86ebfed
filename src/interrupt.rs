//! SIGINT and SIGTERM: a flag the build loop and running tasks poll.
//!
//! Task processes run in process groups of their own (so a timeout can kill
//! a task's whole tree), which also means a terminal's Ctrl-C reaches only
//! planexe. planexe then stops starting tasks, kills the running ones, marks
//! them `stopped` and exits 130.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Set once a SIGINT or SIGTERM arrived.
#[derive(Debug, Clone)]
pub struct Interrupt {
    flag: Arc<AtomicBool>,
}

impl Interrupt {
    /// Installs the handlers. A second signal while stopping restores the
    /// default action, so a user can always kill planexe with a second Ctrl-C.
    pub fn install() -> Interrupt {
        let flag = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // Registration only fails for forbidden signals; these are not.
            let _ = signal_hook::flag::register_conditional_default(signal, Arc::clone(&flag));
            let _ = signal_hook::flag::register(signal, Arc::clone(&flag));
        }
        Interrupt { flag }
    }

    /// A flag that no signal sets (for commands that never run tasks).
    pub fn never() -> Interrupt {
        Interrupt {
            flag: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}
