//! Comparable listings of directory trees, and `umoci unpack` as the reference extraction.
//!
//! A listing has one line per path below the root (the root itself is left out):
//! ```text
//! "usr/bin/sh" l 0777 0 0 busybox - -
//! "etc/passwd" f 0644 0 0 - <sha256 of the content> -
//! "h/link1"    f 0644 0 0 - <sha256> h/link1        (hard-link group: smallest path)
//! ```
//! An OSTree hard-link checkout shares one inode between ALL files with the same content
//! and metadata, so berth's checkout has more sharing than the reference. The comparison
//! therefore uses [`tree_split`]: lines without the hard-link column must be equal, and
//! every hard-link group of the reference must share one inode in the checkout.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{run_ok, sha256_hex};

/// Every path below `root` with its `lstat`, depth first, names sorted at each level.
pub fn walk(root: &Path) -> Vec<(PathBuf, Metadata)> {
    fn rec(root: &Path, rel: &Path, out: &mut Vec<(PathBuf, Metadata)>) {
        let mut names: Vec<_> = std::fs::read_dir(root.join(rel))
            .unwrap_or_else(|e| panic!("reading {}: {e}", root.join(rel).display()))
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for n in names {
            let r = rel.join(&n);
            let meta = std::fs::symlink_metadata(root.join(&r)).unwrap();
            let is_dir = meta.is_dir();
            out.push((r.clone(), meta));
            if is_dir {
                rec(root, &r, out);
            }
        }
    }
    let mut out = Vec::new();
    rec(root, Path::new(""), &mut out);
    out
}

fn kind(meta: &Metadata) -> char {
    let ft = meta.file_type();
    if ft.is_dir() {
        'd'
    } else if ft.is_file() {
        'f'
    } else if ft.is_symlink() {
        'l'
    } else if ft.is_char_device() {
        'c'
    } else if ft.is_block_device() {
        'b'
    } else if ft.is_fifo() {
        'p'
    } else {
        's'
    }
}

/// A listing split into comparable lines and hard-link groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// One line per path, without the hard-link column, sorted.
    pub lines: Vec<String>,
    /// Paths sharing an inode (groups of two or more), each sorted; sorted.
    pub groups: Vec<Vec<String>>,
}

fn line(root: &Path, rel: &Path, meta: &Metadata) -> String {
    let k = kind(meta);
    let target = match k {
        'l' => std::fs::read_link(root.join(rel))
            .unwrap()
            .to_string_lossy()
            .into_owned(),
        'c' | 'b' => format!("{}", meta.rdev()),
        _ => "-".into(),
    };
    let sha = if k == 'f' {
        sha256_hex(&std::fs::read(root.join(rel)).unwrap())
    } else {
        "-".into()
    };
    format!(
        "{:?} {k} {:04o} {} {} {target} {sha}",
        rel.to_string_lossy(),
        meta.mode() & 0o7777,
        meta.uid(),
        meta.gid()
    )
}

/// Lines without the hard-link column, plus the hard-link groups.
pub fn tree_split(dir: &Path) -> Listing {
    let mut lines = Vec::new();
    let mut inodes: BTreeMap<(u64, u64), Vec<String>> = BTreeMap::new();
    for (rel, meta) in walk(dir) {
        lines.push(line(dir, &rel, &meta));
        if !meta.is_dir() {
            inodes
                .entry((meta.dev(), meta.ino()))
                .or_default()
                .push(rel.to_string_lossy().into_owned());
        }
    }
    lines.sort();
    let mut groups: Vec<Vec<String>> = inodes
        .into_values()
        .filter(|g| g.len() > 1)
        .map(|mut g| {
            g.sort();
            g
        })
        .collect();
    groups.sort();
    Listing { lines, groups }
}

/// One sorted line per path: `"path" type mode uid gid target sha256 hardlink-group`, the
/// group being the smallest path sharing the inode, or `-`.
pub fn tree_listing(dir: &Path) -> Vec<String> {
    let split = tree_split(dir);
    let mut group_of: HashMap<String, String> = HashMap::new();
    for g in &split.groups {
        for p in g {
            group_of.insert(format!("{p:?}"), g[0].clone());
        }
    }
    let mut out: Vec<String> = split
        .lines
        .iter()
        .map(|l| {
            let quoted = quoted_path(l);
            let g = group_of.get(&quoted).map_or("-", String::as_str);
            format!("{l} {g}")
        })
        .collect();
    out.sort();
    out
}

/// The quoted path at the start of a listing line.
fn quoted_path(line: &str) -> String {
    let mut escaped = false;
    for (i, c) in line.char_indices().skip(1) {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return line[..=i].to_string(),
            _ => escaped = false,
        }
    }
    line.to_string()
}

/// Asserts that `checkout` holds the same tree as `reference`: equal lines (type, mode,
/// owner, link target, content), and every hard-link group of the reference sharing one
/// inode in the checkout. Extra sharing in the checkout is allowed.
pub fn assert_same_tree(reference: &Path, checkout: &Path) {
    let want = tree_split(reference);
    let got = tree_split(checkout);
    let w: BTreeSet<_> = want.lines.iter().collect();
    let g: BTreeSet<_> = got.lines.iter().collect();
    let missing: Vec<_> = w.difference(&g).take(40).collect();
    let extra: Vec<_> = g.difference(&w).take(40).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "trees differ ({} vs {})\n only in reference:\n  {}\n only in checkout:\n  {}",
        reference.display(),
        checkout.display(),
        missing
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  "),
        extra
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  "),
    );
    for group in &want.groups {
        let inodes: BTreeSet<(u64, u64)> = group
            .iter()
            .map(|p| {
                let m = std::fs::symlink_metadata(checkout.join(p)).unwrap();
                (m.dev(), m.ino())
            })
            .collect();
        assert_eq!(
            inodes.len(),
            1,
            "hard-link group {group:?} of the reference is split in {}",
            checkout.display()
        );
    }
}

/// `umoci unpack --image LAYOUT:TAG DEST` (as root, so owners and modes are real);
/// returns `DEST/rootfs`.
pub fn umoci_unpack(layout: &Path, tag: &str, dest: &Path) -> PathBuf {
    run_ok(
        Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:{tag}", layout.display()))
            .arg(dest),
    );
    dest.join("rootfs")
}

/// Non-empty regular files with a link count of 1: none in an OSTree hard-link checkout.
/// Empty files are left out because libostree copies zero-sized files instead of linking
/// them (so they cannot run into the link-count limit).
pub fn single_link_files(dir: &Path) -> Vec<String> {
    walk(dir)
        .into_iter()
        .filter(|(_, m)| m.is_file() && m.len() > 0 && m.nlink() == 1)
        .map(|(p, _)| p.to_string_lossy().into_owned())
        .collect()
}

/// Paths whose last component contains `needle` (e.g. `.wh.`).
pub fn names_containing(dir: &Path, needle: &str) -> Vec<String> {
    walk(dir)
        .into_iter()
        .filter(|(p, _)| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().contains(needle))
        })
        .map(|(p, _)| p.to_string_lossy().into_owned())
        .collect()
}

/// Every path below `dir` (relative), for before/after comparisons such as a repo's
/// `objects/`.
pub fn path_set(dir: &Path) -> BTreeSet<String> {
    if !dir.exists() {
        return BTreeSet::new();
    }
    walk(dir)
        .into_iter()
        .map(|(p, _)| p.to_string_lossy().into_owned())
        .collect()
}
