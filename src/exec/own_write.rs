//! A write of planexe's own that a task's executor could not make for
//! want of space (a prompt task's answer, on a full disk). The task fails
//! as it would, but the fault is not its own: the build keeps the error
//! as it keeps a failed write of a sidecar, starts no new task and exits
//! 2 naming the file ([`OwnWrites`] carries it from the executor's thread
//! to the build loop).

use std::sync::Mutex;

use crate::error::Error;

/// The first write of planexe's own an executor found no space for.
#[derive(Debug, Default)]
pub struct OwnWrites(Mutex<Option<Error>>);

impl OwnWrites {
    /// Keeps `e` if it is the first.
    pub fn failed(&self, e: Error) {
        let mut first = self.0.lock().unwrap_or_else(|p| p.into_inner());
        first.get_or_insert(e);
    }

    /// The error kept since the last call, if any.
    pub fn take(&self) -> Option<Error> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// What a prompt task says of an answer a full disk had no room for:
/// `e` (which names the file) and, when its calls were `paid` for, that
/// the answer they bought is lost, unless the response cache `kept` it.
/// The kind of `e` is kept, so the build knows it for a full disk.
pub fn answer_lost(e: &std::io::Error, paid: bool, kept: bool) -> std::io::Error {
    let lost = match (paid, kept) {
        (true, false) => "; the model call that made it was paid for, and the next build asks again",
        (true, true) => "; the model call that made it was paid for: the response cache kept its answer for the next build",
        (false, _) => "",
    };
    std::io::Error::new(
        e.kind(),
        format!("{e}: the answer could not be written{lost}"),
    )
}
