//! A "front": an HTTP/1.1 proxy on 127.0.0.1 in a thread, in front of a plain registry.
//!
//! It answers every request with `Connection: close` (one request per connection, so no
//! keep-alive bookkeeping), reads the whole upstream response, and can then misbehave
//! according to [`Rule`]s: answer a status code instead of proxying, flip a byte of the
//! body, close the connection part-way through the body, send the body slowly, or send
//! a body of another length (longer, shorter, or practically without end, with or
//! without a Content-Length saying so). In
//! token mode it also plays an anonymous Bearer-token registry: `401` with
//! `WWW-Authenticate: Bearer realm="http://ADDR/token",service="berth-test"` until the
//! client presents the token that `/token` hands out.
//!
//! Every request is logged ([`Front::requests`]) with the bytes of body sent so far,
//! updated live, so a test can wait for "half of the blob is on the wire".

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// The token the token-auth front hands out and expects.
pub const TOKEN: &str = "anon";

/// What to do with a request that matches a [`Rule`].
#[derive(Debug, Clone)]
pub enum Action {
    /// Answer this status (with a registry-style JSON error body) instead of proxying.
    Status(u16),
    /// Proxy, but XOR the body byte at `offset` (clamped to the last byte) with 0xff.
    FlipByte {
        /// Offset into the response body.
        offset: usize,
    },
    /// Proxy the headers (with the full Content-Length) and the first `bytes` of the body,
    /// then close the connection.
    CloseAfter {
        /// Body bytes sent before closing.
        bytes: usize,
    },
    /// Proxy, but send `to` bytes of body instead: the real body cut to `to`, or followed
    /// by zeros up to `to`. The front stops by itself after `to` bytes (or when the client
    /// hangs up), so a large `to` is a body "without end" that still ends.
    Resize {
        /// Body bytes to send.
        to: u64,
        /// Whether a Content-Length announces them.
        length: Length,
    },
    /// Proxy, sending the body `chunk` bytes at a time with `pause` between chunks.
    Throttle {
        /// Bytes per write.
        chunk: usize,
        /// Pause after each write.
        pause: Duration,
    },
}

/// Content-Length the front announces for an [`Action::Resize`]d body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    /// The new length: the client expects every byte.
    Announced,
    /// None: the body ends when the connection closes.
    CloseDelimited,
}

/// A fault injected into requests whose path contains `path_contains`.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Substring of the request path (e.g. `/blobs/sha256:…`, `/manifests/`).
    pub path_contains: String,
    /// Only this method (`GET`, `HEAD`); `None` for any.
    pub method: Option<String>,
    /// What to do.
    pub action: Action,
    /// How many more matching requests to affect; `None` for all of them.
    pub times: Option<usize>,
}

/// One request seen by the front.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `HEAD`, …
    pub method: String,
    /// The request target, e.g. `/v2/repo/blobs/sha256:…`.
    pub path: String,
    /// The status sent back (0 until known).
    pub status: u16,
    /// Body bytes written to the client so far.
    pub sent: u64,
    /// The full body length from upstream.
    pub total: u64,
    /// True once the response is complete (or abandoned).
    pub done: bool,
    /// The fault applied, if any.
    pub fault: Option<String>,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    log: Vec<Request>,
}

struct Shared {
    state: Mutex<State>,
    stop: AtomicBool,
    token: bool,
    upstream: String,
    addr: String,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A faulty (or token-demanding) proxy; stops accepting on drop.
pub struct Front {
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl Front {
    /// A transparent proxy to `upstream` (`127.0.0.1:PORT`); add faults with [`Front::add`].
    pub fn new(upstream: &str) -> Front {
        Front::start(upstream, false)
    }

    /// A proxy that demands an anonymous Bearer token first (see the module docs).
    pub fn token_auth(upstream: &str) -> Front {
        Front::start(upstream, true)
    }

    fn start(upstream: &str, token: bool) -> Front {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            stop: AtomicBool::new(false),
            token,
            upstream: upstream.to_string(),
            addr,
        });
        let s = Arc::clone(&shared);
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    let _ = serve(&s, conn);
                });
            }
        });
        Front {
            shared,
            accept: Some(accept),
        }
    }

    /// `127.0.0.1:PORT` of the front.
    pub fn addr(&self) -> &str {
        &self.shared.addr
    }

    /// Adds a fault rule (rules are tried in order; the first live match applies).
    pub fn add(&self, rule: Rule) {
        self.shared.lock().rules.push(rule);
    }

    /// Answers `code` to the first `times` GETs whose path contains `path_contains`.
    pub fn fail_status(&self, path_contains: &str, code: u16, times: usize) {
        self.add(Rule {
            path_contains: path_contains.to_string(),
            method: Some("GET".into()),
            action: Action::Status(code),
            times: Some(times),
        });
    }

    /// Flips the body byte at `offset` of every GET of blob `digest`.
    pub fn flip_byte(&self, digest: &str, offset: usize) {
        self.add(Rule {
            path_contains: format!("/blobs/{digest}"),
            method: Some("GET".into()),
            action: Action::FlipByte { offset },
            times: None,
        });
    }

    /// Closes every GET of paths containing `path_contains` after `bytes` of body.
    pub fn close_mid_body(&self, path_contains: &str, bytes: usize) {
        self.add(Rule {
            path_contains: path_contains.to_string(),
            method: Some("GET".into()),
            action: Action::CloseAfter { bytes },
            times: None,
        });
    }

    /// Sends bodies of GETs of paths containing `path_contains` slowly.
    pub fn throttle(&self, path_contains: &str, chunk: usize, pause: Duration) {
        self.add(Rule {
            path_contains: path_contains.to_string(),
            method: Some("GET".into()),
            action: Action::Throttle { chunk, pause },
            times: None,
        });
    }

    /// Every GET of blob `digest` gets a body of `to` bytes (see [`Action::Resize`]).
    pub fn resize_blob(&self, digest: &str, to: u64, length: Length) {
        self.add(Rule {
            path_contains: format!("/blobs/{digest}"),
            method: Some("GET".into()),
            action: Action::Resize { to, length },
            times: None,
        });
    }

    /// Removes every rule: from now on the front is a plain proxy.
    pub fn clear(&self) {
        self.shared.lock().rules.clear();
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.lock().log.clone()
    }

    /// Requests with `method` whose path contains `path_contains`.
    pub fn matching(&self, method: &str, path_contains: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method && r.path.contains(path_contains))
            .collect()
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.shared.addr);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

