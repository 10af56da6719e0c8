//! The one way berth touches files below a root (`/`, or `--root DIR`).
//!
//! A [`Root`] is the root directory opened once. Every path below it is
//! "as seen inside the root" (`/etc/systemd/system/x.service`) and is
//! resolved by the kernel with `openat2(RESOLVE_IN_ROOT |
//! RESOLVE_NO_MAGICLINKS)`: a symlink met on the way resolves *inside* the
//! root, as systemd's `--root` (chase) does. An absolute link
//! `/etc/x -> /usr/lib/x` in an offline image root means the root's
//! `/usr/lib/x`, `..` stops at the root, and with the root `/` this is
//! ordinary resolution: one code path for both.
//!
//! Why openat2 and not cap-std: cap-std *refuses* absolute symlinks and
//! `..` past its directory, which breaks real roots (every distribution
//! has absolute links in `/etc`) and `/` itself; `RESOLVE_IN_ROOT` resolves
//! them inside the root instead, so a link planted in a root can redirect a
//! write only to another place in the same root, never out of it.
//!
//! The last component of a path is never followed: operations open its
//! parent directory as above and act on the name with `*at` calls
//! (`mkdirat`, `unlinkat`, `symlinkat`, `renameat`, `readlinkat`, `statat`
//! without following, `openat` with `O_NOFOLLOW`). A symlink there is acted
//! on as the link itself.
//!
//! Files are replaced by [`Root::write_atomic`]: a temp file with a name
//! unique to this process (`.NAME.berth-PID-N.tmp`, created `O_EXCL`, so a
//! file of the operator's called `NAME.tmp` is never touched), written,
//! fsynced, given its mode, renamed over the target, and the directory
//! fsynced.

mod bounded;
mod error;
mod ops;
pub use error::RootError;
pub use ops::OpenMode;
#[cfg(test)]
mod tests;

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// The root directory, opened once; cheap to clone.
#[derive(Debug, Clone)]
pub struct Root {
    dir: Arc<OwnedFd>,
    host: PathBuf,
}

/// Kinds of entry [`Root::lstat`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symlink (never followed).
    Symlink,
    /// Anything else (socket, fifo, device).
    Other,
}

/// What [`Root::lstat`] found at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Its kind.
    pub kind: Kind,
    /// Its permission bits (`0o7777`).
    pub mode: u32,
}

/// How a path splits: its parent (as seen inside the root) and last name.
pub(crate) struct Split<'a> {
    parent: PathBuf,
    name: &'a OsStr,
}

/// `path` as components below the root: leading `/` and `.` dropped.
fn relative(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| matches!(c, Component::Normal(_) | Component::ParentDir))
        .collect()
}

impl Root {
    /// Opens `host` (a directory) as the root.
    pub fn open(host: &Path) -> Result<Root, RootError> {
        let dir = rustix::fs::open(
            host,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| RootError::OpenRoot {
            root: host.to_path_buf(),
            source: e.into(),
        })?;
        Ok(Root {
            dir: Arc::new(dir),
            host: host.to_path_buf(),
        })
    }

    /// The root on the host.
    pub fn host(&self) -> &Path {
        &self.host
    }

    /// `path` for messages: as seen inside the root, absolute.
    pub fn show(path: &Path) -> String {
        format!("/{}", relative(path).display())
    }

    /// The error of `op` on `path`, typed where the cause says more.
    pub(crate) fn err(
        &self,
        path: &Path,
        op: &'static str,
        e: impl Into<std::io::Error>,
    ) -> RootError {
        let source: std::io::Error = e.into();
        let shown = Self::show(path);
        match Errno::from_io_error(&source) {
            Some(Errno::LOOP) => RootError::Loop {
                path: shown,
                root: self.host.clone(),
            },
            Some(Errno::NOTDIR) => RootError::NotADirectory {
                path: shown,
                root: self.host.clone(),
            },
            Some(Errno::NOSYS) => RootError::NoOpenat2 {
                path: shown,
                root: self.host.clone(),
            },
            _ => RootError::Io {
                path: shown,
                op,
                root: self.host.clone(),
                source,
            },
        }
    }

