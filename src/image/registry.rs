//! Async registry client (the OCI distribution spec) on top of `oci-client`:
//! credentials and CAs by the containers-tools conventions, manifest and
//! index resolution with platform choice, blobs streamed to disk with their
//! digest checked, bounded retries with backoff on resets and 5xx.
//!
//! `oci-client` does the wire protocol (token and Basic auth, Accept
//! headers); this module adds what berth promises on top: which credentials
//! and certificates, HTTP only when allowed, retry policy, error kinds.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use tokio::io::AsyncWriteExt;

use super::blob::{self, BlobCheck, Fault};
use super::limits::Limits;
use super::manifest::{self, Platform};
use super::manifest_get;
use super::reference::RegistryRef;
use super::regconf::{self, Credentials, RegistriesConf};
use crate::progress::{Event, Progress};
use crate::ErrorKind;

/// How many times a request is tried on resets and 5xx before giving up.
const ATTEMPTS: u32 = 4;
/// First backoff; doubled after each failed attempt.
const BACKOFF: Duration = Duration::from_millis(250);

/// Failures talking to a registry or reading a source.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Credentials were refused.
    #[error("{registry}: authentication failed ({detail}); check --creds, --authfile or `podman login {registry}`")]
    Unauthorized {
        /// `host[:port]`.
        registry: String,
        /// What the registry said.
        detail: String,
    },
    /// The registry refused access to the repository.
    #[error(
        "{registry}: access to {repository} denied ({detail}); check the credentials' permissions"
    )]
    Denied {
        /// `host[:port]`.
        registry: String,
        /// Repository path.
        repository: String,
        /// What the registry said.
        detail: String,
    },
    /// The image or one of its blobs does not exist.
    #[error("{what} not found on {registry}; check the name and tag (`skopeo list-tags docker://{registry}/{repository}`)")]
    NotFound {
        /// `host[:port]`.
        registry: String,
        /// Repository path.
        repository: String,
        /// What is missing (manifest reference or blob digest).
        what: String,
    },
    /// Connection, TLS or server failure that persisted through the retries.
    #[error("{registry}: {detail}")]
    Transport {
        /// `host[:port]`.
        registry: String,
        /// What went wrong.
        detail: String,
    },
    /// A blob's content does not match its descriptor.
    #[error("blob {expected}: digest mismatch, received content hashes to {actual}; the registry or the path to it corrupted the data, the partial blob was deleted")]
    DigestMismatch {
        /// Digest from the descriptor.
        expected: String,
        /// Digest of what arrived.
        actual: String,
    },
    /// A blob differs from its descriptor: more or fewer bytes, or another
    /// digest. More than declared is never read past the declared size.
    #[error("{image}: blob {digest} from {from}: {fault}; refusing the image")]
    Blob {
        /// The image being pulled.
        image: String,
        /// The descriptor's digest.
        digest: String,
        /// Where it came from: the registry, or the file of a local source.
        from: String,
        /// How it differs.
        fault: Fault,
    },
    /// A manifest, config or layer larger than berth accepts.
    #[error("{image}: {what} is {size} bytes, more than {limit}; refusing the image")]
    TooLarge {
        /// The image being pulled.
        image: String,
        /// What it is (`manifest sha256:…`, `config sha256:…`, a file).
        what: String,
        /// Its size (declared, or received so far).
        size: u64,
        /// The cap and where it comes from.
        limit: String,
    },
    /// A manifest that cannot be used.
    #[error("{reference}: {detail}")]
    BadManifest {
        /// The reference being pulled.
        reference: String,
        /// What is wrong.
        detail: String,
    },
    /// No manifest of an index matches the wanted platform.
    #[error("{reference}: no image for platform {platform} in the index (it has: {available}); choose one with --platform")]
    NoPlatform {
        /// The reference being pulled.
        reference: String,
        /// The wanted platform.
        platform: String,
        /// Platforms the index offers.
        available: String,
    },
    /// A local source (layout or archive) could not be read.
    #[error("{path}: {detail}")]
    Source {
        /// The layout directory or archive.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Credentials, registries.conf or certificate configuration problem.
    #[error(transparent)]
    Config(#[from] regconf::RegConfError),
    /// Local I/O while storing a blob.
    #[error("writing {path}: {source}")]
    Io {
        /// File being written.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

impl RegistryError {
    /// The exit-code kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RegistryError::Unauthorized { .. }
            | RegistryError::Denied { .. }
            | RegistryError::Transport { .. } => ErrorKind::Network,
            RegistryError::NotFound { .. } => ErrorKind::NotFound,
            RegistryError::DigestMismatch { .. }
            | RegistryError::Blob { .. }
            | RegistryError::TooLarge { .. } => ErrorKind::Integrity,
            RegistryError::BadManifest { .. } | RegistryError::NoPlatform { .. } => {
                ErrorKind::Failed
            }
            RegistryError::Source { .. } => ErrorKind::NotFound,
            RegistryError::Config(e) => e.kind(),
            RegistryError::Io { .. } => ErrorKind::Failed,
        }
    }
}

/// How to reach registries, and how much any source may make berth store:
/// the user's flags.
#[derive(Debug, Clone, Default)]
pub struct RemoteOptions {
    /// `--max-layer-size`, `--max-image-size`: caps on what an image
    /// decompresses to (registries and local sources alike).
    pub limits: Limits,
    /// `--creds USER:PASS`.
    pub creds: Option<Credentials>,
    /// `--authfile F`.
    pub authfile: Option<PathBuf>,
    /// `--cert-dir D`.
    pub cert_dir: Option<PathBuf>,
    /// `--tls-verify`: `Some(false)` allows plain HTTP and unverified TLS.
    pub tls_verify: Option<bool>,
    /// The registry answered over plain HTTP last time: when plain HTTP is
    /// allowed, try it before HTTPS (saves a failing TLS attempt).
    pub known_plain_http: bool,
}

/// How long connecting to a registry may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a registry may leave a response without a byte.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A connected view of one repository on one registry.
pub struct Remote {
    client: Client,
    /// Builds the plain-HTTP client when HTTPS fails and HTTP is allowed
    /// (built only then: each oci-client Client costs a trust-store load).
    fallback_http: Option<Box<dyn FnOnce() -> Result<Client, RegistryError> + Send + Sync>>,
    /// Whether `client` speaks plain HTTP.
    plain_http: bool,
    auth: RegistryAuth,
    /// The plain client of the bounded manifest GET ([`manifest_get`]).
    http: reqwest::Client,
    /// How manifest requests authenticate, once known.
    authz: std::sync::Mutex<Option<manifest_get::Authz>>,
    registry: String,
    repository: String,
}

impl Remote {
    /// Prepares a client for `r` with credentials and CAs found the way
    /// podman and skopeo find them.
    pub fn new(
        r: &RegistryRef,
        opts: &RemoteOptions,
        conf: &RegistriesConf,
    ) -> Result<Remote, RegistryError> {
        let creds = match &opts.creds {
            Some(c) => Some(c.clone()),
            None => {
                regconf::find_credentials(&r.registry, &r.repository, opts.authfile.as_deref())?
            }
        };
        let auth = match creds {
            Some(c) => RegistryAuth::Basic(c.username, c.password),
            None => RegistryAuth::Anonymous,
        };
        let certs = regconf::registry_ca_certs(&r.registry, opts.cert_dir.as_deref())?
            .iter()
            .flat_map(|pem| pem_certificates(pem))
            .collect::<Vec<_>>();
        let insecure = opts.tls_verify == Some(false) || conf.is_insecure(&r.registry);
        // The system roots, read once from the distribution's bundle and
        // shared by both clients; without this, each client scans
        // /etc/ssl/certs file by file (~100 ms of a re-pull here).
        let (only, extra) = match system_roots() {
            Some(mut roots) => {
                roots.extend(certs);
                (roots, Vec::new())
            }
            None => (Vec::new(), certs),
        };
        let accept_invalid = opts.tls_verify == Some(false);
        let http =
            manifest_get::http_client(&only, &extra, accept_invalid, CONNECT_TIMEOUT, READ_TIMEOUT)
                .map_err(|e| RegistryError::Transport {
                    registry: r.registry.clone(),
                    detail: format!("cannot build HTTP client: {e}"),
                })?;
        let registry = r.registry.clone();
        let build = move |protocol: ClientProtocol| {
            let config = ClientConfig {
                protocol,
                tls_certs_only: only.clone(),
                extra_root_certificates: extra.clone(),
                accept_invalid_certificates: accept_invalid,
                connect_timeout: Some(CONNECT_TIMEOUT),
                read_timeout: Some(READ_TIMEOUT),
                ..Default::default()
            };
            Client::try_from(config).map_err(|e| RegistryError::Transport {
                registry: registry.clone(),
                detail: format!("cannot build HTTP client: {e}"),
            })
        };
        // With --tls-verify=false (or insecure=true) try HTTPS first without
        // verification, then plain HTTP, as containers/image does; or the
        // other way round when the registry spoke plain HTTP last time.
        type Fallback = Box<dyn FnOnce() -> Result<Client, RegistryError> + Send + Sync>;
        let (first, second) = if insecure && opts.known_plain_http {
            (ClientProtocol::Http, ClientProtocol::Https)
        } else {
            (ClientProtocol::Https, ClientProtocol::Http)
        };
        let plain_http = matches!(first, ClientProtocol::Http);
        let client = build(first)?;
        let fallback_http: Option<Fallback> = if insecure {
            Some(Box::new(move || build(second)))
        } else {
            None
        };
        Ok(Remote {
            client,
            fallback_http,
            plain_http,
            auth,
            http,
            authz: std::sync::Mutex::new(None),
            registry: r.registry.clone(),
            repository: r.repository.clone(),
        })
    }

    /// Whether the registry is being reached over plain HTTP.
    pub fn is_plain_http(&self) -> bool {
        self.plain_http
    }

    fn reference(&self, tag_or_digest: &str) -> Reference {
        if tag_or_digest.starts_with("sha256:") {
            Reference::with_digest(
                self.registry.clone(),
                self.repository.clone(),
                tag_or_digest.to_string(),
            )
        } else {
            Reference::with_tag(
                self.registry.clone(),
                self.repository.clone(),
                tag_or_digest.to_string(),
            )
        }
    }

    /// Fetches the raw manifest named by a tag or digest, reading at most
    /// [`blob::MAX_MANIFEST_SIZE`] (see [`manifest_get`]); returns bytes and
    /// digest. Switches to plain HTTP for good when HTTPS is not spoken and
    /// that is allowed. `image` names the pull in errors.
    async fn raw_manifest(
        &mut self,
        image: &str,
        tag_or_digest: &str,
    ) -> Result<(Vec<u8>, String), RegistryError> {
        let reference = self.reference(tag_or_digest);
        let what = format!("{}/{}:{}", self.registry, self.repository, tag_or_digest);
        // When plain HTTP is allowed, the first protocol gets one try before
        // falling back to the other.
        let first = if self.fallback_http.is_some() {
            self.bounded_manifest(&reference)
                .await
                .map_err(RawError::Oci)
        } else {
            self.retry(&what, || self.bounded_manifest(&reference))
                .await
        };
        let fetched = match (first, self.fallback_http.take()) {
            (Ok(fetched), _) => fetched,
            (Err(RawError::Oci(OciDistributionError::RequestError(e))), Some(make_other)) => {
                tracing::debug!("{} failed ({e}); trying the other protocol", self.registry);
                self.client = make_other()?;
                self.plain_http = !self.plain_http;
                if let Ok(mut authz) = self.authz.lock() {
                    *authz = None;
                }
                self.retry(&what, || self.bounded_manifest(&reference))
                    .await
                    .map_err(|e| self.map_err(e, &what))?
            }
            (Err(e), _) => return Err(self.map_err(e, &what)),
        };
        match fetched {
            manifest_get::Fetched::Complete(bytes, digest) => Ok((bytes, digest)),
            manifest_get::Fetched::TooLarge { size, declared } => Err(RegistryError::TooLarge {
                image: image.to_string(),
                what: format!(
                    "manifest {tag_or_digest} on {} ({})",
                    self.registry,
                    if declared {
                        "declared"
                    } else {
                        "received so far"
                    }
                ),
                size,
                limit: blob::manifest_limit(),
            }),
        }
    }

    /// One bounded manifest GET, authenticated once per [`Remote`].
    async fn bounded_manifest(
        &self,
        reference: &Reference,
    ) -> Result<manifest_get::Fetched, OciDistributionError> {
        let cached = self.authz.lock().ok().and_then(|a| a.clone());
        let authz = match cached {
            Some(a) => a,
            None => {
                let a = manifest_get::authorize(&self.client, reference, &self.auth).await?;
                if let Ok(mut slot) = self.authz.lock() {
                    *slot = Some(a.clone());
                }
                a
            }
        };
        let scheme = if self.plain_http { "http" } else { "https" };
        manifest_get::get(
            &self.http,
            scheme,
            reference,
            &authz,
            manifest::ACCEPTED,
            blob::MAX_MANIFEST_SIZE,
        )
        .await
    }

    /// Resolves `tag_or_digest` to an image manifest for `platform`,
    /// following an index when there is one. Returns the manifest bytes, its
    /// digest and, when it was chosen from an index, the index's bytes and
    /// digest (a signature policy checks both).
    ///
    /// A manifest named by tag has no descriptor: it may be at most
    /// [`blob::MAX_MANIFEST_SIZE`]. One chosen from an index must have the
    /// size the index declares.
    pub async fn fetch_manifest(
        &mut self,
        reference: &str,
        tag_or_digest: &str,
        platform: &Platform,
    ) -> Result<(Vec<u8>, String, Option<(Vec<u8>, String)>), RegistryError> {
        let (bytes, digest) = self.raw_manifest(reference, tag_or_digest).await?;
        self.check_manifest_size(reference, &digest, bytes.len() as u64)?;
        let (bytes, digest, index_digest) = match manifest::classify(reference, &bytes)? {
            manifest::Kind::Manifest => (bytes, digest, None),
            manifest::Kind::Index(index) => {
                let chosen = manifest::choose(reference, &index, platform)?;
                let declared = index
                    .manifests()
                    .iter()
                    .find(|d| d.digest().to_string() == chosen)
                    .map(|d| d.size());
                if let Some(declared) = declared {
                    self.check_manifest_size(reference, &chosen, declared)?;
                }
                let (child, child_digest) = self.raw_manifest(reference, &chosen).await?;
                self.check_manifest_size(reference, &chosen, child.len() as u64)?;
                if let Some(declared) = declared {
                    self.check_declared_size(reference, &chosen, declared, child.len() as u64)?;
                }
                (child, child_digest, Some((bytes, digest)))
            }
        };
        manifest::check_digest(&bytes, &digest)?;
        Ok((bytes, digest, index_digest))
    }

    fn check_manifest_size(
        &self,
        image: &str,
        digest: &str,
        size: u64,
    ) -> Result<(), RegistryError> {
        if size > blob::MAX_MANIFEST_SIZE {
            return Err(RegistryError::TooLarge {
                image: image.to_string(),
                what: format!("manifest {digest} on {}", self.registry),
                size,
                limit: blob::manifest_limit(),
            });
        }
        Ok(())
    }

    fn check_declared_size(
        &self,
        image: &str,
        digest: &str,
        declared: u64,
        received: u64,
    ) -> Result<(), RegistryError> {
        let fault = match received.cmp(&declared) {
            std::cmp::Ordering::Equal => return Ok(()),
            std::cmp::Ordering::Greater => Fault::TooLong { declared },
            std::cmp::Ordering::Less => Fault::TooShort { declared, received },
        };
        Err(self.blob_err(image, digest, fault))
    }

    fn blob_err(&self, image: &str, digest: &str, fault: Fault) -> RegistryError {
        RegistryError::Blob {
            image: image.to_string(),
            digest: digest.to_string(),
            from: format!("registry {}", self.registry),
            fault,
        }
    }

    /// Fetches the image config named by a manifest, reading at most its
    /// declared `size` (itself at most [`blob::MAX_CONFIG_SIZE`]), and checks
    /// its size and digest.
    pub async fn fetch_config(
        &self,
        image: &str,
        config_digest: &str,
        size: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        if size > blob::MAX_CONFIG_SIZE {
            return Err(RegistryError::TooLarge {
                image: image.to_string(),
                what: format!("config {config_digest}"),
                size,
                limit: blob::config_limit(),
            });
        }
        self.fetch_small_blob(image, config_digest, size).await
    }

    /// Fetches a small blob (a signature) into memory: its declared `size`
    /// must be at most `limit`, named `limit_text` in the error.
    pub async fn fetch_bounded_blob(
        &self,
        image: &str,
        digest: &str,
        size: u64,
        limit: u64,
        limit_text: &str,
    ) -> Result<Vec<u8>, RegistryError> {
        if size > limit {
            return Err(RegistryError::TooLarge {
                image: image.to_string(),
                what: format!("blob {digest}"),
                size,
                limit: limit_text.to_string(),
            });
        }
        self.fetch_small_blob(image, digest, size).await
    }

    /// Fetches the manifest tagged `tag` in this repository, or `None`
    /// when there is none (signatures attached beside an image live under
    /// such tags). Bounded like every manifest; the protocol (HTTPS or
    /// plain HTTP) is the one the image's own manifest was fetched with.
    pub async fn fetch_tagged_manifest_optional(
        &self,
        image: &str,
        tag: &str,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        let reference = self.reference(tag);
        let what = format!("{}/{}:{tag}", self.registry, self.repository);
        let fetched = match self
            .retry(&what, || self.bounded_manifest(&reference))
            .await
        {
            Ok(fetched) => fetched,
            Err(e) => {
                return match self.map_err(e, &what) {
                    RegistryError::NotFound { .. } => Ok(None),
                    other => Err(other),
                }
            }
        };
        match fetched {
            manifest_get::Fetched::Complete(bytes, _) => Ok(Some(bytes)),
            manifest_get::Fetched::TooLarge { size, .. } => Err(RegistryError::TooLarge {
                image: image.to_string(),
                what: format!("manifest {what}"),
                size,
                limit: blob::manifest_limit(),
            }),
        }
    }

    /// One blob into memory, `size` already checked against its cap.
    async fn fetch_small_blob(
        &self,
        image: &str,
        config_digest: &str,
        size: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        let reference = self.reference(config_digest);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut buf = Vec::new();
            let mut check = BlobCheck::new(config_digest, size);
            match self
                .fetch_blob_once(&reference, config_digest, &mut buf, &mut check, None)
                .await
            {
                Ok(()) => match check.finish() {
                    Ok(()) => return Ok(buf),
                    Err(fault) => return Err(self.blob_err(image, config_digest, fault)),
                },
                Err(BlobError::Remote(e)) if attempt < ATTEMPTS && retryable(&e) => {
                    tracing::warn!("{config_digest}: attempt {attempt} failed ({e}); retrying");
                    tokio::time::sleep(BACKOFF * 2u32.pow(attempt - 1)).await;
                }
                Err(BlobError::Body(e)) if attempt < ATTEMPTS => {
                    tracing::warn!("{config_digest}: attempt {attempt} failed ({e}); retrying");
                    tokio::time::sleep(BACKOFF * 2u32.pow(attempt - 1)).await;
                }
                Err(e) => return Err(self.blob_failure(e, image, config_digest, &check, attempt)),
            }
        }
    }

    /// Streams one blob of `image` into `dest` (created or truncated),
    /// reading at most its declared `size`, and checks size and digest. More
    /// than declared, a clean end before it or another digest is an
    /// integrity error, never retried; on any error the file is deleted.
    pub async fn fetch_blob(
        &self,
        image: &str,
        digest: &str,
        size: u64,
        dest: &Path,
        progress: &dyn Progress,
    ) -> Result<(), RegistryError> {
        let reference = self.reference(digest);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut check = BlobCheck::new(digest, size);
            let res = match tokio::fs::File::create(dest).await {
                Ok(mut file) => {
                    let res = self
                        .fetch_blob_once(&reference, digest, &mut file, &mut check, Some(progress))
                        .await;
                    match file.flush().await {
                        Ok(()) => res,
                        Err(e) => res.and(Err(BlobError::Io(e))),
                    }
                }
                Err(e) => Err(BlobError::Io(e)),
            };
            let retry = match res {
                Ok(()) => match check.finish() {
                    Ok(()) => return Ok(()),
                    Err(fault) => Err(BlobError::Fault(fault)),
                },
                Err(BlobError::Remote(e)) if attempt < ATTEMPTS && retryable(&e) => {
                    Ok(e.to_string())
                }
                Err(BlobError::Body(e)) if attempt < ATTEMPTS => Ok(e.to_string()),
                Err(e) => Err(e),
            };
            match retry {
                Ok(reason) => self.backoff(digest, attempt, &reason, progress).await,
                Err(e) => {
                    let _ = std::fs::remove_file(dest);
                    return Err(match e {
                        BlobError::Io(source) => RegistryError::Io {
                            path: dest.to_path_buf(),
                            source,
                        },
                        other => self.blob_failure(other, image, digest, &check, attempt),
                    });
                }
            }
        }
    }

    /// The error for a blob that could not be fetched (not an integrity fault).
    fn blob_failure(
        &self,
        e: BlobError,
        image: &str,
        digest: &str,
        check: &BlobCheck,
        attempt: u32,
    ) -> RegistryError {
        match e {
            BlobError::Remote(e) => self.map_err(RawError::Oci(e), digest),
            BlobError::Body(e) => RegistryError::Transport {
                registry: self.registry.clone(),
                detail: format!(
                    "blob {digest}: connection failed after {attempt} attempts, {} of {} bytes received: {e}",
                    check.received(),
                    check.received() + check.remaining()
                ),
            },
            BlobError::Fault(fault) => self.blob_err(image, digest, fault),
            BlobError::Io(source) => RegistryError::Io {
                path: PathBuf::from(digest),
                source,
            },
        }
    }

    async fn backoff(&self, what: &str, attempt: u32, reason: &str, progress: &dyn Progress) {
        tracing::warn!("{what}: attempt {attempt} failed ({reason}); retrying");
        progress.event(Event::Retry {
            what: what.to_string(),
            attempt,
            reason: reason.to_string(),
        });
        tokio::time::sleep(BACKOFF * 2u32.pow(attempt - 1)).await;
    }

    /// One GET of a blob into `out`, fed through `check`: stops (with
    /// [`Fault::TooLong`]) at the first byte past the declared size, and
    /// before reading when the response announces more. `Ok` when the body
    /// ended cleanly; the caller then asks `check` for the verdict.
    async fn fetch_blob_once<W: tokio::io::AsyncWrite + Unpin>(
        &self,
        reference: &Reference,
        digest: &str,
        out: &mut W,
        check: &mut BlobCheck,
        progress: Option<&dyn Progress>,
    ) -> Result<(), BlobError> {
        let mut stream = self
            .client
            .pull_blob_stream(reference, digest)
            .await
            .map_err(BlobError::Remote)?;
        let declared = check.remaining();
        if stream.content_length.is_some_and(|len| len > declared) {
            return Err(BlobError::Fault(Fault::TooLong { declared }));
        }
        while let Some(chunk) = stream.stream.next().await {
            match chunk {
                Ok(bytes) => {
                    // Past the declared size nothing more is written or read.
                    let n = check.update(&bytes).map_err(BlobError::Fault)?;
                    out.write_all(bytes.get(..n).unwrap_or_default())
                        .await
                        .map_err(BlobError::Io)?;
                    if let Some(p) = progress {
                        p.event(Event::LayerBytes {
                            digest: digest.to_string(),
                            bytes: check.received(),
                        });
                    }
                }
                // oci-client checks the digest itself and reports a mismatch
                // as an error at the end of a complete body: `check` has the
                // verdict then. Anything else is a transport failure.
                Err(e) if e.to_string().to_lowercase().contains("digest") => return Ok(()),
                Err(e) => return Err(BlobError::Body(e)),
            }
        }
        Ok(())
    }

    async fn retry<T, F, Fut>(&self, what: &str, mut f: F) -> Result<T, RawError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, OciDistributionError>>,
    {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match f().await {
                Ok(v) => return Ok(v),
                Err(e) if attempt < ATTEMPTS && retryable(&e) => {
                    tracing::warn!("{what}: attempt {attempt} failed ({e}); retrying");
                    tokio::time::sleep(BACKOFF * 2u32.pow(attempt - 1)).await;
                }
                Err(e) => return Err(RawError::Oci(e)),
            }
        }
    }

    fn map_err(&self, e: RawError, what: &str) -> RegistryError {
        let RawError::Oci(e) = e;
        let registry = self.registry.clone();
        let repository = self.repository.clone();
        match e {
            OciDistributionError::UnauthorizedError { url } => RegistryError::Unauthorized {
                registry,
                detail: format!("401 Unauthorized for {url}"),
            },
            OciDistributionError::AuthenticationFailure(detail) => {
                RegistryError::Unauthorized { registry, detail }
            }
            OciDistributionError::ImageManifestNotFoundError(_) => RegistryError::NotFound {
                registry,
                repository,
                what: what.to_string(),
            },
            OciDistributionError::RegistryError { envelope, url } => {
                let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
                let detail = format!("{} ({url})", envelope_text(&envelope));
                if codes.iter().any(|c| {
                    matches!(
                        c,
                        OciErrorCode::ManifestUnknown
                            | OciErrorCode::BlobUnknown
                            | OciErrorCode::NameUnknown
                            | OciErrorCode::NotFound
                    )
                }) {
                    RegistryError::NotFound {
                        registry,
                        repository,
                        what: what.to_string(),
                    }
                } else if codes
                    .iter()
                    .any(|c| matches!(c, OciErrorCode::Unauthorized))
                {
                    RegistryError::Unauthorized { registry, detail }
                } else if codes.iter().any(|c| matches!(c, OciErrorCode::Denied)) {
                    RegistryError::Denied {
                        registry,
                        repository,
                        detail,
                    }
                } else {
                    RegistryError::Transport { registry, detail }
                }
            }
            OciDistributionError::ServerError { code: 404, .. } => RegistryError::NotFound {
                registry,
                repository,
                what: what.to_string(),
            },
            OciDistributionError::ServerError {
                code: 403, message, ..
            } => RegistryError::Denied {
                registry,
                repository,
                detail: message,
            },
            OciDistributionError::ServerError { code, url, message } => RegistryError::Transport {
                registry,
                detail: format!("HTTP {code} from {url}: {}", message.trim()),
            },
            OciDistributionError::RequestError(e) => RegistryError::Transport {
                registry,
                detail: request_error_text(&e),
            },
            OciDistributionError::UnsupportedSchemaVersionError(v) => RegistryError::BadManifest {
                reference: what.to_string(),
                detail: format!(
                    "manifest schema version {v} is not supported (only schema 2 / OCI)"
                ),
            },
            other => RegistryError::Transport {
                registry,
                detail: other.to_string(),
            },
        }
    }
}

