//! The check every pull makes: the policy's requirements for the
//! reference, plus a manifest entry's key, evaluated on the manifest before
//! anything of the image is fetched or stored. For a multi-platform image,
//! on the index and then on the platform's manifest chosen from it
//! ([`RegistryCheck`]), each against its own signatures.

use std::cell::OnceCell;
use std::path::PathBuf;

use super::registries_d::{Location, RegistriesD, SignatureConfig};
use super::signatures::{FixedSignatures, RegistrySignatures, SignatureSource};
use super::source::{self as trust_source, Loaded, PolicyOptions, TrustRecord};
use super::verify::{self, Subject, TrustError};
use super::Requirement;
use crate::image::reference::{ImageRef, RegistryRef};
use crate::image::registry::Remote;
use crate::layout::Layout;
use crate::rootfs::Root;
use crate::Error;

/// The policy of one pull: loaded once, checked per candidate reference.
pub struct PullPolicy<'a> {
    root: Root,
    loaded: Loaded,
    opts: &'a PolicyOptions,
}

/// The manifest a check is made on, as received.
#[derive(Debug, Clone, Copy)]
pub struct Checked<'a> {
    /// Its bytes.
    pub bytes: &'a [u8],
    /// Its digest: what a signature signs.
    pub digest: &'a str,
    /// For the manifest of one platform chosen from an index: the index's
    /// digest (named in refusals).
    pub instance_of: Option<&'a str>,
}

impl PullPolicy<'_> {
    /// The root keys and `file://` lookasides are read below.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// Where registries.d is read: `--registries.d`, or the usual lookup.
    pub fn registries_d(&self) -> Location {
        match &self.opts.registries_d {
            Some(dir) => Location::Given(dir.clone()),
            None => Location::Default {
                home: std::env::var_os("HOME").map(PathBuf::from),
            },
        }
    }

    /// Checks `manifest` of `r` against the policy's requirements for it
    /// plus the request's extra ones. `signatures` opens the image's
    /// signature source; it is called only when a requirement needs
    /// signatures, so a pull that needs none never reads registries.d.
    pub fn check<'s>(
        &self,
        r: &ImageRef,
        shown: &str,
        manifest: Checked<'_>,
        signatures: &dyn Fn() -> Result<Box<dyn SignatureSource + 's>, Error>,
    ) -> Result<TrustRecord, Error> {
        self.required(r, shown)?
            .evaluate(shown, manifest, signatures)
    }

    /// The requirements for `r` (pulled as `shown`): the policy's plus the
    /// request's extra ones, their keys read (once, for every manifest of
    /// the image that is checked).
    pub fn required(&self, r: &ImageRef, shown: &str) -> Result<Required, Error> {
        let (policy, scope, mut reqs): (String, String, Vec<_>) = match &self.loaded {
            Loaded::Insecure => ("insecure-policy".to_string(), String::new(), Vec::new()),
            Loaded::Absent { .. } => ("none".to_string(), String::new(), Vec::new()),
            Loaded::Policy { file, policy } => {
                let applied = policy.requirements_for(r);
                (
                    file.display().to_string(),
                    applied.describe(),
                    applied.requirements.to_vec(),
                )
            }
        };
        let scope = match (scope.is_empty(), self.opts.extra.is_empty()) {
            (_, true) => scope,
            (true, false) => "the manifest entry's verify key".to_string(),
            (false, false) => format!("{scope}, plus the manifest entry's verify key"),
        };
        reqs.extend(self.opts.extra.iter().cloned());
        let mut required = Required {
            policy,
            scope,
            reqs: Vec::new(),
        };
        required.reqs = trust_source::load_keys(&self.root, &reqs).map_err(|e| {
            required.refused(TrustError::Key {
                image: shown.to_string(),
                requirement: e.requirement,
                key: e.path.display().to_string(),
                detail: e.source.to_string(),
            })
        })?;
        Ok(required)
    }
}

/// What one image's manifests are checked against ([`PullPolicy::required`]).
#[derive(Debug)]
pub struct Required {
    policy: String,
    scope: String,
    reqs: Vec<Requirement>,
}

impl Required {
    /// The pull's error for `refusal`, naming the policy and its scope.
    fn refused(&self, refusal: TrustError) -> Error {
        Error::Trust {
            policy: self.policy.clone(),
            scope: self.scope.clone(),
            refusal: Box::new(refusal),
        }
    }

    /// True if a check needs the image's signatures.
    fn needs_signatures(&self) -> bool {
        self.reqs.iter().any(|r| {
            matches!(
                r,
                Requirement::SignedBy { .. } | Requirement::SigstoreSigned { .. }
            )
        })
    }

