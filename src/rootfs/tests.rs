#![allow(clippy::unwrap_used, clippy::disallowed_methods)]
use std::os::unix::fs::symlink;
use std::path::Path;

use super::*;

/// A root and a marker directory beside it that nothing may change.
struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir_all(outside.join("etc")).unwrap();
    std::fs::write(outside.join("marker"), "m").unwrap();
    Fixture {
        _tmp: tmp,
        root,
        outside,
    }
}

fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.symlink_metadata().unwrap().is_dir() {
                stack.push(p.clone());
            }
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
        }
    }
    out.sort();
    out
}

/// Every way to plant a link that would lead out of the root if followed
/// on the host: absolute to the host, relative climbing out, `..` past `/`.
fn escaping_targets(f: &Fixture, depth: usize) -> Vec<PathBuf> {
    vec![
        f.outside.join("etc"),
        PathBuf::from(format!("{}outside/etc", "../".repeat(depth))),
        PathBuf::from("/../../../../../outside/etc"),
    ]
}

#[test]
fn writes_through_planted_links_stay_inside_the_root() {
    for link in ["opt", "opt/app", "opt/app/sub"] {
        for n in 0..3 {
            for target_exists in [false, true] {
                let f = fixture();
                let target = escaping_targets(&f, link.matches('/').count() + 1).swap_remove(n);
                let before = listing(&f.outside);
                let at = f.root.join(link);
                std::fs::create_dir_all(at.parent().unwrap()).unwrap();
                symlink(&target, &at).unwrap();
                // Where the link leads when resolved inside the root.
                let inside = f.root.join(if target.is_absolute() {
                    target.strip_prefix("/").unwrap().to_path_buf()
                } else {
                    PathBuf::from("outside/etc")
                });
                let inside = if n == 2 {
                    f.root.join("outside/etc")
                } else {
                    inside
                };
                if target_exists {
                    std::fs::create_dir_all(&inside).unwrap();
                }
                let r = Root::open(&f.root).unwrap();
                let file = Path::new("/opt/app/sub/deep/file");
                let case = format!("{link} -> {target:?} (exists: {target_exists})");
                match r.create_dir_all(file.parent().unwrap(), 0o755) {
                    Ok(_) => {
                        assert!(target_exists, "{case}");
                        r.write_atomic(file, b"x", 0o644).unwrap();
                        let real = r.resolve(file).unwrap();
                        let top = f.root.canonicalize().unwrap();
                        assert!(real.starts_with(&top), "{case}: {real:?}");
                        assert!(real.starts_with(inside.canonicalize().unwrap()), "{case}");
                        assert_eq!(r.read(file).unwrap(), b"x");
                    }
                    // A link out of the root dangles inside it: refused, named.
                    Err(e) => {
                        assert!(!target_exists, "{case}: {e}");
                        assert!(matches!(e, RootError::Dangling { .. }), "{case}: {e}");
                        assert!(
                            e.to_string().contains(&format!("/{link} is a symlink")),
                            "{e}"
                        );
                    }
                }
                assert_eq!(listing(&f.outside), before, "{case}");
            }
        }
    }
}

#[test]
fn absolute_links_resolve_inside_the_root_as_systemd_does() {
    let f = fixture();
    std::fs::create_dir_all(f.root.join("usr/lib/x")).unwrap();
    symlink("/usr/lib/x", f.root.join("etc/x")).unwrap();
    let r = Root::open(&f.root).unwrap();
    r.write_atomic(Path::new("/etc/x/unit"), b"u", 0o644)
        .unwrap();
    assert_eq!(std::fs::read(f.root.join("usr/lib/x/unit")).unwrap(), b"u");
    assert_eq!(
        r.resolve(Path::new("/etc/x/new/deeper")).unwrap(),
        f.root.canonicalize().unwrap().join("usr/lib/x/new/deeper")
    );
}

