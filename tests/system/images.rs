//! The images the scenarios install, built from Debian packages and written as
//! `oci-archive` files the guest reads over a read-only bind (`/mnt/images`).
//!
//! Each carries `/exports` in the style of the published Project Atomic system-container
//! images (service.template, config.json.template, tmpfiles.template, manifest.json
//! defaultValues; socket.template for httpd, berth's extension):
//!
//! | archive       | tags             | process                                              |
//! |---------------|------------------|------------------------------------------------------|
//! | `etcd.tar`    | `1`, `2`, `broken` | etcd 3.4 (etcd-server), Type=notify, read-only root, state dir from tmpfiles, bind-mounted; hostfs `/usr/local/bin/${NAME}ctl` (renameFiles, installedFilesTemplate) |
//! | `etcd.tar`    | `atomic`         | the same etcd in the shape of atomic's etcd image (scenario 1; `atomic_images.rs`): Type=simple, settings from hostfs `/etc/etcd/etcd.conf` |
//! | `flannel.tar` | `1`              | a busybox flanneld stand-in: waits for etcd, reads the network key, writes `/run/flannel/subnet.env` on the host, sends READY=1 |
//! | `flannel.tar` | `atomic`         | the stand-in in the shape of atomic's flannel image (scenario 1; `atomic_images.rs`): also writes docker's drop-in and `/etc/flanneld/lease` on the host |
//! | `httpd.tar`   | `1`, `2`         | lighttpd, socket-activated (`server.systemd-socket-activation`) |
//! | `healthd.tar` | `1`              | a busybox Type=notify service that never notifies; its image `Healthcheck` (`test -e /tmp/up`, every 200 ms, start period 30 s) passes once it touched `/tmp/up`, 2 s after start |
//! | `engine.tar`  | `1`              | a busybox container-engine stand-in: sources flannel's `/run/flannel/subnet.env`, writes what it saw to `/run/engine/seen` on the host, sends READY=1; `After=`/`Requires=` flannel from defaultValues |
//!
//! | `soakN.tar`   | `cur`            | the update gate's busybox service (`soak_images.rs`): 1 and 3 serve, 2 exits 3 s after READY=1, 4 fails its image `Healthcheck`, 5 passes it |
//!
//! `etcd:2` differs from `etcd:1` only in `/etc/berth-test-image`; `etcd:broken` runs a
//! process that exits at once. Tags share their base layer.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{json, Value};

use crate::common::debs::extracted;
use crate::common::oci::{oci_archive, Compression, Image, Layer, OciLayout};
use crate::common::{cache_dir, run_ok, sha256_hex};

/// Scenario 1's atomic-shaped etcd and flannel (`:atomic` tags).
#[path = "atomic_images.rs"]
mod atomic;
/// The update gate's images (`soak1.tar` … `soak5.tar`).
#[path = "soak_images.rs"]
mod soak;

/// Where the guest sees the archives.
pub const GUEST_DIR: &str = "/mnt/images";

/// The busybox applets linked in every image (`/usr/bin/NAME` → busybox).
const APPLETS: &[&str] = &[
    "sh", "cat", "echo", "sed", "grep", "base64", "wget", "sleep", "mv", "rm", "mkdir", "ls",
    "true", "false", "env", "ps", "printf", "kill",
];

/// The archives, built once per test process.
pub fn archives() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = crate::common::scratch_base().join("system-images");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        write(&dir, "etcd", &etcd());
        write(
            &dir,
            "flannel",
            &[("1", flannel()), ("atomic", atomic::flannel())],
        );
        write(&dir, "httpd", &httpd());
        write(&dir, "engine", &[("1", engine())]);
        write(&dir, "ready", &[("1", ready())]);
        write(&dir, "healthd", &[("1", healthd())]);
        for v in 1..=5 {
            write(&dir, &format!("soak{v}"), &[("cur", soak::soak(v))]);
        }
        dir
    })
}

fn write(dir: &Path, name: &str, tags: &[(&str, Image)]) {
    let layout = dir.join(format!("{name}.layout"));
    let mut l = OciLayout::create(&layout);
    for (tag, image) in tags {
        l.add_image(tag, image);
    }
    oci_archive(&layout, &dir.join(format!("{name}.tar")));
    std::fs::remove_dir_all(&layout).unwrap();
}

