//! PURE: ref names in the OSTree repo, for layers and images.
//!
//! ```text
//! berth/
//! ├── layer/sha256/<64 hex>     one commit per layer, keyed by its diff_id
//! └── image/<escaped name>      the merged commit of an image reference
//! ```
//!
//! OSTree ref components match `[\w\d][-._\w\d]*`. An image name (any string,
//! such as `127.0.0.1:5000/ns/busybox:latest` or `oci:/tmp/x y/layout:tag`)
//! is escaped byte by byte: `[A-Za-z0-9.-]` stay (except `.` and `-` at the
//! start of a component), `_` becomes `__`, every other byte `_XX` (uppercase
//! hex). `/` is escaped too, so a short name is one component:
//! `127.0.0.1_3A5000_2Fns_2Fbusybox_3Alatest`. The empty name is `_`.
//!
//! A ref is a file under `refs/heads/`, so a component must fit in a file
//! name: escaped names longer than [`MAX_COMPONENT`] are split into several
//! components, each but the last ending in the marker `_-`, which escaping
//! never produces. No image ref is therefore a directory of another one.
//! The escaping is injective, and [`image_name`] inverts [`image_ref`].

/// Prefix of every layer ref.
pub const LAYER_PREFIX: &str = "berth/layer/";
/// Prefix of every image ref.
pub const IMAGE_PREFIX: &str = "berth/image/";
/// Prefix of the refs that keep a deployed commit (either slot of any
/// container) from being pruned after its image ref moved on:
/// `berth/deployed/<commit>`.
pub const DEPLOYED_PREFIX: &str = "berth/deployed/";
/// Longest component of an image ref, in bytes (file names allow 255).
pub const MAX_COMPONENT: usize = 200;

/// Digest algorithm of layer diff_ids.
const SHA256: &str = "sha256";
/// Ends every image-ref component that the next one continues.
const CONTINUED: &str = "_-";
/// Escaped form of the empty name.
const EMPTY: &str = "_";

/// A value that cannot be turned into a ref.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    /// A layer diff_id that is not `sha256:` and 64 lowercase hex digits.
    #[error("invalid layer diff_id {diff_id:?}: expected sha256:<64 lowercase hex digits>")]
    InvalidDiffId {
        /// The diff_id as given.
        diff_id: String,
    },
}

/// The ref of the layer whose uncompressed digest is `diff_id`
/// (`sha256:<64 lowercase hex>`): `berth/layer/sha256/<hex>`.
pub fn layer_ref(diff_id: &str) -> Result<String, RefError> {
    diff_id
        .strip_prefix(SHA256)
        .and_then(|rest| rest.strip_prefix(':'))
        .filter(|hex| is_sha256_hex(hex))
        .map(|hex| format!("{LAYER_PREFIX}{SHA256}/{hex}"))
        .ok_or_else(|| RefError::InvalidDiffId {
            diff_id: diff_id.to_string(),
        })
}

/// The diff_id a layer ref names; `None` if `r` is not a layer ref.
pub fn layer_diff_id(r: &str) -> Option<String> {
    let hex = r
        .strip_prefix(LAYER_PREFIX)?
        .strip_prefix(SHA256)?
        .strip_prefix('/')?;
    is_sha256_hex(hex).then(|| format!("{SHA256}:{hex}"))
}

