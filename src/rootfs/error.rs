//! What can go wrong below a root, named as seen inside it.

use std::path::PathBuf;

use crate::ErrorKind;

/// A failure below a root; paths are as seen inside the root.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    /// The root directory itself cannot be opened.
    #[error(
        "cannot open the root directory {root}: {source}; check --root (berth does not create it)"
    )]
    OpenRoot {
        /// The root on the host.
        root: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A path has no last component berth can act on (`/`, `..`, `.`).
    #[error("{path}: not a path to a file berth can write (it ends in `/`, `.` or `..`)")]
    BadPath {
        /// The path, as seen inside the root.
        path: String,
    },
    /// Symlinks that point at each other, or too many of them.
    #[error("{path}: a symlink loop below the root {root}; remove or fix the link")]
    Loop {
        /// The path, as seen inside the root.
        path: String,
        /// The root on the host.
        root: PathBuf,
    },
    /// A file berth opens itself (journal, lock) is a symlink.
    #[error(
        "{path} is a symlink below the root {root}; berth does not follow links there: remove it"
    )]
    IsSymlink {
        /// The path, as seen inside the root.
        path: String,
        /// The root on the host.
        root: PathBuf,
    },
    /// The kernel (or a seccomp filter around berth) has no `openat2`.
    #[error(
        "{path}: this kernel has no openat2(2), which berth needs to resolve paths inside \
         the root {root}; run berth on Linux 5.6 or newer (and allow openat2 in any seccomp filter)"
    )]
    NoOpenat2 {
        /// The path, as seen inside the root.
        path: String,
        /// The root on the host.
        root: PathBuf,
    },
    /// A component on the way is not a directory.
    #[error("{path}: a parent is not a directory below the root {root}; move it aside")]
    NotADirectory {
        /// The path, as seen inside the root.
        path: String,
        /// The root on the host.
        root: PathBuf,
    },
    /// A symlink whose target does not exist, where berth needs a directory.
    #[error(
        "{path} is a symlink to {target}, which does not exist below the root {root}; \
         create the target or remove the link"
    )]
    Dangling {
        /// The symlink, as seen inside the root.
        path: String,
        /// Its target.
        target: PathBuf,
        /// The root on the host.
        root: PathBuf,
    },
    /// A path resolved to a place outside the root (only possible if the
    /// root or a parent of it is moved while berth works).
    #[error("{path} resolves to {resolved}, outside the root {root}; refusing")]
    Outside {
        /// The path, as seen inside the root.
        path: String,
        /// Where it resolved to on the host.
        resolved: PathBuf,
        /// The root on the host.
        root: PathBuf,
    },
    /// A file berth reads with a bound is larger than the bound.
    #[error("{path} (below {root}) is larger than {limit} bytes; refusing to read it")]
    TooLarge {
        /// The path, as seen inside the root.
        path: String,
        /// The bound, in bytes.
        limit: u64,
        /// The root on the host.
        root: PathBuf,
    },
    /// Where berth reads a file, something else is (a directory, a FIFO,
    /// a device).
    #[error("{path} (below {root}) is not a regular file; refusing to read it")]
    NotAFile {
        /// The path, as seen inside the root.
        path: String,
        /// The root on the host.
        root: PathBuf,
    },
    /// Any other failure of one operation.
    #[error("{path} (below {root}): {op}: {source}")]
    Io {
        /// The path, as seen inside the root.
        path: String,
        /// What berth was doing.
        op: &'static str,
        /// The root on the host.
        root: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

impl RootError {
    /// The exit-code kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RootError::BadPath { .. } => ErrorKind::Usage,
            RootError::Loop { .. }
            | RootError::IsSymlink { .. }
            | RootError::NotADirectory { .. }
            | RootError::Dangling { .. }
            | RootError::Outside { .. }
            | RootError::NotAFile { .. } => ErrorKind::Conflict,
            RootError::TooLarge { .. } => ErrorKind::Integrity,
            RootError::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists => {
                ErrorKind::Conflict
            }
            RootError::OpenRoot { .. } | RootError::NoOpenat2 { .. } | RootError::Io { .. } => {
                ErrorKind::Failed
            }
        }
    }

    /// Whether this is "no such file or directory".
    pub fn is_not_found(&self) -> bool {
        matches!(self, RootError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}
