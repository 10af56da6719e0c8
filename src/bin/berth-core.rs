//! `berth-core`: the full berth CLI, every verb.
//!
//! Installed out of the PATH (`/usr/libexec/berth/`): the `berth` front
//! (`src/main.rs`) answers the verbs that need no store without loading
//! libostree and `execve`s this binary, argv unchanged, for the others
//! (see `berth::cli::front`).

fn main() {
    // Before any thread exists: the environment is process-global.
    berth::cli::front::adopt_front();
    berth::image::registry::prefer_cert_bundle();
    std::process::exit(berth::cli::main());
}
