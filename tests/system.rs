//! System tests (issue 7): berth in a Debian 12 guest with systemd as PID 1, booted with
//! `systemd-nspawn -b` on every run. See tests/system/README.md.
//!
//! Each scenario gets its own guest (a writable layer over the cached root filesystem),
//! boots it once per phase (scenarios that reboot boot twice on the same layer), and
//! prints a table: scenario, check, pass/fail, seconds. Logs stay in
//! `target/system-logs/scenarioN/`. Without root, debootstrap, systemd-nspawn or a
//! bookworm mirror in apt's configuration each test prints one line and returns
//! (or fails under `BERTH_TEST_REQUIRE_ALL=1`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "system/harness.rs"]
mod harness;
#[path = "system/images.rs"]
mod images;
#[path = "system/vm.rs"]
mod qemu;

use std::path::{Path, PathBuf};
use std::process::Command;

use harness::{assert_passed, run, Binaries, Run, Scenario};

/// etcd → flanneld stand-in → engine at early boot, across a reboot.
#[test]
fn system_scenario1_cluster_bootstrap() {
    if !common::guest::require_guest() {
        return;
    }
    assert_passed(&run(&Scenario {
        id: "1",
        script: include_str!("system/scenarios/scenario1.sh"),
        phases: 2,
        crun: true,
    }));
}

/// httpd (lighttpd) as a socket-activated systemctl service.
#[test]
fn system_scenario2_httpd_service() {
    if !common::guest::require_guest() {
        return;
    }
    assert_passed(&run(&Scenario {
        id: "2",
        script: include_str!("system/scenarios/scenario2.sh"),
        phases: 1,
        crun: false,
    }));
}

/// update, automatic rollback, rollback after a reboot, uninstall.
#[test]
fn system_scenario3_lifecycle() {
    if !common::guest::require_guest() {
        return;
    }
    assert_passed(&run(&Scenario {
        id: "3",
        script: include_str!("system/scenarios/scenario3.sh"),
        phases: 2,
        crun: false,
    }));
}

/// Provisioning from a manifest (issue 8): `berth --root` apply into the guest's root
/// filesystem before its first boot, edits applied in the booted guest, and a guest
/// with the .deb installed that provisions itself at boot (berth-apply.service).
#[test]
fn system_scenario4_provisioning() {
    if !common::guest::require_guest() {
        return;
    }
    let script = include_str!("system/scenarios/scenario4.sh");
    let mut r = Run::new("4");

    // Machine A: offline apply on the host, then two boots.
    let mut a = r.machine("", script, Binaries::Built, false);
    r.offline(
        &a,
        "offline",
        "offline phase on the host: guest root mounted, not booted",
        &[],
    );
    r.boot(&mut a, "1");
    r.boot(&mut a, "2");
    r.collect(&a);

    // Machine B: berth from the package only.
    let t0 = std::time::Instant::now();
    match package() {
        Ok((deb, how)) => {
            let secs = t0.elapsed().as_secs_f64();
            let mut b = r.machine("pkg", script, Binaries::None, false);
            std::fs::copy(&deb, b.share.join("berth.deb")).unwrap();
            r.row(
                &format!("package: {how}"),
                "pass",
                secs,
                &deb.display().to_string(),
            );
            r.boot(&mut b, "3");
            r.boot(&mut b, "4");
            r.collect(&b);
        }
        Err((status, why)) => {
            eprintln!("system_scenario4: the package part: {status}: {why}");
            r.row(
                "live at boot with the .deb (berth-apply.service)",
                status,
                t0.elapsed().as_secs_f64(),
                &why,
            );
        }
    }
    assert_passed(&r.finish());
}

/// Scenario 1 in a qemu (TCG) guest: own kernel, cgroup v2 (`BERTH_TEST_VM=1`).
#[test]
fn system_vm_scenario1_cluster_bootstrap() {
    if !common::vm::require_vm() {
        return;
    }
    assert_passed(&qemu::run(&Scenario {
        id: "1",
        script: include_str!("system/scenarios/scenario1.sh"),
        phases: 2,
        crun: true,
    }));
}

