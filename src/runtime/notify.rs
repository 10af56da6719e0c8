//! sd_notify relay: a socket for the container, messages to systemd from berth.
//!
//! systemd accepts notifications only from the unit's main PID (the default
//! `NotifyAccess=main`), and berth is that PID. So berth binds its own
//! datagram socket in a private directory, the container gets that directory
//! bind-mounted at `/run/notify` with `NOTIFY_SOCKET=/run/notify/notify.sock`,
//! and berth re-sends each message to the real `NOTIFY_SOCKET` from its own
//! process with `MAINPID=<berth's pid>` appended. A `MAINPID=` from the
//! container is dropped: it names a pid in the container's namespace, and
//! handing systemd the container's pid would make it stop accepting berth's
//! own messages. File descriptors (`FDSTORE=1`, `BARRIER=1`) are passed on.

use std::cell::Cell;
use std::ffi::{OsStr, OsString};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags, UnixAddr};

/// The socket's file name inside the relay directory.
pub const SOCKET_NAME: &str = "notify.sock";

/// Assignments relayed to systemd; anything else from the container is dropped.
pub const RELAYED: &[&str] = &[
    "READY",
    "RELOADING",
    "STOPPING",
    "STATUS",
    "ERRNO",
    "BUSERROR",
    "MONOTONIC_USEC",
    "WATCHDOG",
    "WATCHDOG_USEC",
    "EXTEND_TIMEOUT_USEC",
    "BARRIER",
    "FDSTORE",
    "FDSTOREREMOVE",
    "FDNAME",
    "FDPOLL",
    "NOTIFYACCESS",
    "EXIT_STATUS",
];

/// Rewrites one message from the container for systemd: keeps the
/// [`RELAYED`] assignments in order and appends `MAINPID=mainpid`. `None`
/// when nothing is left to send.
pub fn rewrite(msg: &[u8], mainpid: u32) -> Option<Vec<u8>> {
    rewrite_holding(msg, mainpid, false)
}

/// [`rewrite`], dropping `READY=` too when `hold_ready` (a health check
/// has not passed yet: berth sends `READY=1` itself when one does).
pub fn rewrite_holding(msg: &[u8], mainpid: u32, hold_ready: bool) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(msg);
    let kept: Vec<&str> = text
        .split('\n')
        .filter(|l| {
            l.split_once('=')
                .is_some_and(|(k, _)| RELAYED.contains(&k) && !(hold_ready && k == "READY"))
        })
        .collect();
    if kept.is_empty() {
        return None;
    }
    let mut out = kept.join("\n");
    out.push_str(&format!("\nMAINPID={mainpid}"));
    Some(out.into_bytes())
}

/// Where systemd listens: a path, or an abstract name (`@…`).
fn upstream_addr(socket: &OsStr) -> nix::Result<UnixAddr> {
    let b = socket.as_bytes();
    match b.strip_prefix(b"@") {
        Some(name) => UnixAddr::new_abstract(name),
        None => UnixAddr::new(Path::new(socket)),
    }
}

/// The relay: berth's socket for the container plus systemd's address.
#[derive(Debug)]
pub struct Relay {
    sock: UnixDatagram,
    upstream: UnixAddr,
    out: UnixDatagram,
    mainpid: u32,
    dir: PathBuf,
    hold: Cell<bool>,
}

