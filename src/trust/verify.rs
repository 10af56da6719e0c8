//! Checks one image against the requirements of its policy scope.
//!
//! Every requirement must be met. `signedBy` and `sigstoreSigned` are met
//! by one signature that (in this order) verifies with one of the
//! requirement's keys, is a payload of the requirement's format, names the
//! digest of the manifest being pulled, and names an identity the
//! requirement's `signedIdentity` accepts ([`super::identity`]). When none
//! is, the error lists why each signature was refused.

use std::path::Path;

use sha2::{Digest as _, Sha256};

use super::cosign::PublicKey;
use super::gpg::{GpgError, KeyBlob, Keyring};
use super::identity;
use super::payload::{self, Format};
use super::signatures::{Kind, SignatureSource, SourceError};
use super::{KeySource, Requirement, SignedIdentity, MAX_KEY_SIZE};
use crate::rootfs::Root;
use crate::ErrorKind;

/// The image being checked: what was pulled, its manifest and where its
/// signatures are.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The reference as pulled (`registry/repo:tag` or `…@sha256:…`; an
    /// `oci:`/archive reference has no registry identity).
    pub reference: &'a str,
    /// The manifest's digest (`sha256:…`): what a signature signs. A
    /// multi-platform image is checked twice, as containers/image does:
    /// the index the reference names, then the platform's manifest chosen
    /// from it (`skopeo copy --all --sign-by` signs both).
    pub manifest_digest: &'a str,
    /// The manifest bytes as received (their sha256 must be the digest).
    pub manifest: &'a [u8],
    /// When the manifest is one platform's, chosen from an index: the
    /// index's digest (refusals then name both).
    pub instance_of: Option<&'a str>,
    /// The image's signatures.
    pub signatures: &'a dyn SignatureSource,
}

impl Subject<'_> {
    /// The image as refusals name it: the reference, plus the platform
    /// manifest's digest when it was chosen from an index.
    pub fn shown(&self) -> String {
        match self.instance_of {
            Some(index) => format!(
                "{} (platform manifest {} of index {index})",
                self.reference, self.manifest_digest
            ),
            None => self.reference.to_string(),
        }
    }
}

/// How an image met its requirements (shown by `status`, `images inspect`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Verified {
    /// The requirement types met, in policy order.
    pub requirements: Vec<String>,
    /// Fingerprints of the keys whose signatures were accepted: OpenPGP
    /// primary key fingerprints, `sha256:…` of a cosign public key.
    pub keys: Vec<String>,
    /// The identities the accepted signatures named.
    pub identities: Vec<String>,
}

/// Why an image was refused.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// A `reject` requirement.
    #[error("image {image}: the policy rejects it (requirement \"reject\")")]
    Rejected {
        /// The reference.
        image: String,
    },
    /// A requirement that found no acceptable signature.
    #[error("image {image}: requirement \"{requirement}\" not met: {reason}")]
    NotMet {
        /// The reference.
        image: String,
        /// The requirement type.
        requirement: &'static str,
        /// What did not match.
        reason: String,
    },
    /// A key the requirement names cannot be used.
    #[error("image {image}: requirement \"{requirement}\": key {key}: {detail}; fix the policy")]
    Key {
        /// The reference.
        image: String,
        /// The requirement type.
        requirement: &'static str,
        /// The key's path, or `keyData`.
        key: String,
        /// What is wrong.
        detail: String,
    },
    /// Signatures could not be read.
    #[error("image {image}: reading signatures: {source}")]
    Source {
        /// The reference.
        image: String,
        /// The failure.
        source: SourceError,
    },
    /// GnuPG could not be run.
    #[error("image {image}: {source}")]
    Gpg {
        /// The reference.
        image: String,
        /// The failure.
        source: GpgError,
    },
}

impl TrustError {
    /// The exit-code kind: refusals are integrity failures (6).
    pub fn kind(&self) -> ErrorKind {
        match self {
            TrustError::Rejected { .. } | TrustError::NotMet { .. } => ErrorKind::Integrity,
            TrustError::Key { .. } => ErrorKind::Usage,
            TrustError::Source { source, .. } => source.kind(),
            TrustError::Gpg { .. } => ErrorKind::Failed,
        }
    }
}

