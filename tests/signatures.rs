//! Image signatures against real parts, through `trust::verify::evaluate` and
//! the registry-backed signature source: Debian's docker-registry on
//! 127.0.0.1, GPG keys made by `gpg --batch`, simple signatures made by
//! Debian's skopeo (`copy --sign-by`) into a lookaside directory, read back
//! as `file://` inside a `--root` and over HTTP from 127.0.0.1; cosign
//! signatures written in the exact format (payload, `openssl dgst -sha256
//! -sign` with a P-256 key made by `openssl ecparam`) and pushed as the
//! `sha256-HEX.sig` tag. (Debian's skopeo is built without sigstore, so it
//! cannot make those.)
//!
//! Every test needs root, docker-registry, skopeo, gpg and openssl; without
//! them it prints one line and returns (or fails under
//! `BERTH_TEST_REQUIRE_ALL=1`). The registry, keys and signed images are
//! made once and shared through a `OnceLock`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use base64::Engine as _;
use berth::image::manifest::Platform;
use berth::image::reference::ImageRef;
use berth::image::regconf::{Credentials, RegistriesConf};
use berth::image::registry::{Remote, RemoteOptions};
use berth::rootfs::Root;
use berth::trust::cosign::{SIGNATURE_ANNOTATION, SIMPLESIGNING_MEDIA_TYPE};
use berth::trust::registries_d::Location;
use berth::trust::signatures::RegistrySignatures;
use berth::trust::verify::{evaluate, Subject, TrustError, Verified};
use berth::trust::{KeySource, KeyType, Requirement, SignedIdentity};
use berth::ErrorKind;
use common::oci::{Blob, Built, Compression, Image, Layer, OciLayout};
use common::registry::{push, push_raw, Registry};
use common::signing::{copy_signed, registries_d, GpgKey};
use common::{digest_of, require_all, run_ok};

const TOOLS: &[&str] = &["docker-registry", "skopeo", "gpg", "gpgconf", "openssl"];

/// An ECDSA P-256 key made by openssl: `(private PEM, public PEM)`.
fn cosign_key(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    run_ok(
        Command::new("openssl")
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
    run_ok(
        Command::new("openssl")
            .args(["ec", "-pubout", "-in"])
            .arg(&private)
            .arg("-out")
            .arg(&public),
    );
    (private, public)
}

/// Everything the tests share.
struct World {
    reg: Registry,
    /// The `--root` whose registries.d points at `ROOT/sigs` (file://).
    root: PathBuf,
    /// A root whose registries.d points at the HTTP lookaside.
    http_root: PathBuf,
    /// A root whose registries.d leaves sigstore attachments off.
    no_attach_root: PathBuf,
    trusted: GpgKey,
    other: GpgKey,
    cosign_priv: PathBuf,
    cosign_pub: PathBuf,
    cosign_other_pub: PathBuf,
    _dir: tempfile::TempDir,
}

/// A layout holding one small image as tag `t`.
fn layout(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(format!("layout-{name}"));
    let mut l = OciLayout::create(&path);
    let layer = Layer::new()
        .file("etc/content", content.as_bytes(), 0o644)
        .build(Compression::Gzip);
    l.add_image("t", &Image::new(vec![layer]));
    path
}

/// `skopeo copy --sign-by FPR` of `layout` to `ADDR/dest`, signatures
/// written to the lookaside-staging directory `staging`.
fn push_signed(
    w_dir: &Path,
    reg: &Registry,
    key: &GpgKey,
    layout: &Path,
    dest: &str,
    staging: &Path,
) {
    let source = format!("oci:{}:t", layout.display());
    copy_signed(w_dir, reg, key, &source, dest, staging, false);
}

/// The cosign payload for `digest` naming `identity`, as cosign writes it.
fn cosign_payload(digest: &str, identity: &str) -> Vec<u8> {
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{identity}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#
    )
    .into_bytes()
}

