//! `berth`: the lean front. The verbs that need no store (`list`, `status`,
//! `run`, `exec`, `kill`, `--help`, `--version`) run here without loading
//! libostree; every other verb is `execve`d, argv unchanged, in the full
//! binary `berth-core` (see `berth::cli::front`).

use berth::cli::front::{self, Dispatch};

fn main() {
    // A health check berth run started (see runtime::health::probe).
    if let Some(code) = berth::runtime::health::probe::main_if_requested() {
        std::process::exit(code);
    }
    let code = match berth::cli::front() {
        Dispatch::Exit(code) => code,
        Dispatch::Core => front::exec_core(),
    };
    std::process::exit(code);
}
