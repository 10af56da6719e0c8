//! Lookaside storage: GPG signatures kept beside a registry, as files or on
//! a web server (containers-signature-protocols).
//!
//! ```text
//! BASE/REPOSITORY@sha256=HEX/
//! ├── signature-1
//! ├── signature-2     read from 1 up until the first missing one
//! └── …
//! ```
//!
//! `BASE` is a registries.d `lookaside` URL: `file:///dir` (inside `--root`,
//! read through [`Root`] so that no symlink there reaches the host)
//! or `http(s)://host/path`; `REPOSITORY` is the image's path without its
//! registry host (`library/busybox`). At most [`MAX_SIGNATURES`] signatures
//! of at most [`MAX_SIGNATURE_SIZE`] bytes each are read, as containers/image
//! bounds them.

use std::path::{Path, PathBuf};

use crate::rootfs::{Root, RootError};

/// How many signatures one image may have.
pub const MAX_SIGNATURES: usize = 128;
/// How large one signature may be (4 MiB, containers/image's limit).
pub const MAX_SIGNATURE_SIZE: u64 = 4 << 20;

/// A lookaside base that cannot be used, or a read that failed.
#[derive(Debug, thiserror::Error)]
pub enum LookasideError {
    /// Not `file:///…` or `http(s)://…`.
    #[error("lookaside {0:?} is not a file:///PATH or http(s):// URL; fix registries.d")]
    Url(String),
    /// A read that failed for another reason than absence.
    #[error("reading signature {url}: {detail}")]
    Read {
        /// The signature's URL.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// A `file://` signature that cannot be read (a loop, a FIFO…).
    #[error("reading signature {url}: {source}")]
    File {
        /// The signature's URL.
        url: String,
        /// Why (boxed: the error travels by value through every check).
        source: Box<RootError>,
    },
    /// More signatures than [`MAX_SIGNATURES`].
    #[error("{url}: more than {MAX_SIGNATURES} signatures; refusing to read more")]
    TooMany {
        /// The image's signature directory.
        url: String,
    },
    /// A signature larger than [`MAX_SIGNATURE_SIZE`].
    #[error("signature {url} is larger than {MAX_SIGNATURE_SIZE} bytes; refusing it")]
    TooLarge {
        /// The signature's URL.
        url: String,
    },
}

/// A parsed lookaside base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    /// `file:///dir`: an absolute directory (below the root).
    File(PathBuf),
    /// `http://…` or `https://…`, without a trailing `/`.
    Http(String),
}

impl Base {
    /// Parses a registries.d `lookaside` value.
    pub fn parse(url: &str) -> Result<Base, LookasideError> {
        if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(LookasideError::Url(url.to_string()));
            }
            return Ok(Base::File(PathBuf::from(path)));
        }
        if url.starts_with("http://") || url.starts_with("https://") {
            return Ok(Base::Http(url.trim_end_matches('/').to_string()));
        }
        Err(LookasideError::Url(url.to_string()))
    }
}

/// `REPOSITORY@sha256=HEX/signature-N` (N counts from 1).
pub fn signature_path(repository: &str, manifest_digest: &str, n: usize) -> String {
    format!(
        "{repository}@{}/signature-{n}",
        manifest_digest.replacen(':', "=", 1)
    )
}

/// Reads every signature of the image from a `file://` base, resolved
/// inside `root` (a symlink on the way, or a signature that is one,
/// resolves inside the root: never to the host's files).
pub fn read_files(
    root: &Root,
    dir: &Path,
    repository: &str,
    manifest_digest: &str,
) -> Result<Vec<Vec<u8>>, LookasideError> {
    let mut out = Vec::new();
    for n in 1..=MAX_SIGNATURES + 1 {
        let path = dir.join(signature_path(repository, manifest_digest, n));
        let shown = root.host().join(path.strip_prefix("/").unwrap_or(&path));
        let url = format!("file://{}", shown.display());
        let bytes = match root.read_at_most(&path, MAX_SIGNATURE_SIZE) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Ok(out),
            Err(RootError::TooLarge { .. }) if n <= MAX_SIGNATURES => {
                return Err(LookasideError::TooLarge { url })
            }
            Err(e) if n <= MAX_SIGNATURES => {
                return Err(LookasideError::File {
                    url,
                    source: Box::new(e),
                })
            }
            // Signature MAX_SIGNATURES+1 exists, whatever it holds.
            Err(_) => return Err(LookasideError::TooMany { url }),
        };
        if n > MAX_SIGNATURES {
            return Err(LookasideError::TooMany { url });
        }
        out.push(bytes);
    }
    Ok(out)
}

