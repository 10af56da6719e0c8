//! PURE: an image deployment's host footprint, what it does to its host
//! beyond its own files: the hostfs paths it ships (new or existing), the
//! tmpfiles lines that touch host paths, the commands its units run on the
//! host other than berth's, and what its config grants beyond berth's
//! default ([`Grants`]). `install` prints it, `--display`, `status` and
//! `--json` show it whole, and `update` refuses one that grows
//! ([`growth`]) unless the operator accepts it.
//!
//! The container's own paths stay quiet: `${STATE_DIRECTORY}/NAME`,
//! `${RUN_DIRECTORY}/NAME` and its deployment (as rendered), the hostfs
//! paths it writes, and what its config already binds read-write (the bind
//! is in the footprint; a tmpfiles line below it adds nothing). So etcd's
//! `Z /var/lib/etcd/…` and flannel's `r` of its drop-in are its own.

mod growth;
pub mod tmpfiles;

pub use growth::growth;

use serde::{Deserialize, Serialize};

use super::grants::{self, is_at_or_below, Grants};
use super::plan::{PlannedFile, PlannedHostfs};
use super::shared::HostfsAction;
use super::EntryKind;
use crate::template::Values;

/// What a deployment does to its host beyond its own files. Empty fields
/// are omitted from `--json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Footprint {
    /// The hostfs paths it ships.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub host_paths: Vec<HostPath>,
    /// tmpfiles lines on paths that are not its own.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tmpfiles: Vec<TmpfilesLine>,
    /// Unit commands run on the host other than berth's
    /// (`ExecStartPre=/bin/sh -c …`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<String>,
    /// What the config grants beyond berth's default.
    #[serde(flatten)]
    pub config: Grants,
}

/// A hostfs path of the deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostPath {
    /// Path as seen inside the root.
    pub path: String,
    /// File, directory or symlink.
    #[serde(default)]
    pub kind: EntryKind,
    /// It was on the host and is not this container's (left in place, or
    /// another container's).
    #[serde(default)]
    pub existing: bool,
}

/// A tmpfiles line on a host path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TmpfilesLine {
    /// Its type with modifiers (`w+`, `z`, `d`).
    #[serde(rename = "type")]
    pub typ: String,
    /// The path.
    pub path: String,
    /// It changes paths that exist (else it only creates missing ones).
    #[serde(default)]
    pub changes_existing: bool,
}

/// What the footprint is computed from: a deployment's rendered files.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The resolved values (`NAME`, `DESTDIR`, the directories, `EXEC_*`).
    pub values: &'a Values,
    /// `config.json`, if the deployment runs a container.
    pub config: Option<&'a str>,
    /// The unit files' text.
    pub units: &'a [&'a str],
    /// The tmpfiles.d file's text.
    pub tmpfiles: Option<&'a str>,
    /// The hostfs paths.
    pub hostfs: &'a [HostPath],
}

/// The footprint of a deployment made of `i`. A config that does not parse
/// (validated before this) counts as granting nothing here.
pub fn footprint(i: &Inputs<'_>) -> Footprint {
    let own = own_dirs(i.values);
    let config = i
        .config
        .and_then(|c| grants::of_config(c, &own).ok())
        .unwrap_or_default();
    let rw_sources: Vec<&str> = config
        .rw_binds
        .iter()
        .filter_map(|b| b.split(" \u{2192} ").next())
        .collect();
    let own_hostfs: Vec<&str> = i
        .hostfs
        .iter()
        .filter(|h| !h.existing)
        .map(|h| h.path.as_str())
        .collect();
    let is_own = |path: &str| {
        own.iter()
            .map(String::as_str)
            .chain(rw_sources.iter().copied())
            .any(|d| is_at_or_below(path, d))
            || own_hostfs.contains(&path)
    };
    let tmpfiles = i
        .tmpfiles
        .map(tmpfiles::lines)
        .unwrap_or_default()
        .into_iter()
        .filter(|l| !l.plain_path.as_deref().is_some_and(is_own))
        .map(|l| TmpfilesLine {
            typ: l.typ,
            path: stable(i.values, &l.path),
            changes_existing: l.changes_existing,
        })
        .collect();
    let mut out = Footprint {
        host_paths: i.hostfs.to_vec(),
        tmpfiles,
        commands: i.units.iter().flat_map(|u| commands(i.values, u)).collect(),
        config,
    };
    let keep = |s: &mut String| *s = stable(i.values, s);
    out.config.rw_binds.iter_mut().for_each(keep);
    out.config.ro_binds.iter_mut().for_each(keep);
    out
}

