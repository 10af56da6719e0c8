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
use sha2::Digest as _;
use tokio::io::AsyncWriteExt;

use super::manifest::{self, Platform};
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
            RegistryError::DigestMismatch { .. } => ErrorKind::Integrity,
            RegistryError::BadManifest { .. } | RegistryError::NoPlatform { .. } => {
                ErrorKind::Failed
            }
            RegistryError::Source { .. } => ErrorKind::NotFound,
            RegistryError::Config(e) => e.kind(),
            RegistryError::Io { .. } => ErrorKind::Failed,
        }
    }
}

/// How to reach registries: the user's flags.
#[derive(Debug, Clone, Default)]
pub struct RemoteOptions {
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

/// A connected view of one repository on one registry.
pub struct Remote {
    client: Client,
    /// Builds the plain-HTTP client when HTTPS fails and HTTP is allowed
    /// (built only then: each oci-client Client costs a trust-store load).
    fallback_http: Option<Box<dyn FnOnce() -> Result<Client, RegistryError> + Send + Sync>>,
    /// Whether `client` speaks plain HTTP.
    plain_http: bool,
    auth: RegistryAuth,
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
        let registry = r.registry.clone();
        let build = move |protocol: ClientProtocol| {
            let config = ClientConfig {
                protocol,
                tls_certs_only: only.clone(),
                extra_root_certificates: extra.clone(),
                accept_invalid_certificates: accept_invalid,
                connect_timeout: Some(Duration::from_secs(15)),
                read_timeout: Some(Duration::from_secs(60)),
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

    /// Fetches the raw manifest named by a tag or digest; returns bytes and
    /// digest. Switches to plain HTTP for good when HTTPS is not spoken and
    /// that is allowed.
    async fn raw_manifest(
        &mut self,
        tag_or_digest: &str,
    ) -> Result<(Vec<u8>, String), RegistryError> {
        let reference = self.reference(tag_or_digest);
        let what = format!("{}/{}:{}", self.registry, self.repository, tag_or_digest);
        // When plain HTTP is allowed, the first protocol gets one try before
        // falling back to the other.
        let first = if self.fallback_http.is_some() {
            self.client
                .pull_manifest_raw(&reference, &self.auth, manifest::ACCEPTED)
                .await
                .map_err(RawError::Oci)
        } else {
            self.retry(&what, || async {
                self.client
                    .pull_manifest_raw(&reference, &self.auth, manifest::ACCEPTED)
                    .await
            })
            .await
        };
        match (first, self.fallback_http.take()) {
            (Ok((bytes, digest)), _) => Ok((bytes.to_vec(), digest)),
            (Err(RawError::Oci(OciDistributionError::RequestError(e))), Some(make_other)) => {
                tracing::debug!("{} failed ({e}); trying the other protocol", self.registry);
                self.client = make_other()?;
                self.plain_http = !self.plain_http;
                let (bytes, digest) = self
                    .retry(&what, || async {
                        self.client
                            .pull_manifest_raw(&reference, &self.auth, manifest::ACCEPTED)
                            .await
                    })
                    .await
                    .map_err(|e| self.map_err(e, &what))?;
                Ok((bytes.to_vec(), digest))
            }
            (Err(e), _) => Err(self.map_err(e, &what)),
        }
    }

    /// Resolves `tag_or_digest` to an image manifest for `platform`,
    /// following an index when there is one. Returns the manifest bytes, its
    /// digest and the index digest.
    pub async fn fetch_manifest(
        &mut self,
        reference: &str,
        tag_or_digest: &str,
        platform: &Platform,
    ) -> Result<(Vec<u8>, String, Option<String>), RegistryError> {
        let (bytes, digest) = self.raw_manifest(tag_or_digest).await?;
        let (bytes, digest, index_digest) = match manifest::classify(reference, &bytes)? {
            manifest::Kind::Manifest => (bytes, digest, None),
            manifest::Kind::Index(index) => {
                let chosen = manifest::choose(reference, &index, platform)?;
                let (child, child_digest) = self.raw_manifest(&chosen).await?;
                (child, child_digest, Some(digest))
            }
        };
        manifest::check_digest(&bytes, &digest)?;
        Ok((bytes, digest, index_digest))
    }

    /// Fetches the image config named by a manifest and checks its digest.
    pub async fn fetch_config(&self, config_digest: &str) -> Result<Vec<u8>, RegistryError> {
        let reference = self.reference(config_digest);
        let mut attempt = 0u32;
        let config = loop {
            attempt += 1;
            let mut buf = Vec::new();
            match self
                .client
                .pull_blob(&reference, config_digest, &mut buf)
                .await
            {
                Ok(()) => break buf,
                Err(e) if attempt < ATTEMPTS && retryable(&e) => {
                    tracing::warn!("{config_digest}: attempt {attempt} failed ({e}); retrying");
                    tokio::time::sleep(BACKOFF * 2u32.pow(attempt - 1)).await;
                }
                Err(e) => return Err(self.map_err(RawError::Oci(e), config_digest)),
            }
        };
        manifest::check_digest(&config, config_digest)?;
        Ok(config)
    }

    /// Streams one blob into `dest` (created or truncated), checking size and
    /// digest. On a mismatch the file is deleted.
    pub async fn fetch_blob(
        &self,
        digest: &str,
        size: u64,
        dest: &Path,
        progress: &dyn Progress,
    ) -> Result<(), RegistryError> {
        let reference = self.reference(digest);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match self
                .fetch_blob_once(&reference, digest, dest, progress)
                .await
            {
                Ok(()) => return Ok(()),
                Err(BlobError::Mismatch(actual)) => {
                    let _ = std::fs::remove_file(dest);
                    return Err(RegistryError::DigestMismatch {
                        expected: digest.to_string(),
                        actual,
                    });
                }
                Err(BlobError::Io(e)) => {
                    let _ = std::fs::remove_file(dest);
                    return Err(RegistryError::Io {
                        path: dest.to_path_buf(),
                        source: e,
                    });
                }
                Err(BlobError::Remote(e)) => {
                    if attempt >= ATTEMPTS || !retryable(&e) {
                        let _ = std::fs::remove_file(dest);
                        return Err(self.map_err(RawError::Oci(e), digest));
                    }
                    self.backoff(digest, attempt, &e.to_string(), progress)
                        .await;
                }
                Err(BlobError::Body(e)) => {
                    if attempt >= ATTEMPTS {
                        let _ = std::fs::remove_file(dest);
                        return Err(RegistryError::Transport {
                            registry: self.registry.clone(),
                            detail: format!(
                                "blob {digest}: connection failed after {attempt} attempts: {e}"
                            ),
                        });
                    }
                    self.backoff(digest, attempt, &e.to_string(), progress)
                        .await;
                }
            }
            let _ = size;
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

    async fn fetch_blob_once(
        &self,
        reference: &Reference,
        digest: &str,
        dest: &Path,
        progress: &dyn Progress,
    ) -> Result<(), BlobError> {
        let mut stream = self
            .client
            .pull_blob_stream(reference, digest)
            .await
            .map_err(BlobError::Remote)?;
        let mut file = tokio::fs::File::create(dest).await.map_err(BlobError::Io)?;
        let mut hasher = sha2::Sha256::new();
        let mut received = 0u64;
        let mut body_error = None;
        while let Some(chunk) = stream.stream.next().await {
            match chunk {
                Ok(bytes) => {
                    hasher.update(&bytes);
                    received += bytes.len() as u64;
                    file.write_all(&bytes).await.map_err(BlobError::Io)?;
                    progress.event(Event::LayerBytes {
                        digest: digest.to_string(),
                        bytes: received,
                    });
                }
                Err(e) => {
                    body_error = Some(e);
                    break;
                }
            }
        }
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        if actual == digest {
            file.flush().await.map_err(BlobError::Io)?;
            return Ok(());
        }
        match body_error {
            // oci-client's own verification reports a mismatch as an error at
            // the end of a complete body; a short body is a transport failure.
            Some(e) if !e.to_string().to_lowercase().contains("digest") => Err(BlobError::Body(e)),
            _ => Err(BlobError::Mismatch(actual)),
        }
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
    Mismatch(String),
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
