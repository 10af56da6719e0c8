//! One commit per layer, keyed by its diff_id.
//!
//! The compressed blob is hashed (when the caller has not verified it yet),
//! decompressed, hashed again (the diff_id), and passed through
//! [`crate::image::layer::read_layer`]; each normalised entry is written as an
//! OSTree object and placed in a `MutableTree`. Whiteouts stay in the layer
//! commit as empty `.wh.NAME` / `.wh..wh..opq` files; [`super::merge`] applies
//! them. Directories a layer only implies (no entry of their own) are listed
//! in the commit metadata so the merge keeps the lower layer's metadata.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufReader, Read};

use ostree::gio;
use ostree::glib;
use ostree::prelude::*;

use super::{ot, refs, Store, StoreError, NOCANCEL};
use crate::image::layer::{self, DigestReader, Entry, Meta};
use crate::image::limits::{MeteredReader, SizeBudget};
use crate::Error;

/// Commit metadata key: the layer's diff_id.
pub const META_DIFF_ID: &str = "berth.diff-id";
/// Commit metadata key: directories the layer implies without an entry.
pub const META_IMPLICIT: &str = "berth.implicit-dirs";
/// Commit metadata key: whether the layer holds whiteouts.
pub const META_WHITEOUTS: &str = "berth.whiteouts";
/// Commit metadata key: the bytes the layer decompressed to (u64), charged
/// to the image cap when a later pull finds the layer already stored.
pub const META_SIZE: &str = "berth.size";

/// Files smaller than this are written in one call.
const INLINE_MAX: u64 = 64 * 1024;

/// Dirmeta for directories a layer implies: root-owned, 0755.
pub(crate) const IMPLICIT_DIR: Meta = Meta {
    uid: 0,
    gid: 0,
    mode: 0o755,
};

/// What one import did.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The layer commit.
    pub commit: String,
    /// Entries imported.
    pub entries: u64,
}

/// Imports one layer blob. `verify_blob` is the compressed digest to check
/// (None when the caller already checked the bytes); `diff_id` is always
/// checked. What the layer decompresses to is charged to `budget`; past a
/// cap the import stops with [`crate::image::layer::LayerError::TooLarge`]. Writes the layer ref
/// only when everything matched; on any error the transaction is aborted and
/// nothing of the layer is committed.
pub fn import_layer(
    store: &Store,
    blob: impl Read,
    blob_digest: &str,
    verify_blob: bool,
    diff_id: &str,
    budget: &SizeBudget,
) -> Result<Imported, Error> {
    let layer_ref = refs::layer_ref(diff_id).map_err(|e| StoreError::Damaged(e.to_string()))?;
    let repo = store.repo();
    let meter = budget.meter(blob_digest);
    let result = store.transaction(|| -> Result<Imported, Error> {
        let mut compressed = DigestReader::new(blob);
        let (_, plain) = layer::decompress(BufReader::with_capacity(256 * 1024, &mut compressed))
            .map_err(|e| read_err(blob_digest, &e))?;
        let mut plain = DigestReader::new(MeteredReader::new(plain, &meter));
        let mut builder = TreeBuilder::new(repo)?;
        let summary = layer::read_layer(&mut plain, blob_digest, |entry| {
            if let Entry::File { size, .. } = &entry {
                meter.file(*size)?;
            }
            builder.add(entry)
        })?;
        plain.drain().map_err(|e| read_err(blob_digest, &e))?;
        let (actual_diff, _) = plain.finish();
        compressed_drain(&mut compressed, blob_digest)?;
        let (actual_blob, _) = compressed.finish();
        if let Some(e) = meter.error() {
            return Err(e.into());
        }
        if verify_blob && actual_blob != blob_digest {
            return Err(StoreError::BlobMismatch {
                expected: blob_digest.to_string(),
                actual: actual_blob,
            }
            .into());
        }
        if actual_diff != diff_id {
            return Err(StoreError::DiffIdMismatch {
                layer: blob_digest.to_string(),
                expected: diff_id.to_string(),
                actual: actual_diff,
            }
            .into());
        }
        let commit = builder.commit(diff_id, blob_digest, meter.charged())?;
        repo.transaction_set_ref(None, &layer_ref, Some(&commit));
        Ok(Imported {
            commit,
            entries: summary.entries,
        })
    });
    // A tripped cap shows first as a read error wherever the tar reader was;
    // the cap is the cause.
    match (result, meter.error()) {
        (Err(_), Some(cap)) => Err(cap.into()),
        (result, _) => result,
    }
}