impl Relay {
    /// Binds `DIR/notify.sock` (through `/proc/self/fd`, so a long `DIR`
    /// is fine) and resolves systemd's `NOTIFY_SOCKET`.
    pub fn bind(dir: &Path, notify_socket: &OsStr) -> std::io::Result<Relay> {
        let upstream = upstream_addr(notify_socket).map_err(std::io::Error::from)?;
        let dirfd = std::fs::File::open(dir)?;
        let _ = std::fs::remove_file(dir.join(SOCKET_NAME));
        let short = PathBuf::from(format!("/proc/self/fd/{}/{SOCKET_NAME}", dirfd.as_raw_fd()));
        let sock = UnixDatagram::bind(&short)?;
        drop(dirfd);
        // Any user in the container may notify, as with systemd's own socket.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.join(SOCKET_NAME),
            std::fs::Permissions::from_mode(0o666),
        )?;
        sock.set_nonblocking(true)?;
        Ok(Relay {
            sock,
            upstream,
            out: UnixDatagram::unbound()?,
            mainpid: std::process::id(),
            dir: dir.to_path_buf(),
            hold: Cell::new(false),
        })
    }

    /// A relay around a socket [`Relay::bind`] made earlier (berth-run's
    /// hand-off passes it across `execve`).
    pub fn adopt(
        sock: UnixDatagram,
        dir: PathBuf,
        notify_socket: &OsStr,
    ) -> std::io::Result<Relay> {
        sock.set_nonblocking(true)?;
        Ok(Relay {
            sock,
            upstream: upstream_addr(notify_socket).map_err(std::io::Error::from)?,
            out: UnixDatagram::unbound()?,
            mainpid: std::process::id(),
            dir,
            // Only containers without a health check hand off.
            hold: Cell::new(false),
        })
    }

    /// The directory that holds the socket (bind-mounted into the container).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Holds the container's `READY=1` back until [`Relay::release_ready`]
    /// (a health check exists and has not passed yet).
    pub fn hold_ready(&self) {
        self.hold.set(true);
    }

    /// Ends the hold and tells systemd `READY=1`, whether or not the
    /// container said so itself (one that never notifies is made ready by
    /// its first passing check).
    pub fn release_ready(&self) {
        self.pump();
        self.hold.set(false);
        let msg = format!("READY=1\nMAINPID={}", self.mainpid);
        if let Err(e) = self.send(msg.as_bytes(), &[]) {
            tracing::warn!("notify relay: sending READY=1 to systemd: {e}");
        }
    }

    /// The socket to poll for readability.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    /// Relays every message waiting on the socket; returns how many were sent.
    /// A message systemd refuses is logged and dropped: the container goes on.
    pub fn pump(&self) -> usize {
        let mut sent = 0;
        loop {
            let mut buf = vec![0u8; 4096];
            let mut cmsg = nix::cmsg_space!([RawFd; 16]);
            let (len, fds) = {
                let mut iov = [IoSliceMut::new(&mut buf)];
                match recvmsg::<()>(
                    self.sock.as_raw_fd(),
                    &mut iov,
                    Some(&mut cmsg),
                    MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
                ) {
                    Ok(m) => {
                        let mut fds: Vec<RawFd> = Vec::new();
                        if let Ok(it) = m.cmsgs() {
                            for c in it {
                                if let ControlMessageOwned::ScmRights(f) = c {
                                    fds.extend(f);
                                }
                            }
                        }
                        (m.bytes, fds)
                    }
                    Err(nix::errno::Errno::EAGAIN) => return sent,
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => {
                        tracing::warn!("notify relay: receiving: {e}");
                        return sent;
                    }
                }
            };
            if let Some(msg) = buf
                .get(..len)
                .and_then(|m| rewrite_holding(m, self.mainpid, self.hold.get()))
            {
                match self.send(&msg, &fds) {
                    Ok(()) => sent += 1,
                    Err(e) => tracing::warn!(
                        "notify relay: sending {:?} to systemd: {e}",
                        String::from_utf8_lossy(&msg)
                    ),
                }
            }
            for fd in fds {
                let _ = nix::unistd::close(fd);
            }
        }
    }

    fn send(&self, msg: &[u8], fds: &[RawFd]) -> nix::Result<()> {
        let iov = [IoSlice::new(msg)];
        let rights = [ControlMessage::ScmRights(fds)];
        let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
        sendmsg(
            self.out.as_raw_fd(),
            &iov,
            cmsgs,
            MsgFlags::empty(),
            Some(&self.upstream),
        )
        .map(|_| ())
    }
}

/// `NOTIFY_SOCKET` and `WATCHDOG_USEC` as systemd gave them to berth.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifyEnv {
    /// systemd's socket, when the unit is `Type=notify`.
    pub socket: Option<OsString>,
    /// The watchdog interval, passed on to the container.
    pub watchdog_usec: Option<String>,
}

