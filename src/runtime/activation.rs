//! Socket activation: systemd's `LISTEN_*` fds handed to the container.
//!
//! The fds are berth's only when `LISTEN_PID` is berth's pid (sd_listen_fds
//! semantics). Either way every `LISTEN_*` variable leaves berth's own
//! environment: libcontainer reads `LISTEN_FDS` itself (without the pid check,
//! and dropping `LISTEN_FDNAMES`) and would count the fds a second time, and
//! an external runtime must not see them either. The container gets fresh
//! `LISTEN_FDS=n LISTEN_PID=1 LISTEN_FDNAMES=…` in its spec instead, and every
//! other fd of berth is close-on-exec.

use std::os::fd::RawFd;

use nix::fcntl::{fcntl, FcntlArg, FdFlag};

/// The fds systemd passed to berth.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listen {
    /// How many fds, starting at 3.
    pub fds: u32,
    /// `LISTEN_FDNAMES`, when systemd set it.
    pub names: Option<String>,
}

/// PURE: what `LISTEN_PID`/`LISTEN_FDS`/`LISTEN_FDNAMES` mean for process `pid`.
pub fn interpret(pid: Option<&str>, fds: Option<&str>, names: Option<&str>, me: u32) -> Listen {
    let mine = pid.and_then(|p| p.trim().parse::<u32>().ok()) == Some(me);
    let n = fds.and_then(|f| f.trim().parse::<u32>().ok()).unwrap_or(0);
    if !mine || n == 0 {
        return Listen::default();
    }
    Listen {
        fds: n,
        names: names.map(str::to_string),
    }
}

impl Listen {
    /// Reads and removes the `LISTEN_*` variables from berth's environment.
    pub fn take() -> Listen {
        let get = |k: &str| std::env::var(k).ok();
        let l = interpret(
            get("LISTEN_PID").as_deref(),
            get("LISTEN_FDS").as_deref(),
            get("LISTEN_FDNAMES").as_deref(),
            std::process::id(),
        );
        for k in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
            std::env::remove_var(k);
        }
        l
    }
}

/// Marks every open fd from `3 + keep` on close-on-exec, so only stdio and
/// the activation fds reach the container (or the external runtime).
/// One `close_range(CLOSE_RANGE_CLOEXEC)` (Linux 5.11); on older kernels,
/// each fd listed in `/proc/self/fd`.
pub fn cloexec_from(keep: u32) -> std::io::Result<()> {
    if cloexec_range(3 + keep) {
        return Ok(());
    }
    cloexec_listed(3 + keep as RawFd)
}

/// `close_range(first, ~0, CLOSE_RANGE_CLOEXEC)`; false if the kernel has no
/// such call or flag (ENOSYS before 5.9, EINVAL before 5.11).
#[allow(unsafe_code)]
fn cloexec_range(first: u32) -> bool {
    // SAFETY: with CLOSE_RANGE_CLOEXEC the call closes nothing, it only sets
    // FD_CLOEXEC on open fds, so no fd owned elsewhere in the process becomes
    // invalid; the arguments are plain integers.
    let r = unsafe { libc::close_range(first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as libc::c_int) };
    r == 0
}

fn cloexec_listed(first: RawFd) -> std::io::Result<()> {
    let mut fds: Vec<RawFd> = Vec::new();
    for e in std::fs::read_dir("/proc/self/fd")? {
        if let Some(fd) = e?
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<RawFd>().ok())
        {
            if fd >= first {
                fds.push(fd);
            }
        }
    }
    for fd in fds {
        // The directory handle read_dir used is closed by now: EBADF is fine.
        match fcntl(fd, FcntlArg::F_GETFD) {
            Ok(flags) => {
                let flags = FdFlag::from_bits_truncate(flags) | FdFlag::FD_CLOEXEC;
                fcntl(fd, FcntlArg::F_SETFD(flags))?;
            }
            Err(nix::errno::Errno::EBADF) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    /// An fd without FD_CLOEXEC, as one inherited from a parent would be.
    fn inheritable() -> std::fs::File {
        let f = std::fs::File::open("/dev/null").unwrap();
        fcntl(f.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::empty())).unwrap();
        f
    }

    fn is_cloexec(fd: &std::fs::File) -> bool {
        let flags = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFD).unwrap();
        FdFlag::from_bits_truncate(flags).contains(FdFlag::FD_CLOEXEC)
    }

    #[test]
    fn inherited_fds_become_close_on_exec() {
        // From this fd on only, to leave the other tests' fds alone.
        let fd = inheritable();
        assert!(!is_cloexec(&fd));
        cloexec_from(fd.as_raw_fd() as u32 - 3).unwrap();
        assert!(is_cloexec(&fd));
        // The fallback for kernels without close_range's CLOEXEC flag.
        let fd = inheritable();
        cloexec_listed(fd.as_raw_fd()).unwrap();
        assert!(is_cloexec(&fd));
    }

    #[test]
    fn only_for_this_pid() {
        assert_eq!(interpret(Some("7"), Some("2"), Some("a:b"), 7).fds, 2);
        assert_eq!(
            interpret(Some("7"), Some("2"), Some("a:b"), 7)
                .names
                .as_deref(),
            Some("a:b")
        );
        assert_eq!(interpret(Some("8"), Some("2"), None, 7), Listen::default());
        assert_eq!(interpret(None, Some("2"), None, 7), Listen::default());
        assert_eq!(interpret(Some("7"), Some("x"), None, 7), Listen::default());
        assert_eq!(interpret(Some("7"), Some("0"), None, 7), Listen::default());
    }
}
