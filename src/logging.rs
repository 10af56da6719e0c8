//! Lean logging set-up for the process a unit runs (`berth run`,
//! `berth-run`): a plain target filter instead of an `EnvFilter`, so the
//! resident runtime compiles no filter expressions.

use tracing_subscriber::prelude::*;

/// The level for `-q` / `-v` counts: error, warn (default), info, debug, trace.
pub fn level(quiet: bool, verbose: u8) -> tracing::Level {
    match (quiet, verbose) {
        (true, _) => tracing::Level::ERROR,
        (_, 0) => tracing::Level::WARN,
        (_, 1) => tracing::Level::INFO,
        (_, 2) => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    }
}

/// Logs berth's own events at `level` and above to stderr, without times
/// (journald adds them).
pub fn init_lean(level: tracing::Level) {
    let filter = tracing_subscriber::filter::Targets::new().with_target("berth", level);
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .without_time()
                .with_target(false),
        )
        .with(filter)
        .try_init();
}
