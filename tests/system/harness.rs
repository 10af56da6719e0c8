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

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
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

/// Runs `sc` (one machine, `sc.phases` boots) and returns its rows; the caller asserts.
pub fn run(sc: &Scenario) -> Vec<Row> {
    let mut r = Run::new(sc.id);
    let bins = r.berth();
    let mut g = r.machine("", sc.script, bins, sc.crun);
    for phase in 1..=sc.phases {
        r.boot(&mut g, &phase.to_string());
    }
    r.collect(&g);
    r.finish()
}

/// How berth gets into a guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binaries {
    /// berth's .deb, installed with `dpkg -i` before the first phase (by harness.sh in a
    /// booted guest, or by [`Run::offline`] into the root before it first boots).
    Deb(PathBuf),
    /// The binaries cargo built for this test, copied into the writable layer's
    /// `/usr/bin`: only when there is no package (a developer's run without `make deb`).
    Built,
    /// None: the scenario installs a package itself (handed in through the share).
    None,
}

/// One scenario's run: its log directory and rows, over one or more machines.
pub struct Run {
    /// `1`, `2`, …
    pub id: &'static str,
    /// `target/system-logs/scenarioN/`.
    pub logs: PathBuf,
    /// The table so far.
    pub rows: Vec<Row>,
    metrics: String,
    rootfs: guest::Rootfs,
    /// The image archives (bound at [`images::GUEST_DIR`]).
    pub archives: &'static Path,
}

/// A machine of a [`Run`], its share set up.
pub struct Guest {
    /// The machine.
    pub m: Machine,
    /// Where its logs go: the run's log directory or a subdirectory of it.
    pub logs: PathBuf,
    /// The host directory it sees at `/mnt/host`.
    pub share: PathBuf,
    boots: usize,
}

/// The host side of [`Run::offline`]: the guest's view of the paths, set up in the
/// private mount namespace the root filesystem is mounted in (`$R`): the share at
/// /mnt/host, the images at /mnt/images, berth and berth-run at /usr/bin (a read-only
/// overlay of the host's /usr/bin) — where the guest and the package have them —, and the
/// full binary berth-core beside them (the front looks there first).
const OFFLINE: &str = r#"set -e
mount -t tmpfs -o mode=0755 tmpfs /mnt
mkdir /mnt/host /mnt/images /mnt/bin /mnt/tmp /mnt/pkg
export TMPDIR=/mnt/tmp
mount --bind "$SHARE" /mnt/host
mount --bind "$ARCHIVES" /mnt/images
mount -o remount,bind,ro /mnt/images
if [ -n "$BERTH_DEB" ]; then
  # The image builder's way: the package into the root being built (its maintainer
  # scripts run chrooted; nothing starts), and the builder runs the package's berth.
  t0=$(date +%s.%N)
  if dpkg --root="$R" -i "$BERTH_DEB" > /mnt/host/dpkg-install.log 2>&1; then st=pass d=; else st=fail d="see dpkg-install.log"; fi
  printf '%s\tdpkg --root: berth.deb into the guest root\t%s\t%s\t%s\n' "$(cat /mnt/host/scenario-id)" "$st" \
    "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')" "$d" >> /mnt/host/results.tsv
  dpkg-deb -x "$BERTH_DEB" /mnt/pkg
  cp /mnt/pkg/usr/bin/berth /mnt/pkg/usr/bin/berth-run /mnt/pkg/usr/libexec/berth/berth-core /mnt/bin/
else
  cp "$BERTH_BUILT" /mnt/bin/berth
  cp "$(dirname "$BERTH_BUILT")/berth-run" /mnt/bin/berth-run
  cp "$(dirname "$BERTH_BUILT")/berth-core" /mnt/bin/berth-core
fi
mount -t overlay overlay -o lowerdir=/mnt/bin:/usr/bin /usr/bin
cd /mnt/host
set +e
timeout --kill-after=10 "$BUDGET" bash /mnt/host/scenario "$PHASE" > "/mnt/host/phase$PHASE.log" 2>&1
rc=$?
[ $rc = 124 ] && echo "offline phase $PHASE timed out after ${BUDGET}s" >> "/mnt/host/phase$PHASE.log"
exit $rc"#;

