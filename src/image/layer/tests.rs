//! Tests of `layer`.

use super::*;
use std::io::Write;
use tar::{Builder, Header};

const DIGEST: &str = "sha256:feedface";

/// What the visitor saw, owned.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Dir(String, Meta),
    File(String, Meta, Vec<u8>),
    Symlink(String, String),
    Hardlink(String, String),
    Whiteout(String),
    Opaque(String),
}

fn meta(mode: u32) -> Meta {
    Meta {
        uid: 0,
        gid: 0,
        mode,
    }
}

/// A header with a raw (unvalidated) name and link name.
fn raw_header(kind: EntryType, name: &[u8], link: &[u8], size: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    let old = h.as_old_mut();
    old.name = [0; 100];
    old.name[..name.len()].copy_from_slice(name);
    old.linkname = [0; 100];
    old.linkname[..link.len()].copy_from_slice(link);
    h.set_cksum();
    h
}

/// Builds tar streams entry by entry, hostile names included.
struct Tar(Builder<Vec<u8>>);

impl Tar {
    fn new() -> Self {
        Tar(Builder::new(Vec::new()))
    }
    fn raw(mut self, kind: EntryType, name: &str, link: &str, data: &[u8]) -> Self {
        let h = raw_header(kind, name.as_bytes(), link.as_bytes(), data.len() as u64);
        self.0.append(&h, data).unwrap();
        self
    }
    fn header(mut self, h: &Header, data: &[u8]) -> Self {
        self.0.append(h, data).unwrap();
        self
    }
    fn file(self, name: &str, data: &[u8]) -> Self {
        self.raw(EntryType::Regular, name, "", data)
    }
    fn dir(self, name: &str) -> Self {
        self.raw(EntryType::Directory, name, "", b"")
    }
    fn link(self, name: &str, target: &str) -> Self {
        self.raw(EntryType::Link, name, target, b"")
    }
    fn symlink(self, name: &str, target: &str) -> Self {
        self.raw(EntryType::Symlink, name, target, b"")
    }
    fn pax(mut self, records: &[(&str, &[u8])]) -> Self {
        self.0
            .append_pax_extensions(records.iter().copied())
            .unwrap();
        self
    }
    fn finish(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

fn read(bytes: &[u8]) -> Result<(Vec<Seen>, Summary), LayerError> {
    let mut seen = Vec::new();
    let summary = read_layer(bytes, DIGEST, |entry| -> Result<(), LayerError> {
        seen.push(match entry {
            Entry::Dir { path, meta } => Seen::Dir(path.into(), meta),
            Entry::File {
                path,
                meta,
                size,
                content,
            } => {
                let mut data = Vec::new();
                content
                    .read_to_end(&mut data)
                    .map_err(|e| LayerError::Malformed {
                        digest: DIGEST.into(),
                        reason: e.to_string(),
                    })?;
                assert_eq!(data.len() as u64, size);
                Seen::File(path.into(), meta, data)
            }
            Entry::Symlink { path, target, .. } => Seen::Symlink(path.into(), target.into()),
            Entry::Hardlink { path, target } => Seen::Hardlink(path.into(), target.into()),
            Entry::Whiteout { path } => Seen::Whiteout(path.into()),
            Entry::Opaque { dir } => Seen::Opaque(dir.into()),
        });
        Ok(())
    })?;
    Ok((seen, summary))
}

fn seen(bytes: &[u8]) -> Vec<Seen> {
    read(bytes).unwrap().0
}

fn refused(bytes: &[u8]) -> LayerError {
    let err = read(bytes).unwrap_err();
    assert!(err.to_string().contains(DIGEST), "{err}");
    err
}

fn file(path: &str, data: &[u8]) -> Seen {
    Seen::File(path.into(), meta(0o644), data.to_vec())
}

#[test]
fn normalises_paths() {
    let cases = [
        ("/etc/passwd", "etc/passwd"),
        ("./a/./b", "a/b"),
        ("a//b/", "a/b"),
        ("././x", "x"),
        ("//abs//./y", "abs/y"),
        ("a/b/.", "a/b"),
        ("with space/ünïcode", "with space/ünïcode"),
        ("back\\slash", "back\\slash"),
        ("...", "..."),
        ("..a/b..", "..a/b.."),
    ];
    for (raw, want) in cases {
        assert_eq!(normalise(raw.as_bytes()), Ok(want.to_string()), "{raw}");
    }
    for root in [".", "./", "/", "", "//./."] {
        assert_eq!(normalise(root.as_bytes()), Ok(String::new()), "{root}");
    }
    for bad in [
        "..",
        "../etc/passwd",
        "a/../b",
        "a/..",
        "/..",
        "./../x",
        "a/b/../../..",
    ] {
        assert_eq!(
            normalise(bad.as_bytes()),
            Err(PathProblem::Escapes),
            "{bad}"
        );
    }
    assert_eq!(normalise(b"a\xffb"), Err(PathProblem::BadName));
    assert_eq!(normalise(b"a\0b"), Err(PathProblem::BadName));
}

#[test]
fn passes_normalised_entries() {
    let tar = Tar::new()
        .dir("./")
        .dir("/etc/")
        .file("/etc/passwd", b"root")
        .file("./a/./b", b"x")
        .finish();
    assert_eq!(
        seen(&tar),
        vec![
            Seen::Dir("".into(), meta(0o644)),
            Seen::Dir("etc".into(), meta(0o644)),
            file("etc/passwd", b"root"),
            file("a/b", b"x"),
        ]
    );
}

#[test]
fn refuses_dotdot_anywhere() {
    for name in ["../etc/passwd", "a/../../b", "a/..", "..", "/../x"] {
        let tar = Tar::new().file(name, b"x").finish();
        let err = refused(&tar);
        assert!(matches!(err, LayerError::Escapes { .. }), "{name}: {err}");
        assert!(err.to_string().contains("escapes the image"), "{err}");
        assert!(err.to_string().contains(&format!("{name:?}")), "{err}");
    }
    let tar = Tar::new().dir("a/../..").finish();
    assert!(matches!(refused(&tar), LayerError::Escapes { .. }));
}

#[test]
fn refuses_bad_names() {
    let tar = Tar::new()
        .header(&raw_header(EntryType::Regular, b"bad\xff", b"", 0), b"")
        .finish();
    let err = refused(&tar);
    assert!(matches!(err, LayerError::BadName { ref path, .. } if path.starts_with("bad")));
    let tar = Tar::new()
        .pax(&[("path", b"nul\0inside")])
        .file("short", b"")
        .finish();
    assert!(matches!(refused(&tar), LayerError::BadName { .. }));
}

#[test]
fn root_must_be_a_directory() {
    for root in [".", "./", "/"] {
        let tar = Tar::new().dir(root).finish();
        assert_eq!(seen(&tar), vec![Seen::Dir("".into(), meta(0o644))]);
        let tar = Tar::new().file(root, b"").finish();
        assert!(
            matches!(refused(&tar), LayerError::NotADirectory { .. }),
            "{root}"
        );
        let tar = Tar::new().symlink(root, "x").finish();
        assert!(
            matches!(refused(&tar), LayerError::NotADirectory { .. }),
            "{root}"
        );
    }
}

#[test]
fn trailing_slash_means_directory_only_for_old_type_flag() {
    let mut old = raw_header(EntryType::Regular, b"olddir/", b"", 0);
    old.as_old_mut().linkflag = [0];
    old.set_cksum();
    let tar = Tar::new().header(&old, b"").finish();
    assert_eq!(seen(&tar), vec![Seen::Dir("olddir".into(), meta(0o644))]);
    let tar = Tar::new().file("a/", b"").finish();
    assert!(matches!(refused(&tar), LayerError::NotADirectory { .. }));
    let tar = Tar::new().file("f", b"").link("l/", "f").finish();
    assert!(matches!(refused(&tar), LayerError::NotADirectory { .. }));
}

#[test]
fn hardlink_to_earlier_file_is_accepted() {
    let tar = Tar::new()
        .file("bin/busybox", b"elf")
        .link("bin/sh", "bin/busybox")
        .link("/bin/ls", "./bin/sh")
        .link("bin/cat", "/bin//busybox")
        .finish();
    assert_eq!(
        seen(&tar),
        vec![
            file("bin/busybox", b"elf"),
            Seen::Hardlink("bin/sh".into(), "bin/busybox".into()),
            Seen::Hardlink("bin/ls".into(), "bin/sh".into()),
            Seen::Hardlink("bin/cat".into(), "bin/busybox".into()),
        ]
    );
}

#[test]
fn refuses_bad_hardlink_targets() {
    let cases: Vec<(&str, Tar)> = vec![
        ("later", Tar::new().link("a", "b").file("b", b"")),
        ("missing", Tar::new().file("x", b"").link("a", "nope")),
        ("dir", Tar::new().dir("d").link("a", "d")),
        ("root", Tar::new().dir(".").link("a", "/")),
        ("outside", Tar::new().file("x", b"").link("a", "../x")),
        (
            "outside abs",
            Tar::new().file("x", b"").link("a", "/../../x"),
        ),
        ("self", Tar::new().file("a", b"").link("a", "a")),
        ("self new", Tar::new().link("a", "./a")),
        ("empty", Tar::new().file("x", b"").link("a", "")),
        ("symlink", Tar::new().symlink("s", "/x").link("a", "s")),
        (
            "replaced by dir",
            Tar::new().file("f", b"").dir("f").link("a", "f"),
        ),
        (
            "replaced by symlink",
            Tar::new().file("f", b"").symlink("f", "t").link("a", "f"),
        ),
        (
            "replaced by fifo",
            Tar::new()
                .file("f", b"")
                .raw(EntryType::Fifo, "f", "", b"")
                .link("a", "f"),
        ),
        (
            "parent became dir",
            Tar::new().file("p", b"").file("p/c", b"").link("a", "p"),
        ),
        (
            "parent replaced",
            Tar::new()
                .file("d/f", b"")
                .symlink("d", "/elsewhere")
                .link("a", "d/f"),
        ),
        (
            "whiteout file",
            Tar::new().file(".wh.x", b"").link("a", ".wh.x"),
        ),
    ];
    for (what, tar) in cases {
        let err = refused(&tar.finish());
        assert!(
            matches!(err, LayerError::HardlinkTarget { .. }),
            "{what}: {err}"
        );
        assert!(
            err.to_string().contains("not an earlier file"),
            "{what}: {err}"
        );
    }
}

#[test]
fn hardlink_survives_unrelated_entries() {
    let tar = Tar::new()
        .file("d/f", b"1")
        .dir("d")
        .file("d/g", b"2")
        .file("f", b"3")
        .file("f", b"4")
        .link("a", "d/f")
        .link("b", "f")
        .finish();
    let got = seen(&tar);
    assert_eq!(got[5], Seen::Hardlink("a".into(), "d/f".into()));
    assert_eq!(got[6], Seen::Hardlink("b".into(), "f".into()));
}

#[test]
fn symlink_targets_are_verbatim() {
    let tar = Tar::new()
        .symlink("abs", "/etc/passwd")
        .symlink("/up", "../../../../etc/shadow")
        .symlink("dot", "./x/./y//")
        .finish();
    assert_eq!(
        seen(&tar),
        vec![
            Seen::Symlink("abs".into(), "/etc/passwd".into()),
            Seen::Symlink("up".into(), "../../../../etc/shadow".into()),
            Seen::Symlink("dot".into(), "./x/./y//".into()),
        ]
    );
}

#[test]
fn refuses_bad_symlink_targets() {
    let tar = Tar::new().symlink("s", "").finish();
    assert!(matches!(refused(&tar), LayerError::EmptySymlink { .. }));
    let tar = Tar::new()
        .header(&raw_header(EntryType::Symlink, b"s", b"t\xfe", 0), b"")
        .finish();
    assert!(matches!(refused(&tar), LayerError::BadName { .. }));
    let tar = Tar::new()
        .pax(&[("linkpath", b"a\0b")])
        .symlink("s", "t")
        .finish();
    assert!(matches!(refused(&tar), LayerError::BadName { .. }));
}

#[test]
fn drops_devices_and_fifos() {
    let tar = Tar::new()
        .dir("dev")
        .raw(EntryType::Char, "dev/null", "", b"")
        .raw(EntryType::Block, "dev/sda", "", b"")
        .raw(EntryType::Fifo, "run/fifo", "", b"")
        .file("keep", b"k")
        .finish();
    let (got, summary) = read(&tar).unwrap();
    assert_eq!(
        got,
        vec![Seen::Dir("dev".into(), meta(0o644)), file("keep", b"k")]
    );
    assert_eq!(
        summary,
        Summary {
            entries: 2,
            dropped: 3
        }
    );
}

#[test]
fn skips_unknown_types_and_global_headers() {
    let tar = Tar::new()
        .raw(
            EntryType::XGlobalHeader,
            "pax_global_header",
            "",
            b"11 a=bcdef\n",
        )
        .raw(EntryType::new(b'V'), "volume label", "", b"")
        .file("f", b"x")
        .finish();
    let (got, summary) = read(&tar).unwrap();
    assert_eq!(got, vec![file("f", b"x")]);
    assert_eq!(summary.entries, 1);
}

#[test]
fn maps_whiteouts() {
    let tar = Tar::new()
        .file(".wh.gone", b"")
        .file("etc/.wh.old.conf", b"")
        .file("/var/lib/.wh..wh..opq", b"")
        .file("./.wh..wh..opq", b"")
        .link("usr/.wh.x", ".wh.gone")
        .file("a/.wh..wh.plnk", b"")
        .dir(".wh..wh.aufs")
        .dir(".wh..wh.plnk/")
        .file(".wh..wh.plnk/12.34", b"aufs")
        .file(".wh..wh.plnk/.wh..wh..opq", b"")
        .file(".wh...dots", b"")
        .finish();
    let (got, summary) = read(&tar).unwrap();
    assert_eq!(
        got,
        vec![
            Seen::Whiteout("gone".into()),
            Seen::Whiteout("etc/old.conf".into()),
            Seen::Opaque("var/lib".into()),
            Seen::Opaque("".into()),
            Seen::Whiteout("usr/x".into()),
            Seen::Whiteout("..dots".into()),
        ]
    );
    assert_eq!(summary.entries, 6);
}

#[test]
fn refuses_bad_whiteouts() {
    for name in [
        ".wh.",
        "a/.wh.",
        "a/.wh..",
        ".wh...",
        "./x/.wh.",
        ".wh.../x",
        ".wh.d/f",
        "a/.wh.b/.wh.c",
    ] {
        let tar = Tar::new().file(name, b"").finish();
        let err = refused(&tar);
        assert!(
            matches!(err, LayerError::BadWhiteout { .. }),
            "{name}: {err}"
        );
    }
}

#[test]
fn takes_meta_from_header() {
    let mut h = raw_header(EntryType::Regular, b"suid", b"", 0);
    h.set_mode(0o104755);
    h.set_uid(1000);
    h.set_gid(4_000_000);
    h.set_username("someone").unwrap();
    h.set_cksum();
    let tar = Tar::new()
        .header(&h, b"")
        .pax(&[("uid", b"3000000000"), ("gid", b"42")])
        .file("pax", b"")
        .finish();
    let got = seen(&tar);
    let want = |uid, gid, mode| Meta { uid, gid, mode };
    assert_eq!(
        got[0],
        Seen::File("suid".into(), want(1000, 4_000_000, 0o4755), vec![])
    );
    assert_eq!(
        got[1],
        Seen::File("pax".into(), want(3_000_000_000, 42, 0o644), vec![])
    );
}

#[test]
fn refuses_unreadable_header_fields() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "uid > u32",
            Tar::new()
                .pax(&[("uid", b"4294967296")])
                .file("f", b"")
                .finish(),
        ),
        (
            "pax uid text",
            Tar::new().pax(&[("uid", b"root")]).file("f", b"").finish(),
        ),
        (
            "pax sparse",
            Tar::new()
                .pax(&[("GNU.sparse.major", b"1")])
                .file("f", b"")
                .finish(),
        ),
        (
            "pax size text",
            Tar::new().pax(&[("size", b"big")]).file("f", b"").finish(),
        ),
        (
            "pax record",
            Tar::new()
                .raw(EntryType::XHeader, "x", "", b"99 junk\n")
                .file("f", b"")
                .finish(),
        ),
        ("mode", {
            let mut h = raw_header(EntryType::Regular, b"f", b"", 0);
            h.as_old_mut().mode = *b"zzzzzzz\0";
            h.set_cksum();
            Tar::new().header(&h, b"").finish()
        }),
    ];
    for (what, tar) in cases {
        let err = refused(&tar);
        assert!(matches!(err, LayerError::BadHeader { .. }), "{what}: {err}");
    }
}