#[test]
fn the_last_component_is_never_followed() {
    let f = fixture();
    let victim = f.outside.join("marker");
    symlink(&victim, f.root.join("etc/f")).unwrap();
    let r = Root::open(&f.root).unwrap();
    assert_eq!(
        r.lstat(Path::new("/etc/f")).unwrap().unwrap().kind,
        Kind::Symlink
    );
    assert!(r.read_file_nofollow(Path::new("/etc/f")).unwrap().is_none());
    assert!(r.write_new(Path::new("/etc/f"), b"x", 0o644).is_err());
    assert!(r
        .open_file(Path::new("/etc/f"), OpenMode::ReadWriteCreate, 0o600)
        .is_err());
    assert!(r.set_mode(Path::new("/etc/f"), 0o777).is_err());
    r.write_atomic(Path::new("/etc/f"), b"new", 0o644).unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "m");
    assert_eq!(std::fs::read(f.root.join("etc/f")).unwrap(), b"new");
    // A dangling journal link is not created through.
    symlink(f.outside.join("ld.so.preload"), f.root.join("etc/journal")).unwrap();
    let e = r
        .open_file(Path::new("/etc/journal"), OpenMode::WriteTruncate, 0o600)
        .unwrap_err();
    assert!(matches!(e, RootError::IsSymlink { .. }), "{e}");
    assert!(!f.outside.join("ld.so.preload").exists());
    // Removing a link removes the link, never what it points at.
    symlink(&f.outside, f.root.join("etc/tree")).unwrap();
    r.remove(Path::new("/etc/tree")).unwrap();
    assert!(f.outside.join("marker").exists());
}

#[test]
fn loops_and_files_on_the_way_are_named() {
    let f = fixture();
    symlink("b", f.root.join("etc/a")).unwrap();
    symlink("a", f.root.join("etc/b")).unwrap();
    std::fs::write(f.root.join("etc/file"), "").unwrap();
    let r = Root::open(&f.root).unwrap();
    let e = r
        .write_atomic(Path::new("/etc/a/x"), b"", 0o644)
        .unwrap_err();
    assert!(matches!(e, RootError::Loop { .. }), "{e}");
    assert!(e.to_string().starts_with("/etc/a: a symlink loop"), "{e}");
    let e = r.create_dir_all(Path::new("/etc/a/x"), 0o755).unwrap_err();
    assert!(matches!(e, RootError::Loop { .. }), "{e}");
    let e = r
        .write_atomic(Path::new("/etc/file/x"), b"", 0o644)
        .unwrap_err();
    assert!(matches!(e, RootError::NotADirectory { .. }), "{e}");
    let e = r.resolve(Path::new("/etc/a/x")).unwrap_err();
    assert!(matches!(e, RootError::Loop { .. }), "{e}");
    assert!(matches!(
        r.write_atomic(Path::new("/etc/.."), b"", 0o644),
        Err(RootError::BadPath { .. })
    ));
    assert!(matches!(
        r.remove(Path::new("/")),
        Err(RootError::BadPath { .. })
    ));
}

#[test]
fn atomic_write_leaves_an_unrelated_tmp_alone() {
    let f = fixture();
    std::fs::write(f.root.join("etc/conf.tmp"), "operator's").unwrap();
    std::fs::create_dir_all(f.root.join("etc/tree.tmp/sub")).unwrap();
    let r = Root::open(&f.root).unwrap();
    r.write_atomic(Path::new("/etc/conf"), b"one", 0o640)
        .unwrap();
    r.write_atomic(Path::new("/etc/conf"), b"two", 0o600)
        .unwrap();
    r.write_atomic(Path::new("/etc/tree"), b"t", 0o644).unwrap();
    assert_eq!(
        std::fs::read_to_string(f.root.join("etc/conf.tmp")).unwrap(),
        "operator's"
    );
    assert!(f.root.join("etc/tree.tmp/sub").is_dir());
    assert_eq!(std::fs::read(f.root.join("etc/conf")).unwrap(), b"two");
    assert_eq!(
        r.lstat(Path::new("/etc/conf")).unwrap().unwrap().mode,
        0o600
    );
    assert_eq!(
        r.read_dir(Path::new("/etc")).unwrap(),
        ["conf", "conf.tmp", "tree", "tree.tmp"]
    );
}

