//! Where an image's signatures are: containers-registries.d(5).
//!
//! ```text
//! /etc/containers/registries.d/     (inside --root; or ~/.config/containers/registries.d
//! ├── default.yaml                   when that exists and no --root is given;
//! │                                  or --registries.d DIR, a host path)
//! └── *.yaml     default-docker: {lookaside: URL, use-sigstore-attachments: BOOL}
//!                docker: {SCOPE: {lookaside: URL, lookaside-staging: URL, …}}
//! ```
//!
//! All `*.yaml` files are merged; a scope (or `default-docker`) given in two
//! files is an error, as in containers/image. For an image the most specific
//! `docker` scope wins: `HOST/PATH:TAG` (or `@DIGEST`), then `HOST/PATH`, its
//! parent namespaces, `HOST[:PORT]`, then `*.DOMAIN` wildcards
//! ([`docker_scopes`]), then `default-docker`. `sigstore` is the old name of
//! `lookaside`. With no lookaside configured, root's default is
//! `file:///var/lib/containers/sigstore`.
//!
//! Every file is read through [`Root`]: with `--root`, a registries.d that
//! is (or holds) a symlink to a host path resolves inside the root, never
//! on the host; each file is bounded to [`MAX_FILE_SIZE`].
//!
//! YAML is read with `serde_norway`, the maintained fork of the deprecated
//! `serde_yaml` (same serde API, active releases); `serde_yml` is itself
//! marked deprecated, and `yaml-rust2` has no serde derive.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::rootfs::{Root, RootError};
use crate::ErrorKind;

/// The system directory, below the root.
pub const SYSTEM_DIR: &str = "etc/containers/registries.d";
/// The user directory, below `$HOME`.
pub const USER_DIR: &str = ".config/containers/registries.d";
/// Where signatures are when nothing is configured (for root).
pub const DEFAULT_LOOKASIDE: &str = "file:///var/lib/containers/sigstore";

/// How large one registries.d file may be.
pub const MAX_FILE_SIZE: u64 = 1 << 20;

/// Where registries.d is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `--registries.d DIR`: a host directory the operator names, read as
    /// given even with `--root`.
    Given(PathBuf),
    /// The lookup containers/image makes (see [`RegistriesD::load`]).
    Default {
        /// `$HOME`, for the user's directory.
        home: Option<PathBuf>,
    },
}

/// A registries.d file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RegistriesDError {
    /// Unreadable: the directory or a file (below the root; the error
    /// names the path).
    #[error(transparent)]
    Read(#[from] RootError),
    /// `--registries.d DIR` cannot be made absolute.
    #[error("--registries.d {dir}: {source}")]
    Given {
        /// The directory given.
        dir: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not YAML of the registries.d shape.
    #[error("{path}: not a registries.d file: {detail}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        detail: String,
    },
    /// A scope configured twice.
    #[error("{path}: {scope} is also configured in {other}; keep one")]
    Duplicate {
        /// The file read second.
        path: PathBuf,
        /// The scope (or `default-docker`).
        scope: String,
        /// The file that configured it first.
        other: PathBuf,
    },
}

impl RegistriesDError {
    /// The exit-code kind: a bad file is a usage error; an unreadable one
    /// says why.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RegistriesDError::Read(e) => e.kind(),
            _ => ErrorKind::Usage,
        }
    }
}

/// One scope's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Namespace {
    /// Where signatures are read from.
    pub lookaside: Option<String>,
    /// Where signatures are written to (read by nothing in berth).
    pub lookaside_staging: Option<String>,
    /// The old name of `lookaside`.
    pub sigstore: Option<String>,
    /// The old name of `lookaside-staging`.
    pub sigstore_staging: Option<String>,
    /// Whether cosign signatures attached in the registry are read.
    pub use_sigstore_attachments: Option<bool>,
}

impl Namespace {
    /// The lookaside URL to read from.
    pub fn read_url(&self) -> Option<&str> {
        self.lookaside
            .as_deref()
            .or(self.sigstore.as_deref())
            .filter(|u| !u.is_empty())
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct File {
    default_docker: Option<Namespace>,
    #[serde(default)]
    docker: BTreeMap<String, Namespace>,
}

/// The merged configuration.
#[derive(Debug, Clone, Default)]
pub struct RegistriesD {
    default_docker: Option<Namespace>,
    docker: BTreeMap<String, Namespace>,
}

/// Where to look for one image's signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureConfig {
    /// The lookaside base URL (`file://…` or `http(s)://…`).
    pub lookaside: String,
    /// Whether to read the registry's `sha256-….sig` attachments.
    pub use_sigstore_attachments: bool,
}

impl RegistriesD {
    /// Parses and merges files given as (path, text), in order.
    pub fn parse(files: &[(PathBuf, String)]) -> Result<RegistriesD, RegistriesDError> {
        let mut out = RegistriesD::default();
        let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
        for (path, text) in files {
            // An empty file (or one of comments) is a null document.
            let file: File = serde_norway::from_str::<Option<File>>(text)
                .map_err(|e| RegistriesDError::Parse {
                    path: path.clone(),
                    detail: e.to_string(),
                })?
                .unwrap_or_default();
            let mut claim = |scope: &str| match seen.insert(scope.to_string(), path.clone()) {
                Some(other) => Err(RegistriesDError::Duplicate {
                    path: path.clone(),
                    scope: scope.to_string(),
                    other,
                }),
                None => Ok(()),
            };
            if let Some(d) = file.default_docker {
                claim("default-docker")?;
                out.default_docker = Some(d);
            }
            for (scope, ns) in file.docker {
                claim(&scope)?;
                out.docker.insert(scope, ns);
            }
        }
        Ok(out)
    }

