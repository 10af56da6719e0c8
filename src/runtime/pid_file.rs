//! `--pid-file`: the path check, and writing and removing the file.
//!
//! With `--pid-file P`, `berth run` writes its **own** pid to P once the
//! container has started and removes P when it ends (see
//! [`super::foreground`]).

use std::path::Path;

use super::{Result, RuntimeError};

/// Why a `--pid-file` path is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PidFileError {
    /// Not starting with `/`.
    #[error("{path:?} is not an absolute path")]
    NotAbsolute {
        /// The path given.
        path: String,
    },
    /// A `.`, `..` or empty component, or nothing after the last `/`.
    #[error("{path:?} is not a normalised file path (no ., .., // or trailing /)")]
    NotNormal {
        /// The path given.
        path: String,
    },
    /// A character a unit's command line or a reader would split or expand.
    #[error(
        "{path:?} contains {character:?}; use a path without spaces, quotes, \\, $, % or control characters"
    )]
    BadCharacter {
        /// The path given.
        path: String,
        /// The first offending character.
        character: char,
    },
}

/// PURE: checks a pid file path: absolute, normalised, and one word of
/// plain characters, so that it names exactly the file the operator wrote
/// and survives a unit's `ExecStart=` line unchanged.
pub fn check_pid_file(path: &str) -> std::result::Result<(), PidFileError> {
    let owned = || path.to_string();
    let Some(rest) = path.strip_prefix('/') else {
        return Err(PidFileError::NotAbsolute { path: owned() });
    };
    if let Some(character) = path.chars().find(|c| {
        c.is_control()
            || c.is_whitespace()
            || matches!(c, '"' | '\'' | '\\' | '$' | '%' | '`' | ';')
    }) {
        return Err(PidFileError::BadCharacter {
            path: owned(),
            character,
        });
    }
    if rest
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(PidFileError::NotNormal { path: owned() });
    }
    Ok(())
}

/// Writes `pid` to `path` atomically: a temporary file beside it, renamed
/// over it, so a reader sees the old content or the whole new one and a
/// symlink at `path` is replaced, not followed.
pub(crate) fn write_pid_file(path: &Path, pid: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.{pid}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)
        .map_err(|e| RuntimeError::io("creating the pid file", &tmp, e))?;
    let written = f
        .write_all(format!("{pid}\n").as_bytes())
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(RuntimeError::io("writing the pid file", path, e));
    }
    Ok(())
}

/// Removes the pid file if it is there.
pub(crate) fn remove_pid_file(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RuntimeError::io("removing the pid file", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_file_paths_must_be_absolute_normal_plain() {
        for ok in ["/run/container-etcd.pid", "/run/user/1000/x.pid", "/a"] {
            assert_eq!(check_pid_file(ok), Ok(()), "{ok}");
        }
        for bad in ["run/x.pid", "", "x", "./x"] {
            assert!(
                matches!(check_pid_file(bad), Err(PidFileError::NotAbsolute { .. })),
                "{bad}"
            );
        }
        for bad in ["/", "/run/", "/run//x", "/run/./x", "/run/../etc/x", "/.."] {
            assert!(
                matches!(check_pid_file(bad), Err(PidFileError::NotNormal { .. })),
                "{bad}"
            );
        }
        for (bad, c) in [
            ("/run/a b", ' '),
            ("/run/a\nb", '\n'),
            ("/run/$X", '$'),
            ("/run/%n.pid", '%'),
            ("/run/\"x", '"'),
            ("/run/a\\b", '\\'),
        ] {
            assert_eq!(
                check_pid_file(bad),
                Err(PidFileError::BadCharacter {
                    path: bad.into(),
                    character: c
                }),
                "{bad}"
            );
        }
    }

    #[test]
    fn pid_file_is_replaced_atomically_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.pid");
        std::os::unix::fs::symlink("/nonexistent/target", &p).unwrap();
        write_pid_file(&p, 42).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "42\n");
        assert!(!std::fs::symlink_metadata(&p).unwrap().is_symlink());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        remove_pid_file(&p).unwrap();
        remove_pid_file(&p).unwrap();
        assert!(!p.exists());
    }
}
