//! The `berth` command is two binaries: a lean front and the full CLI.
//!
//! Loading libostree and its ~60 shared libraries is most of what a verb
//! that never opens the store costs (docs/runtime.md, "Start-up cost"), and
//! no crate can defer loading a library the `ostree` bindings link. So the
//! `berth` on the PATH is a front whose `main` reaches only the verbs that
//! need no store (`list`, `status`, `run`, `exec`, `kill`, and clap's own
//! `--help`/`--version`); the linker (`--gc-sections`, `--as-needed`) then
//! leaves libostree out. Every other verb is `execve`d, argv unchanged, in
//! the full binary `berth-core`:
//!
//! ```text
//! <dir>/berth                       the front (the PATH's berth)
//! <dir>/berth-core                  found first: cargo's target/debug/, a copy beside the front
//! <dir>/../libexec/berth/berth-core found next: the packages' place (/usr/libexec/berth/)
//! ```
//!
//! Both parse argv with the same clap definition ([`super::Opt`]) and run the
//! same verb functions, so what the front answers is what the full binary
//! would. The full binary learns the front's path from [`FRONT_ENV`]: the
//! units it writes must run `berth`, not `berth-core`.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The full binary's file name.
pub const CORE: &str = "berth-core";

/// The environment variable the front passes its own path in to the full
/// binary (which removes it from its environment at start).
pub const FRONT_ENV: &str = "BERTH_FRONT";

/// What the front does with a command line.
#[derive(Debug, PartialEq, Eq)]
pub enum Dispatch {
    /// Handled here: exit with this code.
    Exit(i32),
    /// A verb that needs the full binary: `execve` it.
    Core,
}

/// The front could not hand over to the full binary.
#[derive(Debug, thiserror::Error)]
pub enum FrontError {
    /// The front's own path could not be read.
    #[error("finding the berth executable: {0}")]
    SelfPath(#[source] std::io::Error),
    /// Neither place has the full binary.
    #[error(
        "berth's full binary is missing: neither {} nor {} exists; reinstall berth",
        .beside.display(), .libexec.display()
    )]
    Missing {
        /// The place beside the front.
        beside: PathBuf,
        /// The packages' place.
        libexec: PathBuf,
    },
    /// `execve` failed.
    #[error("running {}: {source}", .path.display())]
    Exec {
        /// The full binary.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Where the full binary may be for a front at `front` (its real path), in
/// the order they are tried: beside it, then `../libexec/berth/`.
pub fn core_candidates(front: &Path) -> [PathBuf; 2] {
    let dir = front.parent().unwrap_or(Path::new("/"));
    // `/..` is `/`.
    let up = dir.parent().unwrap_or(dir);
    [dir.join(CORE), up.join("libexec/berth").join(CORE)]
}

/// Replaces this process with the full binary, argv unchanged; returns only
/// on failure, with the error printed and the exit code (1).
pub fn exec_core() -> i32 {
    let e = match try_exec_core() {
        Ok(never) => match never {},
        Err(e) => e,
    };
    eprintln!("error: {e}");
    1
}

fn try_exec_core() -> Result<std::convert::Infallible, FrontError> {
    let front = std::env::current_exe().map_err(FrontError::SelfPath)?;
    let [beside, libexec] = core_candidates(&front);
    let core = if beside.is_file() {
        beside
    } else if libexec.is_file() {
        libexec
    } else {
        return Err(FrontError::Missing { beside, libexec });
    };
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| OsString::from("berth"));
    let source = std::process::Command::new(&core)
        .arg0(arg0)
        .args(args)
        .env(FRONT_ENV, &front)
        .exec();
    Err(FrontError::Exec { path: core, source })
}

static FRONT: OnceLock<PathBuf> = OnceLock::new();

/// Called first in the full binary's `main`, before any thread exists:
/// takes the front's path out of the environment (so that nothing berth
/// starts inherits it) and remembers it for [`berth_executable`].
pub fn adopt_front() {
    if let Some(p) = std::env::var_os(FRONT_ENV) {
        std::env::remove_var(FRONT_ENV);
        let p = PathBuf::from(p);
        if p.is_absolute() {
            let _ = FRONT.set(p);
        }
    }
}

/// The `berth` executable that units and child processes should run: the
/// front that started this process; else (the full binary run by hand)
/// the `berth` beside it or at `../../bin/berth` from `libexec/berth/`; else
/// this process's own executable.
pub fn berth_executable() -> std::io::Result<PathBuf> {
    if let Some(p) = FRONT.get() {
        return Ok(p.clone());
    }
    let exe = std::env::current_exe()?;
    if exe.file_name().is_some_and(|n| n == CORE) {
        if let Some(front) = front_candidates(&exe).into_iter().find(|p| p.is_file()) {
            return Ok(front);
        }
    }
    Ok(exe)
}

/// Where the front may be for a full binary at `core`: the inverse of
/// [`core_candidates`].
fn front_candidates(core: &Path) -> Vec<PathBuf> {
    let dir = core.parent().unwrap_or(Path::new("/"));
    let mut out = vec![dir.join("berth")];
    if dir.ends_with("libexec/berth") {
        if let Some(prefix) = dir.parent().and_then(Path::parent) {
            out.push(prefix.join("bin/berth"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_is_looked_for_beside_the_front_then_in_libexec() {
        let table = [
            (
                "/usr/bin/berth",
                ["/usr/bin/berth-core", "/usr/libexec/berth/berth-core"],
            ),
            (
                "/usr/local/bin/berth",
                [
                    "/usr/local/bin/berth-core",
                    "/usr/local/libexec/berth/berth-core",
                ],
            ),
            (
                "/src/target/debug/berth",
                [
                    "/src/target/debug/berth-core",
                    "/src/target/libexec/berth/berth-core",
                ],
            ),
            ("/berth", ["/berth-core", "/libexec/berth/berth-core"]),
        ];
        for (front, want) in table {
            assert_eq!(
                core_candidates(Path::new(front)),
                want.map(PathBuf::from),
                "{front}"
            );
        }
    }

    #[test]
    fn the_front_is_found_back_from_the_core() {
        assert_eq!(
            front_candidates(Path::new("/usr/libexec/berth/berth-core")),
            [
                PathBuf::from("/usr/libexec/berth/berth"),
                PathBuf::from("/usr/bin/berth")
            ]
        );
        assert_eq!(
            front_candidates(Path::new("/src/target/debug/berth-core")),
            [PathBuf::from("/src/target/debug/berth")]
        );
    }
}