/// The bytes of `rel` in the extracted tree `tree`, following symlinks inside the tree
/// (absolute targets are taken relative to the tree, not the host).
fn tree_file(tree: &Path, rel: &str) -> Vec<u8> {
    let mut rel = PathBuf::from(rel.trim_start_matches('/'));
    for _ in 0..16 {
        let p = tree.join(&rel);
        let meta = std::fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        if !meta.file_type().is_symlink() {
            return std::fs::read(&p).unwrap();
        }
        let target = std::fs::read_link(&p).unwrap();
        rel = if target.is_absolute() {
            target.strip_prefix("/").unwrap().to_path_buf()
        } else {
            rel.parent().unwrap().join(target)
        };
    }
    panic!("symlink loop at {rel:?} in {}", tree.display());
}

/// A shared library from package `pkg`, looked up in the usual directories.
fn library(pkg: &str, soname: &str) -> Vec<u8> {
    let tree = extracted(pkg);
    for d in ["lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu"] {
        if tree.join(d).join(soname).symlink_metadata().is_ok() {
            return tree_file(&tree, &format!("{d}/{soname}"));
        }
    }
    panic!("{soname} is not in {pkg} ({})", tree.display());
}

/// A merged-/usr skeleton with busybox, glibc's loader and libc, plus `libs`
/// (package, soname) in `/usr/lib/x86_64-linux-gnu`.
fn base(libs: &[(&str, &str)]) -> Layer {
    let mut l = Layer::new();
    for (d, mode) in [
        ("usr", 0o755),
        ("usr/bin", 0o755),
        ("usr/sbin", 0o755),
        ("usr/lib", 0o755),
        ("usr/lib/x86_64-linux-gnu", 0o755),
        ("usr/lib64", 0o755),
        ("etc", 0o755),
        ("dev", 0o755),
        ("proc", 0o555),
        ("sys", 0o555),
        ("run", 0o755),
        ("tmp", 0o1777),
        ("var", 0o755),
        ("var/lib", 0o755),
        ("root", 0o700),
        ("exports", 0o755),
    ] {
        l = l.dir(d, mode);
    }
    for (link, target) in [
        ("bin", "usr/bin"),
        ("sbin", "usr/sbin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
    ] {
        l = l.symlink(link, target);
    }
    l = l
        .file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0o644)
        .file("etc/group", "root:x:0:\n", 0o644)
        .file("etc/nsswitch.conf", "hosts: files\n", 0o644)
        .file("etc/hosts", "127.0.0.1 localhost\n", 0o644);
    let busybox = extracted("busybox-static");
    l = l.file("usr/bin/busybox", tree_file(&busybox, "bin/busybox"), 0o755);
    for a in APPLETS {
        l = l.symlink(&format!("usr/bin/{a}"), "busybox");
    }
    l = l.file(
        "usr/lib64/ld-linux-x86-64.so.2",
        library("libc6", "ld-linux-x86-64.so.2"),
        0o755,
    );
    for (pkg, so) in [("libc6", "libc.so.6")].iter().chain(libs) {
        l = l.file(
            &format!("usr/lib/x86_64-linux-gnu/{so}"),
            library(pkg, so),
            0o644,
        );
    }
    l
}

/// A runtime config skeleton (runc's shape) with `args`, `env` and extra `mounts`.
fn config(args: &[&str], env: &[&str], mounts: &[Value]) -> String {
    let mut c: Value = serde_json::from_str(include_str!("config-skeleton.json")).unwrap();
    c["process"]["args"] = json!(args);
    let mut e = vec!["PATH=/usr/sbin:/usr/bin".to_string()];
    e.extend(env.iter().map(|s| s.to_string()));
    c["process"]["env"] = json!(e);
    c["hostname"] = json!("$NAME");
    c["mounts"]
        .as_array_mut()
        .unwrap()
        .extend(mounts.iter().cloned());
    serde_json::to_string_pretty(&c).unwrap()
}

fn bind(source: &str, destination: &str) -> Value {
    json!({"destination": destination, "type": "bind", "source": source,
           "options": ["rbind", "rw"]})
}

// ---- etcd ------------------------------------------------------------------------

const ETCD_SERVICE: &str = "\
[Unit]
Description=etcd key-value store ($NAME, a berth system container)
After=network.target

[Service]
Type=notify
ExecStart=$EXEC_START
ExecStop=$EXEC_STOP
WorkingDirectory=$DESTDIR
Delegate=yes
KillMode=mixed
Restart=on-failure
TimeoutStartSec=60
TimeoutStopSec=20