/// The footprint of planned `files`: the units at `unit_paths`, the
/// tmpfiles.d file at `tmpfiles_path`, the hostfs paths with what
/// installing each does (`hostfs`).
pub fn of_files(
    values: &Values,
    config: Option<&str>,
    files: &[PlannedFile],
    unit_paths: &[String],
    tmpfiles_path: &str,
    hostfs: &[PlannedHostfs],
) -> Footprint {
    let text = |p: &str| {
        files
            .iter()
            .find(|f| f.path == p)
            .and_then(|f| std::str::from_utf8(&f.content).ok())
    };
    let units: Vec<&str> = unit_paths.iter().filter_map(|p| text(p)).collect();
    let host_paths: Vec<HostPath> = hostfs
        .iter()
        .map(|h| HostPath {
            path: h.path.clone(),
            kind: files
                .iter()
                .find(|f| f.path == h.path)
                .map_or(EntryKind::File, |f| f.kind),
            existing: !matches!(
                h.action,
                HostfsAction::Write | HostfsAction::CreateDir | HostfsAction::Link
            ),
        })
        .collect();
    footprint(&Inputs {
        values,
        config,
        units: &units,
        tmpfiles: text(tmpfiles_path),
        hostfs: &host_paths,
    })
}

/// The container's own directories: `STATE_DIRECTORY/NAME`,
/// `RUN_DIRECTORY/NAME` and its deployment (`DESTDIR`).
pub fn own_dirs(values: &Values) -> Vec<String> {
    let name = values.get("NAME").unwrap_or_default();
    let mut out: Vec<String> = ["STATE_DIRECTORY", "RUN_DIRECTORY"]
        .iter()
        .filter_map(|k| values.get(k))
        .filter(|_| !name.is_empty())
        .map(|d| format!("{}/{name}", d.trim_end_matches('/')))
        .collect();
    out.extend(values.get("DESTDIR").map(str::to_string));
    out
}

/// `text` with the deployment directory (`…/containers/NAME.N`) written as
/// the container's link (`…/containers/NAME`), so the two slots of one
/// container have one footprint.
fn stable(values: &Values, text: &str) -> String {
    let (Some(dest), Some(name)) = (values.get("DESTDIR"), values.get("NAME")) else {
        return text.to_string();
    };
    match dest.rsplit_once('/') {
        Some((parent, _)) if !dest.is_empty() => text.replace(dest, &format!("{parent}/{name}")),
        _ => text.to_string(),
    }
}

/// The `Exec*=` lines of `unit` that do not run berth's own commands.
fn commands(values: &Values, unit: &str) -> Vec<String> {
    let berths: Vec<&str> = ["EXEC_START", "EXEC_STOP", "EXEC_STARTPRE", "EXEC_STOPPOST"]
        .iter()
        .filter_map(|k| values.get(k))
        .filter(|v| !v.is_empty())
        .collect();
    let Ok(parsed) = crate::systemd::unit::assignments(unit) else {
        return Vec::new();
    };
    parsed
        .assignments
        .iter()
        .filter(|a| a.key.starts_with("Exec") && !a.value.is_empty())
        .filter(|a| {
            let cmd = a.value.trim_start_matches(['@', '-', ':', '+', '!']);
            !berths.contains(&cmd)
        })
        .map(|a| stable(values, &format!("{}={}", a.key, a.value)))
        .collect()
}

impl Footprint {
    /// Nothing beyond the container's own.
    pub fn is_empty(&self) -> bool {
        *self == Footprint::default()
    }

    /// One line per kind, every item (`--display`, `status`, refusals).
    pub fn lines(&self) -> Vec<String> {
        self.lines_upto(usize::MAX)
    }

