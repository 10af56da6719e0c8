//! PURE: parse and print image references (registry, `oci:`, `oci-archive:`,
//! `docker-archive:`), resolve short names through search registries.
//!
//! Accepted forms:
//!
//! | form | example |
//! | --- | --- |
//! | `[docker://]HOST[:PORT]/PATH[:TAG][@sha256:HEX]` | `registry.example:5000/app/web:1.2` |
//! | short name `[docker://]PATH[:TAG][@sha256:HEX]` | `busybox` (resolved via search registries) |
//! | `oci:DIR[:TAG]` | `oci:/srv/layout:v1` |
//! | `oci-archive:FILE[:TAG]` | `oci-archive:app.tar` |
//! | `docker-archive:FILE[:NAME[:TAG]]` | `docker-archive:save.tar:localhost:5000/app:v1` |
//!
//! Registry references follow the distribution grammar: the first `/`-separated
//! component is the registry when it contains `.` or `:` or is `localhost`;
//! path components match `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`; the whole
//! `HOST/PATH` is at most 255 characters. Without tag and digest the tag is
//! `latest`. `docker.io/NAME` becomes `docker.io/library/NAME` (and
//! `index.docker.io` becomes `docker.io`), nothing else is rewritten.
//!
//! `oci:` and `oci-archive:` split on the LAST `:` unless what follows it holds
//! a `/` (a tag never does); a trailing `:` means "no tag", so a path that itself
//! contains `:` is written `oci:/odd:path:`. `docker-archive:` splits on the
//! FIRST `:`, as containers/image does: the file name cannot contain `:`, and
//! the rest is a `NAME[:TAG]` (which may start with `HOST:PORT/`), kept in the
//! canonical form `NAME:TAG`.
//!
//! [`ImageRef`]'s `Display` prints the canonical form, and parsing it gives the
//! same value back (property-tested below).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// The tag used when a reference names neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
/// The Docker Hub registry name; the only one whose single-component
/// repositories get a `library/` prefix.
pub const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_LEGACY: &str = "index.docker.io";
const DOCKER_HUB_NAMESPACE: &str = "library/";
const NAME_MAX: usize = 255;
const TAG_MAX: usize = 128;
const DIGEST_PREFIX: &str = "sha256:";
const DIGEST_HEX_LEN: usize = 64;

const SCHEME_DOCKER: &str = "docker://";
const TRANSPORT_OCI: &str = "oci";
const TRANSPORT_OCI_ARCHIVE: &str = "oci-archive";
const TRANSPORT_DOCKER_ARCHIVE: &str = "docker-archive";
/// containers-tools transports berth does not read.
const UNSUPPORTED_TRANSPORTS: &[&str] = &[
    "docker",
    "docker-daemon",
    "containers-storage",
    "dir",
    "ostree",
    "sif",
    "tarball",
];
const SUPPORTED: &str = "supported: docker://, oci:, oci-archive:, docker-archive:";

const TAG_RULE: &str = "must match [A-Za-z0-9_][A-Za-z0-9._-]{0,127}";
const DIGEST_RULE: &str = "must be sha256: followed by 64 lowercase hex digits";
const PATH_RULE: &str =
    "components must match [a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)* separated by /";
const HOST_RULE: &str =
    "must be HOST[:PORT]: letters, digits, '-' and '.' (or [IPv6]), port 1-65535";

/// A malformed or unresolvable reference.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    /// The reference text is malformed; `part` names what is wrong.
    #[error("invalid image reference {input:?}: {part}")]
    Invalid {
        /// The text given.
        input: String,
        /// What is wrong, e.g. `tag "Bad Tag": must match [A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
        part: String,
    },
    /// A short name and no search registries configured.
    #[error("short name {name:?} and no unqualified-search-registries in registries.conf; use a fully qualified reference such as HOST[:PORT]/{name}")]
    NoSearchRegistries {
        /// The short name.
        name: String,
    },
}

/// A reference into a registry: `HOST[:PORT]/PATH[:TAG][@sha256:DIGEST]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RegistryRef {
    /// `host` or `host:port` (lowercase host).
    pub registry: String,
    /// Repository path, e.g. `library/busybox`.
    pub repository: String,
    /// Tag; `None` with a digest, or defaulted to `latest` when neither.
    pub tag: Option<String>,
    /// `sha256:<64 hex>`.
    pub digest: Option<String>,
}