/// PEM bundles of the system trust store, as the distributions ship them.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// Points `SSL_CERT_FILE` at the distribution's CA bundle unless it is set.
///
/// oci-client builds a default reqwest client inside every `Client` it
/// makes, and that client's verifier scans `/etc/ssl/certs` file by file
/// (hundreds of opens, most of a re-pull's time). With `SSL_CERT_FILE` set it
/// reads the one bundle, which holds the same roots. Call it first thing in
/// `main`, before any thread exists (the environment is process-global).
pub fn prefer_cert_bundle() {
    if std::env::var_os("SSL_CERT_FILE").is_some() || std::env::var_os("SSL_CERT_DIR").is_some() {
        return;
    }
    if let Some(bundle) = SYSTEM_BUNDLES.iter().find(|p| Path::new(p).is_file()) {
        std::env::set_var("SSL_CERT_FILE", bundle);
    }
}

/// The system roots as DER certificates: `$SSL_CERT_FILE`, else the first
/// bundle of [`SYSTEM_BUNDLES`] that exists. `None` lets reqwest find them.
fn system_roots() -> Option<Vec<Certificate>> {
    let env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
    let path = env
        .into_iter()
        .chain(SYSTEM_BUNDLES.iter().map(PathBuf::from))
        .find(|p| p.is_file())?;
    let pem = std::fs::read(&path).ok()?;
    let roots = pem_certificates(&pem);
    if roots.is_empty() {
        tracing::warn!(
            "{}: no certificates; using the default trust store",
            path.display()
        );
        return None;
    }
    Some(roots)
}

/// Every certificate of a PEM file (a bundle may hold many; reqwest's PEM
/// parser takes only the first), as DER.
fn pem_certificates(pem: &[u8]) -> Vec<Certificate> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .map(|der| Certificate {
            encoding: CertificateEncoding::Der,
            data: der.to_vec(),
        })
        .collect()
}

enum RawError {
    Oci(OciDistributionError),
}

enum BlobError {
    Remote(OciDistributionError),
    Body(std::io::Error),
    Fault(Fault),
    Io(std::io::Error),
}

fn envelope_text(envelope: &oci_client::errors::OciEnvelope) -> String {
    envelope
        .errors
        .iter()
        .map(|e| format!("{:?}: {}", e.code, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Full cause chain of a reqwest error; its Display alone hides the TLS reason.
fn request_error_text(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Whether an error is worth another attempt: resets, timeouts, 5xx, 429.
fn retryable(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::RequestError(r) => {
            // A TLS handshake failure will not fix itself.
            let text = request_error_text(r).to_lowercase();
            !(text.contains("certificate") || text.contains("tls") || text.contains("ssl"))
        }
        OciDistributionError::ServerError { code, .. } => *code >= 500 || *code == 429,
        OciDistributionError::IoError(_) => true,
        _ => false,
    }
}