/// The decompressed size recorded in layer commit `commit`; `None` for
/// layers imported before berth recorded it.
pub fn stored_size(store: &Store, commit: &str) -> Result<Option<u64>, Error> {
    let (v, _) = store
        .repo()
        .load_commit(commit)
        .map_err(ot(|| format!("loading layer commit {commit}")))?;
    let meta = glib::VariantDict::new(Some(&v.child_value(0)));
    Ok(meta.lookup::<u64>(META_SIZE).ok().flatten())
}

fn compressed_drain<R: Read>(r: &mut DigestReader<R>, digest: &str) -> Result<u64, Error> {
    r.drain().map_err(|e| read_err(digest, &e))
}

fn read_err(digest: &str, e: &std::io::Error) -> Error {
    StoreError::LayerRead {
        layer: digest.to_string(),
        detail: format!("cannot read the layer stream: {e}"),
    }
    .into()
}

/// Builds one layer's tree from normalised entries.
struct TreeBuilder<'r> {
    repo: &'r ostree::Repo,
    root: ostree::MutableTree,
    /// Directory path → its mutable tree ("" is the root).
    dirs: HashMap<String, ostree::MutableTree>,
    /// Regular-file path → content checksum, for hardlinks.
    files: HashMap<String, String>,
    /// Directories created without an entry of their own.
    implicit: BTreeSet<String>,
    dirmeta: HashMap<(u32, u32, u32), String>,
    empty_file: Option<String>,
    whiteouts: bool,
}

fn split(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("", path),
    }
}

impl<'r> TreeBuilder<'r> {
    fn new(repo: &'r ostree::Repo) -> Result<Self, Error> {
        let mut b = TreeBuilder {
            repo,
            root: ostree::MutableTree::new(),
            dirs: HashMap::new(),
            files: HashMap::new(),
            implicit: BTreeSet::new(),
            dirmeta: HashMap::new(),
            empty_file: None,
            whiteouts: false,
        };
        let meta = b.dirmeta(&IMPLICIT_DIR)?;
        b.root.set_metadata_checksum(&meta);
        b.dirs.insert(String::new(), b.root.clone());
        b.implicit.insert(String::new());
        Ok(b)
    }

    fn dirmeta(&mut self, meta: &Meta) -> Result<String, Error> {
        dirmeta_checksum(self.repo, &mut self.dirmeta, meta)
    }

    /// The directory at `path`, creating it (and its parents) as implicit.
    fn dir(&mut self, path: &str) -> Result<ostree::MutableTree, Error> {
        if let Some(d) = self.dirs.get(path) {
            return Ok(d.clone());
        }
        let (parent, name) = split(path);
        let parent_tree = self.dir(parent)?;
        self.forget(path);
        let (file, _) = lookup(&parent_tree, name)?;
        if file.is_some() {
            parent_tree
                .remove(name, true)
                .map_err(ot(|| format!("replacing {path}")))?;
        }
        let tree = parent_tree
            .ensure_dir(name)
            .map_err(ot(|| format!("creating directory {path}")))?;
        // Every directory the builder made is in `self.dirs`, so this one is
        // new: it exists only because an entry below it does.
        let meta = self.dirmeta(&IMPLICIT_DIR)?;
        tree.set_metadata_checksum(&meta);
        self.implicit.insert(path.to_string());
        self.dirs.insert(path.to_string(), tree.clone());
        Ok(tree)
    }

