//! The containers signature policy on every verb that pulls: a policy in
//! ROOT/etc/containers/policy.json (or `--signature-policy`) decides which
//! images `pull`, `install`, `update` and `apply` accept, before anything of
//! a refused image is stored; `berth trust show` and `set` read and edit it.
//!
//! Images come from Debian's docker-registry on 127.0.0.1 (pushed with
//! skopeo) and from `oci:` layouts, and install offline into temporary
//! roots. Tests that need root or the registry print one line and return
//! without them (or fail under `BERTH_TEST_REQUIRE_ALL=1`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

mod common;

use std::sync::OnceLock;

use serde_json::{json, Value};

use common::deploy::layout_one;
use common::oci::{Compression, Image, Layer, OciLayout};
use common::registry::{push, Registry};
use common::{require_all, require_root, Berth};

/// The plain-HTTP registry shared by this file's tests.
fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(Registry::plain)
}

/// Root, the registry and skopeo.
fn ready() -> bool {
    require_all(&["docker-registry", "skopeo", "ostree"])
}

/// A service image whose `bin/app` prints `version`.
fn app(version: &str) -> Image {
    let layer = Layer::new()
        .dir("bin", 0o755)
        .file("bin/app", format!("#!/bin/sh\necho {version}\n"), 0o755)
        .build(Compression::Gzip);
    Image::new(vec![layer]).cmd(&["/bin/app"])
}

/// Pushes `image` as `REPO:TAG` and returns `ADDR/REPO:TAG`.
fn pushed(repo: &str, tag: &str, image: &Image) -> String {
    let dir = common::tempdir();
    let mut l = OciLayout::create(dir.path().join("layout"));
    l.add_image(tag, image);
    push(
        &dir.path().join("layout"),
        tag,
        registry(),
        &format!("{repo}:{tag}"),
    )
}

/// A berth whose registries.conf lets it talk plain HTTP to the registry.
fn berth() -> Berth {
    let b = Berth::new();
    b.allow_plain_http(registry().addr());
    b
}

/// Writes `policy` as ROOT/etc/containers/policy.json.
fn write_policy(b: &Berth, policy: &Value) {
    let dir = b.root().join("etc/containers");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("policy.json"),
        serde_json::to_vec_pretty(policy).unwrap(),
    )
    .unwrap();
}

/// `reject` by default, anything from `ADDR/berth-trust/allowed`.
fn reject_but(b: &Berth, allowed_scope: &str) {
    write_policy(
        b,
        &json!({
            "default": [{"type": "reject"}],
            "transports": {"docker": {allowed_scope: [{"type": "insecureAcceptAnything"}]}}
        }),
    );
}

