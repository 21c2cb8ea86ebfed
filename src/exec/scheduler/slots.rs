//! Slots: the permission, from outside the build, to run one more task at
//! once. A build under `make -jN` shares make's N job slots with every other
//! job make runs: it has one slot of its own (the *implicit* slot, the one
//! make gave the recipe that started planexe) and takes a *token* from make's
//! jobserver for each further task it runs at the same time.
//!
//! The loop ([`super::run`]) keeps the implicit slot itself: a task runs on
//! it whenever no other task does, and only a task started while the
//! implicit slot is taken waits for a [`Token`] from the [`Slots`] source.
//! Every slot is given back when its task ends (a token by being dropped),
//! whether the task succeeded, failed or was stopped. Without a source, the
//! build's own job limit is the only limit.

/// A token for one running task beyond the implicit slot; dropping it gives
/// it back to where it came from.
pub struct Token {
    _held: Option<Box<dyn Send>>,
}

impl Token {
    /// A token that gives `held` back when dropped (a jobserver's
    /// `Acquired`).
    pub fn new(held: impl Send + 'static) -> Token {
        Token {
            _held: Some(Box::new(held)),
        }
    }

    /// A token that stands for nothing: for a source that no longer limits
    /// the build (a jobserver that broke).
    pub fn free() -> Token {
        Token { _held: None }
    }
}

/// Where tokens come from (a make jobserver; a fake in tests).
pub trait Slots: Sync {
    /// Waits for a token. `give_up` is asked every few tens of
    /// milliseconds while it waits: once it says `true` (an interrupt, or
    /// the task the token was for is gone), the wait ends with `None`, and
    /// a token that comes after that is given back at once.
    fn token(&self, give_up: &dyn Fn() -> bool) -> Option<Token>;
}