impl Run {
    /// A run of scenario `id`: an empty log directory, the guest root filesystem and the
    /// images (one row each).
    pub fn new(id: &'static str) -> Run {
        let t0 = Instant::now();
        let rootfs = guest::rootfs(&[]);
        let rootfs_secs = t0.elapsed().as_secs_f64();
        let what = if rootfs.build_secs > 0.0 {
            "guest rootfs built (debootstrap)"
        } else {
            "guest rootfs from cache"
        };
        Run::new_on(id, rootfs, rootfs_secs, what)
    }

    /// Adds a row (status pass | fail | missing | skip).
    pub fn row(&mut self, check: &str, status: &str, secs: f64, detail: &str) {
        self.rows.push(Row {
            scenario: self.id.into(),
            check: check.into(),
            status: status.into(),
            secs,
            detail: detail.into(),
        });
    }

    /// How berth gets into this run's guests: the package (one row saying where it came
    /// from), or cargo's binaries when there is none and that is allowed (see [`package`]).
    pub fn berth(&mut self) -> Binaries {
        let t0 = Instant::now();
        match package() {
            Ok((deb, how)) => {
                self.row(
                    &format!("package: {how}"),
                    "pass",
                    t0.elapsed().as_secs_f64(),
                    &deb.display().to_string(),
                );
                Binaries::Deb(deb)
            }
            Err((status, why)) => {
                self.row(
                    "package (else cargo's binaries)",
                    status,
                    t0.elapsed().as_secs_f64(),
                    &why,
                );
                Binaries::Built
            }
        }
    }

    /// A fresh machine running `script`; `tag` names it (and its log subdirectory, when
    /// not empty).
    pub fn machine(&self, tag: &str, script: &str, bins: Binaries, crun: bool) -> Guest {
        let name = if tag.is_empty() {
            format!("berth-s{}-{}", self.id, std::process::id())
        } else {
            format!("berth-s{}{tag}-{}", self.id, std::process::id())
        };
        let logs = if tag.is_empty() {
            self.logs.clone()
        } else {
            self.logs.join(tag)
        };
        std::fs::create_dir_all(&logs).unwrap();
        let mut m = Machine::new(&name, &self.rootfs);
        m.bind_ro(self.archives, images::GUEST_DIR);
        let share = m.share();
        if let Binaries::Deb(deb) = &bins {
            std::fs::copy(deb, share.join("berth.deb")).unwrap();
            std::fs::write(share.join("install-deb"), "").unwrap();
        }
        if bins == Binaries::Built {
            for (src, dst, mode) in built_files() {
                m.install(&src, &dst, mode);
            }
        }
        self.fill_share(&share, script, crun, PHASE_BUDGET);
        Guest {
            m,
            logs,
            share,
            boots: 0,
        }
    }

    /// Boots `g` once to run the script's `phase`; one row (the boot ended by the
    /// harness powering off, with a result).
    pub fn boot(&mut self, g: &mut Guest, phase: &str) {
        g.boots += 1;
        std::fs::write(g.share.join("phase"), phase).unwrap();
        let boot = g.m.boot(Duration::from_secs(PHASE_BUDGET + 60), &g.logs);
        let rc = std::fs::read_to_string(g.share.join(format!("phase{phase}.rc")));
        let (ok, detail) = match (&boot.ended, &rc) {
            (Ended::Exited(_), Ok(_)) => (true, String::new()),
            (Ended::TimedOut, _) => (false, "guest killed at the timeout".to_string()),
            (Ended::Exited(c), Err(_)) => (
                false,
                format!("nspawn exited {c} before the harness wrote a result"),
            ),
        };
        let what = if g.boots == 1 {
            format!("boot 1, phase {phase}, power off")
        } else {
            format!("reboot: boot {}, phase {phase}, power off", g.boots)
        };
        self.row(&what, if ok { "pass" } else { "fail" }, boot.secs, &detail);
    }