/// The names of the stored images.
fn stored(b: &Berth) -> Vec<String> {
    b.images()
        .iter()
        .map(|i| i["reference"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_reject_default_admits_only_the_allowed_scope() {
    if !ready() {
        return;
    }
    let addr = registry().addr().to_string();
    let allowed = pushed("berth-trust/allowed", "v1", &app("allowed"));
    let other = pushed("berth-trust/other", "v1", &app("other"));
    let b = berth();
    reject_but(&b, &format!("{addr}/berth-trust/allowed"));

    let r = b.run(&["install", "--name", "ok", &allowed]);
    r.ok();
    let status = b.json(&["status", "ok"]);
    assert_eq!(
        status["trust"]["requirements"],
        json!(["insecureAcceptAnything"])
    );
    assert_eq!(
        status["trust"]["scope"],
        format!("transports.docker \"{addr}/berth-trust/allowed\"")
    );
    let inspect = b.json(&["images", "inspect", &allowed]);
    assert_eq!(
        inspect["trust"]["requirements"],
        json!(["insecureAcceptAnything"])
    );

    let objects = b.objects();
    b.run(&["install", "--name", "nope", &other])
        .code(6)
        .stderr_has(&[&other, "requirement \"reject\"", "scope default"]);
    b.pull(&other, &[]).code(6).stderr_has(&[&other, "reject"]);
    assert_eq!(
        stored(&b),
        vec![allowed.clone()],
        "a refused image was stored"
    );
    assert_eq!(b.objects(), objects, "a refused pull wrote objects");
    assert!(!b.root().join("etc/systemd/system/nope.service").exists());

    // An `oci:` layout falls under the global default too (no oci scope).
    let (layout, _keep) = layout_one(&app("local"));
    b.pull(&layout, &[]).code(6).stderr_has(&["reject"]);

    // --insecure-policy is explicit, and says so.
    b.pull(&other, &["--insecure-policy"])
        .ok()
        .stderr_has(&["--insecure-policy"]);
}

#[test]
fn an_oci_scope_admits_layouts_below_its_directory() {
    if !require_root() {
        return;
    }
    let (layout, keep) = layout_one(&app("local"));
    let (elsewhere, _keep2) = layout_one(&app("elsewhere"));
    let b = Berth::new();
    let dir = std::fs::canonicalize(keep.path()).unwrap();
    write_policy(
        &b,
        &json!({
            "default": [{"type": "reject"}],
            "transports": {"oci": {dir.to_str().unwrap(): [{"type": "insecureAcceptAnything"}]}}
        }),
    );
    let r = b.pull(&layout, &[]);
    r.ok();
    assert_eq!(
        r.json()["trust"]["scope"],
        format!("transports.oci {:?}", dir.to_str().unwrap())
    );
    b.pull(&elsewhere, &[])
        .code(6)
        .stderr_has(&[&elsewhere, "reject"]);
}

#[test]
fn an_update_to_a_refused_image_keeps_the_old_deployment() {
    if !ready() {
        return;
    }
    let addr = registry().addr().to_string();
    let v1 = pushed("berth-trust/app", "v1", &app("v1"));
    let unsigned = pushed("berth-trust/unsigned", "v2", &app("v2"));
    let b = berth();
    reject_but(&b, &format!("{addr}/berth-trust/app"));
    b.run(&["install", "--name", "app", &v1]).ok();
    let before = b.json(&["status", "app"]);
    let unit = b.root().join("etc/systemd/system/app.service");
    let unit_before = std::fs::read(&unit).unwrap();

    b.run(&["update", "app", "--image", &unsigned])
        .code(6)
        .stderr_has(&[&unsigned, "reject"]);
    let after = b.json(&["status", "app"]);
    assert_eq!(after["deployment"], before["deployment"]);
    assert_eq!(after["digest"], before["digest"]);
    assert_eq!(std::fs::read(&unit).unwrap(), unit_before);
    assert_eq!(stored(&b), [v1]);
}

#[test]
fn a_signed_by_scope_refuses_an_unsigned_image() {
    if !ready() {
        return;
    }
    let addr = registry().addr().to_string();
    let image = pushed("berth-trust/signed", "v1", &app("unsigned"));
    let b = berth();
    // The key is read inside the root; whatever key, nothing signed this image.
    let pki = b.root().join("etc/pki/berth");
    std::fs::create_dir_all(&pki).unwrap();
    std::fs::write(
        pki.join("release.gpg"),
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQENBF4=\n-----END PGP PUBLIC KEY BLOCK-----\n",
    )
    .unwrap();
    write_policy(
        &b,
        &json!({
            "default": [{"type": "insecureAcceptAnything"}],
            "transports": {"docker": {format!("{addr}/berth-trust/signed"): [
                {"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/etc/pki/berth/release.gpg"}
            ]}}
        }),
    );
    b.run(&["install", "--name", "signed", &image])
        .code(6)
        .stderr_has(&[&image, "requirement \"signedBy\""]);
    assert!(stored(&b).is_empty());
}

#[test]
fn a_manifest_entry_key_adds_a_requirement_without_any_policy() {
    if !require_root() || !require_all(&["openssl"]) {
        return;
    }
    let (layout, _keep) = layout_one(&app("pinned"));
    let b = Berth::new();
    let pki = b.root().join("etc/pki/berth");
    std::fs::create_dir_all(&pki).unwrap();
    // A real P-256 key: nothing signed this image with it.
    let private = b.dir().join("app.key");
    common::run_ok(
        std::process::Command::new("openssl")
            .args([
                "ecparam",
                "-genkey",
                "-name",
                "prime256v1",
                "-noout",
                "-out",
            ])
            .arg(&private),
    );
    common::run_ok(
        std::process::Command::new("openssl")
            .args(["ec", "-pubout", "-in"])
            .arg(&private)
            .arg("-out")
            .arg(pki.join("app.pub")),
    );
    let m = b.dir().join("m.toml");
    std::fs::write(
        &m,
        format!(
            "[[container]]\nname = \"app\"\nimage = \"{layout}\"\nverify = {{ key = \"/etc/pki/berth/app.pub\" }}\n"
        ),
    )
    .unwrap();
    b.run(&["apply", m.to_str().unwrap()]).code(6).stderr_has(&[
        "app",
        "requirement \"sigstoreSigned\"",
        "verify key",
    ]);
    assert!(stored(&b).is_empty());
    // Without the key the same manifest applies: no policy file, no check.
    std::fs::write(
        &m,
        format!("[[container]]\nname = \"app\"\nimage = \"{layout}\"\n"),
    )
    .unwrap();
    b.run(&["-v", "apply", m.to_str().unwrap()])
        .ok()
        .stderr_has(&["no signature policy"]);
    let status = b.json(&["status", "app"]);
    assert_eq!(status["trust"]["policy"], "none");
}

#[test]
fn a_bad_policy_is_a_usage_error_naming_file_scope_and_key() {
    if !require_root() {
        return;
    }
    let (layout, _keep) = layout_one(&app("x"));
    let b = Berth::new();
    write_policy(
        &b,
        &json!({
            "default": [{"type": "insecureAcceptAnything"}],
            "transports": {"docker": {"quay.io/x": [
                {"type": "signedBy", "keyType": "GPGKeys", "keyPth": "/k"}
            ]}}
        }),
    );
    let file = b.root().join("etc/containers/policy.json");
    b.pull(&layout, &[])
        .code(2)
        .stderr_has(&[file.to_str().unwrap(), "\"quay.io/x\"", "keyPth"]);
    // An explicit file wins over the root's.
    let good = b.dir().join("policy.json");
    std::fs::write(
        &good,
        r#"{"default": [{"type": "insecureAcceptAnything"}]}"#,
    )
    .unwrap();
    let r = b.run(&[
        "pull",
        "--signature-policy",
        good.to_str().unwrap(),
        &layout,
    ]);
    r.ok();
    let want = format!(
        "Trust:  insecureAcceptAnything (policy {}, scope default)",
        good.display()
    );
    assert!(r.stdout.contains(&want), "{want:?} not in {:?}", r.stdout);
}

/// podman's shipped policy.json, with what berth does not read.
const PODMAN_POLICY: &str = r#"{
    "default": [{"type": "insecureAcceptAnything"}],
    "transports": {
        "docker-daemon": {"": [{"type": "insecureAcceptAnything"}]},
        "docker": {
            "registry.access.redhat.com": [{"type": "signedBy", "keyType": "GPGKeys",
                "keyPath": "/etc/pki/rpm-gpg/RPM-GPG-KEY-redhat-release"}]
        },
        "future-transport": {"x": [{"type": "somethingNew", "level": 3}]}
    },
    "x-site-note": {"owner": "ops"}
}"#;

#[test]
fn trust_set_edits_one_scope_and_keeps_the_rest() {
    if !require_root() {
        return;
    }
    let b = Berth::new();
    let file = b.root().join("etc/containers/policy.json");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, PODMAN_POLICY).unwrap();
    let pki = b.root().join("etc/pki/berth");
    std::fs::create_dir_all(&pki).unwrap();
    std::fs::write(
        pki.join("team.gpg"),
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQENBF4=\n-----END PGP PUBLIC KEY BLOCK-----\n",
    )
    .unwrap();

    b.run(&[
        "trust",
        "set",
        "--type",
        "signedBy",
        "--pubkeys",
        "/etc/pki/berth/team.gpg",
        "registry.example.com/team",
    ])
    .ok();
    b.run(&["trust", "set", "--type", "reject", "default"]).ok();
    let after: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let mut want: Value = serde_json::from_str(PODMAN_POLICY).unwrap();
    want["default"] = json!([{"type": "reject"}]);
    want["transports"]["docker"]["registry.example.com/team"] = json!([
        {"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/etc/pki/berth/team.gpg"}
    ]);
    assert_eq!(after, want);

    // A key of the wrong kind, a short name and a missing key are refused
    // and leave the file alone.
    let text = std::fs::read(&file).unwrap();
    b.run(&[
        "trust",
        "set",
        "-t",
        "sigstoreSigned",
        "-f",
        "/etc/pki/berth/team.gpg",
        "quay.io",
    ])
    .code(2)
    .stderr_has(&["team.gpg", "signedBy"]);
    b.run(&["trust", "set", "-t", "accept", "busybox"]).code(2);
    b.run(&["trust", "set", "-t", "signedBy", "default"])
        .code(2);
    assert_eq!(std::fs::read(&file).unwrap(), text);
}

#[test]
fn trust_show_prints_each_scope() {
    if !require_root() {
        return;
    }
    let b = Berth::new();
    b.run(&["trust", "show"]).ok();
    let none = b.json(&["trust", "show"]);
    assert_eq!(none["policy"], Value::Null);
    write_policy(
        &b,
        &json!({
            "default": [{"type": "reject"}],
            "transports": {"docker": {
                "quay.io/coreos": [{"type": "sigstoreSigned", "keyPath": "/etc/pki/coreos.pub",
                    "signedIdentity": {"type": "matchRepository"}}],
                "": [{"type": "insecureAcceptAnything"}]
            }}
        }),
    );
    let doc = b.json(&["trust", "show"]);
    let file = b.root().join("etc/containers/policy.json");
    assert_eq!(doc["policy"], file.to_str().unwrap());
    let scopes: Vec<(Value, Value, Value)> = doc["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["transport"].clone(),
                s["scope"].clone(),
                s["requirements"][0]["type"].clone(),
            )
        })
        .collect();
    assert_eq!(
        scopes,
        [
            (Value::Null, json!("default"), json!("reject")),
            (json!("docker"), json!(""), json!("insecureAcceptAnything")),
            (
                json!("docker"),
                json!("quay.io/coreos"),
                json!("sigstoreSigned")
            ),
        ]
    );
    let out = b.run(&["trust", "show"]);
    out.ok();
    let text = out.stdout.clone();
    let coreos = text
        .lines()
        .find(|l| l.contains("quay.io/coreos"))
        .unwrap_or_else(|| panic!("no quay.io/coreos line in\n{text}"));
    for word in [
        "docker",
        "sigstoreSigned",
        "/etc/pki/coreos.pub",
        "matchRepository",
    ] {
        assert!(coreos.contains(word), "{word} missing from {coreos:?}");
    }
    assert!(
        text.lines()
            .any(|l| l.contains("default") && l.contains("reject")),
        "{text}"
    );
}

