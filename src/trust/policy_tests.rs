use super::*;
use crate::image::reference;
use crate::trust::{KeySource, KeyType, SignedIdentity};

const FILE: &str = "/etc/containers/policy.json";

fn parse(text: &str) -> Result<Policy, PolicyError> {
    Policy::parse(text.as_bytes(), Path::new(FILE))
}

fn err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

fn image(r: &str) -> ImageRef {
    reference::resolve(r, &[]).unwrap().remove(0)
}

/// podman's shipped policy, plus scopes of every kind.
const PODMAN: &str = r#"{
  "default": [{"type": "reject"}],
  "transports": {
    "docker": {
      "registry.example.com/team/app:v1": [{"type": "insecureAcceptAnything"}],
      "registry.example.com/team": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/etc/pki/team.gpg"}],
      "registry.example.com": [{"type": "sigstoreSigned", "keyPath": "/etc/pki/cosign.pub"}],
      "*.example.com": [{"type": "insecureAcceptAnything"}],
      "*.com": [{"type": "reject"}],
      "": [{"type": "insecureAcceptAnything"}]
    },
    "docker-daemon": {"": [{"type": "insecureAcceptAnything"}]},
    "oci": {"/srv/images": [{"type": "insecureAcceptAnything"}]}
  }
}"#;

fn scope_of(p: &Policy, r: &str) -> (Option<String>, Vec<&'static str>) {
    let a = p.requirements_for(&image(r));
    let types = a.requirements.iter().map(Requirement::type_name).collect();
    (a.scope, types)
}

#[test]
fn docker_scopes_go_from_most_specific_to_wildcards() {
    let (t, scopes) = scopes_for(&image("registry.example.com:5000/team/app:v1"));
    assert_eq!(t, "docker");
    assert_eq!(
        scopes,
        [
            "registry.example.com:5000/team/app:v1",
            "registry.example.com:5000/team/app",
            "registry.example.com:5000/team",
            "registry.example.com:5000",
            "*.example.com",
            "*.com",
        ]
    );
}

#[test]
fn scope_precedence_picks_the_most_specific_match() {
    let p = parse(PODMAN).unwrap();
    let s = |r| scope_of(&p, r);
    assert_eq!(
        s("registry.example.com/team/app:v1"),
        (
            Some("registry.example.com/team/app:v1".into()),
            vec!["insecureAcceptAnything"]
        )
    );
    assert_eq!(
        s("registry.example.com/team/app:v2"),
        (Some("registry.example.com/team".into()), vec!["signedBy"])
    );
    assert_eq!(
        s("registry.example.com/other:v2"),
        (Some("registry.example.com".into()), vec!["sigstoreSigned"])
    );
    assert_eq!(
        s("mirror.example.com/x"),
        (Some("*.example.com".into()), vec!["insecureAcceptAnything"])
    );
    assert_eq!(s("quay.com/x"), (Some("*.com".into()), vec!["reject"]));
    assert_eq!(
        s("quay.io/x"),
        (Some("".into()), vec!["insecureAcceptAnything"])
    );
}

#[test]
fn unlisted_transport_falls_back_to_the_global_default() {
    let p = parse(PODMAN).unwrap();
    let a = p.requirements_for(&image("oci-archive:/tmp/a.tar"));
    assert_eq!(a.scope, None);
    assert_eq!(a.requirements, [Requirement::Reject]);
    assert_eq!(a.describe(), "default");
}

#[test]
fn path_scopes_match_parent_directories() {
    let p = parse(PODMAN).unwrap();
    let a = p.requirements_for(&image("oci:/srv/images/etcd:3.5"));
    assert_eq!(a.scope.as_deref(), Some("/srv/images"));
    let (_, scopes) = scopes_for(&image("oci:/srv/images/etcd:3.5"));
    assert_eq!(
        scopes,
        [
            "/srv/images/etcd:3.5",
            "/srv/images/etcd",
            "/srv/images",
            "/srv"
        ]
    );
    let a = p.requirements_for(&image("oci:/srv/other"));
    assert_eq!(a.scope, None);
}

#[test]
fn digest_references_are_their_own_most_specific_scope() {
    let d = format!("sha256:{}", "a".repeat(64));
    let (_, scopes) = scopes_for(&image(&format!("quay.io/coreos/etcd@{d}")));
    assert_eq!(scopes[0], format!("quay.io/coreos/etcd@{d}"));
    assert_eq!(scopes[1], "quay.io/coreos/etcd");
}

#[test]
fn signed_by_reads_every_key_form() {
    let p = parse(
        r#"{"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyPaths": ["/a.gpg", "/b.gpg"],
            "signedIdentity": {"type": "remapIdentity", "prefix": "mirror.example.com", "signedPrefix": "quay.io"}}],
            "transports": {"docker": {"quay.io": [{"type": "signedBy", "keyType": "GPGKeys", "keyData": "aGVsbG8="}]}}}"#,
    )
    .unwrap();
    assert_eq!(
        p.default,
        [Requirement::SignedBy {
            key_type: KeyType::GpgKeys,
            keys: vec![
                KeySource::Path("/a.gpg".into()),
                KeySource::Path("/b.gpg".into())
            ],
            identity: SignedIdentity::RemapIdentity {
                prefix: "mirror.example.com".into(),
                signed_prefix: "quay.io".into()
            },
        }]
    );
    assert_eq!(
        p.transports["docker"]["quay.io"],
        [Requirement::SignedBy {
            key_type: KeyType::GpgKeys,
            keys: vec![KeySource::Data(b"hello".to_vec())],
            identity: SignedIdentity::MatchRepoDigestOrExact,
        }]
    );
}

