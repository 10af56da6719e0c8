//! PURE: how much an image may decompress to, and the meter that enforces it.
//!
//! A layer blob is bounded by its descriptor's size (see [`super::blob`]), but
//! what it decompresses to is not: a few MB of gzip can expand to terabytes.
//! [`Limits`] caps one layer and the whole image; a [`SizeBudget`] is shared by
//! the layers of one pull, and each layer import runs a [`Meter`] that charges
//! the bytes of the decompressed stream (and file sizes a sparse tar entry
//! claims without sending them) against both caps. Past a cap the meter trips:
//! reads fail, and the importer reports [`LayerError::TooLarge`] and aborts
//! its transaction, so nothing of that layer is committed.

use std::cell::Cell;
use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};

use super::layer::LayerError;

/// Default cap on one layer's decompressed size: 16 GiB. Real system
/// container images are tens to hundreds of MB, and the largest layers seen
/// in the wild (CUDA, ML runtimes) stay below 10 GiB.
pub const DEFAULT_MAX_LAYER: u64 = 16 << 30;
/// Default cap on a whole image's decompressed size: 32 GiB, twice the layer
/// cap, so one huge layer still fits beside a base image.
pub const DEFAULT_MAX_IMAGE: u64 = 32 << 30;

/// Caps on decompressed sizes (`--max-layer-size`, `--max-image-size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes one layer may decompress to.
    pub layer: u64,
    /// Most bytes all layers of an image may decompress to together.
    pub image: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            layer: DEFAULT_MAX_LAYER,
            image: DEFAULT_MAX_IMAGE,
        }
    }
}

/// Parses a size: a number of bytes with an optional binary unit, `K`, `M`,
/// `G` or `T`, optionally followed by `iB` or `B` (case-insensitive):
/// `512M`, `16GiB`, `1t`, `4096`. Every unit is a power of 1024, as in
/// `docker --shm-size`. Returns a message naming what is wrong.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size; expected e.g. 512M, 16G or 4096"))?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(&unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit; use K, M, G or T (powers of 1024)"
            ))
        }
    };
    if n == 0 {
        return Err(format!("{text:?}: a size limit must be above zero"));
    }
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// A size for people: the largest binary unit that divides it, else bytes
/// with the unit rounded (`16 GiB`, `1.5 MiB`, `100 bytes`).
pub fn format_size(n: u64) -> String {
    const UNITS: [(u32, &str); 4] = [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")];
    for (shift, name) in UNITS {
        let unit = 1u64 << shift;
        if n >= unit {
            return if n % unit == 0 {
                format!("{} {name}", n >> shift)
            } else {
                format!("{:.1} {name} ({n} bytes)", n as f64 / unit as f64)
            };
        }
    }
    format!("{n} bytes")
}

/// Which cap a layer hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    /// `--max-layer-size`.
    Layer(u64),
    /// `--max-image-size`.
    Image(u64),
}

impl std::fmt::Display for Cap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cap::Layer(n) => write!(
                f,
                "the layer decompresses to more than {} (--max-layer-size)",
                format_size(*n)
            ),
            Cap::Image(n) => write!(
                f,
                "the image's layers decompress to more than {} together (--max-image-size)",
                format_size(*n)
            ),
        }
    }
}

/// The decompressed bytes one pull may still write, shared by its layers
/// (and the threads importing them).
#[derive(Debug)]
pub struct SizeBudget {
    image: String,
    limits: Limits,
    used: AtomicU64,
}

impl SizeBudget {
    /// A budget for pulling `image` under `limits`.
    pub fn new(image: &str, limits: Limits) -> SizeBudget {
        SizeBudget {
            image: image.to_string(),
            limits,
            used: AtomicU64::new(0),
        }
    }

    /// The image being pulled, as errors name it.
    pub fn image(&self) -> &str {
        &self.image
    }