/// Signs `payload` with openssl: base64 of the DER ECDSA signature.
fn openssl_sign(dir: &Path, private: &Path, payload: &[u8]) -> String {
    let input = dir.join(common::unique("payload"));
    std::fs::write(&input, payload).unwrap();
    let out = run_ok(
        Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(private)
            .arg(&input),
    );
    base64::engine::general_purpose::STANDARD.encode(out.stdout)
}

/// The `.sig` manifest cosign writes for `(payload, signature)` pairs.
fn sig_manifest(sigs: &[(Vec<u8>, String)]) -> Built {
    let config =
        br#"{"architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let layers: Vec<Blob> = sigs
        .iter()
        .map(|(p, _)| Blob::garbage(p.clone(), Compression::None))
        .collect();
    let descriptors: Vec<serde_json::Value> = layers
        .iter()
        .zip(sigs)
        .map(|(b, (_, sig))| {
            serde_json::json!({
                "mediaType": SIMPLESIGNING_MEDIA_TYPE,
                "size": b.size(),
                "digest": b.digest,
                "annotations": { SIGNATURE_ANNOTATION: sig },
            })
        })
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "size": config.len(),
            "digest": digest_of(&config),
        },
        "layers": descriptors,
    }))
    .unwrap();
    Built {
        digest: digest_of(&manifest),
        manifest,
        media_type: OCI_MANIFEST.into(),
        config_digest: digest_of(&config),
        config,
        layers,
    }
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The tag cosign attaches `digest`'s signatures under.
fn sig_tag(digest: &str) -> String {
    format!("sha256-{}.sig", digest.strip_prefix("sha256:").unwrap())
}

/// Pushes the `.sig` tag for `digest` in `repo` with one signature layer per
/// `(payload, signature)`, over plain HTTP.
fn push_cosign(reg: &Registry, repo: &str, digest: &str, sigs: &[(Vec<u8>, String)]) {
    push_raw(reg, repo, &sig_tag(digest), &sig_manifest(sigs));
}

/// Serves `dir` over HTTP on 127.0.0.1 (GET only; 404 when absent) from a
/// thread that lives as long as the test process.
fn serve(dir: PathBuf) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut line = String::new();
            if BufReader::new(&conn).read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
            let file = dir.join(path.trim_start_matches('/'));
            let reply = match std::fs::read(&file) {
                Ok(body) if !path.contains("..") => {
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    r.extend(body);
                    r
                }
                _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_vec(),
            };
            let _ = conn.write_all(&reply);
        }
    });
    addr
}

/// Builds the shared world once: keys, images, signatures.
fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let dir = common::tempdir();
        let d = dir.path();
        let reg = Registry::plain();
        let root = d.join("root");
        let sigs = root.join("sigs");
        std::fs::create_dir_all(&sigs).unwrap();
        let trusted = GpgKey::new(d, "trusted");
        let other = GpgKey::new(d, "other");
        let (cosign_priv, cosign_pub) = cosign_key(d, "cosign");
        let (_, cosign_other_pub) = cosign_key(d, "cosign-other");
        let addr = reg.addr().to_string();
        registries_d(
            &root,
            &format!(
                "docker:\n  {addr}:\n    lookaside: file:///sigs\n    use-sigstore-attachments: true\n"
            ),
        );
        let http_root = d.join("http-root");
        let http = serve(sigs.clone());
        registries_d(&http_root, &format!("default-docker:\n  lookaside: http://{http}/\n"));
        let no_attach_root = d.join("no-attach-root");
        registries_d(
            &no_attach_root,
            &format!("docker:\n  {addr}:\n    lookaside: file:///sigs\n"),
        );

        // Signed by the trusted key, and the same image by the other key.
        let a = layout(d, "a", "a");
        push_signed(d, &reg, &trusted, &a, "signed:t", &sigs);
        push_signed(d, &reg, &other, &a, "by-other:t", &sigs);
        // Unsigned.
        push(&a, "t", &reg, "unsigned:t");
        // The signature of image a, moved to image b's digest: the registry
        // serves a manifest the signature does not sign.
        let b = layout(d, "b", "b");
        let b_ref = push(&b, "t", &reg, "tampered:t");
        let a_digest = remote(&format!("{addr}/signed:t")).1;
        let b_digest = remote(&b_ref).1;
        copy_signature(&sigs, "signed", &a_digest, "tampered", &b_digest);
        // Image a's signature for signed:t, offered for another repository.
        push(&a, "t", &reg, "elsewhere:t");
        copy_signature(&sigs, "signed", &a_digest, "elsewhere", &a_digest);

        // cosign: signed, tampered (payload of another digest), unsigned.
        push(&a, "t", &reg, "cosigned:t");
        let payload = cosign_payload(&a_digest, &format!("{addr}/cosigned:t"));
        let sig = openssl_sign(d, &cosign_priv, &payload);
        push_cosign(&reg, "cosigned", &a_digest, &[(payload, sig)]);
        push(&b, "t", &reg, "cosign-tampered:t");
        let payload = cosign_payload(&a_digest, &format!("{addr}/cosign-tampered:t"));
        let sig = openssl_sign(d, &cosign_priv, &payload);
        push_cosign(&reg, "cosign-tampered", &b_digest, &[(payload, sig)]);
        trusted.stop_agent();
        other.stop_agent();

        World {
            reg,
            root,
            http_root,
            no_attach_root,
            trusted,
            other,
            cosign_priv,
            cosign_pub,
            cosign_other_pub,
            _dir: dir,
        }
    })
}

