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

use harness::{assert_passed, run, Scenario};

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
