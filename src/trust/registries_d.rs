//! Where an image's signatures are: containers-registries.d(5).
//!
//! ```text
//! /etc/containers/registries.d/     (inside --root; or ~/.config/containers/registries.d
//! ├── default.yaml                   when that exists and no --root is given)
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
//! YAML is read with `serde_norway`, the maintained fork of the deprecated
//! `serde_yaml` (same serde API, active releases); `serde_yml` is itself
//! marked deprecated, and `yaml-rust2` has no serde derive.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The system directory, below the root.
pub const SYSTEM_DIR: &str = "etc/containers/registries.d";
/// The user directory, below `$HOME`.
pub const USER_DIR: &str = ".config/containers/registries.d";
/// Where signatures are when nothing is configured (for root).
pub const DEFAULT_LOOKASIDE: &str = "file:///var/lib/containers/sigstore";

/// A registries.d file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RegistriesDError {
    /// Unreadable.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file or directory.
        path: PathBuf,
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

    /// Reads every `*.yaml` in `dir` (sorted by name); a missing directory
    /// is an empty configuration.
    pub fn load_dir(dir: &Path) -> Result<RegistriesD, RegistriesDError> {
        let read_err = |source| RegistriesDError::Read {
            path: dir.to_path_buf(),
            source,
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RegistriesD::default()),
            Err(e) => return Err(read_err(e)),
        };
        let mut paths = Vec::new();
        for entry in entries {
            let path = entry.map_err(read_err)?.path();
            if path.extension().is_some_and(|e| e == "yaml") {
                paths.push(path);
            }
        }
        paths.sort();
        let mut files = Vec::new();
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|source| RegistriesDError::Read {
                path: path.clone(),
                source,
            })?;
            files.push((path, text));
        }
        RegistriesD::parse(&files)
    }

    /// Reads the directory containers/image would: the user's
    /// `~/.config/containers/registries.d` when it exists and `root` is `/`,
    /// else `ROOT/etc/containers/registries.d`.
    pub fn load(root: &Path, home: Option<&Path>) -> Result<RegistriesD, RegistriesDError> {
        if root == Path::new("/") {
            if let Some(user) = home.map(|h| h.join(USER_DIR)).filter(|d| d.is_dir()) {
                return RegistriesD::load_dir(&user);
            }
        }
        RegistriesD::load_dir(&root.join(SYSTEM_DIR))
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
mod tests {
    use super::*;

    fn conf(files: &[&str]) -> Result<RegistriesD, RegistriesDError> {
        let files: Vec<_> = files
            .iter()
            .enumerate()
            .map(|(i, t)| (PathBuf::from(format!("{i}.yaml")), t.to_string()))
            .collect();
        RegistriesD::parse(&files)
    }

    #[test]
    fn scopes_go_from_specific_to_wildcards() {
        assert_eq!(
            docker_scopes("reg.example.com:5000/ns/app:1"),
            [
                "reg.example.com:5000/ns/app",
                "reg.example.com:5000/ns",
                "reg.example.com:5000",
                "*.example.com",
                "*.com"
            ]
        );
        assert_eq!(
            docker_scopes("localhost:5000/app@sha256:ab"),
            ["localhost:5000/app", "localhost:5000"]
        );
    }

    #[test]
    fn most_specific_scope_wins() {
        let c = conf(&[
            "default-docker:\n  lookaside: file:///default\n",
            "docker:\n  r.example:\n    lookaside: https://host.example/sigs\n  r.example/ns:\n    sigstore: file:///ns\n    use-sigstore-attachments: true\n  '*.example':\n    lookaside: file:///wild\n",
        ])
        .unwrap();
        let ns = c.signature_config("r.example/ns/app:1");
        assert_eq!(ns.lookaside, "file:///ns");
        assert!(ns.use_sigstore_attachments);
        let host = c.signature_config("r.example/other:1");
        assert_eq!(host.lookaside, "https://host.example/sigs");
        assert!(!host.use_sigstore_attachments);
        assert_eq!(
            c.signature_config("q.example/a:1").lookaside,
            "file:///wild"
        );
        assert_eq!(
            c.signature_config("elsewhere.org/a:1").lookaside,
            "file:///default"
        );
        assert_eq!(
            conf(&[]).unwrap().signature_config("r.example/a:1"),
            SignatureConfig {
                lookaside: DEFAULT_LOOKASIDE.into(),
                use_sigstore_attachments: false
            }
        );
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // the test's own temp dirs
    fn a_root_reads_its_own_directory_and_only_yaml_files() {
        let root = tempfile::tempdir().unwrap();
        let home = tempfile::tempdir().unwrap();
        let sys = root.path().join(SYSTEM_DIR);
        let user = home.path().join(USER_DIR);
        std::fs::create_dir_all(&sys).unwrap();
        std::fs::create_dir_all(&user).unwrap();
        std::fs::write(
            sys.join("a.yaml"),
            "default-docker:\n  lookaside: file:///sys\n",
        )
        .unwrap();
        std::fs::write(
            user.join("a.yaml"),
            "default-docker:\n  lookaside: file:///user\n",
        )
        .unwrap();
        std::fs::write(sys.join("ignored.yml"), "not: [yaml").unwrap();
        let with_root = RegistriesD::load(root.path(), Some(home.path())).unwrap();
        assert_eq!(
            with_root.signature_config("r.example/a:1").lookaside,
            "file:///sys"
        );
        let user_conf = RegistriesD::load_dir(&user).unwrap();
        assert_eq!(
            user_conf.signature_config("r.example/a:1").lookaside,
            "file:///user"
        );
    }

    #[test]
    fn a_scope_in_two_files_is_an_error() {
        let e = conf(&[
            "docker:\n  r.example:\n    lookaside: file:///a\n",
            "docker:\n  r.example:\n    lookaside: file:///b\n",
        ])
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("r.example is also configured in 0.yaml"),
            "{e}"
        );
        assert!(conf(&["default-docker: {}\n", "default-docker: {}\n"]).is_err());
        assert!(conf(&["docker: [1, 2]\n"]).is_err());
        assert!(conf(&["", "# only a comment\n"]).is_ok());
    }
}