#[test]
fn modes_are_exact_despite_the_umask() {
    let f = fixture();
    let r = Root::open(&f.root).unwrap();
    r.create_dir(Path::new("/etc/d"), 0o775).unwrap();
    r.write_new(Path::new("/etc/d/f"), b"", 0o664).unwrap();
    assert_eq!(r.lstat(Path::new("/etc/d")).unwrap().unwrap().mode, 0o775);
    assert_eq!(r.lstat(Path::new("/etc/d/f")).unwrap().unwrap().mode, 0o664);
    r.set_mode(Path::new("/etc/d/f"), 0o600).unwrap();
    assert_eq!(r.lstat(Path::new("/etc/d/f")).unwrap().unwrap().mode, 0o600);
}

#[test]
fn remove_and_rename_stay_inside() {
    let f = fixture();
    std::fs::create_dir_all(f.root.join("var/t/a/b")).unwrap();
    std::fs::write(f.root.join("var/t/a/b/f"), "").unwrap();
    symlink(&f.outside, f.root.join("var/t/a/out")).unwrap();
    let r = Root::open(&f.root).unwrap();
    let before = listing(&f.outside);
    r.rename(Path::new("/var/t"), Path::new("/var/u")).unwrap();
    assert!(r
        .rename_noreplace(Path::new("/var/u"), Path::new("/etc"))
        .is_err());
    r.remove(Path::new("/var/u")).unwrap();
    r.remove(Path::new("/var/absent/x")).unwrap();
    assert!(!f.root.join("var/u").exists());
    assert_eq!(listing(&f.outside), before);
}

#[test]
fn the_root_slash_is_ordinary_resolution() {
    let f = fixture();
    let r = Root::open(Path::new("/")).unwrap();
    let inside = f.root.join("etc/x");
    r.write_atomic(&inside, b"x", 0o644).unwrap();
    assert_eq!(std::fs::read(&inside).unwrap(), b"x");
    assert_eq!(r.resolve(&inside).unwrap(), inside.canonicalize().unwrap());
}

#[test]
fn bounded_reads_stay_inside_and_refuse_what_is_not_a_small_file() {
    let f = fixture();
    std::fs::write(f.root.join("etc/small"), "inside").unwrap();
    std::fs::write(f.outside.join("etc/small"), "host").unwrap();
    // Absolute and `..` links resolve inside the root.
    symlink(f.outside.join("etc/small"), f.root.join("etc/abs")).unwrap();
    symlink("/etc/small", f.root.join("etc/rooted")).unwrap();
    symlink("../../../outside/etc/small", f.root.join("etc/up")).unwrap();
    std::fs::write(f.root.join("etc/big"), vec![b'x'; 11]).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        f.root.join("etc/fifo"),
        rustix::fs::FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let r = Root::open(&f.root).unwrap();
    let read = |p: &str| r.read_at_most(Path::new(p), 10);
    assert_eq!(read("/etc/small").unwrap(), b"inside");
    assert_eq!(read("/etc/rooted").unwrap(), b"inside");
    assert!(read("/etc/up").unwrap_err().is_not_found());
    // The host path is looked up inside the root, where it is absent.
    assert!(read("/etc/abs").unwrap_err().is_not_found());
    assert!(matches!(
        read("/etc/big"),
        Err(RootError::TooLarge { limit: 10, .. })
    ));
    assert!(matches!(read("/etc/fifo"), Err(RootError::NotAFile { .. })));
    assert!(matches!(read("/etc"), Err(RootError::NotAFile { .. })));
}