#[test]
fn long_names_via_gnu_and_pax() {
    let long = format!("{}/{}", "d".repeat(120), "f".repeat(150));
    let mut gnu = Builder::new(Vec::new());
    let mut h = raw_header(EntryType::Regular, b"", b"", 2);
    gnu.append_data(&mut h, format!("./{long}"), &b"hi"[..])
        .unwrap();
    let mut h = raw_header(EntryType::Link, b"", b"", 0);
    gnu.append_link(&mut h, format!("{long}.link"), &long)
        .unwrap();
    let got = seen(&gnu.into_inner().unwrap());
    assert_eq!(got[0], file(&long, b"hi"));
    assert_eq!(got[1], Seen::Hardlink(format!("{long}.link"), long.clone()));

    // A raw GNU longname with an absolute path and its trailing NUL.
    let tar = Tar::new()
        .raw(
            EntryType::GNULongName,
            "././@LongLink",
            "",
            format!("/{long}\0").as_bytes(),
        )
        .file("trunc", b"abs")
        .finish();
    assert_eq!(seen(&tar), vec![file(&long, b"abs")]);

    let tar = Tar::new()
        .pax(&[("path", format!("./{long}").as_bytes())])
        .file("truncated-name", b"pax")
        .pax(&[("path", b"sym"), ("linkpath", long.as_bytes())])
        .symlink("ignored", "short")
        .finish();
    assert_eq!(
        seen(&tar),
        vec![
            file(&long, b"pax"),
            Seen::Symlink("sym".into(), long.clone())
        ]
    );
    let tar = Tar::new()
        .pax(&[("path", format!("{long}/../../../x").as_bytes())])
        .file("innocent", b"")
        .finish();
    assert!(matches!(refused(&tar), LayerError::Escapes { .. }));
}

