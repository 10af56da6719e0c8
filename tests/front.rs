#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]
//! The `berth` front and the full binary `berth-core` (src/cli/front.rs):
//! the front does not load libostree, answers `list` and `status` exactly as
//! the full binary does, hands every other verb over with argv unchanged,
//! and finds the full binary beside itself or in `../libexec/berth/`.
//!
//! The comparisons need root for the install (offline, into a temp root);
//! the rest needs only the built binaries.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::deploy::layout_one;
use common::oci::{Compression, Image, Layer};
use common::{require, require_all, Berth};

const FRONT: &str = env!("CARGO_BIN_EXE_berth");
const CORE: &str = env!("CARGO_BIN_EXE_berth-core");

/// The NEEDED entries of an ELF file's dynamic section.
fn needed(bin: &str) -> Vec<String> {
    let out = Command::new("readelf")
        .args(["-d", "-W", bin])
        .output()
        .expect("readelf");
    assert!(out.status.success(), "readelf -d {bin} failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| Some(l.split('[').nth(1)?.trim_end_matches(']').to_string()))
        .collect()
}

#[test]
fn the_front_does_not_link_libostree_and_the_full_binary_does() {
    if !require("readelf") {
        return;
    }
    let front = needed(FRONT);
    assert!(
        front.iter().any(|l| l.starts_with("libc.so")),
        "no libc among {front:?}: the NEEDED entries were not read"
    );
    for lib in ["libostree", "libgio", "libcurl", "libgpgme", "libarchive"] {
        assert!(
            !front.iter().any(|l| l.starts_with(lib)),
            "the berth front needs {lib}: {front:?}"
        );
    }
    // The same check finds it in the full binary, so it can fail.
    assert!(
        needed(CORE).iter().any(|l| l.starts_with("libostree")),
        "berth-core does not link libostree?"
    );
}

/// stdout, stderr and exit code of `bin --root ROOT ARGS…` in `b`'s environment.
fn answer(b: &Berth, bin: &str, args: &[&str]) -> (i32, String, String) {
    let o = b
        .command_of(Path::new(bin), args)
        .output()
        .expect("run berth");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Asserts the front and the full binary answer `args` identically; returns the answer.
#[track_caller]
fn same(b: &Berth, args: &[&str]) -> (i32, String, String) {
    let front = answer(b, FRONT, args);
    let core = answer(b, CORE, args);
    assert_eq!(
        front, core,
        "berth {args:?}: front (left) and berth-core (right) differ"
    );
    front
}

#[test]
fn list_and_status_answer_alike_with_nothing_installed() {
    let b = Berth::new();
    let (code, out, _) = same(&b, &["list"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("NAME "), "{out}");
    let (code, out, _) = same(&b, &["--json", "list"]);
    assert_eq!((code, out.trim()), (0, "[]"));
    let (code, _, err) = same(&b, &["status", "nosuch"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("nosuch"), "{err}");
    let (code, _, _) = same(&b, &["--json", "status", "nosuch"]);
    assert_eq!(code, 3);
    let (code, _, err) = same(&b, &["status", "Bad/Name"]);
    assert_eq!(code, 2, "{err}");
    // clap's own answers come from the one definition.
    let (code, out, _) = same(&b, &["--version"]);
    assert_eq!(
        (code, out.trim()),
        (0, concat!("berth ", env!("CARGO_PKG_VERSION")))
    );
    let (code, _, err) = same(&b, &["status"]);
    assert_eq!(code, 2);
    assert!(err.contains("Usage: berth status"), "{err}");
    let (code, out, _) = same(&b, &["list", "--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("Usage: berth list"), "{out}");
}

fn app_image() -> Image {
    let service = "[Unit]\nDescription=$NAME\n[Service]\nExecStart=$EXEC_START\n\
                   ExecStop=$EXEC_STOP\n[Install]\nWantedBy=multi-user.target\n";
    let layer = Layer::new()
        .dir("bin", 0o755)
        .file("bin/app", "#!/bin/sh\n", 0o755)
        .dir("exports", 0o755)
        .file("exports/service.template", service, 0o644)
        .dir("exports/hostfs", 0o755)
        .dir("exports/hostfs/etc", 0o755)
        .file("exports/hostfs/etc/app.conf", "port=1\n", 0o644)
        .build(Compression::Gzip);
    Image::new(vec![layer]).cmd(&["/bin/app"])
}

#[test]
fn list_and_status_answer_alike_with_a_container_installed() {
    if !require_all(&["systemctl"]) {
        return;
    }
    let (reference, _keep) = layout_one(&app_image());
    let b = Berth::new();
    let root = b.root();
    // The root has this very front at its path, so the units name it: the
    // full binary records the front that started it, not itself.
    let front_in_root = root.join(FRONT.trim_start_matches('/'));
    std::fs::create_dir_all(front_in_root.parent().unwrap()).unwrap();
    std::fs::write(&front_in_root, "").unwrap();
    b.run(&["install", "--name", "app", &reference]).ok();
    let unit = std::fs::read_to_string(root.join("etc/systemd/system/app.service")).unwrap();
    assert!(
        unit.contains(&format!("\nExecStop={FRONT} kill --if-running app\n")),
        "{unit}"
    );

    let (code, out, _) = same(&b, &["list"]);
    assert_eq!(code, 0);
    assert!(
        out.lines().nth(1).is_some_and(|l| l.starts_with("app ")),
        "{out}"
    );
    let (code, out, _) = same(&b, &["--json", "list"]);
    assert_eq!(code, 0);
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows[0]["name"], "app", "{out}");
    let (code, out, _) = same(&b, &["status", "app"]);
    assert_eq!(code, 0);
    assert!(out.contains("\n  /etc/app.conf (ok)"), "{out}");
    std::fs::write(root.join("etc/app.conf"), "edited\n").unwrap();
    let (code, out, _) = same(&b, &["--json", "status", "app"]);
    assert_eq!(code, 0);
    let s: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["files"][0]["state"], "modified", "{out}");
    let (code, _, err) = same(&b, &["status", "other"]);
    assert_eq!(code, 3, "{err}");
}

/// A directory with a copy of the front at `bin/berth` (a copy, not a link:
/// the front looks for the full binary relative to its real path).
fn installed_front(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let front = bin.join("berth");
    std::fs::copy(FRONT, &front).unwrap();
    front
}

#[test]
fn the_front_finds_the_full_binary_in_libexec_or_names_both_places() {
    let b = Berth::new();
    let dir = b.dir().join("prefix");
    let front = installed_front(&dir);
    let front = front.to_str().unwrap();

    // Nowhere: a verb that needs the full binary fails naming both places;
    // the verbs the front answers still work.
    let (code, _, err) = answer(&b, front, &["images"]);
    assert_eq!(code, 1, "{err}");
    for place in ["bin/berth-core", "libexec/berth/berth-core"] {
        assert!(err.contains(&format!("prefix/{place}")), "{place}: {err}");
    }
    assert_eq!(answer(&b, front, &["list"]).0, 0);

    // In libexec/berth/: the verb runs there, with argv[0] kept as given.
    let libexec = dir.join("libexec/berth");
    std::fs::create_dir_all(&libexec).unwrap();
    std::os::unix::fs::symlink(CORE, libexec.join("berth-core")).unwrap();
    let via_front = answer(&b, front, &["--json", "images"]);
    assert_eq!(via_front.0, 0, "{}", via_front.2);
    assert_eq!(via_front, answer(&b, CORE, &["--json", "images"]));
    let (code, _, err) = answer(&b, front, &["images", "inspect"]);
    assert_eq!(code, 2);
    assert!(err.contains("Usage: berth images inspect"), "{err}");
}

#[test]
fn verbs_of_the_full_binary_get_argv_unchanged() {
    let b = Berth::new();
    // Parsed by the front, run by berth-core: an error only the full binary
    // can give (no such image in the store) comes back with its exit code.
    let front = answer(&b, FRONT, &["images", "rm", "example.com/nosuch:1"]);
    let core = answer(&b, CORE, &["images", "rm", "example.com/nosuch:1"]);
    assert_eq!(front, core);
    assert_eq!(front.0, 3, "{}", front.2);
    assert!(front.2.contains("example.com/nosuch:1"), "{}", front.2);
}
