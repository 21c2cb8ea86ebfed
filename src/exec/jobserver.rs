//! GNU make's jobserver, from the client side, and what else `MAKEFLAGS`
//! asks of a build.
//!
//! A recipe of `make -jN` that runs planexe hands it one job slot of its
//! own (the implicit one, kept by the scheduler) and a jobserver: a pipe or
//! a named fifo holding a byte (a token) for each other slot free. planexe
//! reads a token before it runs a task beyond the first, and writes it back
//! when the task ends, so every build under one `make -jN` shares the N
//! slots ([`Jobserver`], a [`Slots`] source).
//!
//! The caller reads `MAKEFLAGS` (the CLI, from the environment it read
//! once) and gives it here as text ([`Makeflags::parse`]); nothing here
//! reads the process environment for it. The `jobserver` crate that opens
//! the jobserver does read it, though: it has no way to be given the text,
//! so [`Jobserver::connect`] checks that the crate found the jobserver the
//! caller named, and uses none otherwise.
//!
//! Invariants: a token is held only while a task runs on it (or for the
//! moment between its arrival and the task's start); every token read is
//! written back, on success, failure or interrupt, and a token that arrives
//! after its waiter gave up is written back at once. A jobserver that
//! cannot be used is a warning, never a hang: the build falls back to its
//! own job limit.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::scheduler::{Slots, Token};

/// How often a thread waiting for a token asks whether to give up.
const POLL: Duration = Duration::from_millis(50);

/// What `MAKEFLAGS` says to a build.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Makeflags {
    /// `make -n`: say what would run, run nothing.
    pub dry_run: bool,
    /// `make -q`: run nothing, say by the exit status whether anything is
    /// stale.
    pub question: bool,
    /// `make -t`: make marks targets up to date instead of running their
    /// recipes, and runs a `+` recipe for it to do the same; a build has
    /// nothing of make's to mark, so it runs nothing.
    pub touch: bool,
    /// `make -k`: keep going after a failure, as `--keep-going`.
    pub keep_going: bool,
    /// The jobserver: `fifo:PATH` or `R,W` (file descriptors).
    pub auth: Option<String>,
}

impl Makeflags {
    /// The flag of make's that asks its recipes to change nothing (`make
    /// -n`, `-q` or `-t`, which still run a `+` recipe), as make spells
    /// it; none when make runs recipes for real.
    pub fn changes_nothing(&self) -> Option<&'static str> {
        if self.dry_run {
            Some("make -n")
        } else if self.question {
            Some("make -q")
        } else if self.touch {
            Some("make -t")
        } else {
            None
        }
    }

    /// Reads `MAKEFLAGS` as GNU make writes it: its single-letter flags
    /// first, as one word without a dash (`n`, `ks`; empty when there are
    /// none, and the text starts with a space), then long options; the last
    /// `--jobserver-auth=` counts (`--jobserver-fds=` of make before 4.2
    /// when there is none); after `--` come variables.
    pub fn parse(text: &str) -> Makeflags {
        let mut flags = Makeflags::default();
        let mut words = text.split_whitespace().peekable();
        let starts_with_letters = !text.starts_with(char::is_whitespace);
        if let Some(first) = words.peek() {
            if starts_with_letters
                && !first.starts_with('-')
                && first.chars().all(|c| c.is_ascii_alphabetic())
            {
                flags.dry_run = first.contains('n');
                flags.question = first.contains('q');
                flags.touch = first.contains('t');
                flags.keep_going = first.contains('k');
                words.next();
            }
        }
        let mut fds = None;
        for word in words {
            if word == "--" {
                break;
            }
            if let Some(auth) = word.strip_prefix("--jobserver-auth=") {
                flags.auth = Some(auth.to_string());
            } else if let Some(auth) = word.strip_prefix("--jobserver-fds=") {
                fds = Some(auth.to_string());
            }
        }
        if flags.auth.is_none() {
            flags.auth = fds;
        }
        flags
    }
}

/// A connection to make's jobserver: tokens for a build's tasks.
pub struct Jobserver {
    // Dropped first: no token arrives once the rest goes.
    helper: jobserver::HelperThread,
    shared: Arc<Shared>,
    auth: String,
}

/// What the helper thread (which reads tokens) and the waiting pool
/// threads share.
#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// A token arrived, or the jobserver broke.
    arrived: Condvar,
}

#[derive(Default)]
struct State {
    /// Tokens read for threads still waiting.
    tokens: Vec<jobserver::Acquired>,
    /// Threads waiting for a token.
    waiting: usize,
    /// Tokens asked of the helper thread and not yet read.
    requested: usize,
    /// Why the jobserver stopped giving tokens, once it did.
    broken: Option<String>,
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared.state.lock().unwrap_or_else(|p| p.into_inner())
}

