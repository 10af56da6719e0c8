//! Command line: clap definitions (their doc comments are the help), one
//! dispatch `match`, and the mapping of errors to exit codes.

// Files the operator names on the command line (generate's output, manifests).
#![allow(clippy::disallowed_methods)]

mod apply;
mod config;
pub mod front;
mod generate;
mod health;
mod images;
mod install;
mod output;
mod plan_view;
mod pull;
mod run;
mod run_once;
mod trust;
mod update;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::error::EXIT_CODES_HELP;
use crate::layout::Layout;

/// Run OCI images as first-class systemd services.
///
/// berth pulls images from registries and archives into an OSTree store,
/// checks them out read-only and installs them as systemd
/// units run by its bundled OCI runtime.
#[derive(Debug, Parser)]
// bin_name: usage says berth also when the full binary berth-core runs by hand.
#[command(name = "berth", bin_name = "berth", version, after_help = EXIT_CODES_HELP, max_term_width = 100)]
pub struct Opt {
    /// Options every verb takes.
    #[command(flatten)]
    pub global: GlobalOpts,
    /// The verb.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every verb takes.
#[derive(Debug, Clone, Args)]
pub struct GlobalOpts {
    /// Operate inside this root (the store is ROOT/var/lib/berth/repo).
    #[arg(long, global = true, default_value = "/", value_name = "DIR")]
    pub root: PathBuf,
    /// System containers: the system's systemd, ROOT/var/lib/berth (the default).
    #[arg(long, global = true)]
    pub system: bool,
    /// User containers (rootless): units in ~/.config/systemd/user, store and
    /// deployments in ~/.local/share/berth, the user's systemd on the session bus.
    #[arg(long, global = true, conflicts_with = "system")]
    pub user: bool,
    /// Print results as JSON on stdout (progress as JSON lines on stderr).
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Print nothing but errors and results.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// OCI runtime for run/exec/kill: bundled (libcontainer inside berth), crun, runc or a PATH.
    #[arg(long, global = true, default_value = "bundled", value_name = "RUNTIME")]
    pub runtime: String,
    /// Read where image signatures are (containers-registries.d(5) *.yaml)
    /// from DIR, as skopeo's --registries.d, instead of
    /// ROOT/etc/containers/registries.d (or ~/.config/containers/registries.d
    /// without --root). DIR is a host path, read as given even with --root;
    /// file:// lookasides it names are still read inside the root.
    #[arg(long = "registries.d", global = true, value_name = "DIR")]
    pub registries_d: Option<PathBuf>,
}

impl GlobalOpts {
    /// The scope's paths these flags select (`--user` is refused as root
    /// and with a `--root` other than `/`: exit 2).
    pub fn layout(&self) -> anyhow::Result<Layout> {
        Ok(Layout::from_flags(self.user, &self.root).map_err(crate::Error::from)?)
    }
}

/// berth's verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Pull an image into the store.
    Pull(pull::PullArgs),
    /// List, inspect, remove, prune and check out stored images.
    Images(images::ImagesArgs),
    /// Run a container in the foreground (a unit's ExecStart).
    Run(run::RunArgs),
    /// Run a command inside a running container.
    Exec(run::ExecArgs),
    /// Send a signal to a running container's init.
    Kill(run::KillArgs),
    /// Run an image once in the foreground, as a tool; nothing is left behind.
    ///
    /// For images that are tools rather than services (Project Atomic's label
    /// atomic.run=once). Pulls IMAGE when it is not stored, checks it out
    /// read-only into ROOT/var/lib/berth/run-once/NAME, renders its
    /// /exports/config.json.template with the --set values (or berth's default
    /// config from the image's entrypoint and cmd), replaces the process
    /// arguments with CMD ARGS when given, and runs it with `berth run --bundle`:
    /// stdin, stdout and stderr are passed through, signals sent to berth are
    /// forwarded, and berth exits with the payload's status (128+N when signal N
    /// killed it). Afterwards the checkout, config and runtime state are
    /// removed; the image stays in the store.
    ///
    /// Nothing is installed: no unit, no /exports/hostfs files, and the image's
    /// tmpfiles.template is not applied, so every bind-mount source of its
    /// config must exist already. With --json, one result object
    /// ({"image","name","exit"}) is printed on stdout after the payload's output.
    /// --user (rootless) is refused for now (exit 2).
    RunOnce(run_once::RunOnceArgs),
    /// Install an image as a systemd service.
    Install(install::InstallArgs),
    /// Remove an installed container (the image stays).
    Uninstall(install::UninstallArgs),
    /// Update a container to a newer image or new values (keeps the previous deployment).
    Update(update::UpdateArgs),
    /// Switch a container back to its previous deployment.
    Rollback(install::RollbackArgs),
    /// Show a container: deployment, values, files, units, journal.
    Status(install::StatusArgs),
    /// List installed containers.
    List(install::ListArgs),
    /// Make the installed containers match a manifest (plan, stage, switch).
    Apply(apply::ApplyArgs),
    /// Show the file changes `apply` would make.
    Diff(apply::DiffArgs),
    /// Mount a container's deployment or an image read-only on a directory.
    Mount(install::MountArgs),
    /// Unmount what `berth mount` mounted.
    Umount(install::UmountArgs),
    /// Show or edit the signature policy every pull is checked against.
    Trust(trust::TrustArgs),
    /// Generate man pages and shell completions.
    #[command(hide = true)]
    Generate(generate::GenerateArgs),
}

