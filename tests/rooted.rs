//! `--root R` whose own symlinks point out of it: berth resolves every
//! path inside R (as systemd's `--root` does), so a link planted at any
//! level it writes (hostfs destinations, the unit and tmpfiles directories,
//! `var/lib`, the journal) either leads to a place inside R or is refused
//! with an error naming it; nothing outside R changes. Offline installs
//! into temporary roots, each beside a marker tree that is snapshotted
//! before and after.
//!
//! Needs root; without it each test prints one line and returns (or fails
//! under `BERTH_TEST_REQUIRE_ALL=1`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use common::deploy::{layout_one, snapshot};
use common::oci::{Compression, Image, Layer};
use common::{require_root, Berth};

const TOOL: &str = "#!/bin/sh\necho tool\n";

/// An image with a hostfs file `/opt/app/tool`, a hostfs file
/// `/usr/local/bin/helper` (both `tool`) and a tmpfiles line; berth's
/// default unit.
fn image() -> Image {
    image_with(TOOL)
}

fn image_with(tool: &str) -> Image {
    let layer = Layer::new()
        .dir("usr", 0o755)
        .dir("usr/bin", 0o755)
        .file("usr/bin/app", "#!/bin/sh\n", 0o755)
        .dir("exports", 0o755)
        .file(
            "exports/tmpfiles.template",
            "d ${STATE_DIRECTORY}/${NAME} 0700 root root - -\n",
            0o644,
        )
        .dir("exports/hostfs", 0o755)
        .dir("exports/hostfs/opt", 0o755)
        .dir("exports/hostfs/opt/app", 0o755)
        .file("exports/hostfs/opt/app/tool", tool, 0o755)
        .dir("exports/hostfs/usr", 0o755)
        .dir("exports/hostfs/usr/local", 0o755)
        .dir("exports/hostfs/usr/local/bin", 0o755)
        .file("exports/hostfs/usr/local/bin/helper", tool, 0o755)
        .build(Compression::Gzip);
    Image::new(vec![layer]).cmd(&["/usr/bin/app"])
}

/// A berth whose root sits beside `outside`, a marker tree nothing may change.
struct Setup {
    b: Berth,
    root: PathBuf,
    outside: PathBuf,
    reference: String,
    _keep: tempfile::TempDir,
}

fn setup() -> Setup {
    let (reference, keep) = layout_one(&image());
    let b = Berth::new();
    let root = b.root();
    let outside = b.dir().join("outside");
    for d in ["etc/systemd/system", "etc/tmpfiles.d", "var/lib", "opt"] {
        std::fs::create_dir_all(outside.join(d)).unwrap();
    }
    std::fs::write(outside.join("etc/marker"), "m").unwrap();
    Setup {
        b,
        root,
        outside,
        reference,
        _keep: keep,
    }
}

impl Setup {
    /// Plants the symlink `R/at -> target` (parents made).
    fn plant(&self, at: &str, target: impl AsRef<Path>) {
        let p = self.root.join(at);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        symlink(target, p).unwrap();
    }

    fn install(&self) -> common::berth::Run {
        self.b.run(&["install", "--name", "app", &self.reference])
    }

    fn outside_snapshot(&self) -> BTreeMap<String, String> {
        snapshot(&self.outside)
    }
}

/// A link at `at` that would lead out of R if followed on the host, and
/// whose target does not exist inside R: absolute to the marker tree, or
/// relative, climbing out of R.
fn escaping(s: &Setup, at: &str, absolute: bool) -> PathBuf {
    let depth = at.matches('/').count() + 1;
    if absolute {
        s.outside.join(at)
    } else {
        PathBuf::from(format!("{}outside/{at}", "../".repeat(depth)))
    }
}

/// R without berth's own data directory and the directories above it (the
/// pull makes them and fills the store first).
fn root_snapshot(root: &Path) -> BTreeMap<String, String> {
    snapshot(root)
        .into_iter()
        .filter(|(k, v)| {
            let above = ["var", "var/lib"].contains(&k.as_str()) && v.starts_with("dir ");
            !k.starts_with("var/lib/berth") && !above
        })
        .collect()
}

