//! Shared support for berth's integration tests (`mod common;` in each test file).
//!
//! - [`registry`]: Debian's `docker-registry` on 127.0.0.1 (plain HTTP, or TLS + htpasswd),
//!   and [`registry::push`] through skopeo.
//! - [`front`]: a std::net HTTP proxy in front of a registry that injects faults
//!   (5xx, flipped bytes, connections closed mid-body, slow bodies) or demands an
//!   anonymous Bearer token.
//! - [`oci`]: OCI image layouts, `docker save` archives and `oci-archive` tars written in
//!   Rust; layers built with `tar::Builder`, hostile entries included.
//! - [`signing`]: GPG keys, skopeo-signed pushes and registries.d files for the
//!   signature tests.
//! - [`tree`]: comparable listings of directory trees, and `umoci unpack` as the
//!   independent reference extraction.
//! - [`debs`]: root filesystems from Debian packages, cached under `target/test-cache/`.
//! - [`deploy`]: image layouts to install from, root snapshots, the failpoint driver.
//! - [`berth`]: runs the berth binary against a private `--root` and environment.
//! - [`guest`]: a cached Debian 12 root filesystem (debootstrap) booted with
//!   `systemd-nspawn -b` on a per-machine overlay (the system tests).
//! - [`vm`]: the same guest with a kernel, booted with qemu under TCG (opt-in).
//!
//! Tests that need root or a tool call [`require_root`] / [`require`] first: without the
//! facility they print one line naming it and return, unless `BERTH_TEST_REQUIRE_ALL=1`,
//! in which case they fail.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod berth;
pub mod debs;
pub mod deploy;
pub mod front;
pub mod guest;
pub mod oci;
pub mod registry;
pub mod signing;
pub mod tree;
pub mod vm;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

#[allow(unused_imports)]
pub use berth::{Berth, Run};

/// Set to `1` (as CI does) to turn every skip into a failure.
pub const REQUIRE_ALL_ENV: &str = "BERTH_TEST_REQUIRE_ALL";

fn require_all_set() -> bool {
    std::env::var(REQUIRE_ALL_ENV).is_ok_and(|v| v == "1")
}

/// Reports a missing facility: prints one line naming it and returns false, or panics when
/// `BERTH_TEST_REQUIRE_ALL=1`.
pub fn skip(what: &str) -> bool {
    let test = std::thread::current().name().unwrap_or("test").to_string();
    if require_all_set() {
        panic!("{test}: needs {what} ({REQUIRE_ALL_ENV}=1 forbids skipping)");
    }
    eprintln!("skipped {test}: needs {what}");
    false
}

/// Where `tool` is on `PATH`, if anywhere.
pub fn which(tool: &str) -> Option<PathBuf> {
    if tool.contains('/') {
        return Path::new(tool).is_file().then(|| PathBuf::from(tool));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// True if `tool` is on `PATH`; otherwise skips (see [`skip`]).
pub fn require(tool: &str) -> bool {
    which(tool).is_some() || skip(tool)
}

/// True when running as root; otherwise skips (see [`skip`]).
pub fn require_root() -> bool {
    nix::unistd::geteuid().is_root() || skip("root")
}

/// Root plus every tool in `tools`; skips naming the first thing missing.
pub fn require_all(tools: &[&str]) -> bool {
    require_root() && tools.iter().all(|t| require(t))
}

/// Hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `sha256:<hex>` of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// Polls `cond` every 20 ms until it holds; panics naming `what` after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `cmd`, panicking with its stderr if it cannot start or exits non-zero.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// `target/test-cache`: survives between runs (downloaded packages, extracted trees).
pub fn cache_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.parent().unwrap_or(tmp).join("test-cache");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `target/tmp/berth-test-PID/`: parent of every [`tempdir`] of this process. Fixtures kept
/// in statics (a shared registry, a pushed layout) are never dropped, so on first use this
/// removes the directories of test processes that are gone.
pub fn scratch_base() -> &'static Path {
    static BASE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BASE.get_or_init(|| process_base(Path::new(env!("CARGO_TARGET_TMPDIR"))))
}

/// `/tmp/berth-test-PID/`: as [`scratch_base`], for what needs a short path wherever the
/// checkout is (a unix socket's path holds at most 107 bytes: a fake systemd's socket,
/// gpg-agent's sockets in a GNUPGHOME).
pub fn short_base() -> &'static Path {
    static BASE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BASE.get_or_init(|| process_base(Path::new("/tmp")))
}

/// `TMP/berth-test-PID/`, created, after removing those of processes that are gone.
fn process_base(tmp: &Path) -> PathBuf {
    if let Ok(entries) = std::fs::read_dir(tmp) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = name.strip_prefix("berth-test-") else {
                continue;
            };
            if !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let base = tmp.join(format!("berth-test-{}", std::process::id()));
    std::fs::create_dir_all(&base).unwrap();
    base
}

/// A fresh temporary directory below [`short_base`], removed on drop.
pub fn short_tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("t-")
        .tempdir_in(short_base())
        .unwrap()
}

/// A fresh temporary directory below [`scratch_base`], removed on drop.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("t-")
        .tempdir_in(scratch_base())
        .unwrap()
}

/// A name unique within this test run, for repositories and marker files.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// `ostree fsck` of `repo`; panics with its output unless clean.
pub fn ostree_fsck(repo: &Path) {
    run_ok(
        Command::new("ostree")
            .arg("fsck")
            .arg(format!("--repo={}", repo.display())),
    );
}
