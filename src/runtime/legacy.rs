//! PURE: upgrades a pre-1.0 runtime config (OCI 0.x, 1.0.0-rcN) to the
//! 1.0 shape, as runc 1.0 read it.
//!
//! Project Atomic's images were written against runc while the runtime spec
//! moved: `ociVersion` "0.3.0" or "1.0.0-rc3", the `platform` key,
//! `process.capabilities` as one list, `capabilities` and `rlimits` under
//! `linux`. Each edit here is one such shape; the notes say what changed, for
//! the caller to log.

use serde_json::{Map, Value};

/// The version an upgraded config says it follows.
pub const UPGRADED_VERSION: &str = "1.0.2";

/// The capability sets the old single list stood for (runc applied the list
/// to each of them).
const OLD_LIST_SETS: &[&str] = &["bounding", "effective", "permitted", "inheritable"];

/// True if `version` is a pre-1.0 spec version (0.x or a 1.0.0 release
/// candidate).
pub fn is_old_version(version: &str) -> bool {
    version.starts_with("0.") || version.starts_with("1.0.0-rc")
}

/// Upgrades `config` in place to the 1.0 shape; returns one note per change
/// (empty when the config already had the 1.0 shape).
pub fn upgrade(config: &mut Value) -> Vec<String> {
    let mut notes = Vec::new();
    let Some(top) = config.as_object_mut() else {
        return notes;
    };
    if let Some(v) = top.get("ociVersion").and_then(Value::as_str) {
        if is_old_version(v) {
            notes.push(format!(
                "ociVersion {v:?} is a pre-1.0 runtime spec; read as {UPGRADED_VERSION:?}"
            ));
            top.insert("ociVersion".into(), UPGRADED_VERSION.into());
        }
    }
    if top.remove("platform").is_some() {
        notes.push("platform was removed in runtime spec 1.0; dropped".into());
    }
    move_from_linux(top, &mut notes);
    if let Some(caps) = top
        .get_mut("process")
        .and_then(|p| p.get_mut("capabilities"))
    {
        if caps.is_array() {
            *caps = capability_sets(caps);
            notes.push(
                "process.capabilities is a list (runtime spec 0.x); it now fills the \
                 bounding, effective, permitted and inheritable sets"
                    .into(),
            );
        }
    }
    notes
}

/// `linux.capabilities` and `linux.rlimits` (0.x) moved to `process`.
fn move_from_linux(top: &mut Map<String, Value>, notes: &mut Vec<String>) {
    for key in ["capabilities", "rlimits"] {
        let Some(value) = top
            .get_mut("linux")
            .and_then(Value::as_object_mut)
            .and_then(|l| l.remove(key))
        else {
            continue;
        };
        let Some(process) = top.get_mut("process").and_then(Value::as_object_mut) else {
            notes.push(format!("linux.{key} without a process; dropped"));
            continue;
        };
        if process.contains_key(key) {
            notes.push(format!(
                "linux.{key} (runtime spec 0.x) dropped: process.{key} is set"
            ));
            continue;
        }
        let value = if key == "capabilities" && value.is_array() {
            capability_sets(&value)
        } else {
            value
        };
        process.insert(key.into(), value);
        notes.push(format!(
            "linux.{key} (runtime spec 0.x) moved to process.{key}"
        ));
    }
}

/// The 1.0 capabilities object for an old single list.
fn capability_sets(list: &Value) -> Value {
    let mut sets = Map::new();
    for s in OLD_LIST_SETS {
        sets.insert((*s).to_string(), list.clone());
    }
    Value::Object(sets)
}

