//! System tests (issue 7): berth in a Debian 12 guest with systemd as PID 1, booted with
//! `systemd-nspawn -b` on every run. See tests/system/README.md.
//!
//! Each scenario gets its own guest (a writable layer over the cached root filesystem),
//! boots it once per phase (scenarios that reboot boot twice on the same layer), and
//! prints a table: scenario, check, pass/fail, seconds. Logs stay in
//! `target/system-logs/scenarioN/`. Without root, debootstrap, systemd-nspawn or a
//! bookworm mirror in apt's configuration each test prints one line and returns
//! (or fails under `BERTH_TEST_REQUIRE_ALL=1`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

mod common;
#[path = "system/harness.rs"]
mod harness;
#[path = "system/images.rs"]
mod images;
#[path = "system/vm.rs"]
mod qemu;

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

/// The update gate (issue 17): a soak that catches a version exiting 3 s after start,
/// one failing its health check, the failed digest not retried by `update --all` nor by
/// berth-update.service, an all-or-nothing group update, one killed with SIGKILL and
/// recovered by the next berth command.
#[test]
fn system_scenario_update_gate() {
    if !common::guest::require_guest() {
        return;
    }
    assert_passed(&run(&Scenario {
        id: "gate",
        script: include_str!("system/scenarios/gate.sh"),
        phases: 1,
        crun: false,
    }));
}

/// A rootless `--user` container under the user's own systemd (issue 6).
#[test]
fn system_scenario5_user() {
    if !common::guest::require_guest() {
        return;
    }
    assert_passed(&run(&Scenario {
        id: "5",
        script: include_str!("system/scenarios/scenario5.sh"),
        phases: 1,
        crun: false,
    }));
}

/// Health checks (issue 17): a Type=notify payload that never notifies, made ready by
/// its image's health check, with a unit ordered after it; an always failing check.
#[test]
fn system_scenario_health() {
    if !common::guest::require_guest() {
        return;
    }
    assert_passed(&run(&Scenario {
        id: "health",
        script: include_str!("system/scenarios/scenario_health.sh"),
        phases: 1,
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

    // Machine A: the package into its root and an offline apply, on the host; two boots.
    let bins = r.berth();
    let mut a = r.machine("", script, bins.clone(), false);
    r.offline(
        &a,
        "offline",
        "offline phase on the host: guest root mounted, not booted",
        &[],
    );
    r.boot(&mut a, "1");
    r.boot(&mut a, "2");
    r.collect(&a);

    // Machine B: berth only from the package, installed by the scenario in the guest.
    if let Binaries::Deb(deb) = bins {
        let mut b = r.machine("pkg", script, Binaries::None, false);
        std::fs::copy(&deb, b.share.join("berth.deb")).unwrap();
        r.boot(&mut b, "3");
        r.boot(&mut b, "4");
        r.collect(&b);
    } else {
        r.row(
            "live at boot with the .deb (berth-apply.service)",
            "skip",
            0.0,
            "no package (see the package row)",
        );
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

/// The update gate in a qemu (TCG) guest (`BERTH_TEST_VM=1`): the soak, health-gated
/// updates, the timer's run after a failure, a group update killed and recovered.
#[test]
fn system_vm_update_gate() {
    if !common::vm::require_vm() {
        return;
    }
    assert_passed(&qemu::run(&Scenario {
        id: "gate",
        script: include_str!("system/scenarios/gate.sh"),
        phases: 1,
        crun: false,
    }));
}

/// Health checks in a qemu (TCG) guest, under cgroup v2 (`BERTH_TEST_VM=1`).
#[test]
fn system_vm_scenario_health() {
    if !common::vm::require_vm() {
        return;
    }
    assert_passed(&qemu::run(&Scenario {
        id: "health",
        script: include_str!("system/scenarios/scenario_health.sh"),
        phases: 1,
        crun: false,
    }));
}

/// The boot benchmark (issue 16), run by `benches/boot.sh` (`make bench`), not by CI:
/// for each N of `$BENCH_BOOT_N` (default `1 20 100`), N Type=notify containers installed
/// offline into one guest, then `$BENCH_BOOT_ROUNDS` (default 3) rounds of three boots:
/// berth-run's units enabled, crun's twins of them (same unit text, drop-in and
/// bundle), and the same image installed with `--runtime crun` (berth-run becomes crun). The metrics land in `target/system-logs/scenarioboot-N/`.
#[test]
#[ignore = "a benchmark: benches/boot.sh runs it"]
fn bench_boot() {
    if !common::guest::require_guest() {
        return;
    }
    let ns = std::env::var("BENCH_BOOT_N").unwrap_or_else(|_| "1 20 100".into());
    let rounds: usize = std::env::var("BENCH_BOOT_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    for n in ns.split_whitespace() {
        let id: &'static str = Box::leak(format!("boot-{n}").into_boxed_str());
        let mut r = Run::new(id);
        let bins = r.berth();
        let mut g = r.machine(
            "",
            include_str!("system/scenarios/bench_boot.sh"),
            bins,
            true,
        );
        std::fs::write(g.share.join("bench-n"), n).unwrap();
        r.offline(
            &g,
            "install",
            "N containers installed on the host, offline",
            &[],
        );
        r.boot(&mut g, "warm");
        for k in 1..=rounds {
            r.boot(&mut g, &format!("berth{k}"));
            r.boot(&mut g, &format!("crun{k}"));
            r.boot(&mut g, &format!("xcrun{k}"));
        }
        r.collect(&g);
        assert_passed(&r.finish());
    }
}