    /// Reads every `*.yaml` in `dir` (sorted by name), resolved inside
    /// `root` (a symlink there, to the directory or to a file, resolves
    /// inside the root too); a missing directory is an empty configuration.
    /// Each file is read up to [`MAX_FILE_SIZE`].
    pub fn load_dir(root: &Root, dir: &Path) -> Result<RegistriesD, RegistriesDError> {
        let names = match root.read_dir(dir) {
            Ok(names) => names,
            Err(e) if e.is_not_found() => return Ok(RegistriesD::default()),
            Err(e) => return Err(e.into()),
        };
        let mut files = Vec::new();
        for name in names {
            if Path::new(&name).extension().is_none_or(|e| e != "yaml") {
                continue;
            }
            let path = dir.join(&name);
            let bytes = match root.read_at_most(&path, MAX_FILE_SIZE) {
                Ok(b) => b,
                // Removed since the listing, as containers/image tolerates.
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            };
            let shown = root.host().join(path.strip_prefix("/").unwrap_or(&path));
            let text = String::from_utf8(bytes).map_err(|_| RegistriesDError::Parse {
                path: shown.clone(),
                detail: "not UTF-8 text".into(),
            })?;
            files.push((shown, text));
        }
        RegistriesD::parse(&files)
    }

    /// Reads the directory `at` names: `--registries.d DIR` as given on the
    /// host; else what containers/image reads: the user's
    /// `~/.config/containers/registries.d` when it exists and `root` is `/`,
    /// else `/etc/containers/registries.d` inside `root`.
    pub fn load(root: &Root, at: &Location) -> Result<RegistriesD, RegistriesDError> {
        let home = match at {
            Location::Given(dir) => {
                let dir = std::path::absolute(dir).map_err(|source| RegistriesDError::Given {
                    dir: dir.clone(),
                    source,
                })?;
                return RegistriesD::load_dir(&Root::open(Path::new("/"))?, &dir);
            }
            Location::Default { home } => home,
        };
        if root.host() == Path::new("/") {
            if let Some(user) = home.as_ref().map(|h| h.join(USER_DIR)) {
                if root.open_dir(&user).is_ok() {
                    return RegistriesD::load_dir(root, &user);
                }
            }
        }
        RegistriesD::load_dir(root, Path::new(SYSTEM_DIR))
    }

    /// The most specific settings for `identity` (`HOST/PATH:TAG` or
    /// `HOST/PATH@DIGEST`), and the scope they came from.
    pub fn namespace_for(&self, identity: &str) -> Option<(&str, &Namespace)> {
        std::iter::once(identity.to_string())
            .chain(docker_scopes(identity))
            .find_map(|scope| self.docker.get_key_value(&scope))
            .map(|(k, v)| (k.as_str(), v))
            .or_else(|| self.default_docker.as_ref().map(|d| ("default-docker", d)))
    }

    /// Where to read `identity`'s signatures from.
    pub fn signature_config(&self, identity: &str) -> SignatureConfig {
        let ns = self.namespace_for(identity).map(|(_, ns)| ns);
        SignatureConfig {
            lookaside: ns
                .and_then(Namespace::read_url)
                .unwrap_or(DEFAULT_LOOKASIDE)
                .to_string(),
            use_sigstore_attachments: ns
                .and_then(|ns| ns.use_sigstore_attachments)
                .unwrap_or(false),
        }
    }
}

/// The `docker` scopes of a reference from most to least specific, after
/// the full reference: `HOST/A/B`, `HOST/A`, `HOST[:PORT]`, then
/// `*.DOMAIN` for each parent domain of the host (port dropped), as
/// containers/image lists them for policy.json and registries.d alike.
pub fn docker_scopes(identity: &str) -> Vec<String> {
    let name = match identity.split_once('@') {
        Some((name, _)) => name,
        None => match identity.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => name,
            _ => identity,
        },
    };
    let mut out = Vec::new();
    let mut cur = name;
    loop {
        out.push(cur.to_string());
        match cur.rsplit_once('/') {
            Some((parent, _)) => cur = parent,
            None => break,
        }
    }
    let mut host = cur.split_once(':').map_or(cur, |(h, _)| h);
    while let Some((_, rest)) = host.split_once('.') {
        out.push(format!("*.{rest}"));
        host = rest;
    }
    out
}

#[cfg(test)]
#[path = "registries_d_tests.rs"]
mod tests;
