//! The `planexe` binary: everything lives in the library (`planexe::run`).
//! It chooses the allocator: mimalloc, whose small allocations (a record's
//! paths and hashes, a task's strings) cost about half what the system
//! allocator's do, and which does not lock between the build's threads.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(planexe::run(std::env::args_os()));
}