fn copy_signature(sigs: &Path, from_repo: &str, from: &str, to_repo: &str, to: &str) {
    let src = sigs.join(format!(
        "{from_repo}@{}/signature-1",
        from.replacen(':', "=", 1)
    ));
    let dst = sigs.join(format!("{to_repo}@{}", to.replacen(':', "=", 1)));
    std::fs::create_dir_all(&dst).unwrap();
    std::fs::copy(&src, dst.join("signature-1")).unwrap();
}

/// The manifest and digest the registry serves for `reference`.
fn remote(reference: &str) -> (Vec<u8>, String) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ImageRef::Registry(rr) = reference.parse::<ImageRef>().unwrap() else {
        panic!("{reference} is not a registry reference")
    };
    let mut remote = Remote::new(&rr, &options(), &RegistriesConf::default()).unwrap();
    let (bytes, digest, _) = rt
        .block_on(remote.fetch_manifest(reference, rr.tag_or_digest(), &Platform::host()))
        .unwrap();
    (bytes, digest)
}

fn options() -> RemoteOptions {
    RemoteOptions {
        tls_verify: Some(false),
        ..RemoteOptions::default()
    }
}

/// Pulls the manifest of `reference` and evaluates `reqs`, signatures found
/// through `root`'s registries.d, as a pull does.
fn check(root: &Path, reference: &str, reqs: &[Requirement]) -> Result<Verified, TrustError> {
    check_with(root, reference, reqs, &options())
}

/// [`check`] with the given registry options (credentials, CAs).
fn check_with(
    root: &Path,
    reference: &str,
    reqs: &[Requirement],
    opts: &RemoteOptions,
) -> Result<Verified, TrustError> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ImageRef::Registry(rr) = reference.parse::<ImageRef>().unwrap() else {
        panic!("{reference} is not a registry reference")
    };
    let mut remote = Remote::new(&rr, opts, &RegistriesConf::default()).unwrap();
    let (manifest, digest, _) = rt
        .block_on(remote.fetch_manifest(reference, rr.tag_or_digest(), &Platform::host()))
        .unwrap();
    let signatures = RegistrySignatures::for_image(
        &rt,
        &remote,
        &Root::open(root).unwrap(),
        &Location::Default { home: None },
        &rr,
        reference,
        &digest,
    )
    .unwrap();
    evaluate(
        &Subject {
            reference,
            manifest_digest: &digest,
            manifest: &manifest,
            instance_of: None,
            signatures: &signatures,
        },
        reqs,
    )
}

