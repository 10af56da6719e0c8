//! PURE: a blob read against its descriptor: no byte past the declared size
//! is accepted, and at the end the length and the sha256 must match.
//!
//! [`BlobCheck`] is fed chunks (the async registry client uses it on the
//! body as it arrives); [`CheckedReader`] wraps a blocking reader (local
//! layouts and archives). Either way a source that sends more than declared
//! is cut off at the declared size, and the [`Fault`] says what differed.
//! Documents fetched without a descriptor (a manifest by tag, `index.json`)
//! get the fixed caps below instead.

use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

/// Cap on a manifest or index read without a descriptor, and on any
/// descriptor's size for one: 4 MiB, as containers/image
/// (`internal/iolimits`) uses. Real manifests are a few KiB.
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;
/// Cap on an image config: 4 MiB, as containers/image uses. Real configs
/// are a few KiB (long build histories reach tens of KiB).
pub const MAX_CONFIG_SIZE: u64 = 4 << 20;

/// [`MAX_MANIFEST_SIZE`] as errors name it.
pub fn manifest_limit() -> String {
    format!("{MAX_MANIFEST_SIZE} bytes, berth's limit for a manifest or index")
}

/// [`MAX_CONFIG_SIZE`] as errors name it.
pub fn config_limit() -> String {
    format!("{MAX_CONFIG_SIZE} bytes, berth's limit for an image config")
}

/// How a blob differs from its descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// More bytes arrived than the descriptor declares; reading stopped there.
    TooLong {
        /// The declared size.
        declared: u64,
    },
    /// The content ended before the declared size.
    TooShort {
        /// The declared size.
        declared: u64,
        /// Bytes that arrived.
        received: u64,
    },
    /// The right length, other content.
    Mismatch {
        /// What the content hashes to.
        actual: String,
    },
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::TooLong { declared } => write!(
                f,
                "more than the {declared} bytes its descriptor declares were sent (reading stopped there)"
            ),
            Fault::TooShort { declared, received } => write!(
                f,
                "{received} bytes were sent but its descriptor declares {declared}"
            ),
            Fault::Mismatch { actual } => write!(f, "the content hashes to {actual}"),
        }
    }
}

/// Checks a blob fed in chunks against its digest and declared size.
#[derive(Debug, Clone)]
pub struct BlobCheck {
    digest: String,
    declared: u64,
    received: u64,
    hasher: Sha256,
}

impl BlobCheck {
    /// Starts checking a blob declared as `digest`, `declared` bytes long.
    pub fn new(digest: &str, declared: u64) -> BlobCheck {
        BlobCheck {
            digest: digest.to_string(),
            declared,
            received: 0,
            hasher: Sha256::new(),
        }
    }

    /// Bytes accepted so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Bytes still expected.
    pub fn remaining(&self) -> u64 {
        self.declared.saturating_sub(self.received)
    }

    /// Takes the next chunk. Returns how much of it lies within the declared
    /// size (hashed and to be kept), or [`Fault::TooLong`] when it goes past.
    pub fn update(&mut self, chunk: &[u8]) -> Result<usize, Fault> {
        let room = usize::try_from(self.remaining()).unwrap_or(usize::MAX);
        let kept = chunk.get(..room).unwrap_or(chunk);
        self.hasher.update(kept);
        self.received = self.received.saturating_add(kept.len() as u64);
        if kept.len() < chunk.len() {
            return Err(Fault::TooLong {
                declared: self.declared,
            });
        }
        Ok(kept.len())
    }

    /// The verdict once the source says it is done.
    pub fn finish(&self) -> Result<(), Fault> {
        if self.received != self.declared {
            return Err(Fault::TooShort {
                declared: self.declared,
                received: self.received,
            });
        }
        let actual = format!("sha256:{}", hex::encode(self.hasher.clone().finalize()));
        if actual != self.digest {
            return Err(Fault::Mismatch { actual });
        }
        Ok(())
    }
}

/// A blocking reader that hands out a blob only as far as its descriptor
/// allows: reading past the declared size, or reaching the end with the wrong
/// length or digest, fails with an I/O error and records the [`Fault`].
pub struct CheckedReader<R> {
    inner: R,
    check: Option<BlobCheck>,
    verdict: Option<Result<(), Fault>>,
}

impl<R: Read> CheckedReader<R> {
    /// Checks `inner` against `digest` and `declared`.
    pub fn new(inner: R, digest: &str, declared: u64) -> Self {
        CheckedReader {
            inner,
            check: Some(BlobCheck::new(digest, declared)),
            verdict: None,
        }
    }

    /// The fault found so far, if any (`None` also while unfinished).
    pub fn fault(&self) -> Option<&Fault> {
        self.verdict.as_ref().and_then(|v| v.as_ref().err())
    }

