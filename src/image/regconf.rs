//! The containers-tools conventions berth shares with podman and skopeo, read
//! from the host (never from `--root`):
//!
//! ```text
//! registries.conf  $CONTAINERS_REGISTRIES_CONF (alone), else
//!                  /etc/containers/registries.conf + registries.conf.d/*.conf (name order)
//! credentials      --authfile | $REGISTRY_AUTH_FILE
//!                  ${XDG_RUNTIME_DIR}/containers/auth.json   (unset: /run/containers/UID/auth.json)
//!                  ${XDG_CONFIG_HOME:-$HOME/.config}/containers/auth.json
//!                  ${DOCKER_CONFIG:-$HOME/.docker}/config.json
//!                  $HOME/.dockercfg                           (legacy format)
//! CA certificates  --cert-dir D/*.crt, else the first existing of
//!                  /etc/containers/certs.d/HOST:PORT, /etc/docker/certs.d/HOST:PORT
//!                  (bases overridable with $BERTH_CERTS_D, `:`-separated)
//! ```
//!
//! Each lookup that depends on the environment is a pure function of the
//! values it needs, with a thin wrapper reading `std::env`.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use crate::error::ErrorKind;

/// The system registries.conf.
pub const REGISTRIES_CONF: &str = "/etc/containers/registries.conf";
/// Its drop-in directory (`*.conf`, read in name order).
pub const REGISTRIES_CONF_D: &str = "/etc/containers/registries.conf.d";
/// Environment variable naming the only registries.conf to read.
pub const ENV_REGISTRIES_CONF: &str = "CONTAINERS_REGISTRIES_CONF";
/// Environment variable naming an auth file (as `--authfile`).
pub const ENV_REGISTRY_AUTH_FILE: &str = "REGISTRY_AUTH_FILE";
/// Environment variable replacing the certs.d base directories (`:`-separated).
pub const ENV_CERTS_D: &str = "BERTH_CERTS_D";
/// Default certs.d base directories, searched in order.
pub const CERTS_D: &[&str] = &["/etc/containers/certs.d", "/etc/docker/certs.d"];

const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_ALIASES: &[&str] = &["index.docker.io", "registry-1.docker.io"];

/// A registries.conf, auth file, certificate directory or `--creds` problem.
#[derive(Debug, thiserror::Error)]
pub enum RegConfError {
    /// A configuration file exists but cannot be read.
    #[error("cannot read {}: {err}; check its permissions", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        err: io::Error,
    },
    /// A registries.conf or auth file is not valid TOML / JSON or has wrong types.
    #[error("{}: {message}; fix the file", Location(path, *line))]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line, when known.
        line: Option<usize>,
        /// What the parser said.
        message: String,
    },
    /// A registries.conf mixes the v1 `[registries.*]` tables with v2 keys.
    #[error("{}: mixes v1 [registries.search/insecure/block] tables with v2 keys; rewrite it in the v2 format (containers-registries.conf(5))", path.display())]
    MixedFormats {
        /// The file.
        path: PathBuf,
    },
    /// `--authfile` or `$REGISTRY_AUTH_FILE` names a file that cannot be opened.
    #[error("auth file {} is not accessible: {err}; check --authfile and ${ENV_REGISTRY_AUTH_FILE}", path.display())]
    AuthFileMissing {
        /// The file.
        path: PathBuf,
        /// Why.
        err: io::Error,
    },
    /// An auth file entry for the registry cannot be decoded.
    #[error("{}: credentials for {key:?} are malformed ({reason}); log in again or fix the entry", path.display())]
    BadAuthEntry {
        /// The auth file.
        path: PathBuf,
        /// The `auths` key.
        key: String,
        /// What is wrong (never the secret).
        reason: String,
    },
    /// `--creds` is not `USER:PASSWORD`.
    #[error("--creds: {reason}; use --creds USER:PASSWORD")]
    BadCreds {
        /// What is wrong (never the password).
        reason: String,
    },
    /// `--cert-dir` names a directory that cannot be read.
    #[error("certificate directory {}: {err}; check --cert-dir", path.display())]
    CertDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        err: io::Error,
    },
    /// A registry name that cannot name a certs.d subdirectory.
    #[error("registry {registry:?} cannot name a certificate directory; expected HOST[:PORT]")]
    BadRegistryName {
        /// The registry as given.
        registry: String,
    },
}