#[test]
fn containers_policy_json_names_the_policy_unless_the_flag_does() {
    if !ready() {
        return;
    }
    let image = pushed("berth-trust/env", "v1", &app("env"));
    let mut b = berth();
    // The root's own policy accepts everything; the one the variable names rejects.
    write_policy(
        &b,
        &json!({"default": [{"type": "insecureAcceptAnything"}]}),
    );
    let reject = b.dir().join("reject.json");
    std::fs::write(&reject, r#"{"default": [{"type": "reject"}]}"#).unwrap();
    b.set_env("CONTAINERS_POLICY_JSON", &reject);
    b.pull(&image, &[]).code(6).stderr_has(&[
        &image,
        "requirement \"reject\"",
        &reject.display().to_string(),
    ]);
    assert!(stored(&b).is_empty(), "a refused image was stored");
    let shown = b.run(&["trust", "show"]);
    shown.ok();
    assert!(
        shown.stdout.contains(&reject.display().to_string()) && shown.stdout.contains("reject"),
        "trust show does not show the policy $CONTAINERS_POLICY_JSON names:\n{}",
        shown.stdout
    );

    // The flag wins over the variable; --insecure-policy does not conflict with it.
    let accept = b.dir().join("accept.json");
    std::fs::write(
        &accept,
        r#"{"default": [{"type": "insecureAcceptAnything"}]}"#,
    )
    .unwrap();
    b.pull(
        &image,
        &["--signature-policy", &accept.display().to_string()],
    )
    .ok();
    b.set_env("CONTAINERS_POLICY_JSON", "");
    b.pull(&image, &[]).ok();
}
