//! The same Debian 12 guest as [`super::guest`], booted with its own kernel under
//! `qemu-system-x86_64 -accel tcg` (full kernel, cgroup v2 with every controller) instead
//! of `systemd-nspawn -b`. Opt-in: `BERTH_TEST_VM=1` (`make check-vm`).
//!
//! ```text
//! /var/cache/berth-tests/guest-KEY   the guest rootfs with PACKAGES added (kernel,
//!                                    initramfs, udev): guest::rootfs(vm::PACKAGES)
//! RUN/                               one [`VmMachine`] (a temporary directory)
//! ├── upper/                         what the host adds: /etc/fstab (root, 9p shares),
//! │                                  modules-load.d/9p.conf, berth's binaries, …
//! ├── work/ merged/                  the overlay mkfs.ext4 reads (mounted only inside a
//! │                                  private mount namespace)
//! ├── disk.raw                       ext4 (`mkfs.ext4 -d merged`) made before the first
//! │                                  boot; the guest writes it, the next boot sees that
//! ├── vmlinuz initrd.img             copied from the rootfs (direct kernel boot)
//! └── share/                         9p `hostshare`, mounted at /mnt/host in the guest
//! ```
//!
//! A boot runs `setpriv --pdeathsig KILL qemu-system-x86_64 -accel tcg … -nic none`
//! (no network at all) with the serial console in `logs/console-bootN.log`; the guest's
//! berth-harness.service powers it off (qemu exits); past the timeout qemu is killed.
//! Read-only directories ([`VmMachine::bind_ro`]) are 9p shares too (`readonly=on`).

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::guest::{wait_or_kill, Boot, Rootfs};

/// What the VM variant of the guest root filesystem adds to [`super::guest::PACKAGES`]:
/// Debian's kernel, its initramfs (MODULES=most: virtio_blk for root=/dev/vda) and udev.
pub const PACKAGES: &[&str] = &["linux-image-amd64", "initramfs-tools", "udev", "kmod"];

/// Set to `1` to run the qemu tests.
pub const ENABLE_ENV: &str = "BERTH_TEST_VM";

/// Guest memory (MiB) and CPUs.
const MEM_MIB: &str = "2048";
const CPUS: &str = "2";
/// Size of the guest's disk (sparse).
const DISK_SIZE: &str = "4G";

/// True when `BERTH_TEST_VM=1` and the host has what a qemu guest needs; otherwise prints
/// one line and returns false (a failure under `BERTH_TEST_REQUIRE_ALL=1` only when
/// `BERTH_TEST_VM=1` asked for the run).
pub fn require_vm() -> bool {
    if !std::env::var(ENABLE_ENV).is_ok_and(|v| v == "1") {
        let test = std::thread::current().name().unwrap_or("test").to_string();
        eprintln!("skipped {test}: qemu system tests run with {ENABLE_ENV}=1 (make check-vm)");
        return false;
    }
    super::require_all(&[
        "debootstrap",
        "qemu-system-x86_64",
        "mkfs.ext4",
        "unshare",
        "setpriv",
    ]) && (super::guest::mirror().is_some()
        || super::skip("a bookworm mirror in apt's configuration (apt-get update)"))
}

/// The VM guest's root filesystem (built and cached like nspawn's, with [`PACKAGES`]).
pub fn rootfs() -> Rootfs {
    super::guest::rootfs(PACKAGES)
}

/// A qemu guest: the cached root filesystem plus this machine's additions, made into
/// one ext4 disk before the first boot; later boots reuse the disk (a reboot).
pub struct VmMachine {
    /// A name for logs.
    pub name: String,
    lower: PathBuf,
    dir: tempfile::TempDir,
    /// `(host dir, 9p tag)` of the read-only shares.
    ro: Vec<(PathBuf, String)>,
    fstab: String,
    boots: usize,
    /// Seconds spent making the disk (set by the first boot).
    pub disk_secs: f64,
}

