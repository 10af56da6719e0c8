//! The qemu (TCG) variant of the system scenarios: the same scripts and harness, the
//! guest booted with its own kernel (cgroup v2 with every controller) by
//! [`crate::common::vm::VmMachine`]. Rows are labelled `Nq`; logs go to
//! `target/system-logs/scenarioNq/`. Opt-in: `BERTH_TEST_VM=1` (`make check-vm`).

use std::time::{Duration, Instant};

use crate::common::guest::Ended;
use crate::common::vm::{self, VmMachine};
use crate::harness::{Row, Run, Scenario};
use crate::images;

/// Seconds one phase may run inside the qemu guest (TCG is 10–20× slower than the
/// host); the boot gets this plus [`BOOT_EXTRA`].
const PHASE_BUDGET: u64 = 600;
/// What lib.sh multiplies the scripts' wall-clock limits by (`stop < 2 s` …): TCG.
const SLOWDOWN: &str = "3";
/// Boot to multi-user and power off under TCG (about 22 s each), with room to spare.
const BOOT_EXTRA: u64 = 180;

/// Runs `sc` in one qemu machine (`sc.phases` boots of the same disk).
pub fn run(sc: &Scenario) -> Vec<Row> {
    let id: &'static str = Box::leak(format!("{}q", sc.id).into_boxed_str());
    let t0 = Instant::now();
    let rootfs = vm::rootfs();
    let secs = t0.elapsed().as_secs_f64();
    let what = if rootfs.build_secs > 0.0 {
        "qemu guest rootfs built (debootstrap + kernel)"
    } else {
        "qemu guest rootfs from cache"
    };
    let mut r = Run::new_on(id, rootfs.clone(), secs, what);
    let logs = r.logs.clone();
    let mut m = VmMachine::new(&format!("berth-s{id}-{}", std::process::id()), &rootfs);
    m.bind_ro(r.archives, images::GUEST_DIR);
    for (src, dst, mode) in super::harness::built_files() {
        m.install(&src, &dst, mode);
    }
    let share = m.share();
    r.fill_share(&share, sc.script, sc.crun, PHASE_BUDGET);
    std::fs::write(share.join("slowdown"), SLOWDOWN).unwrap();
    for phase in 1..=sc.phases {
        std::fs::write(share.join("phase"), phase.to_string()).unwrap();
        let boot = m.boot(Duration::from_secs(PHASE_BUDGET + BOOT_EXTRA), &logs);
        if phase == 1 {
            r.row(
                "qemu disk made (mkfs.ext4 -d rootfs + berth)",
                "pass",
                m.disk_secs,
                "",
            );
        }
        let rc = std::fs::read_to_string(share.join(format!("phase{phase}.rc")));
        let (ok, detail) = match (&boot.ended, &rc) {
            (Ended::Exited(_), Ok(_)) => (true, String::new()),
            (Ended::TimedOut, _) => (false, "qemu killed at the timeout".to_string()),
            (Ended::Exited(c), Err(_)) => (
                false,
                format!(
                    "qemu exited {c} before the harness wrote a result; see {}",
                    boot.console.display()
                ),
            ),
        };
        let what = if phase == 1 {
            format!("qemu boot 1, phase {phase}, power off")
        } else {
            format!("qemu reboot: boot {phase}, phase {phase}, power off")
        };
        r.row(&what, if ok { "pass" } else { "fail" }, boot.secs, &detail);
    }
    r.collect_share(&share, &logs);
    r.finish()
}