fn init_logging(g: &GlobalOpts) {
    let level = if g.quiet {
        "error"
    } else {
        match g.verbose {
            0 => "warn",
            1 => "info",
            2 => "debug",
            _ => "trace",
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "berth={level},{}",
            if g.verbose > 2 { "trace" } else { "warn" }
        ))
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(g.verbose > 1)
        .without_time()
        .try_init();
}

/// Parses the process arguments; a clap error or `--help`/`--version` is
/// printed and its exit code returned.
fn parse() -> Result<Opt, i32> {
    Opt::try_parse().map_err(|e| {
        let code = if e.use_stderr() { 2 } else { 0 };
        let _ = e.print();
        code
    })
}

/// Runs berth with the process arguments; returns the exit code.
pub fn main() -> i32 {
    let opt = match parse() {
        Ok(o) => o,
        Err(code) => return code,
    };
    if let Some(code) = run_lean(&opt) {
        return code;
    }
    init_logging(&opt.global);
    let result = match &opt.command {
        Command::Pull(a) => pull::run(&opt.global, a),
        Command::Images(a) => images::run(&opt.global, a),
        Command::RunOnce(a) => return run_once::run(&opt.global, a),
        Command::Install(a) => install::install(&opt.global, a),
        Command::Uninstall(a) => install::uninstall(&opt.global, a),
        Command::Update(a) => update::update(&opt.global, a),
        Command::Rollback(a) => install::rollback(&opt.global, a),
        Command::Status(a) => install::status(&opt.global, a),
        Command::List(a) => install::list(&opt.global, a),
        Command::Apply(a) => apply::apply(&opt.global, a),
        Command::Diff(a) => apply::diff(&opt.global, a),
        Command::Mount(a) => install::mount(&opt.global, a),
        Command::Umount(a) => install::umount(&opt.global, a),
        Command::Trust(a) => trust::run(&opt.global, a),
        Command::Generate(a) => generate::run(&opt.global, a),
        // Dispatched by run_lean, before logging starts.
        Command::Run(_) | Command::Exec(_) | Command::Kill(_) => Ok(()),
    };
    finish(result)
}

/// The lean front's dispatch (see [`mod@front`]): the same parsing as [`main`]
/// and, for the verbs that need no store, the same functions; every other
/// verb is left to the full binary.
pub fn front() -> front::Dispatch {
    let opt = match parse() {
        Ok(o) => o,
        Err(code) => return front::Dispatch::Exit(code),
    };
    if let Some(code) = run_lean(&opt) {
        return front::Dispatch::Exit(code);
    }
    let result = match &opt.command {
        Command::Status(a) => {
            init_logging(&opt.global);
            install::status(&opt.global, a)
        }
        Command::List(a) => {
            init_logging(&opt.global);
            install::list(&opt.global, a)
        }
        _ => return front::Dispatch::Core,
    };
    front::Dispatch::Exit(finish(result))
}