#[test]
fn links_out_of_the_root_are_refused_naming_them() {
    if !require_root() {
        return;
    }
    for at in [
        "opt/app",
        "opt",
        "etc/systemd/system",
        "etc/tmpfiles.d",
        "var/lib",
        "usr/local/bin",
    ] {
        for absolute in [true, false] {
            let s = setup();
            let target = escaping(&s, at, absolute);
            s.plant(at, &target);
            let outside = s.outside_snapshot();
            let before = root_snapshot(&s.root);
            let r = s.install();
            r.code(4).stderr_has(&[
                &format!("/{at} is a symlink to {}", target.display()),
                "which does not exist below the root",
            ]);
            assert_eq!(s.outside_snapshot(), outside, "{at} -> {target:?}");
            assert_eq!(root_snapshot(&s.root), before, "{at} -> {target:?}");
            assert!(
                !s.root.join("var/lib/berth/containers/app").exists(),
                "{at}"
            );
        }
    }
}

#[test]
fn absolute_links_resolve_inside_the_root() {
    if !require_root() {
        return;
    }
    let s = setup();
    // As a real image root has them: absolute links to places inside it.
    std::fs::create_dir_all(s.root.join("srv/app")).unwrap();
    std::fs::create_dir_all(s.root.join("usr/lib/systemd/system")).unwrap();
    std::fs::create_dir_all(s.root.join("usr/lib/tmpfiles.d")).unwrap();
    std::fs::create_dir_all(s.root.join("data/lib")).unwrap();
    s.plant("opt/app", "/srv/app");
    s.plant("etc/systemd/system", "/usr/lib/systemd/system");
    s.plant("etc/tmpfiles.d", "../usr/lib/tmpfiles.d");
    s.plant("var/lib", "/data/lib");
    let outside = s.outside_snapshot();
    s.install().ok();
    assert_eq!(
        std::fs::read_to_string(s.root.join("srv/app/tool")).unwrap(),
        TOOL
    );
    let units = s.root.join("usr/lib/systemd/system");
    assert!(units.join("app.service").is_file());
    assert_eq!(
        std::fs::read_link(units.join("multi-user.target.wants/app.service")).unwrap(),
        Path::new("/etc/systemd/system/app.service")
    );
    assert!(s.root.join("usr/lib/tmpfiles.d/app.conf").is_file());
    // The store and the deployments: R/data/lib/berth, not the host's.
    let data = s.root.join("data/lib/berth");
    assert!(data.join("repo/config").is_file());
    assert!(data.join("containers/app.0/info.json").is_file());
    // The links themselves are as planted.
    assert_eq!(
        std::fs::read_link(s.root.join("var/lib")).unwrap(),
        Path::new("/data/lib")
    );
    let list = s.b.run(&["list"]);
    list.ok();
    assert!(list.stdout.contains("app"), "{}", list.stdout);
    s.b.run(&["uninstall", "app"]).ok();
    assert!(!s.root.join("srv/app/tool").exists());
    assert!(!units.join("app.service").exists());
    assert!(!data.join("containers/app").exists());
    assert_eq!(s.outside_snapshot(), outside);
}

#[test]
fn a_planted_journal_or_lock_link_is_refused_and_never_followed() {
    if !require_root() {
        return;
    }
    for file in ["journal", "lock"] {
        let s = setup();
        // A first install makes the data dir; then the link is planted.
        let victim = s.outside.join("x/ld.so.preload");
        let r = {
            std::fs::create_dir_all(s.root.join("var/lib/berth")).unwrap();
            s.plant(&format!("var/lib/berth/{file}"), &victim);
            s.install()
        };
        r.code(4).stderr_has(&[&format!(
            "/var/lib/berth/{file} is a symlink below the root"
        )]);
        assert!(!victim.exists(), "{file}");
        assert!(!s.outside.join("x").exists(), "{file}");
    }
}

#[test]
fn symlink_loops_are_refused_naming_the_path() {
    if !require_root() {
        return;
    }
    for (a, b) in [
        ("opt/app", "/opt/app2"),
        ("etc/systemd/system", "/etc/systemd/system2"),
        ("var/lib", "/var/lib2"),
    ] {
        let s = setup();
        let (a2, b2) = (b.trim_start_matches('/'), format!("/{a}"));
        s.plant(a, b);
        s.plant(a2, &b2);
        let outside = s.outside_snapshot();
        let before = root_snapshot(&s.root);
        s.install()
            .code(4)
            .stderr_has(&[&format!(": /{a}"), "a symlink loop below the root"]);
        assert_eq!(s.outside_snapshot(), outside, "{a}");
        assert_eq!(root_snapshot(&s.root), before, "{a}");
    }
}