fn signed_by(key: &Path, identity: SignedIdentity) -> Vec<Requirement> {
    vec![Requirement::SignedBy {
        key_type: KeyType::GpgKeys,
        keys: vec![KeySource::Path(key.to_path_buf())],
        identity,
    }]
}

fn sigstore(key: &Path) -> Vec<Requirement> {
    vec![Requirement::SigstoreSigned {
        key: Some(KeySource::Path(key.to_path_buf())),
        keyless: false,
        identity: SignedIdentity::MatchRepoDigestOrExact,
    }]
}

/// Asserts a refusal with exit kind 6 whose message holds `needle`.
#[track_caller]
fn assert_refused(r: Result<Verified, TrustError>, needle: &str) {
    match r {
        Ok(v) => panic!("accepted, expected a refusal naming {needle:?}: {v:?}"),
        Err(e) => {
            let msg = e.to_string();
            assert_eq!(e.kind(), ErrorKind::Integrity, "{msg}");
            assert!(msg.contains(needle), "{msg:?} does not name {needle:?}");
        }
    }
}

fn ready() -> bool {
    require_all(TOOLS)
}

#[test]
fn signed_by_accepts_a_skopeo_signature_from_the_file_lookaside() {
    if !ready() {
        return;
    }
    let w = world();
    let reference = format!("{}/signed:t", w.reg.addr());
    let v = check(
        &w.root,
        &reference,
        &signed_by(&w.trusted.public, SignedIdentity::MatchRepoDigestOrExact),
    )
    .unwrap();
    assert_eq!(v.requirements, ["signedBy"]);
    assert_eq!(v.keys, [w.trusted.fpr.as_str()]);
    assert_eq!(v.identities, [reference.as_str()]);
    // Either of two keys may have signed; keyData works like keyPath.
    let both = vec![Requirement::SignedBy {
        key_type: KeyType::GpgKeys,
        keys: vec![
            KeySource::Path(w.other.public.clone()),
            KeySource::Data(std::fs::read(&w.trusted.public).unwrap()),
        ],
        identity: SignedIdentity::MatchExact,
    }];
    assert_eq!(
        check(&w.root, &reference, &both).unwrap().keys,
        [w.trusted.fpr.as_str()]
    );
}

#[test]
fn signed_by_reads_the_lookaside_over_http() {
    if !ready() {
        return;
    }
    let w = world();
    let reference = format!("{}/signed:t", w.reg.addr());
    let v = check(
        &w.http_root,
        &reference,
        &signed_by(&w.trusted.public, SignedIdentity::MatchRepoDigestOrExact),
    )
    .unwrap();
    assert_eq!(v.keys, [w.trusted.fpr.as_str()]);
    assert_refused(
        check(
            &w.http_root,
            &format!("{}/unsigned:t", w.reg.addr()),
            &signed_by(&w.trusted.public, SignedIdentity::MatchRepoDigestOrExact),
        ),
        "no signature found (looked in lookaside http://",
    );
}

#[test]
fn signed_by_refuses_a_signature_by_another_key() {
    if !ready() {
        return;
    }
    let w = world();
    let reference = format!("{}/by-other:t", w.reg.addr());
    assert_refused(
        check(
            &w.root,
            &reference,
            &signed_by(&w.trusted.public, SignedIdentity::MatchRepoDigestOrExact),
        ),
        &format!(
            "signed by key {}, which the requirement does not list",
            w.other.fpr
        ),
    );
    // The same signature is accepted with the key that made it.
    assert!(check(
        &w.root,
        &reference,
        &signed_by(&w.other.public, SignedIdentity::MatchRepoDigestOrExact)
    )
    .is_ok());
}

#[test]
fn signed_by_refuses_a_signature_of_another_manifest() {
    if !ready() {
        return;
    }
    let w = world();
    let reference = format!("{}/tampered:t", w.reg.addr());
    assert_refused(
        check(
            &w.root,
            &reference,
            &signed_by(&w.trusted.public, SignedIdentity::MatchRepository),
        ),
        "not this image's sha256:",
    );
}

