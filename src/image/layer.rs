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

/// Basename prefix marking a whiteout.
const WHITEOUT_PREFIX: &str = ".wh.";
/// Basename prefix of aufs metadata entries (and of the opaque marker).
const WHITEOUT_META_PREFIX: &str = ".wh..wh.";
/// Basename marking a directory opaque.
const WHITEOUT_OPAQUE: &str = ".wh..wh..opq";

/// A layer that cannot be imported. Every message names the layer digest.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// Something is wrong with the layer that no other variant describes.
    #[error("layer {digest}: {reason}; refusing the image")]
    Malformed {
        /// Layer digest.
        digest: String,
        /// What is wrong.
        reason: String,
    },
    /// The tar stream itself is broken: bad checksum, garbage, truncation, or
    /// a read error (such as a decompression failure) from below.
    #[error("layer {digest}: unreadable tar near byte {offset}: {source}; refusing the image")]
    Unreadable {
        /// Layer digest.
        digest: String,
        /// Bytes of the uncompressed stream consumed when it failed.
        offset: u64,
        /// What the tar reader reported.
        source: io::Error,
    },
    /// An entry's body ended early or could not be read, and the visitor
    /// carried on regardless.
    #[error("layer {digest}: entry {path:?}: {reason}; refusing the image")]
    Content {
        /// Layer digest.
        digest: String,
        /// Normalised entry path.
        path: String,
        /// What went wrong reading it.
        reason: String,
    },
    /// An entry path has a `..` component.
    #[error("layer {digest}: entry {path:?} escapes the image; refusing the image")]
    Escapes {
        /// Layer digest.
        digest: String,
        /// Entry path as written in the layer.
        path: String,
    },
    /// An entry name or link target is not UTF-8 or holds a NUL byte.
    #[error("layer {digest}: entry {path:?} has a name or link target that is not UTF-8 or holds a NUL byte; refusing the image")]
    BadName {
        /// Layer digest.
        digest: String,
        /// Entry path as written in the layer (lossy UTF-8).
        path: String,
    },
    /// A non-directory entry at the image root, or a non-directory whose
    /// name ends in `/`.
    #[error("layer {digest}: entry {path:?} of type {kind} names a directory but is not one; refusing the image")]
    NotADirectory {
        /// Layer digest.
        digest: String,
        /// Entry path as written in the layer.
        path: String,
        /// The tar entry type.
        kind: String,
    },
    /// A whiteout with an empty, `.` or `..` name, or a whiteout name used as
    /// a directory.
    #[error("layer {digest}: entry {path:?} is not a valid whiteout; refusing the image")]
    BadWhiteout {
        /// Layer digest.
        digest: String,
        /// Normalised entry path.
        path: String,
    },
    /// A hardlink whose target is not an earlier regular file of this layer.
    #[error("layer {digest}: hardlink {path} → {target}: target is not an earlier file of this layer; refusing the image")]
    HardlinkTarget {
        /// Layer digest.
        digest: String,
        /// Normalised hardlink path.
        path: String,
        /// Target as written in the layer (lossy UTF-8).
        target: String,
    },
    /// A symlink with an empty target.
    #[error("layer {digest}: symlink {path:?} has an empty target; refusing the image")]
    EmptySymlink {
        /// Layer digest.
        digest: String,
        /// Normalised symlink path.
        path: String,
    },
    /// The layer decompresses to more than a cap allows.
    #[error("{image}: layer {digest}: {cap}; nothing of it was stored. Raise the limit only for an image you trust")]
    TooLarge {
        /// The image being pulled.
        image: String,
        /// Layer digest.
        digest: String,
        /// The cap it passed.
        cap: super::limits::Cap,
    },
    /// A header field (mode, uid, gid, a pax record) that cannot be read.
    #[error("layer {digest}: entry {path:?} has an unreadable {field}; refusing the image")]
    BadHeader {
        /// Layer digest.
        digest: String,
        /// Entry path as written in the layer (lossy UTF-8).
        path: String,
        /// Which field.
        field: String,
    },
}

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

/// How a layer blob is compressed, by its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar stream.
    None,
    /// gzip (magic `1f 8b`); several members are read as one stream.
    Gzip,
    /// zstd (magic `28 b5 2f fd`); several frames are read as one stream.
    Zstd,
}

