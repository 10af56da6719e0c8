//! Runs one scenario: a fresh [`Machine`] on the cached guest root filesystem, berth's
//! binaries installed into its writable layer, the scenario script and the images handed
//! in, one boot per phase (a later boot sees what the earlier ones wrote: a reboot), and
//! the result table built from what the guest wrote into the share.
//!
//! ```text
//! share (/mnt/host in the guest)            target/system-logs/scenarioN/  (kept)
//! ├── harness     run by berth-harness.service  console-bootN.log  nspawn's console
//! ├── lib.sh      sourced by the scenario       phaseN.log         the scenario's output
//! ├── scenario    scenarioN.sh                  journal.txt        the guest's journal, all boots
//! ├── phase       which phase this boot runs    results.tsv        one line per check
//! ├── budget      seconds for one phase         metrics.tsv        timings the guest measured
//! ├── tools/      crun + libyajl (scenario 1)   table.txt          the printed table
//! └── phaseN.rc, phaseN.log, results.tsv, metrics.tsv, journal-bootN.txt
//! ```

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::debs::extracted;
use crate::common::guest::{self, Ended, Machine};
use crate::images;

const HARNESS: &str = include_str!("scenarios/harness.sh");
const LIB: &str = include_str!("scenarios/lib.sh");

/// Seconds one phase may run inside the guest; the boot gets a minute more.
const PHASE_BUDGET: u64 = 240;

/// One scenario of issue 7.
pub struct Scenario {
    /// `1`, `2`, `3`.
    pub id: &'static str,
    /// The script run in the guest (`scenarios/scenarioN.sh`), once per phase.
    pub script: &'static str,
    /// How many boots: 2 for a scenario that reboots.
    pub phases: usize,
    /// Hand crun (from Debian's package, not installed in the guest) in for a comparison.
    pub crun: bool,
}

/// One line of the result table.
#[derive(Debug, Clone)]
pub struct Row {
    /// Scenario id.
    pub scenario: String,
    /// What was checked.
    pub check: String,
    /// pass | fail | missing | skip.
    pub status: String,
    /// Seconds it took.
    pub secs: f64,
    /// Why it failed, was skipped or is missing.
    pub detail: String,
}

/// `target/system-logs`.
pub fn logs_root() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("system-logs")
}

fn write_exec(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// crun and the one library the guest lacks (libyajl2), from Debian's packages.
fn hand_in_crun(share: &Path) {
    let tools = share.join("tools");
    std::fs::create_dir_all(tools.join("lib")).unwrap();
    let crun = extracted("crun");
    std::fs::copy(crun.join("usr/bin/crun"), tools.join("crun")).unwrap();
    let yajl = extracted("libyajl2");
    let lib = ["usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu"]
        .iter()
        .map(|d| yajl.join(d).join("libyajl.so.2"))
        .find(|p| p.exists())
        .expect("libyajl.so.2 in libyajl2");
    std::fs::copy(lib, tools.join("lib/libyajl.so.2")).unwrap();
}

fn parse_rows(text: &str) -> Vec<Row> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.splitn(5, '\t').collect();
            (f.len() >= 4).then(|| Row {
                scenario: f[0].into(),
                check: f[1].into(),
                status: f[2].into(),
                secs: f[3].parse().unwrap_or(0.0),
                detail: f.get(4).copied().unwrap_or("").into(),
            })
        })
        .collect()
}

