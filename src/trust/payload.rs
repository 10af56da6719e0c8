//! PURE: the simple-signing payload both signature formats sign.
//!
//! ```json
//! {"critical": {"type": "atomic container signature",
//!               "image": {"docker-manifest-digest": "sha256:…"},
//!               "identity": {"docker-reference": "host/repo:tag"}},
//!  "optional": {"creator": "…", "timestamp": 1700000000}}
//! ```
//!
//! GPG signatures carry it inside the OpenPGP message with `type` "atomic
//! container signature"; cosign signatures are made over it with `type`
//! "cosign container image signature" (cosign writes `"optional": null`).
//! Parsing is as strict as containers/image's: `critical` and its objects
//! hold exactly their fields (no unknown, missing or repeated ones), the
//! type must be the one of the format, and `optional`'s `creator` and
//! `timestamp`, when present, must be a string and a number.

use serde::Deserialize;

/// `critical.type` of a GPG simple signature.
pub const ATOMIC_TYPE: &str = "atomic container signature";
/// `critical.type` of a cosign signature.
pub const COSIGN_TYPE: &str = "cosign container image signature";

/// Which signature format a payload must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// GPG simple signing (`signedBy`).
    Atomic,
    /// cosign (`sigstoreSigned`).
    Cosign,
}

impl Format {
    fn type_name(self) -> &'static str {
        match self {
            Format::Atomic => ATOMIC_TYPE,
            Format::Cosign => COSIGN_TYPE,
        }
    }
}

/// What a verified payload claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// `critical.image.docker-manifest-digest`.
    pub manifest_digest: String,
    /// `critical.identity.docker-reference`.
    pub docker_reference: String,
}

/// A payload that is not a valid simple-signing document.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// Not JSON of the required shape.
    #[error("the signed payload is not a simple-signing document: {0}")]
    Shape(String),
    /// The type of the other format (or of neither).
    #[error("the signed payload has type {found:?}, expected {expected:?}")]
    Type {
        /// `critical.type` as found.
        found: String,
        /// The type the format requires.
        expected: &'static str,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    critical: Critical,
    optional: Option<Optional>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Critical {
    #[serde(rename = "type")]
    kind: String,
    image: Image,
    identity: Identity,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    digest: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Identity {
    #[serde(rename = "docker-reference")]
    reference: String,
}

/// `optional`: other keys are allowed and ignored; these two are typed.
#[derive(Deserialize)]
struct Optional {
    #[serde(default)]
    #[allow(dead_code)] // read only to check its type
    creator: Option<String>,
    #[serde(default)]
    #[allow(dead_code)] // read only to check its type
    timestamp: Option<f64>,
}

/// Parses `bytes` as a payload of `format`.
pub fn parse(bytes: &[u8], format: Format) -> Result<Payload, PayloadError> {
    // `optional` must be present; only cosign may write null there.
    let raw: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(bytes).map_err(|e| PayloadError::Shape(e.to_string()))?;
    match raw.get("optional") {
        None => return Err(PayloadError::Shape("missing field `optional`".into())),
        Some(serde_json::Value::Null) if format == Format::Atomic => {
            return Err(PayloadError::Shape("`optional` must be an object".into()))
        }
        Some(_) => {}
    }
    // Parsed again as a struct: serde then refuses repeated and unknown keys.
    let doc: Document =
        serde_json::from_slice(bytes).map_err(|e| PayloadError::Shape(e.to_string()))?;
    let _ = doc.optional;
    if doc.critical.kind != format.type_name() {
        return Err(PayloadError::Type {
            found: doc.critical.kind,
            expected: format.type_name(),
        });
    }
    Ok(Payload {
        manifest_digest: doc.critical.image.digest,
        docker_reference: doc.critical.identity.reference,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

    fn doc(kind: &str, optional: &str) -> String {
        format!(
            r#"{{"critical":{{"type":"{kind}","image":{{"docker-manifest-digest":"{D}"}},"identity":{{"docker-reference":"r.example/a:1"}}}},"optional":{optional}}}"#
        )
    }

    #[test]
    fn accepts_both_formats() {
        let p = parse(
            doc(ATOMIC_TYPE, r#"{"creator":"skopeo","timestamp":1}"#).as_bytes(),
            Format::Atomic,
        )
        .unwrap();
        assert_eq!(p.manifest_digest, D);
        assert_eq!(p.docker_reference, "r.example/a:1");
        assert!(parse(doc(COSIGN_TYPE, "null").as_bytes(), Format::Cosign).is_ok());
        assert!(parse(
            doc(COSIGN_TYPE, r#"{"any":"thing"}"#).as_bytes(),
            Format::Cosign
        )
        .is_ok());
    }

    #[test]
    fn refuses_the_other_format() {
        assert!(matches!(
            parse(doc(COSIGN_TYPE, "{}").as_bytes(), Format::Atomic),
            Err(PayloadError::Type { .. })
        ));
        assert!(matches!(
            parse(doc(ATOMIC_TYPE, "{}").as_bytes(), Format::Cosign),
            Err(PayloadError::Type { .. })
        ));
    }

    #[test]
    fn refuses_malformed_documents() {
        let bad = [
            // null optional in a GPG payload, missing optional
            doc(ATOMIC_TYPE, "null"),
            r#"{"critical":{"type":"atomic container signature","image":{"docker-manifest-digest":"x"},"identity":{"docker-reference":"a"}}}"#.into(),
            // unknown critical field, missing identity
            r#"{"critical":{"type":"atomic container signature","image":{"docker-manifest-digest":"x"},"identity":{"docker-reference":"a"},"extra":1},"optional":{}}"#.into(),
            r#"{"critical":{"type":"atomic container signature","image":{"docker-manifest-digest":"x"}},"optional":{}}"#.into(),
            // repeated key, unknown top-level key, typed optional fields
            r#"{"critical":{"type":"atomic container signature","type":"atomic container signature","image":{"docker-manifest-digest":"x"},"identity":{"docker-reference":"a"}},"optional":{}}"#.into(),
            r#"{"critical":{"type":"atomic container signature","image":{"docker-manifest-digest":"x"},"identity":{"docker-reference":"a"}},"optional":{},"more":1}"#.into(),
            doc(ATOMIC_TYPE, r#"{"timestamp":"yesterday"}"#),
            doc(ATOMIC_TYPE, r#"{"creator":7}"#),
            "not json".into(),
        ];
        for b in bad {
            assert!(
                matches!(
                    parse(b.as_bytes(), Format::Atomic),
                    Err(PayloadError::Shape(_))
                ),
                "{b}"
            );
        }
    }
}
