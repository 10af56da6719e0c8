use super::*;
use crate::trust::signatures::{CosignSignature, FixedSignatures};

// Made with `openssl ecparam -genkey -name prime256v1` and
// `openssl dgst -sha256 -sign`, over PAYLOAD, which signs MANIFEST.
const PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE4O3vgnCBoMsityDdbJl4Qabq5g+L
7qoLiDRkGoh3ybJOCTLjrtCFutpgzgy9IUpK8nts4aHz2wezN+jLWvAXOA==
-----END PUBLIC KEY-----
";
const MANIFEST: &[u8] = br#"{"schemaVersion":2}"#;
const DIGEST: &str = "sha256:bafebd36189ad3688b7b3915ea55d461e0bfcfbdde11e54b0a123999fb6be50f";
const PAYLOAD: &str = r#"{"critical":{"identity":{"docker-reference":"r.example/app:1"},"image":{"docker-manifest-digest":"sha256:bafebd36189ad3688b7b3915ea55d461e0bfcfbdde11e54b0a123999fb6be50f"},"type":"cosign container image signature"},"optional":null}"#;
const SIGNATURE: &str = "MEQCIAiPAxwzX7m9hmqDrKarRDDdotmD3XWbVaiggijwqcqWAiATNudC7olQW1xT+wPanzQPYFp30mQp9TygIhDhaAo+Lg==";

fn signed() -> FixedSignatures {
    FixedSignatures {
        simple: Vec::new(),
        sigstore: vec![CosignSignature {
            payload: PAYLOAD.as_bytes().to_vec(),
            signature: SIGNATURE.into(),
        }],
    }
}

fn subject<'a>(reference: &'a str, manifest: &'a [u8], sigs: &'a FixedSignatures) -> Subject<'a> {
    Subject {
        reference,
        manifest_digest: DIGEST,
        manifest,
        instance_of: None,
        signatures: sigs,
    }
}

fn cosign(identity: SignedIdentity) -> Vec<Requirement> {
    vec![Requirement::SigstoreSigned {
        key: Some(KeySource::Data(PUBLIC.as_bytes().to_vec())),
        keyless: false,
        identity,
    }]
}

fn reason(r: Result<Verified, TrustError>) -> String {
    match r {
        Err(e @ TrustError::NotMet { .. }) => e.to_string(),
        other => panic!("expected NotMet, got {other:?}"),
    }
}

#[test]
fn accepts_a_cosign_signature_and_reports_how() {
    let sigs = signed();
    let v = evaluate(
        &subject("r.example/app:1", MANIFEST, &sigs),
        &[
            Requirement::InsecureAcceptAnything,
            cosign(SignedIdentity::MatchRepoDigestOrExact).remove(0),
        ],
    )
    .unwrap();
    assert_eq!(v.requirements, ["insecureAcceptAnything", "sigstoreSigned"]);
    assert_eq!(v.identities, ["r.example/app:1"]);
    assert!(v.keys[0].starts_with("sha256:"), "{:?}", v.keys);
}

#[test]
fn refuses_what_does_not_match() {
    let sigs = signed();
    // Another identity.
    let r = reason(evaluate(
        &subject("r.example/app:2", MANIFEST, &sigs),
        &cosign(SignedIdentity::MatchRepoDigestOrExact),
    ));
    assert!(
        r.contains("which matchRepoDigestOrExact does not accept"),
        "{r}"
    );
    // Bytes that are not the manifest the digest names.
    let r = reason(evaluate(
        &subject("r.example/app:1", b"{}", &sigs),
        &cosign(SignedIdentity::MatchRepository),
    ));
    assert!(r.contains("the manifest received is sha256:44136f"), "{r}");
    // A damaged signature.
    let mut bad = signed();
    bad.sigstore[0].payload.push(b' ');
    let r = reason(evaluate(
        &subject("r.example/app:1", MANIFEST, &bad),
        &cosign(SignedIdentity::MatchRepository),
    ));
    assert!(r.contains("the signature was not made by key"), "{r}");
    // None at all, and keyless.
    let none = FixedSignatures::default();
    let r = reason(evaluate(
        &subject("r.example/app:1", MANIFEST, &none),
        &cosign(SignedIdentity::MatchRepository),
    ));
    assert!(r.contains("no signature found"), "{r}");
    let keyless = [Requirement::SigstoreSigned {
        key: None,
        keyless: true,
        identity: SignedIdentity::MatchRepository,
    }];
    let r = reason(evaluate(
        &subject("r.example/app:1", MANIFEST, &sigs),
        &keyless,
    ));
    assert!(r.contains("cannot be checked offline"), "{r}");
}

#[test]
fn reject_wins_and_bad_keys_are_policy_errors() {
    let sigs = signed();
    let s = subject("r.example/app:1", MANIFEST, &sigs);
    let e = evaluate(
        &s,
        &[Requirement::InsecureAcceptAnything, Requirement::Reject],
    )
    .unwrap_err();
    assert!(matches!(e, TrustError::Rejected { .. }));
    assert_eq!(e.kind(), ErrorKind::Integrity);
    let missing = [Requirement::SignedBy {
        key_type: crate::trust::KeyType::GpgKeys,
        keys: vec![KeySource::Path("/nonexistent/berth-key.gpg".into())],
        identity: SignedIdentity::MatchRepoDigestOrExact,
    }];
    let e = evaluate(&s, &missing).unwrap_err();
    assert!(matches!(e, TrustError::Key { .. }), "{e}");
    assert_eq!(e.kind(), ErrorKind::Usage);
    let not_a_key = [Requirement::SigstoreSigned {
        key: Some(KeySource::Data(b"junk".to_vec())),
        keyless: false,
        identity: SignedIdentity::MatchRepository,
    }];
    assert!(matches!(
        evaluate(&s, &not_a_key),
        Err(TrustError::Key { .. })
    ));
}