impl RegistryRef {
    /// `HOST/PATH`: the image name without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What to ask the registry for: the digest when there is one (it wins
    /// over the tag), else the tag, else `latest`.
    pub fn tag_or_digest(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or(DEFAULT_TAG)
    }
}

impl fmt::Display for RegistryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ImageRef {
    /// `[docker://]HOST[:PORT]/PATH[:TAG][@DIGEST]`.
    Registry(RegistryRef),
    /// `oci:DIR[:TAG]`.
    OciDir {
        /// Layout directory.
        path: PathBuf,
        /// Tag (`org.opencontainers.image.ref.name`), if given.
        tag: Option<String>,
    },
    /// `oci-archive:FILE[:TAG]`.
    OciArchive {
        /// Tar file holding an OCI layout.
        path: PathBuf,
        /// Tag, if given.
        tag: Option<String>,
    },
    /// `docker-archive:FILE[:NAME[:TAG]]`.
    DockerArchive {
        /// Tar file as written by `docker save`; cannot contain `:`.
        path: PathBuf,
        /// Canonical `[HOST[:PORT]/]PATH:TAG` to select, if given.
        name: Option<String>,
    },
}

impl ImageRef {
    /// Short display name for listings: `HOST/PATH` for registry references,
    /// the path for layouts and archives.
    pub fn name(&self) -> String {
        match self {
            ImageRef::Registry(r) => r.name(),
            ImageRef::OciDir { path, .. }
            | ImageRef::OciArchive { path, .. }
            | ImageRef::DockerArchive { path, .. } => path.display().to_string(),
        }
    }