impl Jobserver {
    /// Connects to the jobserver `flags` names: `Ok(None)` when it names
    /// none; `Err` with a warning when it cannot be used (closed file
    /// descriptors, descriptors that are not a pipe, a missing fifo).
    ///
    /// Call it early, before the process opens files of its own: make
    /// names descriptors by number, and closes them for a recipe it does not
    /// know runs a make-like program (one without `+`), so by the time the
    /// process opened files those numbers may be its own.
    pub fn connect(flags: &Makeflags) -> Result<Option<Jobserver>, String> {
        let Some(auth) = &flags.auth else {
            return Ok(None);
        };
        let unusable = |why: &str| {
            format!(
                "the make jobserver in MAKEFLAGS (--jobserver-auth={auth}) cannot be used: {why}; \
                 running on planexe's own job limit (a recipe that runs planexe needs a leading `+`)"
            )
        };
        // SAFETY: the crate takes the descriptors named in MAKEFLAGS as a
        // pipe's ends. `check_pipe` makes it check that both are open and
        // are pipes, and on Linux it reopens them (through /dev/fd) rather
        // than taking them over; and this runs before the process opens
        // descriptors of its own (see above), so a number it names is
        // make's or nothing.
        let found = unsafe { jobserver::Client::from_env_ext(true) };
        // The crate read the process environment: it must be the jobserver
        // the caller named.
        let named = found
            .var
            .as_ref()
            .and_then(|(_, value)| value.to_str())
            .and_then(|value| Makeflags::parse(value).auth);
        if named.as_deref() != Some(auth.as_str()) {
            return Err(unusable("it is not the one in the process's environment"));
        }
        let client = found.client.map_err(|e| unusable(&e.to_string()))?;
        let shared = Arc::new(Shared::default());
        let theirs = Arc::clone(&shared);
        let helper = client
            .into_helper_thread(move |acquired| {
                let mut state = lock(&theirs);
                state.requested = state.requested.saturating_sub(1);
                match acquired {
                    Ok(token) if state.waiting > state.tokens.len() => state.tokens.push(token),
                    // Its waiter gave up: back at once.
                    Ok(token) => drop(token),
                    Err(e) => {
                        if state.broken.is_none() {
                            state.broken = Some(e.to_string());
                        }
                    }
                }
                theirs.arrived.notify_all();
            })
            .map_err(|e| unusable(&e.to_string()))?;
        Ok(Some(Jobserver {
            helper,
            shared,
            auth: auth.clone(),
        }))
    }

    /// A warning, once the jobserver stopped giving tokens mid-build (the
    /// build then went on with its own job limit).
    pub fn warning(&self) -> Option<String> {
        lock(&self.shared).broken.as_ref().map(|why| {
            format!(
                "the make jobserver (--jobserver-auth={}) failed: {why}; the build went on with planexe's own job limit",
                self.auth
            )
        })
    }
}

impl Slots for Jobserver {
    fn token(&self, give_up: &dyn Fn() -> bool) -> Option<Token> {
        let mut state = lock(&self.shared);
        state.waiting += 1;
        loop {
            if state.broken.is_some() {
                state.waiting -= 1;
                return Some(Token::free());
            }
            if let Some(token) = state.tokens.pop() {
                state.waiting -= 1;
                return Some(Token::new(token));
            }
            // One request per waiting thread: a request left by a thread
            // that gave up serves the next one.
            if state.requested < state.waiting {
                state.requested += 1;
                self.helper.request_token();
            }
            state = self
                .shared
                .arrived
                .wait_timeout(state, POLL)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            if !state.tokens.is_empty() || state.broken.is_some() {
                continue;
            }
            drop(state);
            let stop = give_up();
            state = lock(&self.shared);
            if stop {
                state.waiting -= 1;
                // Tokens no thread waits for go back.
                let keep = state.waiting;
                state.tokens.truncate(keep);
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makeflags_letters_come_first_and_the_last_auth_counts() {
        let f = Makeflags::parse("n -j3 --jobserver-auth=3,4");
        assert!(f.dry_run && !f.question);
        assert_eq!(f.auth.as_deref(), Some("3,4"));
        let f = Makeflags::parse("qks --jobserver-auth=fifo:/tmp/a --jobserver-auth=5,6");
        assert!(f.question && !f.dry_run && !f.touch && f.keep_going);
        assert!(Makeflags::parse("st -j3").touch);
        assert_eq!(f.auth.as_deref(), Some("5,6"));
        let f = Makeflags::parse(" -j3 --jobserver-fds=7,8 -- n=1");
        assert_eq!(
            f,
            Makeflags {
                auth: Some("7,8".into()),
                ..Makeflags::default()
            }
        );
        // A leading space: no letters, whatever the first word is.
        assert!(!Makeflags::parse(" n").dry_run);
        assert!(!Makeflags::parse("--no-print-directory").dry_run);
        assert!(!Makeflags::parse("X=n").dry_run);
        assert!(Makeflags::parse(" -- --jobserver-auth=1,2").auth.is_none());
    }

    #[test]
    fn no_jobserver_named_is_none() {
        assert!(matches!(
            Jobserver::connect(&Makeflags::parse("n")),
            Ok(None)
        ));
    }
}
