//! A Debian 12 guest with systemd as PID 1, booted with `systemd-nspawn -b`.
//!
//! ```text
//! /var/cache/berth-tests/            (or $BERTH_TEST_GUEST_CACHE)
//! ├── guest.lock                     flock: one rootfs build at a time
//! ├── debs/                          debootstrap --cache-dir (later builds download nothing)
//! └── guest-KEY/                     the root filesystem (KEY = hash of guest-rootfs.sh + packages)
//!
//! RUN/                               one [`Machine`] (a temporary directory)
//! ├── upper/ work/                   overlayfs upper and work dirs: the guest's writes,
//! │                                  kept across boots of the same machine (a reboot)
//! ├── merged/                        the overlay, mounted only inside the boot's own
//! │                                  mount namespace
//! └── share/                         bind-mounted at /mnt/host in the guest
//! ```
//!
//! The root filesystem is built once by `guest-rootfs.sh` (debootstrap, minbase) into a
//! temporary directory and renamed into place, so an interrupted build is never reused.
//! The cached tree is only ever an overlay's lower layer.
//!
//! A boot runs, from this process,
//! `setpriv --pdeathsig KILL unshare --mount --pid --fork --kill-child sh -c 'mount overlay;
//! exec systemd-nspawn -b …'`: the overlay mount lives in a private mount namespace and
//! nspawn is PID 1 of its own PID namespace, so killing `unshare` (on timeout, or when the
//! test thread dies) takes the whole guest and its mount with it; nothing is left on the
//! host. The guest's `berth-harness.service` runs `/mnt/host/harness` after
//! multi-user.target; the harness powers the guest off, which ends the boot.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

use super::{require_all, sha256_hex, skip};

/// The guest's root filesystem recipe; hashed into the cache key.
pub const ROOTFS_SCRIPT: &str = include_str!("guest-rootfs.sh");

/// Packages debootstrap installs (`--include`). berth itself needs libostree-1-1 and
/// libseccomp2; the rest is systemd, D-Bus and the tools scenario scripts use on the
/// guest's host side. Nothing container-ish: no docker, podman, containerd, crun or runc.
pub const PACKAGES: &[&str] = &[
    "systemd-sysv",
    "dbus",
    "libostree-1-1",
    "libseccomp2",
    "ca-certificates",
    "curl",
    "busybox-static",
    "procps",
    // pam_systemd and the user's D-Bus: the user manager (user@UID.service) and session
    // bus that scenario 5's --user containers talk to.
    "libpam-systemd",
    "dbus-user-session",
];

/// Overrides where the guest root filesystem is cached.
pub const CACHE_ENV: &str = "BERTH_TEST_GUEST_CACHE";

/// The longest a guest build may take.
const BUILD_TIMEOUT: &str = "1200";

