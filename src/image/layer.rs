//! PURE (Read → callbacks): the tar filter every layer passes through.
//!
//! [`read_layer`] parses an uncompressed layer tar and hands the importer one
//! normalised [`Entry`] at a time. The importer trusts what it gets, so every
//! rule lives here:
//!
//! - paths lose leading `/` and `./`, `.` and empty components; a `..`
//!   component, a NUL byte or a non-UTF-8 name refuses the whole layer;
//! - the root (`.`, `./`, `/`) arrives as `Entry::Dir { path: "" }` so the
//!   importer can take its metadata; any other type at the root is refused;
//! - `.wh.NAME` becomes [`Entry::Whiteout`], `.wh..wh..opq` becomes
//!   [`Entry::Opaque`], other `.wh..wh.*` names and what lies under them
//!   (aufs metadata) are skipped, a `.wh.` directory component or a `.wh.`
//!   with an empty, `.` or `..` name is refused: a whiteout name never
//!   reaches the importer as a file or directory;
//! - a hardlink must name an earlier regular file of the same layer that no
//!   later entry replaced; symlink targets are kept verbatim (never followed);
//! - devices and FIFOs are dropped (the runtime provides `/dev`) and counted;
//! - a non-directory entry whose name ends in `/` is refused (parsers
//!   disagree on it), except the old `\0` type flag, which means a directory;
//! - malformed pax records, pax `GNU.sparse.*` files (unsupported by the tar
//!   crate), unreadable header fields (uid/gid must fit u32), truncated
//!   bodies and broken headers refuse the layer; a stream that simply lacks
//!   the two zero end blocks is accepted. Every error names the layer digest.
//!
//! Also here: [`decompress`] (by magic bytes) and [`DigestReader`].

use std::cell::Cell;
use std::collections::BTreeSet;
use std::io::{self, BufRead, Read};
use std::ops::Bound;
use std::rc::Rc;

use sha2::{Digest as _, Sha256};
use tar::EntryType;

mod decompress;
mod error;

pub use decompress::{decompress, Compression, DigestReader};
pub use error::LayerError;

/// Basename prefix marking a whiteout.
const WHITEOUT_PREFIX: &str = ".wh.";
/// Basename prefix of aufs metadata entries (and of the opaque marker).
const WHITEOUT_META_PREFIX: &str = ".wh..wh.";
/// Basename marking a directory opaque.
const WHITEOUT_OPAQUE: &str = ".wh..wh..opq";

/// Owner and permission bits of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Permission bits (0o7777 mask: rwx plus setuid/setgid/sticky); no file-type bits.
    pub mode: u32,
}

/// One normalised entry. Paths are relative, `/`-separated, UTF-8, without
/// NUL bytes, with no `.`/`..`/empty components and no leading or trailing
/// `/`. They are non-empty except `Dir { path: "" }` (the image root) and
/// `Opaque { dir: "" }`.
pub enum Entry<'a> {
    /// A directory; `path` is `""` for the image root.
    Dir {
        /// Normalised path.
        path: &'a str,
        /// Owner and mode.
        meta: Meta,
    },
    /// A regular file; `content` yields exactly `size` bytes, or an error
    /// naming the layer if the body is truncated. Reading it is optional.
    File {
        /// Normalised path.
        path: &'a str,
        /// Owner and mode.
        meta: Meta,
        /// Content length.
        size: u64,
        /// Content.
        content: &'a mut dyn Read,
    },
    /// A symbolic link, stored verbatim (never followed).
    Symlink {
        /// Normalised path.
        path: &'a str,
        /// Owner and mode.
        meta: Meta,
        /// Link target as written in the layer (non-empty, UTF-8, no NUL).
        target: &'a str,
    },
    /// A hard link to an earlier regular-file entry of the same layer.
    Hardlink {
        /// Normalised path.
        path: &'a str,
        /// Normalised path of the earlier entry.
        target: &'a str,
    },
    /// `.wh.NAME`: delete `path` from lower layers.
    Whiteout {
        /// Normalised path of what is deleted.
        path: &'a str,
    },
    /// `DIR/.wh..wh..opq`: hide everything lower layers have under `dir`.
    Opaque {
        /// Normalised path of the directory ("" for the root).
        dir: &'a str,
    },
}

/// Counts of what a layer held.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Entries passed to the visitor.
    pub entries: u64,
    /// Device nodes, FIFOs and sockets dropped.
    pub dropped: u64,
}

