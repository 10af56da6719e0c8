//! PURE: one requirement list of policy.json → [`Requirement`]s, read
//! strictly: an unknown type or field is an error naming the file, the scope
//! and the key, as containers/image refuses them, because a misspelt field
//! could otherwise weaken a requirement without a word.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{Map, Value};

use super::policy::PolicyError;
use super::{KeySource, KeyType, Requirement, SignedIdentity};

/// Where in the file a value is, for errors.
pub(super) struct Ctx<'a> {
    file: &'a Path,
    scope: String,
}

impl<'a> Ctx<'a> {
    pub(super) fn new(file: &'a Path, scope: &str) -> Ctx<'a> {
        Ctx {
            file,
            scope: scope.into(),
        }
    }

    pub(super) fn bad(&self, key: &str, reason: impl Into<String>) -> PolicyError {
        PolicyError::Invalid {
            file: self.file.to_path_buf(),
            scope: self.scope.clone(),
            key: key.into(),
            reason: reason.into(),
        }
    }
}

pub(super) fn parse_list(v: &Value, ctx: &Ctx<'_>) -> Result<Vec<Requirement>, PolicyError> {
    let list = v
        .as_array()
        .ok_or_else(|| ctx.bad("(requirements)", "expected a list of requirements"))?;
    if list.is_empty() {
        return Err(ctx.bad(
            "(requirements)",
            "an empty list; use insecureAcceptAnything or reject",
        ));
    }
    list.iter().map(|r| parse_requirement(r, ctx)).collect()
}

fn parse_requirement(v: &Value, ctx: &Ctx<'_>) -> Result<Requirement, PolicyError> {
    let obj = v
        .as_object()
        .ok_or_else(|| ctx.bad("(requirement)", "expected an object"))?;
    let ty = obj
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| ctx.bad("type", "missing or not a string"))?;
    match ty {
        "insecureAcceptAnything" => {
            only_keys(obj, &["type"], ctx)?;
            Ok(Requirement::InsecureAcceptAnything)
        }
        "reject" => {
            only_keys(obj, &["type"], ctx)?;
            Ok(Requirement::Reject)
        }
        "signedBy" => parse_signed_by(obj, ctx),
        "sigstoreSigned" => parse_sigstore(obj, ctx),
        other => Err(ctx.bad(
            "type",
            format!("unknown requirement type {other:?} (insecureAcceptAnything, reject, signedBy, sigstoreSigned)"),
        )),
    }
}

fn only_keys(obj: &Map<String, Value>, allowed: &[&str], ctx: &Ctx<'_>) -> Result<(), PolicyError> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(ctx.bad(k, "unknown key for this type")),
        None => Ok(()),
    }
}

fn string<'v>(
    obj: &'v Map<String, Value>,
    key: &str,
    ctx: &Ctx<'_>,
) -> Result<Option<&'v str>, PolicyError> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s)),
        Some(_) => Err(ctx.bad(key, "expected a non-empty string")),
    }
}

fn key_path(path: &str, key: &str, ctx: &Ctx<'_>) -> Result<KeySource, PolicyError> {
    if !path.starts_with('/') {
        return Err(ctx.bad(key, format!("{path:?} is not an absolute path")));
    }
    Ok(KeySource::Path(PathBuf::from(path)))
}

fn key_data(data: &str, key: &str, ctx: &Ctx<'_>) -> Result<KeySource, PolicyError> {
    base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map(KeySource::Data)
        .map_err(|e| ctx.bad(key, format!("not base64: {e}")))
}

fn parse_signed_by(obj: &Map<String, Value>, ctx: &Ctx<'_>) -> Result<Requirement, PolicyError> {
    only_keys(
        obj,
        &[
            "type",
            "keyType",
            "keyPath",
            "keyPaths",
            "keyData",
            "signedIdentity",
        ],
        ctx,
    )?;
    let key_type = match string(obj, "keyType", ctx)? {
        Some("GPGKeys") => KeyType::GpgKeys,
        Some(other) => {
            return Err(ctx.bad(
                "keyType",
                format!("{other:?} is not supported; containers/image implements GPGKeys only"),
            ))
        }
        None => return Err(ctx.bad("keyType", "missing (GPGKeys)")),
    };
    let mut keys = Vec::new();
    let mut given = 0;
    if let Some(p) = string(obj, "keyPath", ctx)? {
        given += 1;
        keys.push(key_path(p, "keyPath", ctx)?);
    }
    if let Some(v) = obj.get("keyPaths") {
        given += 1;
        let list = v
            .as_array()
            .filter(|l| !l.is_empty())
            .ok_or_else(|| ctx.bad("keyPaths", "expected a non-empty list of paths"))?;
        for p in list {
            let p = p
                .as_str()
                .ok_or_else(|| ctx.bad("keyPaths", "expected a list of strings"))?;
            keys.push(key_path(p, "keyPaths", ctx)?);
        }
    }
    if let Some(d) = string(obj, "keyData", ctx)? {
        given += 1;
        keys.push(key_data(d, "keyData", ctx)?);
    }
    if given != 1 {
        return Err(ctx.bad(
            "keyPath",
            "signedBy needs exactly one of keyPath, keyPaths and keyData",
        ));
    }
    Ok(Requirement::SignedBy {
        key_type,
        keys,
        identity: parse_identity(obj.get("signedIdentity"), ctx)?,
    })
}