    /// Drops bookkeeping for `path` and everything below it (it is being replaced).
    fn forget(&mut self, path: &str) {
        self.files.remove(path);
        let prefix = format!("{path}/");
        if self.dirs.remove(path).is_some() {
            self.dirs.retain(|k, _| !k.starts_with(&prefix));
            self.files.retain(|k, _| !k.starts_with(&prefix));
            self.implicit
                .retain(|k| k != path && !k.starts_with(&prefix));
        }
    }

    /// Puts a non-directory object at `path`, replacing whatever is there.
    fn place(&mut self, path: &str, checksum: &str) -> Result<(), Error> {
        let (parent, name) = split(path);
        let parent_tree = self.dir(parent)?;
        self.forget(path);
        parent_tree
            .remove(name, true)
            .map_err(ot(|| format!("replacing {path}")))?;
        parent_tree
            .replace_file(name, checksum)
            .map_err(ot(|| format!("adding {path}")))?;
        Ok(())
    }

    fn empty_file(&mut self) -> Result<String, Error> {
        if let Some(c) = &self.empty_file {
            return Ok(c.clone());
        }
        let c = self
            .repo
            .write_regfile_inline(None, 0, 0, libc::S_IFREG | 0o644, None, &[], NOCANCEL)
            .map_err(ot(|| "writing a whiteout marker".to_string()))?
            .to_string();
        self.empty_file = Some(c.clone());
        Ok(c)
    }

    fn add(&mut self, entry: Entry<'_>) -> Result<(), Error> {
        match entry {
            Entry::Dir { path, meta } => {
                let tree = if path.is_empty() {
                    self.root.clone()
                } else {
                    let (parent, name) = split(path);
                    let parent_tree = self.dir(parent)?;
                    if !self.dirs.contains_key(path) {
                        let (file, _) = lookup(&parent_tree, name)?;
                        if file.is_some() {
                            self.forget(path);
                            parent_tree
                                .remove(name, true)
                                .map_err(ot(|| format!("replacing {path}")))?;
                        }
                    }
                    let t = parent_tree
                        .ensure_dir(name)
                        .map_err(ot(|| format!("creating directory {path}")))?;
                    self.dirs.insert(path.to_string(), t.clone());
                    t
                };
                let m = self.dirmeta(&meta)?;
                tree.set_metadata_checksum(&m);
                self.implicit.remove(path);
            }
            Entry::File {
                path,
                meta,
                size,
                content,
            } => {
                let csum = write_file(self.repo, path, &meta, size, content)?;
                self.place(path, &csum)?;
                self.files.insert(path.to_string(), csum);
            }
            Entry::Symlink { path, meta, target } => {
                let csum = self
                    .repo
                    .write_symlink(None, meta.uid, meta.gid, None, target, NOCANCEL)
                    .map_err(ot(|| format!("writing symlink {path}")))?
                    .to_string();
                self.place(path, &csum)?;
            }
            Entry::Hardlink { path, target } => {
                let csum = self.files.get(target).cloned().ok_or_else(|| {
                    StoreError::Damaged(format!(
                        "hardlink {path} names {target}, which was replaced"
                    ))
                })?;
                self.place(path, &csum)?;
                self.files.insert(path.to_string(), csum);
            }
            Entry::Whiteout { path } => {
                let (parent, name) = split(path);
                let marker = if parent.is_empty() {
                    format!(".wh.{name}")
                } else {
                    format!("{parent}/.wh.{name}")
                };
                let csum = self.empty_file()?;
                self.place(&marker, &csum)?;
                self.whiteouts = true;
            }
            Entry::Opaque { dir } => {
                self.dir(dir)?;
                let marker = if dir.is_empty() {
                    ".wh..wh..opq".to_string()
                } else {
                    format!("{dir}/.wh..wh..opq")
                };
                let csum = self.empty_file()?;
                self.place(&marker, &csum)?;
                self.whiteouts = true;
            }
        }
        Ok(())
    }

