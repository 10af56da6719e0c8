//! PURE: `berth trust set`, an edit of policy.json as `podman image trust
//! set` makes it: one scope's requirement list replaced, nothing else.
//!
//! The document is edited as a `serde_json::Value`, not through
//! [`Policy`](super::policy::Policy): a policy.json is shared with podman,
//! skopeo, CRI-O and bootc, and may hold transports, scopes and fields berth
//! does not read (`docker-daemon`, `pki`, keys a newer containers/image
//! added). Round-tripping through berth's types would drop them; editing the
//! tree keeps every byte of meaning berth does not touch (serde_json sorts
//! object keys when it writes, which no reader depends on).

use serde_json::{json, Map, Value};

use super::policy::{check_scope, TRANSPORT_DOCKER};

/// The `--type` of `berth trust set`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetType {
    /// `accept`: `insecureAcceptAnything`.
    Accept,
    /// `reject`.
    Reject,
    /// `signedBy` with each `--pubkeys` file as a `GPGKeys` `keyPath`.
    SignedBy,
    /// `sigstoreSigned` with each `--pubkeys` file as a `keyPath`.
    SigstoreSigned,
}

impl std::str::FromStr for SetType {
    type Err = String;

    fn from_str(s: &str) -> Result<SetType, String> {
        Ok(match s {
            "accept" | "insecureAcceptAnything" => SetType::Accept,
            "reject" => SetType::Reject,
            "signedBy" => SetType::SignedBy,
            "sigstoreSigned" => SetType::SigstoreSigned,
            other => {
                return Err(format!(
                    "{other:?}: expected accept, reject, signedBy or sigstoreSigned"
                ))
            }
        })
    }
}

/// The requirements `trust set --type ty --pubkeys keys…` writes. As podman
/// does, each key is a requirement of its own (so every one must have
/// signed).
pub fn requirements(ty: SetType, pubkeys: &[String]) -> Result<Vec<Value>, String> {
    match ty {
        SetType::Accept | SetType::Reject if !pubkeys.is_empty() => {
            Err("--pubkeys is only for signedBy and sigstoreSigned".into())
        }
        SetType::Accept => Ok(vec![json!({"type": "insecureAcceptAnything"})]),
        SetType::Reject => Ok(vec![json!({"type": "reject"})]),
        SetType::SignedBy | SetType::SigstoreSigned if pubkeys.is_empty() => {
            Err("--type signedBy and sigstoreSigned need at least one --pubkeys FILE".into())
        }
        SetType::SignedBy => Ok(pubkeys
            .iter()
            .map(|k| json!({"type": "signedBy", "keyType": "GPGKeys", "keyPath": k}))
            .collect()),
        SetType::SigstoreSigned => Ok(pubkeys
            .iter()
            .map(|k| json!({"type": "sigstoreSigned", "keyPath": k}))
            .collect()),
    }
}

/// `doc` (the current policy.json, or `None` when there is none) with the
/// requirements of `scope` (`default` or a docker scope) set to `reqs`.
pub fn set_scope(doc: Option<Value>, scope: &str, reqs: Vec<Value>) -> Result<Value, String> {
    let mut doc = doc.unwrap_or_else(|| json!({"default": [{"type": "insecureAcceptAnything"}]}));
    let top = doc
        .as_object_mut()
        .ok_or("the policy is not a JSON object; fix or remove it first")?;
    if scope == "default" {
        top.insert("default".into(), Value::Array(reqs));
        return Ok(doc);
    }
    check_scope(TRANSPORT_DOCKER, scope).map_err(|e| format!("scope {scope:?}: {e}"))?;
    let transports = top
        .entry("transports")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or("\"transports\" is not a JSON object; fix it first")?;
    let docker = transports
        .entry(TRANSPORT_DOCKER)
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or("\"transports.docker\" is not a JSON object; fix it first")?;
    docker.insert(scope.into(), Value::Array(reqs));
    if !top.contains_key("default") {
        // A policy without a default is invalid for every reader; podman
        // writes the permissive one, as it would have applied before.
        top.insert(
            "default".into(),
            json!([{"type": "insecureAcceptAnything"}]),
        );
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::policy::Policy;
    use std::path::Path;

    /// podman's shipped policy.json with fields berth does not read.
    const PODMAN: &str = r#"{
        "default": [{"type": "insecureAcceptAnything"}],
        "transports": {
            "docker-daemon": {"": [{"type": "insecureAcceptAnything"}]},
            "docker": {
                "registry.access.redhat.com": [{"type": "signedBy", "keyType": "GPGKeys",
                    "keyPath": "/etc/pki/rpm-gpg/RPM-GPG-KEY-redhat-release"}],
                "quay.io/x": [{"type": "sigstoreSigned", "pki": {"caRootsPath": "/ca"}}]
            },
            "future-transport": {"a": [{"type": "somethingNew", "field": 1}]}
        },
        "x-comment": "kept"
    }"#;

    #[test]
    fn set_keeps_everything_it_does_not_touch() {
        let before: Value = serde_json::from_str(PODMAN).unwrap();
        let reqs = requirements(SetType::SignedBy, &["/etc/pki/a.gpg".into()]).unwrap();
        let after = set_scope(Some(before.clone()), "example.com/team", reqs).unwrap();
        let mut expect = before;
        expect["transports"]["docker"]["example.com/team"] =
            json!([{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/etc/pki/a.gpg"}]);
        assert_eq!(after, expect);
    }

    #[test]
    fn default_scope_and_empty_file() {
        let reject = requirements(SetType::Reject, &[]).unwrap();
        let doc = set_scope(None, "default", reject).unwrap();
        assert_eq!(doc, json!({"default": [{"type": "reject"}]}));
        let accept = requirements(SetType::Accept, &[]).unwrap();
        let doc = set_scope(Some(doc), "quay.io", accept).unwrap();
        let text = serde_json::to_vec(&doc).unwrap();
        let p = Policy::parse(&text, Path::new("p.json")).unwrap();
        assert_eq!(p.default.len(), 1);
        assert_eq!(p.transports["docker"]["quay.io"].len(), 1);
    }

    #[test]
    fn each_pubkey_is_a_requirement() {
        let r = requirements(SetType::SigstoreSigned, &["/a.pub".into(), "/b.pub".into()]).unwrap();
        assert_eq!(
            r,
            [
                json!({"type": "sigstoreSigned", "keyPath": "/a.pub"}),
                json!({"type": "sigstoreSigned", "keyPath": "/b.pub"})
            ]
        );
    }

    #[test]
    fn refusals() {
        assert!(requirements(SetType::SignedBy, &[]).is_err());
        assert!(requirements(SetType::Accept, &["/k".into()]).is_err());
        let accept = requirements(SetType::Accept, &[]).unwrap();
        assert!(set_scope(None, "busybox", accept.clone()).is_err());
        assert!(set_scope(Some(json!([])), "default", accept.clone()).is_err());
        assert!(set_scope(Some(json!({"transports": 1})), "quay.io", accept).is_err());
        assert!("accepted".parse::<SetType>().is_err());
    }
}
