//! Local image sources: an OCI layout directory (`oci:`), a tar of one
//! (`oci-archive:`) and a `docker save` tar (`docker-archive:`).
//!
//! Archives are never unpacked: their tar index is read once and blobs are
//! streamed from their offsets in the file.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use oci_spec::image::ImageIndex;
use serde::Deserialize;

use super::manifest::{self, Fetched, Kind, Platform};
use super::reference::ImageRef;
use super::registry::RegistryError;

/// Annotation naming a manifest's tag in an OCI layout's index.json.
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Where the files of a local source live.
enum Files {
    Dir(PathBuf),
    Tar {
        path: PathBuf,
        /// Entry name (normalised, no leading `./`) → (data offset, size).
        entries: HashMap<String, (u64, u64)>,
    },
}

/// An opened local source.
pub struct Local {
    files: Files,
    /// Blob digest → file name inside the source (docker archives name layers by path).
    blob_paths: HashMap<String, String>,
}

fn src_err(path: &Path, detail: impl Into<String>) -> RegistryError {
    RegistryError::Source {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

impl Local {
    fn path(&self) -> &Path {
        match &self.files {
            Files::Dir(p) => p,
            Files::Tar { path, .. } => path,
        }
    }

    fn open_dir(path: &Path) -> Result<Local, RegistryError> {
        if !path.is_dir() {
            return Err(src_err(path, "no such OCI layout directory"));
        }
        Ok(Local {
            files: Files::Dir(path.to_path_buf()),
            blob_paths: HashMap::new(),
        })
    }

    fn open_tar(path: &Path) -> Result<Local, RegistryError> {
        let file =
            File::open(path).map_err(|e| src_err(path, format!("cannot open archive: {e}")))?;
        let mut archive = tar::Archive::new(file);
        let mut entries = HashMap::new();
        let iter = archive
            .entries()
            .map_err(|e| src_err(path, format!("not a tar archive: {e}")))?;
        for entry in iter {
            let entry = entry.map_err(|e| src_err(path, format!("malformed tar archive: {e}")))?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = entry
                .path()
                .map_err(|e| src_err(path, format!("bad entry name: {e}")))?
                .to_string_lossy()
                .trim_start_matches("./")
                .to_string();
            entries.insert(name, (entry.raw_file_position(), entry.size()));
        }
        Ok(Local {
            files: Files::Tar {
                path: path.to_path_buf(),
                entries,
            },
            blob_paths: HashMap::new(),
        })
    }

    /// Opens a file of the source for streaming.
    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>, RegistryError> {
        match &self.files {
            Files::Dir(dir) => {
                let p = dir.join(name);
                let f = File::open(&p).map_err(|e| src_err(&p, format!("cannot open: {e}")))?;
                Ok(Box::new(f))
            }
            Files::Tar { path, entries } => {
                let &(offset, size) = entries
                    .get(name)
                    .ok_or_else(|| src_err(path, format!("archive has no {name}")))?;
                let mut f =
                    File::open(path).map_err(|e| src_err(path, format!("cannot open: {e}")))?;
                f.seek(SeekFrom::Start(offset))
                    .map_err(|e| src_err(path, format!("cannot seek: {e}")))?;
                Ok(Box::new(f.take(size)))
            }
        }
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, RegistryError> {
        let mut buf = Vec::new();
        self.open(name)?
            .read_to_end(&mut buf)
            .map_err(|e| src_err(self.path(), format!("reading {name}: {e}")))?;
        Ok(buf)
    }

    fn blob_name(&self, digest: &str) -> Result<String, RegistryError> {
        if let Some(p) = self.blob_paths.get(digest) {
            return Ok(p.clone());
        }
        let hex = digest
            .strip_prefix("sha256:")
            .filter(|_| manifest::is_sha256(digest))
            .ok_or_else(|| src_err(self.path(), format!("unsupported digest {digest:?}")))?;
        Ok(format!("blobs/sha256/{hex}"))
    }

    /// Streams the blob with `digest` (the caller verifies the digest).
    pub fn open_blob(&self, digest: &str) -> Result<Box<dyn Read + Send>, RegistryError> {
        let name = self.blob_name(digest)?;
        self.open(&name)
    }

    fn read_blob(&self, digest: &str) -> Result<Vec<u8>, RegistryError> {
        let bytes = self.read(&self.blob_name(digest)?)?;
        manifest::check_digest(&bytes, digest)?;
        Ok(bytes)
    }
}

/// Opens a local source and resolves its image for `platform`.
pub fn resolve(r: &ImageRef, platform: &Platform) -> Result<(Local, Fetched), RegistryError> {
    let shown = r.to_string();
    match r {
        ImageRef::OciDir { path, tag } => {
            let local = Local::open_dir(path)?;
            let fetched = resolve_layout(&local, &shown, tag.as_deref(), platform)?;
            Ok((local, fetched))
        }
        ImageRef::OciArchive { path, tag } => {
            let local = Local::open_tar(path)?;
            let fetched = resolve_layout(&local, &shown, tag.as_deref(), platform)?;
            Ok((local, fetched))
        }
        ImageRef::DockerArchive { path, name } => {
            let mut local = Local::open_tar(path)?;
            let fetched = resolve_docker(&mut local, &shown, name.as_deref())?;
            Ok((local, fetched))
        }
        ImageRef::Registry(_) => Err(src_err(Path::new(&shown), "not a local source")),
    }
}

fn resolve_layout(
    local: &Local,
    shown: &str,
    tag: Option<&str>,
    platform: &Platform,
) -> Result<Fetched, RegistryError> {
    let index_bytes = local.read("index.json")?;
    let index: ImageIndex = serde_json::from_slice(&index_bytes)
        .map_err(|e| src_err(local.path(), format!("index.json is invalid: {e}")))?;
    fn tagged(d: &oci_spec::image::Descriptor) -> Option<&str> {
        d.annotations()
            .as_ref()
            .and_then(|a| a.get(REF_NAME))
            .map(String::as_str)
    }
    let entry = match tag {
        Some(t) => index
            .manifests()
            .iter()
            .find(|d| tagged(d) == Some(t))
            .ok_or_else(|| {
                let tags: Vec<&str> = index.manifests().iter().filter_map(tagged).collect();
                src_err(
                    local.path(),
                    format!("no image tagged {t:?} (tags: {})", tags.join(", ")),
                )
            })?,
        None => match index.manifests().as_slice() {
            [one] => one,
            [] => return Err(src_err(local.path(), "the layout holds no image")),
            _ => {
                return Err(src_err(
                    local.path(),
                    "the layout holds several images; name one as oci:DIR:TAG",
                ))
            }
        },
    };
    let mut digest = entry.digest().to_string();
    let mut bytes = local.read_blob(&digest)?;
    let mut index_digest = None;
    if let Kind::Index(inner) = manifest::classify(shown, &bytes)? {
        let chosen = manifest::choose(shown, &inner, platform)?;
        index_digest = Some(digest);
        bytes = local.read_blob(&chosen)?;
        digest = chosen;
    }
    let m = manifest::parse_manifest(shown, &bytes)?;
    let config = local.read_blob(m.config().digest().as_ref())?;
    manifest::assemble(shown, bytes, digest, index_digest, m, config)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Whether a `RepoTags` entry names `wanted`: docker writes Docker Hub names
/// short (`busybox:latest`), podman long (`docker.io/library/busybox:latest`).
fn same_name(tag: &str, wanted: &str) -> bool {
    fn short(s: &str) -> &str {
        s.strip_prefix("docker.io/library/")
            .or_else(|| s.strip_prefix("docker.io/"))
            .unwrap_or(s)
    }
    tag == wanted || short(tag) == short(wanted)
}

/// A `docker save` archive has no manifest digest: berth writes the OCI
/// manifest it would have had (layer digests hashed from the tar) and uses
/// that manifest's digest.
fn resolve_docker(
    local: &mut Local,
    shown: &str,
    name: Option<&str>,
) -> Result<Fetched, RegistryError> {
    let entries: Vec<DockerEntry> = serde_json::from_slice(&local.read("manifest.json")?)
        .map_err(|e| src_err(local.path(), format!("manifest.json is invalid: {e}")))?;
    let entry = match name {
        Some(n) => entries
            .iter()
            .find(|e| e.repo_tags.iter().flatten().any(|t| same_name(t, n)))
            .ok_or_else(|| src_err(local.path(), format!("no image named {n:?} in the archive")))?,
        None => match entries.as_slice() {
            [one] => one,
            _ => {
                return Err(src_err(
                    local.path(),
                    "the archive holds several images (or none); name one as docker-archive:FILE:NAME:TAG",
                ))
            }
        },
    };
    let config = local.read(&entry.config)?;
    let config_digest = manifest::sha256_digest(&config);
    let mut layers = Vec::new();
    for layer in &entry.layers {
        let mut reader = local.open(layer)?;
        let mut hasher = crate::image::layer::DigestReader::new(&mut reader);
        std::io::copy(&mut hasher, &mut std::io::sink())
            .map_err(|e| src_err(local.path(), format!("reading {layer}: {e}")))?;
        let (digest, size) = hasher.finish();
        local.blob_paths.insert(digest.clone(), layer.clone());
        layers.push(serde_json::json!({
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar",
            "digest": digest,
            "size": size,
        }));
    }
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": layers,
    });
    let bytes = serde_json::to_vec(&m).map_err(|e| src_err(local.path(), e.to_string()))?;
    let digest = manifest::sha256_digest(&bytes);
    let parsed = manifest::parse_manifest(shown, &bytes)?;
    manifest::assemble(shown, bytes, digest, None, parsed, config)
}
