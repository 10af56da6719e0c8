//! PURE: manifests, indexes and image configs: which media types berth reads,
//! platform choice in an index, digest checks, and the resolved [`Fetched`]
//! image every source (registry or local archive) hands to the store.

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use super::registry::RegistryError;

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema2 manifest media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list media type.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The manifest media types berth asks registries for.
pub const ACCEPTED: &[&str] = &[OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

/// An OS/architecture pair (and optional variant), e.g. `linux/arm64/v8`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// Architecture in OCI spelling, e.g. `amd64`.
    pub arch: String,
    /// Variant, e.g. `v8`.
    pub variant: Option<String>,
}

impl Platform {
    /// The platform of the running host.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform {
            os: "linux".into(),
            arch: arch.into(),
            variant: None,
        }
    }

    /// Parses `OS/ARCH[/VARIANT]`.
    pub fn parse(s: &str) -> Option<Platform> {
        let mut parts = s.split('/');
        let os = parts.next().filter(|p| !p.is_empty())?;
        let arch = parts.next().filter(|p| !p.is_empty())?;
        let variant = parts.next().map(str::to_string);
        if parts.next().is_some() || variant.as_deref() == Some("") {
            return None;
        }
        Some(Platform {
            os: os.into(),
            arch: arch.into(),
            variant,
        })
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// What a manifest document turned out to be.
pub enum Kind {
    /// An image manifest.
    Manifest,
    /// An index / manifest list.
    Index(Box<ImageIndex>),
}

/// One layer as the store needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerInfo {
    /// Blob digest (compressed).
    pub digest: String,
    /// The uncompressed digest from the config's `rootfs.diff_ids`.
    pub diff_id: String,
    /// Blob size.
    pub size: u64,
    /// Media type as the manifest gives it.
    pub media_type: String,
}

/// A resolved image: manifest, config and layers, all digests checked.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The manifest exactly as received.
    pub manifest_bytes: Vec<u8>,
    /// Its digest.
    pub manifest_digest: String,
    /// Digest of the index it was chosen from, if any.
    pub index_digest: Option<String>,
    /// The config exactly as received.
    pub config_bytes: Vec<u8>,
    /// Config digest (the image ID).
    pub config_digest: String,
    /// Parsed config.
    pub config: ImageConfiguration,
    /// Layers, bottom first.
    pub layers: Vec<LayerInfo>,
}

fn bad(reference: &str, detail: impl Into<String>) -> RegistryError {
    RegistryError::BadManifest {
        reference: reference.to_string(),
        detail: detail.into(),
    }
}

