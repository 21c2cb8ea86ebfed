fn main() {
    std::process::exit(planexe::run(std::env::args_os()));
}