    /// The tag, if the reference has one (for `docker-archive:` the tag of
    /// its `NAME:TAG`).
    pub fn tag(&self) -> Option<&str> {
        match self {
            ImageRef::Registry(r) => r.tag.as_deref(),
            ImageRef::OciDir { tag, .. } | ImageRef::OciArchive { tag, .. } => tag.as_deref(),
            ImageRef::DockerArchive { name, .. } => name
                .as_deref()
                .and_then(|n| n.rsplit_once(':'))
                .map(|(_, tag)| tag)
                .filter(|tag| !tag.contains('/')),
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageRef::Registry(r) => r.fmt(f),
            ImageRef::OciDir { path, tag } => fmt_layout(f, TRANSPORT_OCI, path, tag.as_deref()),
            ImageRef::OciArchive { path, tag } => {
                fmt_layout(f, TRANSPORT_OCI_ARCHIVE, path, tag.as_deref())
            }
            ImageRef::DockerArchive { path, name } => {
                write!(f, "{TRANSPORT_DOCKER_ARCHIVE}:{}", path.display())?;
                match name {
                    Some(name) => write!(f, ":{name}"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// `oci:PATH[:TAG]`; a path containing `:` and no tag gets a trailing `:` so
/// that parsing does not take its last part for a tag.
fn fmt_layout(
    f: &mut fmt::Formatter<'_>,
    transport: &str,
    path: &std::path::Path,
    tag: Option<&str>,
) -> fmt::Result {
    let path = path.display().to_string();
    match tag {
        Some(tag) => write!(f, "{transport}:{path}:{tag}"),
        None if path.contains(':') => write!(f, "{transport}:{path}:"),
        None => write!(f, "{transport}:{path}"),
    }
}

/// Parses a reference that must not need search registries; a short name is
/// [`ReferenceError::NoSearchRegistries`].
impl FromStr for ImageRef {
    type Err = ReferenceError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        match parse(input)? {
            Parsed::Image(image) => Ok(image),
            Parsed::Short(_) => Err(no_search_registries(input)),
        }
    }
}

/// A registry reference without a registry, e.g. `busybox` or `app/web:1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ShortName {
    /// Repository path as given (no `library/` added).
    pub repository: String,
    /// Tag; defaulted to `latest` when neither tag nor digest is given.
    pub tag: Option<String>,
    /// `sha256:<64 hex>`.
    pub digest: Option<String>,
}

/// The outcome of [`parse`]: a complete reference or a short name that still
/// needs a registry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Parsed {
    /// A registry reference with its registry, or a transport reference.
    Image(ImageRef),
    /// A registry reference without a registry.
    Short(ShortName),
}

/// Parses `input` without resolving short names.
pub fn parse(input: &str) -> Result<Parsed, ReferenceError> {
    parse_parts(input).map_err(|part| invalid(input, part))
}

/// The references to try, in order, for `input`: one for a qualified or
/// transport reference, one per search registry (duplicates dropped) for a
/// short name.
pub fn resolve(input: &str, search_registries: &[String]) -> Result<Vec<ImageRef>, ReferenceError> {
    let short = match parse(input)? {
        Parsed::Image(image) => return Ok(vec![image]),
        Parsed::Short(short) => short,
    };
    if search_registries.is_empty() {
        return Err(no_search_registries(input));
    }
    let mut out: Vec<ImageRef> = Vec::with_capacity(search_registries.len());
    for registry in search_registries {
        let registry =
            check_host(registry).map_err(|part| invalid(input, format!("search {part}")))?;
        let image = ImageRef::Registry(
            qualify(
                registry,
                &short.repository,
                short.tag.clone(),
                short.digest.clone(),
            )
            .map_err(|part| invalid(input, part))?,
        );
        if !out.contains(&image) {
            out.push(image);
        }
    }
    Ok(out)
}

fn invalid(input: &str, part: String) -> ReferenceError {
    ReferenceError::Invalid {
        input: input.to_owned(),
        part,
    }
}

fn no_search_registries(input: &str) -> ReferenceError {
    ReferenceError::NoSearchRegistries {
        name: input
            .strip_prefix(SCHEME_DOCKER)
            .unwrap_or(input)
            .to_owned(),
    }
}

/// Parses `input`; the error is the `part` of [`ReferenceError::Invalid`].
fn parse_parts(input: &str) -> Result<Parsed, String> {
    if input.is_empty() {
        return Err("empty reference".to_owned());
    }
    if let Some(rest) = input.strip_prefix(SCHEME_DOCKER) {
        return parse_docker(rest);
    }
    if let Some((transport, rest)) = input.split_once(':') {
        let image = match transport {
            TRANSPORT_OCI => {
                let (path, tag) = parse_layout(rest)?;
                Some(ImageRef::OciDir { path, tag })
            }
            TRANSPORT_OCI_ARCHIVE => {
                let (path, tag) = parse_layout(rest)?;
                Some(ImageRef::OciArchive { path, tag })
            }
            TRANSPORT_DOCKER_ARCHIVE => Some(parse_docker_archive(rest)?),
            _ => None,
        };
        if let Some(image) = image {
            return Ok(Parsed::Image(image));
        }
    }
    parse_docker(input).map_err(|part| transport_error(input).unwrap_or(part))
}

/// For `X:REST` that failed to parse as a registry reference: if `X` reads as
/// a transport name rather than a host or `NAME:TAG`, the error to report.
fn transport_error(input: &str) -> Option<String> {
    let (scheme, rest) = input.split_once(':')?;
    if UNSUPPORTED_TRANSPORTS.contains(&scheme) {
        return Some(format!(
            "transport \"{scheme}:\" is not supported; {SUPPORTED}"
        ));
    }
    let transport_like = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase())
        && scheme
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let first = rest.split('/').next().unwrap_or(rest);
    let port_like = !first.is_empty() && first.chars().all(|c| c.is_ascii_digit());
    let name_tag_like = !rest.contains('/');
    if !transport_like || scheme == "localhost" || port_like || name_tag_like {
        return None;
    }
    Some(format!("unknown transport \"{scheme}:\"; {SUPPORTED}"))
}

/// `PATH[:TAG]` for `oci:` and `oci-archive:`.
fn parse_layout(rest: &str) -> Result<(PathBuf, Option<String>), String> {
    let (path, tag) = match rest.rsplit_once(':') {
        Some((path, "")) => (path, None),
        Some((path, tag)) if !tag.contains('/') => (path, Some(check_tag(tag)?)),
        _ => (rest, None),
    };
    if path.is_empty() {
        return Err("path \"\": must not be empty".to_owned());
    }
    Ok((PathBuf::from(path), tag))
}

/// `FILE[:NAME[:TAG]]` for `docker-archive:`.
fn parse_docker_archive(rest: &str) -> Result<ImageRef, String> {
    let (path, name) = match rest.split_once(':') {
        Some((path, name)) => (path, Some(name)),
        None => (rest, None),
    };
    if path.is_empty() {
        return Err("path \"\": must not be empty".to_owned());
    }
    let name = name.map(canonical_archive_name).transpose()?;
    Ok(ImageRef::DockerArchive {
        path: PathBuf::from(path),
        name,
    })
}

/// Checks a `docker-archive:` `NAME[:TAG]` and returns it as `NAME:TAG`.
fn canonical_archive_name(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("name \"\": must be [HOST[:PORT]/]PATH[:TAG]".to_owned());
    }
    if name.contains('@') {
        return Err(format!(
            "name {name:?}: a docker-archive name cannot have a digest; use NAME:TAG"
        ));
    }
    let (name_only, tag) = split_tag(name);
    let tag = match tag {
        Some(tag) => check_tag(tag)?,
        None => DEFAULT_TAG.to_owned(),
    };
    let (host, repository) = split_host(name_only);
    check_repository(repository)?;
    let full = match host {
        Some(host) => format!("{}/{repository}", check_host(host)?),
        None => repository.to_owned(),
    };
    check_name_length(&full)?;
    Ok(format!("{full}:{tag}"))
}

/// `[HOST[:PORT]/]PATH[:TAG][@DIGEST]`.
fn parse_docker(text: &str) -> Result<Parsed, String> {
    let (name_tag, digest) = match text.split_once('@') {
        Some((name_tag, digest)) => (name_tag, Some(check_digest(digest)?)),
        None => (text, None),
    };
    let (name, tag) = split_tag(name_tag);
    let tag = tag.map(check_tag).transpose()?;
    let tag = match (&tag, &digest) {
        (None, None) => Some(DEFAULT_TAG.to_owned()),
        _ => tag,
    };
    let (host, repository) = split_host(name);
    check_repository(repository)?;
    match host {
        Some(host) => Ok(Parsed::Image(ImageRef::Registry(qualify(
            check_host(host)?,
            repository,
            tag,
            digest,
        )?))),
        None => {
            check_name_length(repository)?;
            Ok(Parsed::Short(ShortName {
                repository: repository.to_owned(),
                tag,
                digest,
            }))
        }
    }
}

/// Builds a [`RegistryRef`] from checked parts, applying the Docker Hub
/// spelling (`docker.io`, `library/`) and the total length limit.
fn qualify(
    registry: String,
    repository: &str,
    tag: Option<String>,
    digest: Option<String>,
) -> Result<RegistryRef, String> {
    let registry = if registry == DOCKER_HUB_LEGACY {
        DOCKER_HUB.to_owned()
    } else {
        registry
    };
    let repository = if registry == DOCKER_HUB && !repository.contains('/') {
        format!("{DOCKER_HUB_NAMESPACE}{repository}")
    } else {
        repository.to_owned()
    };
    check_name_length(&format!("{registry}/{repository}"))?;
    Ok(RegistryRef {
        registry,
        repository,
        tag,
        digest,
    })
}

/// Splits `NAME[:TAG]` at the last `:` when no `/` follows it.
fn split_tag(name_tag: &str) -> (&str, Option<&str>) {
    match name_tag.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
        _ => (name_tag, None),
    }
}

