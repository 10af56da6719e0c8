//! `--user` containers run rootless: the deployment's `config.json` is
//! adjusted so an unprivileged user can run it.
//!
//! - a user namespace mapping container uid/gid 0 to the installing user
//!   (one id each: what an unprivileged process may map without
//!   newuidmap); files of the checkout, owned by the user, appear as root's;
//! - `process.user` 0:0 (the only mapped ids) and no additional gids
//!   (refused without privileges, CVE-2014-8989);
//! - `/sys` bind-mounted read-only when the container has no network
//!   namespace of its own (sysfs may only be mounted by the owner of one);
//! - no `gid=` option on mounts (`devpts gid=5`: gid 5 is not mapped);
//! - no `linux.resources` and no `linux.devices`: setting cgroup limits
//!   and creating device nodes need privileges the user lacks.
//!
//! The same is applied to an image's own `config.json(.template)`, with a
//! warning for each change, so images written for `--system` also install
//! with `--user`. The root stays read-only.

use serde_json::{json, Value};

/// `text` (a runtime spec) made runnable by `uid`:`gid`; the changes made,
/// one line each, for warnings.
pub fn rootless(text: &str, uid: u32, gid: u32) -> Result<(String, Vec<String>), String> {
    let mut spec: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut changes = Vec::new();
    if !spec["linux"].is_object() {
        spec["linux"] = json!({});
    }
    let linux = &mut spec["linux"];
    if !linux["namespaces"].is_array() {
        linux["namespaces"] = json!([]);
    }
    let has = |linux: &Value, t: &str| {
        linux["namespaces"]
            .as_array()
            .is_some_and(|a| a.iter().any(|n| n["type"] == t))
    };
    if !has(linux, "user") {
        if let Some(a) = linux["namespaces"].as_array_mut() {
            a.push(json!({"type": "user"}));
        }
        changes.push("added a user namespace".to_string());
    }
    let has_network = has(linux, "network");
    let map = |id: u32| json!([{"containerID": 0, "hostID": id, "size": 1}]);
    for (key, id) in [("uidMappings", uid), ("gidMappings", gid)] {
        if linux[key] != map(id) {
            if linux[key].is_array() {
                changes.push(format!("replaced {key} with 0 -> {id}"));
            }
            linux[key] = map(id);
        }
    }
    for key in ["resources", "devices"] {
        if let Some(obj) = linux.as_object_mut() {
            if obj.remove(key).is_some() {
                changes.push(format!("dropped linux.{key} (needs privileges)"));
            }
        }
    }
    let user = &mut spec["process"]["user"];
    if user.is_object() && (user["uid"] != 0 || user["gid"] != 0) {
        changes.push(format!(
            "runs as 0:0 (host {uid}:{gid}) instead of {}:{}",
            user["uid"], user["gid"]
        ));
        user["uid"] = 0.into();
        user["gid"] = 0.into();
    }
    if let Some(obj) = user.as_object_mut() {
        if obj.remove("additionalGids").is_some() {
            changes.push("dropped process.user.additionalGids".into());
        }
    }
    if let Some(mounts) = spec["mounts"].as_array_mut() {
        for m in mounts.iter_mut() {
            if m["type"] == "sysfs" && !has_network {
                *m = json!({
                    "destination": m["destination"].clone(),
                    "type": "bind",
                    "source": "/sys",
                    "options": ["rbind", "nosuid", "noexec", "nodev", "ro"],
                });
            }
            if let Some(opts) = m["options"].as_array_mut() {
                opts.retain(|o| !o.as_str().is_some_and(|o| o.starts_with("gid=")));
            }
        }
    }
    let text = serde_json::to_string_pretty(&spec).map_err(|e| e.to_string())?;
    Ok((text, changes))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn default_config_gets_a_user_namespace_and_keeps_a_read_only_root() {
        let (text, changes) = rootless(
            &super::super::render::default_config_skeleton().unwrap(),
            1000,
            100,
        )
        .unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(changes, ["added a user namespace"]);
        assert!(v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .contains(&json!({"type": "user"})));
        assert_eq!(
            v["linux"]["uidMappings"],
            json!([{"containerID": 0, "hostID": 1000, "size": 1}])
        );
        assert_eq!(
            v["linux"]["gidMappings"],
            json!([{"containerID": 0, "hostID": 100, "size": 1}])
        );
        assert_eq!(v["root"], json!({"path": "rootfs", "readonly": true}));
        let sys = v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/sys")
            .unwrap();
        assert_eq!(sys["type"], "bind");
        assert_eq!(sys["source"], "/sys");
        // Applying it twice changes nothing more.
        let (again, changes) = rootless(&text, 1000, 100).unwrap();
        assert_eq!(again, text);
        assert!(changes.is_empty());
    }

    #[test]
    fn privileged_settings_are_dropped_and_reported() {
        let spec = json!({
            "process": {"user": {"uid": 1000, "gid": 5, "additionalGids": [10]}, "args": ["/x"]},
            "root": {"path": "rootfs", "readonly": true},
            "mounts": [{"destination": "/dev/pts", "type": "devpts", "source": "devpts",
                        "options": ["nosuid", "gid=5", "mode=0620"]},
                       {"destination": "/sys", "type": "sysfs", "source": "sysfs"}],
            "linux": {"namespaces": [{"type": "network"}],
                      "resources": {"memory": {"limit": 1}},
                      "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]}
        });
        let (text, changes) = rootless(&spec.to_string(), 1000, 1000).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(changes.len(), 5, "{changes:?}");
        assert!(v["linux"].get("resources").is_none());
        assert!(v["linux"].get("devices").is_none());
        assert_eq!(v["process"]["user"], json!({"uid": 0, "gid": 0}));
        assert_eq!(v["mounts"][0]["options"], json!(["nosuid", "mode=0620"]));
        // With its own network namespace the container may mount sysfs.
        assert_eq!(v["mounts"][1]["type"], "sysfs");
    }
}