[Install]
WantedBy=multi-user.target
";

const ETCD_TMPFILES: &str = "d ${STATE_DIRECTORY}/${NAME} 0700 root root - -\n";

const ETCD_MANIFEST: &str = r#"{
  "version": "1.0",
  "defaultValues": {"ETCD_PORT": "2379", "PEER_PORT": "2380"},
  "renameFiles": {"/usr/local/bin/etcdctl": "/usr/local/bin/${NAME}ctl"},
  "installedFilesTemplate": ["/usr/local/bin/etcdctl"]
}
"#;

/// A host-side client, `/exports/hostfs/usr/local/bin/etcdctl`, installed as
/// `/usr/local/bin/${NAME}ctl` and rendered (`$$` is a literal `$`).
const ETCD_CTL: &str = r#"#!/bin/sh
# Reads key $$1 from $NAME (etcd on 127.0.0.1:$ETCD_PORT); from the image's /exports/hostfs.
key=$$(printf %s "$$1" | base64 -w0)
curl -fsS -m 5 -X POST -d "{\"key\":\"$$key\"}" http://127.0.0.1:$ETCD_PORT/v3/kv/range |
  sed -n 's/.*"value":"\([^"]*\)".*/\1/p' | base64 -d
"#;

fn etcd_config(broken: bool) -> String {
    let args: Vec<&str> = if broken {
        vec![
            "/bin/sh",
            "-c",
            "echo 'etcd:broken: this image exits at once' >&2; exit 3",
        ]
    } else {
        vec![
            "/usr/bin/etcd",
            "--name",
            "$NAME",
            "--data-dir",
            "/var/lib/etcd",
            "--listen-client-urls",
            "http://127.0.0.1:$ETCD_PORT",
            "--advertise-client-urls",
            "http://127.0.0.1:$ETCD_PORT",
            "--listen-peer-urls",
            "http://127.0.0.1:$PEER_PORT",
            "--initial-advertise-peer-urls",
            "http://127.0.0.1:$PEER_PORT",
            "--initial-cluster",
            "$NAME=http://127.0.0.1:$PEER_PORT",
            // A one-member cluster: elect itself within ~0.2 s of a restart (the
            // default 1 s election timeout would dominate start → READY timings).
            "--heartbeat-interval",
            "20",
            "--election-timeout",
            "200",
        ]
    };
    config(
        &args,
        &[],
        &[bind("${STATE_DIRECTORY}/${NAME}", "/var/lib/etcd")],
    )
}

fn etcd() -> Vec<(&'static str, Image)> {
    let server = extracted("etcd-server");
    let base = base(&[])
        .dir("var/lib/etcd", 0o700)
        .file("usr/bin/etcd", tree_file(&server, "usr/bin/etcd"), 0o755)
        // 21 MB of Go: stored uncompressed (gzip in a debug test build is slow).
        .build(Compression::None);
    let top = |version: &str, broken: bool| {
        Layer::new()
            .dir("etc", 0o755)
            .file("etc/berth-test-image", format!("etcd {version}\n"), 0o644)
            .dir("exports", 0o755)
            .file("exports/service.template", ETCD_SERVICE, 0o644)
            .file("exports/config.json.template", etcd_config(broken), 0o644)
            .file("exports/tmpfiles.template", ETCD_TMPFILES, 0o644)
            .file("exports/manifest.json", ETCD_MANIFEST, 0o644)
            .dir("exports/hostfs", 0o755)
            .dir("exports/hostfs/usr", 0o755)
            .dir("exports/hostfs/usr/local", 0o755)
            .dir("exports/hostfs/usr/local/bin", 0o755)
            .file("exports/hostfs/usr/local/bin/etcdctl", ETCD_CTL, 0o755)
            .build(Compression::Gzip)
    };
    let image = |version: &str, broken: bool| {
        Image::new(vec![base.clone(), top(version, broken)])
            .cmd(&["/usr/bin/etcd"])
            .label("org.berth.test.version", version)
    };
    vec![
        ("1", image("1", false)),
        ("2", image("2", false)),
        ("broken", image("broken", true)),
        ("atomic", atomic::etcd(&base)),
    ]
}

// ---- flanneld stand-in --------------------------------------------------------------

