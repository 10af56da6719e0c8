//! `berth pull` and `berth images` against real parts: Debian's docker-registry on
//! 127.0.0.1 (plain, and TLS + htpasswd), images built in Rust and pushed with skopeo,
//! `umoci unpack` as the independent reference extraction, `ostree fsck` on berth's repo.
//!
//! Every test needs root and the tools it names; without them it prints one line and
//! returns (or fails under `BERTH_TEST_REQUIRE_ALL=1`). Each test has its own `--root`;
//! the plain registry and the big layered fixture are shared through `OnceLock`s.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;
use tar::EntryType;

use common::debs::busybox_rootfs;
use common::front::{Action, Front, Length, Rule};
use common::oci::{
    docker_archive, oci_archive, random_bytes, raw_header, truncated_tar, Blob, Built, Compression,
    Image, Layer, OciLayout,
};
use common::registry::{push, push_raw, Registry};
use common::tree::{assert_same_tree, names_containing, single_link_files, umoci_unpack, walk};
use common::{digest_of, require_all, Berth};

/// Tools every registry test needs.
const BASE_TOOLS: &[&str] = &["docker-registry", "skopeo", "ostree"];

/// Root plus [`BASE_TOOLS`] plus `extra`.
fn ready(extra: &[&str]) -> bool {
    let mut all = BASE_TOOLS.to_vec();
    all.extend_from_slice(extra);
    require_all(&all)
}

/// The plain-HTTP registry shared by this file's tests.
fn plain() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(Registry::plain)
}

const TLS_USER: &str = "berthuser";
const TLS_PASS: &str = "s3cret-pass";

/// The TLS + htpasswd registry shared by this file's tests.
fn tls() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| Registry::tls_htpasswd(TLS_USER, TLS_PASS))
}

/// An image pushed to a registry, with the layout it came from.
struct Pushed {
    /// `ADDR/REPO:TAG`.
    reference: String,
    /// The layout (kept for `oci:` tests and umoci).
    layout: PathBuf,
    /// The tag inside the layout.
    tag: String,
    /// Digests and blobs.
    built: Built,
    /// The image description.
    image: Image,
    /// Keeps the layout alive.
    _dir: tempfile::TempDir,
}

/// Writes `image` into a fresh layout as tag `t` and pushes it to `reg` as `REPO:t`.
fn push_image(reg: &Registry, repo: &str, image: Image) -> Pushed {
    let dir = common::tempdir();
    let layout_dir = dir.path().join("layout");
    let mut layout = OciLayout::create(&layout_dir);
    let built = layout.add_image("t", &image);
    let reference = push(&layout_dir, "t", reg, &format!("{repo}:t"));
    Pushed {
        reference,
        layout: layout_dir,
        tag: "t".into(),
        built,
        image,
        _dir: dir,
    }
}

/// Asserts that `berth images --json` lists no image whose name contains `repo`.
#[track_caller]
fn assert_not_listed(b: &Berth, repo: &str) {
    let listed: Vec<Value> = b
        .images()
        .into_iter()
        .filter(|i| i["name"].as_str().unwrap_or("").contains(repo))
        .collect();
    assert!(
        listed.is_empty(),
        "{repo} is listed after a failed pull: {listed:?}"
    );
}

