//! The host footprint, offline into temporary roots: what `install` prints
//! and `--json`, `--display` and `status` show of each kind, own-state
//! tmpfiles lines staying quiet, and the update gate: an update whose
//! footprint grows is refused with the host unchanged, accepted with
//! `--accept-footprint` or a manifest's `accept_footprint`, and left
//! waiting by `update --all` (what berth-update.timer runs) with `status`
//! saying so.
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
use std::path::Path;

use common::deploy::{layout_one, snapshot};
use common::oci::{Compression, Image, Layer, OciLayout};
use common::{require_root, Berth};

/// The file an update refused for its footprint leaves in the active slot.
const WAITS: &str = "var/lib/berth/containers/app.0/update-waits.json";

/// An image with `/exports` templates and hostfs files.
fn image(service: &str, config: &str, tmpfiles: &str, hostfs: &[(&str, &str)]) -> Image {
    let mut layer = Layer::new()
        .dir("usr", 0o755)
        .dir("usr/bin", 0o755)
        .file("usr/bin/app", "#!/bin/sh\n", 0o755)
        .dir("exports", 0o755)
        .file("exports/service.template", service, 0o644)
        .file("exports/config.json.template", config, 0o644)
        .file("exports/tmpfiles.template", tmpfiles, 0o644)
        .dir("exports/hostfs", 0o755);
    let mut dirs = std::collections::BTreeSet::new();
    for (path, content) in hostfs {
        let mut at = String::from("exports/hostfs");
        let parts: Vec<&str> = path.split('/').collect();
        for d in &parts[..parts.len() - 1] {
            at = format!("{at}/{d}");
            if dirs.insert(at.clone()) {
                layer = layer.dir(&at, 0o755);
            }
        }
        layer = layer.file(&format!("exports/hostfs/{path}"), *content, 0o644);
    }
    Image::new(vec![layer.build(Compression::Gzip)]).cmd(&["/usr/bin/app"])
}

const SERVICE: &str = "[Service]\nExecStart=$EXEC_START\n\n[Install]\nWantedBy=multi-user.target\n";

/// A config with berth's namespaces, no new privileges, a seccomp filter, the given extra
/// capabilities and mounts (the container's own state bound read-write).
fn config(caps: &[&str], mounts: &str) -> String {
    let caps = serde_json::to_string(&[&["CAP_KILL"], caps].concat()).unwrap();
    format!(
        r#"{{
  "ociVersion": "1.0.2",
  "process": {{"user": {{"uid": 0, "gid": 0}}, "args": ["/usr/bin/app"], "cwd": "/",
    "noNewPrivileges": true,
    "capabilities": {{"bounding": {caps}, "effective": {caps}, "permitted": {caps}}}}},
  "root": {{"path": "rootfs", "readonly": true}},
  "mounts": [
    {{"destination": "/proc", "type": "proc", "source": "proc"}},
    {{"destination": "/var/lib/app", "type": "bind", "source": "${{STATE_DIRECTORY}}/${{NAME}}", "options": ["rbind", "rw"]}}{mounts}
  ],
  "linux": {{"namespaces": [{{"type": "pid"}}, {{"type": "ipc"}}, {{"type": "uts"}}, {{"type": "mount"}}],
    "seccomp": {{"defaultAction": "SCMP_ACT_ALLOW"}}}}
}}
"#
    )
}

/// Own-state tmpfiles lines only: etcd's and flannel's shapes.
const OWN_TMPFILES: &str = "\
d ${STATE_DIRECTORY}/${NAME} 0700 root root - -
Z ${STATE_DIRECTORY}/${NAME} 0700 root root - -
D ${RUN_DIRECTORY}/${NAME} - - - - -
r ${RUN_DIRECTORY}/${NAME}/subnet.env - - - - -
";

/// The image `app` is installed from.
fn v1() -> Image {
    image(
        SERVICE,
        &config(&[], ""),
        OWN_TMPFILES,
        &[("usr/local/bin/app-ctl", "#!/bin/sh\n")],
    )
}