/// Keys of `sigstoreSigned` that name keyless (Fulcio, Rekor) or PKI
/// material instead of a public key.
const KEYLESS_KEYS: &[&str] = &[
    "fulcio",
    "pki",
    "rekorPublicKeyPath",
    "rekorPublicKeyPaths",
    "rekorPublicKeyData",
    "rekorPublicKeyDatas",
];

fn parse_sigstore(obj: &Map<String, Value>, ctx: &Ctx<'_>) -> Result<Requirement, PolicyError> {
    let mut allowed = vec![
        "type",
        "keyPath",
        "keyPaths",
        "keyData",
        "keyDatas",
        "signedIdentity",
    ];
    allowed.extend_from_slice(KEYLESS_KEYS);
    only_keys(obj, &allowed, ctx)?;
    let mut keys = Vec::new();
    if let Some(p) = string(obj, "keyPath", ctx)? {
        keys.push(key_path(p, "keyPath", ctx)?);
    }
    if let Some(d) = string(obj, "keyData", ctx)? {
        keys.push(key_data(d, "keyData", ctx)?);
    }
    for (field, is_path) in [("keyPaths", true), ("keyDatas", false)] {
        if let Some(v) = obj.get(field) {
            let list = v
                .as_array()
                .ok_or_else(|| ctx.bad(field, "expected a list of strings"))?;
            for item in list {
                let s = item
                    .as_str()
                    .ok_or_else(|| ctx.bad(field, "expected a list of strings"))?;
                keys.push(if is_path {
                    key_path(s, field, ctx)?
                } else {
                    key_data(s, field, ctx)?
                });
            }
        }
    }
    let keyless = KEYLESS_KEYS.iter().any(|k| obj.contains_key(*k));
    let roots = usize::from(obj.contains_key("fulcio")) + usize::from(obj.contains_key("pki"));
    if keys.len() > 1 {
        // Requirement::SigstoreSigned holds one key; accepting "any of
        // several" as "the first" would refuse images podman accepts.
        return Err(ctx.bad(
            "keyPaths",
            "several sigstore public keys in one requirement are not supported by berth yet; \
             use one key per scope",
        ));
    }
    if usize::from(!keys.is_empty()) + roots != 1 {
        return Err(ctx.bad(
            "keyPath",
            "sigstoreSigned needs exactly one of keyPath, keyPaths, keyData, keyDatas, fulcio and pki",
        ));
    }
    Ok(Requirement::SigstoreSigned {
        key: keys.pop(),
        keyless,
        identity: parse_identity(obj.get("signedIdentity"), ctx)?,
    })
}

fn parse_identity(v: Option<&Value>, ctx: &Ctx<'_>) -> Result<SignedIdentity, PolicyError> {
    let Some(v) = v else {
        return Ok(SignedIdentity::MatchRepoDigestOrExact);
    };
    let obj = v
        .as_object()
        .ok_or_else(|| ctx.bad("signedIdentity", "expected an object"))?;
    let field = |k: &str| -> Result<String, PolicyError> {
        string(obj, k, ctx)?
            .map(str::to_string)
            .ok_or_else(|| ctx.bad(&format!("signedIdentity.{k}"), "missing"))
    };
    let only = |allowed: &[&str]| match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(ctx.bad(&format!("signedIdentity.{k}"), "unknown key for this type")),
        None => Ok(()),
    };
    let ty = obj
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| ctx.bad("signedIdentity.type", "missing or not a string"))?;
    Ok(match ty {
        "matchRepoDigestOrExact" => {
            only(&["type"])?;
            SignedIdentity::MatchRepoDigestOrExact
        }
        "matchExact" => {
            only(&["type"])?;
            SignedIdentity::MatchExact
        }
        "matchRepository" => {
            only(&["type"])?;
            SignedIdentity::MatchRepository
        }
        "exactReference" => {
            only(&["type", "dockerReference"])?;
            SignedIdentity::ExactReference(field("dockerReference")?)
        }
        "exactRepository" => {
            only(&["type", "dockerRepository"])?;
            SignedIdentity::ExactRepository(field("dockerRepository")?)
        }
        "remapIdentity" => {
            only(&["type", "prefix", "signedPrefix"])?;
            SignedIdentity::RemapIdentity {
                prefix: field("prefix")?,
                signed_prefix: field("signedPrefix")?,
            }
        }
        other => {
            return Err(ctx.bad(
                "signedIdentity.type",
                format!("unknown identity type {other:?}"),
            ))
        }
    })
}