/// sha256 of `bytes` as `sha256:<hex>`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// Fails with [`RegistryError::DigestMismatch`] unless `bytes` hash to `digest`.
pub fn check_digest(bytes: &[u8], digest: &str) -> Result<(), RegistryError> {
    let actual = sha256_digest(bytes);
    if actual != digest {
        return Err(RegistryError::DigestMismatch {
            expected: digest.to_string(),
            actual,
        });
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    schema_version: Option<u32>,
    media_type: Option<String>,
    manifests: Option<serde_json::Value>,
    layers: Option<serde_json::Value>,
}

/// Tells an index from a manifest; refuses schema 1 and unknown documents.
pub fn classify(reference: &str, bytes: &[u8]) -> Result<Kind, RegistryError> {
    let probe: Probe = serde_json::from_slice(bytes)
        .map_err(|e| bad(reference, format!("manifest is not valid JSON: {e}")))?;
    let media = probe.media_type.as_deref().unwrap_or("");
    if probe.schema_version == Some(1) || media.contains("distribution.manifest.v1") {
        return Err(bad(
            reference,
            "Docker schema 1 manifests are unsupported; re-push the image with a current tool (schema 2 or OCI)",
        ));
    }
    if media == OCI_INDEX || media == DOCKER_LIST || (media.is_empty() && probe.manifests.is_some())
    {
        let index: ImageIndex = serde_json::from_slice(bytes)
            .map_err(|e| bad(reference, format!("invalid image index: {e}")))?;
        return Ok(Kind::Index(Box::new(index)));
    }
    if media == OCI_MANIFEST
        || media == DOCKER_MANIFEST
        || (media.is_empty() && probe.layers.is_some())
    {
        return Ok(Kind::Manifest);
    }
    Err(bad(
        reference,
        format!("unsupported manifest media type {media:?}"),
    ))
}

/// Picks the manifest digest for `platform` from an index.
pub fn choose(
    reference: &str,
    index: &ImageIndex,
    platform: &Platform,
) -> Result<String, RegistryError> {
    let matches = |d: &Descriptor| {
        d.platform().as_ref().is_some_and(|p| {
            p.os().to_string() == platform.os
                && p.architecture().to_string() == platform.arch
                && match (&platform.variant, p.variant()) {
                    (Some(want), Some(have)) => want == have,
                    (Some(_), None) => false,
                    (None, _) => true,
                }
        })
    };
    if let Some(d) = index.manifests().iter().find(|d| matches(d)) {
        return Ok(d.digest().to_string());
    }
    let available = index
        .manifests()
        .iter()
        .filter_map(|d| d.platform().as_ref())
        .map(|p| match p.variant() {
            Some(v) => format!("{}/{}/{v}", p.os(), p.architecture()),
            None => format!("{}/{}", p.os(), p.architecture()),
        })
        .collect::<Vec<_>>()
        .join(", ");
    Err(RegistryError::NoPlatform {
        reference: reference.to_string(),
        platform: platform.to_string(),
        available,
    })
}

/// Parses an image manifest (OCI or Docker schema 2).
pub fn parse_manifest(reference: &str, bytes: &[u8]) -> Result<ImageManifest, RegistryError> {
    serde_json::from_slice(bytes)
        .map_err(|e| bad(reference, format!("invalid image manifest: {e}")))
}

/// Puts manifest and config together, checking that layers and diff_ids agree.
pub fn assemble(
    reference: &str,
    manifest_bytes: Vec<u8>,
    manifest_digest: String,
    index_digest: Option<String>,
    manifest: ImageManifest,
    config_bytes: Vec<u8>,
) -> Result<Fetched, RegistryError> {
    let config: ImageConfiguration = serde_json::from_slice(&config_bytes)
        .map_err(|e| bad(reference, format!("invalid image config: {e}")))?;
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != manifest.layers().len() {
        return Err(bad(
            reference,
            format!(
                "manifest lists {} layers but the config has {} diff_ids",
                manifest.layers().len(),
                diff_ids.len()
            ),
        ));
    }
    let mut layers = Vec::with_capacity(diff_ids.len());
    for (d, diff_id) in manifest.layers().iter().zip(diff_ids) {
        let media_type = d.media_type().to_string();
        if media_type.contains("nondistributable") || media_type.contains("foreign") {
            tracing::warn!(
                "layer {} has media type {media_type}; fetching it like any other",
                d.digest()
            );
        }
        for digest in [d.digest().to_string(), diff_id.clone()] {
            if !is_sha256(&digest) {
                return Err(bad(
                    reference,
                    format!("digest {digest:?} is not sha256:<64 hex>"),
                ));
            }
        }
        layers.push(LayerInfo {
            digest: d.digest().to_string(),
            diff_id: diff_id.clone(),
            size: d.size(),
            media_type,
        });
    }
    let config_digest = manifest.config().digest().to_string();
    Ok(Fetched {
        manifest_bytes,
        manifest_digest,
        index_digest,
        config_bytes,
        config_digest,
        config,
        layers,
    })
}

/// Whether `s` is `sha256:` followed by 64 lowercase hex digits.
pub fn is_sha256(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_platforms() {
        assert_eq!(
            Platform::parse("linux/arm64/v8"),
            Some(Platform {
                os: "linux".into(),
                arch: "arm64".into(),
                variant: Some("v8".into())
            })
        );
        assert_eq!(Platform::parse("linux"), None);
        assert_eq!(Platform::parse("linux/"), None);
        assert_eq!(Platform::parse("a/b/c/d"), None);
    }

    #[test]
    fn refuses_schema1() {
        let m = br#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
        let err = classify("r", m)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("schema 1"), "{err}");
    }

    #[test]
    fn classifies_oci_and_docker_manifests() {
        for media in [OCI_MANIFEST, DOCKER_MANIFEST] {
            let m =
                format!(r#"{{"schemaVersion":2,"mediaType":"{media}","config":{{}},"layers":[]}}"#);
            assert!(
                matches!(classify("r", m.as_bytes()), Ok(Kind::Manifest)),
                "{media}"
            );
        }
        let untyped = br#"{"schemaVersion":2,"config":{},"layers":[]}"#;
        assert!(matches!(classify("r", untyped), Ok(Kind::Manifest)));
    }

    #[test]
    fn chooses_platform_from_index() {
        let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
          {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
          {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","platform":{"os":"linux","architecture":"amd64"}}]}"#;
        let Kind::Index(i) = classify("r", index).unwrap() else {
            panic!("not an index")
        };
        let amd = Platform::parse("linux/amd64").unwrap();
        assert!(choose("r", &i, &amd).unwrap().starts_with("sha256:bbbb"));
        let arm = Platform::parse("linux/arm64").unwrap();
        assert!(choose("r", &i, &arm).unwrap().starts_with("sha256:aaaa"));
        let s390 = Platform::parse("linux/s390x").unwrap();
        let err = choose("r", &i, &s390).unwrap_err().to_string();
        assert!(
            err.contains("linux/arm64/v8") && err.contains("linux/amd64"),
            "{err}"
        );
    }

    #[test]
    fn digest_checks() {
        assert!(check_digest(b"abc", &sha256_digest(b"abc")).is_ok());
        let e = check_digest(b"abd", &sha256_digest(b"abc"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(&sha256_digest(b"abd")) && e.contains(&sha256_digest(b"abc")));
        assert!(is_sha256(&sha256_digest(b"")));
        assert!(!is_sha256("sha256:ABC"));
    }
}