fn is_sha256_hex(hex: &str) -> bool {
    hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The ref of the image named `name` (any string); see the module docs.
pub fn image_ref(name: &str) -> String {
    format!("{IMAGE_PREFIX}{}", escape(name))
}

/// The image name an image ref stands for; `None` if `r` is not an image
/// ref or not exactly what [`image_ref`] produces.
pub fn image_name(r: &str) -> Option<String> {
    let escaped = r.strip_prefix(IMAGE_PREFIX)?;
    if escaped == EMPTY {
        return Some(String::new());
    }
    let mut bytes = Vec::with_capacity(escaped.len());
    let mut components = escaped.split('/').peekable();
    while let Some(component) = components.next() {
        let body = match components.peek() {
            Some(_) => component.strip_suffix(CONTINUED)?,
            None => component,
        };
        unescape_into(body, &mut bytes)?;
    }
    let name = String::from_utf8(bytes).ok()?;
    // Only the canonical form is accepted, so image_ref(name) == r.
    (escape(&name) == escaped).then_some(name)
}

/// Escapes `name` into one or more ref components.
fn escape(name: &str) -> String {
    if name.is_empty() {
        return EMPTY.to_string();
    }
    let mut out = String::with_capacity(name.len() * 2);
    let mut len = 0;
    for &byte in name.as_bytes() {
        let mut token = escape_byte(byte, len == 0);
        if len + token.len() + CONTINUED.len() > MAX_COMPONENT {
            out.push_str(CONTINUED);
            out.push('/');
            len = 0;
            token = escape_byte(byte, true);
        }
        out.push_str(&token);
        len += token.len();
    }
    out
}

/// One byte's escape; `.` and `-` cannot start a component.
fn escape_byte(byte: u8, at_start: bool) -> String {
    match byte {
        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => char::from(byte).to_string(),
        b'.' | b'-' if !at_start => char::from(byte).to_string(),
        b'_' => "__".to_string(),
        _ => format!("_{byte:02X}"),
    }
}

/// Undoes [`escape_byte`] over one component body; `None` on a bad escape.
fn unescape_into(body: &str, out: &mut Vec<u8>) -> Option<()> {
    let mut bytes = body.bytes();
    while let Some(b) = bytes.next() {
        if b != b'_' {
            out.push(b);
            continue;
        }
        match bytes.next()? {
            b'_' => out.push(b'_'),
            high => {
                let low = bytes.next()?;
                out.push(hex_value(high)? << 4 | hex_value(low)?);
            }
        }
    }
    Some(())
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// OSTree's ref syntax: `/`-separated components matching `[\w\d][-._\w\d]*`.
    fn is_valid_ostree_ref(r: &str) -> bool {
        r.split('/').all(|c| {
            let mut bytes = c.bytes();
            let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
            bytes.next().is_some_and(word) && bytes.all(|b| word(b) || b == b'-' || b == b'.')
        })
    }

    #[test]
    fn layer_refs_round_trip() {
        let diff_id = format!("sha256:{HEX}");
        let r = layer_ref(&diff_id).unwrap();
        assert_eq!(r, format!("berth/layer/sha256/{HEX}"));
        assert!(is_valid_ostree_ref(&r));
        assert_eq!(layer_diff_id(&r), Some(diff_id));
    }

    #[test]
    fn refuses_bad_diff_ids() {
        let upper = format!("sha256:{}", HEX.to_uppercase());
        let short = format!("sha256:{}", &HEX[1..]);
        let long = format!("sha256:{HEX}0");
        let other = format!("sha512:{HEX}");
        let slash = format!("sha256/{HEX}");
        let junk = format!("sha256:{}g", &HEX[1..]);
        for bad in [
            upper,
            short,
            long,
            other,
            slash,
            junk,
            HEX.to_string(),
            String::new(),
        ] {
            let err = layer_ref(&bad).unwrap_err();
            assert_eq!(
                err,
                RefError::InvalidDiffId {
                    diff_id: bad.clone()
                }
            );
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn layer_diff_id_ignores_other_refs() {
        let cases = [
            format!("berth/layer/sha256/{}", HEX.to_uppercase()),
            format!("berth/layer/sha256/{HEX}/x"),
            format!("berth/layer/sha512/{HEX}"),
            format!("berth/image/sha256/{HEX}"),
            format!("layer/sha256/{HEX}"),
            "berth/layer/sha256/".to_string(),
        ];
        for r in cases {
            assert_eq!(layer_diff_id(&r), None, "{r}");
        }
    }

    #[test]
    fn escapes_image_names() {
        let cases = [
            (
                "127.0.0.1:5000/ns/busybox:latest",
                "127.0.0.1_3A5000_2Fns_2Fbusybox_3Alatest",
            ),
            (
                "oci:/tmp/x y/layout:tag",
                "oci_3A_2Ftmp_2Fx_20y_2Flayout_3Atag",
            ),
            (
                "docker.io/library/a_b@sha256:00",
                "docker.io_2Flibrary_2Fa__b_40sha256_3A00",
            ),
            ("", "_"),
            ("_", "__"),
            ("__", "____"),
            (".hidden", "_2Ehidden"),
            ("-dash", "_2Ddash"),
            ("a.-b", "a.-b"),
            ("é", "_C3_A9"),
            ("/", "_2F"),
        ];
        for (name, escaped) in cases {
            let r = image_ref(name);
            assert_eq!(r, format!("berth/image/{escaped}"), "{name:?}");
            assert!(is_valid_ostree_ref(&r), "{r}");
            assert_eq!(image_name(&r).as_deref(), Some(name), "{r}");
        }
    }

    #[test]
    fn image_name_refuses_non_canonical_refs() {
        let cases = [
            "berth/layer/abc",
            "berth/image/",
            "berth/image/a/b",
            "berth/image/a_-",
            "berth/image/a_-/",
            "berth/image/_2e",
            "berth/image/_41",
            "berth/image/_5F",
            "berth/image/__/_",
            "berth/image/a_",
            "berth/image/a_4",
            "berth/image/a_G0",
            "berth/image/.a",
            "berth/image/_FF",
            "berth/image/a b",
            "berth/image/a:b",
            "berth/image/a_-/b",
        ];
        for r in cases {
            assert_eq!(image_name(r), None, "{r}");
        }
    }

    #[test]
    fn long_names_split_into_bounded_components() {
        let name = format!("oci:{}", "/dir.x".repeat(120));
        let r = image_ref(&name);
        let components: Vec<&str> = r.strip_prefix(IMAGE_PREFIX).unwrap().split('/').collect();
        assert!(components.len() > 3, "{r}");
        assert!(components.iter().all(|c| c.len() <= MAX_COMPONENT), "{r}");
        let (last, rest) = components.split_last().unwrap();
        assert!(rest.iter().all(|c| c.ends_with(CONTINUED)));
        assert!(!last.ends_with(CONTINUED));
        assert!(is_valid_ostree_ref(&r));
        assert_eq!(image_name(&r), Some(name));
        // No leading run of components is the ref of another name.
        for n in 1..components.len() {
            let prefix = format!("{IMAGE_PREFIX}{}", components[..n].join("/"));
            assert_eq!(image_name(&prefix), None, "{prefix}");
        }
        // A component that starts with `.` after a split is escaped.
        let dots = ".".repeat(500);
        let r = image_ref(&dots);
        assert!(is_valid_ostree_ref(&r), "{r}");
        assert_eq!(image_name(&r), Some(dots));
    }

    /// Strings that cross component boundaries and stress the escapes.
    fn tricky() -> impl Strategy<Value = String> {
        "[a_./:-]{0,450}"
    }

    proptest! {
        #[test]
        fn image_refs_round_trip(name in any::<String>()) {
            let r = image_ref(&name);
            prop_assert!(is_valid_ostree_ref(&r), "{}", r);
            prop_assert_eq!(image_name(&r), Some(name));
        }

        #[test]
        fn long_image_refs_round_trip(name in tricky()) {
            let r = image_ref(&name);
            prop_assert!(is_valid_ostree_ref(&r), "{}", r);
            let escaped = r.strip_prefix(IMAGE_PREFIX).unwrap_or_default();
            prop_assert!(escaped.split('/').all(|c| !c.is_empty() && c.len() <= MAX_COMPONENT));
            prop_assert_eq!(image_name(&r), Some(name));
        }

        #[test]
        fn image_refs_are_injective_and_never_nest(a in tricky(), b in tricky()) {
            let (ra, rb) = (image_ref(&a), image_ref(&b));
            prop_assert_eq!(a == b, ra == rb);
            prop_assert!(!rb.starts_with(&format!("{ra}/")), "{} nests under {}", rb, ra);
        }

        #[test]
        fn image_name_accepts_only_what_image_ref_makes(tail in "[a-zA-Z0-9_./:-]{0,40}") {
            let r = format!("{IMAGE_PREFIX}{tail}");
            if let Some(name) = image_name(&r) {
                prop_assert_eq!(image_ref(&name), r);
            }
        }
    }
}
