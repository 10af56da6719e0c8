//! Scenario 1's etcd and flannel in the shapes of the published Project Atomic
//! system containers (`etcd.tar:atomic`, `flannel.tar:atomic`), as opposed to the
//! berth-shaped `:1` tags the other scenarios use.
//!
//! What makes them atomic-shaped, and what scenario 1 checks of it:
//!
//! - units with neither `Delegate=` nor `KillMode=` (berth adds both in a drop-in it
//!   owns), `RuntimeDirectory=${NAME}`; etcd `Type=simple` (no `Type=` at all),
//!   flannel `Type=notify` + `NotifyAccess=all`, `Before=docker.service`,
//!   `ExecStopPost=/bin/rm` of docker's drop-in, `RequiredBy=$REQUIRED_BY`;
//! - tmpfiles with `${HOST_UID}`/`${HOST_GID}` (etcd), and `D`, `d`, `r` lines
//!   (flannel: its run dir, docker's drop-in dir, the drop-in removed at boot);
//! - hostfs: etcd's `/etc/etcd/etcd.conf` renamed to `$CONF_DIRECTORY/$NAME/etcd.conf`
//!   and bound read-only at `/etc/etcd`; flannel's `/etc/sysconfig/flanneld` (a file)
//!   and `/etc/flanneld` (an **empty directory**), both bound read-write;
//! - flannel's config written whole, not from berth's skeleton: no pid namespace,
//!   explicit capabilities with `CAP_NET_ADMIN` in all five sets,
//!   `noNewPrivileges: false`, the host's `/dev` rbound, a read-only cgroup mount,
//!   devices allow-all, its own short maskedPaths/readonlyPaths, and docker's
//!   `docker.service.d` bound read-write: the stand-in writes docker's drop-in there,
//!   as atomic's flanneld-run.sh does.

use serde_json::{json, Value};

use crate::common::oci::{Blob, Compression, Image, Layer};

use super::{bind, config, script_layer, ETCD_CTL};

// ---- etcd ------------------------------------------------------------------------

const ETCD_SERVICE: &str = "\
[Unit]
Description=etcd key-value store ($NAME, atomic-shaped)
After=network.target

[Service]
ExecStart=$EXEC_START
ExecStop=$EXEC_STOP
Restart=on-failure
WorkingDirectory=$DESTDIR
RuntimeDirectory=${NAME}

[Install]
WantedBy=multi-user.target
";

const ETCD_TMPFILES: &str = "\
d ${STATE_DIRECTORY}/etcd 0700 ${HOST_UID} ${HOST_GID} - -
d ${STATE_DIRECTORY}/etcd/${NAME}.etcd 0700 ${HOST_UID} ${HOST_GID} - -
Z ${STATE_DIRECTORY}/etcd/${NAME}.etcd 0700 ${HOST_UID} ${HOST_GID} - -
d ${RUN_DIRECTORY}/${NAME} - - - - -
";

const ETCD_MANIFEST: &str = r#"{
  "version": "1.0",
  "defaultValues": {"CONF_DIRECTORY": "/etc", "ETCD_PORT": "2379"},
  "renameFiles": {
    "/etc/etcd/etcd.conf": "$CONF_DIRECTORY/$NAME/etcd.conf",
    "/usr/local/bin/etcdctl": "/usr/local/bin/${NAME}ctl"
  },
  "installedFilesTemplate": ["/usr/local/bin/etcdctl"]
}
"#;

/// etcd's settings on the host (`/exports/hostfs/etc/etcd/etcd.conf`), read by
/// `etcd-env` through the read-only bind of `$CONF_DIRECTORY/$NAME` at `/etc/etcd`.
const ETCD_CONF: &str = "\
# etcd settings (berth test image), sourced by /usr/bin/etcd-env in the container
ETCD_LISTEN_CLIENT_URLS=http://127.0.0.1:2379
ETCD_ADVERTISE_CLIENT_URLS=http://127.0.0.1:2379
ETCD_LISTEN_PEER_URLS=http://127.0.0.1:2380
ETCD_INITIAL_ADVERTISE_PEER_URLS=http://127.0.0.1:2380
# a one-member cluster: elect itself within ~0.2 s of a restart
ETCD_HEARTBEAT_INTERVAL=20
ETCD_ELECTION_TIMEOUT=200
";