/// v1 grown: a tmpfiles line rewriting /etc/passwd, a capability, a
/// read-write bind and a hostfs path more.
fn v2() -> Image {
    image(
        SERVICE,
        &config(
            &["CAP_SYS_ADMIN"],
            r#",
    {"destination": "/data", "type": "bind", "source": "/srv/data", "options": ["rbind", "rw"]}"#,
        ),
        &format!("{OWN_TMPFILES}w+ /etc/passwd - - - - evil:x:0:0::/:/bin/sh\n"),
        &[
            ("usr/local/bin/app-ctl", "#!/bin/sh\n"),
            ("etc/sudoers.d/app", "ALL ALL=(ALL) NOPASSWD: ALL\n"),
        ],
    )
}

/// What each test's growth names.
const GROWTH: &[&str] = &[
    "new host paths: /etc/sudoers.d/app",
    "tmpfiles lines changing existing paths: w+ /etc/passwd",
    "capabilities: CAP_SYS_ADMIN",
    "read-write host paths: /srv/data \u{2192} /data",
];

/// `snapshot` without the record of a waiting update (berth's state, not
/// the host's).
fn host(root: &Path) -> BTreeMap<String, String> {
    let mut s = snapshot(root);
    s.remove(WAITS);
    s
}

#[test]
fn install_shows_each_footprint_kind() {
    if !require_root() {
        return;
    }
    let service = "[Service]\nExecStartPre=/bin/sh -c 'echo hi'\nExecStart=$EXEC_START\n";
    let cfg = r#"{
  "ociVersion": "1.0.2",
  "process": {"user": {"uid": 0, "gid": 0}, "args": ["/usr/bin/app"], "cwd": "/",
    "capabilities": {"bounding": ["CAP_SYS_ADMIN", "CAP_KILL"]}},
  "root": {"path": "rootfs", "readonly": true},
  "mounts": [
    {"destination": "/host", "type": "bind", "source": "/", "options": ["rbind", "rw"]},
    {"destination": "/etc", "type": "bind", "source": "/etc", "options": ["rbind", "ro"]}
  ],
  "linux": {"namespaces": [{"type": "mount"}],
    "resources": {"devices": [{"allow": true, "access": "rwm"}]}}
}
"#;
    let tmpfiles = "w+ /etc/passwd - - - - x\nz /etc/shadow 0666 - - -\nR /srv/userdata\n\
        d /srv/new 0755 root root - -\n";
    let img = image(
        service,
        cfg,
        tmpfiles,
        &[
            ("usr/local/bin/tool", "#!/bin/sh\n"),
            ("etc/app.conf", "x=1\n"),
        ],
    );
    let (reference, _keep) = layout_one(&img);
    let b = Berth::new();
    let root = b.root();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/app.conf"), "mine\n").unwrap();
    let lines = [
        "new host paths: /usr/local/bin/tool",
        "existing host paths (left in place): /etc/app.conf",
        "tmpfiles lines changing existing paths: w+ /etc/passwd, z /etc/shadow, R /srv/userdata",
        "tmpfiles lines creating host paths: d /srv/new",
        "host commands: ExecStartPre=/bin/sh -c 'echo hi'",
        "host namespaces: pid, ipc, uts",
        "capabilities: CAP_SYS_ADMIN",
        "read-write host paths: / \u{2192} /host",
        "read-only host paths: /etc \u{2192} /etc",
        "all devices",
        "new privileges (noNewPrivileges is not set)",
        "no seccomp filter",
    ];
    b.run(&["pull", &reference]).ok();
    // --display shows it whole on stdout.
    let d = b.run(&["install", "--display", "--name", "app", &reference]);
    d.ok();
    let whole = format!("\nfootprint:\n  {}", lines.join("\n  "));
    assert!(d.stdout.contains(&whole), "{}", d.stdout);

    let r = b.run(&["install", "--name", "app", &reference]);
    r.ok();
    let mut block = vec!["app: host footprint beyond its own files:".to_string()];
    block.extend(lines.iter().map(|l| format!("  {l}")));
    r.stderr_has(&[&block.join("\n")]);
    // Nothing installed wrote over the host's own file.
    assert_eq!(
        std::fs::read_to_string(root.join("etc/app.conf")).unwrap(),
        "mine\n"
    );

    let s = b.run(&["status", "app"]);
    s.ok();
    assert!(s.stdout.contains(&whole), "{}", s.stdout);
    assert!(!s.stdout.contains("waits"), "{}", s.stdout);
    let want = serde_json::json!({
        "host_paths": [
            {"path": "/etc/app.conf", "kind": "file", "existing": true},
            {"path": "/usr/local/bin/tool", "kind": "file", "existing": false}
        ],
        "tmpfiles": [
            {"type": "w+", "path": "/etc/passwd", "changes_existing": true},
            {"type": "z", "path": "/etc/shadow", "changes_existing": true},
            {"type": "R", "path": "/srv/userdata", "changes_existing": true},
            {"type": "d", "path": "/srv/new", "changes_existing": false}
        ],
        "commands": ["ExecStartPre=/bin/sh -c 'echo hi'"],
        "host_namespaces": ["pid", "ipc", "uts"],
        "capabilities": ["CAP_SYS_ADMIN"],
        "rw_binds": ["/ \u{2192} /host"],
        "ro_binds": ["/etc \u{2192} /etc"],
        "all_devices": true,
        "new_privileges": true,
        "no_seccomp": true
    });
    assert_eq!(b.json(&["status", "app"])["footprint"], want);
    b.run(&["uninstall", "app"]).ok();
    let j = b.json(&["install", "--name", "app", &reference]);
    assert_eq!(j["footprint"], want);
}