#[test]
fn an_unrelated_tmp_beside_a_hostfs_file_survives_install_and_uninstall() {
    if !require_root() {
        return;
    }
    let s = setup();
    let bin = s.root.join("usr/local/bin");
    std::fs::create_dir_all(bin.join("helper.tmp/tree")).unwrap();
    std::fs::write(bin.join("helper.tmp/tree/keep"), "tree").unwrap();
    std::fs::create_dir_all(s.root.join("opt/app")).unwrap();
    std::fs::write(s.root.join("opt/app/tool.tmp"), "operator's").unwrap();
    let before = snapshot(&s.root);
    s.install().ok();
    assert_eq!(std::fs::read_to_string(bin.join("helper")).unwrap(), TOOL);
    assert_eq!(
        std::fs::read_to_string(s.root.join("opt/app/tool.tmp")).unwrap(),
        "operator's"
    );
    assert_eq!(
        std::fs::read_to_string(bin.join("helper.tmp/tree/keep")).unwrap(),
        "tree"
    );
    // No temp file of berth's is left beside what it wrote.
    for dir in [&bin, &s.root.join("opt/app")] {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            assert!(!n.contains(".berth-"), "{n} left in {}", dir.display());
        }
    }
    s.b.run(&["uninstall", "app"]).ok();
    let after = snapshot(&s.root);
    for (k, v) in &before {
        if k.contains(".tmp") {
            assert_eq!(after.get(k), Some(v), "{k}");
        }
    }
}

#[test]
fn uninstall_after_a_link_is_planted_leaves_the_outside_alone() {
    if !require_root() {
        return;
    }
    let s = setup();
    s.install().ok();
    // The installed hostfs directory swapped for a link to a copy outside,
    // identical to what berth wrote (so it would pass as unchanged).
    std::fs::write(s.outside.join("opt/tool"), TOOL).unwrap();
    std::fs::rename(s.root.join("opt/app"), s.b.dir().join("moved-away")).unwrap();
    s.plant("opt/app", s.outside.join("opt"));
    let outside = s.outside_snapshot();
    s.b.run(&["uninstall", "app"]).ok();
    assert_eq!(s.outside_snapshot(), outside);
    assert_eq!(
        std::fs::read_to_string(s.outside.join("opt/tool")).unwrap(),
        TOOL
    );
    // The link itself is the operator's now: left as it is.
    assert_eq!(
        std::fs::read_link(s.root.join("opt/app")).unwrap(),
        s.outside.join("opt")
    );
    assert!(!s.root.join("etc/systemd/system/app.service").exists());
}

#[test]
fn update_and_rollback_through_a_planted_link_change_nothing_outside() {
    if !require_root() {
        return;
    }
    let s = setup();
    s.install().ok();
    let (v2, _keep2) = layout_one(&image_with("#!/bin/sh\necho v2\n"));
    // The hostfs directory swapped for a link out of the root.
    std::fs::create_dir_all(s.outside.join("usr/local/bin")).unwrap();
    std::fs::write(s.outside.join("usr/local/bin/helper"), TOOL).unwrap();
    std::fs::rename(s.root.join("usr/local/bin"), s.b.dir().join("moved-away")).unwrap();
    s.plant("usr/local/bin", s.outside.join("usr/local/bin"));
    let outside = s.outside_snapshot();
    let before = root_snapshot(&s.root);
    s.b.run(&["update", "app", "--image", &v2])
        .code(4)
        .stderr_has(&["/usr/local/bin is a symlink to"]);
    assert_eq!(s.outside_snapshot(), outside);
    assert_eq!(root_snapshot(&s.root), before);
    // With the link gone, the update goes through; rollback too.
    std::fs::remove_file(s.root.join("usr/local/bin")).unwrap();
    s.b.run(&["update", "app", "--image", &v2]).ok();
    assert!(std::fs::read_to_string(s.root.join("usr/local/bin/helper"))
        .unwrap()
        .contains("v2"));
    s.b.run(&["rollback", "app"]).ok();
    assert_eq!(
        std::fs::read_to_string(s.root.join("opt/app/tool")).unwrap(),
        TOOL
    );
    assert_eq!(s.outside_snapshot(), outside);
}
