//! `berth-run`: the lean entry point a unit's `ExecStart=` uses.
//!
//! Same behaviour and arguments as `berth run` (`[--root DIR | --user]
//! [--runtime R] [--bundle DIR] [--pid-file P] [--cleanup] NAME`), but this binary reaches only `berth::runtime`, so
//! the linker (`--gc-sections`, `--as-needed`) leaves libostree and its ~60
//! shared libraries out: loading them is most of `berth`'s start-up time and
//! memory (see docs/runtime.md, "Start-up cost"). It is a separate binary
//! because no crate can defer loading a library the `ostree` bindings link.

use std::path::PathBuf;

use berth::layout::Layout;
use berth::runtime::foreground::{self, Cleanup, RunOptions};
use berth::runtime::handoff::{self, Handoff};
use berth::runtime::{RuntimeChoice, RuntimeError};
use clap::Parser;

/// Run an installed container (or an OCI bundle) in the foreground.
#[derive(Debug, Parser)]
#[command(name = "berth-run", version)]
struct Opt {
    /// Operate inside this root (the bundle is ROOT/var/lib/berth/containers/NAME).
    #[arg(long, default_value = "/", value_name = "DIR")]
    root: PathBuf,
    /// A user container (the bundle is ~/.local/share/berth/containers/NAME).
    #[arg(long)]
    user: bool,
    /// OCI runtime: bundled (libcontainer inside berth), crun, runc or a PATH.
    #[arg(long, default_value = "bundled", value_name = "RUNTIME")]
    runtime: String,
    /// Log more (berth=info/debug/trace).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Log only errors.
    #[arg(short, long)]
    quiet: bool,
    /// Run this OCI bundle (config.json + rootfs) instead of an installed container.
    #[arg(long, short = 'b', value_name = "DIR")]
    bundle: Option<PathBuf>,
    /// Write berth-run's pid to this absolute path once the container has
    /// started; removed when it ends (and by --cleanup).
    #[arg(long, value_name = "PATH")]
    pid_file: Option<String>,
    /// With crun: once the container is prepared, become crun (same pid)
    /// instead of supervising it, unless a health check, --pid-file or a
    /// watchdog needs berth-run; the unit's --cleanup removes berth's files
    /// afterwards. Units of crun containers are rendered with it.
    #[arg(long, conflicts_with = "cleanup")]
    exec_runtime: bool,
    /// Do not run: remove the state (and --pid-file) a killed berth-run left
    /// for NAME; does nothing while a berth-run runs it (a unit's ExecStopPost).
    #[arg(long, conflicts_with = "bundle")]
    cleanup: bool,
    /// The installed container, or with --bundle the container ID.
    #[arg(value_name = "NAME")]
    name: String,
}

fn init_logging(o: &Opt) {
    berth::logging::init_minimal(berth::logging::level(o.quiet, o.verbose));
}

fn fail(e: RuntimeError, context: &str) -> i32 {
    eprintln!("error: {context}: {e}");
    e.kind().exit_code()
}

/// The second image of a berth-run that handed off (see
/// `berth::runtime::handoff`): no command line to parse, only what the
/// first image passed.
fn resume(args: &[std::ffi::OsString]) -> i32 {
    let h = match Handoff::parse(args) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    berth::logging::init_minimal(h.log);
    match handoff::resume(&h) {
        Ok(exit) => exit.code(),
        Err(e) => fail(e, &format!("supervising {}", h.id)),
    }
}

fn main() {
    let mut args = std::env::args_os();
    if args.nth(1).is_some_and(|a| a == handoff::MARKER) {
        std::process::exit(resume(&args.collect::<Vec<_>>()));
    }
    // A health check this berth-run started (see runtime::health::probe).
    if let Some(code) = berth::runtime::health::probe::main_if_requested() {
        std::process::exit(code);
    }
    let o = Opt::parse();
    init_logging(&o);
    let layout = match Layout::from_flags(o.user, &o.root) {
        Ok(l) => l,
        Err(e) => std::process::exit(fail(e.into(), "--user")),
    };
    let pid_file = match o.pid_file.as_deref().map(foreground::check_pid_file) {
        Some(Err(e)) => {
            eprintln!("error: --pid-file {e}");
            std::process::exit(2);
        }
        _ => o.pid_file.as_ref().map(PathBuf::from),
    };
    let runtime = RuntimeChoice::parse(&o.runtime);
    if o.cleanup {
        let code = match foreground::cleanup(&layout, &runtime, &o.name, pid_file.as_deref()) {
            Ok(Cleanup::Removed) => 0,
            Ok(Cleanup::Running) => {
                tracing::info!("{} is running; nothing to clean up", o.name);
                0
            }
            Err(e) => fail(e, &format!("cleaning up after {}", o.name)),
        };
        std::process::exit(code);
    }
    let bundle = match &o.bundle {
        Some(b) => b.clone(),
        None => match foreground::installed_bundle(&layout, &o.name) {
            Ok(b) => b,
            Err(e) => std::process::exit(fail(e, &format!("running {}", o.name))),
        },
    };
    let run = RunOptions {
        layout,
        id: o.name.clone(),
        bundle,
        runtime,
        pid_file,
        hand_off: true,
        exec_runtime: o.exec_runtime,
    };
    let code = match foreground::run(&run) {
        Ok(exit) => exit.code(),
        Err(e) => fail(
            e,
            &format!("running {} from {}", run.id, run.bundle.display()),
        ),
    };
    std::process::exit(code);
}
