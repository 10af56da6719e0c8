//! Process edge: parse argv, start logging, run the verb, map errors to exit codes.

fn main() {
    // A health check berth run started (see runtime::health::probe).
    if let Some(code) = berth::runtime::health::probe::main_if_requested() {
        std::process::exit(code);
    }
    // Before any thread exists: the environment is process-global.
    berth::image::registry::prefer_cert_bundle();
    std::process::exit(berth::cli::main());
}
