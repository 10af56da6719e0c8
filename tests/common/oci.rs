//! OCI image layouts, `docker save` archives and `oci-archive` tars, written in Rust.
//!
//! ```text
//! Layer (tar::Builder in memory) ──build(Compression)──► Blob (bytes, digest, diff_id)
//! Image { layers: Vec<Blob>, arch/os, Cmd/Env/Entrypoint/Labels/WorkingDir, … }
//! OciLayout::add_image(tag, &Image)   → LAYOUT/{oci-layout,index.json,blobs/sha256/…}
//! OciLayout::add_index(tag, &[Image]) → an image index with one manifest per platform
//! docker_archive(out, &Image, tags)   → manifest.json + config + <id>/layer.tar
//! oci_archive(layout, out)            → the layout directory as one tar
//! ```
//! Every entry has the fixed mtime [`MTIME`] and gzip writes no timestamp, so the same
//! input always gives the same digests. Names up to 100 bytes are written into the header
//! byte for byte, exactly as given (so a test can write `/abs` or `../x`); longer names
//! go through tar's GNU long-name extension.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tar::{EntryType, Header};

use super::digest_of;

/// The mtime of every entry the builder writes.
pub const MTIME: u64 = 1_700_000_000;
/// The annotation that tags a manifest in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// OCI media types.
pub mod media {
    /// OCI image manifest.
    pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// OCI image index.
    pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// OCI image config.
    pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// Docker schema 2 manifest.
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker manifest list.
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    /// Docker image config.
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
}

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (no timestamp in the header).
    Gzip,
    /// zstd level 3.
    Zstd,
}

impl Compression {
    /// The OCI layer media type.
    pub fn oci_media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }

    /// The Docker schema 2 layer media type (Docker has no zstd type; the OCI one is used).
    pub fn docker_media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.docker.image.rootfs.diff.tar",
            Compression::Gzip => "application/vnd.docker.image.rootfs.diff.tar.gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }

    /// Compresses `data`.
    pub fn compress(self, data: &[u8]) -> Vec<u8> {
        match self {
            Compression::None => data.to_vec(),
            Compression::Gzip => {
                let mut e =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Compression::Zstd => zstd::encode_all(data, 3).unwrap(),
        }
    }
}

/// A header with the builder's defaults: GNU format, [`MTIME`], owner 0:0.
pub fn header(kind: EntryType, mode: u32, size: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(MTIME);
    h.set_size(size);
    h
}

/// A header whose name (and link name) are the given bytes verbatim, checksum set.
/// Both must fit the 100-byte ustar fields. For [`Layer::raw`].
pub fn raw_header(name: &[u8], kind: EntryType, mode: u32, size: u64, link: &[u8]) -> Header {
    let mut h = header(kind, mode, size);
    set_name_raw(&mut h, name);
    if !link.is_empty() {
        h.set_link_name_literal(link).unwrap();
    }
    h.set_cksum();
    h
}

fn set_name_raw(h: &mut Header, name: &[u8]) {
    let field = &mut h.as_old_mut().name;
    assert!(name.len() <= field.len(), "raw name longer than 100 bytes");
    field.fill(0);
    field[..name.len()].copy_from_slice(name);
}

/// A layer being written: a tar archive in memory.
pub struct Layer {
    b: tar::Builder<Vec<u8>>,
}

impl Default for Layer {
    fn default() -> Self {
        Layer::new()
    }
}

impl Layer {
    /// An empty layer.
    pub fn new() -> Layer {
        Layer {
            b: tar::Builder::new(Vec::new()),
        }
    }

    fn put(mut self, mut h: Header, path: &str, link: Option<&str>, data: &[u8]) -> Layer {
        let short = path.len() <= 100 && !matches!(link, Some(l) if l.len() > 100);
        if short {
            set_name_raw(&mut h, path.as_bytes());
            if let Some(l) = link {
                h.set_link_name_literal(l).unwrap();
            }
            h.set_cksum();
            self.b.append(&h, data).unwrap();
        } else if let Some(l) = link {
            self.b.append_link(&mut h, path, l).unwrap();
        } else {
            self.b.append_data(&mut h, path, data).unwrap();
        }
        self
    }