/// Reads an uncompressed tar stream and calls `visit` once per entry, in
/// stream order, with the entry normalised (see the module docs for the
/// rules). The root directory is passed as `Entry::Dir { path: "" }`.
///
/// Stops at the tar end blocks, or at the end of the stream if they are
/// missing; a stream that ends inside a header or an entry body is an error.
/// Errors from `visit` are returned unchanged.
pub fn read_layer<R: Read, E: From<LayerError>>(
    reader: R,
    digest: &str,
    mut visit: impl FnMut(Entry<'_>) -> Result<(), E>,
) -> Result<Summary, E> {
    let offset = Rc::new(Cell::new(0));
    let mut archive = tar::Archive::new(Counted {
        inner: reader,
        offset: Rc::clone(&offset),
    });
    let unreadable = |source| LayerError::Unreadable {
        digest: digest.to_string(),
        offset: offset.get(),
        source,
    };
    let mut filter = Filter {
        digest,
        files: BTreeSet::new(),
        summary: Summary::default(),
    };
    for entry in archive.entries().map_err(unreadable)? {
        let mut entry = entry.map_err(unreadable)?;
        filter.entry(&mut entry, &mut visit)?;
    }
    Ok(filter.summary)
}

/// Counts the bytes the tar reader consumes, for error positions.
struct Counted<R> {
    inner: R,
    offset: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.offset.set(self.offset.get().saturating_add(n as u64));
        Ok(n)
    }
}

/// State carried across the entries of one layer.
struct Filter<'d> {
    digest: &'d str,
    /// Normalised paths that are regular files right now: valid hardlink targets.
    files: BTreeSet<String>,
    summary: Summary,
}

