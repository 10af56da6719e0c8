//! The health check's own process: `/proc/self/exe` started by the
//! [`super::checker::Checker`] with [`ARG`] as its first argument, in either
//! binary (`berth` or `berth-run`; both call [`main_if_requested`] first).
//! It enters the running container through its runtime's exec, as the
//! payload's user (`process.user` of the rendered spec) with the payload's
//! environment, waits for the command and exits with its status.
//!
//! ```text
//! /proc/self/exe __berth-health-check RUNTIME_DIR RUNTIME ID -- CMD ARGS…
//! ```

use std::path::{Path, PathBuf};

use super::super::{foreground, ExecUser, Paths, RuntimeChoice};

/// The executable a check runs: berth-run's (or berth's) own, even if the
/// file was replaced since it started.
pub const EXE: &str = "/proc/self/exe";
/// The first argument that selects probe mode.
pub const ARG: &str = "__berth-health-check";

/// The arguments (after [`EXE`]) of a check in container `id`, to be
/// followed by the command's argv.
pub fn args(runtime_dir: &Path, runtime: &RuntimeChoice, id: &str) -> Vec<String> {
    vec![
        ARG.into(),
        runtime_dir.display().to_string(),
        runtime.name().into(),
        id.into(),
        "--".into(),
    ]
}

/// Runs a check if this process was started as one and returns its exit
/// code; `None` for an ordinary start.
pub fn main_if_requested() -> Option<i32> {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) != Some(ARG) {
        return None;
    }
    let code = match argv.get(2..) {
        Some([dir, runtime, id, dashes, cmd @ ..]) if dashes == "--" && !cmd.is_empty() => {
            check(Path::new(dir), &RuntimeChoice::parse(runtime), id, cmd)
        }
        _ => {
            eprintln!("error: {ARG} RUNTIME_DIR RUNTIME ID -- CMD…: bad arguments");
            2
        }
    };
    Some(code)
}

fn check(dir: &Path, runtime: &RuntimeChoice, id: &str, cmd: &[String]) -> i32 {
    let paths = Paths {
        base: PathBuf::from(dir),
    };
    let user = payload_user(&paths, id);
    match foreground::exec_in(&paths, runtime, id, cmd, user.as_ref()) {
        Ok(exit) => exit.code(),
        Err(e) => {
            eprintln!("error: entering {id}: {e}");
            e.kind().exit_code()
        }
    }
}

/// `process.user` of the spec berth-run rendered for `id`.
fn payload_user(paths: &Paths, id: &str) -> Option<ExecUser> {
    let spec = paths.ctr(id).join("bundle").join("config.json");
    let spec = oci_spec::runtime::Spec::load(&spec).ok()?;
    let user = spec.process().as_ref()?.user();
    Some(ExecUser {
        uid: user.uid(),
        gid: user.gid(),
        additional_gids: user.additional_gids().clone().unwrap_or_default(),
    })
}