/// The container's process: etcd with its settings from the environment.
const ETCD_ENV: &str = r#"#!/bin/sh
# Exports /etc/etcd/etcd.conf (the host's, bound read-only) and the member name, then
# runs "$@" (etcd reads ETCD_* variables as its flags).
export ETCD_NAME="${NAME:-etcd}" ETCD_DATA_DIR=/var/lib/etcd
export ETCD_INITIAL_CLUSTER="$ETCD_NAME=http://127.0.0.1:2380"
if [ -e /etc/etcd/etcd.conf ]; then
  set -a
  . /etc/etcd/etcd.conf
  set +a
fi
exec "$@"
"#;

fn etcd_config() -> String {
    config(
        &["/usr/bin/etcd-env", "/usr/bin/etcd"],
        &["NAME=$NAME"],
        &[
            bind("${STATE_DIRECTORY}/etcd/${NAME}.etcd", "/var/lib/etcd"),
            bind("${RUN_DIRECTORY}/${NAME}", "/var/run/etcd"),
            json!({"type": "bind", "source": "$CONF_DIRECTORY/$NAME", "destination": "/etc/etcd",
                   "options": ["rbind", "ro", "rprivate"]}),
        ],
    )
}

/// `etcd.tar:atomic`: `base` (etcd-server on busybox) and the atomic-shaped exports.
pub(super) fn etcd(base: &Blob) -> Image {
    let top = Layer::new()
        .dir("etc", 0o755)
        .dir("etc/etcd", 0o755)
        .file("etc/berth-test-image", "etcd atomic\n", 0o644)
        .dir("var", 0o755)
        .dir("var/run", 0o755)
        .dir("var/run/etcd", 0o755)
        .file("usr/bin/etcd-env", ETCD_ENV, 0o755)
        .dir("exports", 0o755)
        .file("exports/service.template", ETCD_SERVICE, 0o644)
        .file("exports/config.json.template", etcd_config(), 0o644)
        .file("exports/tmpfiles.template", ETCD_TMPFILES, 0o644)
        .file("exports/manifest.json", ETCD_MANIFEST, 0o644)
        .dir("exports/hostfs", 0o755)
        .dir("exports/hostfs/etc", 0o755)
        .dir("exports/hostfs/etc/etcd", 0o755)
        .file("exports/hostfs/etc/etcd/etcd.conf", ETCD_CONF, 0o644)
        .dir("exports/hostfs/usr", 0o755)
        .dir("exports/hostfs/usr/local", 0o755)
        .dir("exports/hostfs/usr/local/bin", 0o755)
        .file("exports/hostfs/usr/local/bin/etcdctl", ETCD_CTL, 0o755)
        .build(Compression::Gzip);
    Image::new(vec![base.clone(), top])
        .cmd(&["/usr/bin/etcd-env", "/usr/bin/etcd"])
        .label("org.berth.test.version", "atomic")
}

// ---- flanneld stand-in ----------------------------------------------------------------

const FLANNEL_SERVICE: &str = "\
[Unit]
Description=flanneld stand-in ($NAME, atomic-shaped)
After=network.target
After=$AFTER
Before=docker.service

[Service]
Type=notify
NotifyAccess=all
ExecStart=$EXEC_START
ExecStop=$EXEC_STOP
ExecStopPost=/bin/rm /etc/systemd/system/docker.service.d/$NAME.conf
Restart=on-failure
WorkingDirectory=$DESTDIR
RuntimeDirectory=${NAME}