/// Upgrades config text: `None` when nothing changed (the text stands as
/// written), else the upgraded config, pretty-printed, and the notes.
pub fn upgrade_text(text: &str) -> Result<Option<(String, Vec<String>)>, serde_json::Error> {
    let mut v: Value = serde_json::from_str(text)?;
    let notes = upgrade(&mut v);
    if notes.is_empty() {
        return Ok(None);
    }
    Ok(Some((serde_json::to_string_pretty(&v)?, notes)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn up(v: Value) -> (Value, Vec<String>) {
        let mut v = v;
        let n = upgrade(&mut v);
        (v, n)
    }

    #[test]
    fn upgrades_each_old_shape() {
        let caps = json!(["CAP_KILL", "CAP_NET_BIND_SERVICE"]);
        let sets =
            json!({"bounding": caps, "effective": caps, "permitted": caps, "inheritable": caps});
        let cases: Vec<(Value, Value, usize)> = vec![
            // 0.x: version, platform, capabilities and rlimits under linux.
            (
                json!({"ociVersion": "0.3.0", "platform": {"os": "linux", "arch": "amd64"},
                       "process": {"args": ["/x"]}, "hooks": {},
                       "linux": {"capabilities": caps, "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
                                 "namespaces": [{"type": "pid"}]}}),
                json!({"ociVersion": "1.0.2", "process": {"args": ["/x"], "capabilities": sets,
                       "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]}, "hooks": {},
                       "linux": {"namespaces": [{"type": "pid"}]}}),
                4,
            ),
            // 1.0.0-rc3 with a capability list under process.
            (
                json!({"ociVersion": "1.0.0-rc3", "process": {"capabilities": caps}}),
                json!({"ociVersion": "1.0.2", "process": {"capabilities": sets}}),
                2,
            ),
            // rc with the object form: only the version.
            (
                json!({"ociVersion": "1.0.0-rc5", "process": {"capabilities": {"bounding": caps}}}),
                json!({"ociVersion": "1.0.2", "process": {"capabilities": {"bounding": caps}}}),
                1,
            ),
            // 1.0.0 with the platform key (most atomic images).
            (
                json!({"ociVersion": "1.0.0", "platform": {"os": "linux"}, "process": {}}),
                json!({"ociVersion": "1.0.0", "process": {}}),
                1,
            ),
            // linux.capabilities beside process.capabilities: process wins.
            (
                json!({"ociVersion": "1.0.0", "process": {"capabilities": {"bounding": caps}},
                       "linux": {"capabilities": ["CAP_SYS_ADMIN"]}}),
                json!({"ociVersion": "1.0.0", "process": {"capabilities": {"bounding": caps}}, "linux": {}}),
                1,
            ),
        ];
        for (before, after, n) in cases {
            let (got, notes) = up(before.clone());
            assert_eq!(got, after, "{before}");
            assert_eq!(notes.len(), n, "{before}: {notes:?}");
        }
    }

    #[test]
    fn leaves_a_1_0_config_alone() {
        let v = json!({"ociVersion": "1.0.2", "process": {"capabilities": {"bounding": []}}, "hooks": {}});
        let (got, notes) = up(v.clone());
        assert_eq!(got, v);
        assert!(notes.is_empty());
        assert!(upgrade_text(&v.to_string()).unwrap().is_none());
    }

    #[test]
    fn upgraded_text_parses_as_a_runtime_spec() {
        let old = r#"{"ociVersion": "0.3.0", "platform": {"os": "linux"},
            "process": {"terminal": false, "user": {"uid": 0, "gid": 0}, "args": ["/x"], "cwd": "/"},
            "root": {"path": "rootfs", "readonly": true}, "hooks": {},
            "linux": {"capabilities": ["CAP_KILL"], "resources": {"devices": [{"allow": false, "access": "rwm"}]}}}"#;
        let (text, notes) = upgrade_text(old).unwrap().unwrap();
        assert_eq!(notes.len(), 3, "{notes:?}");
        let spec: oci_spec::runtime::Spec = serde_json::from_str(&text).unwrap();
        assert_eq!(spec.version(), "1.0.2");
        let caps = spec
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .clone()
            .unwrap();
        assert!(caps
            .inheritable()
            .as_ref()
            .unwrap()
            .contains(&oci_spec::runtime::Capability::Kill));
        assert!(caps.ambient().is_none());
    }
}
