//! Layer blobs as tar streams: [`decompress`] by magic bytes, and
//! [`DigestReader`], which hashes what passes through it.

use super::*;

/// How a layer blob is compressed, by its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar stream.
    None,
    /// gzip (magic `1f 8b`); several members are read as one stream.
    Gzip,
    /// zstd (magic `28 b5 2f fd`); several frames are read as one stream.
    Zstd,
}

/// Magic bytes of gzip.
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
/// Magic bytes of zstd.
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// Detects the compression of `reader` by its magic bytes and returns a
/// reader of the uncompressed stream. Anything that is neither gzip nor zstd
/// is passed through as plain tar. Decompression errors surface from reads.
pub fn decompress<'a, R: BufRead + 'a>(
    mut reader: R,
) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    // Read the magic ourselves: fill_buf may legally return fewer bytes.
    let mut magic = [0u8; 4];
    let mut have = 0;
    while let Some(rest) = magic.get_mut(have..).filter(|r| !r.is_empty()) {
        match reader.read(rest) {
            Ok(0) => break,
            Ok(n) => have += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let head = magic.get(..have).unwrap_or_default();
    let stream = io::Cursor::new(head.to_vec()).chain(reader);
    Ok(if head.starts_with(ZSTD_MAGIC) {
        let decoder = zstd::stream::read::Decoder::with_buffer(stream)?;
        (Compression::Zstd, Box::new(decoder))
    } else if head.starts_with(GZIP_MAGIC) {
        let decoder = flate2::bufread::MultiGzDecoder::new(stream);
        (Compression::Gzip, Box::new(decoder))
    } else {
        (Compression::None, Box::new(stream))
    })
}

/// Wraps a reader, computing the sha256 and length of every byte read
/// through it.
pub struct DigestReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> DigestReader<R> {
    /// Starts hashing what is read from `inner`.
    pub fn new(inner: R) -> Self {
        DigestReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Reads the rest of the stream (e.g. after the tar end blocks) so the
    /// digest covers all of it; returns how many bytes that was.
    pub fn drain(&mut self) -> io::Result<u64> {
        io::copy(self, &mut io::sink())
    }

    /// The digest (`sha256:<hex>`) and length of everything read so far.
    pub fn finish(self) -> (String, u64) {
        let hash = hex::encode(self.hasher.finalize());
        (format!("sha256:{hash}"), self.count)
    }
}

impl<R: Read> Read for DigestReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(read) = buf.get(..n) {
            self.hasher.update(read);
        }
        self.count = self.count.saturating_add(n as u64);
        Ok(n)
    }
}
