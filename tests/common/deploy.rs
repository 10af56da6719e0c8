//! Deployments in a temporary root: image layouts to install from, a
//! comparable snapshot of the root, and the failpoint/SIGKILL driver that
//! proves every step of an operation leaves the previous state.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use super::berth::Berth;
use super::oci::{Image, OciLayout};

/// A layout holding each (tag, image); returns `oci:DIR` and its keeper.
pub fn layout(images: &[(&str, Image)]) -> (String, tempfile::TempDir) {
    let dir = super::tempdir();
    let mut l = OciLayout::create(dir.path().join("layout"));
    for (tag, image) in images {
        l.add_image(tag, image);
    }
    (format!("oci:{}", dir.path().join("layout").display()), dir)
}

/// A layout holding `image` tagged `t`; returns `oci:DIR:t` and its keeper.
pub fn layout_one(image: &Image) -> (String, tempfile::TempDir) {
    let (src, dir) = layout(&[("t", image.clone())]);
    (format!("{src}:t"), dir)
}

/// Everything below `root` except the store and the lock: path → what it is
/// (symlink target, directory mode, or file mode and content hash).
pub fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (rel, meta) in super::tree::walk(root) {
        let rel = rel.display().to_string();
        if rel.starts_with("var/lib/berth/repo") || rel == "var/lib/berth/lock" {
            continue;
        }
        let p = root.join(&rel);
        let what = if meta.is_symlink() {
            format!("-> {}", std::fs::read_link(&p).unwrap().display())
        } else if meta.is_dir() {
            format!("dir {:o}", meta.mode() & 0o7777)
        } else {
            format!(
                "file {:o} {}",
                meta.mode() & 0o7777,
                super::sha256_hex(&std::fs::read(&p).unwrap())
            )
        };
        out.insert(rel, what);
    }
    out
}

/// The text of `p` below `root`.
pub fn read(root: &Path, p: &str) -> String {
    std::fs::read_to_string(root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// A failpoint case: the step, the command it interrupts, and the commands
/// that make the state it starts from.
pub type Case<'a> = (&'a str, &'a [&'a str], Vec<&'a [&'a str]>);

/// For each case, twice (an injected error, then a SIGKILL at the step):
/// the root is as before the command (after the next berth run, for the
/// kill), the command then succeeds, `clean_up` removes what is installed,
/// and the root equals `empty`.
pub fn fail_and_kill_each(
    b: &mut Berth,
    cases: &[Case<'_>],
    empty: &BTreeMap<String, String>,
    clean_up: impl Fn(&Berth, &[&str]),
) {
    let root = b.root();
    for (step, cmd, setup) in cases {
        for kill in [false, true] {
            b.unset_env("BERTH_FAILPOINT");
            for s in setup {
                b.run(s).ok();
            }
            let before = snapshot(&root);
            let fp = if kill {
                format!("{step}:kill")
            } else {
                step.to_string()
            };
            b.set_env("BERTH_FAILPOINT", &fp);
            let r = b.run(cmd);
            if kill {
                assert_eq!(r.code, -1, "{fp} {cmd:?} was not killed: {}", r.stderr);
                assert!(root.join("var/lib/berth/journal").exists(), "{fp}");
                b.unset_env("BERTH_FAILPOINT");
                // The next berth undoes it, even a read-only verb.
                b.run(&["list"]).ok();
            } else {
                r.code(1).stderr_has(&["injected failure"]);
            }
            assert_eq!(snapshot(&root), before, "{fp} {cmd:?}");
            b.unset_env("BERTH_FAILPOINT");
            // And the operation then succeeds.
            b.run(cmd).ok();
            clean_up(b, cmd);
            assert_eq!(&snapshot(&root), empty, "{fp} {cmd:?} then uninstall");
        }
    }
}
