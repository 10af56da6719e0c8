//! Multi-platform images under a signature policy, through the CLI: a
//! two-platform index built in Rust, pushed to Debian's docker-registry on
//! 127.0.0.1 and signed by Debian's skopeo (`copy --all --sign-by`, which
//! signs the index and each platform's manifest) into a lookaside inside
//! the `--root`. berth checks the index and then the platform's manifest
//! it chose, each against its own signatures, as containers/image does,
//! before anything is stored.
//!
//! Every test needs root, docker-registry, skopeo and gpg; without them it
//! prints one line and returns (or fails under `BERTH_TEST_REQUIRE_ALL=1`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use common::oci::{Compression, Image, Layer, OciLayout};
use common::registry::{remote_digest, remote_raw, Registry};
use common::signing::{copy_signed, registries_d, signature_file, GpgKey};
use common::{require_all, run_ok, Berth};

const TOOLS: &[&str] = &["docker-registry", "skopeo", "gpg", "gpgconf"];
const REPO: &str = "multi";

/// The registry, the key and the signed index, made once.
struct World {
    reg: Registry,
    /// The lookaside skopeo wrote: `file:///sigs` inside each test's root.
    sigs: PathBuf,
    key: GpgKey,
    /// The index's digest.
    index: String,
    /// The platform manifests' digests, by architecture.
    amd64: String,
    arm64: String,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let dir = common::tempdir();
        let d = dir.path();
        let reg = Registry::plain();
        let key = GpgKey::new(d, "trusted");
        let image = |arch: &str| {
            Image::new(vec![Layer::new()
                .file("platform", format!("{arch}\n"), 0o644)
                .build(Compression::Gzip)])
            .arch(arch)
        };
        let layout = d.join("layout");
        OciLayout::create(&layout).add_index("t", &[image("amd64"), image("arm64")]);
        let sigs = d.join("sigs");
        let source = format!("oci:{}:t", layout.display());
        copy_signed(d, &reg, &key, &source, &format!("{REPO}:t"), &sigs, true);
        key.stop_agent();
        // The digests as the registry serves them (what skopeo signed).
        let raw: serde_json::Value =
            serde_json::from_slice(&remote_raw(&reg, &format!("{REPO}:t"))).unwrap();
        let instance = |arch: &str| {
            raw["manifests"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["platform"]["architecture"] == arch)
                .unwrap_or_else(|| panic!("no {arch} in {raw}"))["digest"]
                .as_str()
                .unwrap()
                .to_string()
        };
        World {
            index: remote_digest(&reg, &format!("{REPO}:t")),
            amd64: instance("amd64"),
            arm64: instance("arm64"),
            reg,
            sigs,
            key,
            _dir: dir,
        }
    })
}

/// A berth whose root holds the lookaside, registries.d pointing at it
/// and a policy requiring the key's signature for every image.
fn berth(w: &World) -> Berth {
    let addr = w.reg.addr();
    let b = Berth::new();
    b.allow_plain_http(addr);
    let root = b.root();
    run_ok(Command::new("cp").arg("-a").arg(&w.sigs).arg(&root));
    registries_d(
        &root,
        &format!("docker:\n  {addr}:\n    lookaside: file:///sigs\n"),
    );
    std::fs::create_dir_all(root.join("etc/pki")).unwrap();
    std::fs::copy(&w.key.public, root.join("etc/pki/trusted.gpg")).unwrap();
    let policy = serde_json::json!({"default": [{"type": "signedBy",
        "keyType": "GPGKeys", "keyPath": "/etc/pki/trusted.gpg"}]});
    std::fs::write(
        root.join("etc/containers/policy.json"),
        serde_json::to_vec(&policy).unwrap(),
    )
    .unwrap();
    b
}

fn reference(w: &World) -> String {
    format!("{}/{REPO}:t", w.reg.addr())
}