#[test]
fn own_state_tmpfiles_lines_stay_quiet() {
    if !require_root() {
        return;
    }
    // etcd's shape: its state and runtime directories only.
    let (etcd, _k1) = layout_one(&image(SERVICE, &config(&[], ""), OWN_TMPFILES, &[]));
    // flannel's: a host directory it binds read-write, and a file in it.
    let flannel = image(
        SERVICE,
        &config(
            &[],
            r#",
    {"destination": "/etc/cni/net.d", "type": "bind", "source": "/etc/cni/net.d", "options": ["rbind", "rw"]}"#,
        ),
        &format!("{OWN_TMPFILES}d /etc/cni/net.d - - - - -\nr /etc/cni/net.d/10-${{NAME}}.conf - - - - -\n"),
        &[],
    );
    let (flannel, _k2) = layout_one(&flannel);
    let b = Berth::new();
    let r = b.run(&["install", "--name", "etcd", &etcd]);
    r.ok();
    assert!(!r.stderr.contains("host footprint"), "{}", r.stderr);
    let s = b.run(&["status", "etcd"]);
    assert!(
        s.stdout
            .contains("\nfootprint: nothing beyond its own files"),
        "{}",
        s.stdout
    );
    assert_eq!(
        b.json(&["status", "etcd"])["footprint"],
        serde_json::json!({})
    );
    let r = b.run(&["install", "--name", "flannel", &flannel]);
    r.ok();
    r.stderr_has(&["flannel: host footprint beyond its own files:\n  read-write host paths: /etc/cni/net.d \u{2192} /etc/cni/net.d"]);
    assert!(!r.stderr.contains("tmpfiles"), "{}", r.stderr);
    assert_eq!(
        b.json(&["status", "flannel"])["footprint"],
        serde_json::json!({"rw_binds": ["/etc/cni/net.d \u{2192} /etc/cni/net.d"]})
    );
}