/// One accepted signature.
struct Accepted {
    key: String,
    identity: String,
}

/// Checks `subject` against every requirement (all must be met).
pub fn evaluate(subject: &Subject<'_>, reqs: &[Requirement]) -> Result<Verified, TrustError> {
    let mut out = Verified {
        requirements: Vec::new(),
        keys: Vec::new(),
        identities: Vec::new(),
    };
    let image = || subject.shown();
    for req in reqs {
        let accepted = match req {
            Requirement::InsecureAcceptAnything => None,
            Requirement::Reject => return Err(TrustError::Rejected { image: image() }),
            Requirement::SignedBy { keys, identity, .. } => {
                check_manifest(subject, req)?;
                Some(signed_by(subject, req, keys, identity)?)
            }
            Requirement::SigstoreSigned { key, identity, .. } => {
                check_manifest(subject, req)?;
                let Some(key) = key else {
                    return Err(not_met(
                        subject,
                        req,
                        "keyless signatures (Fulcio certificates, Rekor) cannot be checked \
                         offline; give the requirement a keyPath or keyData"
                            .into(),
                    ));
                };
                Some(sigstore_signed(subject, req, key, identity)?)
            }
        };
        if let Some(a) = accepted {
            out.keys.push(a.key);
            out.identities.push(a.identity);
        }
        out.requirements.push(req.type_name().to_string());
    }
    Ok(out)
}

fn not_met(subject: &Subject<'_>, req: &Requirement, reason: String) -> TrustError {
    TrustError::NotMet {
        image: subject.shown(),
        requirement: req.type_name(),
        reason,
    }
}

/// The manifest bytes must be what the digest names: a signature of the
/// digest then vouches for them.
fn check_manifest(subject: &Subject<'_>, req: &Requirement) -> Result<(), TrustError> {
    let actual = format!("sha256:{}", hex::encode(Sha256::digest(subject.manifest)));
    if actual != subject.manifest_digest {
        return Err(not_met(
            subject,
            req,
            format!(
                "the manifest received is {actual}, not {}",
                subject.manifest_digest
            ),
        ));
    }
    Ok(())
}

fn source_err(subject: &Subject<'_>) -> impl Fn(SourceError) -> TrustError {
    let image = subject.shown();
    move |source| TrustError::Source {
        image: image.clone(),
        source,
    }
}

fn read_key(
    subject: &Subject<'_>,
    req: &Requirement,
    key: &KeySource,
) -> Result<KeyBlob, TrustError> {
    match key {
        KeySource::Data(bytes) => Ok(KeyBlob {
            name: "keyData".into(),
            bytes: bytes.clone(),
        }),
        KeySource::Loaded { path, bytes } => Ok(KeyBlob {
            name: path.display().to_string(),
            bytes: bytes.clone(),
        }),
        // A path not read through a root yet (a library caller's): read
        // now, bounded, with ordinary resolution.
        KeySource::Path(path) => Root::open(Path::new("/"))
            .and_then(|root| root.read_at_most(path, MAX_KEY_SIZE))
            .map(|bytes| KeyBlob {
                name: path.display().to_string(),
                bytes,
            })
            .map_err(|e| TrustError::Key {
                image: subject.shown(),
                requirement: req.type_name(),
                key: path.display().to_string(),
                detail: e.to_string(),
            }),
    }
}

/// The payload checks both formats share, after the signature verified.
fn check_payload(
    subject: &Subject<'_>,
    bytes: &[u8],
    format: Format,
    rule: &SignedIdentity,
) -> Result<String, String> {
    let p = payload::parse(bytes, format).map_err(|e| e.to_string())?;
    if p.manifest_digest != subject.manifest_digest {
        return Err(format!(
            "it signs manifest {}, not this image's {}",
            p.manifest_digest, subject.manifest_digest
        ));
    }
    if !identity::matches(rule, Some(subject.reference), &p.docker_reference) {
        return Err(format!(
            "it names {:?}, which {} does not accept for {}",
            p.docker_reference,
            rule_name(rule),
            subject.reference
        ));
    }
    Ok(p.docker_reference)
}

