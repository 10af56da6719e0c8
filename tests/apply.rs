//! `berth apply`, `--plan` and `diff` of a 4-entry manifest, offline into a
//! temporary root: install in dependency order, edit (change a value, drop
//! an entry, add one), plan shows exactly that, apply does exactly that, a
//! second apply touches nothing, a failure midway puts everything back, and
//! containers installed by hand are never removed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use common::oci::{Compression, Image, Layer, OciLayout};
use common::{require_root, Berth};

fn image(name: &str, service: &str, manifest: &str) -> Image {
    let layer = Layer::new()
        .dir("bin", 0o755)
        .file(&format!("bin/{name}"), "#!/bin/sh\n", 0o755)
        .dir("exports", 0o755)
        .file("exports/service.template", service, 0o644)
        .file("exports/manifest.json", manifest, 0o644)
        .build(Compression::Gzip);
    Image::new(vec![layer]).cmd(&[&format!("/bin/{name}")])
}

const PLAIN: &str = "[Unit]\nDescription=$NAME\n\n[Service]\nExecStart=$EXEC_START\nEnvironment=V=$V\n\n[Install]\nWantedBy=multi-user.target\n";
const FLANNEL: &str = "[Unit]\nAfter=$AFTER\nBefore=engine.service\n\n[Service]\nType=notify\nExecStart=$EXEC_START\n\n[Install]\nRequiredBy=$REQUIRED_BY\n";