    /// Runs the script's `phase` on the host, the guest not booted, with its root
    /// filesystem at `$R` and the guest's paths (see [`OFFLINE`]); `env` is passed on.
    /// One row: the phase ran to its end (its checks are rows of their own).
    pub fn offline(&mut self, g: &Guest, phase: &str, what: &str, env: &[(&str, &OsStr)]) {
        let t0 = Instant::now();
        let mut all: Vec<(&str, &OsStr)> = vec![
            ("SHARE", g.share.as_os_str()),
            ("ARCHIVES", self.archives.as_os_str()),
            ("BERTH_BUILT", OsStr::new(env!("CARGO_BIN_EXE_berth"))),
            ("PHASE", OsStr::new(phase)),
        ];
        let deb = g.share.join("berth.deb");
        if g.share.join("install-deb").exists() {
            all.push(("BERTH_DEB", deb.as_os_str()));
        }
        let budget = PHASE_BUDGET.to_string();
        all.push(("BUDGET", OsStr::new(&budget)));
        all.extend_from_slice(env);
        let rc = g.m.offline(
            &[OsStr::new("/bin/sh"), OsStr::new("-c"), OsStr::new(OFFLINE)],
            &all,
            Duration::from_secs(PHASE_BUDGET + 60),
            &g.logs.join(format!("offline-{phase}.log")),
        );
        let _ = std::fs::write(
            g.share.join(format!("phase{phase}.rc")),
            rc.map_or("timeout\n".to_string(), |c| format!("{c}\n")),
        );
        let (status, detail) = match rc {
            Some(0) | Some(1) if g.share.join(format!("phase{phase}.log")).exists() => {
                ("pass", String::new())
            }
            Some(c) => ("fail", format!("exited {c}; see offline-{phase}.log")),
            None => ("fail", "killed at the timeout".to_string()),
        };
        self.row(what, status, t0.elapsed().as_secs_f64(), &detail);
    }

    /// Takes `g`'s journal, logs, results and metrics.
    pub fn collect(&mut self, g: &Guest) {
        g.m.export_journal(&g.logs.join("journal.txt"));
        for e in std::fs::read_dir(&g.share).unwrap().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.ends_with(".log")
                || n.ends_with(".tsv")
                || n.ends_with(".rc")
                || n.starts_with("journal-")
            {
                let _ = std::fs::copy(e.path(), g.logs.join(&n));
            }
        }
        let results = std::fs::read_to_string(g.share.join("results.tsv")).unwrap_or_default();
        self.rows.append(&mut parse_rows(&results));
        self.metrics
            .push_str(&std::fs::read_to_string(g.share.join("metrics.tsv")).unwrap_or_default());
    }

    /// Writes and prints the table; returns the rows for [`assert_passed`].
    pub fn finish(self) -> Vec<Row> {
        let t = table(&self.rows, &self.metrics);
        std::fs::write(self.logs.join("table.txt"), &t).unwrap();
        // Straight to stderr (not captured by the test harness): the table shows on every run.
        let _ = write!(
            std::io::stderr(),
            "\nsystem scenario {} (logs: {}):\n{t}",
            self.id,
            self.logs.display()
        );
        self.rows
    }
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