[Install]
WantedBy=multi-user.target
RequiredBy=$REQUIRED_BY
";

const FLANNEL_TMPFILES: &str = "\
D ${RUN_DIRECTORY}/${NAME} - - - - -
d /etc/systemd/system/docker.service.d - - - - -
r /etc/systemd/system/docker.service.d/$NAME.conf - - - - -
";

const FLANNEL_MANIFEST: &str = r#"{
  "version": "1.0",
  "defaultValues": {
    "FLANNELD_ETCD_PREFIX": "/atomic.io/network",
    "FLANNELD_ETCD_ENDPOINTS": "http://127.0.0.1:2379",
    "AFTER": "etcd.service",
    "REQUIRED_BY": "docker.service"
  }
}
"#;

/// `/exports/hostfs/etc/sysconfig/flanneld`: the host's flanneld settings, bound rw.
const FLANNEL_SYSCONFIG: &str = "\
# flanneld settings (berth test image), sourced by /usr/bin/flanneld-run
FLANNEL_ETCD_ENDPOINTS=\"http://127.0.0.1:2379\"
FLANNEL_ETCD_PREFIX=\"/atomic.io/network\"
FLANNEL_OPTIONS=\"\"
";

/// The stand-in's process, in the shape of atomic's flanneld-run.sh minus flanneld.
const FLANNELD_RUN: &str = r#"#!/bin/sh
# flanneld stand-in: writes docker's drop-in (docker.service.d, bound rw), reads
# /etc/sysconfig/flanneld, waits for $PREFIX/config in etcd, writes /run/flannel/subnet.env
# and /run/flannel/docker (the host's /run/$NAME), records its lease in /etc/flanneld
# (the host's, an empty dir from the image's hostfs, bound rw), READY=1, waits for TERM.
trap 'echo "flanneld stand-in: stopping"; exit 0' TERM INT
printf '[Service]\nEnvironmentFile=-/run/%s/docker\n' "$NAME" \
  > "/etc/systemd/system/docker.service.d/$NAME.conf" || exit 1
echo "flanneld stand-in: wrote /etc/systemd/system/docker.service.d/$NAME.conf"
. /etc/sysconfig/flanneld || exit 1
endpoint=${FLANNEL_ETCD_ENDPOINTS:-$FLANNELD_ETCD_ENDPOINTS}
prefix=${FLANNEL_ETCD_PREFIX:-$FLANNELD_ETCD_PREFIX}
echo "flanneld stand-in: /etc/sysconfig/flanneld says $endpoint $prefix"
rm -f /run/flannel/subnet.env
key=$(printf %s "$prefix/config" | base64)
i=0
while :; do
  resp=$(wget -q -O - --post-data "{\"key\":\"$key\"}" "$endpoint/v3/kv/range" 2>/dev/null)
  case $resp in *'"kvs"'*) break ;; esac
  i=$((i + 1))
  if [ $i -ge 300 ]; then echo "flanneld stand-in: no $prefix/config after 60 s" >&2; exit 1; fi
  sleep 0.2
done
config=$(echo "$resp" | sed -n 's/.*"value":"\([^"]*\)".*/\1/p' | base64 -d)
network=$(echo "$config" | sed -n 's/.*"Network": *"\([^"]*\)".*/\1/p')
[ -n "$network" ] || { echo "flanneld stand-in: no Network in $config" >&2; exit 1; }
subnet="${network%.0.0/16}.42.1/24"
printf 'FLANNEL_NETWORK=%s\nFLANNEL_SUBNET=%s\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n' \
  "$network" "$subnet" > /run/flannel/subnet.env
printf 'DOCKER_NETWORK_OPTIONS=" --bip=%s --ip-masq=true --mtu=1450"\n' "$subnet" \
  > /run/flannel/docker