    /// A regular file owned by 0:0.
    pub fn file(self, path: &str, content: impl AsRef<[u8]>, mode: u32) -> Layer {
        self.file_owned(path, content, mode, 0, 0)
    }

    /// A regular file owned by `uid:gid`.
    pub fn file_owned(
        self,
        path: &str,
        content: impl AsRef<[u8]>,
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> Layer {
        let content = content.as_ref();
        let mut h = header(EntryType::Regular, mode, content.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        self.put(h, path, None, content)
    }

    /// A directory owned by 0:0 (written as `path/`).
    pub fn dir(self, path: &str, mode: u32) -> Layer {
        self.dir_owned(path, mode, 0, 0)
    }

    /// A directory owned by `uid:gid`.
    pub fn dir_owned(self, path: &str, mode: u32, uid: u64, gid: u64) -> Layer {
        let mut h = header(EntryType::Directory, mode, 0);
        h.set_uid(uid);
        h.set_gid(gid);
        let name = format!("{}/", path.trim_end_matches('/'));
        self.put(h, &name, None, &[])
    }

    /// A symbolic link `path` → `target` (target written verbatim).
    pub fn symlink(self, path: &str, target: &str) -> Layer {
        let h = header(EntryType::Symlink, 0o777, 0);
        self.put(h, path, Some(target), &[])
    }

    /// A hard link `path` → `target` (a path inside the layer, e.g. `usr/bin/a`).
    pub fn hardlink(self, path: &str, target: &str) -> Layer {
        let h = header(EntryType::Link, 0o644, 0);
        self.put(h, path, Some(target), &[])
    }

    /// A whiteout deleting `path` from the layers below (`DIR/.wh.NAME`).
    pub fn whiteout(self, path: &str) -> Layer {
        let path = path.trim_end_matches('/');
        let wh = match path.rsplit_once('/') {
            Some((dir, name)) => format!("{dir}/.wh.{name}"),
            None => format!(".wh.{path}"),
        };
        self.file(&wh, b"", 0o644)
    }

    /// An opaque marker: `dir` hides everything the layers below had in it.
    pub fn opaque(self, dir: &str) -> Layer {
        let p = format!("{}/.wh..wh..opq", dir.trim_end_matches('/'));
        self.file(&p, b"", 0o644)
    }

    /// A character (`char_dev`) or block device node.
    pub fn device(self, path: &str, char_dev: bool, major: u32, minor: u32) -> Layer {
        let kind = if char_dev {
            EntryType::Char
        } else {
            EntryType::Block
        };
        let mut h = header(kind, 0o666, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.put(h, path, None, &[])
    }

    /// A named pipe.
    pub fn fifo(self, path: &str) -> Layer {
        self.put(header(EntryType::Fifo, 0o644, 0), path, None, &[])
    }

    /// Appends `header` and `data` verbatim (see [`raw_header`]): hostile entries.
    pub fn raw(mut self, header: Header, data: &[u8]) -> Layer {
        self.b.append(&header, data).unwrap();
        self
    }

    /// A layer holding every entry of the tree at `root` (see [`Layer::with_tree`]).
    pub fn from_dir(root: &Path) -> Layer {
        Layer::new().with_tree(root)
    }

    /// Appends every entry of the tree at `root` (not `root` itself), depth first in name
    /// order: modes (setuid etc. included), owners, symlinks, and hard links (a second
    /// path to an inode already written becomes a hard link to the first).
    pub fn with_tree(mut self, root: &Path) -> Layer {
        let mut seen: HashMap<(u64, u64), String> = HashMap::new();
        for (rel, meta) in super::tree::walk(root) {
            let rel = rel
                .to_str()
                .expect("non-UTF-8 name in from_dir")
                .to_string();
            let mode = meta.mode() & 0o7777;
            let ft = meta.file_type();
            let (uid, gid) = (u64::from(meta.uid()), u64::from(meta.gid()));
            self = if ft.is_dir() {
                self.dir_owned(&rel, mode, uid, gid)
            } else if ft.is_symlink() {
                let target = std::fs::read_link(root.join(&rel)).unwrap();
                let mut h = header(EntryType::Symlink, 0o777, 0);
                h.set_uid(uid);
                h.set_gid(gid);
                self.put(h, &rel, Some(target.to_str().unwrap()), &[])
            } else if ft.is_file() {
                let key = (meta.dev(), meta.ino());
                match seen.get(&key) {
                    Some(first) if meta.nlink() > 1 => self.hardlink(&rel, &first.clone()),
                    _ => {
                        seen.insert(key, rel.clone());
                        let content = std::fs::read(root.join(&rel)).unwrap();
                        self.file_owned(&rel, content, mode, uid, gid)
                    }
                }
            } else if ft.is_fifo() {
                self.fifo(&rel)
            } else if ft.is_char_device() || ft.is_block_device() {
                let rdev = meta.rdev();
                let (major, minor) = (libc_major(rdev), libc_minor(rdev));
                self.device(&rel, ft.is_char_device(), major, minor)
            } else {
                self
            };
        }
        self
    }

    /// The finished tar (with its end-of-archive blocks).
    pub fn into_tar(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }

    /// The finished layer, compressed.
    pub fn build(self, c: Compression) -> Blob {
        Blob::from_tar(self.into_tar(), c)
    }
}

fn libc_major(dev: u64) -> u32 {
    (((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff)) as u32
}

fn libc_minor(dev: u64) -> u32 {
    (((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff)) as u32
}

/// A layer blob as stored in a layout or registry.
#[derive(Debug, Clone)]
pub struct Blob {
    /// How `bytes` is compressed.
    pub compression: Compression,
    /// The blob as stored.
    pub bytes: Vec<u8>,
    /// `sha256:` of `bytes`.
    pub digest: String,
    /// `sha256:` of the uncompressed tar (what `rootfs.diff_ids` lists).
    pub diff_id: String,
    /// The uncompressed tar (for docker archives).
    pub tar: Vec<u8>,
}

impl Blob {
    /// `tar` compressed with `c`.
    pub fn from_tar(tar: Vec<u8>, c: Compression) -> Blob {
        let bytes = c.compress(&tar);
        Blob {
            compression: c,
            digest: digest_of(&bytes),
            diff_id: digest_of(&tar),
            bytes,
            tar,
        }
    }

    /// Arbitrary bytes claiming to be a layer compressed with `c` (digest and diff_id both
    /// the hash of `bytes`, so only the content is wrong).
    pub fn garbage(bytes: Vec<u8>, c: Compression) -> Blob {
        Blob {
            compression: c,
            digest: digest_of(&bytes),
            diff_id: digest_of(&bytes),
            tar: bytes.clone(),
            bytes,
        }
    }

    /// The blob size.
    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }
}

/// The first `keep` bytes of `tar`: a malformed (truncated) archive.
pub fn truncated_tar(tar: &[u8], keep: usize) -> Vec<u8> {
    tar[..keep.min(tar.len())].to_vec()
}

/// Deterministic pseudo-random bytes (xorshift64*), for big incompressible layers.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// An image: layers plus the config fields tests care about.
#[derive(Debug, Clone)]
pub struct Image {
    /// Layers, bottom first.
    pub layers: Vec<Blob>,
    /// `amd64`, `arm64`, …
    pub architecture: String,
    /// `linux`.
    pub os: String,
    /// `v8`, …
    pub variant: Option<String>,
    /// `config.Cmd`.
    pub cmd: Option<Vec<String>>,
    /// `config.Entrypoint`.
    pub entrypoint: Option<Vec<String>>,
    /// `config.Env`.
    pub env: Vec<String>,
    /// `config.Labels`.
    pub labels: BTreeMap<String, String>,
    /// `config.WorkingDir`.
    pub working_dir: Option<String>,
    /// `config.Volumes` keys.
    pub volumes: Vec<String>,
    /// `config.Healthcheck`, as written.
    pub healthcheck: Option<Value>,
    /// `created` (RFC 3339).
    pub created: String,
    /// Docker schema 2 media types instead of OCI ones.
    pub docker: bool,
}

impl Image {
    /// A linux/amd64 image with `PATH` set and a fixed creation time.
    pub fn new(layers: Vec<Blob>) -> Image {
        Image {
            layers,
            architecture: "amd64".into(),
            os: "linux".into(),
            variant: None,
            cmd: None,
            entrypoint: None,
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
            labels: BTreeMap::new(),
            working_dir: None,
            volumes: Vec::new(),
            healthcheck: None,
            created: "2024-01-02T03:04:05Z".into(),
            docker: false,
        }
    }

    /// Sets the architecture (and a variant for arm64, as registries expect).
    pub fn arch(mut self, arch: &str) -> Image {
        self.architecture = arch.into();
        self.variant = (arch == "arm64").then(|| "v8".to_string());
        self
    }

    /// Sets `config.Cmd`.
    pub fn cmd(mut self, argv: &[&str]) -> Image {
        self.cmd = Some(argv.iter().map(|s| s.to_string()).collect());
        self
    }

    /// Sets `config.Entrypoint`.
    pub fn entrypoint(mut self, argv: &[&str]) -> Image {
        self.entrypoint = Some(argv.iter().map(|s| s.to_string()).collect());
        self
    }

    /// Adds a `config.Env` entry.
    pub fn env(mut self, kv: &str) -> Image {
        self.env.push(kv.into());
        self
    }

    /// Adds a label.
    pub fn label(mut self, k: &str, v: &str) -> Image {
        self.labels.insert(k.into(), v.into());
        self
    }

    /// Sets `config.WorkingDir`.
    pub fn working_dir(mut self, dir: &str) -> Image {
        self.working_dir = Some(dir.into());
        self
    }

    /// Adds a `config.Volumes` entry (a `VOLUME`).
    pub fn volume(mut self, path: &str) -> Image {
        self.volumes.push(path.into());
        self
    }

    /// Sets `config.Healthcheck` (Docker's field: `Test`, durations in ns).
    pub fn healthcheck(mut self, v: Value) -> Image {
        self.healthcheck = Some(v);
        self
    }

    /// Uses Docker schema 2 media types.
    pub fn docker_media_types(mut self) -> Image {
        self.docker = true;
        self
    }

    /// The image config JSON.
    pub fn config_json(&self) -> Vec<u8> {
        let mut config = serde_json::Map::new();
        config.insert("Env".into(), json!(self.env));
        if let Some(c) = &self.cmd {
            config.insert("Cmd".into(), json!(c));
        }
        if let Some(e) = &self.entrypoint {
            config.insert("Entrypoint".into(), json!(e));
        }
        if !self.labels.is_empty() {
            config.insert("Labels".into(), json!(self.labels));
        }
        if let Some(w) = &self.working_dir {
            config.insert("WorkingDir".into(), json!(w));
        }
        if let Some(h) = &self.healthcheck {
            config.insert("Healthcheck".into(), h.clone());
        }
        if !self.volumes.is_empty() {
            let v: serde_json::Map<String, Value> = self
                .volumes
                .iter()
                .map(|p| (p.clone(), json!({})))
                .collect();
            config.insert("Volumes".into(), Value::Object(v));
        }
        let mut v = json!({
            "created": self.created,
            "architecture": self.architecture,
            "os": self.os,
            "config": config,
            "rootfs": {
                "type": "layers",
                "diff_ids": self.layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
            },
            "history": (0..self.layers.len()).map(|i| json!({
                "created": self.created,
                "created_by": format!("berth test layer {i}"),
            })).collect::<Vec<_>>(),
        });
        if let Some(var) = &self.variant {
            v["variant"] = json!(var);
        }
        serde_json::to_vec(&v).unwrap()
    }

    /// The manifest media type.
    pub fn manifest_media_type(&self) -> &'static str {
        if self.docker {
            media::DOCKER_MANIFEST
        } else {
            media::MANIFEST
        }
    }

    /// The manifest JSON for this image, given its config bytes.
    pub fn manifest_json(&self, config: &[u8]) -> Vec<u8> {
        let config_type = if self.docker {
            media::DOCKER_CONFIG
        } else {
            media::CONFIG
        };
        let layers: Vec<Value> = self
            .layers
            .iter()
            .map(|l| {
                let mt = if self.docker {
                    l.compression.docker_media_type()
                } else {
                    l.compression.oci_media_type()
                };
                json!({"mediaType": mt, "digest": l.digest, "size": l.size()})
            })
            .collect();
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": self.manifest_media_type(),
            "config": {"mediaType": config_type, "digest": digest_of(config), "size": config.len()},
            "layers": layers,
        }))
        .unwrap()
    }