const FLANNEL_SERVICE: &str = "\
[Unit]
Description=flanneld stand-in ($NAME, a berth system container)
After=network.target
After=$AFTER
Before=$BEFORE

[Service]
Type=notify
ExecStart=$EXEC_START
ExecStop=$EXEC_STOP
WorkingDirectory=$DESTDIR
Delegate=yes
KillMode=mixed
Restart=on-failure
TimeoutStartSec=90
TimeoutStopSec=20

[Install]
WantedBy=multi-user.target
RequiredBy=$REQUIRED_BY
";

const FLANNEL_TMPFILES: &str = "d ${RUN_DIRECTORY}/flannel 0755 root root - -\n";

const FLANNEL_MANIFEST: &str = r#"{
  "version": "1.0",
  "defaultValues": {
    "AFTER": "etcd.service",
    "BEFORE": "engine.service",
    "REQUIRED_BY": "engine.service",
    "ETCD_ENDPOINT": "http://127.0.0.1:2379",
    "FLANNEL_KEY": "/coreos.com/network/config"
  }
}
"#;

/// The stand-in's process: what flanneld does at start, minus the networking.
const FLANNELD: &str = r#"#!/bin/sh
# flanneld stand-in: waits for etcd, reads the network config key through etcd's v3
# JSON gateway, writes /run/flannel/subnet.env (bind-mounted from the host), then
# tells systemd READY=1 and waits for SIGTERM.
trap 'echo "flanneld stand-in: stopping"; exit 0' TERM INT
key=$(printf %s "$FLANNEL_KEY" | base64)
echo "flanneld stand-in: waiting for $FLANNEL_KEY at $ETCD_ENDPOINT"
i=0
while :; do
  resp=$(wget -q -O - --post-data "{\"key\":\"$key\"}" "$ETCD_ENDPOINT/v3/kv/range" 2>/dev/null)
  case $resp in *'"kvs"'*) break ;; esac
  i=$((i + 1))
  if [ $i -ge 300 ]; then echo "flanneld stand-in: no $FLANNEL_KEY in etcd after 60 s" >&2; exit 1; fi
  sleep 0.2
done
config=$(echo "$resp" | sed -n 's/.*"value":"\([^"]*\)".*/\1/p' | base64 -d)
network=$(echo "$config" | sed -n 's/.*"Network": *"\([^"]*\)".*/\1/p')
[ -n "$network" ] || { echo "flanneld stand-in: no Network in $config" >&2; exit 1; }
subnet="${network%.0.0/16}.42.1/24"
printf 'FLANNEL_NETWORK=%s\nFLANNEL_SUBNET=%s\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n' \
  "$network" "$subnet" > /run/flannel/subnet.env.tmp
mv /run/flannel/subnet.env.tmp /run/flannel/subnet.env
echo "flanneld stand-in: wrote /run/flannel/subnet.env: FLANNEL_SUBNET=$subnet"
sd-notify READY=1 "STATUS=subnet $subnet"
while :; do sleep 3600 & wait $!; done
"#;

/// `sd-notify` (tests/system/sd_notify.rs) built statically, cached by source hash.
fn sd_notify() -> Vec<u8> {
    let src = include_str!("sd_notify.rs");
    let out = cache_dir().join(format!("sd-notify-{}", &sha256_hex(src.as_bytes())[..16]));
    if !out.is_file() {
        let tmp = out.with_extension(format!("tmp-{}", std::process::id()));
        let src_file = tmp.with_extension("rs");
        std::fs::write(&src_file, src).unwrap();
        run_ok(
            Command::new("rustc")
                .args([
                    "--edition",
                    "2021",
                    "-O",
                    "-C",
                    "target-feature=+crt-static",
                ])
                .args(["-C", "strip=symbols", "-o"])
                .arg(&tmp)
                .arg(&src_file),
        );
        let _ = std::fs::remove_file(&src_file);
        std::fs::rename(&tmp, &out).unwrap();
    }
    std::fs::read(out).unwrap()
}

fn flannel() -> Image {
    let config = config(
        &["/usr/bin/flanneld"],
        &["ETCD_ENDPOINT=$ETCD_ENDPOINT", "FLANNEL_KEY=$FLANNEL_KEY"],
        &[bind("${RUN_DIRECTORY}/flannel", "/run/flannel")],
    );
    script_image(
        ("usr/bin/flanneld", FLANNELD),
        [FLANNEL_SERVICE, &config, FLANNEL_TMPFILES, FLANNEL_MANIFEST],
    )
}

