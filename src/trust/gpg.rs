//! GPG simple signing: opening an OpenPGP signed message with the policy's
//! keys and returning the payload inside, as containers/image does.
//!
//! Verified by GnuPG through gpgme, in a fresh `GNUPGHOME` per check that
//! holds only the requirement's keys (the host's keyrings are never
//! consulted), removed afterwards.
//!
//! Why gpgme and not a pure-Rust OpenPGP crate: measured on this project's
//! machine (2 shared cores), a one-function trial in release mode that
//! opens a signed message with a key: with `gpgme` 0.11 it builds cold in
//! 43 s (34 crates, mostly small -sys ones) and the binary grows by 65 KB,
//! and no library is added (libostree already links libgpgme); with `pgp`
//! 0.17 it builds cold in 546 s (154 crates: every OpenPGP cipher, hash and
//! curve) and grows by 3.4 MB, and key expiry, revocation and subkey
//! binding checks would be berth's to get right. GnuPG is also what
//! containers/image uses, so a signature that skopeo or podman accepts is
//! accepted here for the same reasons. The cost: a `gpg` process per step,
//! `gpg` installed (libgpgme's own dependency), and libgpgme-dev to build.

use gpgme::{Context, Protocol, Validity};

/// Why a GPG key or signature was not usable.
#[derive(Debug, thiserror::Error)]
pub enum GpgError {
    /// GnuPG could not be set up (no `gpg`, no temporary directory).
    #[error("cannot run GnuPG to check signatures ({0}); is gpg installed?")]
    Engine(String),
    /// A key file held no usable OpenPGP public key.
    #[error("{key}: not an OpenPGP public key ({detail})")]
    Key {
        /// The key's path, or `keyData`.
        key: String,
        /// What GnuPG said.
        detail: String,
    },
    /// The signature is not a valid signed message by a trusted key.
    #[error("{0}")]
    Invalid(String),
}

/// The requirement's keys, imported into a private keyring.
pub struct Keyring {
    ctx: Context,
    /// Primary fingerprint of every imported key, with its subkeys'.
    trusted: Vec<(String, Vec<String>)>,
    home: tempfile::TempDir,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("trusted", &self.trusted)
            .field("home", &self.home.path())
            .finish()
    }
}

/// A key to import: its bytes (armored or binary) and a name for errors.
pub struct KeyBlob {
    /// Where the key came from (a path, or `keyData`).
    pub name: String,
    /// The key material.
    pub bytes: Vec<u8>,
}

impl Keyring {
    /// A keyring holding exactly `keys`; each must contain at least one key.
    pub fn new(keys: &[KeyBlob]) -> Result<Keyring, GpgError> {
        let home = tempfile::Builder::new()
            .prefix("berth-gpg-")
            .tempdir()
            .map_err(|e| GpgError::Engine(format!("temporary GNUPGHOME: {e}")))?;
        let home_str = home
            .path()
            .to_str()
            .ok_or_else(|| GpgError::Engine("temporary directory path is not UTF-8".into()))?
            .to_string();
        let engine = |e: gpgme::Error| GpgError::Engine(e.to_string());
        let mut ctx = Context::from_protocol(Protocol::OpenPgp).map_err(engine)?;
        ctx.set_engine_home_dir(home_str).map_err(engine)?;
        let mut primaries = Vec::new();
        for key in keys {
            let res = ctx.import(&key.bytes).map_err(|e| GpgError::Key {
                key: key.name.clone(),
                detail: e.to_string(),
            })?;
            let before = primaries.len();
            for i in res.imports() {
                if i.result().is_ok() {
                    if let Ok(fpr) = i.fingerprint() {
                        primaries.push(fpr.to_string());
                    }
                }
            }
            if primaries.len() == before {
                return Err(GpgError::Key {
                    key: key.name.clone(),
                    detail: "no key could be imported".into(),
                });
            }
        }
        let mut trusted = Vec::new();
        for fpr in primaries {
            let k = ctx.get_key(fpr.as_str()).map_err(engine)?;
            let subkeys = k
                .subkeys()
                .filter_map(|s| s.fingerprint().ok().map(str::to_string))
                .collect();
            trusted.push((fpr, subkeys));
        }
        Ok(Keyring { ctx, trusted, home })
    }

    /// Opens the signed message `signature`: returns its payload and the
    /// fingerprint of the key that signed it, when that key is one of the
    /// keyring's (a subkey counts for its primary key).
    pub fn verify(&mut self, signature: &[u8]) -> Result<(Vec<u8>, String), GpgError> {
        let mut payload = Vec::new();
        let res = self
            .ctx
            .verify_opaque(signature, &mut payload)
            .map_err(|e| GpgError::Invalid(format!("not a valid OpenPGP signed message ({e})")))?;
        let sigs: Vec<_> = res.signatures().collect();
        let [sig] = sigs.as_slice() else {
            return Err(GpgError::Invalid(format!(
                "the message holds {} signatures, expected one",
                sigs.len()
            )));
        };
        let fpr = sig.fingerprint().unwrap_or("?").to_string();
        if let Err(e) = sig.status() {
            return Err(GpgError::Invalid(match e.code() {
                c if c == gpgme::Error::NO_PUBKEY.code() => {
                    format!("signed by key {fpr}, which the requirement does not list")
                }
                _ => format!("the signature by {fpr} is not valid ({e})"),
            }));
        }
        if sig.validity() == Validity::Never
            || sig.nonvalidity_reason().is_some()
            || sig.is_wrong_key_usage()
        {
            return Err(GpgError::Invalid(format!(
                "the signature by {fpr} is not valid (key expired, revoked or not for signing)"
            )));
        }
        let accepted = self
            .trusted
            .iter()
            .find(|(primary, subs)| primary == &fpr || subs.contains(&fpr))
            .map(|(primary, _)| primary.clone())
            .ok_or_else(|| {
                GpgError::Invalid(format!(
                    "signed by key {fpr}, which the requirement does not list"
                ))
            })?;
        Ok((payload, accepted))
    }
}