    /// The platform object for an index entry.
    pub fn platform(&self) -> Value {
        let mut p = json!({"architecture": self.architecture, "os": self.os});
        if let Some(v) = &self.variant {
            p["variant"] = json!(v);
        }
        p
    }
}

/// An image written into a layout.
#[derive(Debug, Clone)]
pub struct Built {
    /// The manifest bytes.
    pub manifest: Vec<u8>,
    /// Its digest.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// The config bytes.
    pub config: Vec<u8>,
    /// The config digest (the image id).
    pub config_digest: String,
    /// The layers.
    pub layers: Vec<Blob>,
}

/// An index written into a layout.
#[derive(Debug, Clone)]
pub struct BuiltIndex {
    /// The index bytes.
    pub index: Vec<u8>,
    /// Its digest.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// One per platform, in order.
    pub images: Vec<Built>,
}

/// An OCI image layout directory.
pub struct OciLayout {
    /// The layout directory.
    pub dir: PathBuf,
    refs: Vec<Value>,
}

impl OciLayout {
    /// Creates (or reuses) the layout at `dir`: `oci-layout`, `blobs/sha256/`, and an
    /// `index.json` rewritten on every tag.
    pub fn create(dir: impl Into<PathBuf>) -> OciLayout {
        let dir = dir.into();
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let l = OciLayout { dir, refs: vec![] };
        l.write_index_json();
        l
    }

