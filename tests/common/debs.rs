//! Root filesystems made from Debian packages (`apt-get download` + `dpkg-deb -x`).
//!
//! ```text
//! target/test-cache/
//! ├── debs/PKG_VERSION_ARCH.deb      downloaded once; later runs are offline
//! ├── debs/x/PKG_VERSION/            one extracted tree per package version
//! └── rootfs/KEY/                    merged trees (KEY = the package versions joined)
//! ```
//! Every directory is built under a temporary name and renamed into place, so concurrent
//! test processes never see half a tree.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use super::{cache_dir, run_ok};

static LOCK: Mutex<()> = Mutex::new(());

/// The applets linked into [`busybox_rootfs`]'s `bin/`.
pub const BUSYBOX_APPLETS: &[&str] = &[
    "sh", "true", "false", "echo", "cat", "ls", "mkdir", "rm", "cp", "mv", "ln", "chmod", "sleep",
    "env", "id", "test", "wget", "httpd",
];

/// Renames `tmp` to `dest` unless another process got there first.
fn publish(tmp: &Path, dest: &Path) {
    if std::fs::rename(tmp, dest).is_err() {
        assert!(dest.is_dir(), "cannot publish {}", dest.display());
        let _ = std::fs::remove_dir_all(tmp);
    }
}

fn tmp_name(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap().to_os_string();
    name.push(format!(".tmp-{}", super::unique("x")));
    dest.with_file_name(name)
}

/// The cached `.deb` of `pkg`, downloading it if there is none yet.
pub fn deb(pkg: &str) -> PathBuf {
    let dir = cache_dir().join("debs");
    std::fs::create_dir_all(&dir).unwrap();
    let find = || {
        let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let n = p.file_name().unwrap().to_string_lossy();
                n.starts_with(&format!("{pkg}_")) && n.ends_with(".deb")
            })
            .collect();
        found.sort();
        found.pop()
    };
    if let Some(d) = find() {
        return d;
    }
    let tmp = dir.join(format!("dl-{}", super::unique(pkg)));
    std::fs::create_dir_all(&tmp).unwrap();
    run_ok(
        Command::new("apt-get")
            .args(["download", "-q", pkg])
            .current_dir(&tmp),
    );
    for e in std::fs::read_dir(&tmp).unwrap() {
        let p = e.unwrap().path();
        std::fs::rename(&p, dir.join(p.file_name().unwrap())).unwrap();
    }
    let _ = std::fs::remove_dir_all(&tmp);
    find().unwrap_or_else(|| panic!("apt-get download {pkg} left no .deb"))
}

/// `PKG_VERSION` from a `.deb` file name (`PKG_VERSION_ARCH.deb`).
fn key(deb: &Path) -> String {
    let n = deb.file_name().unwrap().to_string_lossy();
    let mut parts = n.trim_end_matches(".deb").splitn(3, '_');
    format!(
        "{}_{}",
        parts.next().unwrap(),
        parts.next().unwrap_or("0").replace("%3a", "-")
    )
}

/// The extracted tree of `pkg` (cached per package version).
pub fn extracted(pkg: &str) -> PathBuf {
    let deb = deb(pkg);
    let dest = cache_dir().join("debs/x").join(key(&deb));
    if dest.is_dir() {
        return dest;
    }
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    let tmp = tmp_name(&dest);
    run_ok(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tmp));
    publish(&tmp, &dest);
    dest
}

/// A root filesystem holding the files of `packages` (no maintainer scripts run),
/// cached under `target/test-cache/rootfs/`. Treat it as read-only.
pub fn debian_rootfs(packages: &[&str]) -> PathBuf {
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let trees: Vec<PathBuf> = packages.iter().map(|p| extracted(p)).collect();
    let k = trees
        .iter()
        .map(|t| t.file_name().unwrap().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("+");
    let dest = cache_dir().join("rootfs").join(k);
    if dest.is_dir() {
        return dest;
    }
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    let tmp = tmp_name(&dest);
    std::fs::create_dir_all(&tmp).unwrap();
    for t in &trees {
        run_ok(
            Command::new("cp")
                .arg("-a")
                .arg(format!("{}/.", t.display()))
                .arg(&tmp),
        );
    }
    publish(&tmp, &dest);
    dest
}

/// A small busybox root filesystem from Debian's busybox-static: `bin/busybox` plus
/// symlinks for [`BUSYBOX_APPLETS`], `etc/passwd`, `etc/group`, `tmp` (1777), `root`
/// (0700). Cached; treat it as read-only.
pub fn busybox_rootfs() -> PathBuf {
    let src = debian_rootfs(&["busybox-static"]);
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dest = cache_dir().join("rootfs").join(format!(
        "busybox-mini-{}",
        src.file_name().unwrap().to_string_lossy()
    ));
    if dest.is_dir() {
        return dest;
    }
    let tmp = tmp_name(&dest);
    for d in ["bin", "etc", "tmp", "root", "var/www"] {
        std::fs::create_dir_all(tmp.join(d)).unwrap();
    }
    use std::os::unix::fs::{symlink, PermissionsExt};
    let mode = |p: &str, m: u32| {
        std::fs::set_permissions(tmp.join(p), std::fs::Permissions::from_mode(m)).unwrap()
    };
    std::fs::copy(src.join("bin/busybox"), tmp.join("bin/busybox")).unwrap();
    mode("bin/busybox", 0o755);
    for a in BUSYBOX_APPLETS {
        symlink("busybox", tmp.join("bin").join(a)).unwrap();
    }
    std::fs::write(tmp.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(tmp.join("etc/group"), "root:x:0:\n").unwrap();
    std::fs::write(tmp.join("var/www/index.html"), "<h1>berth test</h1>\n").unwrap();
    for (p, m) in [
        ("etc/passwd", 0o644),
        ("etc/group", 0o644),
        ("var/www/index.html", 0o644),
    ] {
        mode(p, m);
    }
    for (p, m) in [
        ("bin", 0o755),
        ("etc", 0o755),
        ("tmp", 0o1777),
        ("root", 0o700),
    ] {
        mode(p, m);
    }
    mode("var", 0o755);
    mode("var/www", 0o755);
    mode("", 0o755);
    publish(&tmp, &dest);
    dest
}