    /// The caps.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// A meter for one layer import.
    pub fn meter<'b>(&'b self, digest: &str) -> Meter<'b> {
        Meter {
            budget: self,
            digest: digest.to_string(),
            stream: Cell::new(0),
            files: Cell::new(0),
            charged: Cell::new(0),
            tripped: Cell::new(None),
        }
    }

    /// Charges a layer already in the store (`size` bytes decompressed) to
    /// the image's budget: the cap is on the whole image, not on what one
    /// pull happens to fetch.
    pub fn charge_stored(&self, digest: &str, size: u64) -> Result<(), LayerError> {
        if self.take(size) {
            return Ok(());
        }
        Err(LayerError::TooLarge {
            image: self.image.clone(),
            digest: digest.to_string(),
            cap: Cap::Image(self.limits.image),
        })
    }

    /// Takes `n` bytes from the image's budget; false when that passes the cap.
    fn take(&self, n: u64) -> bool {
        let before = self.used.fetch_add(n, Ordering::SeqCst);
        before.saturating_add(n) <= self.limits.image
    }
}

/// Counts what one layer decompresses to and trips past a cap.
///
/// Charged is the larger of the decompressed stream's length and the sum of
/// its regular files' sizes (a sparse tar entry claims more than it sends).
#[derive(Debug)]
pub struct Meter<'b> {
    budget: &'b SizeBudget,
    digest: String,
    stream: Cell<u64>,
    files: Cell<u64>,
    charged: Cell<u64>,
    tripped: Cell<Option<Cap>>,
}

