//! `berth run`, `berth exec`, `berth kill`.
//!
//! These verbs are the process a systemd unit runs, so their start-up stays
//! small: no async runtime, and logging set up with a plain target filter
//! (berth's own warnings only, unless `-v` or `RUST_LOG`).

use std::path::PathBuf;

use clap::Args;

use super::GlobalOpts;
use crate::layout::Layout;
use crate::runtime::foreground::{self, Cleanup, RunOptions};
use crate::runtime::{parse_signal, RuntimeChoice};

/// Run a container in the foreground: create, start, wait, delete.
///
/// berth stays the main process until the container exits and exits with
/// its status (128+N when signal N killed it). It relays sd_notify messages
/// to systemd, passes socket-activation fds (LISTEN_FDS) on as fds 3…,
/// forwards SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGWINCH
/// to the container's init, and takes the container down with it if killed.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run this OCI bundle (config.json + rootfs) instead of an installed container.
    #[arg(long, short = 'b', value_name = "DIR")]
    pub bundle: Option<PathBuf>,
    /// Write berth's pid to this absolute path once the container has
    /// started; removed when it ends (and by --cleanup).
    #[arg(long, value_name = "PATH")]
    pub pid_file: Option<String>,
    /// Do not run: remove the state (and --pid-file) a killed berth left for
    /// NAME; does nothing while a berth runs it (a unit's ExecStopPost).
    #[arg(long, conflicts_with = "bundle")]
    pub cleanup: bool,
    /// The installed container (its bundle is ROOT/var/lib/berth/containers/NAME),
    /// or with --bundle the container ID.
    #[arg(value_name = "NAME")]
    pub name: String,
}

/// Run a command inside a running container's namespaces and cgroup.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The running container.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The command and its arguments.
    #[arg(
        value_name = "CMD",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

/// Send a signal to a running container's init.
#[derive(Debug, Args)]
pub struct KillArgs {
    /// The running container.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Signal name (TERM, SIGHUP) or number.
    #[arg(value_name = "SIGNAL", default_value = "TERM")]
    pub signal: String,
    /// Succeed when the container is not running (what a unit's ExecStop wants).
    #[arg(long)]
    pub if_running: bool,
}

fn init_logging(g: &GlobalOpts) {
    if g.verbose > 0 || std::env::var_os("RUST_LOG").is_some() {
        return super::init_logging(g);
    }
    crate::logging::init_lean(crate::logging::level(g.quiet, 0));
}

/// The layout of the global flags, or the exit code of their error.
fn layout(g: &GlobalOpts) -> Result<Layout, i32> {
    Layout::from_flags(g.user, &g.root).map_err(|e| fail(e.into(), "--user".into()))
}

fn fail(e: crate::runtime::RuntimeError, context: String) -> i32 {
    let e = anyhow::Error::from(crate::Error::from(e)).context(context);
    eprintln!("error: {e:#}");
    super::exit_code(&e)
}

/// Runs `berth run`; returns the exit code.
pub fn run(g: &GlobalOpts, a: &RunArgs) -> i32 {
    init_logging(g);
    let layout = match layout(g) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let pid_file = match a.pid_file.as_deref().map(foreground::check_pid_file) {
        Some(Err(e)) => {
            eprintln!("error: --pid-file {e}");
            return 2;
        }
        _ => a.pid_file.as_ref().map(PathBuf::from),
    };
    let runtime = RuntimeChoice::parse(&g.runtime);
    if a.cleanup {
        return match foreground::cleanup(&layout, &runtime, &a.name, pid_file.as_deref()) {
            Ok(Cleanup::Removed) => 0,
            Ok(Cleanup::Running) => {
                tracing::info!("{} is running; nothing to clean up", a.name);
                0
            }
            Err(e) => fail(e, format!("cleaning up after {}", a.name)),
        };
    }
    let bundle = match &a.bundle {
        Some(b) => b.clone(),
        None => match foreground::installed_bundle(&layout, &a.name) {
            Ok(b) => b,
            Err(e) => return fail(e, format!("running {}", a.name)),
        },
    };
    let o = RunOptions {
        layout,
        id: a.name.clone(),
        bundle,
        runtime,
        pid_file,
        hand_off: false,
        exec_runtime: false,
    };
    match foreground::run(&o) {
        Ok(exit) => exit.code(),
        Err(e) => fail(e, format!("running {} from {}", o.id, o.bundle.display())),
    }
}

/// Runs `berth exec`; returns the exit code.
pub fn exec(g: &GlobalOpts, a: &ExecArgs) -> i32 {
    init_logging(g);
    let layout = match layout(g) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let rt = RuntimeChoice::parse(&g.runtime);
    match foreground::exec(&layout, &rt, &a.name, &a.command) {
        Ok(exit) => exit.code(),
        Err(e) => fail(e, format!("exec in {}", a.name)),
    }
}

/// Runs `berth kill`; returns the exit code.
pub fn kill(g: &GlobalOpts, a: &KillArgs) -> i32 {
    init_logging(g);
    let layout = match layout(g) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let rt = RuntimeChoice::parse(&g.runtime);
    let r = parse_signal(&a.signal).and_then(|s| foreground::kill(&layout, &rt, &a.name, s));
    match r {
        Ok(()) => 0,
        Err(crate::runtime::RuntimeError::NotRunning { .. }) if a.if_running => 0,
        Err(e) => fail(e, format!("signalling {}", a.name)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Command, Opt};
    use clap::Parser;

    #[test]
    fn parses_run_exec_kill() {
        let o = Opt::try_parse_from(["berth", "--runtime", "crun", "run", "--bundle", "/b", "x"])
            .unwrap();
        assert_eq!(o.global.runtime, "crun");
        match o.command {
            Command::Run(r) => {
                assert_eq!(r.name, "x");
                assert_eq!(r.bundle.unwrap().to_str(), Some("/b"));
            }
            other => panic!("{other:?}"),
        }
        let o = Opt::try_parse_from(["berth", "exec", "web", "--", "ls", "-l", "/"]).unwrap();
        match o.command {
            Command::Exec(e) => assert_eq!(e.command, ["ls", "-l", "/"]),
            other => panic!("{other:?}"),
        }
        let o = Opt::try_parse_from(["berth", "exec", "web", "ps", "-ef"]).unwrap();
        match o.command {
            Command::Exec(e) => assert_eq!(e.command, ["ps", "-ef"]),
            other => panic!("{other:?}"),
        }
        let o = Opt::try_parse_from(["berth", "kill", "web"]).unwrap();
        match o.command {
            Command::Kill(k) => assert_eq!(k.signal, "TERM"),
            other => panic!("{other:?}"),
        }
        assert!(Opt::try_parse_from(["berth", "exec", "web"]).is_err());
        let o = Opt::try_parse_from([
            "berth",
            "run",
            "--cleanup",
            "--pid-file",
            "/run/x.pid",
            "web",
        ])
        .unwrap();
        match o.command {
            Command::Run(r) => {
                assert!(r.cleanup);
                assert_eq!(r.pid_file.as_deref(), Some("/run/x.pid"));
            }
            other => panic!("{other:?}"),
        }
        assert!(Opt::try_parse_from(["berth", "run", "--cleanup", "-b", "/b", "web"]).is_err());
    }
}