/// A busybox image whose process is the shell script `bin` (with sd-notify beside it),
/// and `/exports` = [service.template, config.json.template, tmpfiles.template,
/// manifest.json].
fn script_image(bin: (&str, &str), exports: [&str; 4]) -> Image {
    let layer = script_layer(bin, exports).build(Compression::Gzip);
    Image::new(vec![layer]).cmd(&[&format!("/{}", bin.0)])
}

/// [`script_image`]'s one layer, for images that add files (hostfs, mount points).
fn script_layer(bin: (&str, &str), exports: [&str; 4]) -> Layer {
    let [service, config, tmpfiles, manifest] = exports;
    base(&[])
        .file(bin.0, bin.1, 0o755)
        .file("usr/bin/sd-notify", sd_notify(), 0o755)
        .file("exports/service.template", service, 0o644)
        .file("exports/config.json.template", config, 0o644)
        .file("exports/tmpfiles.template", tmpfiles, 0o644)
        .file("exports/manifest.json", manifest, 0o644)
}

// ---- container engine stand-in (scenario 4: a manifest entry that requires flannel) --

const ENGINE_SERVICE: &str = "\
[Unit]
Description=container engine stand-in ($NAME, a berth system container)
After=network.target
After=$AFTER
Requires=$REQUIRES

[Service]
Type=notify
ExecStart=$EXEC_START
ExecStop=$EXEC_STOP
WorkingDirectory=$DESTDIR
Delegate=yes
KillMode=mixed
TimeoutStartSec=60
TimeoutStopSec=20

[Install]
WantedBy=multi-user.target
";

const ENGINE_TMPFILES: &str = "d ${RUN_DIRECTORY}/engine 0755 root root - -\n";

const ENGINE_MANIFEST: &str = r#"{
  "version": "1.0",
  "defaultValues": {"AFTER": "flannel.service", "REQUIRES": "flannel.service"}
}
"#;

/// What scenario 1's plain engine unit does, as a container: uses flannel's subnet.env.
const ENGINED: &str = r#"#!/bin/sh
# container engine stand-in: sources /run/flannel/subnet.env (bind-mounted from the
# host), records what it saw in /run/engine/seen (bind-mounted too), sends READY=1 and
# waits for SIGTERM.
trap 'echo "engine stand-in: stopping"; exit 0' TERM INT
. /run/flannel/subnet.env || { echo "engine stand-in: no /run/flannel/subnet.env" >&2; exit 1; }
echo "FLANNEL_NETWORK=$FLANNEL_NETWORK FLANNEL_SUBNET=$FLANNEL_SUBNET" > /run/engine/seen
echo "engine stand-in: using subnet $FLANNEL_SUBNET"
sd-notify READY=1 "STATUS=subnet $FLANNEL_SUBNET"
while :; do sleep 3600 & wait $!; done
"#;

fn engine() -> Image {
    let config = config(
        &["/usr/bin/engined"],
        &[],
        &[
            bind("${RUN_DIRECTORY}/flannel", "/run/flannel"),
            bind("${RUN_DIRECTORY}/engine", "/run/engine"),
        ],
    );
    script_image(
        ("usr/bin/engined", ENGINED),
        [ENGINE_SERVICE, &config, ENGINE_TMPFILES, ENGINE_MANIFEST],
    )
}

// ---- ready (the boot benchmark: a Type=notify service that is ready at once) ---------

const READY_SERVICE: &str = "\
[Unit]
Description=boot benchmark container ($NAME, a berth system container)

[Service]
Type=notify
NotifyAccess=all
ExecStart=$EXEC_START
WorkingDirectory=$DESTDIR
TimeoutStartSec=300

[Install]
WantedBy=multi-user.target
";

/// Sends READY=1 and waits for SIGTERM: all of its start is the runtime's.
const READYD: &str = r#"#!/bin/sh
trap 'exit 0' TERM INT
sd-notify READY=1
while :; do sleep 3600 & wait $!; done
"#;

