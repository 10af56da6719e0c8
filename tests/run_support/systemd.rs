//! The tests play systemd's side of `NOTIFY_SOCKET`: a datagram socket that
//! receives each message with its sender's pid, and closes the fds a message
//! carries once it is read (which is how systemd answers
//! `sd_notify_barrier()`: crun sends `BARRIER=1` after `READY=1` and waits
//! for that close).
//!
//! The socket lives below `common::short_base()` (`/tmp`): a unix socket
//! path holds at most 107 bytes, and the checkout (and so `target/tmp`) may
//! be deep.

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

/// How long a receive waits before the test fails.
const WAIT: Duration = Duration::from_secs(60);

/// A fake systemd notify socket, removed on drop.
pub struct FakeSystemd {
    sock: UnixDatagram,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl FakeSystemd {
    /// Binds the socket (credentials passed, receives bounded by a minute).
    pub fn new() -> FakeSystemd {
        use nix::sys::socket::{setsockopt, sockopt};
        let dir = crate::common::short_tempdir();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        setsockopt(&sock, sockopt::PassCred, &true).unwrap();
        sock.set_read_timeout(Some(WAIT)).unwrap();
        FakeSystemd {
            sock,
            path,
            _dir: dir,
        }
    }

    /// What `NOTIFY_SOCKET` is set to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next message; panics if none comes within a minute.
    pub fn recv(&self) -> String {
        self.recv_with_pid().0
    }

    /// The next message and its sender's pid; panics if none comes within
    /// a minute.
    pub fn recv_with_pid(&self) -> (String, i32) {
        receive(&self.sock).expect("a notification within a minute")
    }

    /// Every message from now on, as (text, sender pid), on a channel fed by
    /// a thread (for tests that signal the sender while it waits).
    pub fn into_channel(self) -> mpsc::Receiver<(String, i32)> {
        let (tx, rx) = mpsc::channel();
        self.sock.set_read_timeout(None).unwrap();
        std::thread::spawn(move || {
            let me = self;
            while let Ok(m) = receive(&me.sock) {
                if tx.send(m).is_err() {
                    break;
                }
            }
        });
        rx
    }
}

fn receive(sock: &UnixDatagram) -> nix::Result<(String, i32)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixCredentials};
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!(UnixCredentials, [RawFd; 8]);
    let m = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    )?;
    let mut pid = -1;
    for c in m.cmsgs()? {
        match c {
            ControlMessageOwned::ScmCredentials(cr) => pid = cr.pid(),
            ControlMessageOwned::ScmRights(fds) => {
                for fd in fds {
                    // SAFETY: the fd was just received and is owned here.
                    #[allow(unsafe_code)]
                    drop(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
            _ => {}
        }
    }
    let n = m.bytes;
    Ok((String::from_utf8_lossy(&buf[..n]).into_owned(), pid))
}
