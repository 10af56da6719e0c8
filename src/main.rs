//! `berth`: the lean front. The verbs that need no store (`list`, `status`,
//! `run`, `exec`, `kill`, `--help`, `--version`) run here without loading
//! libostree; every other verb is `execve`d, argv unchanged, in the full
//! binary `berth-core` (see `berth::cli::front`).

use berth::cli::front::{self, Dispatch};

fn main() {
    let code = match berth::cli::front() {
        Dispatch::Exit(code) => code,
        Dispatch::Core => front::exec_core(),
    };
    std::process::exit(code);
}
