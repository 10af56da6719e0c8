//! PURE: containers-policy.json(5) → [`Policy`], and the scope lookup.
//!
//! ```text
//! {
//!   "default": [REQ…],                      the global default
//!   "transports": {
//!     "docker": {                           HOST[:PORT][/PATH…][:TAG|@DIGEST], *.DOMAIN
//!       "quay.io/coreos/etcd": [REQ…],
//!       "*.example.com": [REQ…],
//!       "": [REQ…]                          the transport's default
//!     },
//!     "oci" | "oci-archive" | "docker-archive" | "dir": { "/abs/path[:TAG]": [REQ…] },
//!     …                                     other transports: kept, unused
//!   }
//! }
//! ```
//!
//! Each scope's list is read by [`requirement`](super::requirement),
//! strictly, as containers/image does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::requirement::{parse_list, Ctx};
use super::Requirement;
use crate::image::reference::ImageRef;

/// The transports berth pulls from, as skopeo and policy.json name them.
pub const TRANSPORT_DOCKER: &str = "docker";
/// `oci:DIR[:TAG]`.
pub const TRANSPORT_OCI: &str = "oci";
/// `oci-archive:FILE[:TAG]`.
pub const TRANSPORT_OCI_ARCHIVE: &str = "oci-archive";
/// `docker-archive:FILE[:NAME:TAG]`.
pub const TRANSPORT_DOCKER_ARCHIVE: &str = "docker-archive";
/// `dir:DIR` (read, never pulled from by berth).
pub const TRANSPORT_DIR: &str = "dir";

/// What the policy's errors say about.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("reading the signature policy {file}: {source}")]
    Read {
        /// The policy file.
        file: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The policy or a key below `--root` could not be read.
    #[error("reading the signature policy: {0}")]
    Root(#[from] crate::rootfs::RootError),
    /// A provisioning manifest's `verify.key` is not a usable public key.
    #[error("verification key {key}: {reason}")]
    Key {
        /// The key file, as seen inside the root.
        key: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The file is not a valid policy.
    #[error("signature policy {file}: {scope}: {key}: {reason}; see containers-policy.json(5)")]
    Invalid {
        /// The policy file.
        file: PathBuf,
        /// `default` or `transports.TRANSPORT."SCOPE"`.
        scope: String,
        /// The offending key (`type`, `keyPath`, `signedIdentity.type`…).
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A parsed policy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    /// `default`.
    pub default: Vec<Requirement>,
    /// `transports`: transport → scope → requirements (`""` is the
    /// transport's default).
    pub transports: BTreeMap<String, BTreeMap<String, Vec<Requirement>>>,
}

/// The requirements that apply to one image and where they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied<'a> {
    /// The transport looked up.
    pub transport: String,
    /// The scope that matched: a scope, `""` (the transport's default), or
    /// `None` for the global `default`.
    pub scope: Option<String>,
    /// Its requirements.
    pub requirements: &'a [Requirement],
}

impl Applied<'_> {
    /// How the scope is named in messages: `docker "quay.io/etcd"`,
    /// `docker default`, `default`.
    pub fn describe(&self) -> String {
        match self.scope.as_deref() {
            None => "default".into(),
            Some("") => format!("transports.{} default", self.transport),
            Some(s) => format!("transports.{} {s:?}", self.transport),
        }
    }
}

impl Policy {
    /// Parses policy.json `text` read from `file` (named in errors).
    pub fn parse(text: &[u8], file: &Path) -> Result<Policy, PolicyError> {
        let bad = |scope: &str, key: &str, reason: String| PolicyError::Invalid {
            file: file.to_path_buf(),
            scope: scope.into(),
            key: key.into(),
            reason,
        };
        let v: Value =
            serde_json::from_slice(text).map_err(|e| bad("(file)", "(json)", e.to_string()))?;
        let top = v
            .as_object()
            .ok_or_else(|| bad("(file)", "(json)", "expected an object".into()))?;
        let mut policy = Policy::default();
        for (k, val) in top {
            match k.as_str() {
                "default" => policy.default = parse_list(val, &Ctx::new(file, "default"))?,
                "transports" => {
                    let t = val.as_object().ok_or_else(|| {
                        bad("transports", "transports", "expected an object".into())
                    })?;
                    for (name, scopes) in t {
                        let parsed = parse_transport(file, name, scopes)?;
                        policy.transports.insert(name.clone(), parsed);
                    }
                }
                other => {
                    return Err(bad("(file)", other, "unknown key".into()));
                }
            }
        }
        if !top.contains_key("default") {
            return Err(bad(
                "(file)",
                "default",
                "missing; a policy must say what applies to unlisted images".into(),
            ));
        }
        Ok(policy)
    }

    /// The requirements for `scopes` (most specific first, as
    /// [`scopes_for`] makes them) of `transport`: the first listed scope,
    /// else the transport's `""`, else the global default.
    pub fn lookup(&self, transport: &str, scopes: &[String]) -> Applied<'_> {
        if let Some(t) = self.transports.get(transport) {
            for s in scopes.iter().map(String::as_str).chain([""]) {
                if let Some(reqs) = t.get(s) {
                    return Applied {
                        transport: transport.into(),
                        scope: Some(s.into()),
                        requirements: reqs,
                    };
                }
            }
        }
        Applied {
            transport: transport.into(),
            scope: None,
            requirements: &self.default,
        }
    }

    /// The requirements for image `r`.
    pub fn requirements_for(&self, r: &ImageRef) -> Applied<'_> {
        let (transport, scopes) = scopes_for(r);
        self.lookup(transport, &scopes)
    }
}