#[test]
fn a_growing_update_is_refused_then_accepted_with_the_flag() {
    if !require_root() {
        return;
    }
    let dir = common::tempdir();
    let mut l = OciLayout::create(dir.path().join("layout"));
    l.add_image("v1", &v1());
    let built = l.add_image("v2", &v2());
    let src = format!("oci:{}", l.dir.display());
    let b = Berth::new();
    let root = b.root();
    b.run(&["install", "--name", "app", &format!("{src}:v1")])
        .ok();
    let before = host(&root);
    let v2 = format!("{src}:v2");
    let r = b.run(&["update", "app", "--image", &v2]);
    r.code(4);
    r.stderr_has(GROWTH);
    r.stderr_has(&["--accept-footprint", &built.digest]);
    assert_eq!(host(&root), before, "a refused update changes nothing");
    assert!(!root.join("etc/sudoers.d").exists());
    // status says which update waits and why.
    let s = b.run(&["status", "app"]);
    s.ok();
    let waits = format!("\nupdate to {} (", built.digest);
    assert!(s.stdout.contains(&waits), "{}", s.stdout);
    assert!(
        s.stdout.contains(") waits: footprint grows:\n  "),
        "{}",
        s.stdout
    );
    for g in GROWTH {
        assert!(s.stdout.contains(&format!("\n  {g}")), "{g}: {}", s.stdout);
    }
    // --display shows the plan and what it would have to accept.
    let d = b.run(&["update", "app", "--image", &v2, "--display"]);
    d.ok();
    d.stderr_has(&["app: host footprint grows (the update needs --accept-footprint):"]);
    d.stderr_has(GROWTH);
    assert_eq!(host(&root), before);

    let r = b.run(&["update", "app", "--image", &v2, "--accept-footprint"]);
    r.ok();
    r.stderr_has(&["app: host footprint grows (accepted):"]);
    r.stderr_has(GROWTH);
    assert!(root.join("etc/sudoers.d/app").is_file());
    let s = b.json(&["status", "app"]);
    assert_eq!(s["digest"], built.digest.as_str());
    assert!(s.get("update_waits").is_none(), "{s}");
    assert_eq!(
        s["footprint"]["capabilities"],
        serde_json::json!(["CAP_SYS_ADMIN"])
    );
    // Back to v1 shrinks it: no flag needed.
    b.run(&["update", "app", "--image", &format!("{src}:v1")])
        .ok();
}