impl Meter<'_> {
    /// Counts `n` more bytes of the decompressed stream.
    pub fn stream_bytes(&self, n: u64) -> Result<(), LayerError> {
        self.stream.set(self.stream.get().saturating_add(n));
        self.recharge()
    }

    /// Counts a regular file of `size` bytes, before its content is written.
    pub fn file(&self, size: u64) -> Result<(), LayerError> {
        self.files.set(self.files.get().saturating_add(size));
        self.recharge()
    }

    /// Bytes charged so far: what the layer decompresses to, once read whole.
    pub fn charged(&self) -> u64 {
        self.charged.get()
    }

    /// The cap this layer hit, if any.
    pub fn tripped(&self) -> Option<Cap> {
        self.tripped.get()
    }

    /// The error for a tripped meter (or `None`).
    pub fn error(&self) -> Option<LayerError> {
        self.tripped().map(|cap| LayerError::TooLarge {
            image: self.budget.image.clone(),
            digest: self.digest.clone(),
            cap,
        })
    }

    fn recharge(&self) -> Result<(), LayerError> {
        if self.tripped.get().is_none() {
            let now = self.stream.get().max(self.files.get());
            let delta = now.saturating_sub(self.charged.get());
            self.charged.set(now);
            let limits = self.budget.limits;
            if now > limits.layer {
                self.tripped.set(Some(Cap::Layer(limits.layer)));
            } else if delta > 0 && !self.budget.take(delta) {
                self.tripped.set(Some(Cap::Image(limits.image)));
            }
        }
        match self.error() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// A reader of a decompressed layer stream that charges a [`Meter`] and
/// fails once the meter has tripped.
pub struct MeteredReader<'m, 'b, R> {
    inner: R,
    meter: &'m Meter<'b>,
}

impl<'m, 'b, R: Read> MeteredReader<'m, 'b, R> {
    /// Meters `inner`.
    pub fn new(inner: R, meter: &'m Meter<'b>) -> Self {
        MeteredReader { inner, meter }
    }
}

impl<R: Read> Read for MeteredReader<'_, '_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(e) = self.meter.error() {
            return Err(io::Error::other(e.to_string()));
        }
        let n = self.inner.read(buf)?;
        self.meter
            .stream_bytes(n as u64)
            .map_err(|e| io::Error::other(e.to_string()))?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes_with_binary_units() {
        let table = [
            ("4096", 4096),
            ("1k", 1024),
            ("1K", 1024),
            ("1KiB", 1024),
            ("1kb", 1024),
            ("512M", 512 << 20),
            ("16G", 16 << 30),
            ("16GiB", 16 << 30),
            (" 2 T ", 2 << 40),
        ];
        for (text, want) in table {
            assert_eq!(parse_size(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn refuses_bad_sizes_naming_them() {
        for bad in [
            "",
            "G",
            "1.5G",
            "-1",
            "1P",
            "12 apples",
            "0",
            "99999999999T",
        ] {
            let e = parse_size(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
    }

    #[test]
    fn formats_sizes() {
        assert_eq!(format_size(16 << 30), "16 GiB");
        assert_eq!(format_size(100), "100 bytes");
        assert_eq!(format_size(1536 << 10), "1.5 MiB (1572864 bytes)");
        assert_eq!(format_size(1 << 20), "1 MiB");
    }

    fn small(layer: u64, image: u64) -> SizeBudget {
        SizeBudget::new("example.org/a:1", Limits { layer, image })
    }

    #[test]
    fn meter_trips_past_the_layer_cap_and_stays_tripped() {
        let b = small(100, 1000);
        let m = b.meter("sha256:aa");
        assert!(m.stream_bytes(100).is_ok());
        let e = m.stream_bytes(1).unwrap_err().to_string();
        assert!(
            e.contains("sha256:aa") && e.contains("example.org/a:1"),
            "{e}"
        );
        assert!(
            e.contains("100 bytes") && e.contains("--max-layer-size"),
            "{e}"
        );
        assert!(m.stream_bytes(0).is_err());
        assert_eq!(m.tripped(), Some(Cap::Layer(100)));
    }

    #[test]
    fn meter_charges_sparse_file_sizes_not_twice() {
        let b = small(1100, 10_000);
        let m = b.meter("sha256:aa");
        // A 600-byte file arriving in a 1024-byte stream costs 1024, not 1624.
        m.file(600).unwrap();
        m.stream_bytes(1024).unwrap();
        m.stream_bytes(76).unwrap();
        m.stream_bytes(1).unwrap_err();
        let b = small(1000, 10_000);
        let m = b.meter("sha256:bb");
        m.stream_bytes(900).unwrap();
        m.file(600).unwrap();
        // A sparse entry claiming far more than the stream holds.
        assert!(m.file(1 << 40).is_err());
    }

    #[test]
    fn image_cap_counts_every_layer_of_the_pull() {
        let b = small(100, 150);
        let one = b.meter("sha256:01");
        one.stream_bytes(100).unwrap();
        let two = b.meter("sha256:02");
        two.stream_bytes(50).unwrap();
        let e = two.stream_bytes(1).unwrap_err().to_string();
        assert!(
            e.contains("sha256:02") && e.contains("--max-image-size"),
            "{e}"
        );
        assert_eq!(two.tripped(), Some(Cap::Image(150)));
    }

    #[test]
    fn stored_layers_count_towards_the_image_cap() {
        let b = small(100, 150);
        b.charge_stored("sha256:01", 100).unwrap();
        let m = b.meter("sha256:02");
        m.stream_bytes(50).unwrap();
        assert_eq!(m.charged(), 50);
        assert!(m.stream_bytes(1).is_err());
        let e = small(100, 150)
            .charge_stored("sha256:03", 151)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sha256:03") && e.contains("--max-image-size"),
            "{e}"
        );
    }

    #[test]
    fn metered_reader_fails_past_the_cap() {
        let b = small(10, 100);
        let m = b.meter("sha256:cc");
        let mut out = Vec::new();
        let e = MeteredReader::new(&[0u8; 64][..], &m)
            .read_to_end(&mut out)
            .unwrap_err();
        assert!(e.to_string().contains("--max-layer-size"), "{e}");
        let mut ok = Vec::new();
        let b = small(64, 100);
        let m = b.meter("sha256:dd");
        MeteredReader::new(&[0u8; 64][..], &m)
            .read_to_end(&mut ok)
            .unwrap();
        assert_eq!(ok.len(), 64);
    }
}