/// Scenario 2 in a qemu (TCG) guest, where MemoryMax= is enforced (`BERTH_TEST_VM=1`).
#[test]
fn system_vm_scenario2_httpd_service() {
    if !common::vm::require_vm() {
        return;
    }
    assert_passed(&qemu::run(&Scenario {
        id: "2",
        script: include_str!("system/scenarios/scenario2.sh"),
        phases: 1,
        crun: false,
    }));
}

/// Scenario 3 in a qemu (TCG) guest (`BERTH_TEST_VM=1`).
#[test]
fn system_vm_scenario3_lifecycle() {
    if !common::vm::require_vm() {
        return;
    }
    assert_passed(&qemu::run(&Scenario {
        id: "3",
        script: include_str!("system/scenarios/scenario3.sh"),
        phases: 2,
        crun: false,
    }));
}

/// The .deb to install and how it was found: `$BERTH_TEST_DEB` as it is, or what
/// `make deb` writes (target/debian/berth_VERSION_ARCH.deb in the source tree) when it is
/// newer than the sources. A missing or older one is built with `make deb` under
/// `BERTH_TEST_REQUIRE_ALL=1` (CI: `make check` runs the system tests before the
/// packaging) or `BERTH_TEST_BUILD_DEB=1`; otherwise the package part is skipped.
/// `Err((status, why))`: skip, or fail (the build failed, or skipping is not allowed).
fn package() -> Result<(PathBuf, String), (&'static str, String)> {
    if let Some(p) = std::env::var_os("BERTH_TEST_DEB") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok((p, "the .deb from BERTH_TEST_DEB".into()))
        } else {
            Err((
                "fail",
                format!("BERTH_TEST_DEB={}: no such file", p.display()),
            ))
        };
    }
    let top = Path::new(env!("CARGO_MANIFEST_DIR"));
    let arch = Command::new("dpkg")
        .arg("--print-architecture")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "amd64".into());
    let deb = top.join(format!(
        "target/debian/berth_{}_{arch}.deb",
        env!("CARGO_PKG_VERSION")
    ));
    let built = std::fs::metadata(&deb).and_then(|m| m.modified()).ok();
    let sources = [
        "src",
        "units",
        "packaging",
        "templates",
        "Cargo.toml",
        "Cargo.lock",
        "Makefile",
    ]
    .iter()
    .filter_map(|p| newest(&top.join(p)))
    .max();
    let why = match (built, sources) {
        (Some(b), Some(s)) if b >= s => return Ok((deb, "make deb's .deb".into())),
        (Some(_), _) => format!("{} is older than the sources", deb.display()),
        (None, _) => format!("no {}", deb.display()),
    };
    let build = ["BERTH_TEST_REQUIRE_ALL", "BERTH_TEST_BUILD_DEB"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|v| v == "1"));
    if !build {
        return Err((
            "skip",
            format!("{why}: run `make deb` (or set BERTH_TEST_BUILD_DEB=1 or BERTH_TEST_DEB)"),
        ));
    }
    let log = harness::logs_root().join("scenario4-make-deb.log");
    let out = std::fs::File::create(&log).unwrap();
    let status = Command::new("make")
        .arg("deb")
        .current_dir(top)
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .status();
    match status {
        Ok(s) if s.success() && deb.is_file() => Ok((deb, format!("built by make deb ({why})"))),
        Ok(s) => Err((
            "fail",
            format!("{why}; make deb: {s}; see {}", log.display()),
        )),
        Err(e) => Err(("fail", format!("{why}; make deb: {e}"))),
    }
}

/// The newest modification time of `path` or anything below it.
fn newest(path: &Path) -> Option<std::time::SystemTime> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    let mut t = meta.modified().ok()?;
    if meta.is_dir() {
        for e in std::fs::read_dir(path).ok()?.flatten() {
            if let Some(u) = newest(&e.path()) {
                t = t.max(u);
            }
        }
    }
    Some(t)
}