#[test]
fn update_all_leaves_a_growing_update_waiting() {
    if !require_root() {
        return;
    }
    // `app` and `other` follow tag t of their own layouts.
    let dir = common::tempdir();
    let app_dir = dir.path().join("app");
    let other_dir = dir.path().join("other");
    let v1_digest = OciLayout::create(&app_dir).add_image("t", &v1()).digest;
    let plain = |version: &str| {
        image(SERVICE, &config(&[], ""), OWN_TMPFILES, &[]).env(&format!("VERSION={version}"))
    };
    OciLayout::create(&other_dir).add_image("t", &plain("1"));
    let b = Berth::new();
    let root = b.root();
    let app = format!("oci:{}:t", app_dir.display());
    let other = format!("oci:{}:t", other_dir.display());
    b.run(&["install", "--name", "app", &app]).ok();
    b.run(&["install", "--name", "other", &other]).ok();
    // The tags move: app's to the grown image, other's to one that does
    // not grow (its own state only).
    let grown = OciLayout::create(&app_dir).add_image("t", &v2());
    let moved = OciLayout::create(&other_dir).add_image("t", &plain("2"));
    b.run(&["update", "--all", "--accept-footprint"]).code(2);

    let before = host(&root);
    let r = b.run(&["update", "--all"]);
    r.code(4);
    r.stderr_has(GROWTH);
    // other was updated; app is as it was.
    assert_eq!(
        b.json(&["status", "other"])["digest"],
        moved.digest.as_str()
    );
    let now = host(&root);
    let app_paths = |s: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        s.iter()
            .filter(|(k, _)| !k.contains("other"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    assert_eq!(app_paths(&now), app_paths(&before));
    let s = b.json(&["status", "app"]);
    assert_eq!(s["digest"], v1_digest.as_str());
    assert_eq!(s["update_waits"]["digest"], grown.digest.as_str());
    assert_eq!(
        s["update_waits"]["growth"]["capabilities"],
        serde_json::json!(["CAP_SYS_ADMIN"])
    );
    let text = b.run(&["status", "app"]).stdout;
    assert!(
        text.contains(&format!("\nupdate to {} (", grown.digest)),
        "{text}"
    );
    assert!(text.contains(") waits: footprint grows:\n  "), "{text}");
    // Again: still waiting, still refused.
    b.run(&["update", "--all"]).code(4);
    assert!(b.json(&["status", "app"]).get("update_waits").is_some());
    // The operator accepts it.
    b.run(&["update", "app", "--accept-footprint"]).ok();
    let s = b.json(&["status", "app"]);
    assert_eq!(s["digest"], grown.digest.as_str());
    assert!(s.get("update_waits").is_none(), "{s}");
    let r = b.json(&["update", "--all"]);
    let groups = r.as_array().unwrap();
    assert!(
        groups
            .iter()
            .flat_map(|g| g["results"].as_array().unwrap())
            .all(|u| u["changed"] == false),
        "{r}"
    );
}

#[test]
fn a_manifest_entry_accepts_a_growing_update() {
    if !require_root() {
        return;
    }
    let dir = common::tempdir();
    let mut l = OciLayout::create(dir.path().join("layout"));
    l.add_image("v1", &v1());
    let built = l.add_image("v2", &v2());
    let src = format!("oci:{}", l.dir.display());
    let b = Berth::new();
    let root = b.root();
    let manifest = dir.path().join("host.toml");
    let entry = |tag: &str, extra: &str| {
        std::fs::write(
            &manifest,
            format!("[[container]]\nname = \"app\"\nimage = \"{src}:{tag}\"\n{extra}"),
        )
        .unwrap();
    };
    let m = manifest.to_str().unwrap();
    entry("v1", "");
    b.run(&["apply", m]).ok();
    let before = host(&root);
    entry("v2", "");
    let r = b.run(&["apply", m]);
    r.code(4);
    r.stderr_has(GROWTH);
    r.stderr_has(&["accept_footprint = true"]);
    assert_eq!(host(&root), before, "a refused entry changes nothing");
    entry("v2", "accept_footprint = true\n");
    b.run(&["apply", m]).ok();
    assert_eq!(b.json(&["status", "app"])["digest"], built.digest.as_str());
    assert!(root.join("etc/sudoers.d/app").is_file());
}

#[test]
fn a_deployment_without_a_recorded_footprint_gets_it_from_its_files() {
    if !require_root() {
        return;
    }
    let dir = common::tempdir();
    let mut l = OciLayout::create(dir.path().join("layout"));
    l.add_image("v1", &v1());
    l.add_image("v1b", &v1().env("REBUILT=1"));
    l.add_image("v2", &v2());
    let src = format!("oci:{}", l.dir.display());
    let b = Berth::new();
    let root = b.root();
    b.run(&["install", "--name", "app", &format!("{src}:v1")])
        .ok();
    let recorded = b.json(&["status", "app"])["footprint"].clone();
    assert_eq!(
        recorded,
        serde_json::json!({"host_paths": [
            {"path": "/usr/local/bin/app-ctl", "kind": "file", "existing": false}
        ]})
    );
    // As a berth from before footprints wrote it.
    let info = root.join("var/lib/berth/containers/app.0/info.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&info).unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("footprint").unwrap();
    std::fs::write(&info, v.to_string()).unwrap();
    assert_eq!(b.json(&["status", "app"])["footprint"], recorded);
    b.run(&["update", "app", "--image", &format!("{src}:v2")])
        .code(4)
        .stderr_has(GROWTH);
    b.run(&["update", "app", "--image", &format!("{src}:v1b")])
        .ok();
}