impl Filter<'_> {
    fn entry<R: Read, E: From<LayerError>>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        visit: &mut impl FnMut(Entry<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let mut kind = entry.header().entry_type();
        if matches!(kind, EntryType::XGlobalHeader) {
            tracing::debug!(layer = self.digest, "skipping pax global header {shown:?}");
            return Ok(());
        }
        self.check_pax(entry, &shown)?;
        let trailing_slash = raw.last() == Some(&b'/');
        // Old tar (and GNU, Go) read a `\0` type flag with a trailing slash as a directory.
        if trailing_slash && entry.header().as_old().linkflag[0] == 0 {
            kind = EntryType::Directory;
        }
        let path = normalise(&raw).map_err(|p| p.into_error(self.digest, &shown))?;
        let droppable = matches!(kind, EntryType::Char | EntryType::Block | EntryType::Fifo);
        let dir = kind == EntryType::Directory;
        if (path.is_empty() && !dir) || (trailing_slash && !dir && !droppable) {
            return Err(self.err_not_dir(&shown, kind).into());
        }
        if let Some(whiteout) = self.whiteout(&path)? {
            self.mark_ancestors(&path);
            let entry = match &whiteout {
                Whiteout::Opaque(dir) => Entry::Opaque { dir },
                Whiteout::Path(path) => Entry::Whiteout { path },
                Whiteout::Aufs => {
                    tracing::debug!(layer = self.digest, "skipping aufs metadata {path:?}");
                    self.replace(&path);
                    return Ok(());
                }
            };
            self.summary.entries += 1;
            return visit(entry);
        }
        self.mark_ancestors(&path);
        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.file(entry, path, &shown, visit)
            }
            EntryType::Link => self.hardlink(entry, path, visit),
            EntryType::Symlink => self.symlink(entry, path, &shown, visit),
            EntryType::Directory => {
                let meta = self.meta(entry.header(), &shown)?;
                self.files.remove(&path);
                self.summary.entries += 1;
                visit(Entry::Dir { path: &path, meta })
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                tracing::warn!(
                    layer = self.digest,
                    "dropping {kind:?} entry {path:?}: the runtime provides /dev"
                );
                self.replace(&path);
                self.summary.dropped += 1;
                Ok(())
            }
            _ => {
                tracing::warn!(
                    layer = self.digest,
                    "skipping unsupported {kind:?} entry {path:?}"
                );
                self.replace(&path);
                Ok(())
            }
        }
    }

    fn file<R: Read, E: From<LayerError>>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: String,
        shown: &str,
        visit: &mut impl FnMut(Entry<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let meta = self.meta(entry.header(), shown)?;
        let size = entry.size();
        self.replace(&path);
        self.files.insert(path.clone());
        self.summary.entries += 1;
        let mut content = Exact {
            inner: entry,
            remaining: size,
            size,
            digest: self.digest,
            path: &path,
            failure: None,
        };
        visit(Entry::File {
            path: &path,
            meta,
            size,
            content: &mut content,
        })?;
        match content.failure {
            Some(reason) => Err(LayerError::Content {
                digest: self.digest.to_string(),
                path,
                reason,
            }
            .into()),
            None => Ok(()),
        }
    }

    fn hardlink<R: Read, E: From<LayerError>>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        path: String,
        visit: &mut impl FnMut(Entry<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let raw = entry
            .link_name_bytes()
            .map(|t| t.into_owned())
            .unwrap_or_default();
        let target = normalise(&raw)
            .ok()
            .filter(|t| *t != path && self.files.contains(t));
        let Some(target) = target else {
            return Err(LayerError::HardlinkTarget {
                digest: self.digest.to_string(),
                path,
                target: String::from_utf8_lossy(&raw).into_owned(),
            }
            .into());
        };
        self.replace(&path);
        self.files.insert(path.clone());
        self.summary.entries += 1;
        visit(Entry::Hardlink {
            path: &path,
            target: &target,
        })
    }

    fn symlink<R: Read, E: From<LayerError>>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        path: String,
        shown: &str,
        visit: &mut impl FnMut(Entry<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let raw = entry
            .link_name_bytes()
            .map(|t| t.into_owned())
            .unwrap_or_default();
        if raw.is_empty() {
            return Err(LayerError::EmptySymlink {
                digest: self.digest.to_string(),
                path,
            }
            .into());
        }
        let target = match std::str::from_utf8(&raw) {
            Ok(t) if !t.contains('\0') => t,
            _ => return Err(PathProblem::BadName.into_error(self.digest, shown).into()),
        };
        let meta = self.meta(entry.header(), shown)?;
        self.replace(&path);
        self.summary.entries += 1;
        visit(Entry::Symlink {
            path: &path,
            meta,
            target,
        })
    }

    /// Classifies whiteout names; `Ok(None)` for ordinary names.
    fn whiteout(&self, path: &str) -> Result<Option<Whiteout>, LayerError> {
        let (parent, base) = path.rsplit_once('/').unwrap_or(("", path));
        let aufs = |c: &str| c.starts_with(WHITEOUT_META_PREFIX);
        if parent.split('/').any(aufs) || (aufs(base) && base != WHITEOUT_OPAQUE) {
            return Ok(Some(Whiteout::Aufs));
        }
        if parent.split('/').any(|c| c.starts_with(WHITEOUT_PREFIX)) {
            return Err(self.err_whiteout(path));
        }
        if base == WHITEOUT_OPAQUE {
            return Ok(Some(Whiteout::Opaque(parent.to_string())));
        }
        let Some(name) = base.strip_prefix(WHITEOUT_PREFIX) else {
            return Ok(None);
        };
        if name.is_empty() || name == "." || name == ".." {
            return Err(self.err_whiteout(path));
        }
        Ok(Some(Whiteout::Path(match parent {
            "" => name.to_string(),
            _ => format!("{parent}/{name}"),
        })))
    }

    /// Refuses malformed pax records, and uid/gid/size records the tar crate
    /// would otherwise silently ignore.
    fn check_pax<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        shown: &str,
    ) -> Result<(), LayerError> {
        let bad = |field: &str| LayerError::BadHeader {
            digest: self.digest.to_string(),
            path: shown.to_string(),
            field: field.to_string(),
        };
        let Some(records) = entry.pax_extensions().map_err(|_| bad("pax header"))? else {
            return Ok(());
        };
        for record in records {
            let record = record.map_err(|_| bad("pax record"))?;
            let key = record.key_bytes();
            if key.starts_with(b"GNU.sparse.") {
                // Sparse formats 0.1/1.0 via pax: the tar crate would hand out the raw map.
                return Err(bad("pax GNU.sparse record (unsupported)"));
            }
            if matches!(key, b"uid" | b"gid" | b"size") {
                let ok = record
                    .value()
                    .ok()
                    .is_some_and(|v| v.parse::<u64>().is_ok());
                if !ok {
                    return Err(bad(&format!("pax {} record", String::from_utf8_lossy(key))));
                }
            }
        }
        Ok(())
    }

    fn meta(&self, header: &tar::Header, shown: &str) -> Result<Meta, LayerError> {
        let bad = |field: &str| LayerError::BadHeader {
            digest: self.digest.to_string(),
            path: shown.to_string(),
            field: field.to_string(),
        };
        let id = |v: io::Result<u64>, field| {
            v.ok()
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| bad(field))
        };
        Ok(Meta {
            uid: id(header.uid(), "uid")?,
            gid: id(header.gid(), "gid")?,
            mode: header.mode().map_err(|_| bad("mode"))? & 0o7777,
        })
    }

    /// Every ancestor of `path` is a directory from now on, not a file.
    fn mark_ancestors(&mut self, path: &str) {
        let mut rest = path;
        while let Some((parent, _)) = rest.rsplit_once('/') {
            self.files.remove(parent);
            rest = parent;
        }
    }

    /// `path` is replaced: it and everything below it stop being files.
    fn replace(&mut self, path: &str) {
        self.files.remove(path);
        let prefix = format!("{path}/");
        let below: Vec<String> = self
            .files
            .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
            .take_while(|p| p.starts_with(&prefix))
            .cloned()
            .collect();
        for p in below {
            self.files.remove(&p);
        }
    }

    fn err_whiteout(&self, path: &str) -> LayerError {
        LayerError::BadWhiteout {
            digest: self.digest.to_string(),
            path: path.to_string(),
        }
    }

    fn err_not_dir(&self, shown: &str, kind: EntryType) -> LayerError {
        LayerError::NotADirectory {
            digest: self.digest.to_string(),
            path: shown.to_string(),
            kind: format!("{kind:?}"),
        }
    }
}