#[test]
fn content_left_unread_is_skipped() {
    let tar = Tar::new()
        .file("big", &[7u8; 5000])
        .file("next", b"after")
        .finish();
    let mut names = Vec::new();
    let mut second = Vec::new();
    read_layer(&tar[..], DIGEST, |e| -> Result<(), LayerError> {
        if let Entry::File { path, content, .. } = e {
            names.push(path.to_string());
            if path == "next" {
                content.read_to_end(&mut second).unwrap();
            } else {
                let mut one = [0u8; 10];
                content.read_exact(&mut one).unwrap();
            }
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(names, ["big", "next"]);
    assert_eq!(second, b"after");
}

#[test]
fn refuses_truncated_tars() {
    let tar = Tar::new()
        .file("a", b"A")
        .file("big", &[1u8; 3000])
        .finish();
    // Cut inside the second body, inside the second header, inside the padding.
    for cut in [
        512 + 512 + 512 + 1000,
        512 + 512 + 100,
        512 + 512 + 512 + 3000 + 10,
    ] {
        let err = refused(&tar[..cut]);
        assert!(
            matches!(
                err,
                LayerError::Unreadable { .. } | LayerError::Malformed { .. }
            ),
            "{cut}: {err}"
        );
    }
    // A visitor that ignores a short read still gets the layer refused.
    let err = read_layer(&tar[..2000], DIGEST, |e| -> Result<(), LayerError> {
        if let Entry::File { content, .. } = e {
            let _ = content.read_to_end(&mut Vec::new());
        }
        Ok(())
    })
    .unwrap_err();
    assert!(
        matches!(err, LayerError::Content { ref path, .. } if path == "big"),
        "{err}"
    );
    assert!(
        err.to_string().contains("truncated: 464 of 3000 bytes"),
        "{err}"
    );
    // Missing end blocks are tolerated, as GNU tar does.
    let end = 512 + 512 + 512 + 3072;
    assert_eq!(seen(&tar[..end]).len(), 2);
}

#[test]
fn refuses_garbage() {
    let mut noise = Vec::new();
    let mut x: u32 = 0x1234_5678;
    for _ in 0..4096 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        noise.push(x as u8);
    }
    let err = refused(&noise);
    assert!(
        matches!(err, LayerError::Unreadable { offset: 512, .. }),
        "{err}"
    );
    let mut tar = Tar::new().file("a", b"A").file("b", b"B").finish();
    tar[1024 + 3] ^= 0x40;
    let err = refused(&tar);
    assert!(err.to_string().contains("checksum"), "{err}");
    assert!(err.to_string().contains("near byte 1536"), "{err}");
}

#[test]
fn empty_stream_is_an_empty_layer() {
    assert_eq!(read(b"").unwrap().1, Summary::default());
    assert_eq!(read(&[0u8; 1024]).unwrap().1, Summary::default());
}

#[test]
fn visitor_errors_pass_through() {
    #[derive(Debug)]
    enum Mine {
        Stop,
        Layer,
    }
    impl From<LayerError> for Mine {
        fn from(_: LayerError) -> Self {
            Mine::Layer
        }
    }
    let tar = Tar::new().file("a", b"").file("b", b"").finish();
    let mut calls = 0;
    let err = read_layer(&tar[..], DIGEST, |_| {
        calls += 1;
        Err(Mine::Stop)
    });
    assert!(matches!(err, Err(Mine::Stop)));
    assert_eq!(calls, 1);
    let bad = Tar::new().file("../x", b"").finish();
    assert!(matches!(
        read_layer(&bad[..], DIGEST, |_| Ok::<(), Mine>(())),
        Err(Mine::Layer)
    ));
}

fn decompressed(bytes: &[u8]) -> (Compression, Vec<u8>) {
    let (kind, mut r) = decompress(bytes).unwrap();
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    (kind, out)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

#[test]
fn decompresses_by_magic() {
    let tar = Tar::new().file("f", b"content").finish();
    assert_eq!(decompressed(&tar), (Compression::None, tar.clone()));
    assert_eq!(decompressed(&gzip(&tar)), (Compression::Gzip, tar.clone()));
    let zst = zstd::encode_all(&tar[..], 3).unwrap();
    assert_eq!(decompressed(&zst), (Compression::Zstd, tar.clone()));
    let mut multi = gzip(&tar[..700]);
    multi.extend(gzip(&tar[700..]));
    assert_eq!(decompressed(&multi), (Compression::Gzip, tar.clone()));
    let mut frames = zstd::encode_all(&tar[..700], 1).unwrap();
    frames.extend(zstd::encode_all(&tar[700..], 1).unwrap());
    assert_eq!(decompressed(&frames), (Compression::Zstd, tar.clone()));
    for short in [&b""[..], b"\x1f", b"abc"] {
        assert_eq!(decompressed(short), (Compression::None, short.to_vec()));
    }
    let (_, plain) = decompress(&multi[..]).unwrap();
    assert_eq!(seen_reader(plain), vec![file("f", b"content")]);
}

fn seen_reader(r: impl Read) -> Vec<Seen> {
    let mut bytes = Vec::new();
    let mut r = r;
    r.read_to_end(&mut bytes).unwrap();
    seen(&bytes)
}

#[test]
fn magic_split_across_reads_is_detected() {
    /// Hands out one byte per read.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match (self.0.split_first(), buf.first_mut()) {
                (Some((b, rest)), Some(slot)) => {
                    *slot = *b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }
    let zst = zstd::encode_all(&b"hello"[..], 1).unwrap();
    let (kind, mut r) = decompress(io::BufReader::with_capacity(1, Trickle(&zst))).unwrap();
    let mut out = String::new();
    r.read_to_string(&mut out).unwrap();
    assert_eq!((kind, out.as_str()), (Compression::Zstd, "hello"));
}

#[test]
fn corrupt_compression_fails_on_read() {
    let mut gz = gzip(&[5u8; 10_000]);
    let mid = gz.len() / 2;
    gz[mid] ^= 0xff;
    let (_, mut r) = decompress(&gz[..]).unwrap();
    assert!(r.read_to_end(&mut Vec::new()).is_err());
    let truncated = &gzip(&[5u8; 10_000])[..20];
    let (_, r) = decompress(truncated).unwrap();
    let err = read_layer(r, DIGEST, |_| Ok::<(), LayerError>(())).unwrap_err();
    assert!(matches!(err, LayerError::Unreadable { .. }), "{err}");
}

#[test]
fn digest_reader_hashes_everything_read() {
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let want = format!("sha256:{}", hex::encode(Sha256::digest(&data)));
    let mut r = DigestReader::new(&data[..]);
    let mut head = [0u8; 1000];
    r.read_exact(&mut head).unwrap();
    assert_eq!(r.drain().unwrap(), 99_000);
    assert_eq!(r.finish(), (want, 100_000));
    let empty = DigestReader::new(&b""[..]).finish();
    assert_eq!(
        empty.0,
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn digest_covers_bytes_after_tar_end() {
    let mut tar = Tar::new().file("f", b"x").finish();
    tar.extend_from_slice(&[0u8; 4096]);
    let mut r = DigestReader::new(&tar[..]);
    read_layer(&mut r, DIGEST, |_| Ok::<(), LayerError>(())).unwrap();
    r.drain().unwrap();
    let (digest, len) = r.finish();
    assert_eq!(len, tar.len() as u64);
    assert_eq!(
        digest,
        format!("sha256:{}", hex::encode(Sha256::digest(&tar)))
    );
}
