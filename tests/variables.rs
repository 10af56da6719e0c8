//! The variables of `berth install`, as `atomic install --system` set them:
//! an image whose unit template uses every one of atomic's variables is
//! installed offline into a temporary root, and each renders to berth's
//! value (docs/variables.md).
//!
//! Every test needs root; without it it prints one line and returns (or
//! fails under `BERTH_TEST_REQUIRE_ALL=1`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

mod common;

use common::oci::{Compression, Image, Layer, OciLayout};
use common::{require_root, Berth};

const SERVICE: &str = "\
[Unit]
Description=vars $NAME caps $ALL_PROCESS_CAPABILITIES

[Service]
ExecStartPre=$EXEC_STARTPRE
ExecStart=$EXEC_START
ExecStop=$EXEC_STOP
ExecStopPost=$EXEC_STOPPOST
PIDFile=$PIDFILE
WorkingDirectory=$DESTDIR
Environment=ATOMIC=$ATOMIC
Environment=RUNTIME=$RUNTIME
Environment=IMAGE_ID=$IMAGE_ID
Environment=IMAGE_NAME=$IMAGE_NAME
Environment=HOST_UID=$HOST_UID
Environment=HOST_GID=$HOST_GID
Environment=RUN_DIRECTORY=$RUN_DIRECTORY
Environment=STATE_DIRECTORY=$STATE_DIRECTORY
Environment=CONF_DIRECTORY=$CONF_DIRECTORY
Environment=UUID=$UUID
";

/// A root with an image using every variable; returns berth, the
/// reference, the manifest digest `berth pull` reported, and the layout's dir.
fn setup() -> (Berth, String, String, tempfile::TempDir) {
    let layer = Layer::new()
        .dir("exports", 0o755)
        .file("exports/service.template", SERVICE, 0o644)
        .build(Compression::Gzip);
    let image = Image::new(vec![layer]).cmd(&["/bin/true"]);
    let dir = common::tempdir();
    let mut l = OciLayout::create(dir.path().join("layout"));
    l.add_image("t", &image);
    let reference = format!("oci:{}:t", dir.path().join("layout").display());
    let b = Berth::new();
    // The root (an image being built) has its own berth and berth-run.
    let bin = b.root().join("usr/bin");
    std::fs::create_dir_all(&bin).unwrap();
    for f in ["berth", "berth-run"] {
        std::fs::write(bin.join(f), "").unwrap();
    }
    let pulled = b.json(&["pull", &reference]);
    let digest = pulled["digest"].as_str().unwrap().to_string();
    (b, reference, digest, dir)
}

fn unit(b: &Berth, name: &str) -> String {
    std::fs::read_to_string(b.root().join(format!("etc/systemd/system/{name}.service"))).unwrap()
}

/// The value of the first `KEY=` line (directive or `Environment=KEY=`).
fn line<'a>(unit: &'a str, key: &str) -> &'a str {
    unit.lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{key}="))
                .or_else(|| l.strip_prefix(&format!("Environment={key}=")))
        })
        .unwrap_or_else(|| panic!("no {key}= in\n{unit}"))
}

#[test]
fn every_atomic_variable_renders_as_atomic_set_it() {
    if !require_root() {
        return;
    }
    let (b, reference, digest, _keep) = setup();
    b.run(&["install", "--name", "vars", &reference]).ok();
    let u = unit(&b, "vars");
    let hex = digest.strip_prefix("sha256:").unwrap();
    let pid = "/run/container-vars.pid";
    for (key, want) in [
        ("ExecStartPre", String::new()),
        (
            "ExecStart",
            format!("/usr/bin/berth-run --pid-file {pid} vars"),
        ),
        ("ExecStop", "/usr/bin/berth kill --if-running vars".into()),
        (
            "ExecStopPost",
            format!("/usr/bin/berth-run --cleanup --pid-file {pid} vars"),
        ),
        ("PIDFile", pid.into()),
        (
            "WorkingDirectory",
            "/var/lib/berth/containers/vars.0".into(),
        ),
        ("ATOMIC", "/usr/bin/berth".into()),
        ("RUNTIME", "/usr/bin/berth-run".into()),
        ("IMAGE_ID", hex.into()),
        ("IMAGE_NAME", reference.clone()),
        ("HOST_UID", "0".into()),
        ("HOST_GID", "0".into()),
        ("RUN_DIRECTORY", "/run".into()),
        ("STATE_DIRECTORY", "/var/lib".into()),
        ("CONF_DIRECTORY", "/etc".into()),
    ] {
        assert_eq!(line(&u, key), want, "{key}");
    }
    assert_eq!(hex.len(), 64);
    let uuid = line(&u, "UUID");
    assert_eq!(uuid.len(), 36, "{uuid}");
    assert_eq!(uuid.matches('-').count(), 4, "{uuid}");
    assert!(
        line(&u, "Description").contains("caps \"CAP_"),
        "ALL_PROCESS_CAPABILITIES: {u}"
    );
}

#[test]
fn runtime_is_the_executable_and_the_unit_runs_it() {
    if !require_root() {
        return;
    }
    let (b, reference, _digest, _keep) = setup();
    // crun as the root has it, on systemd's service PATH.
    let sbin = b.root().join("usr/sbin");
    std::fs::create_dir_all(&sbin).unwrap();
    std::fs::write(sbin.join("crun"), "").unwrap();
    b.run(&[
        "--runtime",
        "crun",
        "install",
        "--name",
        "viacrun",
        "--set",
        "PIDFILE=/run/viacrun/main.pid",
        &reference,
    ])
    .ok();
    let u = unit(&b, "viacrun");
    assert_eq!(line(&u, "RUNTIME"), "/usr/sbin/crun");
    assert_eq!(
        line(&u, "ExecStart"),
        "/usr/bin/berth-run --runtime /usr/sbin/crun --pid-file /run/viacrun/main.pid viacrun"
    );
    assert_eq!(
        line(&u, "ExecStopPost"),
        "/usr/bin/berth-run --runtime /usr/sbin/crun --cleanup --pid-file /run/viacrun/main.pid viacrun"
    );
    assert_eq!(line(&u, "PIDFile"), "/run/viacrun/main.pid");
}

#[test]
fn a_pid_file_outside_a_plain_absolute_path_is_refused_naming_pidfile() {
    if !require_root() {
        return;
    }
    let (b, reference, _digest, _keep) = setup();
    for bad in ["run/x.pid", "/run/../etc/passwd", "/run/a b.pid"] {
        b.run(&[
            "install",
            "--name",
            "badpid",
            "--set",
            &format!("PIDFILE={bad}"),
            &reference,
        ])
        .code(2)
        .stderr_has(&["PIDFILE", bad]);
        assert!(!b.root().join("etc/systemd/system/badpid.service").exists());
    }
}
