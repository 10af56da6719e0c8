#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]
//! CLI contract: exit codes, `--json` shapes and error messages for bad
//! input. Needs only the built binary (no root, no registry).

use std::process::Command;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn berth(root: &std::path::Path, args: &[&str], conf: &std::path::Path) -> Out {
    let o = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("--root")
        .arg(root)
        .args(args)
        .env("CONTAINERS_REGISTRIES_CONF", conf)
        .env_remove("RUST_LOG")
        .output()
        .expect("run berth");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn setup(conf_text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("registries.conf");
    std::fs::write(&conf, conf_text).unwrap();
    (dir, conf)
}

#[test]
fn help_lists_exit_codes_and_verbs() {
    let (dir, conf) = setup("");
    let o = berth(dir.path(), &["--help"], &conf);
    assert_eq!(o.code, 0);
    for needle in ["pull", "images", "Exit codes", "6  integrity"] {
        assert!(
            o.stdout.contains(needle),
            "{needle} missing from --help:\n{}",
            o.stdout
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    let (dir, conf) = setup("");
    for args in [
        vec!["frobnicate"],
        vec!["pull"],
        vec!["pull", "--jobs", "0", "127.0.0.1:5000/a"],
        vec!["pull", "--platform", "linux", "127.0.0.1:5000/a"],
        vec![
            "pull",
            "--creds",
            "user-without-password",
            "127.0.0.1:5000/a",
        ],
    ] {
        let o = berth(dir.path(), &args, &conf);
        assert_eq!(o.code, 2, "{args:?}: {}", o.stderr);
    }
}

#[test]
fn malformed_references_exit_2_naming_the_part() {
    let (dir, conf) = setup("");
    for (reference, part) in [
        ("127.0.0.1:5000/Foo/bar", "lowercase"),
        ("127.0.0.1:5000/x:bad tag", "tag"),
        ("127.0.0.1:5000/x@sha256:xyz", "digest"),
        ("", "empty"),
    ] {
        let o = berth(dir.path(), &["pull", reference], &conf);
        assert_eq!(o.code, 2, "{reference:?}: {}", o.stderr);
        assert!(
            o.stderr.contains(part),
            "{reference:?}: expected {part:?} in {}",
            o.stderr
        );
    }
}

#[test]
fn short_name_without_search_registries_is_a_clear_error() {
    let (dir, conf) = setup("");
    let o = berth(dir.path(), &["pull", "busybox"], &conf);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(
        o.stderr.contains("unqualified-search-registries"),
        "{}",
        o.stderr
    );
}

#[test]
fn unreachable_registry_exits_5() {
    let (dir, conf) = setup("");
    // Port 1 on loopback: nothing listens there.
    let o = berth(
        dir.path(),
        &["pull", "--tls-verify=false", "127.0.0.1:1/nothing/here:1"],
        &conf,
    );
    assert_eq!(o.code, 5, "{}", o.stderr);
    assert!(o.stderr.contains("127.0.0.1:1"), "{}", o.stderr);
}

#[test]
fn empty_store_lists_nothing_and_unknown_images_exit_3() {
    let (dir, conf) = setup("");
    let o = berth(dir.path(), &["images", "--json"], &conf);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&o.stdout).unwrap(),
        serde_json::json!([])
    );
    for args in [
        vec!["images", "inspect", "127.0.0.1:5000/none:1"],
        vec!["images", "rm", "127.0.0.1:5000/none:1"],
        vec![
            "images",
            "checkout",
            "127.0.0.1:5000/none:1",
            "/nonexistent/x",
        ],
    ] {
        let o = berth(dir.path(), &args, &conf);
        assert_eq!(o.code, 3, "{args:?}: {}", o.stderr);
        assert!(o.stderr.contains("not in the store"), "{}", o.stderr);
    }
}

#[test]
fn missing_local_sources_exit_3() {
    let (dir, conf) = setup("");
    for src in [
        "oci:/nonexistent/layout:1",
        "oci-archive:/nonexistent.tar",
        "docker-archive:/nonexistent.tar",
    ] {
        let o = berth(dir.path(), &["pull", src], &conf);
        assert_eq!(o.code, 3, "{src}: {}", o.stderr);
        assert!(o.stderr.contains("/nonexistent"), "{}", o.stderr);
    }
}