impl NotifyEnv {
    /// Takes the notify variables out of berth's own environment, so no
    /// runtime or child of berth sees systemd's socket.
    pub fn take() -> NotifyEnv {
        let socket = std::env::var_os("NOTIFY_SOCKET").filter(|s| !s.is_empty());
        let watchdog_usec = match std::env::var("WATCHDOG_PID") {
            Ok(pid) if pid != std::process::id().to_string() => None,
            _ => std::env::var("WATCHDOG_USEC").ok(),
        };
        for k in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
            std::env::remove_var(k);
        }
        NotifyEnv {
            socket,
            watchdog_usec,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_keeps_known_and_sets_mainpid() {
        let m = rewrite(b"READY=1\nSTATUS=up and running\nMAINPID=1\nFOO=bar", 42).unwrap();
        assert_eq!(
            String::from_utf8(m).unwrap(),
            "READY=1\nSTATUS=up and running\nMAINPID=42"
        );
    }

    #[test]
    fn rewrite_drops_empty_and_unknown() {
        assert_eq!(rewrite(b"", 1), None);
        assert_eq!(rewrite(b"MAINPID=7\nX=1", 1), None);
        assert_eq!(rewrite(b"garbage", 1), None);
    }

    #[test]
    fn rewrite_relays_each_listed_assignment() {
        for k in [
            "RELOADING=1",
            "STOPPING=1",
            "WATCHDOG=1",
            "EXTEND_TIMEOUT_USEC=5000000",
        ] {
            let m = rewrite(k.as_bytes(), 9).unwrap();
            assert_eq!(String::from_utf8(m).unwrap(), format!("{k}\nMAINPID=9"));
        }
    }

    #[test]
    fn relays_between_real_sockets() {
        let d = tempfile::tempdir().unwrap();
        let up = d.path().join("systemd.sock");
        let systemd = UnixDatagram::bind(&up).unwrap();
        let relay_dir = d.path().join("relay");
        std::fs::create_dir(&relay_dir).unwrap();
        let r = Relay::bind(&relay_dir, up.as_os_str()).unwrap();
        let c = UnixDatagram::unbound().unwrap();
        c.send_to(b"READY=1", relay_dir.join(SOCKET_NAME)).unwrap();
        assert_eq!(r.pump(), 1);
        let mut buf = [0u8; 256];
        let n = systemd.recv(&mut buf).unwrap();
        assert_eq!(
            std::str::from_utf8(&buf[..n]).unwrap(),
            format!("READY=1\nMAINPID={}", std::process::id())
        );
    }

    #[test]
    fn holds_ready_until_released_then_sends_it_once() {
        let d = tempfile::tempdir().unwrap();
        let up = d.path().join("systemd.sock");
        let systemd = UnixDatagram::bind(&up).unwrap();
        systemd.set_nonblocking(true).unwrap();
        let relay_dir = d.path().join("relay");
        std::fs::create_dir(&relay_dir).unwrap();
        let r = Relay::bind(&relay_dir, up.as_os_str()).unwrap();
        r.hold_ready();
        let c = UnixDatagram::unbound().unwrap();
        c.send_to(b"READY=1\nSTATUS=serving", relay_dir.join(SOCKET_NAME))
            .unwrap();
        assert_eq!(r.pump(), 1);
        let mut buf = [0u8; 256];
        let n = systemd.recv(&mut buf).unwrap();
        let pid = std::process::id();
        assert_eq!(
            std::str::from_utf8(&buf[..n]).unwrap(),
            format!("STATUS=serving\nMAINPID={pid}")
        );
        c.send_to(b"READY=1", relay_dir.join(SOCKET_NAME)).unwrap();
        assert_eq!(r.pump(), 0, "a held READY alone sends nothing");
        r.release_ready();
        let n = systemd.recv(&mut buf).unwrap();
        assert_eq!(
            std::str::from_utf8(&buf[..n]).unwrap(),
            format!("READY=1\nMAINPID={pid}")
        );
        assert!(systemd.recv(&mut buf).is_err(), "nothing else was sent");
    }
}
