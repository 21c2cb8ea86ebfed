//! Links the `planexe` executable at a fixed address (`-no-pie`) on Linux
//! with glibc.
//!
//! A position-independent executable is relocated by the dynamic loader at
//! every start: about 26,000 addresses written into some 120 pages of
//! tables, each page copied on its first write. planexe starts once per
//! `planexe build` in a Makefile rule, per `status` an agent polls, per
//! watch rebuild. Linked at a fixed address it has nothing to relocate and
//! starts about 0.35 ms sooner (`planexe --version` 1.3 ms against 1.6 ms,
//! a no-op build of 1,000 tasks 3.7 ms against 4.2 ms, measured side by
//! side on the 2-core machine). The trade: the shared libraries, the stack
//! and the heap are still placed at random, the executable's own code no
//! longer is. The library and the tests are built as before.

fn main() {
    let var = |name| std::env::var(name).unwrap_or_default();
    // Tried with glibc only; other C libraries link in ways of their own.
    if var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "gnu" {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
