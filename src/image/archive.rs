//! Local image sources: an OCI layout directory (`oci:`), a tar of one
//! (`oci-archive:`) and a `docker save` tar (`docker-archive:`).
//!
//! Archives are never unpacked: their tar index is read once and blobs are
//! streamed from their offsets in the file.
//!
//! A local source is no more trusted than a registry: every blob is read
//! through a [`CheckedReader`] against its descriptor (no byte past the
//! declared size, then length and sha256), and an error names the file, the
//! expected and the actual digest. Files without a descriptor (`index.json`,
//! a docker archive's `manifest.json` and config) are read up to a fixed cap.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use oci_spec::image::ImageIndex;
use serde::Deserialize;

use super::blob::{self, CheckedReader, Fault};
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

    /// Where `name` is, as errors name it: the file, or archive and entry.
    fn shown(&self, name: &str) -> String {
        match &self.files {
            Files::Dir(dir) => dir.join(name).display().to_string(),
            Files::Tar { path, .. } => format!("{}, entry {name}", path.display()),
        }
    }

    /// Reads a file that has no descriptor, up to `limit` bytes.
    fn read(
        &self,
        image: &str,
        name: &str,
        limit: u64,
        what: String,
    ) -> Result<Vec<u8>, RegistryError> {
        let mut buf = Vec::new();
        self.open(name)?
            .take(limit.saturating_add(1))
            .read_to_end(&mut buf)
            .map_err(|e| src_err(self.path(), format!("reading {name}: {e}")))?;
        if buf.len() as u64 > limit {
            return Err(RegistryError::TooLarge {
                image: image.to_string(),
                what: format!("{what} ({})", self.shown(name)),
                size: buf.len() as u64,
                limit: format!("{limit} bytes, berth's limit for it"),
            });
        }
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

    /// Opens the blob `digest` of `image` for streaming, checked against its
    /// descriptor's `size` as it is read (see [`LocalBlob`]).
    pub fn open_blob(
        &self,
        image: &str,
        digest: &str,
        size: u64,
    ) -> Result<LocalBlob, RegistryError> {
        let name = self.blob_name(digest)?;
        Ok(LocalBlob {
            reader: CheckedReader::new(self.open(&name)?, digest, size),
            image: image.to_string(),
            digest: digest.to_string(),
            file: self.shown(&name),
        })
    }

    /// Reads a small blob (manifest, index, config) whole, refusing a
    /// descriptor that declares more than `limit`, and checks it.
    fn read_blob(
        &self,
        image: &str,
        what: &str,
        digest: &str,
        size: u64,
        limit: String,
        max: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        if size > max {
            return Err(RegistryError::TooLarge {
                image: image.to_string(),
                what: format!("{what} {digest} ({})", self.shown(&self.blob_name(digest)?)),
                size,
                limit,
            });
        }
        let mut blob = self.open_blob(image, digest, size)?;
        let mut bytes = Vec::new();
        let read = blob.reader.read_to_end(&mut bytes);
        blob.verdict()?;
        read.map_err(|e| src_err(self.path(), format!("reading {}: {e}", blob.file)))?;
        Ok(bytes)
    }
}

/// One blob of a local source, read through a [`CheckedReader`]: reading past
/// the declared size, or to an end with the wrong length or digest, fails.
pub struct LocalBlob {
    /// The blob's bytes, checked as they are read.
    pub reader: CheckedReader<Box<dyn Read + Send>>,
    image: String,
    digest: String,
    file: String,
}

impl LocalBlob {
    /// Checks what the consumer left unread and returns the verdict as an
    /// error naming the image, the file and both digests (or both sizes).
    /// Call it after any failure of the consumer: a corrupt blob often shows
    /// first as a decompression error, and this names the real cause.
    pub fn verdict(&mut self) -> Result<(), RegistryError> {
        let fault = match self.reader.verify() {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(fault)) => fault,
            Err(e) => {
                return Err(RegistryError::Source {
                    path: PathBuf::from(&self.file),
                    detail: format!("reading blob {}: {e}", self.digest),
                })
            }
        };
        Err(RegistryError::Blob {
            image: self.image.clone(),
            digest: self.digest.clone(),
            from: format!("file {}", self.file),
            fault,
        })
    }

    /// The fault found while reading, if any.
    pub fn fault(&self) -> Option<&Fault> {
        self.reader.fault()
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
    let index_bytes = local.read(
        shown,
        "index.json",
        blob::MAX_MANIFEST_SIZE,
        "the layout's index".into(),
    )?;
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
    let read_manifest = |digest: &str, size: u64| {
        local.read_blob(
            shown,
            "manifest",
            digest,
            size,
            blob::manifest_limit(),
            blob::MAX_MANIFEST_SIZE,
        )
    };
    let mut digest = entry.digest().to_string();
    let mut bytes = read_manifest(&digest, entry.size())?;
    let mut index_digest = None;
    if let Kind::Index(inner) = manifest::classify(shown, &bytes)? {
        let chosen = manifest::choose(shown, &inner, platform)?;
        let size = inner
            .manifests()
            .iter()
            .find(|d| d.digest().to_string() == chosen)
            .map_or(0, |d| d.size());
        index_digest = Some(digest);
        bytes = read_manifest(&chosen, size)?;
        digest = chosen;
    }
    let m = manifest::parse_manifest(shown, &bytes)?;
    let config = local.read_blob(
        shown,
        "config",
        m.config().digest().as_ref(),
        m.config().size(),
        blob::config_limit(),
        blob::MAX_CONFIG_SIZE,
    )?;
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
    let listing = local.read(
        shown,
        "manifest.json",
        blob::MAX_MANIFEST_SIZE,
        "the archive's manifest.json".into(),
    )?;
    let entries: Vec<DockerEntry> = serde_json::from_slice(&listing)
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
    let config = local.read(
        shown,
        &entry.config,
        blob::MAX_CONFIG_SIZE,
        "the image config".into(),
    )?;
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
