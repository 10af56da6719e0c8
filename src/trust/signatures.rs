//! Where [`super::verify::evaluate`] gets an image's signatures from.
//!
//! [`SignatureSource`] is asked only for the kind a requirement needs, so an
//! image under `insecureAcceptAnything` costs no request. Two sources:
//! [`FixedSignatures`] (a list in hand: tests, and sources that have no
//! signatures such as `oci:` layouts) and [`RegistrySignatures`], which reads
//! GPG signatures from the registries.d lookaside and cosign signatures from
//! the registry's `sha256-….sig` tag when `use-sigstore-attachments` is on.

use std::fmt;

use super::cosign;
use super::lookaside::{self, Base, LookasideError, MAX_SIGNATURES, MAX_SIGNATURE_SIZE};
use super::registries_d::{Location, RegistriesD, RegistriesDError, SignatureConfig};
use crate::image::reference::RegistryRef;
use crate::image::registry::{RegistryError, Remote};
use crate::rootfs::Root;
use crate::ErrorKind;

/// A cosign signature as stored: the payload and its base64 signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignSignature {
    /// The layer blob: the simple-signing payload.
    pub payload: Vec<u8>,
    /// The `dev.cosignproject.cosign/signature` annotation.
    pub signature: String,
}

/// Signatures could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The lookaside storage.
    #[error(transparent)]
    Lookaside(#[from] LookasideError),
    /// The registry (the `.sig` tag or its blobs).
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The `.sig` manifest.
    #[error("{tag}: {source}")]
    Attachment {
        /// The tag.
        tag: String,
        /// What is wrong with it.
        source: cosign::CosignError,
    },
}

impl SourceError {
    /// The exit-code kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            SourceError::Lookaside(LookasideError::Read { .. }) => ErrorKind::Network,
            SourceError::Lookaside(LookasideError::Url(_)) => ErrorKind::Usage,
            SourceError::Lookaside(LookasideError::File { source, .. }) => source.kind(),
            SourceError::Lookaside(_) | SourceError::Attachment { .. } => ErrorKind::Integrity,
            SourceError::Registry(e) => e.kind(),
        }
    }
}

/// An image's signatures, fetched on demand.
pub trait SignatureSource: fmt::Debug {
    /// GPG simple signatures: each an OpenPGP signed message.
    fn simple_signing(&self) -> Result<Vec<Vec<u8>>, SourceError>;
    /// cosign signatures.
    fn sigstore(&self) -> Result<Vec<CosignSignature>, SourceError>;
    /// Where signatures of `kind` were looked for, for "none found" errors.
    fn looked_in(&self, kind: Kind) -> String;
}

/// A kind of signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// GPG simple signing.
    SimpleSigning,
    /// cosign.
    Sigstore,
}

/// Signatures in hand.
#[derive(Debug, Clone, Default)]
pub struct FixedSignatures {
    /// GPG simple signatures.
    pub simple: Vec<Vec<u8>>,
    /// cosign signatures.
    pub sigstore: Vec<CosignSignature>,
}

impl SignatureSource for FixedSignatures {
    fn simple_signing(&self) -> Result<Vec<Vec<u8>>, SourceError> {
        Ok(self.simple.clone())
    }

    fn sigstore(&self) -> Result<Vec<CosignSignature>, SourceError> {
        Ok(self.sigstore.clone())
    }

    fn looked_in(&self, _: Kind) -> String {
        "the image source, which carries none".into()
    }
}

/// The signatures of one image in a registry, read as containers/image
/// reads them. Blocking: each call runs its requests on `rt`.
pub struct RegistrySignatures<'a> {
    /// The runtime the pull already runs.
    pub rt: &'a tokio::runtime::Runtime,
    /// The image's repository, connected (its protocol settled by the
    /// manifest fetch).
    pub remote: &'a Remote,
    /// The `--root` the `file://` lookaside is read below (`/` for none).
    pub root: Root,
    /// From registries.d for this image.
    pub config: SignatureConfig,
    /// The reference as pulled (for errors).
    pub image: String,
    /// The repository path without host (`library/busybox`).
    pub repository: String,
    /// The manifest digest signatures must be of.
    pub manifest_digest: String,
}

impl fmt::Debug for RegistrySignatures<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistrySignatures")
            .field("config", &self.config)
            .field("image", &self.image)
            .field("manifest_digest", &self.manifest_digest)
            .finish()
    }
}

