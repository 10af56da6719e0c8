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

/// The smallest subscriber, berth-run's (before and after its hand-off,
/// `runtime::handoff`): events of berth's own at `level` and above, one
/// line each on stderr in [`init_lean`]'s shape (`LEVEL message key=value`),
/// no spans (the runtime opens none) and no colours. `tracing_subscriber`'s
/// registry and formatter would map about 0.4 MiB of code into a process
/// that otherwise only polls two fds, and fault part of it in at every
/// container start.
pub fn init_minimal(level: tracing::Level) {
    let _ = tracing::subscriber::set_global_default(Minimal { level });
}

struct Minimal {
    level: tracing::Level,
}

struct Line(String);

impl tracing::field::Visit for Line {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        let _ = if field.name() == "message" {
            write!(self.0, " {value:?}")
        } else {
            write!(self.0, " {}={value:?}", field.name())
        };
    }
}

impl tracing::Subscriber for Minimal {
    fn enabled(&self, m: &tracing::Metadata<'_>) -> bool {
        *m.level() <= self.level && m.target().starts_with("berth")
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(self.level.into())
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, e: &tracing::Event<'_>) {
        let mut line = Line(format!("{:>5}", e.metadata().level()));
        e.record(&mut line);
        eprintln!("{}", line.0);
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_lines_look_like_the_lean_ones() {
        let mut l = Line("WARN".into());
        tracing::field::Visit::record_debug(
            &mut l,
            &tracing::field::FieldSet::new(&["message"], tracing::callsite::Identifier(&CS))
                .field("message")
                .unwrap(),
            &format_args!("forwarding {}", "SIGTERM"),
        );
        assert_eq!(l.0, "WARN forwarding SIGTERM");
    }

    struct Cs;
    static CS: Cs = Cs;
    impl tracing::callsite::Callsite for Cs {
        fn set_interest(&self, _: tracing::subscriber::Interest) {}
        fn metadata(&self) -> &tracing::Metadata<'_> {
            unimplemented!()
        }
    }
}
