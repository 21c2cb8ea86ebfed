//! The `planexe` binary: everything lives in the library (`planexe::run`).

fn main() {
    std::process::exit(planexe::run(std::env::args_os()));
}