/// The boot benchmark's image (benches/boot.sh): `readyd` as a Type=notify service.
fn ready() -> Image {
    let config = config(&["/usr/bin/readyd"], &[], &[]);
    script_image(
        ("usr/bin/readyd", READYD),
        [READY_SERVICE, &config, "", r#"{"version": "1.0"}"#],
    )
}

// ---- healthd (issue 17: a Type=notify service made ready by its health check) -------

const HEALTHD_SERVICE: &str = "\
[Unit]
Description=health-checked container ($NAME, a berth system container)

[Service]
Type=notify
ExecStart=$EXEC_START
WorkingDirectory=$DESTDIR
TimeoutStartSec=60

[Install]
WantedBy=multi-user.target
";

/// Never notifies: berth's health check makes the unit ready once `/tmp/up` exists.
const HEALTHD: &str = r#"#!/bin/sh
trap 'exit 0' TERM INT
echo "healthd: starting"
sleep 2
touch /tmp/up
echo "healthd: up"
while :; do sleep 3600 & wait $!; done
"#;

fn healthd() -> Image {
    let config = config(&["/usr/bin/healthd"], &[], &[]);
    script_image(
        ("usr/bin/healthd", HEALTHD),
        [HEALTHD_SERVICE, &config, "", r#"{"version": "1.0"}"#],
    )
    .healthcheck(json!({
        "Test": ["CMD-SHELL", "test -e /tmp/up"],
        "Interval": 200_000_000i64,
        "StartPeriod": 30_000_000_000i64
    }))
}

// ---- httpd (lighttpd, socket-activated) ----------------------------------------------

const HTTPD_SERVICE: &str = "\
[Unit]
Description=lighttpd ($NAME, a berth system container)
After=network.target

[Service]
Type=exec
ExecStart=$EXEC_START
ExecStop=$EXEC_STOP
WorkingDirectory=$DESTDIR
Delegate=yes
KillMode=mixed
TimeoutStopSec=20

[Install]
WantedBy=multi-user.target
";

const HTTPD_SOCKET: &str = "\
[Unit]
Description=lighttpd socket ($NAME)

[Socket]
ListenStream=127.0.0.1:$PORT

[Install]
WantedBy=sockets.target
";

const HTTPD_MANIFEST: &str = r#"{
  "version": "1.0",
  "defaultValues": {"PORT": "8080"}
}
"#;

/// With a listening fd from systemd lighttpd uses it; without one it binds $PORT itself.
const LIGHTTPD_CONF: &str = r#"server.document-root = "/var/www"
server.systemd-socket-activation = "enable"
server.bind = "127.0.0.1"
include_shell "/bin/sh -c 'echo server.port = ${PORT:-8080}'"
server.upload-dirs = ( "/tmp" )
index-file.names = ( "index.html" )
mimetype.assign = ( ".html" => "text/html" )
"#;

fn httpd() -> Vec<(&'static str, Image)> {
    let server = extracted("lighttpd");
    let base = base(&[
        ("libpcre2-8-0", "libpcre2-8.so.0"),
        ("libnettle8", "libnettle.so.8"),
        ("libxxhash0", "libxxhash.so.0"),
    ])
    .file(
        "usr/sbin/lighttpd",
        tree_file(&server, "usr/sbin/lighttpd"),
        0o755,
    )
    .dir("etc/lighttpd", 0o755)
    .file("etc/lighttpd/lighttpd.conf", LIGHTTPD_CONF, 0o644)
    .dir("var/www", 0o755)
    .build(Compression::Gzip);
    let config = config(
        &[
            "/usr/sbin/lighttpd",
            "-D",
            "-f",
            "/etc/lighttpd/lighttpd.conf",
        ],
        &["PORT=$PORT"],
        &[],
    );
    let image = |version: &str| {
        let top = Layer::new()
            .dir("var", 0o755)
            .dir("var/www", 0o755)
            .file(
                "var/www/index.html",
                format!("<h1>berth httpd {version}</h1>\n"),
                0o644,
            )
            .dir("exports", 0o755)
            .file("exports/service.template", HTTPD_SERVICE, 0o644)
            .file("exports/socket.template", HTTPD_SOCKET, 0o644)
            .file("exports/config.json.template", config.clone(), 0o644)
            .file("exports/manifest.json", HTTPD_MANIFEST, 0o644)
            .build(Compression::Gzip);
        Image::new(vec![base.clone(), top])
            .cmd(&[
                "/usr/sbin/lighttpd",
                "-D",
                "-f",
                "/etc/lighttpd/lighttpd.conf",
            ])
            .label("org.berth.test.version", version)
    };
    vec![("1", image("1")), ("2", image("2"))]
}