/// The transport of `r` and the scopes that may name it, most specific
/// first, not counting the transport's `""`.
///
/// `docker`: `HOST/PATH:TAG` (or `@DIGEST`), `HOST/PATH`, each parent
/// namespace down to `HOST`, then `*.DOMAIN` for each parent domain of the
/// host. Paths: the path with its tag, the path, each parent directory.
pub fn scopes_for(r: &ImageRef) -> (&'static str, Vec<String>) {
    match r {
        ImageRef::Registry(rr) => {
            let mut out = vec![rr.to_string()];
            let mut name = rr.name();
            loop {
                if !out.contains(&name) {
                    out.push(name.clone());
                }
                match name.rsplit_once('/') {
                    Some((parent, _)) => name = parent.to_string(),
                    None => break,
                }
            }
            let host = rr.registry.split(':').next().unwrap_or_default();
            let mut rest = host;
            while let Some((_, parent)) = rest.split_once('.') {
                out.push(format!("*.{parent}"));
                rest = parent;
            }
            (TRANSPORT_DOCKER, out)
        }
        ImageRef::OciDir { path, tag } => (TRANSPORT_OCI, path_scopes(path, tag.as_deref())),
        ImageRef::OciArchive { path, tag } => {
            (TRANSPORT_OCI_ARCHIVE, path_scopes(path, tag.as_deref()))
        }
        ImageRef::DockerArchive { path, .. } => (TRANSPORT_DOCKER_ARCHIVE, path_scopes(path, None)),
    }
}

fn path_scopes(path: &Path, tag: Option<&str>) -> Vec<String> {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = Vec::new();
    if let Some(tag) = tag {
        out.push(format!("{}:{tag}", abs.display()));
    }
    let mut p = Some(abs.as_path());
    while let Some(dir) = p.filter(|d| *d != Path::new("/")) {
        out.push(dir.display().to_string());
        p = dir.parent();
    }
    out
}

fn parse_transport(
    file: &Path,
    name: &str,
    scopes: &Value,
) -> Result<BTreeMap<String, Vec<Requirement>>, PolicyError> {
    let ctx = Ctx::new(file, &format!("transports.{name}"));
    let map = scopes
        .as_object()
        .ok_or_else(|| ctx.bad(name, "expected an object of scopes"))?;
    let mut out = BTreeMap::new();
    for (scope, reqs) in map {
        let ctx = Ctx::new(file, &format!("transports.{name} {scope:?}"));
        check_scope(name, scope).map_err(|reason| ctx.bad("(scope)", reason))?;
        out.insert(scope.clone(), parse_list(reqs, &ctx)?);
    }
    Ok(out)
}

/// Checks a scope's shape for the transports berth knows; others' scopes
/// are their tools' business.
pub fn check_scope(transport: &str, scope: &str) -> Result<(), String> {
    if scope.is_empty() {
        return Ok(());
    }
    match transport {
        TRANSPORT_DOCKER => check_docker_scope(scope),
        TRANSPORT_OCI | TRANSPORT_OCI_ARCHIVE | TRANSPORT_DOCKER_ARCHIVE | TRANSPORT_DIR => {
            if scope.starts_with('/') {
                Ok(())
            } else {
                Err("a path scope must be absolute".into())
            }
        }
        _ => Ok(()),
    }
}

fn check_docker_scope(scope: &str) -> Result<(), String> {
    if let Some(domain) = scope.strip_prefix("*.") {
        if domain.is_empty() || domain.contains(['/', ':', '*', '@']) {
            return Err("a wildcard scope is *.DOMAIN, without port or path".into());
        }
        return Ok(());
    }
    if scope.contains(char::is_whitespace) || scope.contains("://") || scope.contains('*') {
        return Err("expected HOST[:PORT][/PATH][:TAG|@DIGEST] or *.DOMAIN".into());
    }
    let host = scope.split('/').next().unwrap_or_default();
    if host.is_empty() || scope.split('/').any(str::is_empty) {
        return Err("expected HOST[:PORT][/PATH][:TAG|@DIGEST] or *.DOMAIN".into());
    }
    if !host.contains(['.', ':']) && host != "localhost" {
        return Err(format!(
            "{host:?} is not a registry host; scopes are fully qualified (docker.io/library/NAME)"
        ));
    }
    Ok(())
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