    /// Where blob `digest` lives.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.dir.join("blobs/sha256").join(hex)
    }

    /// Stores `bytes` as a blob; returns its digest.
    pub fn write_blob(&self, bytes: &[u8]) -> String {
        let d = digest_of(bytes);
        std::fs::write(self.blob_path(&d), bytes).unwrap();
        d
    }

    /// Stores the image's layers, config and manifest (untagged).
    pub fn store_image(&self, image: &Image) -> Built {
        for l in &image.layers {
            self.write_blob(&l.bytes);
        }
        let config = image.config_json();
        let config_digest = self.write_blob(&config);
        let manifest = image.manifest_json(&config);
        let digest = self.write_blob(&manifest);
        Built {
            manifest,
            digest,
            media_type: image.manifest_media_type().to_string(),
            config,
            config_digest,
            layers: image.layers.clone(),
        }
    }

    /// Stores `image` and tags it `tag`.
    pub fn add_image(&mut self, tag: &str, image: &Image) -> Built {
        let b = self.store_image(image);
        self.tag(tag, &b.digest, b.manifest.len(), &b.media_type);
        b
    }

    /// Stores an index of `images` (one entry per platform) and tags it `tag`. Docker
    /// media types for the list if the first image uses them.
    pub fn add_index(&mut self, tag: &str, images: &[Image]) -> BuiltIndex {
        let built: Vec<Built> = images.iter().map(|i| self.store_image(i)).collect();
        let docker = images.first().is_some_and(|i| i.docker);
        let media_type = if docker {
            media::DOCKER_LIST
        } else {
            media::INDEX
        };
        let manifests: Vec<Value> = images
            .iter()
            .zip(&built)
            .map(|(i, b)| {
                json!({"mediaType": b.media_type, "digest": b.digest,
                       "size": b.manifest.len(), "platform": i.platform()})
            })
            .collect();
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": media_type, "manifests": manifests,
        }))
        .unwrap();
        let digest = self.write_blob(&index);
        self.tag(tag, &digest, index.len(), media_type);
        BuiltIndex {
            index,
            digest,
            media_type: media_type.into(),
            images: built,
        }
    }

    /// Points `tag` at a stored manifest or index.
    pub fn tag(&mut self, tag: &str, digest: &str, size: usize, media_type: &str) {
        self.refs.retain(|r| r["annotations"][REF_NAME] != tag);
        self.refs.push(json!({
            "mediaType": media_type, "digest": digest, "size": size,
            "annotations": {REF_NAME: tag},
        }));
        self.write_index_json();
    }

    fn write_index_json(&self) {
        let v = json!({"schemaVersion": 2, "mediaType": media::INDEX, "manifests": self.refs});
        std::fs::write(self.dir.join("index.json"), serde_json::to_vec(&v).unwrap()).unwrap();
    }
}