#[test]
fn signed_by_refuses_a_signature_naming_another_image() {
    if !ready() {
        return;
    }
    let w = world();
    let addr = w.reg.addr();
    let reference = format!("{addr}/elsewhere:t");
    assert_refused(
        check(
            &w.root,
            &reference,
            &signed_by(&w.trusted.public, SignedIdentity::MatchRepoDigestOrExact),
        ),
        &format!("it names \"{addr}/signed:t\", which matchRepoDigestOrExact does not accept"),
    );
    // exactReference accepts what it names, whatever was pulled.
    let exact = SignedIdentity::ExactReference(format!("{addr}/signed:t"));
    let v = check(&w.root, &reference, &signed_by(&w.trusted.public, exact)).unwrap();
    assert_eq!(v.identities, [format!("{addr}/signed:t")]);
}

#[test]
fn signed_by_identity_rules_for_a_pull_by_digest() {
    if !ready() {
        return;
    }
    let w = world();
    let addr = w.reg.addr();
    let digest = remote(&format!("{addr}/signed:t")).1;
    let by_digest = format!("{addr}/signed@{digest}");
    // The signature names signed:t: the repository matches, the reference does not.
    assert!(check(
        &w.root,
        &by_digest,
        &signed_by(&w.trusted.public, SignedIdentity::MatchRepoDigestOrExact)
    )
    .is_ok());
    assert_refused(
        check(
            &w.root,
            &by_digest,
            &signed_by(&w.trusted.public, SignedIdentity::MatchExact),
        ),
        "which matchExact does not accept",
    );
}

#[test]
fn signed_by_refuses_an_unsigned_image_naming_where_it_looked() {
    if !ready() {
        return;
    }
    let w = world();
    let reference = format!("{}/unsigned:t", w.reg.addr());
    assert_refused(
        check(
            &w.root,
            &reference,
            &signed_by(&w.trusted.public, SignedIdentity::MatchRepoDigestOrExact),
        ),
        "no signature found (looked in lookaside file:///sigs/unsigned@sha256=",
    );
    // insecureAcceptAnything needs no signature; reject refuses even a signed one.
    assert!(check(&w.root, &reference, &[Requirement::InsecureAcceptAnything]).is_ok());
    assert!(matches!(
        check(
            &w.root,
            &format!("{}/signed:t", w.reg.addr()),
            &[Requirement::Reject]
        ),
        Err(TrustError::Rejected { .. })
    ));
}

#[test]
fn sigstore_signed_accepts_a_cosign_attachment() {
    if !ready() {
        return;
    }
    let w = world();
    let reference = format!("{}/cosigned:t", w.reg.addr());
    let v = check(&w.root, &reference, &sigstore(&w.cosign_pub)).unwrap();
    assert_eq!(v.requirements, ["sigstoreSigned"]);
    assert_eq!(v.identities, [reference.as_str()]);
    let der = run_ok(
        Command::new("openssl")
            .args(["pkey", "-pubin", "-outform", "DER", "-in"])
            .arg(&w.cosign_pub),
    )
    .stdout;
    assert_eq!(v.keys, [digest_of(&der)]);
}

#[test]
fn sigstore_signed_refuses_another_key() {
    if !ready() {
        return;
    }
    let w = world();
    let reference = format!("{}/cosigned:t", w.reg.addr());
    assert_refused(
        check(&w.root, &reference, &sigstore(&w.cosign_other_pub)),
        "the signature was not made by key sha256:",
    );
}

#[test]
fn sigstore_signed_refuses_a_signature_of_another_manifest() {
    if !ready() {
        return;
    }
    let w = world();
    let reference = format!("{}/cosign-tampered:t", w.reg.addr());
    assert_refused(
        check(&w.root, &reference, &sigstore(&w.cosign_pub)),
        "not this image's sha256:",
    );
}