    /// Opens `path` resolved inside the root (every symlink on the way,
    /// the last component included, resolves inside it).
    pub(crate) fn open_in(&self, path: &Path, flags: OFlags, mode: Mode) -> Result<OwnedFd, Errno> {
        let rel = relative(path);
        let rel: &Path = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &rel
        };
        let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        // EAGAIN: a rename elsewhere raced the lookup; the kernel asks to retry.
        let mut tries = 0;
        loop {
            match rustix::fs::openat2(
                self.dir.as_fd(),
                rel,
                flags | OFlags::CLOEXEC,
                mode,
                resolve,
            ) {
                Err(Errno::AGAIN) if tries < 16 => tries += 1,
                r => return r,
            }
        }
    }

    /// Opens the directory `path` (resolved inside the root).
    pub fn open_dir(&self, path: &Path) -> Result<OwnedFd, RootError> {
        self.open_in(path, OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty())
            .map_err(|e| self.err(path, "opening the directory", e))
    }

    /// Splits `path` into parent and last name; `/`, `.` and `..` have none.
    pub(crate) fn split<'a>(&self, path: &'a Path) -> Result<Split<'a>, RootError> {
        let bad = || RootError::BadPath {
            path: Self::show(path),
        };
        match path.components().next_back() {
            Some(Component::Normal(name)) => Ok(Split {
                parent: path.parent().map(Path::to_path_buf).unwrap_or_default(),
                name,
            }),
            _ => Err(bad()),
        }
    }

    /// The parent directory of `path` opened, and the last name.
    pub(crate) fn parent<'a>(&self, path: &'a Path) -> Result<(OwnedFd, &'a OsStr), RootError> {
        let s = self.split(path)?;
        let fd = self.open_dir(&s.parent)?;
        Ok((fd, s.name))
    }

    /// What is at `path` (the last component not followed); `None` when
    /// nothing is (or a parent is missing).
    pub fn lstat(&self, path: &Path) -> Result<Option<Entry>, RootError> {
        let (dir, name) = match self.parent(path) {
            Ok(p) => p,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        match rustix::fs::statat(&dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => {
                let ft = rustix::fs::FileType::from_raw_mode(st.st_mode);
                let kind = match ft {
                    rustix::fs::FileType::RegularFile => Kind::File,
                    rustix::fs::FileType::Directory => Kind::Dir,
                    rustix::fs::FileType::Symlink => Kind::Symlink,
                    _ => Kind::Other,
                };
                Ok(Some(Entry {
                    kind,
                    mode: st.st_mode & 0o7777,
                }))
            }
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(self.err(path, "looking at", e)),
        }
    }

    /// Whether `path`, resolved inside the root, is a regular file.
    pub fn is_file(&self, path: &Path) -> bool {
        self.open_in(path, OFlags::PATH, Mode::empty())
            .and_then(|fd| rustix::fs::fstat(&fd))
            .is_ok_and(|st| {
                rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile
            })
    }

    /// Whether anything (a dangling symlink included) is at `path`.
    pub fn exists(&self, path: &Path) -> bool {
        matches!(self.lstat(path), Ok(Some(_)))
    }

    /// The target of the symlink `path`.
    pub fn read_link(&self, path: &Path) -> Result<PathBuf, RootError> {
        let (dir, name) = self.parent(path)?;
        let t = rustix::fs::readlinkat(&dir, name, Vec::new())
            .map_err(|e| self.err(path, "reading the symlink", e))?;
        Ok(PathBuf::from(OsStr::from_bytes(t.as_bytes())))
    }

    /// The content of the regular file `path` (resolved inside the root).
    pub fn read(&self, path: &Path) -> Result<Vec<u8>, RootError> {
        let fd = self
            .open_in(path, OFlags::RDONLY, Mode::empty())
            .map_err(|e| self.err(path, "opening", e))?;
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut std::fs::File::from(fd), &mut out)
            .map_err(|e| self.err(path, "reading", e))?;
        Ok(out)
    }

    /// The content of `path` when it is a regular file itself (a symlink
    /// there is not followed: `None`), or `None` when absent.
    pub fn read_file_nofollow(&self, path: &Path) -> Result<Option<Vec<u8>>, RootError> {
        let (dir, name) = match self.parent(path) {
            Ok(p) => p,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let fd = match rustix::fs::openat(
            &dir,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::LOOP) => return Ok(None),
            Err(e) => return Err(self.err(path, "opening", e)),
        };
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut std::fs::File::from(fd), &mut out)
            .map_err(|e| self.err(path, "reading", e))?;
        Ok(Some(out))
    }

    /// The names in the directory `path` (resolved inside the root), sorted.
    pub fn read_dir(&self, path: &Path) -> Result<Vec<OsString>, RootError> {
        let fd = self.open_dir(path)?;
        let mut dir = rustix::fs::Dir::new(fd).map_err(|e| self.err(path, "listing", e))?;
        let mut names = Vec::new();
        while let Some(entry) = dir.read() {
            let entry = entry.map_err(|e| self.err(path, "listing", e))?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(OsStr::from_bytes(name).to_os_string());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Where `path` is on the host: its longest existing prefix resolved
    /// inside the root, then the missing rest. A symlink in the missing
    /// rest (dangling) is refused, so creating the rest through this root
    /// makes exactly the returned path.
    pub fn resolve(&self, path: &Path) -> Result<PathBuf, RootError> {
        let rel = relative(path);
        let comps: Vec<&OsStr> = rel.iter().collect();
        let mut n = comps.len();
        let fd = loop {
            let prefix: PathBuf = comps[..n].iter().collect();
            match self.open_in(&prefix, OFlags::PATH, Mode::empty()) {
                Ok(fd) => break fd,
                Err(Errno::NOENT) if n > 0 => {
                    let here: PathBuf = comps[..n].iter().collect();
                    if let Ok(Some(Entry {
                        kind: Kind::Symlink,
                        ..
                    })) = self.lstat(&here)
                    {
                        return Err(RootError::Dangling {
                            path: Self::show(&here),
                            target: self.read_link(&here).unwrap_or_default(),
                            root: self.host.clone(),
                        });
                    }
                    n -= 1;
                }
                Err(e) => return Err(self.err(&prefix, "resolving", e)),
            }
        };
        let mut real = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .map_err(|e| self.err(path, "resolving (is /proc mounted?)", e))?;
        let top = self.real_root(path)?;
        if !real.starts_with(&top) {
            return Err(RootError::Outside {
                path: Self::show(path),
                resolved: real,
                root: self.host.clone(),
            });
        }
        for c in comps.get(n..).unwrap_or_default() {
            if *c == ".." {
                return Err(RootError::BadPath {
                    path: Self::show(path),
                });
            }
            real.push(c);
        }
        Ok(real)
    }

    /// The root's own real path on the host.
    fn real_root(&self, path: &Path) -> Result<PathBuf, RootError> {
        std::fs::read_link(format!("/proc/self/fd/{}", self.dir.as_raw_fd()))
            .map_err(|e| self.err(path, "resolving the root (is /proc mounted?)", e))
    }
}
