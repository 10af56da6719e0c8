//! The cosign signature format, verified with a public key (`sigstoreSigned`).
//!
//! cosign stores an image's signatures beside it in the same repository, as
//! the manifest tagged `sha256-<hex>.sig` (the image's manifest digest with
//! `:` made `-`). Each layer of type
//! `application/vnd.dev.cosign.simplesigning.v1+json` is one signature: the
//! blob is the payload ([`super::payload`], type "cosign container image
//! signature") and its annotation `dev.cosignproject.cosign/signature` the
//! base64 of an ASN.1 DER ECDSA P-256 signature over SHA-256 of the blob.
//!
//! RustCrypto's `p256` verifies it (a few small crates); the `sigstore`
//! crate would too, with a tree of hundreds of crates for the keyless parts
//! berth does not do offline.

use base64::Engine as _;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::{DecodePublicKey as _, EncodePublicKey as _};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

/// The media type of a cosign signature layer.
pub const SIMPLESIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// Why a cosign key or signature was not usable.
#[derive(Debug, thiserror::Error)]
pub enum CosignError {
    /// The key is not a PEM `PUBLIC KEY` of an ECDSA P-256 key.
    #[error("not a PEM ECDSA P-256 public key ({0}); cosign keys are made by `cosign generate-key-pair`")]
    Key(String),
    /// The annotation is not base64 of a DER ECDSA signature.
    #[error("the signature annotation is not a base64 DER ECDSA signature")]
    Encoding,
    /// The signature does not verify with the key.
    #[error("the signature was not made by key {0}")]
    WrongKey(String),
    /// The `.sig` manifest is not an OCI manifest.
    #[error("the signature manifest is malformed: {0}")]
    Manifest(String),
}

/// A cosign public key.
#[derive(Debug, Clone)]
pub struct PublicKey {
    key: VerifyingKey,
    fingerprint: String,
}

impl PublicKey {
    /// Parses a PEM `PUBLIC KEY` (SubjectPublicKeyInfo) of a P-256 key.
    pub fn from_pem(pem: &[u8]) -> Result<PublicKey, CosignError> {
        let text = std::str::from_utf8(pem).map_err(|e| CosignError::Key(e.to_string()))?;
        let key =
            VerifyingKey::from_public_key_pem(text).map_err(|e| CosignError::Key(e.to_string()))?;
        let der = key
            .to_public_key_der()
            .map_err(|e| CosignError::Key(e.to_string()))?;
        Ok(PublicKey {
            key,
            fingerprint: format!("sha256:{}", hex::encode(Sha256::digest(der.as_bytes()))),
        })
    }

    /// `sha256:<hex>` of the key's DER SubjectPublicKeyInfo.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Checks `signature_b64` over `payload`.
    pub fn verify(&self, payload: &[u8], signature_b64: &str) -> Result<(), CosignError> {
        let der = base64::engine::general_purpose::STANDARD
            .decode(signature_b64.trim())
            .map_err(|_| CosignError::Encoding)?;
        let sig = Signature::from_der(&der).map_err(|_| CosignError::Encoding)?;
        self.key
            .verify(payload, &sig)
            .map_err(|_| CosignError::WrongKey(self.fingerprint.clone()))
    }
}

/// The tag cosign attaches signatures of `manifest_digest` under.
pub fn signature_tag(manifest_digest: &str) -> Option<String> {
    let hex = manifest_digest.strip_prefix("sha256:")?;
    Some(format!("sha256-{hex}.sig"))
}

/// One signature layer of a `.sig` manifest, before its blob is fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedLayer {
    /// The blob digest (the payload's).
    pub digest: String,
    /// The declared blob size.
    pub size: u64,
    /// The base64 signature annotation.
    pub signature: String,
}

#[derive(Deserialize)]
struct SigManifest {
    #[serde(default)]
    layers: Vec<SigLayer>,
}

#[derive(Deserialize)]
struct SigLayer {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

/// The signature layers of a `.sig` manifest: layers of other types
/// (attestations and the like) and layers without the annotation are not
/// signatures and are left out.
pub fn attached_layers(manifest: &[u8]) -> Result<Vec<AttachedLayer>, CosignError> {
    let m: SigManifest =
        serde_json::from_slice(manifest).map_err(|e| CosignError::Manifest(e.to_string()))?;
    Ok(m.layers
        .into_iter()
        .filter(|l| l.media_type == SIMPLESIGNING_MEDIA_TYPE)
        .filter_map(|l| {
            let signature = l.annotations.get(SIGNATURE_ANNOTATION)?.clone();
            Some(AttachedLayer {
                digest: l.digest,
                size: l.size,
                signature,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_tag_is_cosigns() {
        assert_eq!(
            signature_tag("sha256:ab12").as_deref(),
            Some("sha256-ab12.sig")
        );
        assert_eq!(signature_tag("sha512:ab"), None);
    }

    #[test]
    fn attached_layers_keeps_only_signatures() {
        let m = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:c","size":2}},
            "layers":[
              {{"mediaType":"{SIMPLESIGNING_MEDIA_TYPE}","digest":"sha256:a","size":10,"annotations":{{"{SIGNATURE_ANNOTATION}":"AAAA"}}}},
              {{"mediaType":"{SIMPLESIGNING_MEDIA_TYPE}","digest":"sha256:b","size":10}},
              {{"mediaType":"application/vnd.in-toto+json","digest":"sha256:d","size":10,"annotations":{{"{SIGNATURE_ANNOTATION}":"BBBB"}}}}
            ]}}"#
        );
        let layers = attached_layers(m.as_bytes()).unwrap();
        assert_eq!(
            layers,
            vec![AttachedLayer {
                digest: "sha256:a".into(),
                size: 10,
                signature: "AAAA".into()
            }]
        );
        assert!(attached_layers(b"\"manifest\"").is_err());
    }

    #[test]
    fn refuses_keys_that_are_not_p256() {
        assert!(PublicKey::from_pem(b"not a key").is_err());
        // An Ed25519 SubjectPublicKeyInfo.
        let ed = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";
        assert!(PublicKey::from_pem(ed.as_bytes()).is_err());
    }
}