#[test]
fn sigstore_signed_refuses_an_image_without_a_sig_tag() {
    if !ready() {
        return;
    }
    let w = world();
    let reference = format!("{}/unsigned:t", w.reg.addr());
    assert_refused(
        check(&w.root, &reference, &sigstore(&w.cosign_pub)),
        "no signature found (looked in the registry tag sha256-",
    );
    // With attachments off in registries.d, even a signed image has none.
    assert_refused(
        check(
            &w.no_attach_root,
            &format!("{}/cosigned:t", w.reg.addr()),
            &sigstore(&w.cosign_pub),
        ),
        "use-sigstore-attachments",
    );
}

#[test]
fn sigstore_keyless_is_refused_offline() {
    if !ready() {
        return;
    }
    let w = world();
    let reference = format!("{}/cosigned:t", w.reg.addr());
    let keyless = vec![Requirement::SigstoreSigned {
        key: None,
        keyless: true,
        identity: SignedIdentity::MatchRepository,
    }];
    assert_refused(
        check(&w.root, &reference, &keyless),
        "cannot be checked offline",
    );
}

#[test]
fn sigstore_attachments_are_read_with_the_pulls_credentials_and_ca() {
    if !ready() || !common::require("htpasswd") {
        return;
    }
    let w = world();
    let reg = Registry::tls_htpasswd("siguser", "sig-pass");
    let dir = common::tempdir();
    let path = dir.path().join("layout");
    let mut layout = OciLayout::create(&path);
    let layer = Layer::new()
        .file("etc/content", b"private", 0o644)
        .build(Compression::Gzip);
    let image = layout.add_image("t", &Image::new(vec![layer]));
    let reference = push(&path, "t", &reg, "private:t");
    let payload = cosign_payload(&image.digest, &reference);
    let sig = openssl_sign(dir.path(), &w.cosign_priv, &payload);
    let sigs = sig_manifest(&[(payload, sig)]);
    for b in &sigs.layers {
        layout.write_blob(&b.bytes);
    }
    layout.write_blob(&sigs.config);
    layout.write_blob(&sigs.manifest);
    let tag = sig_tag(&image.digest);
    layout.tag(&tag, &sigs.digest, sigs.manifest.len(), OCI_MANIFEST);
    push(&path, &tag, &reg, &format!("private:{tag}"));

    let root = dir.path().join("root");
    registries_d(
        &root,
        &format!(
            "docker:\n  {}:\n    use-sigstore-attachments: true\n",
            reg.addr()
        ),
    );
    let tls = reg.tls().unwrap();
    let opts = RemoteOptions {
        creds: Some(Credentials {
            username: tls.user.clone(),
            password: tls.pass.clone(),
        }),
        cert_dir: Some(tls.cert_dir.clone()),
        ..RemoteOptions::default()
    };
    let v = check_with(&root, &reference, &sigstore(&w.cosign_pub), &opts).unwrap();
    assert_eq!(v.identities, [reference.as_str()]);
}