/// The table as printed.
pub fn table(rows: &[Row], metrics: &str) -> String {
    let w = rows
        .iter()
        .map(|r| r.check.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut t = format!(
        "{:<8} {:<w$} {:<7} {:>8}\n",
        "scenario", "check", "result", "seconds"
    );
    for r in rows {
        let _ = writeln!(
            t,
            "{:<8} {:<w$} {:<7} {:>8.2}{}",
            r.scenario,
            r.check,
            r.status,
            r.secs,
            if r.status == "pass" {
                String::new()
            } else {
                format!("  {}", r.detail)
            }
        );
    }
    for m in metrics.lines() {
        let f: Vec<&str> = m.split('\t').collect();
        if f.len() == 4 {
            let _ = writeln!(t, "{:<8} metric {} = {} {}", f[0], f[1], f[2], f[3]);
        }
    }
    t
}

/// Runs `sc` and returns its rows; the caller asserts.
pub fn run(sc: &Scenario) -> Vec<Row> {
    let logs = logs_root().join(format!("scenario{}", sc.id));
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs).unwrap();
    let mut rows = vec![];
    let row = |check: &str, ok: bool, secs: f64, detail: String| Row {
        scenario: sc.id.into(),
        check: check.into(),
        status: if ok { "pass" } else { "fail" }.into(),
        secs,
        detail,
    };

    let t0 = Instant::now();
    let rootfs = guest::rootfs(&[]);
    rows.push(row(
        if rootfs.build_secs > 0.0 {
            "guest rootfs built (debootstrap)"
        } else {
            "guest rootfs from cache"
        },
        true,
        t0.elapsed().as_secs_f64(),
        String::new(),
    ));
    let t0 = Instant::now();
    let archives = images::archives();
    rows.push(row(
        "images built (oci-archive)",
        true,
        t0.elapsed().as_secs_f64(),
        String::new(),
    ));

    let name = format!("berth-s{}-{}", sc.id, std::process::id());
    let mut m = Machine::new(&name, &rootfs);
    m.bind_ro(archives, images::GUEST_DIR);
    // The binaries cargo built for this test: release ones under `make check-system`.
    m.install(
        Path::new(env!("CARGO_BIN_EXE_berth")),
        "/usr/bin/berth",
        0o755,
    );
    m.install(
        Path::new(env!("CARGO_BIN_EXE_berth-run")),
        "/usr/bin/berth-run",
        0o755,
    );
    let share = m.share();
    write_exec(&share.join("harness"), HARNESS);
    std::fs::write(share.join("lib.sh"), LIB).unwrap();
    write_exec(&share.join("scenario"), sc.script);
    std::fs::write(share.join("budget"), PHASE_BUDGET.to_string()).unwrap();
    std::fs::write(share.join("scenario-id"), sc.id).unwrap();
    if sc.crun {
        hand_in_crun(&share);
    }

    for phase in 1..=sc.phases {
        std::fs::write(share.join("phase"), phase.to_string()).unwrap();
        let boot = m.boot(Duration::from_secs(PHASE_BUDGET + 60), &logs);
        let rc = std::fs::read_to_string(share.join(format!("phase{phase}.rc")));
        let (ok, detail) = match (&boot.ended, &rc) {
            (Ended::Exited(_), Ok(_)) => (true, String::new()),
            (Ended::TimedOut, _) => (false, "guest killed at the timeout".to_string()),
            (Ended::Exited(c), Err(_)) => (
                false,
                format!("nspawn exited {c} before the harness wrote a result"),
            ),
        };
        let what = if phase == 1 {
            "boot 1, phase 1, power off".to_string()
        } else {
            format!("reboot: boot {phase}, phase {phase}, power off")
        };
        rows.push(row(&what, ok, boot.secs, detail));
    }

    m.export_journal(&logs.join("journal.txt"));
    for e in std::fs::read_dir(&share).unwrap().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.ends_with(".log")
            || n.ends_with(".tsv")
            || n.ends_with(".rc")
            || n.starts_with("journal-")
        {
            let _ = std::fs::copy(e.path(), logs.join(&n));
        }
    }
    let results = std::fs::read_to_string(share.join("results.tsv")).unwrap_or_default();
    let metrics = std::fs::read_to_string(share.join("metrics.tsv")).unwrap_or_default();
    rows.append(&mut parse_rows(&results));

    let t = table(&rows, &metrics);
    std::fs::write(logs.join("table.txt"), &t).unwrap();
    // Straight to stderr (not captured by the test harness): the table shows on every run.
    let _ = write!(
        std::io::stderr(),
        "\nsystem scenario {} (logs: {}):\n{t}",
        sc.id,
        logs.display()
    );
    rows
}

/// Panics naming every failed row.
pub fn assert_passed(rows: &[Row]) {
    let failed: Vec<String> = rows
        .iter()
        .filter(|r| r.status == "fail")
        .map(|r| format!("scenario {}: {}: {}", r.scenario, r.check, r.detail))
        .collect();
    assert!(
        failed.is_empty(),
        "{} check(s) failed (logs under {}):\n{}",
        failed.len(),
        logs_root().display(),
        failed.join("\n")
    );
}