#[test]
fn every_identity_kind_parses() {
    let cases = [
        (r#"{"type": "matchExact"}"#, SignedIdentity::MatchExact),
        (
            r#"{"type": "matchRepoDigestOrExact"}"#,
            SignedIdentity::MatchRepoDigestOrExact,
        ),
        (
            r#"{"type": "matchRepository"}"#,
            SignedIdentity::MatchRepository,
        ),
        (
            r#"{"type": "exactReference", "dockerReference": "quay.io/a:1"}"#,
            SignedIdentity::ExactReference("quay.io/a:1".into()),
        ),
        (
            r#"{"type": "exactRepository", "dockerRepository": "quay.io/a"}"#,
            SignedIdentity::ExactRepository("quay.io/a".into()),
        ),
    ];
    for (json, want) in cases {
        let p = parse(&format!(
            r#"{{"default": [{{"type": "sigstoreSigned", "keyPath": "/k.pub", "signedIdentity": {json}}}]}}"#
        ))
        .unwrap();
        let Requirement::SigstoreSigned {
            identity,
            keyless,
            key,
        } = &p.default[0]
        else {
            panic!("{p:?}")
        };
        assert_eq!(identity, &want);
        assert!(!keyless);
        assert_eq!(key, &Some(KeySource::Path("/k.pub".into())));
    }
}

#[test]
fn keyless_sigstore_is_parsed_as_keyless() {
    let p = parse(
        r#"{"default": [{"type": "sigstoreSigned",
            "fulcio": {"caPath": "/ca.pem", "oidcIssuer": "https://issuer", "subjectEmail": "a@b"},
            "rekorPublicKeyPath": "/rekor.pub"}]}"#,
    )
    .unwrap();
    assert!(matches!(
        &p.default[0],
        Requirement::SigstoreSigned {
            key: None,
            keyless: true,
            ..
        }
    ));
}

#[test]
fn errors_name_the_file_scope_and_key() {
    let cases = [
        (
            r#"{"default": [{"type": "insecureAcceptAnything"}], "transports": {"docker": {"quay.io": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/k", "keyPth": "/x"}]}}}"#,
            r#"transports.docker "quay.io": keyPth: unknown key"#,
        ),
        (
            r#"{"default": [{"type": "rejectt"}]}"#,
            "default: type: unknown requirement type",
        ),
        (
            r#"{"default": [{"type": "signedBy", "keyType": "GPGKeys"}]}"#,
            "default: keyPath: signedBy needs exactly one",
        ),
        (
            r#"{"default": [{"type": "signedBy", "keyType": "X509Certificates", "keyPath": "/k"}]}"#,
            "default: keyType:",
        ),
        (
            r#"{"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyData": "!!"}]}"#,
            "default: keyData: not base64",
        ),
        (
            r#"{"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "rel.gpg"}]}"#,
            "default: keyPath: \"rel.gpg\" is not an absolute path",
        ),
        (
            r#"{"default": [{"type": "sigstoreSigned", "keyPath": "/k", "signedIdentity": {"type": "exactReference"}}]}"#,
            "default: signedIdentity.dockerReference: missing",
        ),
        (
            r#"{"default": [{"type": "reject"}], "transports": {"docker": {"busybox": [{"type": "reject"}]}}}"#,
            r#"transports.docker "busybox": (scope):"#,
        ),
        (
            r#"{"default": []}"#,
            "default: (requirements): an empty list",
        ),
        (r#"{"transports": {}}"#, "(file): default: missing"),
        (
            r#"{"default": [{"type": "reject"}], "extra": 1}"#,
            "(file): extra: unknown key",
        ),
        ("{", "(file): (json):"),
    ];
    for (json, want) in cases {
        let e = err(json);
        assert!(e.starts_with(&format!("signature policy {FILE}: ")), "{e}");
        assert!(e.contains(want), "{json}\n→ {e}\nwanted {want}");
    }
}

#[test]
fn docker_scope_shapes() {
    for ok in [
        "quay.io",
        "localhost/a",
        "127.0.0.1:5000/a/b:t",
        "*.example.com",
    ] {
        assert_eq!(check_scope("docker", ok), Ok(()), "{ok}");
    }
    for bad in [
        "busybox",
        "*.example.com/x",
        "docker://quay.io/a",
        "quay.io//a",
        "*.x:5000",
    ] {
        assert!(check_scope("docker", bad).is_err(), "{bad}");
    }
    assert!(check_scope("oci", "rel/dir").is_err());
    assert_eq!(check_scope("docker-daemon", "anything"), Ok(()));
}
