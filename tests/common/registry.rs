//! Debian's `docker-registry` (distribution 2.8) on 127.0.0.1, and pushes through skopeo.
//!
//! Each [`Registry`] owns a temporary directory:
//! ```text
//! TMP/
//! ├── config.yml
//! ├── registry.log      the registry's own output (shown when it fails to start)
//! ├── storage/          blobs and repositories
//! ├── htpasswd          (tls_htpasswd only)
//! ├── pki/              CA and leaf key/cert made with openssl (tls_htpasswd only)
//! └── certs/ca.crt      a cert dir in the containers-certs.d sense (tls_htpasswd only)
//! ```
//! The registry runs under a tiny `sh` watchdog that holds a pipe from this process: when
//! the [`Registry`] is dropped, or the test process dies (a registry kept in a static
//! `OnceLock` is never dropped), the pipe closes and the watchdog kills the registry.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use super::run_ok;

/// Kills `$pid` (the registry) as soon as stdin reaches EOF.
const WATCHDOG: &str = r#""$0" serve "$1" >"$2" 2>&1 </dev/null &
pid=$!
read -r _ || true
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
exit 0"#;

/// The openssl configuration for the test CA and its leaf server certificate.
const OPENSSL_CNF: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = berth test CA
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[v3_leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
";

/// TLS and basic-auth details of a [`Registry::tls_htpasswd`].
#[derive(Debug, Clone)]
pub struct TlsAuth {
    /// The htpasswd user.
    pub user: String,
    /// Its password.
    pub pass: String,
    /// The CA certificate (PEM).
    pub ca: PathBuf,
    /// A directory holding `ca.crt` only.
    pub cert_dir: PathBuf,
}

/// A running `docker-registry`; killed on drop.
pub struct Registry {
    child: Child,
    stdin: Option<ChildStdin>,
    addr: String,
    tls: Option<TlsAuth>,
    dir: tempfile::TempDir,
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl Registry {
    /// Plain HTTP, no auth.
    pub fn plain() -> Registry {
        Registry::start(None)
    }

    /// HTTPS with a fresh CA and leaf certificate, and htpasswd basic auth for `user`.
    pub fn tls_htpasswd(user: &str, pass: &str) -> Registry {
        Registry::start(Some((user, pass)))
    }

    fn start(auth: Option<(&str, &str)>) -> Registry {
        let dir = super::tempdir();
        let tls = auth.map(|(user, pass)| make_tls_auth(dir.path(), user, pass));
        let config = dir.path().join("config.yml");
        let log = dir.path().join("registry.log");
        let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
        for _ in 0..5 {
            let addr = format!("127.0.0.1:{}", free_port());
            std::fs::write(&config, config_yaml(dir.path(), &addr, tls.as_ref())).unwrap();
            let mut child = Command::new("sh")
                .arg("-c")
                .arg(WATCHDOG)
                .arg("docker-registry")
                .arg(&config)
                .arg(&log)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting docker-registry");
            let stdin = child.stdin.take();
            let up = wait_up(&addr, tls.is_some(), Duration::from_secs(20), || {
                read_log().contains("address already in use")
            });
            if up {
                return Registry {
                    child,
                    stdin,
                    addr,
                    tls,
                    dir,
                };
            }
            drop(stdin);
            let _ = child.wait();
            if !read_log().contains("address already in use") {
                break;
            }
        }
        panic!("docker-registry did not come up; its log:\n{}", read_log());
    }

    fn stop(&mut self) {
        // Closing the pipe makes the watchdog kill the registry and exit.
        self.stdin.take();
        let _ = self.child.wait();
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// TLS and auth details; `None` for a plain registry.
    pub fn tls(&self) -> Option<&TlsAuth> {
        self.tls.as_ref()
    }

    /// The CA certificate; panics for a plain registry.
    pub fn ca_pem_path(&self) -> &Path {
        &self.tls.as_ref().expect("plain registry has no CA").ca
    }

    /// A directory holding `ca.crt`; panics for a plain registry.
    pub fn cert_dir(&self) -> &Path {
        &self
            .tls
            .as_ref()
            .expect("plain registry has no cert dir")
            .cert_dir
    }

    /// `(user, pass)` for an htpasswd registry.
    pub fn creds(&self) -> Option<(&str, &str)> {
        self.tls
            .as_ref()
            .map(|t| (t.user.as_str(), t.pass.as_str()))
    }

    /// The registry's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// The storage directory.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Polls until the registry at `addr` answers (`GET /v2/` → 200 for plain HTTP; a TCP
/// accept for TLS, since Go loads the key pair before it listens), or `failed()` says it
/// never will.
fn wait_up(addr: &str, tls: bool, timeout: Duration, failed: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if failed() {
            return false;
        }
        let up = if tls {
            TcpStream::connect(addr).is_ok()
        } else {
            http_status(addr, "GET", "/v2/") == Some(200)
        };
        if up {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn config_yaml(dir: &Path, addr: &str, tls: Option<&TlsAuth>) -> String {
    let mut y = format!(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n  secret: berth-test\n",
        dir.join("storage").display()
    );
    if tls.is_some() {
        let pki = dir.join("pki");
        y.push_str(&format!(
            "  tls:\n    certificate: {}\n    key: {}\nauth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
            pki.join("server.crt").display(),
            pki.join("server.key").display(),
            dir.join("htpasswd").display()
        ));
    }
    y
}

/// CA (CA:TRUE) and a leaf server certificate (CA:FALSE, SAN IP:127.0.0.1 + DNS:localhost,
/// EKU serverAuth) signed by it, plus an htpasswd file (bcrypt) for `user`.
fn make_tls_auth(dir: &Path, user: &str, pass: &str) -> TlsAuth {
    let pki = dir.join("pki");
    let cert_dir = dir.join("certs");
    std::fs::create_dir_all(&pki).unwrap();
    std::fs::create_dir_all(&cert_dir).unwrap();
    let cnf = pki.join("openssl.cnf");
    std::fs::write(&cnf, OPENSSL_CNF).unwrap();
    let ossl = |args: &[&str]| {
        run_ok(Command::new("openssl").args(args).current_dir(&pki));
    };
    ossl(&[
        "req",
        "-x509",
        "-config",
        "openssl.cnf",
        "-extensions",
        "v3_ca",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "3650",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    ossl(&[
        "req",
        "-new",
        "-config",
        "openssl.cnf",
        "-subj",
        "/CN=127.0.0.1",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    ossl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "3650",
        "-extfile",
        "openssl.cnf",
        "-extensions",
        "v3_leaf",
        "-out",
        "server.crt",
    ]);
    std::fs::copy(pki.join("ca.crt"), cert_dir.join("ca.crt")).unwrap();
    run_ok(
        Command::new("htpasswd")
            .arg("-Bbc")
            .arg(dir.join("htpasswd"))
            .arg(user)
            .arg(pass),
    );
    TlsAuth {
        user: user.to_string(),
        pass: pass.to_string(),
        ca: pki.join("ca.crt"),
        cert_dir,
    }
}

/// The HTTP status of `METHOD PATH` on a plain HTTP server, or `None` if unreachable.
pub fn http_status(addr: &str, method: &str, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let head = String::from_utf8_lossy(&buf);
    head.split_whitespace().nth(1)?.parse().ok()
}

/// skopeo's transport-independent flags for talking to `reg` as a destination/source.
fn skopeo_flags(reg: &Registry, side: &str) -> Vec<String> {
    match reg.tls() {
        None => vec![format!("--{side}-tls-verify=false")],
        Some(t) => vec![
            format!("--{side}-cert-dir={}", t.cert_dir.display()),
            format!("--{side}-creds={}:{}", t.user, t.pass),
        ],
    }
}

/// Pushes tag `tag` of the OCI layout `layout` to `reg` as `dest` (`REPO:TAG`) with
/// `skopeo copy --preserve-digests` (`--all` when the tag names an index), checks that the
/// registry serves the same manifest digest, and returns `ADDR/REPO:TAG`.
pub fn push(layout: &Path, tag: &str, reg: &Registry, dest: &str) -> String {
    let (digest, media_type) = layout_tag(layout, tag);
    let is_index = media_type.contains("index") || media_type.contains("manifest.list");
    let target = format!("{}/{dest}", reg.addr());
    let mut cmd = Command::new("skopeo");
    cmd.args(["copy", "--quiet", "--preserve-digests"]);
    if is_index {
        cmd.arg("--all");
    }
    cmd.args(skopeo_flags(reg, "dest"))
        .arg(format!("oci:{}:{tag}", layout.display()))
        .arg(format!("docker://{target}"));
    run_ok(&mut cmd);
    let served = remote_digest(reg, dest);
    assert_eq!(
        served, digest,
        "skopeo did not preserve the manifest digest of {tag} when pushing to {target}"
    );
    target
}

/// One HTTP/1.1 request to a plain registry: `(status, response head, body)`.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP response without a head");
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head, buf[end + 4..].to_vec())
}

/// Pushes one blob to a plain registry with a monolithic upload.
fn push_blob_raw(reg: &Registry, repo: &str, bytes: &[u8]) {
    let digest = super::digest_of(bytes);
    let (status, head, _) = http(
        reg.addr(),
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        &[],
        &[],
    );
    assert_eq!(status, 202, "starting an upload to {repo}: {head}");
    let location = head
        .split("\r\n")
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.trim().eq_ignore_ascii_case("location"))
                .map(|(_, v)| v.trim().to_string())
        })
        .expect("upload without Location");
    let path = match location.find("/v2/") {
        Some(i) => location[i..].to_string(),
        None => location,
    };
    let sep = if path.contains('?') { '&' } else { '?' };
    let (status, head, _) = http(
        reg.addr(),
        "PUT",
        &format!("{path}{sep}digest={digest}"),
        &[("Content-Type", "application/octet-stream")],
        bytes,
    );
    assert_eq!(status, 201, "uploading {digest} to {repo}: {head}");
}

/// Pushes an image (blobs, config, then the manifest bytes exactly as built) to a plain
/// registry over raw HTTP, for media types skopeo's `oci:` transport will not read
/// (Docker schema 2 in an OCI layout). Returns `ADDR/REPO:TAG`.
pub fn push_raw(reg: &Registry, repo: &str, tag: &str, built: &super::oci::Built) -> String {
    assert!(reg.tls().is_none(), "push_raw speaks plain HTTP only");
    for l in &built.layers {
        push_blob_raw(reg, repo, &l.bytes);
    }
    push_blob_raw(reg, repo, &built.config);
    let (status, head, body) = http(
        reg.addr(),
        "PUT",
        &format!("/v2/{repo}/manifests/{tag}"),
        &[("Content-Type", &built.media_type)],
        &built.manifest,
    );
    assert_eq!(
        status,
        201,
        "putting the manifest of {repo}:{tag}: {head}\n{}",
        String::from_utf8_lossy(&body)
    );
    let served = remote_digest(reg, &format!("{repo}:{tag}"));
    assert_eq!(
        served, built.digest,
        "the registry changed the manifest of {repo}:{tag}"
    );
    format!("{}/{repo}:{tag}", reg.addr())
}

/// The digest of the manifest the registry serves for `repo_tag`, hashed from
/// `skopeo inspect --raw`.
pub fn remote_digest(reg: &Registry, repo_tag: &str) -> String {
    super::digest_of(&remote_raw(reg, repo_tag))
}

/// The manifest (or index) the registry serves for `repo_tag`, as
/// `skopeo inspect --raw` prints it.
pub fn remote_raw(reg: &Registry, repo_tag: &str) -> Vec<u8> {
    let mut cmd = Command::new("skopeo");
    cmd.args(["inspect", "--raw"]);
    cmd.args(
        skopeo_flags(reg, "src")
            .iter()
            .map(|f| f.replacen("--src-", "--", 1)),
    );
    cmd.arg(format!("docker://{}/{repo_tag}", reg.addr()));
    run_ok(&mut cmd).stdout
}

/// `(digest, mediaType)` of the descriptor tagged `tag` in `layout/index.json`.
pub fn layout_tag(layout: &Path, tag: &str) -> (String, String) {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let found = index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no tag {tag} in {}", layout.display()));
    (
        found["digest"].as_str().unwrap().to_string(),
        found["mediaType"].as_str().unwrap_or_default().to_string(),
    )
}