/// What a whiteout name means.
enum Whiteout {
    /// Under or at a `.wh..wh.*` name other than the opaque marker: aufs
    /// metadata, skipped.
    Aufs,
    /// `DIR/.wh..wh..opq`, holding DIR.
    Opaque(String),
    /// `DIR/.wh.NAME`, holding DIR/NAME.
    Path(String),
}

/// Why a name could not be normalised.
#[derive(Debug, PartialEq, Eq)]
enum PathProblem {
    Escapes,
    BadName,
}

impl PathProblem {
    fn into_error(self, digest: &str, shown: &str) -> LayerError {
        let (digest, path) = (digest.to_string(), shown.to_string());
        match self {
            PathProblem::Escapes => LayerError::Escapes { digest, path },
            PathProblem::BadName => LayerError::BadName { digest, path },
        }
    }
}

/// Normalises a tar name: UTF-8 without NUL, leading `/` and `./`, `.` and
/// empty components dropped, `..` refused. The root becomes `""`.
fn normalise(raw: &[u8]) -> Result<String, PathProblem> {
    let text = std::str::from_utf8(raw).map_err(|_| PathProblem::BadName)?;
    if text.contains('\0') {
        return Err(PathProblem::BadName);
    }
    let mut out = String::with_capacity(text.len());
    for component in text.split('/') {
        match component {
            "" | "." => {}
            ".." => return Err(PathProblem::Escapes),
            c => {
                if !out.is_empty() {
                    out.push('/');
                }
                out.push_str(c);
            }
        }
    }
    Ok(out)
}

/// An entry body that yields exactly `size` bytes or fails, remembering the failure.
struct Exact<'r, 'd> {
    inner: &'r mut dyn Read,
    remaining: u64,
    size: u64,
    digest: &'d str,
    path: &'d str,
    failure: Option<String>,
}

impl Read for Exact<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.remaining == 0 {
            return Ok(0);
        }
        let want = usize::try_from(self.remaining).map_or(buf.len(), |r| r.min(buf.len()));
        let (digest, path) = (self.digest, self.path);
        let result = match buf.get_mut(..want) {
            Some(buf) => self.inner.read(buf),
            None => Ok(0),
        };
        let (kind, reason) = match result {
            Ok(0) => {
                let got = self.size - self.remaining;
                let reason = format!("truncated: {got} of {} bytes", self.size);
                (io::ErrorKind::UnexpectedEof, reason)
            }
            Ok(n) => {
                self.remaining = self.remaining.saturating_sub(n as u64);
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
            Err(e) => (e.kind(), e.to_string()),
        };
        self.failure = Some(reason.clone());
        Err(io::Error::new(
            kind,
            format!("layer {digest}: entry {path:?}: {reason}"),
        ))
    }
}

#[cfg(test)]
mod tests;