/// Magic bytes of gzip.
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
/// Magic bytes of zstd.
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// Detects the compression of `reader` by its magic bytes and returns a
/// reader of the uncompressed stream. Anything that is neither gzip nor zstd
/// is passed through as plain tar. Decompression errors surface from reads.
pub fn decompress<'a, R: BufRead + 'a>(
    mut reader: R,
) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    // Read the magic ourselves: fill_buf may legally return fewer bytes.
    let mut magic = [0u8; 4];
    let mut have = 0;
    while let Some(rest) = magic.get_mut(have..).filter(|r| !r.is_empty()) {
        match reader.read(rest) {
            Ok(0) => break,
            Ok(n) => have += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let head = magic.get(..have).unwrap_or_default();
    let stream = io::Cursor::new(head.to_vec()).chain(reader);
    Ok(if head.starts_with(ZSTD_MAGIC) {
        let decoder = zstd::stream::read::Decoder::with_buffer(stream)?;
        (Compression::Zstd, Box::new(decoder))
    } else if head.starts_with(GZIP_MAGIC) {
        let decoder = flate2::bufread::MultiGzDecoder::new(stream);
        (Compression::Gzip, Box::new(decoder))
    } else {
        (Compression::None, Box::new(stream))
    })
}

/// Wraps a reader, computing the sha256 and length of every byte read
/// through it.
pub struct DigestReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> DigestReader<R> {
    /// Starts hashing what is read from `inner`.
    pub fn new(inner: R) -> Self {
        DigestReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Reads the rest of the stream (e.g. after the tar end blocks) so the
    /// digest covers all of it; returns how many bytes that was.
    pub fn drain(&mut self) -> io::Result<u64> {
        io::copy(self, &mut io::sink())
    }

    /// The digest (`sha256:<hex>`) and length of everything read so far.
    pub fn finish(self) -> (String, u64) {
        let hash = hex::encode(self.hasher.finalize());
        (format!("sha256:{hash}"), self.count)
    }
}

impl<R: Read> Read for DigestReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(read) = buf.get(..n) {
            self.hasher.update(read);
        }
        self.count = self.count.saturating_add(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use tar::{Builder, Header};

    const DIGEST: &str = "sha256:feedface";

    /// What the visitor saw, owned.
    #[derive(Debug, PartialEq, Eq)]
    enum Seen {
        Dir(String, Meta),
        File(String, Meta, Vec<u8>),
        Symlink(String, String),
        Hardlink(String, String),
        Whiteout(String),
        Opaque(String),
    }

    fn meta(mode: u32) -> Meta {
        Meta {
            uid: 0,
            gid: 0,
            mode,
        }
    }

    /// A header with a raw (unvalidated) name and link name.
    fn raw_header(kind: EntryType, name: &[u8], link: &[u8], size: u64) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        let old = h.as_old_mut();
        old.name = [0; 100];
        old.name[..name.len()].copy_from_slice(name);
        old.linkname = [0; 100];
        old.linkname[..link.len()].copy_from_slice(link);
        h.set_cksum();
        h
    }

    /// Builds tar streams entry by entry, hostile names included.
    struct Tar(Builder<Vec<u8>>);

    impl Tar {
        fn new() -> Self {
            Tar(Builder::new(Vec::new()))
        }
        fn raw(mut self, kind: EntryType, name: &str, link: &str, data: &[u8]) -> Self {
            let h = raw_header(kind, name.as_bytes(), link.as_bytes(), data.len() as u64);
            self.0.append(&h, data).unwrap();
            self
        }
        fn header(mut self, h: &Header, data: &[u8]) -> Self {
            self.0.append(h, data).unwrap();
            self
        }
        fn file(self, name: &str, data: &[u8]) -> Self {
            self.raw(EntryType::Regular, name, "", data)
        }
        fn dir(self, name: &str) -> Self {
            self.raw(EntryType::Directory, name, "", b"")
        }
        fn link(self, name: &str, target: &str) -> Self {
            self.raw(EntryType::Link, name, target, b"")
        }
        fn symlink(self, name: &str, target: &str) -> Self {
            self.raw(EntryType::Symlink, name, target, b"")
        }
        fn pax(mut self, records: &[(&str, &[u8])]) -> Self {
            self.0
                .append_pax_extensions(records.iter().copied())
                .unwrap();
            self
        }
        fn finish(self) -> Vec<u8> {
            self.0.into_inner().unwrap()
        }
    }

    fn read(bytes: &[u8]) -> Result<(Vec<Seen>, Summary), LayerError> {
        let mut seen = Vec::new();
        let summary = read_layer(bytes, DIGEST, |entry| -> Result<(), LayerError> {
            seen.push(match entry {
                Entry::Dir { path, meta } => Seen::Dir(path.into(), meta),
                Entry::File {
                    path,
                    meta,
                    size,
                    content,
                } => {
                    let mut data = Vec::new();
                    content
                        .read_to_end(&mut data)
                        .map_err(|e| LayerError::Malformed {
                            digest: DIGEST.into(),
                            reason: e.to_string(),
                        })?;
                    assert_eq!(data.len() as u64, size);
                    Seen::File(path.into(), meta, data)
                }
                Entry::Symlink { path, target, .. } => Seen::Symlink(path.into(), target.into()),
                Entry::Hardlink { path, target } => Seen::Hardlink(path.into(), target.into()),
                Entry::Whiteout { path } => Seen::Whiteout(path.into()),
                Entry::Opaque { dir } => Seen::Opaque(dir.into()),
            });
            Ok(())
        })?;
        Ok((seen, summary))
    }

    fn seen(bytes: &[u8]) -> Vec<Seen> {
        read(bytes).unwrap().0
    }

    fn refused(bytes: &[u8]) -> LayerError {
        let err = read(bytes).unwrap_err();
        assert!(err.to_string().contains(DIGEST), "{err}");
        err
    }

    fn file(path: &str, data: &[u8]) -> Seen {
        Seen::File(path.into(), meta(0o644), data.to_vec())
    }

    #[test]
    fn normalises_paths() {
        let cases = [
            ("/etc/passwd", "etc/passwd"),
            ("./a/./b", "a/b"),
            ("a//b/", "a/b"),
            ("././x", "x"),
            ("//abs//./y", "abs/y"),
            ("a/b/.", "a/b"),
            ("with space/ünïcode", "with space/ünïcode"),
            ("back\\slash", "back\\slash"),
            ("...", "..."),
            ("..a/b..", "..a/b.."),
        ];
        for (raw, want) in cases {
            assert_eq!(normalise(raw.as_bytes()), Ok(want.to_string()), "{raw}");
        }
        for root in [".", "./", "/", "", "//./."] {
            assert_eq!(normalise(root.as_bytes()), Ok(String::new()), "{root}");
        }
        for bad in [
            "..",
            "../etc/passwd",
            "a/../b",
            "a/..",
            "/..",
            "./../x",
            "a/b/../../..",
        ] {
            assert_eq!(
                normalise(bad.as_bytes()),
                Err(PathProblem::Escapes),
                "{bad}"
            );
        }
        assert_eq!(normalise(b"a\xffb"), Err(PathProblem::BadName));
        assert_eq!(normalise(b"a\0b"), Err(PathProblem::BadName));
    }

    #[test]
    fn passes_normalised_entries() {
        let tar = Tar::new()
            .dir("./")
            .dir("/etc/")
            .file("/etc/passwd", b"root")
            .file("./a/./b", b"x")
            .finish();
        assert_eq!(
            seen(&tar),
            vec![
                Seen::Dir("".into(), meta(0o644)),
                Seen::Dir("etc".into(), meta(0o644)),
                file("etc/passwd", b"root"),
                file("a/b", b"x"),
            ]
        );
    }

    #[test]
    fn refuses_dotdot_anywhere() {
        for name in ["../etc/passwd", "a/../../b", "a/..", "..", "/../x"] {
            let tar = Tar::new().file(name, b"x").finish();
            let err = refused(&tar);
            assert!(matches!(err, LayerError::Escapes { .. }), "{name}: {err}");
            assert!(err.to_string().contains("escapes the image"), "{err}");
            assert!(err.to_string().contains(&format!("{name:?}")), "{err}");
        }
        let tar = Tar::new().dir("a/../..").finish();
        assert!(matches!(refused(&tar), LayerError::Escapes { .. }));
    }

    #[test]
    fn refuses_bad_names() {
        let tar = Tar::new()
            .header(&raw_header(EntryType::Regular, b"bad\xff", b"", 0), b"")
            .finish();
        let err = refused(&tar);
        assert!(matches!(err, LayerError::BadName { ref path, .. } if path.starts_with("bad")));
        let tar = Tar::new()
            .pax(&[("path", b"nul\0inside")])
            .file("short", b"")
            .finish();
        assert!(matches!(refused(&tar), LayerError::BadName { .. }));
    }

    #[test]
    fn root_must_be_a_directory() {
        for root in [".", "./", "/"] {
            let tar = Tar::new().dir(root).finish();
            assert_eq!(seen(&tar), vec![Seen::Dir("".into(), meta(0o644))]);
            let tar = Tar::new().file(root, b"").finish();
            assert!(
                matches!(refused(&tar), LayerError::NotADirectory { .. }),
                "{root}"
            );
            let tar = Tar::new().symlink(root, "x").finish();
            assert!(
                matches!(refused(&tar), LayerError::NotADirectory { .. }),
                "{root}"
            );
        }
    }

    #[test]
    fn trailing_slash_means_directory_only_for_old_type_flag() {
        let mut old = raw_header(EntryType::Regular, b"olddir/", b"", 0);
        old.as_old_mut().linkflag = [0];
        old.set_cksum();
        let tar = Tar::new().header(&old, b"").finish();
        assert_eq!(seen(&tar), vec![Seen::Dir("olddir".into(), meta(0o644))]);
        let tar = Tar::new().file("a/", b"").finish();
        assert!(matches!(refused(&tar), LayerError::NotADirectory { .. }));
        let tar = Tar::new().file("f", b"").link("l/", "f").finish();
        assert!(matches!(refused(&tar), LayerError::NotADirectory { .. }));
    }

    #[test]
    fn hardlink_to_earlier_file_is_accepted() {
        let tar = Tar::new()
            .file("bin/busybox", b"elf")
            .link("bin/sh", "bin/busybox")
            .link("/bin/ls", "./bin/sh")
            .link("bin/cat", "/bin//busybox")
            .finish();
        assert_eq!(
            seen(&tar),
            vec![
                file("bin/busybox", b"elf"),
                Seen::Hardlink("bin/sh".into(), "bin/busybox".into()),
                Seen::Hardlink("bin/ls".into(), "bin/sh".into()),
                Seen::Hardlink("bin/cat".into(), "bin/busybox".into()),
            ]
        );
    }

    #[test]
    fn refuses_bad_hardlink_targets() {
        let cases: Vec<(&str, Tar)> = vec![
            ("later", Tar::new().link("a", "b").file("b", b"")),
            ("missing", Tar::new().file("x", b"").link("a", "nope")),
            ("dir", Tar::new().dir("d").link("a", "d")),
            ("root", Tar::new().dir(".").link("a", "/")),
            ("outside", Tar::new().file("x", b"").link("a", "../x")),
            (
                "outside abs",
                Tar::new().file("x", b"").link("a", "/../../x"),
            ),
            ("self", Tar::new().file("a", b"").link("a", "a")),
            ("self new", Tar::new().link("a", "./a")),
            ("empty", Tar::new().file("x", b"").link("a", "")),
            ("symlink", Tar::new().symlink("s", "/x").link("a", "s")),
            (
                "replaced by dir",
                Tar::new().file("f", b"").dir("f").link("a", "f"),
            ),
            (
                "replaced by symlink",
                Tar::new().file("f", b"").symlink("f", "t").link("a", "f"),
            ),
            (
                "replaced by fifo",
                Tar::new()
                    .file("f", b"")
                    .raw(EntryType::Fifo, "f", "", b"")
                    .link("a", "f"),
            ),
            (
                "parent became dir",
                Tar::new().file("p", b"").file("p/c", b"").link("a", "p"),
            ),
            (
                "parent replaced",
                Tar::new()
                    .file("d/f", b"")
                    .symlink("d", "/elsewhere")
                    .link("a", "d/f"),
            ),
            (
                "whiteout file",
                Tar::new().file(".wh.x", b"").link("a", ".wh.x"),
            ),
        ];
        for (what, tar) in cases {
            let err = refused(&tar.finish());
            assert!(
                matches!(err, LayerError::HardlinkTarget { .. }),
                "{what}: {err}"
            );
            assert!(
                err.to_string().contains("not an earlier file"),
                "{what}: {err}"
            );
        }
    }

    #[test]
    fn hardlink_survives_unrelated_entries() {
        let tar = Tar::new()
            .file("d/f", b"1")
            .dir("d")
            .file("d/g", b"2")
            .file("f", b"3")
            .file("f", b"4")
            .link("a", "d/f")
            .link("b", "f")
            .finish();
        let got = seen(&tar);
        assert_eq!(got[5], Seen::Hardlink("a".into(), "d/f".into()));
        assert_eq!(got[6], Seen::Hardlink("b".into(), "f".into()));
    }

    #[test]
    fn symlink_targets_are_verbatim() {
        let tar = Tar::new()
            .symlink("abs", "/etc/passwd")
            .symlink("/up", "../../../../etc/shadow")
            .symlink("dot", "./x/./y//")
            .finish();
        assert_eq!(
            seen(&tar),
            vec![
                Seen::Symlink("abs".into(), "/etc/passwd".into()),
                Seen::Symlink("up".into(), "../../../../etc/shadow".into()),
                Seen::Symlink("dot".into(), "./x/./y//".into()),
            ]
        );
    }

    #[test]
    fn refuses_bad_symlink_targets() {
        let tar = Tar::new().symlink("s", "").finish();
        assert!(matches!(refused(&tar), LayerError::EmptySymlink { .. }));
        let tar = Tar::new()
            .header(&raw_header(EntryType::Symlink, b"s", b"t\xfe", 0), b"")
            .finish();
        assert!(matches!(refused(&tar), LayerError::BadName { .. }));
        let tar = Tar::new()
            .pax(&[("linkpath", b"a\0b")])
            .symlink("s", "t")
            .finish();
        assert!(matches!(refused(&tar), LayerError::BadName { .. }));
    }

    #[test]
    fn drops_devices_and_fifos() {
        let tar = Tar::new()
            .dir("dev")
            .raw(EntryType::Char, "dev/null", "", b"")
            .raw(EntryType::Block, "dev/sda", "", b"")
            .raw(EntryType::Fifo, "run/fifo", "", b"")
            .file("keep", b"k")
            .finish();
        let (got, summary) = read(&tar).unwrap();
        assert_eq!(
            got,
            vec![Seen::Dir("dev".into(), meta(0o644)), file("keep", b"k")]
        );
        assert_eq!(
            summary,
            Summary {
                entries: 2,
                dropped: 3
            }
        );
    }

    #[test]
    fn skips_unknown_types_and_global_headers() {
        let tar = Tar::new()
            .raw(
                EntryType::XGlobalHeader,
                "pax_global_header",
                "",
                b"11 a=bcdef\n",
            )
            .raw(EntryType::new(b'V'), "volume label", "", b"")
            .file("f", b"x")
            .finish();
        let (got, summary) = read(&tar).unwrap();
        assert_eq!(got, vec![file("f", b"x")]);
        assert_eq!(summary.entries, 1);
    }

    #[test]
    fn maps_whiteouts() {
        let tar = Tar::new()
            .file(".wh.gone", b"")
            .file("etc/.wh.old.conf", b"")
            .file("/var/lib/.wh..wh..opq", b"")
            .file("./.wh..wh..opq", b"")
            .link("usr/.wh.x", ".wh.gone")
            .file("a/.wh..wh.plnk", b"")
            .dir(".wh..wh.aufs")
            .dir(".wh..wh.plnk/")
            .file(".wh..wh.plnk/12.34", b"aufs")
            .file(".wh..wh.plnk/.wh..wh..opq", b"")
            .file(".wh...dots", b"")
            .finish();
        let (got, summary) = read(&tar).unwrap();
        assert_eq!(
            got,
            vec![
                Seen::Whiteout("gone".into()),
                Seen::Whiteout("etc/old.conf".into()),
                Seen::Opaque("var/lib".into()),
                Seen::Opaque("".into()),
                Seen::Whiteout("usr/x".into()),
                Seen::Whiteout("..dots".into()),
            ]
        );
        assert_eq!(summary.entries, 6);
    }

    #[test]
    fn refuses_bad_whiteouts() {
        for name in [
            ".wh.",
            "a/.wh.",
            "a/.wh..",
            ".wh...",
            "./x/.wh.",
            ".wh.../x",
            ".wh.d/f",
            "a/.wh.b/.wh.c",
        ] {
            let tar = Tar::new().file(name, b"").finish();
            let err = refused(&tar);
            assert!(
                matches!(err, LayerError::BadWhiteout { .. }),
                "{name}: {err}"
            );
        }
    }

    #[test]
    fn takes_meta_from_header() {
        let mut h = raw_header(EntryType::Regular, b"suid", b"", 0);
        h.set_mode(0o104755);
        h.set_uid(1000);
        h.set_gid(4_000_000);
        h.set_username("someone").unwrap();
        h.set_cksum();
        let tar = Tar::new()
            .header(&h, b"")
            .pax(&[("uid", b"3000000000"), ("gid", b"42")])
            .file("pax", b"")
            .finish();
        let got = seen(&tar);
        let want = |uid, gid, mode| Meta { uid, gid, mode };
        assert_eq!(
            got[0],
            Seen::File("suid".into(), want(1000, 4_000_000, 0o4755), vec![])
        );
        assert_eq!(
            got[1],
            Seen::File("pax".into(), want(3_000_000_000, 42, 0o644), vec![])
        );
    }

    #[test]
    fn refuses_unreadable_header_fields() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "uid > u32",
                Tar::new()
                    .pax(&[("uid", b"4294967296")])
                    .file("f", b"")
                    .finish(),
            ),
            (
                "pax uid text",
                Tar::new().pax(&[("uid", b"root")]).file("f", b"").finish(),
            ),
            (
                "pax sparse",
                Tar::new()
                    .pax(&[("GNU.sparse.major", b"1")])
                    .file("f", b"")
                    .finish(),
            ),
            (
                "pax size text",
                Tar::new().pax(&[("size", b"big")]).file("f", b"").finish(),
            ),
            (
                "pax record",
                Tar::new()
                    .raw(EntryType::XHeader, "x", "", b"99 junk\n")
                    .file("f", b"")
                    .finish(),
            ),
            ("mode", {
                let mut h = raw_header(EntryType::Regular, b"f", b"", 0);
                h.as_old_mut().mode = *b"zzzzzzz\0";
                h.set_cksum();
                Tar::new().header(&h, b"").finish()
            }),
        ];
        for (what, tar) in cases {
            let err = refused(&tar);
            assert!(matches!(err, LayerError::BadHeader { .. }), "{what}: {err}");
        }
    }

    #[test]
    fn long_names_via_gnu_and_pax() {
        let long = format!("{}/{}", "d".repeat(120), "f".repeat(150));
        let mut gnu = Builder::new(Vec::new());
        let mut h = raw_header(EntryType::Regular, b"", b"", 2);
        gnu.append_data(&mut h, format!("./{long}"), &b"hi"[..])
            .unwrap();
        let mut h = raw_header(EntryType::Link, b"", b"", 0);
        gnu.append_link(&mut h, format!("{long}.link"), &long)
            .unwrap();
        let got = seen(&gnu.into_inner().unwrap());
        assert_eq!(got[0], file(&long, b"hi"));
        assert_eq!(got[1], Seen::Hardlink(format!("{long}.link"), long.clone()));

        // A raw GNU longname with an absolute path and its trailing NUL.
        let tar = Tar::new()
            .raw(
                EntryType::GNULongName,
                "././@LongLink",
                "",
                format!("/{long}\0").as_bytes(),
            )
            .file("trunc", b"abs")
            .finish();
        assert_eq!(seen(&tar), vec![file(&long, b"abs")]);

        let tar = Tar::new()
            .pax(&[("path", format!("./{long}").as_bytes())])
            .file("truncated-name", b"pax")
            .pax(&[("path", b"sym"), ("linkpath", long.as_bytes())])
            .symlink("ignored", "short")
            .finish();
        assert_eq!(
            seen(&tar),
            vec![
                file(&long, b"pax"),
                Seen::Symlink("sym".into(), long.clone())
            ]
        );
        let tar = Tar::new()
            .pax(&[("path", format!("{long}/../../../x").as_bytes())])
            .file("innocent", b"")
            .finish();
        assert!(matches!(refused(&tar), LayerError::Escapes { .. }));
    }

    #[test]
    fn content_left_unread_is_skipped() {
        let tar = Tar::new()
            .file("big", &[7u8; 5000])
            .file("next", b"after")
            .finish();
        let mut names = Vec::new();
        let mut second = Vec::new();
        read_layer(&tar[..], DIGEST, |e| -> Result<(), LayerError> {
            if let Entry::File { path, content, .. } = e {
                names.push(path.to_string());
                if path == "next" {
                    content.read_to_end(&mut second).unwrap();
                } else {
                    let mut one = [0u8; 10];
                    content.read_exact(&mut one).unwrap();
                }
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(names, ["big", "next"]);
        assert_eq!(second, b"after");
    }

    #[test]
    fn refuses_truncated_tars() {
        let tar = Tar::new()
            .file("a", b"A")
            .file("big", &[1u8; 3000])
            .finish();
        // Cut inside the second body, inside the second header, inside the padding.
        for cut in [
            512 + 512 + 512 + 1000,
            512 + 512 + 100,
            512 + 512 + 512 + 3000 + 10,
        ] {
            let err = refused(&tar[..cut]);
            assert!(
                matches!(
                    err,
                    LayerError::Unreadable { .. } | LayerError::Malformed { .. }
                ),
                "{cut}: {err}"
            );
        }
        // A visitor that ignores a short read still gets the layer refused.
        let err = read_layer(&tar[..2000], DIGEST, |e| -> Result<(), LayerError> {
            if let Entry::File { content, .. } = e {
                let _ = content.read_to_end(&mut Vec::new());
            }
            Ok(())
        })
        .unwrap_err();
        assert!(
            matches!(err, LayerError::Content { ref path, .. } if path == "big"),
            "{err}"
        );
        assert!(
            err.to_string().contains("truncated: 464 of 3000 bytes"),
            "{err}"
        );
        // Missing end blocks are tolerated, as GNU tar does.
        let end = 512 + 512 + 512 + 3072;
        assert_eq!(seen(&tar[..end]).len(), 2);
    }

    #[test]
    fn refuses_garbage() {
        let mut noise = Vec::new();
        let mut x: u32 = 0x1234_5678;
        for _ in 0..4096 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            noise.push(x as u8);
        }
        let err = refused(&noise);
        assert!(
            matches!(err, LayerError::Unreadable { offset: 512, .. }),
            "{err}"
        );
        let mut tar = Tar::new().file("a", b"A").file("b", b"B").finish();
        tar[1024 + 3] ^= 0x40;
        let err = refused(&tar);
        assert!(err.to_string().contains("checksum"), "{err}");
        assert!(err.to_string().contains("near byte 1536"), "{err}");
    }

    #[test]
    fn empty_stream_is_an_empty_layer() {
        assert_eq!(read(b"").unwrap().1, Summary::default());
        assert_eq!(read(&[0u8; 1024]).unwrap().1, Summary::default());
    }

    #[test]
    fn visitor_errors_pass_through() {
        #[derive(Debug)]
        enum Mine {
            Stop,
            Layer,
        }
        impl From<LayerError> for Mine {
            fn from(_: LayerError) -> Self {
                Mine::Layer
            }
        }
        let tar = Tar::new().file("a", b"").file("b", b"").finish();
        let mut calls = 0;
        let err = read_layer(&tar[..], DIGEST, |_| {
            calls += 1;
            Err(Mine::Stop)
        });
        assert!(matches!(err, Err(Mine::Stop)));
        assert_eq!(calls, 1);
        let bad = Tar::new().file("../x", b"").finish();
        assert!(matches!(
            read_layer(&bad[..], DIGEST, |_| Ok::<(), Mine>(())),
            Err(Mine::Layer)
        ));
    }

    fn decompressed(bytes: &[u8]) -> (Compression, Vec<u8>) {
        let (kind, mut r) = decompress(bytes).unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        (kind, out)
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn decompresses_by_magic() {
        let tar = Tar::new().file("f", b"content").finish();
        assert_eq!(decompressed(&tar), (Compression::None, tar.clone()));
        assert_eq!(decompressed(&gzip(&tar)), (Compression::Gzip, tar.clone()));
        let zst = zstd::encode_all(&tar[..], 3).unwrap();
        assert_eq!(decompressed(&zst), (Compression::Zstd, tar.clone()));
        let mut multi = gzip(&tar[..700]);
        multi.extend(gzip(&tar[700..]));
        assert_eq!(decompressed(&multi), (Compression::Gzip, tar.clone()));
        let mut frames = zstd::encode_all(&tar[..700], 1).unwrap();
        frames.extend(zstd::encode_all(&tar[700..], 1).unwrap());
        assert_eq!(decompressed(&frames), (Compression::Zstd, tar.clone()));
        for short in [&b""[..], b"\x1f", b"abc"] {
            assert_eq!(decompressed(short), (Compression::None, short.to_vec()));
        }
        let (_, plain) = decompress(&multi[..]).unwrap();
        assert_eq!(seen_reader(plain), vec![file("f", b"content")]);
    }

    fn seen_reader(r: impl Read) -> Vec<Seen> {
        let mut bytes = Vec::new();
        let mut r = r;
        r.read_to_end(&mut bytes).unwrap();
        seen(&bytes)
    }

    #[test]
    fn magic_split_across_reads_is_detected() {
        /// Hands out one byte per read.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                match (self.0.split_first(), buf.first_mut()) {
                    (Some((b, rest)), Some(slot)) => {
                        *slot = *b;
                        self.0 = rest;
                        Ok(1)
                    }
                    _ => Ok(0),
                }
            }
        }
        let zst = zstd::encode_all(&b"hello"[..], 1).unwrap();
        let (kind, mut r) = decompress(io::BufReader::with_capacity(1, Trickle(&zst))).unwrap();
        let mut out = String::new();
        r.read_to_string(&mut out).unwrap();
        assert_eq!((kind, out.as_str()), (Compression::Zstd, "hello"));
    }

    #[test]
    fn corrupt_compression_fails_on_read() {
        let mut gz = gzip(&[5u8; 10_000]);
        let mid = gz.len() / 2;
        gz[mid] ^= 0xff;
        let (_, mut r) = decompress(&gz[..]).unwrap();
        assert!(r.read_to_end(&mut Vec::new()).is_err());
        let truncated = &gzip(&[5u8; 10_000])[..20];
        let (_, r) = decompress(truncated).unwrap();
        let err = read_layer(r, DIGEST, |_| Ok::<(), LayerError>(())).unwrap_err();
        assert!(matches!(err, LayerError::Unreadable { .. }), "{err}");
    }

    #[test]
    fn digest_reader_hashes_everything_read() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let want = format!("sha256:{}", hex::encode(Sha256::digest(&data)));
        let mut r = DigestReader::new(&data[..]);
        let mut head = [0u8; 1000];
        r.read_exact(&mut head).unwrap();
        assert_eq!(r.drain().unwrap(), 99_000);
        assert_eq!(r.finish(), (want, 100_000));
        let empty = DigestReader::new(&b""[..]).finish();
        assert_eq!(
            empty.0,
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn digest_covers_bytes_after_tar_end() {
        let mut tar = Tar::new().file("f", b"x").finish();
        tar.extend_from_slice(&[0u8; 4096]);
        let mut r = DigestReader::new(&tar[..]);
        read_layer(&mut r, DIGEST, |_| Ok::<(), LayerError>(())).unwrap();
        r.drain().unwrap();
        let (digest, len) = r.finish();
        assert_eq!(len, tar.len() as u64);
        assert_eq!(
            digest,
            format!("sha256:{}", hex::encode(Sha256::digest(&tar)))
        );
    }
}
