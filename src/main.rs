fn main() {
    std::process::exit(idfcr::run_cli(std::env::args_os()));
}