impl<'a> RegistrySignatures<'a> {
    /// The source for `r` (pulled as `shown`, manifest `manifest_digest`),
    /// configured by the registries.d that [`RegistriesD::load`] finds at
    /// `at` for `root`.
    pub fn for_image(
        rt: &'a tokio::runtime::Runtime,
        remote: &'a Remote,
        root: &Root,
        at: &Location,
        r: &RegistryRef,
        shown: &str,
        manifest_digest: &str,
    ) -> Result<RegistrySignatures<'a>, RegistriesDError> {
        let config = RegistriesD::load(root, at)?.signature_config(shown);
        Ok(Self::with_config(
            rt,
            remote,
            root,
            config,
            r,
            shown,
            manifest_digest,
        ))
    }

    /// [`RegistrySignatures::for_image`] with registries.d's `config`
    /// for the image already read.
    pub fn with_config(
        rt: &'a tokio::runtime::Runtime,
        remote: &'a Remote,
        root: &Root,
        config: SignatureConfig,
        r: &RegistryRef,
        shown: &str,
        manifest_digest: &str,
    ) -> RegistrySignatures<'a> {
        RegistrySignatures {
            rt,
            remote,
            root: root.clone(),
            config,
            image: shown.to_string(),
            repository: r.repository.clone(),
            manifest_digest: manifest_digest.to_string(),
        }
    }
}

/// How long a lookaside server may take.
const HTTP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl SignatureSource for RegistrySignatures<'_> {
    fn simple_signing(&self) -> Result<Vec<Vec<u8>>, SourceError> {
        match Base::parse(&self.config.lookaside)? {
            Base::File(dir) => Ok(lookaside::read_files(
                &self.root,
                &dir,
                &self.repository,
                &self.manifest_digest,
            )?),
            Base::Http(base) => {
                let http = reqwest::Client::builder()
                    .connect_timeout(HTTP_TIMEOUT)
                    .read_timeout(HTTP_TIMEOUT)
                    .build()
                    .map_err(|e| LookasideError::Read {
                        url: base.clone(),
                        detail: format!("cannot build HTTP client: {e}"),
                    })?;
                Ok(self.rt.block_on(lookaside::read_http(
                    &http,
                    &base,
                    &self.repository,
                    &self.manifest_digest,
                ))?)
            }
        }
    }

    fn sigstore(&self) -> Result<Vec<CosignSignature>, SourceError> {
        if !self.config.use_sigstore_attachments {
            return Ok(Vec::new());
        }
        let Some(tag) = cosign::signature_tag(&self.manifest_digest) else {
            return Ok(Vec::new());
        };
        let Some(manifest) = self.rt.block_on(
            self.remote
                .fetch_tagged_manifest_optional(&self.image, &tag),
        )?
        else {
            return Ok(Vec::new());
        };
        let layers =
            cosign::attached_layers(&manifest).map_err(|source| SourceError::Attachment {
                tag: tag.clone(),
                source,
            })?;
        if layers.len() > MAX_SIGNATURES {
            return Err(SourceError::Attachment {
                tag,
                source: cosign::CosignError::Manifest(format!(
                    "{} signatures, more than {MAX_SIGNATURES}",
                    layers.len()
                )),
            });
        }
        let limit = format!("{MAX_SIGNATURE_SIZE} bytes, berth's limit for a signature");
        let mut out = Vec::new();
        for layer in layers {
            let payload = self.rt.block_on(self.remote.fetch_bounded_blob(
                &self.image,
                &layer.digest,
                layer.size,
                MAX_SIGNATURE_SIZE,
                &limit,
            ))?;
            out.push(CosignSignature {
                payload,
                signature: layer.signature,
            });
        }
        Ok(out)
    }

    fn looked_in(&self, kind: Kind) -> String {
        match kind {
            Kind::SimpleSigning => format!(
                "lookaside {}/{}",
                self.config.lookaside.trim_end_matches('/'),
                lookaside::signature_path(&self.repository, &self.manifest_digest, 1)
            ),
            Kind::Sigstore if self.config.use_sigstore_attachments => format!(
                "the registry tag {}",
                cosign::signature_tag(&self.manifest_digest).unwrap_or_default()
            ),
            Kind::Sigstore => {
                "nowhere: registries.d does not set use-sigstore-attachments: true for this image"
                    .into()
            }
        }
    }
}
