//! The update gate's images (the `gate` scenario): `soak1.tar` … `soak5.tar`, each
//! with one tag `cur`, so a copy of one in the guest is a tag that moves when another
//! is copied over it. Version 1 and 3 serve; version 2 sends READY=1 and exits
//! (status 1) 3 s later, which only a soak catches. Versions 4 and 5 serve with an
//! image `Healthcheck` (`/tmp/healthy` exists, every 200 ms, 3 retries): 4 never
//! creates it, so berth-run holds READY=1, stops it after 3 failures and exits 69;
//! 5 creates it before it notifies.

use serde_json::{json, Value};

use super::{config, script_image};
use crate::common::oci::Image;

const SOAK_SERVICE: &str = "\
[Unit]
Description=update gate test container ($NAME, a berth system container)
After=$AFTER

[Service]
Type=notify
NotifyAccess=all
ExecStart=$EXEC_START
ExecStop=$EXEC_STOP
WorkingDirectory=$DESTDIR
Restart=on-failure
RestartSec=1
TimeoutStartSec=30

[Install]
WantedBy=multi-user.target
";

const SOAK_TMPFILES: &str = "d ${RUN_DIRECTORY}/$NAME 0755 root root - -\n";

const SOAK_MANIFEST: &str = r#"{
  "version": "1.0",
  "defaultValues": {"AFTER": "network.target"}
}
"#;

/// The versions with a health check.
pub const HEALTH_CHECKED: [u32; 2] = [4, 5];

/// Version 2 gives up 3 s after it said it was ready; 5 is healthy before it says so.
fn soakd(version: u32) -> String {
    let body = if version == 2 {
        "sleep 3\necho \"soakd 2: giving up\" >&2\nexit 1\n"
    } else {
        "while :; do sleep 3600 & wait $!; done\n"
    };
    let healthy = if version == 5 {
        ": > /tmp/healthy\n"
    } else {
        ""
    };
    format!(
        "#!/bin/sh\ntrap 'exit 0' TERM INT\necho \"soakd {version}: started\"\n\
         {healthy}sd-notify READY=1\n{body}"
    )
}

/// The image of `version`.
pub fn soak(version: u32) -> Image {
    let config = config(&["/usr/bin/soakd"], &[], &[] as &[Value]);
    let script = soakd(version);
    let image = script_image(
        ("usr/bin/soakd", &script),
        [SOAK_SERVICE, &config, SOAK_TMPFILES, SOAK_MANIFEST],
    )
    .label("org.berth.test.version", &version.to_string());
    if !HEALTH_CHECKED.contains(&version) {
        return image;
    }
    image.healthcheck(json!({
        "Test": ["CMD-SHELL",
                 format!("test -e /tmp/healthy || {{ echo 'soakd {version}: not healthy'; exit 1; }}")],
        "Interval": 200_000_000i64,
        "Retries": 3,
        "StartPeriod": 0
    }))
}
