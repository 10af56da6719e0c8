//! Process edge: parse argv, start logging, run the verb, map errors to exit codes.

fn main() {
    // Before any thread exists: the environment is process-global.
    berth::image::registry::prefer_cert_bundle();
    std::process::exit(berth::cli::main());
}