    /// Checks `manifest` (of the image pulled as `shown`); `signatures` is
    /// called only when a requirement needs them.
    pub fn evaluate<'s>(
        &self,
        shown: &str,
        manifest: Checked<'_>,
        signatures: &dyn Fn() -> Result<Box<dyn SignatureSource + 's>, Error>,
    ) -> Result<TrustRecord, Error> {
        let Required {
            policy,
            scope,
            reqs,
        } = self;
        if reqs.is_empty() {
            return Ok(TrustRecord::unchecked(policy));
        }
        let source: Box<dyn SignatureSource + 's> = if self.needs_signatures() {
            signatures()?
        } else {
            Box::new(FixedSignatures::default())
        };
        let subject = Subject {
            reference: shown,
            manifest_digest: manifest.digest,
            manifest: manifest.bytes,
            instance_of: manifest.instance_of,
            signatures: source.as_ref(),
        };
        match verify::evaluate(&subject, reqs) {
            Ok(verified) => {
                tracing::info!(
                    "{}: accepted by {policy} ({scope}): {}",
                    subject.shown(),
                    verified.requirements.join(", ")
                );
                Ok(TrustRecord {
                    policy: policy.clone(),
                    scope: scope.clone(),
                    verified,
                })
            }
            Err(refusal) => Err(self.refused(refusal)),
        }
    }
}

/// The policy checked on a registry image's manifests.
pub struct RegistryCheck<'a> {
    /// The pull's policy.
    pub policy: &'a PullPolicy<'a>,
    /// The runtime the pull runs.
    pub rt: &'a tokio::runtime::Runtime,
    /// The image's repository, connected.
    pub remote: &'a Remote,
    /// The reference, parsed.
    pub rr: &'a RegistryRef,
    /// The reference.
    pub r: &'a ImageRef,
    /// The reference as pulled.
    pub shown: &'a str,
}

impl RegistryCheck<'_> {
    /// Checks the image manifest `bytes` (digest `digest`); when it was
    /// chosen from an index (`index`: its bytes and digest), first the
    /// index, as containers/image's copy does (the policy on the top-level
    /// manifest, then on the platform's instance), each against its own
    /// signatures. Keys and registries.d are read once for both. Returns
    /// the record of the manifest the reference names.
    pub fn check(
        &self,
        bytes: &[u8],
        digest: &str,
        index: Option<(&[u8], &str)>,
    ) -> Result<TrustRecord, Error> {
        let required = self.policy.required(self.r, self.shown)?;
        let config = OnceCell::new();
        let check_one = |manifest: Checked<'_>| {
            let open = || -> Result<Box<dyn SignatureSource + '_>, Error> {
                Ok(Box::new(self.signatures(&config, manifest.digest)?))
            };
            required.evaluate(self.shown, manifest, &open)
        };
        let Some((index_bytes, index_digest)) = index else {
            return check_one(Checked {
                bytes,
                digest,
                instance_of: None,
            });
        };
        let record = check_one(Checked {
            bytes: index_bytes,
            digest: index_digest,
            instance_of: None,
        })?;
        check_one(Checked {
            bytes,
            digest,
            instance_of: Some(index_digest),
        })?;
        Ok(record)
    }

    /// The signatures of the manifest `digest`, with the registries.d
    /// configuration read on first use and kept in `config`.
    fn signatures(
        &self,
        config: &OnceCell<SignatureConfig>,
        digest: &str,
    ) -> Result<RegistrySignatures<'_>, Error> {
        let config = match config.get() {
            Some(c) => c.clone(),
            None => {
                let c = RegistriesD::load(self.policy.root(), &self.policy.registries_d())?
                    .signature_config(self.shown);
                config.get_or_init(|| c).clone()
            }
        };
        Ok(RegistrySignatures::with_config(
            self.rt,
            self.remote,
            self.policy.root(),
            config,
            self.rr,
            self.shown,
            digest,
        ))
    }
}

impl<'a> PullPolicy<'a> {
    /// Loads the policy for a pull of `input` and says, once, how it will
    /// be checked (a warning for `--insecure-policy`, `-v` otherwise).
    pub fn load(
        layout: &Layout,
        opts: &'a PolicyOptions,
        input: &str,
    ) -> Result<PullPolicy<'a>, Error> {
        let loaded = trust_source::load(layout, opts)?;
        let root = layout.open_root()?;
        match &loaded {
            Loaded::Insecure => tracing::warn!(
                "--insecure-policy: {input} is accepted without checking the signature policy"
            ),
            Loaded::Absent { looked } => tracing::info!(
                "no signature policy ({}); {input} is accepted unchecked",
                looked
                    .iter()
                    .map(|p| layout.host(&p.to_string_lossy()).display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Loaded::Policy { file, .. } => {
                tracing::info!("checking {input} against {}", file.display())
            }
        }
        Ok(PullPolicy { root, loaded, opts })
    }
}
