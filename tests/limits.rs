//! The size caps of every verb that pulls: `--max-layer-size` and
//! `--max-image-size` on `install`, `update`, `apply` and `run-once` as on
//! `pull`, and their defaults in berth.toml (`$BERTH_CONFIG` here). Offline:
//! images come from `oci:` layouts and install into temporary roots.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::deploy::{layout_one, snapshot};
use common::oci::{Compression, Image, Layer};
use common::{require_root, Berth};

/// An image with one layer of `mib` MiB of zeros (a few KiB of gzip).
fn zeros_image(mib: usize) -> Image {
    let layer = Layer::new()
        .dir("usr", 0o755)
        .dir("usr/bin", 0o755)
        .file("usr/bin/payload", vec![0u8; mib << 20], 0o755)
        .build(Compression::Gzip);
    Image::new(vec![layer]).entrypoint(&["/usr/bin/payload"])
}

#[test]
fn install_and_run_once_honour_the_size_flags() {
    if !require_root() {
        return;
    }
    let (source, _keep) = layout_one(&zeros_image(8));
    let b = Berth::new();
    let root = b.root();
    let before = snapshot(&root);
    b.run(&[
        "install",
        "--name",
        "big",
        "--max-layer-size",
        "4M",
        &source,
    ])
    .code(6)
    .stderr_has(&[&source, "4 MiB", "--max-layer-size"]);
    b.run(&[
        "run-once",
        "--max-image-size",
        "2M",
        &source,
        "--",
        "/bin/true",
    ])
    .code(6)
    .stderr_has(&[&source, "2 MiB", "--max-image-size"]);
    assert!(b.images().is_empty(), "an image over the cap was stored");
    assert!(
        !root.join("etc/systemd/system/big.service").exists(),
        "a refused install wrote its unit"
    );
    let after = snapshot(&root);
    let changed: Vec<_> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(v))
        .filter(|(k, _)| {
            !["var", "var/lib"].contains(&k.as_str()) && !k.starts_with("var/lib/berth")
        })
        .collect();
    assert!(
        changed.is_empty(),
        "the root changed outside berth's store: {changed:?}"
    );
    b.run(&[
        "install",
        "--name",
        "big",
        "--max-layer-size",
        "16M",
        &source,
    ])
    .ok();
    assert!(root.join("etc/systemd/system/big.service").exists());
}

#[test]
fn berth_toml_sets_the_defaults_and_flags_win() {
    if !require_root() {
        return;
    }
    let (source, _keep) = layout_one(&zeros_image(8));
    let b = Berth::new();
    std::fs::write(b.config_file(), "[pull]\nmax_layer_size = \"4M\"\n").unwrap();
    b.pull(&source, &[]).code(6).stderr_has(&[&source, "4 MiB"]);
    b.run(&["install", "--name", "big", &source])
        .code(6)
        .stderr_has(&[&source, "4 MiB"]);
    assert!(b.images().is_empty());
    // A flag wins over the file.
    b.pull(&source, &["--max-layer-size", "9M"]).ok();

    // The image cap from the file, on update: a new, bigger image is refused
    // and the installed one stays.
    b.run(&["install", "--name", "big", &source]).ok();
    let (bigger, _keep2) = layout_one(&zeros_image(12));
    std::fs::write(
        b.config_file(),
        "[pull]\nmax_layer_size = \"64M\"\nmax_image_size = \"10M\"\n",
    )
    .unwrap();
    let unit = b.root().join("etc/systemd/system/big.service");
    let unit_before = std::fs::read(&unit).unwrap();
    b.run(&["update", "big", "--image", &bigger])
        .code(6)
        .stderr_has(&[&bigger, "10 MiB", "--max-image-size"]);
    assert_eq!(std::fs::read(&unit).unwrap(), unit_before);
    b.run(&[
        "update",
        "big",
        "--image",
        &bigger,
        "--max-image-size",
        "16M",
    ])
    .ok();
}

#[test]
fn a_misspelt_key_in_berth_toml_is_refused_naming_file_and_key() {
    let b = Berth::new();
    std::fs::write(b.config_file(), "[pull]\nmax_layer = \"4M\"\n").unwrap();
    let file = b.config_file().display().to_string();
    b.pull("oci:/nonexistent:x", &[])
        .code(2)
        .stderr_has(&[&file, "max_layer"]);
}