    /// One line per kind, at most `max` items each (`install`).
    pub fn lines_upto(&self, max: usize) -> Vec<String> {
        let list = |what: &str, items: Vec<String>| -> Option<String> {
            if items.is_empty() {
                return None;
            }
            let mut shown: Vec<String> = items.iter().take(max).cloned().collect();
            if items.len() > max {
                shown.push(format!("and {} more", items.len() - max));
            }
            Some(format!("{what}: {}", shown.join(", ")))
        };
        let paths = |existing: bool| {
            self.host_paths
                .iter()
                .filter(|h| h.existing == existing)
                .map(|h| h.path.clone())
                .collect()
        };
        let lines = |changes: bool| {
            self.tmpfiles
                .iter()
                .filter(|l| l.changes_existing == changes)
                .map(|l| format!("{} {}", l.typ, l.path))
                .collect()
        };
        let mut out: Vec<String> = [
            list("new host paths", paths(false)),
            list("existing host paths (left in place)", paths(true)),
            list("tmpfiles lines changing existing paths", lines(true)),
            list("tmpfiles lines creating host paths", lines(false)),
            list("host commands", self.commands.clone()),
        ]
        .into_iter()
        .flatten()
        .collect();
        out.extend(self.config.lines());
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::runtime::defaults::{default_spec, to_json};
    use serde_json::json;

    fn values(name: &str) -> Values {
        let mut v = serde_json::Map::new();
        for (k, val) in [
            ("NAME", name.to_string()),
            ("DESTDIR", format!("/var/lib/berth/containers/{name}.1")),
            ("STATE_DIRECTORY", "/var/lib".into()),
            ("RUN_DIRECTORY", "/run".into()),
            ("EXEC_START", format!("/usr/bin/berth-run {name}")),
            (
                "EXEC_STOP",
                format!("/usr/bin/berth kill --if-running {name}"),
            ),
            ("EXEC_STARTPRE", String::new()),
        ] {
            v.insert(k.into(), json!({"value": val, "provenance": "forced"}));
        }
        serde_json::from_value(serde_json::Value::Object(v)).unwrap()
    }

    fn config(edit: impl Fn(&mut serde_json::Value)) -> String {
        let mut v: serde_json::Value =
            serde_json::from_str(&to_json(&default_spec().unwrap()).unwrap()).unwrap();
        edit(&mut v);
        v.to_string()
    }

    fn bind(src: &str, dst: &str, mode: &str) -> serde_json::Value {
        json!({"destination": dst, "type": "bind", "source": src, "options": ["rbind", mode]})
    }

    /// etcd's and flannel's shapes: their own state, their own bind.
    #[test]
    fn own_state_stays_quiet() {
        let etcd = values("etcd");
        let c = config(|v| {
            v["mounts"]
                .as_array_mut()
                .unwrap()
                .push(bind("/var/lib/etcd", "/var/lib/etcd", "rw"))
        });
        let tmpfiles = "d /var/lib/etcd 0700 0 0 - -\n\
            d /var/lib/etcd/etcd.etcd 0700 0 0 - -\n\
            Z /var/lib/etcd/etcd.etcd 0700 0 0 - -\n\
            d /run/etcd - - - - -\n";
        let unit = "[Service]\nExecStart=/usr/bin/berth-run etcd\nExecStop=/usr/bin/berth kill --if-running etcd\n";
        let f = footprint(&Inputs {
            values: &etcd,
            config: Some(&c),
            units: &[unit],
            tmpfiles: Some(tmpfiles),
            hostfs: &[],
        });
        assert!(f.is_empty(), "{f:?}");
        let flannel = values("flannel");
        let c = config(|v| {
            let m = v["mounts"].as_array_mut().unwrap();
            m.push(bind("/run/flannel", "/run/flannel", "rw"));
            m.push(bind(
                "/etc/systemd/system/docker.service.d",
                "/etc/systemd/system/docker.service.d",
                "rw",
            ));
        });
        let tmpfiles = "D /run/flannel - - - - -\n\
            d /etc/systemd/system/docker.service.d - - - - -\n\
            r /etc/systemd/system/docker.service.d/flannel.conf - - - - -\n\
            r /run/flannel/subnet.env\n";
        let f = footprint(&Inputs {
            values: &flannel,
            config: Some(&c),
            units: &[],
            tmpfiles: Some(tmpfiles),
            hostfs: &[],
        });
        assert_eq!(
            f.lines(),
            ["read-write host paths: /etc/systemd/system/docker.service.d \u{2192} /etc/systemd/system/docker.service.d"]
        );
    }

    #[test]
    fn names_each_kind() {
        let v = values("app");
        let c = config(|v| {
            let m = v["mounts"].as_array_mut().unwrap();
            m.push(bind("/", "/host", "rw"));
            m.push(bind("/etc", "/etc", "ro"));
            m.push(bind("/var/lib/berth/containers/app.1/rootfs/x", "/x", "ro"));
            v["process"]["capabilities"]["bounding"] = json!(["CAP_SYS_ADMIN"]);
        });
        let unit =
            "[Service]\nExecStartPre=/bin/sh $x /var/lib/berth/containers/app.1/rootfs/set.sh\n\
            ExecStart=/usr/bin/berth-run app\nExecStopPost=-/bin/rm /etc/x\n";
        let tmpfiles =
            "w+ /etc/passwd - - - - x\nd /srv/data\nw /var/lib/app/../../../etc/shadow\n\
            r /usr/local/bin/tool\n";
        let hostfs = [
            HostPath {
                path: "/usr/local/bin/tool".into(),
                kind: EntryKind::File,
                existing: false,
            },
            HostPath {
                path: "/etc/app".into(),
                kind: EntryKind::Dir,
                existing: true,
            },
        ];
        let f = footprint(&Inputs {
            values: &v,
            config: Some(&c),
            units: &[unit],
            tmpfiles: Some(tmpfiles),
            hostfs: &hostfs,
        });
        assert_eq!(
            f.lines(),
            [
                "new host paths: /usr/local/bin/tool",
                "existing host paths (left in place): /etc/app",
                "tmpfiles lines changing existing paths: w+ /etc/passwd, w /var/lib/app/../../../etc/shadow",
                "tmpfiles lines creating host paths: d /srv/data",
                "host commands: ExecStartPre=/bin/sh $x /var/lib/berth/containers/app/rootfs/set.sh, \
                 ExecStopPost=-/bin/rm /etc/x",
                "capabilities: CAP_SYS_ADMIN",
                "read-write host paths: / \u{2192} /host",
                "read-only host paths: /etc \u{2192} /etc",
            ]
        );
        assert_eq!(
            f.lines_upto(1)[2],
            "tmpfiles lines changing existing paths: w+ /etc/passwd, and 1 more"
        );
        let back: Footprint = serde_json::from_value(serde_json::to_value(&f).unwrap()).unwrap();
        assert_eq!(back, f);
        assert_eq!(
            serde_json::to_value(&f).unwrap()["tmpfiles"][0],
            json!({"type": "w+", "path": "/etc/passwd", "changes_existing": true})
        );
    }
}