fn rule_name(rule: &SignedIdentity) -> String {
    match rule {
        SignedIdentity::MatchRepoDigestOrExact => "matchRepoDigestOrExact".into(),
        SignedIdentity::MatchExact => "matchExact".into(),
        SignedIdentity::MatchRepository => "matchRepository".into(),
        SignedIdentity::ExactReference(r) => format!("exactReference {r:?}"),
        SignedIdentity::ExactRepository(r) => format!("exactRepository {r:?}"),
        SignedIdentity::RemapIdentity {
            prefix,
            signed_prefix,
        } => format!("remapIdentity {prefix:?} -> {signed_prefix:?}"),
    }
}

/// "none found" or the reasons each signature was refused.
fn refused(
    subject: &Subject<'_>,
    req: &Requirement,
    kind: Kind,
    reasons: Vec<String>,
) -> TrustError {
    if reasons.is_empty() {
        return not_met(
            subject,
            req,
            format!(
                "no signature found (looked in {})",
                subject.signatures.looked_in(kind)
            ),
        );
    }
    let n = reasons.len();
    let list = reasons
        .iter()
        .enumerate()
        .map(|(i, r)| format!("signature {}: {r}", i + 1))
        .collect::<Vec<_>>()
        .join("; ");
    not_met(
        subject,
        req,
        format!("none of {n} signatures accepted: {list}"),
    )
}

fn signed_by(
    subject: &Subject<'_>,
    req: &Requirement,
    keys: &[KeySource],
    rule: &SignedIdentity,
) -> Result<Accepted, TrustError> {
    // Keys first: a policy naming a missing key is an error even for an
    // unsigned image.
    let blobs = keys
        .iter()
        .map(|k| read_key(subject, req, k))
        .collect::<Result<Vec<_>, _>>()?;
    let sigs = subject
        .signatures
        .simple_signing()
        .map_err(source_err(subject))?;
    if sigs.is_empty() {
        return Err(refused(subject, req, Kind::SimpleSigning, Vec::new()));
    }
    let mut keyring = Keyring::new(&blobs).map_err(|e| match e {
        GpgError::Key { key, detail } => TrustError::Key {
            image: subject.shown(),
            requirement: req.type_name(),
            key,
            detail,
        },
        other => TrustError::Gpg {
            image: subject.shown(),
            source: other,
        },
    })?;
    let mut reasons = Vec::new();
    for sig in &sigs {
        let (bytes, fpr) = match keyring.verify(sig) {
            Ok(v) => v,
            Err(e) => {
                reasons.push(e.to_string());
                continue;
            }
        };
        match check_payload(subject, &bytes, Format::Atomic, rule) {
            Ok(identity) => return Ok(Accepted { key: fpr, identity }),
            Err(r) => reasons.push(format!("by key {fpr}: {r}")),
        }
    }
    Err(refused(subject, req, Kind::SimpleSigning, reasons))
}

fn sigstore_signed(
    subject: &Subject<'_>,
    req: &Requirement,
    key: &KeySource,
    rule: &SignedIdentity,
) -> Result<Accepted, TrustError> {
    let blob = read_key(subject, req, key)?;
    let key = PublicKey::from_pem(&blob.bytes).map_err(|e| TrustError::Key {
        image: subject.shown(),
        requirement: req.type_name(),
        key: blob.name.clone(),
        detail: e.to_string(),
    })?;
    let sigs = subject.signatures.sigstore().map_err(source_err(subject))?;
    let mut reasons = Vec::new();
    for sig in &sigs {
        if let Err(e) = key.verify(&sig.payload, &sig.signature) {
            reasons.push(e.to_string());
            continue;
        }
        match check_payload(subject, &sig.payload, Format::Cosign, rule) {
            Ok(identity) => {
                return Ok(Accepted {
                    key: key.fingerprint().to_string(),
                    identity,
                })
            }
            Err(r) => reasons.push(format!("by key {}: {r}", key.fingerprint())),
        }
    }
    Err(refused(subject, req, Kind::Sigstore, reasons))
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