/// Position of the first `\r\n\r\n` in `buf`, if any.
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

/// Reads one request: `(head text without the blank line, body)`.
fn read_request(conn: &mut TcpStream) -> io::Result<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let end = loop {
        if let Some(end) = head_end(&buf) {
            break end;
        }
        if buf.len() > 1 << 20 {
            return Err(io::Error::other("request head too large"));
        }
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if !buf[0].is_ascii_uppercase() {
            // A TLS ClientHello (0x16 …), as a client probing HTTPS first sends: answer
            // like Go's server does, at once, instead of waiting for a head that never
            // comes.
            let _ = conn.write_all(b"HTTP/1.0 400 Bad Request\r\nConnection: close\r\n\r\n");
            return Err(io::Error::other("not an HTTP request"));
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut body = buf[end + 4..].to_vec();
    let len = header(&parse_headers(&head), "content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    while body.len() < len {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok((head, body))
}

fn parse_headers(head: &str) -> Vec<(String, String)> {
    head.split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Headers that only concern one hop, dropped in both directions.
fn hop_by_hop(name: &str) -> bool {
    [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "upgrade",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

fn respond(
    conn: &mut TcpStream,
    status: u16,
    extra: &[(&str, String)],
    body: &[u8],
) -> io::Result<()> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (k, v) in extra {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    conn.write_all(out.as_bytes())?;
    conn.write_all(body)?;
    conn.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn serve(shared: &Shared, mut conn: TcpStream) -> io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(60)))?;
    let (head, body) = read_request(&mut conn)?;
    let mut first = head.split("\r\n").next().unwrap_or("").split_whitespace();
    let method = first.next().unwrap_or("").to_string();
    let path = first.next().unwrap_or("").to_string();
    let headers = parse_headers(&head);

    let idx = {
        let mut st = shared.lock();
        st.log.push(Request {
            method: method.clone(),
            path: path.clone(),
            status: 0,
            sent: 0,
            total: 0,
            done: false,
            fault: None,
        });
        st.log.len() - 1
    };
    let update = |f: &dyn Fn(&mut Request)| {
        if let Some(r) = shared.lock().log.get_mut(idx) {
            f(r);
        }
    };

    if shared.token {
        if path.starts_with("/token") {
            update(&|r| {
                r.status = 200;
                r.done = true;
            });
            let body =
                format!(r#"{{"token":"{TOKEN}","access_token":"{TOKEN}","expires_in":300}}"#);
            return respond(
                &mut conn,
                200,
                &[("Content-Type", "application/json".into())],
                body.as_bytes(),
            );
        }
        let wanted = format!("Bearer {TOKEN}");
        if header(&headers, "authorization") != Some(wanted.as_str()) {
            update(&|r| {
                r.status = 401;
                r.done = true;
            });
            let challenge = format!(
                r#"Bearer realm="http://{}/token",service="berth-test",scope="repository:*:pull""#,
                shared.addr
            );
            return respond(
                &mut conn,
                401,
                &[
                    ("WWW-Authenticate", challenge),
                    ("Content-Type", "application/json".into()),
                    ("Docker-Distribution-Api-Version", "registry/2.0".into()),
                ],
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            );
        }
    }

    let action = {
        let mut st = shared.lock();
        let rule = st.rules.iter_mut().find(|r| {
            path.contains(&r.path_contains)
                && match &r.method {
                    Some(m) => *m == method,
                    None => true,
                }
                && r.times != Some(0)
        });
        rule.map(|r| {
            if let Some(t) = r.times.as_mut() {
                *t -= 1;
            }
            r.action.clone()
        })
    };
    if let Some(a) = &action {
        let name = format!("{a:?}");
        update(&|r| r.fault = Some(name.clone()));
    }
    if let Some(Action::Status(code)) = action {
        update(&|r| {
            r.status = code;
            r.done = true;
        });
        return respond(
            &mut conn,
            code,
            &[("Content-Type", "application/json".into())],
            br#"{"errors":[{"code":"UNKNOWN","message":"injected by the test front"}]}"#,
        );
    }

    // Forward upstream, one request per connection.
    let mut up = TcpStream::connect(&shared.upstream)?;
    up.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    for (k, v) in &headers {
        if hop_by_hop(k) || (shared.token && k.eq_ignore_ascii_case("authorization")) {
            continue;
        }
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    up.write_all(req.as_bytes())?;
    up.write_all(&body)?;
    let mut resp = Vec::new();
    up.read_to_end(&mut resp)?;
    let end = head_end(&resp).ok_or_else(|| io::Error::other("bad upstream response"))?;
    let up_head = String::from_utf8_lossy(&resp[..end]).into_owned();
    let mut resp_body = resp[end + 4..].to_vec();
    let status: u16 = up_head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(502);
    let mut out_head = up_head.split("\r\n").next().unwrap_or("").to_string();
    out_head.push_str("\r\n");
    for (k, v) in parse_headers(&up_head) {
        if !hop_by_hop(&k) {
            out_head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    out_head.push_str("Connection: close\r\n\r\n");
    let total = resp_body.len() as u64;
    update(&|r| {
        r.status = status;
        r.total = total;
    });

    let result = send_body(
        shared,
        &mut conn,
        &out_head,
        &mut resp_body,
        status,
        action,
        &update,
    );
    update(&|r| r.done = true);
    let _ = conn.shutdown(Shutdown::Both);
    result
}

/// Applies a change to this connection's log entry.
type Update<'a> = &'a dyn Fn(&dyn Fn(&mut Request));

fn send_body(
    shared: &Shared,
    conn: &mut TcpStream,
    head: &str,
    body: &mut [u8],
    status: u16,
    action: Option<Action>,
    update: Update<'_>,
) -> io::Result<()> {
    if let Some(Action::Resize { to, length }) = &action {
        let (to, length) = (*to, *length);
        if status == 200 {
            return send_resized(shared, conn, head, body, to, length, update);
        }
    }
    conn.write_all(head.as_bytes())?;
    let (chunk, pause, limit) = match action {
        Some(Action::FlipByte { offset }) if status == 200 && !body.is_empty() => {
            let i = offset.min(body.len() - 1);
            body[i] ^= 0xff;
            (usize::MAX, Duration::ZERO, body.len())
        }
        Some(Action::CloseAfter { bytes }) => (usize::MAX, Duration::ZERO, bytes.min(body.len())),
        Some(Action::Throttle { chunk, pause }) => (chunk.max(1), pause, body.len()),
        _ => (usize::MAX, Duration::ZERO, body.len()),
    };
    let mut sent = 0usize;
    while sent < limit {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let n = chunk.min(limit - sent);
        conn.write_all(&body[sent..sent + n])?;
        sent += n;
        let s = sent as u64;
        update(&|r| r.sent = s);
        if !pause.is_zero() && sent < limit {
            std::thread::sleep(pause);
        }
    }
    conn.flush()
}

/// Sends `head` with its Content-Length replaced (or dropped), then `to` bytes: `body`
/// cut or padded with zeros. Stops at `to`, on a write error (the client hung up) or when
/// the front stops.
fn send_resized(
    shared: &Shared,
    conn: &mut TcpStream,
    head: &str,
    body: &[u8],
    to: u64,
    length: Length,
    update: Update<'_>,
) -> io::Result<()> {
    let mut out = String::new();
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        if !line.to_ascii_lowercase().starts_with("content-length:") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    if length == Length::Announced {
        out.push_str(&format!("Content-Length: {to}\r\n"));
    }
    out.push_str("\r\n");
    conn.write_all(out.as_bytes())?;
    let zeros = [0u8; 64 * 1024];
    let mut sent = 0u64;
    while sent < to && !shared.stop.load(Ordering::SeqCst) {
        let left = usize::try_from(to - sent).unwrap_or(usize::MAX);
        let from_body = body.get(sent as usize..).unwrap_or_default();
        let piece = if from_body.is_empty() {
            &zeros[..zeros.len().min(left)]
        } else {
            &from_body[..from_body.len().min(left).min(zeros.len())]
        };
        conn.write_all(piece)?;
        sent += piece.len() as u64;
        update(&|r| r.sent = sent);
    }
    conn.flush()
}
