//! The layer tar filter (`image::layer::read_layer`): arbitrary bytes as an
//! uncompressed tar stream never panic, and every entry it hands on has a
//! path that is relative, normalised (no empty, `.` or `..` component, no
//! leading or trailing `/`), UTF-8 without NUL, non-empty except the root
//! directory and an opaque root; no file, directory or link is named like a
//! whiteout; a hardlink names an earlier regular file of the same layer that
//! nothing replaced since; a file's content is exactly its size, and a layer
//! whose file body could not be read in full is refused.
#![no_main]

use std::collections::BTreeSet;

use berth::image::layer::{read_layer, Entry, LayerError};
use libfuzzer_sys::fuzz_target;

fn normalised(path: &str, may_be_empty: bool) -> bool {
    if path.is_empty() {
        return may_be_empty;
    }
    !path.contains('\0')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

fn not_whiteout(path: &str) -> bool {
    path.split('/').all(|c| !c.starts_with(".wh."))
}

fn under(path: &str, dir: &str) -> bool {
    path == dir || path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
}

/// Regular files of the layer so far that nothing replaced: valid hardlink targets.
#[derive(Default)]
struct Files(BTreeSet<String>);

impl Files {
    /// An entry at `path`: its ancestors are directories now.
    fn arrive(&mut self, path: &str) {
        let mut at = path;
        while let Some((parent, _)) = at.rsplit_once('/') {
            self.0.remove(parent);
            at = parent;
        }
    }
    fn remove_tree(&mut self, path: &str) {
        self.0.retain(|f| !under(f, path));
    }
}

/// Rewrites the checksum of every header block, walking the stream as a tar
/// reader does (header, then the blocks of its body), so that mutations get
/// past the checksum to the filter.
fn fix_checksums(data: &mut [u8]) {
    let mut at = 0;
    while let Some(block) = data.get_mut(at..at + 512) {
        if block.iter().all(|b| *b == 0) {
            at += 512;
            continue;
        }
        block[148..156].fill(b' ');
        let sum: u32 = block.iter().map(|b| u32::from(*b)).sum();
        block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let size = std::str::from_utf8(&block[124..136])
            .ok()
            .and_then(|s| {
                u64::from_str_radix(s.trim_matches(|c: char| c == '\0' || c == ' '), 8).ok()
            })
            .unwrap_or(0);
        at += 512 + (size.div_ceil(512) as usize).saturating_mul(512);
    }
}

fuzz_target!(|input: &[u8]| {
    // Byte 0, bit 0: fix the header checksums first.
    let Some((mode, rest)) = input.split_first() else {
        return;
    };
    let mut owned = rest.to_vec();
    if mode & 1 == 1 {
        fix_checksums(&mut owned);
    }
    let data = owned.as_slice();
    let mut files = Files::default();
    let mut count = 0u64;
    let mut short_read = false;
    let result = read_layer(data, "sha256:fuzz", |entry| -> Result<(), LayerError> {
        count += 1;
        match entry {
            Entry::Dir { path, meta } => {
                assert!(normalised(path, true) && not_whiteout(path), "dir {path:?}");
                assert_eq!(meta.mode & !0o7777, 0);
                files.arrive(path);
                files.0.remove(path);
            }
            Entry::File {
                path,
                meta,
                size,
                content,
            } => {
                assert!(
                    normalised(path, false) && not_whiteout(path),
                    "file {path:?}"
                );
                assert_eq!(meta.mode & !0o7777, 0);
                files.arrive(path);
                files.remove_tree(path);
                // Half the files are read: reading is optional.
                if count % 2 == 0 {
                    let mut body = Vec::new();
                    match content.read_to_end(&mut body) {
                        Ok(_) => assert_eq!(body.len() as u64, size, "{path:?}"),
                        Err(_) => short_read = true,
                    }
                }
                files.0.insert(path.to_string());
            }
            Entry::Symlink { path, meta, target } => {
                assert!(
                    normalised(path, false) && not_whiteout(path),
                    "symlink {path:?}"
                );
                assert!(
                    !target.is_empty() && !target.contains('\0'),
                    "{path:?} -> {target:?}"
                );
                assert_eq!(meta.mode & !0o7777, 0);
                files.arrive(path);
                files.remove_tree(path);
            }
            Entry::Hardlink { path, target } => {
                assert!(
                    normalised(path, false) && not_whiteout(path),
                    "hardlink {path:?}"
                );
                assert!(normalised(target, false), "hardlink target {target:?}");
                assert_ne!(path, target);
                assert!(
                    files.0.contains(target),
                    "{path:?} => {target:?}: not an earlier file"
                );
                files.arrive(path);
                files.remove_tree(path);
                files.0.insert(path.to_string());
            }
            Entry::Whiteout { path } => {
                assert!(normalised(path, false), "whiteout {path:?}");
                files.arrive(path);
                files.remove_tree(path);
            }
            Entry::Opaque { dir } => {
                assert!(normalised(dir, true), "opaque {dir:?}");
                files.arrive(dir);
            }
        }
        Ok(())
    });
    match result {
        Ok(summary) => {
            assert!(
                !short_read,
                "a truncated file body, yet the layer was accepted"
            );
            assert_eq!(summary.entries, count);
        }
        Err(_) => {}
    }
});
