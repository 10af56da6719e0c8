//! A provisioning manifest's per-entry key (`verify = { key = PATH }`): a
//! requirement added on top of the policy, its type chosen by the key's
//! content, so a host image can carry its trust with it.

use std::path::Path;

use super::policy::PolicyError;
use super::{KeySource, KeyType, Requirement, SignedIdentity};
use crate::layout::Layout;

/// PURE: the requirement a key file's `bytes` stands for: an OpenPGP
/// public key (armored or binary) → `signedBy` `GPGKeys`; a PEM public key
/// → `sigstoreSigned`. Both match the signed identity as
/// `matchRepoDigestOrExact`, the containers default.
pub fn requirement_for_key(path: &Path, bytes: &[u8]) -> Result<Requirement, PolicyError> {
    let bad = |reason: &str| PolicyError::Key {
        key: path.to_path_buf(),
        reason: reason.into(),
    };
    if !path.is_absolute() {
        return Err(bad("not an absolute path"));
    }
    let text = String::from_utf8_lossy(bytes.get(..bytes.len().min(4096)).unwrap_or(bytes));
    let text = text.trim_start();
    let key = KeySource::Path(path.to_path_buf());
    let identity = SignedIdentity::MatchRepoDigestOrExact;
    if text.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----") || is_binary_openpgp_key(bytes) {
        return Ok(Requirement::SignedBy {
            key_type: KeyType::GpgKeys,
            keys: vec![key],
            identity,
        });
    }
    if text.starts_with("-----BEGIN PUBLIC KEY-----") {
        return Ok(Requirement::SigstoreSigned {
            key: Some(key),
            keyless: false,
            identity,
        });
    }
    Err(bad(
        "neither an OpenPGP public key (armored or binary) nor a PEM public key (-----BEGIN PUBLIC KEY-----)",
    ))
}

/// An OpenPGP packet stream starting with a public-key packet (tag 6), in
/// the old or the new packet format (RFC 4880 §4.2).
fn is_binary_openpgp_key(bytes: &[u8]) -> bool {
    match bytes.first() {
        Some(b) if b & 0xC0 == 0xC0 => b & 0x3F == 6,
        Some(b) if b & 0xC0 == 0x80 => (b >> 2) & 0x0F == 6,
        _ => false,
    }
}

/// Reads `key` (inside `layout`'s root) and returns its requirement.
pub fn pinned(layout: &Layout, key: &Path) -> Result<Requirement, PolicyError> {
    let bytes = layout.open_root()?.read_at_most(key, super::MAX_KEY_SIZE)?;
    requirement_for_key(key, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_type_follows_the_content() {
        let p = Path::new("/etc/pki/berth/etcd.pub");
        let gpg = requirement_for_key(p, b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQ").unwrap();
        assert_eq!(gpg.type_name(), "signedBy");
        let binary = requirement_for_key(p, &[0x99, 0x01, 0x0d, 0x04]).unwrap();
        assert_eq!(binary.type_name(), "signedBy");
        let new_format = requirement_for_key(p, &[0xC6, 0x33]).unwrap();
        assert_eq!(new_format.type_name(), "signedBy");
        let pem = requirement_for_key(p, b"-----BEGIN PUBLIC KEY-----\nMFkw").unwrap();
        assert_eq!(
            pem,
            Requirement::SigstoreSigned {
                key: Some(KeySource::Path(p.into())),
                keyless: false,
                identity: SignedIdentity::MatchRepoDigestOrExact,
            }
        );
    }

    #[test]
    fn other_content_and_relative_paths_are_refused() {
        let e = requirement_for_key(Path::new("/k"), b"-----BEGIN PRIVATE KEY-----")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/k") && e.contains("neither"), "{e}");
        let e = requirement_for_key(Path::new("k.pub"), b"-----BEGIN PUBLIC KEY-----")
            .unwrap_err()
            .to_string();
        assert!(e.contains("absolute"), "{e}");
    }
}
