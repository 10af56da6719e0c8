//! What [`Root`] changes: directories, links, renames, removals and the one
//! atomic file write. The last component is acted on with `*at` calls on
//! its parent, never followed.

use std::io::Write as _;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use super::{Kind, Root, RootError};

/// Per-process counter of temp names.
static TEMP: AtomicU64 = AtomicU64::new(0);

/// How [`Root::open_file`] opens a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Read and write; created (empty) when missing, never truncated.
    ReadWriteCreate,
    /// Write only, created or truncated.
    WriteTruncate,
    /// Read only.
    Read,
}

impl Root {
    /// Creates the directory `path` with `mode` (exactly: the umask is undone).
    pub fn create_dir(&self, path: &Path, mode: u32) -> Result<(), RootError> {
        let (dir, name) = self.parent(path)?;
        rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(mode))
            .map_err(|e| self.err(path, "creating the directory", e))?;
        let fd = rustix::fs::openat(
            &dir,
            name,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| self.err(path, "opening the new directory", e))?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
            .map_err(|e| self.err(path, "setting the mode", e))
    }

    /// Creates `path` and its missing ancestors (mode 0755; `path` itself
    /// `mode`), resolving what exists inside the root. Returns the ones it
    /// created, outermost first, as seen inside the root.
    pub fn create_dir_all(&self, path: &Path, mode: u32) -> Result<Vec<PathBuf>, RootError> {
        let missing = self.missing_dirs(path)?;
        for d in &missing {
            let m = if d == path { mode } else { 0o755 };
            match self.create_dir(d, m) {
                Err(RootError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::AlreadyExists => {}
                r => r?,
            }
        }
        Ok(missing)
    }

    /// The directories [`Root::create_dir_all`] would make for `path`,
    /// outermost first; a dangling symlink on the way is refused (its
    /// target is not made on its behalf), as is a loop.
    pub fn missing_dirs(&self, path: &Path) -> Result<Vec<PathBuf>, RootError> {
        let mut missing = Vec::new();
        let mut cur = Some(path);
        while let Some(d) = cur {
            if d.file_name().is_none() {
                break;
            }
            match self.open_in(d, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()) {
                Ok(_) => break,
                Err(Errno::NOENT) => {}
                Err(e) => return Err(self.err(d, "opening the directory", e)),
            }
            if let Some(e) = self.lstat(d)? {
                // A dangling symlink: its target is not made on its behalf.
                if e.kind == Kind::Symlink {
                    return Err(RootError::Dangling {
                        path: Root::show(d),
                        target: self.read_link(d).unwrap_or_default(),
                        root: self.host.clone(),
                    });
                }
            }
            missing.push(d.to_path_buf());
            cur = d.parent();
        }
        missing.reverse();
        Ok(missing)
    }

    /// Makes the symlink `path` pointing at `target` (stored as given:
    /// resolution happens when it is used, inside the root).
    pub fn symlink(&self, target: &Path, path: &Path) -> Result<(), RootError> {
        let (dir, name) = self.parent(path)?;
        rustix::fs::symlinkat(target, &dir, name)
            .map_err(|e| self.err(path, "creating the symlink", e))
    }

    /// Renames `from` to `to` (replacing a file at `to`).
    pub fn rename(&self, from: &Path, to: &Path) -> Result<(), RootError> {
        let (fdir, fname) = self.parent(from)?;
        let (tdir, tname) = self.parent(to)?;
        rustix::fs::renameat(&fdir, fname, &tdir, tname)
            .map_err(|e| self.err(to, "renaming onto", e))
    }

    /// Renames `from` to `to`, failing when `to` exists.
    pub fn rename_noreplace(&self, from: &Path, to: &Path) -> Result<(), RootError> {
        let (fdir, fname) = self.parent(from)?;
        let (tdir, tname) = self.parent(to)?;
        match rustix::fs::renameat_with(
            &fdir,
            fname,
            &tdir,
            tname,
            rustix::fs::RenameFlags::NOREPLACE,
        ) {
            // A filesystem without RENAME_NOREPLACE (NFS): look, then rename.
            Err(Errno::INVAL) => {
                if rustix::fs::statat(&tdir, tname, AtFlags::SYMLINK_NOFOLLOW).is_ok() {
                    return Err(self.err(to, "renaming onto", Errno::EXIST));
                }
                rustix::fs::renameat(&fdir, fname, &tdir, tname)
            }
            r => r,
        }
        .map_err(|e| self.err(to, "renaming onto", e))
    }

    /// Removes the file, symlink or directory tree at `path`; absent is fine.
    pub fn remove(&self, path: &Path) -> Result<(), RootError> {
        let (dir, name) = match self.parent(path) {
            Ok(p) => p,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        remove_at(&dir, name).map_err(|e| self.err(path, "removing", e))
    }

    /// Sets the mode of `path` itself (a symlink there is refused).
    pub fn set_mode(&self, path: &Path, mode: u32) -> Result<(), RootError> {
        let (dir, name) = self.parent(path)?;
        let fd = rustix::fs::openat(
            &dir,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| self.err(path, "opening to set the mode", e))?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
            .map_err(|e| self.err(path, "setting the mode", e))
    }

    /// Gives the directory `path` (resolved inside the root, so a link to
    /// a directory counts) exactly `mode`, when it has another.
    pub fn ensure_dir_mode(&self, path: &Path, mode: u32) -> Result<(), RootError> {
        let fd = self.open_dir(path)?;
        let st = rustix::fs::fstat(&fd).map_err(|e| self.err(path, "looking at", e))?;
        if st.st_mode & 0o7777 != mode {
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
                .map_err(|e| self.err(path, "setting the mode", e))?;
        }
        Ok(())
    }

    /// Opens the file `path` itself (`O_NOFOLLOW`: a symlink there is an
    /// error, never followed), creating it with `mode` where `how` says.
    pub fn open_file(
        &self,
        path: &Path,
        how: OpenMode,
        mode: u32,
    ) -> Result<std::fs::File, RootError> {
        let (dir, name) = self.parent(path)?;
        let flags = match how {
            OpenMode::ReadWriteCreate => OFlags::RDWR | OFlags::CREATE,
            OpenMode::WriteTruncate => OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC,
            OpenMode::Read => OFlags::RDONLY,
        };
        let fd = rustix::fs::openat(
            &dir,
            name,
            flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )
        .map_err(|e| match e {
            Errno::LOOP => RootError::IsSymlink {
                path: Root::show(path),
                root: self.host.clone(),
            },
            e => self.err(path, "opening", e),
        })?;
        Ok(std::fs::File::from(fd))
    }

    /// Writes a new file `path` (which must not exist: `O_EXCL`) with
    /// exactly `mode`, fsynced.
    pub fn write_new(&self, path: &Path, content: &[u8], mode: u32) -> Result<(), RootError> {
        let (dir, name) = self.parent(path)?;
        write_excl(&dir, name, content, mode).map_err(|e| self.err(path, "writing", e))
    }

    /// A temp name beside `path`, unique to this process and call.
    pub fn temp_name(path: &Path) -> PathBuf {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let n = TEMP.fetch_add(1, Ordering::Relaxed);
        path.with_file_name(format!(".{name}.berth-{}-{n}.tmp", std::process::id()))
    }

    /// Replaces (or creates) the file `path` with `content` and exactly
    /// `mode`, atomically: a temp file beside it unique to this process,
    /// fsynced, renamed over `path`, then the directory fsynced.
    pub fn write_atomic(&self, path: &Path, content: &[u8], mode: u32) -> Result<(), RootError> {
        let (dir, name) = self.parent(path)?;
        let tmp = Root::temp_name(Path::new(name));
        let tmp_name = tmp.as_os_str();
        write_excl(&dir, tmp_name, content, mode).map_err(|e| self.err(path, "writing", e))?;
        if let Err(e) = rustix::fs::renameat(&dir, tmp_name, &dir, name) {
            let _ = rustix::fs::unlinkat(&dir, tmp_name, AtFlags::empty());
            return Err(self.err(path, "renaming the new file into place", e));
        }
        rustix::fs::fsync(&dir).map_err(|e| self.err(path, "syncing the directory", e))
    }

    /// fsyncs the directory `path`, so renames in it are durable.
    pub fn sync_dir(&self, path: &Path) -> Result<(), RootError> {
        let fd = self.open_dir(path)?;
        rustix::fs::fsync(&fd).map_err(|e| self.err(path, "syncing the directory", e))
    }
}

/// `O_EXCL` create of `name` in `dir`, write, fchmod `mode`, fsync.
fn write_excl(
    dir: &OwnedFd,
    name: &std::ffi::OsStr,
    content: &[u8],
    mode: u32,
) -> Result<(), std::io::Error> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode & 0o777),
    )?;
    let mut f = std::fs::File::from(fd);
    let written = f
        .write_all(content)
        .and_then(|_| rustix::fs::fchmod(&f, Mode::from_raw_mode(mode)).map_err(Into::into))
        .and_then(|_| f.sync_all());
    if written.is_err() {
        let _ = rustix::fs::unlinkat(dir, name, AtFlags::empty());
    }
    written
}

/// Removes `name` in `dir`: a file or symlink, or a directory tree (its
/// entries removed through their own fds, never following a link).
fn remove_at<Fd: AsFd>(dir: Fd, name: &std::ffi::OsStr) -> Result<(), std::io::Error> {
    let dir = dir.as_fd();
    let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::Directory {
        return rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(Into::into);
    }
    let sub = rustix::fs::openat(
        dir,
        name,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut names = Vec::new();
    {
        let mut list = rustix::fs::Dir::read_from(&sub)?;
        while let Some(e) = list.read() {
            let e = e?;
            let n = e.file_name().to_bytes();
            if n != b"." && n != b".." {
                names.push(std::ffi::OsString::from(
                    <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(n),
                ));
            }
        }
    }
    for n in names {
        remove_at(&sub, &n)?;
    }
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR).map_err(Into::into)
}
