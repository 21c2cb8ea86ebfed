//! The `planexe` binary: everything lives in the library (`planexe::run`).
//! It chooses the allocator: mimalloc. Opening a run allocates a string or
//! two per path, hash and task; with the system allocator, whose threads
//! grew their arenas a page at a time, that was a sixth of the work of
//! opening one (10,000 tasks: 90 ms with it, 60 with mimalloc). It costs
//! a fifth of a millisecond at start (a fresh page for each size of block
//! first used: `planexe --version` 1.5 ms, 1.7 with it), which opening even
//! a small run wins back. Its 2.x line: 3.x spends a third of a millisecond
//! more setting itself up. Without transparent huge pages, which doubled a
//! no-op's peak RSS.
//!
//! It exits without running the C library's exit handlers, once standard
//! output and error are flushed: the one registered is mimalloc's, which
//! hands every page back to the system as the process ends (a tenth to a
//! quarter of a millisecond of a 1,000-task no-op build).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let code = planexe::run(std::env::args_os());
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` ends the process; everything planexe writes is
    // written (its files by the time `run` returns, the standard streams
    // just above), and no exit handler has work that outlives it.
    unsafe { libc::_exit(code) }
}