/// Through the CLI, as an operator runs it: a policy that rejects by
/// default and names a key per repository; `pull` accepts the skopeo-signed
/// and the cosign-signed image, records how (`images inspect`), and refuses
/// the image signed by another key with exit 6, storing nothing of it.
#[test]
fn the_cli_pull_accepts_signed_images_and_records_the_key() {
    if !ready() {
        return;
    }
    let w = world();
    let addr = w.reg.addr().to_string();
    let b = common::Berth::new();
    b.allow_plain_http(&addr);
    let root = b.root();
    // The lookaside, registries.d and keys live inside the root.
    std::fs::create_dir_all(root.join("etc/containers")).unwrap();
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(w.root.join("sigs"))
            .arg(&root),
    );
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(w.root.join("etc/containers/registries.d"))
            .arg(root.join("etc/containers/")),
    );
    let pki = root.join("etc/pki/berth");
    std::fs::create_dir_all(&pki).unwrap();
    std::fs::copy(&w.trusted.public, pki.join("trusted.gpg")).unwrap();
    std::fs::copy(&w.cosign_pub, pki.join("cosign.pub")).unwrap();
    let gpg = serde_json::json!([{"type": "signedBy", "keyType": "GPGKeys",
        "keyPath": "/etc/pki/berth/trusted.gpg"}]);
    let policy = serde_json::json!({
        "default": [{"type": "reject"}],
        "transports": {"docker": {
            format!("{addr}/signed"): gpg,
            format!("{addr}/by-other"): gpg,
            format!("{addr}/cosigned"): [{"type": "sigstoreSigned",
                "keyPath": "/etc/pki/berth/cosign.pub"}],
        }}
    });
    std::fs::write(
        root.join("etc/containers/policy.json"),
        serde_json::to_vec_pretty(&policy).unwrap(),
    )
    .unwrap();

    let signed = format!("{addr}/signed:t");
    b.pull(&signed, &[]).ok();
    let inspect = b.json(&["images", "inspect", &signed]);
    assert_eq!(
        inspect["trust"]["requirements"],
        serde_json::json!(["signedBy"])
    );
    let keys = inspect["trust"]["keys"].to_string();
    assert!(
        keys.contains(&w.trusted.fpr),
        "{keys} lacks {}",
        w.trusted.fpr
    );

    let cosigned = format!("{addr}/cosigned:t");
    b.pull(&cosigned, &[]).ok();
    let inspect = b.json(&["images", "inspect", &cosigned]);
    assert_eq!(
        inspect["trust"]["requirements"],
        serde_json::json!(["sigstoreSigned"])
    );

    let by_other = format!("{addr}/by-other:t");
    b.pull(&by_other, &[])
        .code(6)
        .stderr_has(&[&by_other, "signedBy"]);
    let stored = b.json(&["images"]).to_string();
    assert!(
        !stored.contains("by-other"),
        "a refused image was stored: {stored}"
    );
}

/// With `--root`, registries.d and keys are read inside the root: a
/// registries.d that is a symlink to the host's directory (which points at
/// the signatures) resolves inside the root, so the image is refused for
/// want of signatures; `--registries.d` names the host directory on
/// purpose and the same pull is accepted; a key that is an absolute
/// symlink to the host's key file is not found.
#[test]
fn the_cli_reads_trust_files_inside_the_root_unless_given() {
    if !ready() {
        return;
    }
    let w = world();
    let addr = w.reg.addr().to_string();
    let b = common::Berth::new();
    b.allow_plain_http(&addr);
    let root = b.root();
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(w.root.join("sigs"))
            .arg(&root),
    );
    let host_regd = w.root.join("etc/containers/registries.d");
    std::fs::create_dir_all(root.join("etc/containers")).unwrap();
    std::os::unix::fs::symlink(&host_regd, root.join("etc/containers/registries.d")).unwrap();
    let pki = root.join("etc/pki/berth");
    std::fs::create_dir_all(&pki).unwrap();
    std::fs::copy(&w.trusted.public, pki.join("trusted.gpg")).unwrap();
    std::os::unix::fs::symlink(&w.trusted.public, pki.join("host.gpg")).unwrap();
    let policy = |key: &str| {
        let p = serde_json::json!({"default": [{"type": "signedBy",
            "keyType": "GPGKeys", "keyPath": key}]});
        std::fs::write(
            root.join("etc/containers/policy.json"),
            serde_json::to_vec(&p).unwrap(),
        )
        .unwrap();
    };
    policy("/etc/pki/berth/trusted.gpg");
    let signed = format!("{addr}/signed:t");
    b.pull(&signed, &[])
        .code(6)
        .stderr_has(&["no signature found", "/var/lib/containers/sigstore"]);
    assert!(b.images().is_empty(), "{:?}", b.images());
    let given = host_regd.to_str().unwrap();
    policy("/etc/pki/berth/host.gpg");
    b.pull(&signed, &["--registries.d", given])
        .code(2)
        .stderr_has(&["/etc/pki/berth/host.gpg", "No such file"]);
    policy("/etc/pki/berth/trusted.gpg");
    b.pull(&signed, &["--registries.d", given]).ok();
    let inspect = b.json(&["images", "inspect", &signed]);
    assert!(
        inspect["trust"]["keys"]
            .to_string()
            .contains(&w.trusted.fpr),
        "{inspect}"
    );
}
