//! Image trust: the containers policy (`/etc/containers/policy.json`) and
//! the signatures it requires, checked before anything of an image is
//! imported.
//!
//! This file holds the vocabulary shared by the policy reader (which turns
//! policy.json into [`Requirement`]s per scope) and the verifiers (which
//! check one image's signatures against them). Requirement names and
//! fields follow containers-policy.json(5), so an operator's policy means
//! to berth what it means to podman and skopeo.

use std::path::PathBuf;

pub mod check;
pub mod cosign;
pub mod edit;
pub mod gpg;
pub mod identity;
pub mod lookaside;
pub mod payload;
pub mod pin;
pub mod policy;
pub mod registries_d;
pub mod requirement;
pub mod signatures;
pub mod source;
pub mod verify;

/// Where a public key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `keyPath` / an entry of `keyPaths`: a file (inside `--root` when one is given).
    Path(PathBuf),
    /// `keyData`: the key itself (base64-decoded from policy.json).
    Data(Vec<u8>),
    /// A `keyPath` already read through the root ([`source::load_keys`]):
    /// the verifiers use these bytes, never the path again.
    Loaded {
        /// The path as the policy names it (for messages).
        path: PathBuf,
        /// The key file's content.
        bytes: Vec<u8>,
    },
}

/// How large a key file may be.
pub const MAX_KEY_SIZE: u64 = 1 << 20;

/// `signedBy`'s `keyType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// `GPGKeys`: OpenPGP public keys (the only type containers/image implements).
    GpgKeys,
}

/// `signedIdentity`: which reference a signature must name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignedIdentity {
    /// `matchRepoDigestOrExact` (the default): the pulled reference exactly
    /// when it has a tag; its repository when pulled by digest.
    MatchRepoDigestOrExact,
    /// `matchExact`: the pulled reference exactly (a digest reference then
    /// never matches a tagged signature).
    MatchExact,
    /// `matchRepository`: the same repository, any tag or digest.
    MatchRepository,
    /// `exactReference`: this reference, whatever was pulled.
    ExactReference(String),
    /// `exactRepository`: this repository, whatever was pulled.
    ExactRepository(String),
    /// `remapIdentity`: the pulled reference with `prefix` replaced by
    /// `signed_prefix`, then matched as `matchRepoDigestOrExact`.
    RemapIdentity {
        /// Prefix of the pulled reference.
        prefix: String,
        /// What the signature names instead.
        signed_prefix: String,
    },
}

/// One requirement of a policy scope; a scope's list must all be met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// `insecureAcceptAnything`.
    InsecureAcceptAnything,
    /// `reject`.
    Reject,
    /// `signedBy`: GPG simple signing, by any of `keys`.
    SignedBy {
        /// The key type.
        key_type: KeyType,
        /// The keys, any of which may have signed.
        keys: Vec<KeySource>,
        /// The identity rule.
        identity: SignedIdentity,
    },
    /// `sigstoreSigned` with a public key (cosign format).
    SigstoreSigned {
        /// The public key (PEM), when the requirement names one.
        key: Option<KeySource>,
        /// Keyless: the requirement names Fulcio/Rekor material instead of a
        /// key; berth refuses it offline unless that material is local.
        keyless: bool,
        /// The identity rule.
        identity: SignedIdentity,
    },
}

impl Requirement {
    /// The policy.json name of the requirement type.
    pub fn type_name(&self) -> &'static str {
        match self {
            Requirement::InsecureAcceptAnything => "insecureAcceptAnything",
            Requirement::Reject => "reject",
            Requirement::SignedBy { .. } => "signedBy",
            Requirement::SigstoreSigned { .. } => "sigstoreSigned",
        }
    }
}
