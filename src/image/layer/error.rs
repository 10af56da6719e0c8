//! [`LayerError`]: why a layer cannot be imported.

use std::io;

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
        cap: crate::image::limits::Cap,
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
