//! Bounded reads of files below a root: configuration and signatures that
//! a hostile root may make endless, or a FIFO that would never answer.

use std::io::Read as _;
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags};

use super::{Root, RootError};

impl Root {
    /// The content of the regular file `path` (resolved inside the root, as
    /// [`Root::read`]), at most `limit` bytes: a larger file is
    /// [`RootError::TooLarge`], anything but a regular file (a directory, a
    /// FIFO, a device) is [`RootError::NotAFile`], and neither is read.
    pub fn read_at_most(&self, path: &Path, limit: u64) -> Result<Vec<u8>, RootError> {
        // O_NONBLOCK: opening a FIFO must not wait for a writer.
        let fd = self
            .open_in(path, OFlags::RDONLY | OFlags::NONBLOCK, Mode::empty())
            .map_err(|e| self.err(path, "opening", e))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| self.err(path, "looking at", e))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(RootError::NotAFile {
                path: Self::show(path),
                root: self.host.clone(),
            });
        }
        let too_large = || RootError::TooLarge {
            path: Self::show(path),
            limit,
            root: self.host.clone(),
        };
        if u64::try_from(st.st_size).unwrap_or(u64::MAX) > limit {
            return Err(too_large());
        }
        let mut out = Vec::new();
        // One byte past the limit shows a file that grew since fstat.
        std::fs::File::from(fd)
            .take(limit.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| self.err(path, "reading", e))?;
        if out.len() as u64 > limit {
            return Err(too_large());
        }
        Ok(out)
    }
}