printf 'network %s\nsubnet %s\n' "$network" "$subnet" > /etc/flanneld/lease || exit 1
echo "flanneld stand-in: wrote /run/flannel/subnet.env and /etc/flanneld/lease: FLANNEL_SUBNET=$subnet"
sd-notify READY=1 "STATUS=subnet $subnet"
while :; do sleep 3600 & wait $!; done
"#;

/// The same five capability sets.
fn capabilities() -> Value {
    let caps = json!([
        "CAP_DAC_READ_SEARCH",
        "CAP_AUDIT_WRITE",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_NET_ADMIN"
    ]);
    json!({"bounding": caps, "permitted": caps, "inheritable": caps,
           "effective": caps, "ambient": caps})
}

fn rbind(source: &str, destination: &str, extra: &[&str]) -> Value {
    let mut options = vec!["rbind"];
    options.extend(extra);
    json!({"type": "bind", "source": source, "destination": destination, "options": options})
}

/// flannel's config.json.template, written whole.
fn flannel_config() -> String {
    let c = json!({
        "ociVersion": "1.0.0",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["/usr/bin/flanneld-run"],
            "env": [
                "PATH=/usr/sbin:/usr/bin",
                "FLANNELD_ETCD_PREFIX=$FLANNELD_ETCD_PREFIX",
                "FLANNELD_ETCD_ENDPOINTS=$FLANNELD_ETCD_ENDPOINTS",
                "NAME=$NAME"
            ],
            "cwd": "/",
            "capabilities": capabilities(),
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": false
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "$NAME",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            rbind("/dev", "/dev", &["rw", "mode=755"]),
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
            rbind("/etc/systemd/system/docker.service.d", "/etc/systemd/system/docker.service.d",
                  &["rw", "mode=755"]),
            rbind("${RUN_DIRECTORY}/${NAME}", "/run/flannel", &["rw", "rprivate"]),
            rbind("/etc/sysconfig/flanneld", "/etc/sysconfig/flanneld", &["rw", "rprivate"]),
            rbind("/etc/flanneld", "/etc/flanneld", &["rw", "rprivate"])
        ],
        "linux": {
            "resources": {"devices": [{"allow": true, "access": "rwm"}]},
            "namespaces": [{"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": ["/proc/kcore", "/proc/latency_stats", "/proc/timer_stats",
                            "/proc/sched_debug"],
            "readonlyPaths": ["/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq",
                              "/proc/sysrq-trigger"]
        }
    });
    serde_json::to_string_pretty(&c).unwrap()
}

/// `flannel.tar:atomic`: the stand-in script on busybox, mount points for its binds,
/// and hostfs with `/etc/sysconfig/flanneld` and the empty `/etc/flanneld`.
pub(super) fn flannel() -> Image {
    let config = flannel_config();
    let layer = script_layer(
        ("usr/bin/flanneld-run", FLANNELD_RUN),
        [FLANNEL_SERVICE, &config, FLANNEL_TMPFILES, FLANNEL_MANIFEST],
    )
    .dir("run/flannel", 0o755)
    .dir("etc/flanneld", 0o755)
    .dir("etc/sysconfig", 0o755)
    .file("etc/sysconfig/flanneld", "", 0o644)
    .dir("etc/systemd", 0o755)
    .dir("etc/systemd/system", 0o755)
    .dir("etc/systemd/system/docker.service.d", 0o755)
    .dir("exports/hostfs", 0o755)
    .dir("exports/hostfs/etc", 0o755)
    .dir("exports/hostfs/etc/sysconfig", 0o755)
    .file(
        "exports/hostfs/etc/sysconfig/flanneld",
        FLANNEL_SYSCONFIG,
        0o644,
    )
    .dir("exports/hostfs/etc/flanneld", 0o755)
    .build(Compression::Gzip);
    Image::new(vec![layer])
        .cmd(&["/usr/bin/flanneld-run"])
        .label("org.berth.test.version", "atomic")
}
