//! `sd-notify KEY=VALUE...`: sends its arguments, one per line, as one datagram to
//! `$NOTIFY_SOCKET` (what `systemd-notify` does, for images without libsystemd).
//! Built statically by the system tests (`rustc -C target-feature=+crt-static`) and put
//! into the flanneld stand-in image; busybox has no unix-datagram client.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

fn main() {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        eprintln!("sd-notify: NOTIFY_SOCKET is not set");
        std::process::exit(1);
    };
    let msg = std::env::args().skip(1).collect::<Vec<_>>().join("\n");
    let path = path.to_string_lossy().into_owned();
    let addr = match path.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
        None => SocketAddr::from_pathname(&path),
    };
    let sent = addr.and_then(|a| UnixDatagram::unbound()?.send_to_addr(msg.as_bytes(), &a));
    if let Err(e) = sent {
        eprintln!("sd-notify: {path}: {e}");
        std::process::exit(1);
    }
}