/// [`package`]'s answer.
pub type Package = Result<(PathBuf, String), (&'static str, String)>;

/// The .deb to install and how it was found: `$BERTH_TEST_DEB` as it is, or what
/// `make deb` writes (target/debian/berth_VERSION_ARCH.deb in the source tree) when it is
/// newer than the sources. A missing or older one is built with `make deb` under
/// `BERTH_TEST_REQUIRE_ALL=1` (CI: `make check` runs the system tests before the
/// packaging) or `BERTH_TEST_BUILD_DEB=1`; otherwise the package part is skipped.
/// `Err((status, why))`: skip, or fail (the build failed, or skipping is not allowed).
pub fn package() -> Package {
    // Scenarios run in parallel: one lookup (and at most one `make deb`) for all.
    static ONCE: std::sync::OnceLock<Package> = std::sync::OnceLock::new();
    ONCE.get_or_init(find_package).clone()
}

fn find_package() -> Package {
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
    let log = logs_root().join("make-deb.log");
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

/// What the qemu variant (tests/system/vm.rs) needs of a [`Run`]: its own root
/// filesystem, the share filled as [`Run::machine`] fills it, and the results taken as
/// [`Run::collect`] takes them, with the guest's rows relabelled (`1` → `1q`).
impl Run {
    /// A run `id` on `rootfs` (built in `rootfs_secs`); rows as [`Run::new`] writes them.
    pub fn new_on(id: &'static str, rootfs: guest::Rootfs, rootfs_secs: f64, what: &str) -> Run {
        let logs = logs_root().join(format!("scenario{id}"));
        let _ = std::fs::remove_dir_all(&logs);
        std::fs::create_dir_all(&logs).unwrap();
        let t0 = Instant::now();
        let archives = images::archives();
        let images_secs = t0.elapsed().as_secs_f64();
        let mut r = Run {
            id,
            logs,
            rows: vec![],
            metrics: String::new(),
            rootfs,
            archives,
        };
        r.row(what, "pass", rootfs_secs, "");
        r.row("images built (oci-archive)", "pass", images_secs, "");
        r
    }

    /// Writes the harness, lib.sh, `script`, the phase budget and the scenario id into
    /// `share`, and crun when asked.
    pub fn fill_share(&self, share: &Path, script: &str, crun: bool, budget: u64) {
        write_exec(&share.join("harness"), HARNESS);
        std::fs::write(share.join("lib.sh"), LIB).unwrap();
        write_exec(&share.join("scenario"), script);
        std::fs::write(share.join("budget"), budget.to_string()).unwrap();
        std::fs::write(share.join("scenario-id"), self.id).unwrap();
        if crun {
            hand_in_crun(share);
        }
    }

    /// Copies the share's logs, results and metrics into `logs` (the boots' journals
    /// into `journal.txt`) and adds the rows and metrics, their scenario set to this
    /// run's id.
    pub fn collect_share(&mut self, share: &Path, logs: &Path) {
        let mut names: Vec<String> = std::fs::read_dir(share)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut journal = Vec::new();
        for n in &names {
            if n.ends_with(".log") || n.ends_with(".tsv") || n.ends_with(".rc") {
                let _ = std::fs::copy(share.join(n), logs.join(n));
            } else if n.starts_with("journal-") {
                journal.extend(std::fs::read(share.join(n)).unwrap_or_default());
            }
        }
        std::fs::write(logs.join("journal.txt"), journal).unwrap();
        let results = std::fs::read_to_string(share.join("results.tsv")).unwrap_or_default();
        for mut row in parse_rows(&results) {
            row.scenario = self.id.into();
            self.rows.push(row);
        }
        let metrics = std::fs::read_to_string(share.join("metrics.tsv")).unwrap_or_default();
        for m in metrics.lines() {
            let rest = m.split_once('\t').map_or(m, |(_, r)| r);
            let _ = writeln!(self.metrics, "{}\t{rest}", self.id);
        }
    }
}

/// What a guest that runs cargo's binaries (not the .deb) gets, where the
/// package puts it (`make install`): `(source, guest path, mode)`.
pub fn built_files() -> Vec<(PathBuf, String, u32)> {
    let mut out = vec![
        (env!("CARGO_BIN_EXE_berth"), "/usr/bin/berth"),
        (env!("CARGO_BIN_EXE_berth-run"), "/usr/bin/berth-run"),
        (
            env!("CARGO_BIN_EXE_berth-core"),
            "/usr/libexec/berth/berth-core",
        ),
    ]
    .into_iter()
    .map(|(src, dst)| (PathBuf::from(src), dst.to_string(), 0o755))
    .collect::<Vec<_>>();
    let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("units");
    for u in ["berth-update.service", "berth-update.timer"] {
        out.push((units.join(u), format!("/usr/lib/systemd/system/{u}"), 0o644));
    }
    out
}