/// Splits off the registry: the first component when it contains `.` or `:`
/// or is `localhost`, and more components follow.
fn split_host(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn check_name_length(name: &str) -> Result<(), String> {
    if name.len() > NAME_MAX {
        return Err(format!(
            "name {name:?}: must be at most {NAME_MAX} characters, is {}",
            name.len()
        ));
    }
    Ok(())
}

fn check_tag(tag: &str) -> Result<String, String> {
    let mut chars = tag.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok && tag.len() <= TAG_MAX {
        Ok(tag.to_owned())
    } else {
        Err(format!("tag {tag:?}: {TAG_RULE}"))
    }
}

fn check_digest(digest: &str) -> Result<String, String> {
    let ok = digest.strip_prefix(DIGEST_PREFIX).is_some_and(|hex| {
        hex.len() == DIGEST_HEX_LEN
            && hex
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    });
    if ok {
        Ok(digest.to_owned())
    } else {
        Err(format!("digest {digest:?}: {DIGEST_RULE}"))
    }
}

fn check_repository(repository: &str) -> Result<(), String> {
    if repository.is_empty() {
        return Err("repository \"\": must not be empty".to_owned());
    }
    let valid = |path: &str| path.split('/').all(valid_component);
    if valid(repository) {
        return Ok(());
    }
    if repository.chars().any(|c| c.is_ascii_uppercase()) && valid(&repository.to_ascii_lowercase())
    {
        return Err(format!("repository {repository:?}: must be lowercase"));
    }
    Err(format!("repository {repository:?}: {PATH_RULE}"))
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`
fn valid_component(component: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    component.chars().next().is_some_and(alnum)
        && component.chars().next_back().is_some_and(alnum)
        && component
            .split(alnum)
            .all(|sep| matches!(sep, "." | "_" | "__") || sep.chars().all(|c| c == '-'))
}

/// Checks `HOST[:PORT]` (or `[IPv6][:PORT]`) and returns it lowercased.
fn check_host(host: &str) -> Result<String, String> {
    let bad = || format!("registry {host:?}: {HOST_RULE}");
    let (name_ok, port) = match host.strip_prefix('[') {
        Some(rest) => {
            let (inside, after) = rest.split_once(']').ok_or_else(bad)?;
            let ok = inside.contains(':')
                && inside
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
            let port = match after {
                "" => None,
                after => Some(after.strip_prefix(':').ok_or_else(bad)?),
            };
            (ok, port)
        }
        None => {
            let (name, port) = match host.split_once(':') {
                Some((name, port)) => (name, Some(port)),
                None => (host, None),
            };
            (name.split('.').all(valid_domain_label), port)
        }
    };
    let port_ok = port.is_none_or(|p| {
        p.chars().all(|c| c.is_ascii_digit()) && p.parse::<u16>().is_ok_and(|n| n > 0)
    });
    if name_ok && port_ok {
        Ok(host.to_ascii_lowercase())
    } else {
        Err(bad())
    }
}

/// `[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?`
fn valid_domain_label(label: &str) -> bool {
    label
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && label
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn canon(input: &str) -> String {
        match parse(input) {
            Ok(Parsed::Image(image)) => image.to_string(),
            Ok(Parsed::Short(s)) => panic!("{input}: unexpectedly short: {s:?}"),
            Err(e) => panic!("{input}: {e}"),
        }
    }

    #[test]
    fn accepts_and_canonicalises() {
        let d = D;
        let cases: Vec<(String, String)> = vec![
            ("quay.io/foo/bar".into(), "quay.io/foo/bar:latest".into()),
            (
                "docker://quay.io/foo/bar:1.0".into(),
                "quay.io/foo/bar:1.0".into(),
            ),
            ("localhost/app".into(), "localhost/app:latest".into()),
            (
                "localhost:5000/app:v1".into(),
                "localhost:5000/app:v1".into(),
            ),
            (
                "Registry.Example:5000/a/b".into(),
                "registry.example:5000/a/b:latest".into(),
            ),
            ("127.0.0.1:5443/x".into(), "127.0.0.1:5443/x:latest".into()),
            ("[::1]:5000/x:t".into(), "[::1]:5000/x:t".into()),
            (format!("r.io/a@{d}"), format!("r.io/a@{d}")),
            (format!("r.io/a:v2@{d}"), format!("r.io/a:v2@{d}")),
            (
                "r.io/a-b__c.d_e---f/g:_T.a-g".into(),
                "r.io/a-b__c.d_e---f/g:_T.a-g".into(),
            ),
            (
                "docker.io/busybox".into(),
                "docker.io/library/busybox:latest".into(),
            ),
            ("index.docker.io/x/y:1".into(), "docker.io/x/y:1".into()),
            ("oci:/srv/layout".into(), "oci:/srv/layout".into()),
            ("oci:/srv/layout:v1".into(), "oci:/srv/layout:v1".into()),
            ("oci:rel/dir:".into(), "oci:rel/dir".into()),
            ("oci:/odd:path:".into(), "oci:/odd:path:".into()),
            ("oci:/a:b/c".into(), "oci:/a:b/c:".into()),
            (
                "oci-archive:app.tar:2".into(),
                "oci-archive:app.tar:2".into(),
            ),
            ("docker-archive:s.tar".into(), "docker-archive:s.tar".into()),
            (
                "docker-archive:s.tar:busybox".into(),
                "docker-archive:s.tar:busybox:latest".into(),
            ),
            (
                "docker-archive:s.tar:LocalHost:5000/app:v1".into(),
                "docker-archive:s.tar:localhost:5000/app:v1".into(),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(canon(&input), want, "input {input}");
        }
    }

    #[test]
    fn rejects_with_named_part() {
        let long = format!("r.io/{}", "a".repeat(251));
        let cases: Vec<(String, &str)> = vec![
            ("".into(), "empty reference"),
            ("r.io/a:a b".into(), "tag \"a b\": must match"),
            ("r.io/a:".into(), "tag \"\": must match"),
            (
                format!("r.io/a:{}", "t".repeat(129)),
                "must match [A-Za-z0-9_]",
            ),
            (
                "r.io/a@sha256:xyz".into(),
                "digest \"sha256:xyz\": must be sha256: followed by 64",
            ),
            (format!("r.io/a@{}", D.to_uppercase()), "digest"),
            ("r.io/a@latest".into(), "digest \"latest\""),
            (
                "Foo/bar".into(),
                "repository \"Foo/bar\": must be lowercase",
            ),
            ("r.io/Foo".into(), "repository \"Foo\": must be lowercase"),
            (
                "r.io/a//b".into(),
                "repository \"a//b\": components must match",
            ),
            ("r.io/-a".into(), "components must match"),
            ("r.io/a..b".into(), "components must match"),
            ("r.io/".into(), "repository \"\": must not be empty"),
            ("r.io:99999/a".into(), "registry \"r.io:99999\""),
            ("r.io:/a".into(), "registry \"r.io:\""),
            ("-r.io/a".into(), "registry \"-r.io\""),
            (long, "must be at most 255 characters"),
            ("foo:/bar".into(), "unknown transport \"foo:\""),
            ("foo:bar/baz".into(), "unknown transport \"foo:\""),
            ("dir:/tmp/x".into(), "transport \"dir:\" is not supported"),
            ("docker:/x".into(), "transport \"docker:\" is not supported"),
            ("oci:".into(), "path \"\": must not be empty"),
            ("oci::v1".into(), "path \"\""),
            ("oci:/x:bad tag".into(), "tag \"bad tag\""),
            ("docker-archive:".into(), "path \"\""),
            ("docker-archive:f.tar:".into(), "name \"\""),
            (
                format!("docker-archive:f.tar:a@{D}"),
                "cannot have a digest",
            ),
            ("docker-archive:f.tar:A/b".into(), "must be lowercase"),
        ];
        for (input, want) in cases {
            let err = resolve(&input, &["r.example".to_owned()])
                .expect_err(&format!("{input:?} should be rejected"));
            let ReferenceError::Invalid { part, .. } = &err else {
                panic!("{input:?}: unexpected {err}");
            };
            assert!(part.contains(want), "{input:?}: {part:?} lacks {want:?}");
        }
    }

    #[test]
    fn resolves_short_names_through_search_registries() {
        let search = vec![
            "registry.example:5000".to_owned(),
            "localhost".to_owned(),
            "docker.io".to_owned(),
            "localhost".to_owned(),
        ];
        let got: Vec<String> = resolve("busybox", &search)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            got,
            [
                "registry.example:5000/busybox:latest",
                "localhost/busybox:latest",
                "docker.io/library/busybox:latest"
            ]
        );
        let got = resolve(&format!("docker://ns/app:1@{D}"), &search[..1]).unwrap();
        assert_eq!(
            got[0].to_string(),
            format!("registry.example:5000/ns/app:1@{D}")
        );
        // `docker:dind` is the image named docker, not a transport.
        let got = resolve("docker:dind", &search[1..2]).unwrap();
        assert_eq!(got[0].to_string(), "localhost/docker:dind");
    }

    #[test]
    fn short_name_without_search_registries_is_refused() {
        let err = resolve("busybox:1", &[]).unwrap_err();
        assert!(matches!(&err, ReferenceError::NoSearchRegistries { name } if name == "busybox:1"));
        assert!("busybox".parse::<ImageRef>().is_err());
        let err = resolve("busybox", &["bad host".to_owned()]).unwrap_err();
        assert!(
            err.to_string().contains("search registry \"bad host\""),
            "{err}"
        );
    }

    #[test]
    fn helpers_report_name_tag_and_pull_target() {
        let r: ImageRef = format!("r.io:5000/a/b:v1@{D}").parse().unwrap();
        assert_eq!(r.name(), "r.io:5000/a/b");
        assert_eq!(r.tag(), Some("v1"));
        let ImageRef::Registry(reg) = &r else {
            panic!()
        };
        assert_eq!(reg.tag_or_digest(), D);
        let r: ImageRef = "r.io/a".parse().unwrap();
        let ImageRef::Registry(reg) = &r else {
            panic!()
        };
        assert_eq!(reg.tag_or_digest(), "latest");
        let r: ImageRef = "docker-archive:/x/s.tar:localhost:5000/a:v3"
            .parse()
            .unwrap();
        assert_eq!((r.name().as_str(), r.tag()), ("/x/s.tar", Some("v3")));
        let r: ImageRef = "oci:/x/lay".parse().unwrap();
        assert_eq!((r.name().as_str(), r.tag()), ("/x/lay", None));
    }

    fn host() -> impl Strategy<Value = String> {
        let name = prop_oneof![
            Just("localhost".to_owned()),
            Just("[::1]".to_owned()),
            "[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?(\\.[a-z0-9]{1,5}){1,2}",
        ];
        (name, proptest::option::of(1u16..=65535))
            .prop_map(|(n, p)| p.map_or(n.clone(), |p| format!("{n}:{p}")))
            .prop_filter("docker hub is rewritten", |h| {
                h != DOCKER_HUB && h != DOCKER_HUB_LEGACY
            })
    }

    fn repository() -> impl Strategy<Value = String> {
        proptest::collection::vec("[a-z0-9]{1,4}(([._]|__|-{1,3})[a-z0-9]{1,4}){0,2}", 1..4)
            .prop_map(|c| c.join("/"))
    }

    fn tag() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_][A-Za-z0-9._-]{0,20}"
    }

    fn image_ref() -> impl Strategy<Value = ImageRef> {
        let digest = "[0-9a-f]{64}".prop_map(|h| format!("sha256:{h}"));
        let tag_digest = prop_oneof![
            tag().prop_map(|t| (Some(t), None)),
            digest.clone().prop_map(|d| (None, Some(d))),
            (tag(), digest).prop_map(|(t, d)| (Some(t), Some(d))),
        ];
        let registry =
            (host(), repository(), tag_digest).prop_map(|(registry, repository, (tag, digest))| {
                ImageRef::Registry(RegistryRef {
                    registry,
                    repository,
                    tag,
                    digest,
                })
            });
        let layout_path = "[A-Za-z0-9_./:-]{1,20}".prop_map(PathBuf::from);
        let archive_path = "[A-Za-z0-9_./-]{1,20}".prop_map(PathBuf::from);
        // Without a host, a first component that looks like one would be read
        // as one (the grammar's own ambiguity), so such names are not generated.
        let archive_name = (proptest::option::of(host()), repository(), tag())
            .prop_filter("first component reads as a host", |(h, r, _)| {
                h.is_some() || split_host(r).0.is_none()
            })
            .prop_map(|(h, r, t)| h.map_or(format!("{r}:{t}"), |h| format!("{h}/{r}:{t}")));
        prop_oneof![
            registry,
            (layout_path.clone(), proptest::option::of(tag()))
                .prop_map(|(path, tag)| ImageRef::OciDir { path, tag }),
            (layout_path, proptest::option::of(tag()))
                .prop_map(|(path, tag)| ImageRef::OciArchive { path, tag }),
            (archive_path, proptest::option::of(archive_name))
                .prop_map(|(path, name)| ImageRef::DockerArchive { path, name }),
        ]
    }

    proptest! {
        #[test]
        fn display_round_trips(image in image_ref()) {
            let text = image.to_string();
            let back = resolve(&text, &[]).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(back, vec![image], "text {}", text);
        }

        #[test]
        fn never_panics_on_arbitrary_text(text in "\\PC{0,80}") {
            let _ = resolve(&text, &["r.example".to_owned()]);
        }

        #[test]
        fn accepted_input_is_stable_after_one_print(text in "[a-z0-9:/._@-]{1,40}") {
            if let Ok(first) = resolve(&text, &["r.example".to_owned()]) {
                for image in first {
                    let again = resolve(&image.to_string(), &[]).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!(again, vec![image]);
                }
            }
        }
    }
}