/// run/exec/kill stay lean: no EnvFilter, no async runtime (see docs/runtime.md).
fn run_lean(opt: &Opt) -> Option<i32> {
    match &opt.command {
        Command::Run(a) => Some(run::run(&opt.global, a)),
        Command::Exec(a) => Some(run::exec(&opt.global, a)),
        Command::Kill(a) => Some(run::kill(&opt.global, a)),
        _ => None,
    }
}

/// The exit code of a verb's result, its error printed.
fn finish(result: anyhow::Result<()>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) => {
            if is_broken_pipe(&e) {
                return 0;
            }
            eprintln!("error: {e:#}");
            exit_code(&e)
        }
    }
}

/// The exit code for an error: the kind of the first berth error in the chain.
pub fn exit_code(e: &anyhow::Error) -> i32 {
    for cause in e.chain() {
        if let Some(be) = cause.downcast_ref::<crate::Error>() {
            return be.kind().exit_code();
        }
        if let Some(u) = cause.downcast_ref::<UsageError>() {
            let _ = u;
            return 2;
        }
    }
    1
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// A usage error found by berth after clap's parsing (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Opt::command().debug_assert();
    }

    #[test]
    fn parses_pull_with_global_flags_anywhere() {
        let o = Opt::try_parse_from([
            "berth",
            "pull",
            "--root",
            "/tmp/x",
            "--json",
            "--tls-verify=false",
            "a/b",
        ])
        .unwrap();
        assert!(o.global.json);
        assert_eq!(o.global.root, PathBuf::from("/tmp/x"));
        let o = Opt::try_parse_from(["berth", "-vv", "images", "--json"]).unwrap();
        assert_eq!(o.global.verbose, 2);
    }

    #[test]
    fn registries_d_is_global_and_reaches_the_policy_options() {
        for argv in [
            &["berth", "--registries.d", "/r.d", "pull", "a/b"][..],
            &["berth", "install", "a/b", "--registries.d=/r.d"],
        ] {
            let o = Opt::try_parse_from(argv).unwrap();
            assert_eq!(o.global.registries_d, Some(PathBuf::from("/r.d")));
            let policy = match &o.command {
                Command::Pull(a) => &a.policy,
                Command::Install(a) => &a.policy,
                other => panic!("{other:?}"),
            };
            let opts = policy.options(&o.global);
            assert_eq!(opts.registries_d, Some(PathBuf::from("/r.d")));
        }
        let o = Opt::try_parse_from(["berth", "pull", "a/b"]).unwrap();
        assert_eq!(o.global.registries_d, None);
    }

    #[test]
    fn parses_update_groups_and_soak() {
        let update = |argv: &[&str]| match Opt::try_parse_from(argv).map(|o| o.command) {
            Ok(Command::Update(a)) => Ok(a),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.kind()),
        };
        let a = update(&["berth", "update", "c", "b", "a"]).unwrap();
        assert_eq!(a.names, ["c", "b", "a"]);
        assert_eq!(a.soak, std::time::Duration::from_secs(10));
        let a = update(&["berth", "update", "--all", "--soak", "0"]).unwrap();
        assert!(a.all && a.names.is_empty() && a.soak.is_zero());
        let a = update(&["berth", "update", "x", "--soak", "1m 30s"]).unwrap();
        assert_eq!(a.soak, std::time::Duration::from_secs(90));
        assert_eq!(
            update(&["berth", "update", "x", "--soak", "soon"]).err(),
            Some(clap::error::ErrorKind::ValueValidation)
        );
        assert_eq!(
            update(&["berth", "update", "--all", "x"]).err(),
            Some(clap::error::ErrorKind::ArgumentConflict)
        );
    }
}
