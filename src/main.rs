//! Process edge: parse argv, start logging, run the verb, map errors to exit codes.

fn main() {
    std::process::exit(berth::cli::main());
}
