//! A static test helper copied into the test containers' rootfs as
//! `/bin/berth-test-helper`, for what busybox cannot do:
//!
//! - `notify MSG…`: sends each MSG (with `\n` unescaped) as one datagram to `$NOTIFY_SOCKET`.
//! - `serve-fd3 REPLY`: accepts one connection on the listening socket at fd 3, writes
//!   `REPLY LISTEN_FDS=… LISTEN_PID=… LISTEN_FDNAMES=… pid=…\n` and exits.
//!
//! Built by the tests with `rustc -C target-feature=+crt-static` (std only).
use std::io::Write;
use std::os::fd::FromRawFd;
use std::os::unix::net::UnixDatagram;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("notify") => {
            let path = std::env::var("NOTIFY_SOCKET").expect("NOTIFY_SOCKET");
            let s = UnixDatagram::unbound().expect("socket");
            for m in &args[1..] {
                s.send_to(m.replace("\\n", "\n").as_bytes(), &path)
                    .expect("send");
            }
        }
        Some("serve-fd3") => {
            // SAFETY: fd 3 is the listening socket the runtime passed in (LISTEN_FDS=1);
            // nothing else in this process owns it.
            #[allow(unsafe_code)]
            let l = unsafe { std::net::TcpListener::from_raw_fd(3) };
            let (mut c, _) = l.accept().expect("accept on fd 3");
            let v = |k: &str| std::env::var(k).unwrap_or_default();
            let reply = format!(
                "{} LISTEN_FDS={} LISTEN_PID={} LISTEN_FDNAMES={} pid={}\n",
                args.get(1).map(String::as_str).unwrap_or("hello"),
                v("LISTEN_FDS"),
                v("LISTEN_PID"),
                v("LISTEN_FDNAMES"),
                std::process::id()
            );
            c.write_all(reply.as_bytes()).expect("write");
        }
        _ => {
            eprintln!("usage: berth-test-helper notify MSG… | serve-fd3 REPLY");
            std::process::exit(2);
        }
    }
}