fn append_bytes(b: &mut tar::Builder<std::fs::File>, path: &str, data: &[u8]) {
    let mut h = header(EntryType::Regular, 0o644, data.len() as u64);
    b.append_data(&mut h, path, data).unwrap();
}

/// Writes a `docker save`-style archive of `image` to `out`: `manifest.json`
/// (`Config`, `RepoTags`, `Layers`), `repositories`, `<config hex>.json`, and one
/// `<diff_id hex>/layer.tar` (uncompressed) per layer. Returns the config digest.
pub fn docker_archive(out: &Path, image: &Image, repo_tags: &[&str]) -> String {
    let config = image.config_json();
    let config_digest = digest_of(&config);
    let config_name = format!("{}.json", config_digest.trim_start_matches("sha256:"));
    let mut b = tar::Builder::new(std::fs::File::create(out).unwrap());
    let mut layer_names = Vec::new();
    for l in &image.layers {
        let id = l.diff_id.trim_start_matches("sha256:").to_string();
        let name = format!("{id}/layer.tar");
        if !layer_names.contains(&name) {
            let mut h = header(EntryType::Directory, 0o755, 0);
            b.append_data(&mut h, format!("{id}/"), &[][..]).unwrap();
            append_bytes(&mut b, &format!("{id}/VERSION"), b"1.0");
            append_bytes(&mut b, &name, &l.tar);
        }
        layer_names.push(name);
    }
    append_bytes(&mut b, &config_name, &config);
    let manifest = json!([{
        "Config": config_name,
        "RepoTags": repo_tags,
        "Layers": layer_names,
    }]);
    append_bytes(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    let last = layer_names
        .last()
        .map(|n| n.trim_end_matches("/layer.tar").to_string());
    let mut repos = serde_json::Map::new();
    for t in repo_tags {
        if let (Some((repo, tag)), Some(id)) = (t.rsplit_once(':'), &last) {
            repos
                .entry(repo.to_string())
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .unwrap()
                .insert(tag.into(), json!(id));
        }
    }
    append_bytes(&mut b, "repositories", &serde_json::to_vec(&repos).unwrap());
    b.into_inner().unwrap().sync_all().unwrap();
    config_digest
}

/// Writes the layout directory `layout` as the tar `out` (`oci-archive:`), entries named
/// relative to the layout (`oci-layout`, `index.json`, `blobs/sha256/…`).
pub fn oci_archive(layout: &Path, out: &Path) {
    let mut b = tar::Builder::new(std::fs::File::create(out).unwrap());
    for (rel, meta) in super::tree::walk(layout) {
        let name = rel.to_str().unwrap();
        if meta.is_dir() {
            let mut h = header(EntryType::Directory, 0o755, 0);
            b.append_data(&mut h, format!("{name}/"), &[][..]).unwrap();
        } else {
            append_bytes(&mut b, name, &std::fs::read(layout.join(&rel)).unwrap());
        }
    }
    b.into_inner().unwrap().sync_all().unwrap();
}