/// (layout `oci:DIR`, keeper)
fn images() -> (String, tempfile::TempDir) {
    let dir = common::tempdir();
    let mut l = OciLayout::create(dir.path().join("layout"));
    l.add_image(
        "etcd",
        &image("etcd", PLAIN, r#"{"defaultValues": {"V": "1"}}"#),
    );
    l.add_image(
        "flannel",
        &image(
            "flannel",
            FLANNEL,
            r#"{"defaultValues": {"AFTER": "etcd.service", "REQUIRED_BY": "engine.service"}}"#,
        ),
    );
    l.add_image(
        "engine",
        &image("engine", PLAIN, r#"{"defaultValues": {"V": "1"}}"#),
    );
    l.add_image(
        "web",
        &image("web", PLAIN, r#"{"defaultValues": {"V": "1"}}"#),
    );
    l.add_image(
        "extra",
        &image("extra", PLAIN, r#"{"defaultValues": {"V": "1"}}"#),
    );
    (format!("oci:{}", dir.path().join("layout").display()), dir)
}

fn entry(name: &str, src: &str, extra: &str) -> String {
    format!("[[container]]\nname = \"{name}\"\nimage = \"{src}:{name}\"\n{extra}\n")
}

/// path → (content hash or link target, mtime, inode): any write shows.
fn touched(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (rel, meta) in common::tree::walk(root) {
        let rel = rel.display().to_string();
        if rel.starts_with("var/lib/berth/repo") {
            continue;
        }
        out.insert(
            rel,
            format!("{} {} {}", meta.mtime(), meta.mtime_nsec(), meta.ino()),
        );
    }
    out
}

fn steps(v: &serde_json::Value) -> Vec<(String, String)> {
    v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn apply_plans_switches_in_order_and_is_idempotent() {
    if !require_root() {
        return;
    }
    let (src, _keep) = images();
    let mut b = Berth::new();
    let root = b.root();
    let dir = common::tempdir();
    let m = dir.path().join("manifest.d");
    std::fs::create_dir(&m).unwrap();
    // Two files, merged in name order; the order of entries is not the
    // dependency order.
    std::fs::write(
        m.join("20-cluster.toml"),
        entry(
            "engine",
            &src,
            "after = [\"flannel\"]\nrequires = [\"flannel\"]",
        ) + &entry("flannel", &src, "after = [\"etcd\"]")
            + &entry("etcd", &src, "set = { V = \"2\" }"),
    )
    .unwrap();
    std::fs::write(m.join("10-web.toml"), entry("web", &src, "")).unwrap();
    let mp = m.to_str().unwrap();

    let plan = b.json(&["apply", "--plan", mp]);
    assert_eq!(
        steps(&plan),
        pairs(&[
            ("web", "install"),
            ("etcd", "install"),
            ("flannel", "install"),
            ("engine", "install")
        ])
    );
    assert!(!root.join("etc/systemd/system/etcd.service").exists());
    let r = b.json(&["apply", mp]);
    assert_eq!(r["changed"], true);
    for n in ["web", "etcd", "flannel", "engine"] {
        assert!(
            root.join(format!("etc/systemd/system/{n}.service"))
                .exists(),
            "{n}"
        );
    }
    let unit = std::fs::read_to_string(root.join("etc/systemd/system/etcd.service")).unwrap();
    assert!(unit.contains("Environment=V=2\n"), "{unit}");
    // flannel's RequiredBy from its defaultValues.
    assert_eq!(
        std::fs::read_link(root.join("etc/systemd/system/engine.service.requires/flannel.service"))
            .unwrap(),
        Path::new("/etc/systemd/system/flannel.service")
    );
    // The ordering the manifest asks for is declared by the units; no warning.
    assert!(r["warnings"].as_array().unwrap().is_empty(), "{r}");

    // Again: nothing to do, and not one file touched.
    let before = touched(&root);
    let again = b.json(&["apply", mp]);
    assert_eq!(again["changed"], false);
    assert_eq!(touched(&root), before);

    // A container installed by hand is left alone by apply.
    b.run(&["install", "--name", "manual", &format!("{src}:extra")])
        .ok();

    // Edit: a value changes, web goes, extra comes.
    std::fs::remove_file(m.join("10-web.toml")).unwrap();
    std::fs::write(
        m.join("20-cluster.toml"),
        entry(
            "engine",
            &src,
            "after = [\"flannel\"]\nrequires = [\"flannel\"]",
        ) + &entry("flannel", &src, "after = [\"etcd\"]")
            + &entry("etcd", &src, "set = { V = \"3\" }")
            + &entry("extra", &src, "after = [\"etcd\"]"),
    )
    .unwrap();
    let plan = b.json(&["apply", "--plan", mp]);
    assert_eq!(
        steps(&plan),
        pairs(&[
            ("etcd", "reconfigure"),
            ("flannel", "unchanged"),
            ("engine", "unchanged"),
            ("extra", "install"),
            ("web", "remove"),
        ])
    );
    let diff = b.run(&["diff", mp]);
    diff.ok();
    assert!(
        diff.stdout.contains("-Environment=V=2\n+Environment=V=3"),
        "{}{}",
        diff.stdout,
        diff.stderr
    );
    assert!(
        diff.stdout
            .contains("+++ b/etc/systemd/system/extra.service"),
        "{}",
        diff.stdout
    );
    // extra's unit lacks After=etcd.service: apply warns. Off a terminal (a log, the
    // journal), each entry's steps are lines as they happen.
    let r = b.run(&["apply", mp]);
    r.ok().stderr_has(&[
        "orders extra after etcd",
        "reconfigure  etcd                 staged",
        "install      extra                staged",
        "reconfigure  etcd                 switched",
        "install      extra                switched",
        "remove       web                  switched",
    ]);
    let names: Vec<String> = b
        .json(&["list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["engine", "etcd", "extra", "flannel", "manual"]);
    let unit = std::fs::read_to_string(root.join("etc/systemd/system/etcd.service")).unwrap();
    assert!(unit.contains("Environment=V=3\n"), "{unit}");
    let again = b.json(&["apply", mp]);
    assert_eq!(again["changed"], false);

    // A failure in the middle (the etcd update after extra's install would
    // be switched) puts every entry back.
    std::fs::write(m.join("05-new.toml"), entry("web", &src, "")).unwrap();
    std::fs::write(
        m.join("20-cluster.toml"),
        entry(
            "engine",
            &src,
            "after = [\"flannel\"]\nrequires = [\"flannel\"]",
        ) + &entry("flannel", &src, "after = [\"etcd\"]")
            + &entry("etcd", &src, "set = { V = \"4\" }")
            + &entry("extra", &src, "after = [\"etcd\"]"),
    )
    .unwrap();
    let before = common::tree::path_set(&root);
    b.set_env("BERTH_FAILPOINT", "update-files");
    b.run(&["apply", mp]).code(1).stderr_has(&["etcd"]);
    b.unset_env("BERTH_FAILPOINT");
    let after = common::tree::path_set(&root);
    assert_eq!(
        after.symmetric_difference(&before).collect::<Vec<_>>(),
        Vec::<&String>::new()
    );
    let unit = std::fs::read_to_string(root.join("etc/systemd/system/etcd.service")).unwrap();
    assert!(unit.contains("Environment=V=3\n"), "{unit}");

    // Bad manifests change nothing.
    std::fs::write(
        m.join("30-bad.toml"),
        entry("loop", &src, "after = [\"loop2\"]") + &entry("loop2", &src, "after = [\"loop\"]"),
    )
    .unwrap();
    b.run(&["apply", mp])
        .code(2)
        .stderr_has(&["dependency cycle: loop -> loop2 -> loop"]);
    assert_eq!(common::tree::path_set(&root), before);
}
