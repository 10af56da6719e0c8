//! Checks one image against the requirements of its policy scope.
//!
//! The signature verifiers (GPG simple signing, cosign) are being built;
//! until they land, `signedBy` and `sigstoreSigned` refuse every image, so
//! a policy that asks for signatures is never silently weakened.

use super::Requirement;

/// The image being checked: what was pulled and what its manifest is.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    /// The reference as pulled (`registry/repo:tag` or `…@sha256:…`).
    pub reference: &'a str,
    /// The manifest's digest (`sha256:…`): what a signature signs.
    pub manifest_digest: &'a str,
    /// The manifest bytes as received.
    pub manifest: &'a [u8],
}

/// How an image met its requirements (shown by `status`, `images inspect`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Verified {
    /// The requirement types met, in policy order.
    pub requirements: Vec<String>,
    /// Fingerprints of the keys whose signatures were accepted.
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
}

/// Checks `subject` against every requirement (all must be met).
pub fn evaluate(subject: &Subject<'_>, reqs: &[Requirement]) -> Result<Verified, TrustError> {
    let mut out = Verified {
        requirements: Vec::new(),
        keys: Vec::new(),
        identities: Vec::new(),
    };
    for req in reqs {
        match req {
            Requirement::InsecureAcceptAnything => {}
            Requirement::Reject => {
                return Err(TrustError::Rejected {
                    image: subject.reference.to_string(),
                })
            }
            Requirement::SignedBy { .. } | Requirement::SigstoreSigned { .. } => {
                return Err(TrustError::NotMet {
                    image: subject.reference.to_string(),
                    requirement: req.type_name(),
                    reason: "signature verification is not available in this build".into(),
                })
            }
        }
        out.requirements.push(req.type_name().to_string());
    }
    Ok(out)
}