/// The layer-by-layer JSON of a pull, as `(digest, fetched)`.
fn pulled_layers(j: &Value) -> Vec<(String, bool)> {
    j["layers"]
        .as_array()
        .unwrap_or_else(|| panic!("no layers array in {j}"))
        .iter()
        .map(|l| {
            (
                l["digest"].as_str().unwrap().to_string(),
                l["fetched"].as_bool().unwrap(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The layered fixture: whiteouts, opaque dirs, type changes, hard links, setuid, owners.
// ---------------------------------------------------------------------------------------

/// Layer 0: a busybox root filesystem plus the things the upper layers change.
fn layer0() -> Layer {
    Layer::from_dir(&busybox_rootfs())
        .dir("a", 0o755)
        .file("a/file_to_dir", "was a file\n", 0o644)
        .dir("a/dir_to_file", 0o755)
        .file("a/dir_to_file/x", "x\n", 0o644)
        .dir("a/dir_to_file/sub", 0o700)
        .file("a/dir_to_file/sub/y", "y\n", 0o600)
        .file("a/target", "target\n", 0o644)
        .symlink("a/link_to_file", "target")
        .dir("b", 0o755)
        .dir("b/opq", 0o750)
        .file("b/opq/old1", "old1\n", 0o644)
        .dir("b/opq/sub", 0o755)
        .file("b/opq/sub/old2", "old2\n", 0o644)
        .dir("c", 0o755)
        .dir("c/deep", 0o755)
        .dir("c/deep/er", 0o755)
        .dir("c/deep/er/dir", 0o755)
        .file("c/deep/er/dir/f", "f\n", 0o644)
        .dir("d", 0o755)
        .file("d/gone", "gone\n", 0o644)
        .file("d/kept", "kept\n", 0o644)
        .dir("d/sub", 0o755)
        .file("d/sub/inside", "inside\n", 0o644)
        .dir("e", 0o755)
        .file("e/x", "x was a file\n", 0o644)
        .dir("home", 0o755)
        .dir_owned("home/user", 0o700, 1000, 1000)
        .file_owned("home/user/.profile", "PS1='$ '\n", 0o600, 1000, 1000)
        .file("same1", "same content\n", 0o644)
        .file("same2", "same content\n", 0o644)
        .file("empty", "", 0o644)
        .file("with space and ünïcode", "odd name\n", 0o644)
        .dir("long", 0o755)
        .file(&format!("long/{}", "n".repeat(120)), "long name\n", 0o644)
        .symlink("abs_link", "/bin/busybox")
}

/// Layer 1: type changes, opaque dir, whiteouts, hard links, setuid, other owners.
fn layer1() -> Layer {
    Layer::new()
        // file -> dir and dir -> file, without whiteouts (the new entry replaces).
        .dir("a/file_to_dir", 0o755)
        .file("a/file_to_dir/inner", "now a dir\n", 0o644)
        .file("a/dir_to_file", "now a file\n", 0o600)
        // symlink -> file
        .file("a/link_to_file", "was a symlink\n", 0o644)
        // opaque dir, re-populated in the same layer
        .dir("b/opq", 0o750)
        .opaque("b/opq")
        .file("b/opq/new1", "new1\n", 0o644)
        .file("c/deep/er/dir/g", "g\n", 0o644)
        .whiteout("d/gone")
        .whiteout("d/sub")
        .whiteout("e/x")
        // hard links within the layer
        .dir("h", 0o755)
        .file("h/orig", "hardlinked\n", 0o644)
        .hardlink("h/link1", "h/orig")
        .dir("h/sub", 0o755)
        .hardlink("h/sub/link2", "h/orig")
        // setuid / setgid, non-root owners
        .dir("usr", 0o755)
        .dir("usr/bin", 0o755)
        .file("usr/bin/suid", "#!/bin/sh\necho suid\n", 0o4755)
        .dir("srv", 0o755)
        .dir_owned("srv/sgid", 0o2775, 0, 50)
        .file_owned("srv/sgid/f", "group file\n", 0o2755, 1000, 50)
        .file_owned("home/user/notes", "notes\n", 0o640, 1000, 1000)
}

/// Layer 2: nested whiteout of a dir from two layers below; re-creations.
fn layer2() -> Layer {
    Layer::new()
        .whiteout("c/deep/er")
        // e/x was whited out in layer 1: comes back as a directory
        .dir("e/x", 0o755)
        .file("e/x/now", "e/x re-created as a dir\n", 0o644)
        // d/sub (a dir, whited out in layer 1) comes back as a file
        .file("d/sub", "d/sub is a file now\n", 0o644)
        .symlink("d/kept_link", "kept")
        .whiteout("bin/ls")
}

/// Layer 3: re-creates the directory layer 2 deleted, with new content only.
fn layer3() -> Layer {
    Layer::new()
        .dir("c/deep/er", 0o711)
        .file("c/deep/er/fresh", "fresh\n", 0o644)
}

/// The layered image, pushed once as `berth-test/layered:t`, and umoci's extraction.
struct Layered {
    pushed: Pushed,
    /// `umoci unpack` of the same layout.
    rootfs: PathBuf,
    _umoci: tempfile::TempDir,
}

fn layered() -> &'static Layered {
    static F: OnceLock<Layered> = OnceLock::new();
    F.get_or_init(|| {
        let image = Image::new(vec![
            layer0().build(Compression::Gzip),
            layer1().build(Compression::Gzip),
            layer2().build(Compression::None),
            layer3().build(Compression::Gzip),
        ])
        .cmd(&["/bin/sh", "-c", "echo hello"])
        .env("GREETING=hello")
        .label("org.example.kind", "layered")
        .working_dir("/home/user");
        let pushed = push_image(plain(), "berth-test/layered", image);
        let umoci = common::tempdir();
        let rootfs = umoci_unpack(&pushed.layout, &pushed.tag, &umoci.path().join("bundle"));
        check_reference_tree(&rootfs);
        Layered {
            pushed,
            rootfs,
            _umoci: umoci,
        }
    })
}

/// Guards the fixture itself: umoci's extraction shows every change the layers make, so
/// comparing berth against it is not vacuous.
fn check_reference_tree(r: &Path) {
    let read = |p: &str| std::fs::read_to_string(r.join(p)).unwrap();
    assert_eq!(read("a/file_to_dir/inner"), "now a dir\n");
    assert_eq!(read("a/dir_to_file"), "now a file\n");
    assert_eq!(read("a/link_to_file"), "was a symlink\n");
    assert!(!r.join("b/opq/old1").exists() && !r.join("b/opq/sub").exists());
    assert_eq!(read("b/opq/new1"), "new1\n");
    assert!(!r.join("c/deep/er/dir").exists());
    assert_eq!(read("c/deep/er/fresh"), "fresh\n");
    assert!(!r.join("d/gone").exists());
    assert_eq!(read("d/sub"), "d/sub is a file now\n");
    assert_eq!(read("e/x/now"), "e/x re-created as a dir\n");
    assert!(!r.join("bin/ls").exists() && r.join("bin/sh").exists());
}

/// The layered image pulled with a fresh berth; returns the berth and the pull's JSON.
fn pull_layered() -> (Berth, Value) {
    let fx = layered();
    let b = Berth::new();
    let j = b
        .pull(&fx.pushed.reference, &["--tls-verify=false"])
        .ok()
        .json();
    (b, j)
}

// ---------------------------------------------------------------------------------------
// a. whiteouts, opaque dirs, type changes … against umoci
// ---------------------------------------------------------------------------------------

#[test]
fn layered_image_checkout_matches_umoci_unpack() {
    if !ready(&["umoci", "apt-get", "dpkg-deb"]) {
        return;
    }
    let fx = layered();
    let (b, j) = pull_layered();
    let (name, tag) = fx.pushed.reference.rsplit_once(':').unwrap();
    assert_eq!(j["reference"], fx.pushed.reference.as_str(), "{j}");
    assert_eq!(j["name"], name, "{j}");
    assert_eq!(j["tag"], tag, "{j}");
    assert_eq!(j["digest"], fx.pushed.built.digest.as_str(), "{j}");
    assert_eq!(j["image_id"], fx.pushed.built.config_digest.as_str(), "{j}");
    assert_eq!(j["changed"], true, "{j}");
    assert!(j["commit"].as_str().is_some_and(|c| !c.is_empty()), "{j}");
    let layers = j["layers"].as_array().unwrap();
    assert_eq!(layers.len(), fx.pushed.built.layers.len(), "{j}");
    for (got, want) in layers.iter().zip(&fx.pushed.built.layers) {
        assert_eq!(got["digest"], want.digest.as_str(), "{j}");
        assert_eq!(got["diff_id"], want.diff_id.as_str(), "{j}");
        assert_eq!(got["size"], want.size(), "{j}");
        assert_eq!(got["fetched"], true, "{j}");
    }

    let co = b.checkout(&fx.pushed.reference, "layered");
    assert_same_tree(&fx.rootfs, &co);
    let wh = names_containing(&co, ".wh.");
    assert!(wh.is_empty(), "whiteout names in the checkout: {wh:?}");
    let single = single_link_files(&co);
    assert!(single.is_empty(), "not a hard-link checkout: {single:?}");
    b.fsck();
}

#[test]
fn images_list_and_inspect_describe_the_pulled_image() {
    if !ready(&["umoci", "apt-get", "dpkg-deb"]) {
        return;
    }
    let fx = layered();
    let (b, _) = pull_layered();
    let list = b.images();
    let entry = list
        .iter()
        .find(|i| i["digest"] == fx.pushed.built.digest.as_str())
        .unwrap_or_else(|| panic!("pulled image not in berth images: {list:?}"));
    let (name, tag) = fx.pushed.reference.rsplit_once(':').unwrap();
    assert_eq!(entry["name"], name);
    assert_eq!(entry["tag"], tag);
    assert_eq!(entry["reference"], fx.pushed.reference.as_str());
    assert_eq!(entry["image_id"], fx.pushed.built.config_digest.as_str());
    assert_eq!(entry["in_use"], false);
    assert!(entry["size"].as_u64().is_some_and(|s| s > 0), "{entry}");
    assert!(
        entry["created"].is_string() && entry["pulled"].is_string(),
        "{entry}"
    );

    let ins = b.json(&["images", "inspect", &fx.pushed.reference]);
    assert_eq!(ins["digest"], fx.pushed.built.digest.as_str(), "{ins}");
    assert_eq!(
        ins["image_id"],
        fx.pushed.built.config_digest.as_str(),
        "{ins}"
    );
    let config: Value = serde_json::from_slice(&fx.pushed.built.config).unwrap();
    assert_eq!(ins["config"], config, "{ins}");
    let manifest: Value = serde_json::from_slice(&fx.pushed.built.manifest).unwrap();
    assert_eq!(ins["manifest"], manifest, "{ins}");
    assert_eq!(ins["labels"]["org.example.kind"], "layered", "{ins}");
    let layers = ins["layers"].as_array().unwrap();
    for (got, want) in layers.iter().zip(&fx.pushed.built.layers) {
        assert_eq!(got["digest"], want.digest.as_str());
        assert_eq!(got["diff_id"], want.diff_id.as_str());
        assert_eq!(got["media_type"], want.compression.oci_media_type());
    }
    assert_eq!(layers.len(), fx.pushed.built.layers.len());
}

// ---------------------------------------------------------------------------------------
// b. re-pull; c. shared base layer
// ---------------------------------------------------------------------------------------

#[test]
fn repull_of_unchanged_image_writes_nothing() {
    if !ready(&["umoci", "apt-get", "dpkg-deb"]) {
        return;
    }
    let fx = layered();
    let (b, first) = pull_layered();
    let objects = b.objects();
    assert!(
        !objects.is_empty(),
        "no objects under {}",
        b.repo().display()
    );
    let again = b
        .pull(&fx.pushed.reference, &["--tls-verify=false"])
        .ok()
        .json();
    assert_eq!(again["changed"], false, "{again}");
    assert_eq!(again["commit"], first["commit"], "{again}");
    assert_eq!(again["digest"], first["digest"], "{again}");
    assert!(
        pulled_layers(&again).iter().all(|(_, fetched)| !fetched),
        "re-pull fetched layers: {again}"
    );
    let after = b.objects();
    let new: Vec<_> = after.difference(&objects).collect();
    assert!(new.is_empty(), "re-pull wrote objects: {new:?}");
}

#[test]
fn second_image_sharing_the_base_layer_does_not_fetch_it() {
    if !ready(&["umoci", "apt-get", "dpkg-deb"]) {
        return;
    }
    let fx = layered();
    let base = fx.pushed.built.layers[0].clone();
    let top = Layer::new()
        .file("sibling", "I share the base\n", 0o644)
        .build(Compression::Gzip);
    let sibling = push_image(
        plain(),
        "berth-test/sibling",
        Image::new(vec![base.clone(), top.clone()]),
    );
    // Pull both through a transparent front to count blob requests.
    let front = Front::new(plain().addr());
    let via = |r: &str| r.replacen(plain().addr(), front.addr(), 1);
    let b = Berth::new();
    let first = b
        .pull(
            &via(&fx.pushed.reference),
            &["--tls-verify=false", "--jobs", "2"],
        )
        .ok()
        .json();
    assert!(pulled_layers(&first)[0].1, "{first}");
    let second = b
        .pull(
            &via(&sibling.reference),
            &["--tls-verify=false", "--jobs", "1"],
        )
        .ok()
        .json();
    assert_eq!(
        pulled_layers(&second),
        vec![(base.digest.clone(), false), (top.digest.clone(), true)],
        "{second}"
    );
    assert_eq!(
        front
            .matching("GET", &format!("/blobs/{}", base.digest))
            .len(),
        1,
        "the shared base layer was downloaded twice: {:?}",
        front.requests()
    );
    let co = b.checkout(&via(&sibling.reference), "sibling");
    assert_eq!(
        std::fs::read_to_string(co.join("sibling")).unwrap(),
        "I share the base\n"
    );
    assert!(co.join("bin/busybox").is_file());
}

// ---------------------------------------------------------------------------------------
// d. index with two platforms
// ---------------------------------------------------------------------------------------

fn host_arch() -> Option<&'static str> {
    match std::env::consts::ARCH {
        "x86_64" => Some("amd64"),
        "aarch64" => Some("arm64"),
        _ => None,
    }
}

#[test]
fn index_pull_picks_the_host_platform_or_the_requested_one() {
    if !ready(&[]) {
        return;
    }
    let image = |arch: &str| {
        Image::new(vec![Layer::new()
            .file("platform", format!("{arch}\n"), 0o644)
            .file(&format!("only-{arch}"), "", 0o644)
            .build(Compression::Gzip)])
        .arch(arch)
    };
    let dir = common::tempdir();
    let layout_dir = dir.path().join("layout");
    let mut layout = OciLayout::create(&layout_dir);
    let index = layout.add_index("multi", &[image("amd64"), image("arm64")]);
    let reference = push(&layout_dir, "multi", plain(), "berth-test/multi:t");
    let id_of = |arch: &str| {
        let i = if arch == "amd64" { 0 } else { 1 };
        index.images[i].config_digest.clone()
    };

    if let Some(host) = host_arch() {
        let b = Berth::new();
        let j = b.pull(&reference, &["--tls-verify=false"]).ok().json();
        assert_eq!(j["image_id"], id_of(host).as_str(), "{j}");
        let co = b.checkout(&reference, "default");
        assert_eq!(
            std::fs::read_to_string(co.join("platform")).unwrap(),
            format!("{host}\n")
        );
    }
    for arch in ["arm64", "amd64"] {
        let b = Berth::new();
        let platform = format!("linux/{arch}");
        let j = b
            .pull(&reference, &["--tls-verify=false", "--platform", &platform])
            .ok()
            .json();
        assert_eq!(j["image_id"], id_of(arch).as_str(), "{j}");
        let co = b.checkout(&reference, arch);
        assert_eq!(
            std::fs::read_to_string(co.join("platform")).unwrap(),
            format!("{arch}\n")
        );
        assert!(co.join(format!("only-{arch}")).exists());
    }
    // No exit code is promised for a missing platform; it must fail and name it.
    let b = Berth::new();
    let r = b.pull(
        &reference,
        &["--tls-verify=false", "--platform", "linux/s390x"],
    );
    assert_ne!(r.code, 0, "{}", r.stderr);
    r.stderr_has(&["s390x"]);
}

// ---------------------------------------------------------------------------------------
// e. zstd and uncompressed layers; Docker schema 2 media types
// ---------------------------------------------------------------------------------------

#[test]
fn zstd_and_uncompressed_layers_match_umoci_unpack_of_the_gzip_image() {
    if !ready(&["umoci"]) {
        return;
    }
    let tars = [
        Layer::new()
            .dir("etc", 0o755)
            .file("etc/os-release", "ID=berth-test\n", 0o644)
            .dir("data", 0o700)
            .file("data/blob", random_bytes(200_000, 3), 0o600)
            .symlink("data/link", "blob")
            .into_tar(),
        Layer::new()
            .whiteout("data/link")
            .file("data/new", "added in layer 2\n", 0o644)
            .hardlink("data/new-link", "data/new")
            .into_tar(),
    ];
    let image =
        |c: Compression| Image::new(tars.iter().map(|t| Blob::from_tar(t.clone(), c)).collect());
    let dir = common::tempdir();
    let layout_dir = dir.path().join("layout");
    let mut layout = OciLayout::create(&layout_dir);
    layout.add_image("gzip", &image(Compression::Gzip));
    layout.add_image("zstd", &image(Compression::Zstd));
    layout.add_image("plain", &image(Compression::None));
    // umoci 0.4.7 (Debian) cannot read zstd layers, so the reference is umoci's
    // extraction of the gzip image built from the very same tars.
    let reference = umoci_unpack(&layout_dir, "gzip", &dir.path().join("umoci"));
    assert!(reference.join("data/new").is_file());

    for tag in ["zstd", "plain"] {
        let r = push(
            &layout_dir,
            tag,
            plain(),
            &format!("berth-test/compress:{tag}"),
        );
        let b = Berth::new();
        let j = b.pull(&r, &["--tls-verify=false"]).ok().json();
        assert_eq!(j["layers"].as_array().unwrap().len(), 2, "{j}");
        let co = b.checkout(&r, tag);
        assert_same_tree(&reference, &co);
        b.fsck();
    }
}

#[test]
fn docker_schema2_image_pulls_and_matches() {
    if !ready(&["umoci"]) {
        return;
    }
    let layer = Layer::new()
        .dir("srv", 0o755)
        .file("srv/index.html", "docker media types\n", 0o644)
        .symlink("srv/alias.html", "index.html")
        .build(Compression::Gzip);
    let oci = push_image(
        plain(),
        "berth-test/oci-twin",
        Image::new(vec![layer.clone()]),
    );
    // skopeo 1.9's oci: transport ignores index.json entries with Docker media types, so
    // this one goes up over raw HTTP.
    let docker_image = Image::new(vec![layer]).docker_media_types();
    let dir = common::tempdir();
    let built = OciLayout::create(dir.path().join("docker-layout")).store_image(&docker_image);
    let docker_ref = push_raw(plain(), "berth-test/docker-v2s2", "t", &built);
    let reference = umoci_unpack(&oci.layout, &oci.tag, &dir.path().join("umoci"));
    let b = Berth::new();
    let j = b.pull(&docker_ref, &["--tls-verify=false"]).ok().json();
    assert_eq!(j["digest"], built.digest.as_str(), "{j}");
    assert_eq!(j["image_id"], built.config_digest.as_str(), "{j}");
    let co = b.checkout(&docker_ref, "docker");
    assert_same_tree(&reference, &co);
}

// ---------------------------------------------------------------------------------------
// f. TLS + htpasswd: credentials from every source, wrong password, missing CA
// ---------------------------------------------------------------------------------------

/// A small image pushed to the TLS registry once.
fn tls_image() -> &'static Pushed {
    static P: OnceLock<Pushed> = OnceLock::new();
    P.get_or_init(|| {
        let layer = Layer::new()
            .file("hello", "over TLS\n", 0o644)
            .build(Compression::Gzip);
        push_image(tls(), "berth-test/private", Image::new(vec![layer]))
    })
}

/// `{"auths":{"ADDR":{"auth":base64(user:pass)}}}`.
fn auth_json(addr: &str, user: &str, pass: &str) -> String {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    serde_json::json!({"auths": {addr: {"auth": auth}}}).to_string()
}

fn write_file(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Pulls the TLS image with `flags` and checks the checkout.
fn pull_tls_ok(b: &Berth, flags: &[&str]) {
    let p = tls_image();
    let j = b.pull(&p.reference, flags).ok().json();
    assert_eq!(j["digest"], p.built.digest.as_str(), "{j}");
    let co = b.checkout(&p.reference, "tls");
    assert_eq!(
        std::fs::read_to_string(co.join("hello")).unwrap(),
        "over TLS\n"
    );
}

#[test]
fn tls_registry_accepts_credentials_from_each_source() {
    if !ready(&["openssl", "htpasswd"]) {
        return;
    }
    let reg = tls();
    let cert_dir = reg.cert_dir().to_str().unwrap().to_string();
    let good = auth_json(reg.addr(), TLS_USER, TLS_PASS);
    let creds = format!("{TLS_USER}:{TLS_PASS}");

    // --creds
    pull_tls_ok(&Berth::new(), &["--cert-dir", &cert_dir, "--creds", &creds]);

    // --authfile
    let b = Berth::new();
    let f = b.dir().join("authfile.json");
    write_file(&f, &good);
    pull_tls_ok(
        &b,
        &["--cert-dir", &cert_dir, "--authfile", f.to_str().unwrap()],
    );

    // $REGISTRY_AUTH_FILE
    let mut b = Berth::new();
    let f = b.dir().join("registry-auth.json");
    write_file(&f, &good);
    b.set_env("REGISTRY_AUTH_FILE", &f);
    pull_tls_ok(&b, &["--cert-dir", &cert_dir]);

    // $XDG_RUNTIME_DIR/containers/auth.json
    let b = Berth::new();
    write_file(&b.runtime_dir().join("containers/auth.json"), &good);
    pull_tls_ok(&b, &["--cert-dir", &cert_dir]);

    // $HOME/.docker/config.json
    let b = Berth::new();
    write_file(&b.home().join(".docker/config.json"), &good);
    pull_tls_ok(&b, &["--cert-dir", &cert_dir]);
}

#[test]
fn tls_registry_credential_sources_are_tried_in_order() {
    if !ready(&["openssl", "htpasswd"]) {
        return;
    }
    let reg = tls();
    let cert_dir = reg.cert_dir().to_str().unwrap().to_string();
    let good = auth_json(reg.addr(), TLS_USER, TLS_PASS);
    let bad = auth_json(reg.addr(), TLS_USER, "wrong");
    let p = tls_image();

    // --creds beats a good --authfile.
    let b = Berth::new();
    let f = b.dir().join("good.json");
    write_file(&f, &good);
    let wrong = format!("{TLS_USER}:wrong");
    b.pull(
        &p.reference,
        &[
            "--cert-dir",
            &cert_dir,
            "--creds",
            &wrong,
            "--authfile",
            f.to_str().unwrap(),
        ],
    )
    .code(5);

    // --authfile beats $REGISTRY_AUTH_FILE.
    let mut b = Berth::new();
    let good_f = b.dir().join("good.json");
    let bad_f = b.dir().join("bad.json");
    write_file(&good_f, &good);
    write_file(&bad_f, &bad);
    b.set_env("REGISTRY_AUTH_FILE", &bad_f);
    pull_tls_ok(
        &b,
        &[
            "--cert-dir",
            &cert_dir,
            "--authfile",
            good_f.to_str().unwrap(),
        ],
    );

    // $REGISTRY_AUTH_FILE beats $XDG_RUNTIME_DIR/containers/auth.json and ~/.docker.
    let mut b = Berth::new();
    let good_f = b.dir().join("good.json");
    write_file(&good_f, &good);
    write_file(&b.runtime_dir().join("containers/auth.json"), &bad);
    write_file(&b.home().join(".docker/config.json"), &bad);
    b.set_env("REGISTRY_AUTH_FILE", &good_f);
    pull_tls_ok(&b, &["--cert-dir", &cert_dir]);

    // $XDG_RUNTIME_DIR/containers/auth.json beats ~/.docker/config.json.
    let b = Berth::new();
    write_file(&b.runtime_dir().join("containers/auth.json"), &good);
    write_file(&b.home().join(".docker/config.json"), &bad);
    pull_tls_ok(&b, &["--cert-dir", &cert_dir]);
}

#[test]
fn tls_registry_ca_from_berth_certs_d() {
    if !ready(&["openssl", "htpasswd"]) {
        return;
    }
    let reg = tls();
    let b = Berth::new();
    let host_dir = b.certs_d().join(reg.addr());
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::copy(reg.ca_pem_path(), host_dir.join("ca.crt")).unwrap();
    pull_tls_ok(&b, &["--creds", &format!("{TLS_USER}:{TLS_PASS}")]);
}

#[test]
fn tls_registry_refuses_wrong_or_missing_credentials_with_exit_5() {
    if !ready(&["openssl", "htpasswd"]) {
        return;
    }
    let reg = tls();
    let p = tls_image();
    let cert_dir = reg.cert_dir().to_str().unwrap().to_string();
    let b = Berth::new();
    let wrong = format!("{TLS_USER}:not-the-password");
    b.pull(&p.reference, &["--cert-dir", &cert_dir, "--creds", &wrong])
        .code(5)
        .stderr_has_any(&["unauthorized", "authentication"]);
    b.pull(&p.reference, &["--cert-dir", &cert_dir])
        .code(5)
        .stderr_has_any(&["unauthorized", "authentication"]);
    assert_not_listed(&b, "berth-test/private");
}

#[test]
fn tls_registry_without_its_ca_fails_with_exit_5_naming_the_certificate() {
    if !ready(&["openssl", "htpasswd"]) {
        return;
    }
    let p = tls_image();
    let b = Berth::new();
    b.pull(
        &p.reference,
        &["--creds", &format!("{TLS_USER}:{TLS_PASS}")],
    )
    .code(5)
    .stderr_has(&["certificate"]);
}

// ---------------------------------------------------------------------------------------
// g. hostile layers
// ---------------------------------------------------------------------------------------

/// A one-layer (uncompressed, so digest == diff_id) image pushed to the plain registry.
fn push_layer(repo: &str, layer: Blob) -> Pushed {
    push_image(plain(), repo, Image::new(vec![layer]))
}

/// Pushes an image of `layer` to `repo` and asserts that a pull of it fails
/// with exit 6 naming the layer's digest and leaves no image listed.
#[track_caller]
fn assert_layer_refused(repo: &str, layer: Blob) -> Berth {
    let digest = layer.digest.clone();
    let p = push_layer(repo, layer);
    let b = Berth::new();
    b.pull(&p.reference, &["--tls-verify=false"])
        .code(6)
        .stderr_has(&[&digest]);
    assert_not_listed(&b, repo);
    b
}

/// Asserts that no file named `name` exists outside the checkout dirs of `b`: not in
/// `b`'s directory tree (repo, root), not next to it, not in `/`, `/tmp` or the cwd.
#[track_caller]
fn assert_not_escaped(b: &Berth, name: &str) {
    let outside = [
        PathBuf::from("/").join(name),
        PathBuf::from("/tmp").join(name),
        std::env::current_dir().unwrap().join(name),
        b.dir().parent().unwrap().join(name),
        b.root().parent().unwrap().join(name),
    ];
    for p in &outside {
        assert!(!p.exists(), "a layer entry escaped to {}", p.display());
    }
    let found: Vec<_> = walk(b.dir())
        .into_iter()
        .filter(|(p, _)| p.file_name().is_some_and(|n| n == name))
        .filter(|(p, _)| {
            !p.components()
                .next()
                .is_some_and(|c| c.as_os_str().to_string_lossy().starts_with("co-"))
        })
        .map(|(p, _)| p)
        .collect();
    assert!(found.is_empty(), "escaped entries: {found:?}");
}

#[test]
fn absolute_paths_in_a_layer_land_inside_the_image() {
    if !ready(&[]) {
        return;
    }
    let name = common::unique("berth-abs");
    let file = format!("/{name}");
    let nested = format!("/abs/{name}");
    let layer = Layer::new()
        .dir("abs", 0o755)
        .raw(
            raw_header(file.as_bytes(), EntryType::Regular, 0o644, 4, b""),
            b"top\n",
        )
        .raw(
            raw_header(nested.as_bytes(), EntryType::Regular, 0o644, 7, b""),
            b"nested\n",
        )
        .build(Compression::None);
    let p = push_layer("berth-test/hostile-abs", layer);
    let b = Berth::new();
    b.pull(&p.reference, &["--tls-verify=false"]).ok();
    let co = b.checkout(&p.reference, "abs");
    assert_eq!(std::fs::read_to_string(co.join(&name)).unwrap(), "top\n");
    assert_eq!(
        std::fs::read_to_string(co.join("abs").join(&name)).unwrap(),
        "nested\n"
    );
    assert_not_escaped(&b, &name);
}

#[test]
fn dotdot_entries_are_refused_with_exit_6_and_no_image() {
    if !ready(&[]) {
        return;
    }
    for (i, prefix) in ["../", "a/../../", "./../../../"].iter().enumerate() {
        let name = common::unique("berth-escape");
        let evil = format!("{prefix}{name}");
        let layer = Layer::new()
            .dir("a", 0o755)
            .file("a/fine", "fine\n", 0o644)
            .raw(
                raw_header(evil.as_bytes(), EntryType::Regular, 0o644, 5, b""),
                b"evil\n",
            )
            .build(Compression::None);
        let repo = format!("berth-test/hostile-dotdot{i}");
        let b = assert_layer_refused(&repo, layer);
        assert_not_escaped(&b, &name);
    }
}

#[test]
fn hardlinks_to_later_or_outside_entries_are_refused_with_exit_6() {
    if !ready(&[]) {
        return;
    }
    let to_later = Layer::new()
        .hardlink("first", "later")
        .file("later", "later\n", 0o644)
        .build(Compression::None);
    let outside = Layer::new()
        .file("x", "x\n", 0o644)
        .raw(
            raw_header(
                b"passwd",
                EntryType::Link,
                0o644,
                0,
                b"../../../../etc/passwd",
            ),
            b"",
        )
        .build(Compression::None);
    let missing = Layer::new()
        .hardlink("dangling", "does/not/exist")
        .build(Compression::None);
    for (i, layer) in [to_later, outside, missing].into_iter().enumerate() {
        let repo = format!("berth-test/hostile-hardlink{i}");
        assert_layer_refused(&repo, layer);
    }
}

#[test]
fn device_nodes_are_dropped_with_a_warning() {
    if !ready(&[]) {
        return;
    }
    let layer = Layer::new()
        .dir("dev", 0o755)
        .device("dev/null", true, 1, 3)
        .device("dev/sda", false, 8, 0)
        .file("keep", "kept\n", 0o644)
        .build(Compression::None);
    let p = push_layer("berth-test/hostile-dev", layer);
    let b = Berth::new();
    b.pull(&p.reference, &["--tls-verify=false"])
        .ok()
        .stderr_has(&["dev/null", "dev/sda"]);
    let co = b.checkout(&p.reference, "dev");
    assert_eq!(std::fs::read_to_string(co.join("keep")).unwrap(), "kept\n");
    let devices: Vec<_> = walk(&co)
        .into_iter()
        .filter(|(_, m)| m.file_type().is_char_device() || m.file_type().is_block_device())
        .map(|(p, _)| p)
        .collect();
    assert!(
        devices.is_empty(),
        "device nodes in the checkout: {devices:?}"
    );
}

#[test]
fn absolute_symlink_is_stored_as_a_symlink_and_touches_nothing_outside() {
    if !ready(&[]) {
        return;
    }
    let passwd_before = std::fs::read("/etc/passwd").unwrap();
    let layer = Layer::new()
        .dir("etc", 0o755)
        .symlink("etc/passwd", "/etc/passwd")
        .symlink("shadow-link", "../../../../etc/shadow")
        .build(Compression::None);
    let p = push_layer("berth-test/hostile-symlink", layer);
    let b = Berth::new();
    b.pull(&p.reference, &["--tls-verify=false"]).ok();
    let co = b.checkout(&p.reference, "symlink");
    assert_eq!(
        std::fs::read_link(co.join("etc/passwd")).unwrap(),
        Path::new("/etc/passwd")
    );
    assert_eq!(
        std::fs::read_link(co.join("shadow-link")).unwrap(),
        Path::new("../../../../etc/shadow")
    );
    assert_eq!(std::fs::read("/etc/passwd").unwrap(), passwd_before);
}

#[test]
fn entries_below_a_symlink_never_write_outside() {
    if !ready(&[]) {
        return;
    }
    let b = Berth::new();
    let outside = b.dir().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let target = outside.to_str().unwrap().to_string();
    let through_abs = Layer::new()
        .symlink("escape", &target)
        .file("escape/pwned", "pwned\n", 0o644)
        .build(Compression::None);
    let through_rel = Layer::new()
        .symlink("up", "../../../../../../../../../..")
        .file(&format!("up{}/pwned-rel", target), "pwned\n", 0o644)
        .build(Compression::None);
    for (i, layer) in [through_abs, through_rel].into_iter().enumerate() {
        let p = push_layer(&format!("berth-test/hostile-through{i}"), layer);
        let r = b.pull(&p.reference, &["--tls-verify=false"]);
        assert!(
            r.code == 0 || r.code == 6,
            "want 0 or 6, got {}: {}",
            r.code,
            r.stderr
        );
        let left: Vec<_> = std::fs::read_dir(&outside).unwrap().collect();
        assert!(
            left.is_empty(),
            "a write went through a layer symlink: {left:?}"
        );
    }
}

#[test]
fn malformed_layers_are_refused_with_exit_6_naming_the_layer() {
    if !ready(&[]) {
        return;
    }
    let tar = Layer::new()
        .dir("data", 0o755)
        .file("data/big", random_bytes(20_000, 11), 0o644)
        .file("data/after", "after\n", 0o644)
        .into_tar();
    let gz = Compression::Gzip.compress(&tar);
    let cases = [
        (
            "truncated-tar",
            Blob::garbage(truncated_tar(&tar, 4096), Compression::None),
        ),
        (
            "truncated-gzip",
            Blob::garbage(gz[..gz.len() / 2].to_vec(), Compression::Gzip),
        ),
        (
            "garbage-gzip",
            Blob::garbage(random_bytes(5000, 5), Compression::Gzip),
        ),
        (
            "garbage-tar",
            Blob::garbage(random_bytes(5000, 6), Compression::None),
        ),
    ];
    for (what, layer) in cases {
        let repo = format!("berth-test/malformed-{what}");
        let b = assert_layer_refused(&repo, layer);
        b.fsck();
    }
}

// ---------------------------------------------------------------------------------------
// h. registry faults through the front
// ---------------------------------------------------------------------------------------

/// An uncompressed one-file layer whose file data starts at byte 512.
fn data_layer(len: usize, seed: u64) -> Blob {
    Layer::new()
        .file("data", random_bytes(len, seed), 0o644)
        .build(Compression::None)
}

#[test]
fn flipped_byte_in_a_blob_exits_6_naming_both_digests() {
    if !ready(&[]) {
        return;
    }
    let layer = data_layer(4096, 21);
    let p = push_layer("berth-test/fault-flip", layer.clone());
    let front = Front::new(plain().addr());
    let offset = 1000;
    front.flip_byte(&layer.digest, offset);
    let mut flipped = layer.bytes.clone();
    flipped[offset] ^= 0xff;
    let actual = digest_of(&flipped);
    let via = p.reference.replacen(plain().addr(), front.addr(), 1);
    let b = Berth::new();
    b.pull(&via, &["--tls-verify=false"])
        .code(6)
        .stderr_has(&[&layer.digest, &actual]);
    assert_not_listed(&b, "berth-test/fault-flip");
    b.fsck();
}

#[test]
fn server_errors_are_retried() {
    if !ready(&[]) {
        return;
    }
    let layer = data_layer(4096, 22);
    let p = push_layer("berth-test/fault-500", layer.clone());
    let front = Front::new(plain().addr());
    let blob = format!("/blobs/{}", layer.digest);
    front.fail_status(&blob, 500, 2);
    let via = p.reference.replacen(plain().addr(), front.addr(), 1);
    let b = Berth::new();
    b.pull(&via, &["--tls-verify=false"]).ok();
    let gets = front.matching("GET", &blob);
    assert!(gets.len() >= 3, "want 2 failures then a retry: {gets:?}");
    assert_eq!(gets.last().unwrap().status, 200, "{gets:?}");
    let co = b.checkout(&via, "retried");
    assert_eq!(
        std::fs::read(co.join("data")).unwrap(),
        random_bytes(4096, 22)
    );
}

#[test]
fn connection_closed_mid_body_exits_5_and_a_later_pull_completes() {
    if !ready(&[]) {
        return;
    }
    let layer = data_layer(1 << 20, 23);
    let p = push_layer("berth-test/fault-close", layer.clone());
    let front = Front::new(plain().addr());
    front.close_mid_body(&format!("/blobs/{}", layer.digest), 100_000);
    let via = p.reference.replacen(plain().addr(), front.addr(), 1);
    let b = Berth::new();
    b.pull(&via, &["--tls-verify=false"]).code(5);
    assert_not_listed(&b, "berth-test/fault-close");
    front.clear();
    let j = b.pull(&via, &["--tls-verify=false"]).ok().json();
    assert_eq!(j["digest"], p.built.digest.as_str(), "{j}");
    b.fsck();
    let co = b.checkout(&via, "after-close");
    assert_eq!(
        std::fs::read(co.join("data")).unwrap(),
        random_bytes(1 << 20, 23)
    );
}

#[test]
fn anonymous_bearer_token_flow() {
    if !ready(&[]) {
        return;
    }
    let p = push_layer(
        "berth-test/token",
        Layer::new()
            .file("token", "bearer\n", 0o644)
            .build(Compression::Gzip),
    );
    let front = Front::token_auth(plain().addr());
    let via = p.reference.replacen(plain().addr(), front.addr(), 1);
    let b = Berth::new();
    b.pull(&via, &["--tls-verify=false"]).ok();
    assert!(
        !front.matching("GET", "/token").is_empty(),
        "berth never asked for a token: {:?}",
        front.requests()
    );
    let co = b.checkout(&via, "token");
    assert_eq!(
        std::fs::read_to_string(co.join("token")).unwrap(),
        "bearer\n"
    );
}

// ---------------------------------------------------------------------------------------
// i. references and registries.conf
// ---------------------------------------------------------------------------------------

#[test]
fn invalid_references_exit_2_naming_the_part() {
    // Parsing happens before any I/O: no root or registry needed.
    let b = Berth::new();
    for (reference, part) in [
        ("Foo/Bar", "Foo"),
        ("127.0.0.1:5000/x:bad tag", "bad tag"),
        ("oci:", "oci"),
        ("127.0.0.1:5000/x@sha256:1234", "sha256:1234"),
        ("docker-archive:", "docker-archive"),
    ] {
        b.run(&["pull", reference]).code(2).stderr_has(&[part]);
    }
}

#[test]
fn short_name_without_search_registries_exits_2() {
    let b = Berth::new();
    b.run(&["pull", "berth-test/short:t"])
        .code(2)
        .stderr_has(&["berth-test/short"]);
}

#[test]
fn short_name_resolves_through_registries_conf() {
    if !ready(&[]) {
        return;
    }
    let p = push_layer(
        "berth-test/short",
        Layer::new()
            .file("short", "resolved\n", 0o644)
            .build(Compression::Gzip),
    );
    let b = Berth::new();
    b.write_registries_conf(&format!(
        "unqualified-search-registries = [\"{0}\"]\n\n[[registry]]\nlocation = \"{0}\"\ninsecure = true\n",
        plain().addr()
    ));
    let j = b.pull("berth-test/short:t", &[]).ok().json();
    assert_eq!(
        j["name"],
        format!("{}/berth-test/short", plain().addr()).as_str(),
        "{j}"
    );
    assert_eq!(j["digest"], p.built.digest.as_str(), "{j}");
}

#[test]
fn plain_http_registry_needs_tls_verify_false_or_insecure() {
    if !ready(&[]) {
        return;
    }
    let p = push_layer(
        "berth-test/insecure",
        Layer::new()
            .file("x", "x\n", 0o644)
            .build(Compression::Gzip),
    );
    let b = Berth::new();
    b.pull(&p.reference, &[]).code(5);
    b.allow_plain_http(plain().addr());
    b.pull(&p.reference, &[]).ok();
}

#[test]
fn missing_tag_or_repository_exits_3() {
    if !ready(&[]) {
        return;
    }
    let b = Berth::new();
    let missing = format!("{}/berth-test/no-such-repo:t", plain().addr());
    b.pull(&missing, &["--tls-verify=false"]).code(3);
}

#[test]
fn unreachable_registry_exits_5() {
    if !common::require_root() {
        return;
    }
    let port = common::registry::free_port();
    let b = Berth::new();
    b.pull(&format!("127.0.0.1:{port}/x/y:t"), &["--tls-verify=false"])
        .code(5);
}

// ---------------------------------------------------------------------------------------
// j. oci:, oci-archive:, docker-archive:
// ---------------------------------------------------------------------------------------

#[test]
fn local_transports_pull_and_match() {
    if !ready(&["umoci", "apt-get", "dpkg-deb"]) {
        return;
    }
    let fx = layered();
    let dir = common::tempdir();
    let oci_tar = dir.path().join("image.oci.tar");
    oci_archive(&fx.pushed.layout, &oci_tar);
    let docker_tar = dir.path().join("image.docker.tar");
    let config_digest = docker_archive(
        &docker_tar,
        &fx.pushed.image,
        &["example.org/berth-test/layered:t"],
    );
    assert_eq!(config_digest, fx.pushed.built.config_digest);
    let refs = [
        format!("oci:{}:{}", fx.pushed.layout.display(), fx.pushed.tag),
        format!("oci-archive:{}:{}", oci_tar.display(), fx.pushed.tag),
        format!("docker-archive:{}", docker_tar.display()),
    ];
    for (i, r) in refs.iter().enumerate() {
        let b = Berth::new();
        let j = b.pull(r, &[]).ok().json();
        assert_eq!(j["image_id"], fx.pushed.built.config_digest.as_str(), "{j}");
        let reference = j["reference"].as_str().unwrap_or(r).to_string();
        let co = b.checkout(&reference, &format!("t{i}"));
        assert_same_tree(&fx.rootfs, &co);
        b.fsck();
    }
}

// ---------------------------------------------------------------------------------------
// k. images rm and prune
// ---------------------------------------------------------------------------------------

#[test]
fn rm_then_prune_removes_unreferenced_layers_only() {
    if !ready(&["umoci", "apt-get", "dpkg-deb"]) {
        return;
    }
    let fx = layered();
    let base = fx.pushed.built.layers[0].clone();
    let top = Layer::new()
        .file("kept-image", "still here\n", 0o644)
        .build(Compression::Gzip);
    let other = push_image(
        plain(),
        "berth-test/prune-keep",
        Image::new(vec![base, top]),
    );
    let b = Berth::new();
    b.pull(&fx.pushed.reference, &["--tls-verify=false"]).ok();
    b.pull(&other.reference, &["--tls-verify=false"]).ok();

    b.run(&["images", "rm", &fx.pushed.reference]).ok();
    let listed: Vec<String> = b
        .images()
        .iter()
        .map(|i| i["reference"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(!listed.contains(&fx.pushed.reference), "{listed:?}");
    assert!(listed.contains(&other.reference), "{listed:?}");

    let pruned = b.json(&["images", "prune"]);
    assert!(
        pruned["removed_layers"].as_u64().is_some_and(|n| n > 0),
        "{pruned}"
    );
    b.fsck();
    let again = b.json(&["images", "prune"]);
    assert_eq!(again["removed_layers"], 0, "{again}");

    // The image sharing the base layer is intact.
    let co = b.checkout(&other.reference, "kept");
    assert_eq!(
        std::fs::read_to_string(co.join("kept-image")).unwrap(),
        "still here\n"
    );
    assert!(co.join("bin/busybox").is_file());
    // And the removed one can be pulled again (its base layer is still there).
    let j = b
        .pull(&fx.pushed.reference, &["--tls-verify=false"])
        .ok()
        .json();
    assert!(!pulled_layers(&j)[0].1, "{j}");
}

#[test]
fn rm_of_an_unknown_image_exits_3() {
    if !ready(&[]) {
        return;
    }
    let b = Berth::new();
    b.run(&[
        "images",
        "rm",
        &format!("{}/berth-test/nope:t", plain().addr()),
    ])
    .code(3);
}

// ---------------------------------------------------------------------------------------
// l. SIGKILL during a pull
// ---------------------------------------------------------------------------------------

#[test]
fn sigkill_during_pull_leaves_no_image_and_a_clean_repo() {
    if !ready(&[]) {
        return;
    }
    const BIG: usize = 30 << 20;
    let small = Layer::new()
        .file("small", "small\n", 0o644)
        .build(Compression::Gzip);
    let content = random_bytes(BIG, 99);
    let big = Layer::new()
        .dir("big", 0o755)
        .file("big/random", &content, 0o644)
        .build(Compression::None);
    let p = push_image(
        plain(),
        "berth-test/sigkill",
        Image::new(vec![small, big.clone()]),
    );
    let front = Front::new(plain().addr());
    let blob = format!("/blobs/{}", big.digest);
    front.throttle(&blob, 256 << 10, Duration::from_millis(5));
    let via = p.reference.replacen(plain().addr(), front.addr(), 1);
    let b = Berth::new();

    type Moment = fn(&common::front::Request) -> bool;
    let moments: [(&str, Moment); 3] = [
        ("blob request started", |_| true),
        ("half the blob sent", |r| {
            r.total > 0 && r.sent >= r.total / 2
        }),
        ("blob fully sent", |r| {
            r.done && r.total > 0 && r.sent == r.total
        }),
    ];
    for (what, reached) in moments {
        let seen = front.matching("GET", &blob).len();
        let mut child = b.spawn(&["--json", "pull", "--tls-verify=false", &via]);
        let mut exited = None;
        common::wait_for(what, Duration::from_secs(120), || {
            if let Some(st) = child.try_wait().unwrap() {
                exited = Some(st);
                return true;
            }
            front
                .matching("GET", &blob)
                .get(seen..)
                .is_some_and(|new| new.iter().any(reached))
        });
        if let Some(st) = exited {
            let run = common::berth::finish(child, vec![via.clone()], Duration::from_secs(5));
            panic!("berth exited ({st}) before \"{what}\": {}", run.stderr);
        }
        child.kill().unwrap();
        let status = child.wait().unwrap();
        if status.signal() == Some(9) {
            assert_not_listed(&b, "berth-test/sigkill");
        } else {
            eprintln!("note: the pull finished before the kill at \"{what}\" ({status})");
        }
        b.fsck();
    }

    front.clear();
    let j = b.pull(&via, &["--tls-verify=false"]).ok().json();
    assert_eq!(j["digest"], p.built.digest.as_str(), "{j}");
    b.fsck();
    let co = b.checkout(&via, "after-kill");
    let got = std::fs::read(co.join("big/random")).unwrap();
    assert_eq!(got.len(), BIG);
    assert!(got == content, "big/random differs after resume");
    let listed: BTreeSet<String> = b
        .images()
        .iter()
        .filter_map(|i| i["digest"].as_str().map(String::from))
        .collect();
    assert!(listed.contains(&p.built.digest), "{listed:?}");
}

#[test]
fn a_second_writer_waits_for_the_lock_then_completes() {
    if !ready(&["umoci", "apt-get", "dpkg-deb"]) {
        return;
    }
    use std::io::{BufRead, BufReader};
    let fx = layered();
    let b = Berth::new();
    let lock_path = b.root().join("var/lib/berth/lock");
    std::fs::create_dir_all(lock_path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(&lock_path).unwrap();
    // Another berth (played by this test) holds the store's write lock.
    let held = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .unwrap();
    let source = format!("oci:{}:{}", fx.pushed.layout.display(), fx.pushed.tag);
    let mut child = b.spawn(&["pull", source.as_str()]);
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let waiting = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("berth said nothing while the lock was held");
    assert!(waiting.contains("Waiting for another berth"), "{waiting}");
    assert!(
        child.try_wait().unwrap().is_none(),
        "berth did not wait for the lock"
    );
    assert!(
        b.images().is_empty(),
        "an image appeared while the lock was held"
    );
    drop(held);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(b.images().len(), 1);
    b.fsck();
}

#[test]
fn rm_refuses_an_image_an_installed_container_uses_unless_forced() {
    if !ready(&["umoci", "apt-get", "dpkg-deb"]) {
        return;
    }
    let fx = layered();
    let b = Berth::new();
    let source = format!("oci:{}:{}", fx.pushed.layout.display(), fx.pushed.tag);
    let j = b.pull(&source, &[]).ok().json();
    let reference = j["reference"].as_str().unwrap().to_string();
    // A deployment record as `berth install` writes it (info.json schema of
    // ROOT/var/lib/berth/containers/NAME.N).
    let dep = b.root().join("var/lib/berth/containers/web.0");
    std::fs::create_dir_all(&dep).unwrap();
    let info = serde_json::json!({"name": "web", "image": {"reference": reference, "commit": j["commit"]}});
    std::fs::write(dep.join("info.json"), info.to_string()).unwrap();
    assert_eq!(b.images()[0]["in_use"], true);
    let r = b.run(&["images", "rm", reference.as_str()]);
    r.code(4);
    assert!(r.stderr.contains("web"), "{}", r.stderr);
    assert_eq!(b.images().len(), 1);
    b.run(&["images", "rm", "--force", reference.as_str()])
        .code(0);
    assert!(b.images().is_empty());
}

// ---------------------------------------------------------------------------------------
// m. bounded input: sizes that lie, decompression bombs, corrupt local blobs
// ---------------------------------------------------------------------------------------

/// What a user would compare before and after a refused pull: every object path and
/// `ostree refs`.
fn store_state(b: &Berth) -> (BTreeSet<String>, String) {
    let out = std::process::Command::new("ostree")
        .arg("refs")
        .arg(format!("--repo={}", b.repo().display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "ostree refs failed: {out:?}");
    (b.objects(), String::from_utf8(out.stdout).unwrap())
}

/// A berth whose store already holds one small image (from an `oci:` layout), so "as
/// before" is not trivially empty; the temp dir keeps the layout alive.
fn store_with_one_image() -> (Berth, tempfile::TempDir) {
    let dir = common::tempdir();
    let mut layout = OciLayout::create(dir.path().join("base"));
    let layer = Layer::new()
        .file("base", "base\n", 0o644)
        .build(Compression::Gzip);
    layout.add_image("base", &Image::new(vec![layer]));
    let b = Berth::new();
    b.pull(&format!("oci:{}:base", layout.dir.display()), &[])
        .ok();
    (b, dir)
}

/// No blob download of a pull is left in the repo's tmp/.
#[track_caller]
fn assert_no_pull_tmp(b: &Berth) {
    let left: Vec<String> = std::fs::read_dir(b.repo().join("tmp"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("berth-pull-"))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "pull downloads left behind: {left:?}");
}

#[test]
fn registry_sending_more_than_declared_exits_6_and_stores_nothing() {
    if !ready(&[]) {
        return;
    }
    let layer = data_layer(4096, 31);
    let p = push_layer("berth-test/bounded-long", layer.clone());
    let front = Front::new(plain().addr());
    let via = p.reference.replacen(plain().addr(), front.addr(), 1);
    let (b, _keep) = store_with_one_image();
    let before = store_state(&b);
    let blobs = [
        ("layer", layer.digest.clone(), layer.size()),
        (
            "config",
            p.built.config_digest.clone(),
            p.built.config.len() as u64,
        ),
    ];
    for (what, digest, size) in blobs {
        front.clear();
        front.resize_blob(&digest, size + (1 << 20), Length::Announced);
        b.pull(&via, &["--tls-verify=false"]).code(6).stderr_has(&[
            &via,
            &digest,
            &format!("{size} bytes"),
            "more than",
        ]);
        assert_eq!(
            store_state(&b),
            before,
            "the refused {what} changed the store"
        );
        assert_not_listed(&b, "berth-test/bounded-long");
        assert_no_pull_tmp(&b);
    }
    b.fsck();
}

#[test]
fn registry_streaming_without_end_is_cut_off_at_the_declared_size() {
    if !ready(&[]) {
        return;
    }
    /// The front gives up after this much; berth must hang up long before.
    const ENDLESS: u64 = 4 << 30;
    let layer = data_layer(4096, 32);
    let p = push_layer("berth-test/bounded-endless", layer.clone());
    let front = Front::new(plain().addr());
    front.resize_blob(&layer.digest, ENDLESS, Length::CloseDelimited);
    let via = p.reference.replacen(plain().addr(), front.addr(), 1);
    let (b, _keep) = store_with_one_image();
    let before = store_state(&b);
    b.pull(&via, &["--tls-verify=false"]).code(6).stderr_has(&[
        &via,
        &layer.digest,
        &format!("{} bytes", layer.size()),
        "more than",
    ]);
    let blob = format!("/blobs/{}", layer.digest);
    common::wait_for(
        "the front to notice the hang-up",
        Duration::from_secs(120),
        || front.matching("GET", &blob).iter().all(|r| r.done),
    );
    let gets = front.matching("GET", &blob);
    assert_eq!(
        gets.len(),
        1,
        "an integrity fault must not be retried: {gets:?}"
    );
    assert!(
        gets[0].sent < ENDLESS,
        "berth read the endless body to its end: {gets:?}"
    );
    assert_eq!(store_state(&b), before);
    assert_not_listed(&b, "berth-test/bounded-endless");
    assert_no_pull_tmp(&b);
    b.fsck();
}

#[test]
fn manifest_by_tag_without_end_exits_6_and_is_not_read_to_its_end() {
    if !ready(&[]) {
        return;
    }
    let layer = data_layer(4096, 35);
    let p = push_layer("berth-test/bounded-manifest", layer);
    const ENDLESS: u64 = 4 << 30;
    for length in [Length::Announced, Length::CloseDelimited] {
        let front = Front::new(plain().addr());
        front.add(Rule {
            path_contains: "/manifests/".into(),
            method: Some("GET".into()),
            action: Action::Resize {
                to: ENDLESS,
                length,
            },
            times: None,
        });
        let via = p.reference.replacen(plain().addr(), front.addr(), 1);
        let b = Berth::new();
        b.pull(&via, &["--tls-verify=false"]).code(6).stderr_has(&[
            &via,
            "manifest t on",
            "more than 4194304 bytes",
        ]);
        common::wait_for(
            "the front to notice the hang-up",
            Duration::from_secs(120),
            || front.matching("GET", "/manifests/").iter().all(|r| r.done),
        );
        let gets = front.matching("GET", "/manifests/");
        assert_eq!(gets.len(), 1, "a too-large manifest was retried: {gets:?}");
        assert!(
            gets[0].sent < 64 << 20,
            "berth read far past the 4 MiB manifest cap ({length:?}): {gets:?}"
        );
        assert_not_listed(&b, "berth-test/bounded-manifest");
    }
}

#[test]
fn registry_sending_less_than_declared_exits_6_naming_both_sizes() {
    if !ready(&[]) {
        return;
    }
    let layer = data_layer(4096, 33);
    let p = push_layer("berth-test/bounded-short", layer.clone());
    let front = Front::new(plain().addr());
    let short = layer.size() - 100;
    front.resize_blob(&layer.digest, short, Length::CloseDelimited);
    let via = p.reference.replacen(plain().addr(), front.addr(), 1);
    let b = Berth::new();
    b.pull(&via, &["--tls-verify=false"]).code(6).stderr_has(&[
        &layer.digest,
        &format!("{short} bytes"),
        &format!("declares {}", layer.size()),
    ]);
    assert_not_listed(&b, "berth-test/bounded-short");
}

/// A gzip layer of `mib` MiB of zeros in one file: a few KiB on the wire.
fn zeros_layer(mib: usize) -> Blob {
    Layer::new()
        .file("zeros", vec![0u8; mib << 20], 0o644)
        .build(Compression::Gzip)
}

#[test]
fn decompression_bomb_past_max_layer_size_exits_6_and_stores_nothing() {
    if !ready(&[]) {
        return;
    }
    let bomb = zeros_layer(32);
    assert!(bomb.size() < 1 << 20, "not much of a bomb: {}", bomb.size());
    let p = push_layer("berth-test/bounded-bomb", bomb.clone());
    let (b, _keep) = store_with_one_image();
    let before = store_state(&b);
    b.pull(
        &p.reference,
        &["--tls-verify=false", "--max-layer-size", "4M"],
    )
    .code(6)
    .stderr_has(&[&p.reference, &bomb.digest, "4 MiB", "--max-layer-size"]);
    assert_eq!(store_state(&b), before);
    assert_not_listed(&b, "berth-test/bounded-bomb");
    assert_no_pull_tmp(&b);
    b.fsck();
    // Under the default caps the same image is fine.
    b.pull(&p.reference, &["--tls-verify=false"]).ok();
}

#[test]
fn layers_past_max_image_size_together_exit_6_and_the_last_is_not_stored() {
    if !ready(&[]) {
        return;
    }
    let one = zeros_layer(3);
    let two = Layer::new()
        .file("zeros2", vec![0u8; 3 << 20], 0o644)
        .build(Compression::Gzip);
    let dir = common::tempdir();
    let mut layout = OciLayout::create(dir.path().join("layout"));
    layout.add_image("t", &Image::new(vec![one, two.clone()]));
    let source = format!("oci:{}:t", layout.dir.display());
    let b = Berth::new();
    let flags = ["--max-layer-size", "4M", "--max-image-size", "5M"];
    b.pull(&source, &flags).code(6).stderr_has(&[
        &source,
        &two.digest,
        "5 MiB",
        "--max-image-size",
    ]);
    let (_, refs) = store_state(&b);
    let hex = two.diff_id.trim_start_matches("sha256:");
    assert!(
        !refs.contains(hex),
        "the layer past the cap was stored: {refs}"
    );
    assert_not_listed(&b, &layout.dir.display().to_string());
    // The first layer is stored now (a pull resumes from it) and still counts.
    b.pull(&source, &flags)
        .code(6)
        .stderr_has(&["5 MiB", "--max-image-size"]);
    b.pull(
        &source,
        &["--max-layer-size", "4M", "--max-image-size", "7M"],
    )
    .ok();
    b.fsck();
}

#[test]
fn local_blob_with_a_flipped_byte_exits_6_naming_both_digests_and_the_file() {
    if !ready(&[]) {
        return;
    }
    for what in ["layer", "config"] {
        let dir = common::tempdir();
        let mut layout = OciLayout::create(dir.path().join("layout"));
        let layer = Layer::new()
            .file("data", random_bytes(20_000, 41), 0o644)
            .build(Compression::Gzip);
        let built = layout.add_image("t", &Image::new(vec![layer.clone()]));
        let (digest, mut bytes) = match what {
            "layer" => (layer.digest.clone(), layer.bytes.clone()),
            _ => (built.config_digest.clone(), built.config.clone()),
        };
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        let actual = digest_of(&bytes);
        let file = layout.blob_path(&digest);
        std::fs::write(&file, &bytes).unwrap();
        let archive = dir.path().join("image.oci.tar");
        oci_archive(&layout.dir, &archive);

        let (b, _keep) = store_with_one_image();
        let before = store_state(&b);
        let source = format!("oci:{}:t", layout.dir.display());
        b.pull(&source, &[])
            .code(6)
            .stderr_has(&[&digest, &actual, &file.display().to_string()]);
        let source = format!("oci-archive:{}:t", archive.display());
        b.pull(&source, &[]).code(6).stderr_has(&[
            &digest,
            &actual,
            &archive.display().to_string(),
        ]);
        assert_eq!(
            store_state(&b),
            before,
            "a corrupt {what} changed the store"
        );
        b.fsck();
    }
}