    fn commit(self, diff_id: &str, blob_digest: &str, size: u64) -> Result<String, Error> {
        let root = self
            .repo
            .write_mtree(&self.root, NOCANCEL)
            .map_err(ot(|| format!("writing the tree of layer {blob_digest}")))?;
        let root = root
            .downcast::<ostree::RepoFile>()
            .map_err(|_| StoreError::Damaged("write_mtree returned a non-repo file".into()))?;
        let dict = glib::VariantDict::new(None);
        dict.insert(META_DIFF_ID, diff_id);
        let implicit: Vec<String> = self.implicit.into_iter().collect();
        dict.insert(META_IMPLICIT, implicit);
        dict.insert(META_WHITEOUTS, self.whiteouts);
        dict.insert(META_SIZE, size);
        let meta = dict.end();
        let commit = self
            .repo
            .write_commit_with_time(None, Some(diff_id), None, Some(&meta), &root, 0, NOCANCEL)
            .map_err(ot(|| format!("committing layer {blob_digest}")))?;
        Ok(commit.to_string())
    }
}

/// Looks up `name` in `tree`: (file checksum, subdirectory).
pub(crate) fn lookup(
    tree: &ostree::MutableTree,
    name: &str,
) -> Result<(Option<glib::GString>, Option<ostree::MutableTree>), Error> {
    match tree.lookup(name) {
        Ok(v) => Ok(v),
        Err(e) if e.matches(gio::IOErrorEnum::NotFound) => Ok((None, None)),
        Err(e) => Err(StoreError::Ostree {
            what: format!("looking up {name}"),
            source: e,
        }
        .into()),
    }
}

/// Writes (or finds) the dirmeta object for `meta`, caching by value.
pub(crate) fn dirmeta_checksum(
    repo: &ostree::Repo,
    cache: &mut HashMap<(u32, u32, u32), String>,
    meta: &Meta,
) -> Result<String, Error> {
    let key = (meta.uid, meta.gid, meta.mode);
    if let Some(c) = cache.get(&key) {
        return Ok(c.clone());
    }
    let info = gio::FileInfo::new();
    info.set_attribute_uint32("unix::uid", meta.uid);
    info.set_attribute_uint32("unix::gid", meta.gid);
    info.set_attribute_uint32("unix::mode", libc::S_IFDIR | (meta.mode & 0o7777));
    info.set_file_type(gio::FileType::Directory);
    let v = ostree::create_directory_metadata(&info, None);
    let c = repo
        .write_metadata(ostree::ObjectType::DirMeta, None, &v, NOCANCEL)
        .map_err(ot(|| "writing directory metadata".to_string()))?
        .to_hex();
    cache.insert(key, c.clone());
    Ok(c)
}

fn write_file(
    repo: &ostree::Repo,
    path: &str,
    meta: &Meta,
    size: u64,
    content: &mut dyn Read,
) -> Result<String, Error> {
    let mode = libc::S_IFREG | (meta.mode & 0o7777);
    let what = || format!("writing {path}");
    if size < INLINE_MAX {
        let mut buf = Vec::with_capacity(size as usize);
        content
            .take(size)
            .read_to_end(&mut buf)
            .map_err(|e| StoreError::Damaged(format!("reading {path}: {e}")))?;
        if buf.len() as u64 != size {
            return Err(StoreError::Damaged(format!("{path}: entry is truncated")).into());
        }
        return Ok(repo
            .write_regfile_inline(None, meta.uid, meta.gid, mode, None, &buf, NOCANCEL)
            .map_err(ot(what))?
            .to_string());
    }
    let writer = repo
        .write_regfile(None, meta.uid, meta.gid, mode, size, None)
        .map_err(ot(what))?;
    let mut out = writer.clone().upcast::<gio::OutputStream>().into_write();
    let copied = std::io::copy(&mut content.take(size), &mut out)
        .map_err(|e| StoreError::Damaged(format!("reading {path}: {e}")))?;
    if copied != size {
        return Err(StoreError::Damaged(format!("{path}: entry is truncated")).into());
    }
    Ok(writer.finish(NOCANCEL).map_err(ot(what))?.to_string())
}

/// The dirmeta checksum for `meta` (pure helper for tests and merge).
pub(crate) fn implicit_dirmeta(repo: &ostree::Repo) -> Result<String, Error> {
    dirmeta_checksum(repo, &mut HashMap::new(), &IMPLICIT_DIR)
}