impl VmMachine {
    /// A machine on `rootfs`: fstab (root on /dev/vda, the share at /mnt/host) and the
    /// 9p modules loaded early.
    pub fn new(name: &str, rootfs: &Rootfs) -> VmMachine {
        let dir = super::tempdir();
        for d in ["upper", "work", "merged", "share"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let m = VmMachine {
            name: name.to_string(),
            lower: rootfs.path.clone(),
            dir,
            ro: vec![],
            fstab: "/dev/vda / ext4 rw,errors=remount-ro 0 0\n\
                    hostshare /mnt/host 9p trans=virtio,version=9p2000.L,msize=512000 0 0\n"
                .to_string(),
            boots: 0,
            disk_secs: 0.0,
        };
        m.write("/etc/modules-load.d/berth-9p.conf", "9p\n9pnet_virtio\n");
        m
    }

    /// The host directory the guest sees at `/mnt/host`.
    pub fn share(&self) -> PathBuf {
        self.dir.path().join("share")
    }

    fn upper(&self) -> PathBuf {
        self.dir.path().join("upper")
    }

    fn disk(&self) -> PathBuf {
        self.dir.path().join("disk.raw")
    }

    /// Shares host `src` read-only at `dest` in the guest (9p, `readonly=on`).
    pub fn bind_ro(&mut self, src: &Path, dest: &str) {
        let tag = format!("ro{}", self.ro.len());
        self.ro.push((src.to_path_buf(), tag.clone()));
        self.fstab.push_str(&format!(
            "{tag} {dest} 9p trans=virtio,version=9p2000.L,msize=512000,ro 0 0\n"
        ));
        self.mkdirs(dest.trim_start_matches('/'));
    }

    fn mkdirs(&self, rel: &str) {
        let mut p = self.upper();
        for c in Path::new(rel).components() {
            p.push(c);
            if !p.exists() {
                std::fs::create_dir(&p).unwrap();
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
    }

    fn write(&self, guest_path: &str, text: &str) {
        let rel = guest_path.trim_start_matches('/');
        self.mkdirs(Path::new(rel).parent().unwrap().to_str().unwrap());
        std::fs::write(self.upper().join(rel), text).unwrap();
    }

    /// Installs host file `src` at `guest_path` with `mode` (before the first boot).
    pub fn install(&self, src: &Path, guest_path: &str, mode: u32) {
        assert_eq!(self.boots, 0, "install before the first boot");
        let rel = guest_path.trim_start_matches('/');
        self.mkdirs(Path::new(rel).parent().unwrap().to_str().unwrap());
        let dest = self.upper().join(rel);
        std::fs::copy(src, &dest)
            .unwrap_or_else(|e| panic!("copying {} into the guest: {e}", src.display()));
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// The ext4 disk (`mkfs.ext4 -d` of the overlay rootfs + upper) and the kernel.
    fn make_disk(&mut self, log: &Path) {
        self.write("/etc/fstab", &self.fstab.clone());
        let t0 = Instant::now();
        let d = self.dir.path();
        let script = r#"set -e
dir=$0 lower=$1 size=$2
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$dir/upper,workdir=$dir/work" "$dir/merged"
mkfs.ext4 -q -F -L berthroot -E root_owner=0:0 -d "$dir/merged" "$dir/disk.raw" "$size"
cp -L "$dir/merged/vmlinuz" "$dir/vmlinuz"
cp -L "$dir/merged/initrd.img" "$dir/initrd.img""#;
        let out = File::create(log).unwrap();
        let status = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "--", "unshare"])
            .args(["--mount", "--propagation", "private", "--"])
            .args(["/bin/sh", "-c", script])
            .arg(d)
            .arg(&self.lower)
            .arg(DISK_SIZE)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "making the guest disk failed ({status}); see {}",
            log.display()
        );
        self.disk_secs = t0.elapsed().as_secs_f64();
    }

    /// Boots the guest and waits until it powers off, at most `timeout` (then qemu is
    /// killed). The serial console goes to `logs/console-bootN.log`.
    pub fn boot(&mut self, timeout: Duration, logs: &Path) -> Boot {
        std::fs::create_dir_all(logs).unwrap();
        if self.boots == 0 {
            self.make_disk(&logs.join("disk.log"));
        }
        self.boots += 1;
        let console = logs.join(format!("console-boot{}.log", self.boots));
        let out = File::create(&console).unwrap();
        let d = self.dir.path();
        let mut c = Command::new("setpriv");
        c.args(["--pdeathsig", "KILL", "--", "qemu-system-x86_64"])
            .args(["-accel", "tcg", "-cpu", "max", "-m", MEM_MIB, "-smp", CPUS])
            .args(["-nographic", "-no-reboot", "-nic", "none"])
            .arg("-kernel")
            .arg(d.join("vmlinuz"))
            .arg("-initrd")
            .arg(d.join("initrd.img"))
            .args([
                "-append",
                "root=/dev/vda rw console=ttyS0 panic=-1 loglevel=4",
            ])
            .arg("-drive")
            .arg(format!(
                "file={},format=raw,if=virtio,cache=unsafe",
                self.disk().display()
            ))
            .arg("-virtfs")
            .arg(format!(
                "local,path={},mount_tag=hostshare,security_model=passthrough,id=hostshare",
                self.share().display()
            ));
        for (src, tag) in &self.ro {
            c.arg("-virtfs").arg(format!(
                "local,path={},mount_tag={tag},security_model=none,readonly=on,id={tag}",
                src.display()
            ));
        }
        let t0 = Instant::now();
        let mut child = c
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let ended = wait_or_kill(&mut child, t0 + timeout, &console, "qemu");
        Boot {
            index: self.boots,
            secs: t0.elapsed().as_secs_f64(),
            ended,
            console,
        }
    }
}