    /// Reads whatever the consumer left (at most one byte past the declared
    /// size) and returns the verdict. `Err(io)` only for a read failure.
    pub fn verify(&mut self) -> io::Result<Result<(), Fault>> {
        let mut buf = [0u8; 64 * 1024];
        while self.verdict.is_none() {
            match self.read(&mut buf) {
                Ok(_) => {}
                Err(_) if self.verdict.is_some() => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.verdict.clone().unwrap_or(Ok(())))
    }

    fn fail(&mut self, fault: Fault) -> io::Error {
        let e = io::Error::new(io::ErrorKind::InvalidData, fault.to_string());
        self.verdict = Some(Err(fault));
        e
    }
}

impl<R: Read> Read for CheckedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(v) = &self.verdict {
            return match v {
                Ok(()) => Ok(0),
                Err(f) => Err(io::Error::new(io::ErrorKind::InvalidData, f.to_string())),
            };
        }
        let Some(check) = self.check.as_mut() else {
            return Ok(0);
        };
        // Ask for one byte more than is left, so a longer source shows itself.
        let want = usize::try_from(check.remaining().saturating_add(1))
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let Some(window) = buf.get_mut(..want) else {
            return Ok(0);
        };
        let n = self.inner.read(window)?;
        if n == 0 {
            let verdict = match self.check.take() {
                Some(c) => c.finish(),
                None => Ok(()),
            };
            return match verdict {
                Ok(()) => {
                    self.verdict = Some(Ok(()));
                    Ok(0)
                }
                Err(f) => Err(self.fail(f)),
            };
        }
        let room = check.remaining();
        match check.update(window.get(..n).unwrap_or_default()) {
            Ok(kept) => Ok(kept),
            // Hand out what fits; the next read reports the fault.
            Err(f) if room > 0 => {
                self.verdict = Some(Err(f));
                Ok(usize::try_from(room).unwrap_or(n).min(n))
            }
            Err(f) => Err(self.fail(f)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(b: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(b)))
    }

    #[test]
    fn check_accepts_the_declared_blob_in_any_chunking() {
        let blob = b"hello, blob";
        let mut c = BlobCheck::new(&digest(blob), blob.len() as u64);
        for chunk in blob.chunks(3) {
            assert_eq!(c.update(chunk), Ok(chunk.len()));
        }
        assert_eq!(c.finish(), Ok(()));
    }

    #[test]
    fn check_cuts_off_past_the_declared_size() {
        let blob = b"0123456789";
        let mut c = BlobCheck::new(&digest(&blob[..4]), 4);
        assert_eq!(c.update(&blob[..3]), Ok(3));
        assert_eq!(c.update(&blob[3..]), Err(Fault::TooLong { declared: 4 }));
        assert_eq!(c.received(), 4);
    }

    #[test]
    fn check_names_both_sizes_when_short_and_the_digest_when_wrong() {
        let mut c = BlobCheck::new(&digest(b"abcd"), 4);
        c.update(b"abc").unwrap();
        let f = c.finish().unwrap_err();
        assert_eq!(
            f,
            Fault::TooShort {
                declared: 4,
                received: 3
            }
        );
        let text = f.to_string();
        assert!(text.contains('3') && text.contains('4'), "{text}");
        let mut c = BlobCheck::new(&digest(b"abcd"), 4);
        c.update(b"abce").unwrap();
        let f = c.finish().unwrap_err();
        assert!(f.to_string().contains(&digest(b"abce")), "{f}");
    }

    #[test]
    fn reader_stops_one_byte_past_the_declared_size() {
        let endless = io::repeat(0);
        let mut r = CheckedReader::new(endless, &digest(&[0; 100]), 100);
        let mut out = Vec::new();
        let e = r.read_to_end(&mut out).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert_eq!(out.len(), 100);
        assert_eq!(r.fault(), Some(&Fault::TooLong { declared: 100 }));
    }

    #[test]
    fn reader_verifies_what_the_consumer_left() {
        let blob = vec![7u8; 5000];
        let mut r = CheckedReader::new(&blob[..], &digest(&blob), 5000);
        let mut head = [0u8; 10];
        r.read_exact(&mut head).unwrap();
        assert_eq!(r.verify().unwrap(), Ok(()));
        let mut bad = blob.clone();
        bad[4000] = 8;
        let mut r = CheckedReader::new(&bad[..], &digest(&blob), 5000);
        r.read_exact(&mut head).unwrap();
        assert_eq!(
            r.verify().unwrap(),
            Err(Fault::Mismatch {
                actual: digest(&bad)
            })
        );
        let mut r = CheckedReader::new(&blob[..4999], &digest(&blob), 5000);
        assert!(matches!(r.verify().unwrap(), Err(Fault::TooShort { .. })));
    }
}