/// Removes the root's copy of `digest`'s only signature.
fn unsign(b: &Berth, digest: &str) {
    let sig = signature_file(&b.root().join("sigs"), REPO, digest, 1);
    std::fs::remove_file(&sig).unwrap_or_else(|e| panic!("{}: {e}", sig.display()));
}

/// Nothing of the image in the store: no image, no layer ref.
#[track_caller]
fn assert_nothing_stored(b: &Berth) {
    assert!(b.images().is_empty(), "{:?}", b.images());
    let refs = b.repo().join("refs/heads");
    let mut found = Vec::new();
    let mut stack = vec![refs];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                found.push(e.path());
            }
        }
    }
    assert!(found.is_empty(), "refs left in the store: {found:?}");
}

fn ready() -> bool {
    require_all(TOOLS)
}

fn pull(b: &Berth, w: &World, arch: &str) -> common::Run {
    b.pull(&reference(w), &["--platform", &format!("linux/{arch}")])
}

#[test]
fn an_index_signed_with_its_platforms_is_accepted() {
    if !ready() {
        return;
    }
    let w = world();
    let b = berth(w);
    let j = pull(&b, w, "arm64").ok().json();
    assert_eq!(j["digest"], w.arm64.as_str(), "{j}");
    let inspect = b.json(&["images", "inspect", &reference(w)]);
    assert_eq!(
        inspect["trust"]["requirements"],
        serde_json::json!(["signedBy"]),
        "{inspect}"
    );
    assert!(
        inspect["trust"]["keys"].to_string().contains(&w.key.fpr),
        "{inspect}"
    );
}

#[test]
fn a_platform_manifest_without_its_signature_is_refused() {
    if !ready() {
        return;
    }
    let w = world();
    let b = berth(w);
    unsign(&b, &w.arm64);
    pull(&b, w, "arm64")
        .code(6)
        .stderr_has(&[&reference(w), &w.arm64, &w.index, "signedBy"]);
    assert_nothing_stored(&b);
    // The other platform keeps its own signature: signatures are looked
    // up per digest.
    let j = pull(&b, w, "amd64").ok().json();
    assert_eq!(j["digest"], w.amd64.as_str(), "{j}");
}

#[test]
fn an_index_without_its_signature_is_refused() {
    if !ready() {
        return;
    }
    let w = world();
    let b = berth(w);
    unsign(&b, &w.index);
    let hex = w.index.strip_prefix("sha256:").unwrap();
    pull(&b, w, "amd64")
        .code(6)
        .stderr_has(&[&reference(w), hex, "no signature found"]);
    assert_nothing_stored(&b);
}

/// The index and the platform's manifest are checked against the same
/// trust files, read once: the key and registries.d are opened once per
/// pull (two reads could also see two different files mid-edit).
#[test]
fn the_trust_files_are_read_once_for_the_index_and_its_platform() {
    if !ready() || !common::require("strace") {
        return;
    }
    let w = world();
    let b = berth(w);
    let trace = b.dir().join("pull.strace");
    let mut args: Vec<String> = vec![
        "-f".into(),
        "-qq".into(),
        "-e".into(),
        "trace=open,openat,openat2".into(),
        "-o".into(),
        trace.display().to_string(),
    ];
    let berth = b.command(&["--json", "pull", "--platform", "linux/arm64", &reference(w)]);
    args.push(berth.get_program().to_string_lossy().into_owned());
    args.extend(berth.get_args().map(|a| a.to_string_lossy().into_owned()));
    let mut cmd = Command::new("strace");
    cmd.args(&args);
    for (k, v) in berth.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    run_ok(&mut cmd);
    let calls = std::fs::read_to_string(&trace).unwrap();
    let opened = |name: &str| {
        calls
            .lines()
            .filter(|l| l.contains(name) && !l.contains("ENOENT"))
            .count()
    };
    assert_eq!(opened("trusted.gpg"), 1, "the key:\n{calls}");
    assert_eq!(opened("berth-test.yaml"), 1, "registries.d:\n{calls}");
    assert_eq!(opened("policy.json"), 1, "the policy:\n{calls}");
}