impl RegConfError {
    /// The exit-code kind: unreadable files are failures, everything the
    /// user wrote wrong is usage.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RegConfError::Read { .. } => ErrorKind::Failed,
            RegConfError::Parse { .. }
            | RegConfError::MixedFormats { .. }
            | RegConfError::AuthFileMissing { .. }
            | RegConfError::BadAuthEntry { .. }
            | RegConfError::BadCreds { .. }
            | RegConfError::CertDir { .. }
            | RegConfError::BadRegistryName { .. } => ErrorKind::Usage,
        }
    }
}

/// `path` or `path:line` in messages.
struct Location<'a>(&'a Path, Option<usize>);

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(line) => write!(f, "{}:{line}", self.0.display()),
            None => write!(f, "{}", self.0.display()),
        }
    }
}

fn read_optional(path: &Path) -> Result<Option<String>, RegConfError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(RegConfError::Read {
            path: path.to_owned(),
            err,
        }),
    }
}

fn non_empty_env(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

// ---------------------------------------------------------------- registries.conf

/// The merged registries.conf settings berth uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistriesConf {
    /// `unqualified-search-registries` (v1: `[registries.search]`), in order.
    pub unqualified_search: Vec<String>,
    /// Prefixes (`host[:port]`, `host/ns`, `*.domain`) of `[[registry]]`
    /// entries with `insecure = true` (v1: `[registries.insecure]`).
    pub insecure: Vec<String>,
    /// Prefixes of entries with `blocked = true` (v1: `[registries.block]`).
    pub blocked: Vec<String>,
}

impl RegistriesConf {
    /// Whether connections to `registry` (`host[:port]`) may skip TLS
    /// verification or fall back to HTTP: an insecure entry whose host part is
    /// `registry`, or a `*.domain` entry matching its host.
    pub fn is_insecure(&self, registry: &str) -> bool {
        self.insecure.iter().any(|prefix| {
            let host = prefix.split('/').next().unwrap_or(prefix);
            host == registry || wildcard_matches(prefix, registry)
        })
    }

    /// Whether `name` (`host[:port]/path`) is blocked: a blocked prefix equal
    /// to it or to a leading `/`-separated part of it, or a matching `*.domain`.
    pub fn is_blocked(&self, name: &str) -> bool {
        let registry = name.split('/').next().unwrap_or(name);
        self.blocked.iter().any(|prefix| {
            wildcard_matches(prefix, registry)
                || name == prefix
                || name
                    .strip_prefix(prefix.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        })
    }
}

/// `*.example.com` matches `a.example.com` and `a.b.example.com:5000`.
fn wildcard_matches(prefix: &str, registry: &str) -> bool {
    let Some(suffix) = prefix.strip_prefix('*') else {
        return false;
    };
    let host = match registry.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => registry,
    };
    suffix.starts_with('.') && host.ends_with(suffix)
}

/// Reads registries.conf as podman does (see the module doc).
pub fn load() -> Result<RegistriesConf, RegConfError> {
    let files = registries_conf_files(
        non_empty_env(ENV_REGISTRIES_CONF),
        Path::new(REGISTRIES_CONF),
        Path::new(REGISTRIES_CONF_D),
    )?;
    load_files(&files)
}

/// The files to read: `env_override` alone when set, else `main` and the
/// `*.conf` files of `dropin_dir` sorted by name.
pub fn registries_conf_files(
    env_override: Option<PathBuf>,
    main: &Path,
    dropin_dir: &Path,
) -> Result<Vec<PathBuf>, RegConfError> {
    if let Some(path) = env_override {
        return Ok(vec![path]);
    }
    let mut dropins = Vec::new();
    match std::fs::read_dir(dropin_dir) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry.map_err(|err| RegConfError::Read {
                    path: dropin_dir.to_owned(),
                    err,
                })?;
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "conf") {
                    dropins.push(path);
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(err) => {
            return Err(RegConfError::Read {
                path: dropin_dir.to_owned(),
                err,
            })
        }
    }
    dropins.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    let mut files = vec![main.to_owned()];
    files.extend(dropins);
    Ok(files)
}

/// Reads and merges `files` in order; missing files count as empty.
pub fn load_files(files: &[PathBuf]) -> Result<RegistriesConf, RegConfError> {
    let mut merged = Fragment::default();
    for path in files {
        if let Some(text) = read_optional(path)? {
            merged.merge(parse_fragment(&text, path)?);
        }
    }
    Ok(merged.finish())
}