/// Reads every signature of the image from an `http(s)://` base; a 404
/// ends the list.
pub async fn read_http(
    http: &reqwest::Client,
    base: &str,
    repository: &str,
    manifest_digest: &str,
) -> Result<Vec<Vec<u8>>, LookasideError> {
    let mut out = Vec::new();
    for n in 1..=MAX_SIGNATURES + 1 {
        let url = format!("{base}/{}", signature_path(repository, manifest_digest, n));
        let read_err = |e: reqwest::Error| LookasideError::Read {
            url: url.clone(),
            detail: e.to_string(),
        };
        let mut res = http.get(&url).send().await.map_err(read_err)?;
        match res.status() {
            reqwest::StatusCode::NOT_FOUND => return Ok(out),
            reqwest::StatusCode::OK => {}
            s => {
                return Err(LookasideError::Read {
                    url,
                    detail: format!("HTTP {s}"),
                })
            }
        }
        if n > MAX_SIGNATURES {
            return Err(LookasideError::TooMany { url });
        }
        if res.content_length().is_some_and(|l| l > MAX_SIGNATURE_SIZE) {
            return Err(LookasideError::TooLarge { url });
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(read_err)? {
            if bytes.len() as u64 + chunk.len() as u64 > MAX_SIGNATURE_SIZE {
                return Err(LookasideError::TooLarge { url });
            }
            bytes.extend_from_slice(&chunk);
        }
        out.push(bytes);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_containers_image() {
        assert_eq!(
            signature_path("library/busybox", "sha256:ab", 2),
            "library/busybox@sha256=ab/signature-2"
        );
        assert_eq!(
            Base::parse("file:///var/lib/containers/sigstore").unwrap(),
            Base::File("/var/lib/containers/sigstore".into())
        );
        assert_eq!(
            Base::parse("https://sigs.example/x/").unwrap(),
            Base::Http("https://sigs.example/x".into())
        );
        assert!(Base::parse("file://relative").is_err());
        assert!(Base::parse("ftp://x").is_err());
        assert!(Base::parse("/plain/path").is_err());
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // the test's own temp dir
    fn reads_files_until_the_first_gap_and_bounds_them() {
        let root = tempfile::tempdir().unwrap();
        let d = "sha256:00";
        let dir = root.path().join("sigs").join("ns/app@sha256=00");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("signature-1"), b"one").unwrap();
        std::fs::write(dir.join("signature-2"), b"two").unwrap();
        std::fs::write(dir.join("signature-4"), b"four").unwrap();
        let r = Root::open(root.path()).unwrap();
        let got = read_files(&r, Path::new("/sigs"), "ns/app", d).unwrap();
        assert_eq!(got, vec![b"one".to_vec(), b"two".to_vec()]);
        assert!(read_files(&r, Path::new("/none"), "ns/app", d)
            .unwrap()
            .is_empty());
        std::fs::write(
            dir.join("signature-3"),
            vec![0u8; MAX_SIGNATURE_SIZE as usize + 1],
        )
        .unwrap();
        assert!(matches!(
            read_files(&r, Path::new("/sigs"), "ns/app", d),
            Err(LookasideError::TooLarge { .. })
        ));
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // the test's own temp dirs
    fn links_in_a_root_never_reach_the_host() {
        let tmp = tempfile::tempdir().unwrap();
        let d = "sha256:00";
        let host = tmp.path().join("host-sigs");
        let host_image = host.join("ns/app@sha256=00");
        std::fs::create_dir_all(&host_image).unwrap();
        std::fs::write(host_image.join("signature-1"), b"host").unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        let r = Root::open(&root).unwrap();
        let read = || read_files(&r, Path::new("/sigs"), "ns/app", d).unwrap();
        // The lookaside directory: an absolute link, then a `../` one.
        std::os::unix::fs::symlink(&host, root.join("sigs")).unwrap();
        assert!(read().is_empty());
        std::fs::remove_file(root.join("sigs")).unwrap();
        std::os::unix::fs::symlink("../host-sigs", root.join("sigs")).unwrap();
        assert!(read().is_empty());
        // One signature, linked out both ways; the root's own is read.
        std::fs::remove_file(root.join("sigs")).unwrap();
        let image = root.join("sigs/ns/app@sha256=00");
        std::fs::create_dir_all(&image).unwrap();
        std::os::unix::fs::symlink(host_image.join("signature-1"), image.join("signature-1"))
            .unwrap();
        assert!(read().is_empty());
        std::fs::remove_file(image.join("signature-1")).unwrap();
        std::os::unix::fs::symlink(
            "../../../../host-sigs/ns/app@sha256=00/signature-1",
            image.join("signature-1"),
        )
        .unwrap();
        assert!(read().is_empty());
        let inside = root.join(host_image.strip_prefix("/").unwrap());
        std::fs::create_dir_all(&inside).unwrap();
        std::fs::write(inside.join("signature-1"), b"inside").unwrap();
        std::fs::remove_file(image.join("signature-1")).unwrap();
        std::os::unix::fs::symlink(host_image.join("signature-1"), image.join("signature-1"))
            .unwrap();
        assert_eq!(read(), vec![b"inside".to_vec()]);
    }
}