/// Where guest root filesystems are cached.
pub fn cache_root() -> PathBuf {
    let dir = std::env::var_os(CACHE_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/berth-tests"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The bookworm mirror of this host's apt configuration (never written anywhere).
pub fn mirror() -> Option<String> {
    let out = Command::new("apt-get")
        .args([
            "indextargets",
            "--format",
            "$(REPO_URI)",
            "Release: bookworm",
            "Created-By: Packages",
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
}

/// Root, the tools a guest needs and a bookworm mirror in apt's configuration; skips
/// (see [`skip`]) naming the first thing missing.
pub fn require_guest() -> bool {
    require_all(&[
        "debootstrap",
        "systemd-nspawn",
        "unshare",
        "setpriv",
        "journalctl",
    ]) && (mirror().is_some() || skip("a bookworm mirror in apt's configuration (apt-get update)"))
}

/// A cached guest root filesystem.
#[derive(Debug, Clone)]
pub struct Rootfs {
    /// The tree (an overlay lower layer; never written).
    pub path: PathBuf,
    /// Seconds spent building it in this call; 0 when it came from the cache.
    pub build_secs: f64,
}

/// The guest root filesystem with [`PACKAGES`] plus `extra`, built on first use.
pub fn rootfs(extra: &[&str]) -> Rootfs {
    let mut packages: Vec<&str> = PACKAGES.iter().chain(extra).copied().collect();
    packages.sort_unstable();
    packages.dedup();
    let packages = packages.join(",");
    let key = &sha256_hex(format!("{ROOTFS_SCRIPT}\0{packages}").as_bytes())[..16];
    let root = cache_root();
    let dest = root.join(format!("guest-{key}"));
    let lock = File::create(root.join("guest.lock")).unwrap();
    let _lock = Flock::lock(lock, FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .unwrap();
    let used = dest.with_extension("used");
    if dest.is_dir() {
        std::fs::write(&used, b"").unwrap();
        return Rootfs {
            path: dest,
            build_secs: 0.0,
        };
    }
    // Under the lock every temporary tree is a dead build's; trees of other keys not
    // used for a week go too.
    for e in std::fs::read_dir(&root).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let stale_tmp = name.starts_with("guest-") && name.contains(".tmp-");
        let old = name.starts_with("guest-")
            && name.ends_with(".used")
            && e.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(7 * 86400));
        if stale_tmp {
            let _ = std::fs::remove_dir_all(e.path());
        } else if old {
            let _ = std::fs::remove_dir_all(e.path().with_extension(""));
            let _ = std::fs::remove_file(e.path());
        }
    }
    let mirror = mirror().expect("no bookworm mirror in apt's configuration");
    let tmp = root.join(format!("guest-{key}.tmp-{}", std::process::id()));
    let script = root.join(format!("guest-rootfs-{key}.sh"));
    std::fs::write(&script, ROOTFS_SCRIPT).unwrap();
    let log = root.join(format!("guest-{key}.build.log"));
    let t0 = Instant::now();
    let status = Command::new("timeout")
        .arg(BUILD_TIMEOUT)
        .arg("bash")
        .arg(&script)
        .arg(&tmp)
        .arg(&mirror)
        .arg(&packages)
        .arg(root.join("debs"))
        .stdin(Stdio::null())
        .stdout(File::create(&log).unwrap())
        .stderr(File::create(&log).unwrap())
        .status()
        .unwrap();
    let _ = std::fs::remove_file(&script);
    if !status.success() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        let _ = std::fs::remove_dir_all(&tmp);
        panic!(
            "building the guest root filesystem failed ({status}); log {}:\n{}",
            log.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    std::fs::rename(&tmp, &dest).unwrap();
    std::fs::write(&used, b"").unwrap();
    Rootfs {
        path: dest,
        build_secs: t0.elapsed().as_secs_f64(),
    }
}

/// How a boot ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// nspawn exited (the guest powered off) with this status.
    Exited(i32),
    /// The boot outlived its timeout and was killed.
    TimedOut,
}

/// One finished boot.
#[derive(Debug, Clone)]
pub struct Boot {
    /// 1 for the first boot of a machine.
    pub index: usize,
    /// Wall-clock seconds from spawning nspawn to its exit.
    pub secs: f64,
    /// How it ended.
    pub ended: Ended,
    /// The guest console (nspawn's output).
    pub console: PathBuf,
}

/// Cgroup hierarchies a guest gets its own cgroup in (`berth-tests/NAME`): the host's
/// cgroup2 (hybrid layout) or the whole tree (pure cgroup2), and systemd's named v1 one.
const CGROUP_ROOTS: &[&str] = &[
    "/sys/fs/cgroup/unified",
    "/sys/fs/cgroup/systemd",
    "/sys/fs/cgroup",
];

/// Removes the cgroups of guest `name` (depth first; cgroup directories only go with
/// rmdir), waiting up to 5 s for the processes of a killed guest to be gone.
/// Waits for `child` (a guest) until `deadline`; past it, kills it and says so at the end
/// of its `console` log ("[berth test: WHAT killed after …]").
pub fn wait_or_kill(
    child: &mut std::process::Child,
    deadline: Instant,
    console: &Path,
    what: &str,
) -> Ended {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return Ended::Exited(st.code().unwrap_or(-1));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(console)
                .unwrap();
            let _ = writeln!(
                f,
                "\n[berth test: {what} killed after {:?}]",
                start.elapsed()
            );
            return Ended::TimedOut;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn remove_cgroups(name: &str) {
    fn rmdir_tree(dir: &Path) -> bool {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    rmdir_tree(&e.path());
                }
            }
        }
        std::fs::remove_dir(dir).is_ok() || !dir.exists()
    }
    for root in CGROUP_ROOTS {
        let dir = Path::new(root).join("berth-tests").join(name);
        let deadline = Instant::now() + Duration::from_secs(5);
        while dir.exists() && !rmdir_tree(&dir) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        // Fails while another guest still has its cgroup there.
        let _ = std::fs::remove_dir(Path::new(root).join("berth-tests"));
    }
}

/// A guest: a cached root filesystem plus this machine's own writable layer, booted any
/// number of times (each boot sees what the previous ones wrote: a reboot).
pub struct Machine {
    /// The machine name (nspawn `--machine`).
    pub name: String,
    lower: PathBuf,
    dir: tempfile::TempDir,
    binds: Vec<String>,
    boots: usize,
}

impl Machine {
    /// A machine on `rootfs` with an empty writable layer and share.
    pub fn new(name: &str, rootfs: &Rootfs) -> Machine {
        let dir = super::tempdir();
        for d in ["upper", "work", "merged", "share"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        Machine {
            name: name.to_string(),
            lower: rootfs.path.clone(),
            dir,
            binds: vec![],
            boots: 0,
        }
    }

    /// The host directory the guest sees at `/mnt/host`.
    pub fn share(&self) -> PathBuf {
        self.dir.path().join("share")
    }

    /// The writable layer (what the guest changed, after a boot).
    pub fn upper(&self) -> PathBuf {
        self.dir.path().join("upper")
    }

    /// Binds host `src` read-only at `dest` in the guest on every boot.
    pub fn bind_ro(&mut self, src: &Path, dest: &str) {
        self.binds
            .push(format!("--bind-ro={}:{dest}", src.display()));
    }

    /// Installs host file `src` at `guest_path` (absolute) with `mode`, in the writable
    /// layer (the cached tree stays untouched). Parent directories are created 0755.
    pub fn install(&self, src: &Path, guest_path: &str, mode: u32) {
        let rel = guest_path.trim_start_matches('/');
        let dest = self.upper().join(rel);
        let mut parent = PathBuf::new();
        for c in Path::new(rel).parent().unwrap().components() {
            parent.push(c);
            let p = self.upper().join(&parent);
            if !p.exists() {
                std::fs::create_dir(&p).unwrap();
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
        std::fs::copy(src, &dest)
            .unwrap_or_else(|e| panic!("copying {} into the guest: {e}", src.display()));
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// Boots the guest and waits until it powers off, at most `timeout` (then it is
    /// killed). The console goes to `logs/console-bootN.log`.
    pub fn boot(&mut self, timeout: Duration, logs: &Path) -> Boot {
        self.boots += 1;
        std::fs::create_dir_all(logs).unwrap();
        let console = logs.join(format!("console-boot{}.log", self.boots));
        let out = File::create(&console).unwrap();
        let d = self.dir.path();
        // $0 = run dir, $1 = lower, $2 = name; the rest are nspawn's extra flags.
        // The guest gets its own cgroup (in the unified and the name=systemd
        // hierarchies): with --keep-unit nspawn roots the guest's cgroup tree at the
        // caller's, and two guests sharing one would manage each other's units.
        let script = r#"set -e
dir=$0 lower=$1 name=$2; shift 2
hs="/sys/fs/cgroup/unified /sys/fs/cgroup/systemd"
[ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ] || hs=/sys/fs/cgroup
for h in $hs; do
  [ -d "$h" ] || continue
  mkdir -p "$h/berth-tests/$name"
  echo 0 > "$h/berth-tests/$name/cgroup.procs"
done
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$dir/upper,workdir=$dir/work" "$dir/merged"
exec env SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 systemd-nspawn -q -D "$dir/merged" \
  --register=no --keep-unit --console=read-only \
  --capability=all --system-call-filter="@keyring bpf" --private-network \
  --machine="$name" --bind="$dir/share:/mnt/host" "$@" -b"#;
        let t0 = Instant::now();
        let mut child = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "--", "unshare"])
            .args(["--mount", "--propagation", "private", "--pid", "--fork"])
            .args(["--kill-child", "--", "/bin/sh", "-c", script])
            .arg(d)
            .arg(&self.lower)
            .arg(&self.name)
            .args(&self.binds)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let ended = wait_or_kill(&mut child, t0 + timeout, &console, "boot");
        remove_cgroups(&self.name);
        Boot {
            index: self.boots,
            secs: t0.elapsed().as_secs_f64(),
            ended,
            console,
        }
    }

    /// Runs `cmd` on the host, not booted, with the guest's root filesystem (the same
    /// overlay a boot mounts: cached tree + this machine's writable layer) mounted at
    /// `$R`, in a private mount namespace of its own (setpriv/unshare as for a boot, so
    /// nothing is left mounted on the host): offline changes to the guest before or
    /// between boots, such as `berth --root "$R" …`. At most `timeout`; stdout and
    /// stderr go to `log`. Returns the exit status (`None`: killed at the timeout).
    pub fn offline(
        &self,
        cmd: &[&std::ffi::OsStr],
        env: &[(&str, &std::ffi::OsStr)],
        timeout: Duration,
        log: &Path,
    ) -> Option<i32> {
        let out = File::create(log).unwrap();
        let script = r#"set -e
dir=$0 lower=$1; shift
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$dir/upper,workdir=$dir/work" "$dir/merged"
export R="$dir/merged"
exec "$@""#;
        let mut c = Command::new("setpriv");
        c.args(["--pdeathsig", "KILL", "--", "unshare"])
            .args(["--mount", "--propagation", "private", "--pid", "--fork"])
            .args(["--kill-child", "--", "/bin/sh", "-c", script])
            .arg(self.dir.path())
            .arg(&self.lower)
            .args(cmd)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().unwrap();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return Some(st.code().unwrap_or(-1));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The guest's persistent journal (all boots), as text, into `dest`.
    pub fn export_journal(&self, dest: &Path) {
        let out = Command::new("journalctl")
            .arg("-D")
            .arg(self.upper().join("var/log/journal"))
            .args(["--no-pager", "-o", "short-monotonic"])
            .output();
        let text = match out {
            Ok(o) => [o.stdout, o.stderr].concat(),
            Err(e) => format!("journalctl: {e}").into_bytes(),
        };
        std::fs::write(dest, text).unwrap();
    }
}