/// Parses one registries.conf (v1 or v2 format); `path` is for errors.
pub fn parse(text: &str, path: &Path) -> Result<RegistriesConf, RegConfError> {
    Ok(parse_fragment(text, path)?.finish())
}

/// What one file sets; later files override what earlier ones set.
#[derive(Debug, Default)]
struct Fragment {
    search: Option<Vec<String>>,
    /// By prefix, in first-seen order.
    entries: Vec<Entry>,
}

#[derive(Debug)]
struct Entry {
    prefix: String,
    insecure: bool,
    blocked: bool,
}

impl Fragment {
    fn merge(&mut self, later: Fragment) {
        if later.search.is_some() {
            self.search = later.search;
        }
        for entry in later.entries {
            match self.entries.iter_mut().find(|e| e.prefix == entry.prefix) {
                Some(old) => *old = entry,
                None => self.entries.push(entry),
            }
        }
    }

    fn finish(self) -> RegistriesConf {
        let pick = |f: fn(&Entry) -> bool| {
            self.entries
                .iter()
                .filter(|e| f(e))
                .map(|e| e.prefix.clone())
                .collect()
        };
        RegistriesConf {
            insecure: pick(|e| e.insecure),
            blocked: pick(|e| e.blocked),
            unqualified_search: self.search.unwrap_or_default(),
        }
    }
}

#[derive(Deserialize)]
struct RawConf {
    #[serde(rename = "unqualified-search-registries")]
    unqualified_search_registries: Option<Vec<String>>,
    registry: Option<Vec<RawRegistry>>,
    registries: Option<RawV1>,
}

#[derive(Deserialize)]
struct RawRegistry {
    #[serde(default)]
    location: String,
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    blocked: bool,
}

#[derive(Deserialize, Default)]
struct RawV1 {
    #[serde(default)]
    search: RawV1List,
    #[serde(default)]
    insecure: RawV1List,
    #[serde(default)]
    block: RawV1List,
}

#[derive(Deserialize, Default)]
struct RawV1List {
    #[serde(default)]
    registries: Vec<String>,
}

fn parse_fragment(text: &str, path: &Path) -> Result<Fragment, RegConfError> {
    let raw: RawConf = toml::from_str(text).map_err(|e| RegConfError::Parse {
        path: path.to_owned(),
        line: e
            .span()
            .and_then(|span| text.get(..span.start))
            .map(|before| before.matches('\n').count() + 1),
        message: e.message().to_owned(),
    })?;
    let v2 = raw.unqualified_search_registries.is_some() || raw.registry.is_some();
    if let Some(v1) = raw.registries {
        if v2 {
            return Err(RegConfError::MixedFormats {
                path: path.to_owned(),
            });
        }
        let mut entries: Vec<Entry> = Vec::new();
        let mut mark = |list: Vec<String>, insecure: bool| {
            for prefix in list {
                match entries.iter_mut().find(|e| e.prefix == prefix) {
                    Some(e) if insecure => e.insecure = true,
                    Some(e) => e.blocked = true,
                    None => entries.push(Entry {
                        prefix,
                        insecure,
                        blocked: !insecure,
                    }),
                }
            }
        };
        mark(v1.insecure.registries, true);
        mark(v1.block.registries, false);
        return Ok(Fragment {
            search: Some(v1.search.registries),
            entries,
        });
    }
    let mut fragment = Fragment {
        search: raw.unqualified_search_registries,
        entries: Vec::new(),
    };
    for (i, reg) in raw.registry.unwrap_or_default().into_iter().enumerate() {
        let prefix = if reg.prefix.is_empty() {
            reg.location
        } else {
            reg.prefix
        };
        if prefix.is_empty() {
            return Err(RegConfError::Parse {
                path: path.to_owned(),
                line: None,
                message: format!(
                    "[[registry]] entry #{} has neither location nor prefix",
                    i + 1
                ),
            });
        }
        fragment.merge(Fragment {
            search: None,
            entries: vec![Entry {
                prefix,
                insecure: reg.insecure,
                blocked: reg.blocked,
            }],
        });
    }
    Ok(fragment)
}

mod auth;
mod certs;

pub use auth::{find_credentials, parse_creds, Credentials};
pub use certs::registry_ca_certs;

#[cfg(test)]
mod tests;
