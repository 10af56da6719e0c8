//! Declarative provisioning: a host described as a list of system
//! containers (`berth apply`, `berth diff`).
//!
//! - [`load`]: one TOML file or a directory of `*.toml` merged in name
//!   order, parsed with unknown keys refused.
//! - [`Manifest::validate`]: names, references, values, dependencies and cycles,
//!   each error naming the file and entry; the order entries switch in.
//! - [`plan`](mod@plan): install / update / reconfigure / remove / unchanged
//!   per entry, against what is installed and who owns it.
//! - [`apply`](mod@apply): stage (pull, render, validate) every entry, then
//!   switch in dependency order; a failure puts every entry switched in this
//!   run back.
//!
//! The format is documented in `docs/manifest.md`; its JSON Schema (from
//! these types) is `docs/manifest.schema.json`.

pub mod apply;
pub mod plan;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::deploy::hostfs::HostfsModes;
use crate::runtime::health::source::Overrides;
use crate::systemd::ContainerName;
use crate::template::values::is_forced;
use crate::template::SetValue;

/// A manifest file: containers.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// The system containers this file declares.
    #[serde(default, rename = "container")]
    pub containers: Vec<Entry>,
}

/// One system container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Container name (the unit is NAME.service).
    pub name: String,
    /// Image reference: a tag or digest, or `oci-archive:PATH[:TAG]` and the
    /// other sources `berth pull` takes.
    pub image: String,
    /// Template values (`--set`).
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Enable the units (their `[Install]` links). Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Start the units when applied on a running system. Default true.
    #[serde(default = "yes")]
    pub start: bool,
    /// Entries (or installed containers) this one is ordered after.
    #[serde(default)]
    pub after: Vec<String>,
    /// Entries (or installed containers) this one needs.
    #[serde(default)]
    pub requires: Vec<String>,
    /// Allow an update whose host footprint grows (a new host path,
    /// capability, bind, namespace, tmpfiles line or host command), as
    /// `berth update --accept-footprint` does. Default false: such an
    /// update is refused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub accept_footprint: bool,
    /// How the modes of the image's hostfs files reach the host: `safe`
    /// (the default: group and other write, setuid, setgid and sticky
    /// removed) or `as-image`.
    #[serde(default, skip_serializing_if = "HostfsModes::is_safe")]
    pub hostfs_modes: HostfsModes,
    /// Require the image to be signed with this key, on top of the
    /// signature policy (`verify = { key = "/etc/pki/berth/etcd.pub" }`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<Verify>,
    /// Health check keys over the image's `Healthcheck` (`cmd`, `interval`,
    /// `timeout`, `retries`, `start_period`), as `berth install --health-*`
    /// sets them; `cmd = "none"` turns the image's check off.
    #[serde(default, skip_serializing_if = "Overrides::is_empty")]
    pub health: Overrides,
    /// How long an update's restarted service must hold before it stays
    /// (`"10s"`, `"0"` for the one-second settle); default 10 s.
    #[serde(default, with = "soak_text", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub soak: Option<std::time::Duration>,
}

/// `soak` as humantime text (`"10s"`, `"1m"`, `"0"`).
mod soak_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("soak {text:?}: {e}")))
    }
}

/// An entry's `verify` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Verify {
    /// The public key, an absolute path (inside `--root` when given): an
    /// OpenPGP key means GPG simple signing (`signedBy`), a PEM public key
    /// means a cosign signature (`sigstoreSigned`).
    pub key: PathBuf,
}

fn yes() -> bool {
    true
}

/// An entry and the file it came from.
#[derive(Debug, Clone)]
pub struct Located {
    /// The entry.
    pub entry: Entry,
    /// Its file.
    pub file: PathBuf,
}

/// A loaded manifest: entries from every file, in file order.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// What was given (a file or directory); recorded as the owner.
    pub source: PathBuf,
    /// Entries, in file name order, then file order.
    pub entries: Vec<Located>,
}

/// A manifest that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Unreadable file or directory.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Not valid TOML for the format (unknown keys, wrong types).
    #[error("{path}: {detail}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        detail: String,
    },
    /// A bad entry.
    #[error("{path}: container {name:?}: {detail}")]
    Entry {
        /// The file.
        path: PathBuf,
        /// The entry's name.
        name: String,
        /// What is wrong and what to do.
        detail: String,
    },
    /// A dependency cycle.
    #[error("dependency cycle: {cycle} (check `after` and `requires`)")]
    Cycle {
        /// `a -> b -> a`.
        cycle: String,
    },
}

/// How `source` (a manifest path on this machine) is recorded as owner:
/// the path as seen inside `root`, so that the image built with
/// `berth --root R apply R/etc/berth/manifest.d` and the host booted from it
/// (`berth apply /etc/berth/manifest.d`) agree on who owns what.
pub fn owner_key(root: &Path, source: &Path) -> String {
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    match source.strip_prefix(&root) {
        Ok(rest) if root != Path::new("/") => format!("/{}", rest.display()),
        _ => source.display().to_string(),
    }
}

/// Loads `path`: a TOML file, or a directory whose `*.toml` files are
/// merged in name order.
pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| ManifestError::Io { path: p, source }
    };
    let meta = std::fs::metadata(path).map_err(io(path))?;
    let files = if meta.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(io(path))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut entries = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(io(&f))?;
        entries.extend(parse(&text, &f)?);
    }
    Ok(Manifest {
        source: std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
        entries,
    })
}

/// Parses the text of one manifest file; `file` names it in errors and in
/// each [`Located`]. What [`load`] does with each file, without the I/O.
pub fn parse(text: &str, file: &Path) -> Result<Vec<Located>, ManifestError> {
    let parsed: ManifestFile = toml::from_str(text).map_err(|e| ManifestError::Syntax {
        path: file.to_path_buf(),
        detail: e.to_string().trim_end().to_string(),
    })?;
    Ok(parsed
        .containers
        .into_iter()
        .map(|entry| Located {
            entry,
            file: file.to_path_buf(),
        })
        .collect())
}

impl Entry {
    /// What this entry is ordered after, as its deployment records it:
    /// `after`, then `requires`, each once.
    pub fn ordered_after(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for d in self.after.iter().chain(&self.requires) {
            if !out.contains(d) {
                out.push(d.clone());
            }
        }
        out
    }
}

impl Manifest {
    /// Checks every entry; `installed` are the containers already on the
    /// host (dependencies may name them). Returns the entry indices in
    /// dependency order (an entry after everything it is `after` or
    /// `requires`).
    pub fn validate(&self, installed: &BTreeSet<String>) -> Result<Vec<usize>, ManifestError> {
        let mut seen: BTreeMap<&str, &Path> = BTreeMap::new();
        for l in &self.entries {
            let e = &l.entry;
            let bad = |detail: String| ManifestError::Entry {
                path: l.file.clone(),
                name: e.name.clone(),
                detail,
            };
            ContainerName::parse(&e.name).map_err(|x| bad(x.to_string()))?;
            if let Some(other) = seen.insert(&e.name, &l.file) {
                return Err(bad(format!(
                    "declared twice (also in {}); names must be unique",
                    other.display()
                )));
            }
            crate::image::reference::parse(&e.image)
                .map_err(|x| bad(format!("image {:?}: {x}", e.image)))?;
            for (k, v) in &e.set {
                if is_forced(k) {
                    return Err(bad(format!(
                        "set.{k}: {k} is computed by berth and cannot be set"
                    )));
                }
                format!("{k}={v}")
                    .parse::<SetValue>()
                    .map_err(|x| bad(format!("set.{k}: {x}")))?;
                if let Some(c) = v
                    .chars()
                    .find(|c| crate::template::values::is_forbidden_in_value(*c))
                {
                    return Err(bad(format!(
                        "set.{k}: the value contains the control character {c:?}; values are data, one line each"
                    )));
                }
            }
            if let Some(v) = e.verify.as_ref().filter(|v| !v.key.is_absolute()) {
                return Err(bad(format!(
                    "verify.key {:?}: expected an absolute path (read inside --root when given)",
                    v.key
                )));
            }
            e.health.check().map_err(|x| bad(x.to_string()))?;
            for d in e.after.iter().chain(&e.requires) {
                if d == &e.name {
                    return Err(bad(format!("depends on itself ({d})")));
                }
            }
        }
        for l in &self.entries {
            let e = &l.entry;
            for d in e.after.iter().chain(&e.requires) {
                if !seen.contains_key(d.as_str()) && !installed.contains(d) {
                    return Err(ManifestError::Entry {
                        path: l.file.clone(),
                        name: e.name.clone(),
                        detail: format!(
                            "depends on {d:?}, which is neither in the manifest nor installed"
                        ),
                    });
                }
            }
        }
        self.order()
    }

    /// Topological order (stable: file order among independent entries).
    fn order(&self) -> Result<Vec<usize>, ManifestError> {
        let index: BTreeMap<&str, usize> = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, l)| (l.entry.name.as_str(), i))
            .collect();
        // 0 = new, 1 = on the stack, 2 = done.
        let mut state = vec![0u8; self.entries.len()];
        let mut out = Vec::new();
        fn visit(
            m: &Manifest,
            index: &BTreeMap<&str, usize>,
            i: usize,
            state: &mut Vec<u8>,
            stack: &mut Vec<usize>,
            out: &mut Vec<usize>,
        ) -> Result<(), ManifestError> {
            match state[i] {
                2 => return Ok(()),
                1 => {
                    let from = stack.iter().position(|&s| s == i).unwrap_or(0);
                    let mut names: Vec<&str> = stack[from..]
                        .iter()
                        .map(|&s| m.entries[s].entry.name.as_str())
                        .collect();
                    names.push(&m.entries[i].entry.name);
                    return Err(ManifestError::Cycle {
                        cycle: names.join(" -> "),
                    });
                }
                _ => {}
            }
            state[i] = 1;
            stack.push(i);
            let e = &m.entries[i].entry;
            for d in e.after.iter().chain(&e.requires) {
                if let Some(&j) = index.get(d.as_str()) {
                    visit(m, index, j, state, stack, out)?;
                }
            }
            stack.pop();
            state[i] = 2;
            out.push(i);
            Ok(())
        }
        for i in 0..self.entries.len() {
            visit(self, &index, i, &mut state, &mut Vec::new(), &mut out)?;
        }
        Ok(out)
    }
}

/// The JSON Schema of a manifest file, for editors.
pub fn schema() -> String {
    let s = schemars::schema_for!(ManifestFile);
    serde_json::to_string_pretty(&s).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, clippy::disallowed_methods)]
    use super::*;

    fn manifest(text: &str) -> Result<Manifest, ManifestError> {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("m.toml");
        std::fs::write(&f, text).unwrap();
        load(&f)
    }

    fn names(m: &Manifest, order: &[usize]) -> Vec<String> {
        order
            .iter()
            .map(|&i| m.entries[i].entry.name.clone())
            .collect()
    }

    const CLUSTER: &str = r#"
[[container]]
name = "engine"
image = "localhost:5000/engine:1"
verify = { key = "/etc/pki/berth/engine.pub" }
after = ["flannel"]
requires = ["flannel"]

[[container]]
name = "flannel"
image = "localhost:5000/flannel:1"
after = ["etcd"]
set = { AFTER = "etcd.service" }

[[container]]
name = "etcd"
image = "localhost:5000/etcd@sha256:0123456789012345678901234567890123456789012345678901234567890123"
start = false
"#;

    #[test]
    fn parses_defaults_and_orders_by_dependency() {
        let m = manifest(CLUSTER).unwrap();
        assert_eq!(m.entries.len(), 3);
        let etcd = &m.entries[2].entry;
        assert!(etcd.enabled && !etcd.start);
        assert_eq!(m.entries[1].entry.set["AFTER"], "etcd.service");
        assert_eq!(
            m.entries[0].entry.verify,
            Some(Verify {
                key: "/etc/pki/berth/engine.pub".into()
            })
        );
        let order = m.validate(&BTreeSet::new()).unwrap();
        assert_eq!(names(&m, &order), ["etcd", "flannel", "engine"]);
    }

    #[test]
    fn health_keys_are_read_and_unknown_ones_refused() {
        let m = manifest(
            "[[container]]\nname = \"a\"\nimage = \"x/a\"\n\
             health = { cmd = \"pgrep a\", interval = \"5s\", retries = 2 }\n",
        )
        .unwrap();
        let h = &m.entries[0].entry.health;
        assert_eq!(h.cmd.as_deref(), Some("pgrep a"));
        assert_eq!(h.interval.as_deref(), Some("5s"));
        assert_eq!(h.retries, Some(2));
        assert!(manifest(
            "[[container]]\nname = \"a\"\nimage = \"x/a\"\nhealth = { command = \"x\" }\n"
        )
        .is_err());
        let m = manifest(
            "[[container]]\nname = \"a\"\nimage = \"x/a\"\nhealth = { interval = \"0s\" }\n",
        )
        .unwrap();
        let e = m.validate(&BTreeSet::new()).unwrap_err().to_string();
        assert!(
            e.contains("health interval \"0s\": must be more than 0"),
            "{e}"
        );
    }

    #[test]
    fn soak_is_humantime_text() {
        let m =
            manifest("[[container]]\nname = \"a\"\nimage = \"x/a\"\nsoak = \"1m 30s\"\n").unwrap();
        assert_eq!(
            m.entries[0].entry.soak,
            Some(std::time::Duration::from_secs(90))
        );
        let e = manifest("[[container]]\nname = \"a\"\nimage = \"x/a\"\nsoak = \"soon\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("soak \"soon\""), "{e}");
    }

    #[test]
    fn independent_entries_keep_file_order() {
        let m = manifest(
            "[[container]]\nname = \"b\"\nimage = \"x/b\"\n[[container]]\nname = \"a\"\nimage = \"x/a\"\n",
        )
        .unwrap();
        assert_eq!(
            names(&m, &m.validate(&BTreeSet::new()).unwrap()),
            ["b", "a"]
        );
    }

    #[test]
    fn cycles_are_named() {
        let m = manifest(
            "[[container]]\nname = \"a\"\nimage = \"x/a\"\nafter = [\"b\"]\n\
             [[container]]\nname = \"b\"\nimage = \"x/b\"\nrequires = [\"c\"]\n\
             [[container]]\nname = \"c\"\nimage = \"x/c\"\nafter = [\"a\"]\n",
        )
        .unwrap();
        let e = m.validate(&BTreeSet::new()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "dependency cycle: a -> b -> c -> a (check `after` and `requires`)"
        );
    }

    #[test]
    fn bad_entries_name_file_and_entry() {
        let cases = [
            ("[[container]]\nname = \"a\"\nimage = \"x/a\"\nport = 1\n", "unknown field `port`"),
            ("[[container]]\nname = \"a\"\n", "missing field `image`"),
            ("[container]\nname = \"a\"\n", "invalid type"),
            ("[[container]]\nname = \"a/b\"\nimage = \"x\"\n", "invalid container name"),
            ("[[container]]\nname = \"a\"\nimage = \"x/A:\"\n", "image \"x/A:\""),
            ("[[container]]\nname = \"a\"\nimage = \"x\"\nset = { NAME = \"y\" }\n", "computed by berth"),
            ("[[container]]\nname = \"a\"\nimage = \"x\"\nset = { \"9X\" = \"y\" }\n", "set.9X"),
            ("[[container]]\nname = \"a\"\nimage = \"x\"\nset = { X = \"1\\nExecStart=/evil\" }\n", "control character"),
            ("[[container]]\nname = \"a\"\nimage = \"x\"\nafter = [\"nosuch\"]\n", "neither in the manifest nor installed"),
            ("[[container]]\nname = \"a\"\nimage = \"x\"\nrequires = [\"a\"]\n", "depends on itself"),
            ("[[container]]\nname = \"a\"\nimage = \"x\"\n[[container]]\nname = \"a\"\nimage = \"y\"\n", "declared twice"),
            ("[[container]]\nname = \"a\"\nimage = \"x\"\nverify = { key = \"k.pub\" }\n", "verify.key \"k.pub\": expected an absolute path"),
            ("[[container]]\nname = \"a\"\nimage = \"x\"\nverify = { keys = \"/k.pub\" }\n", "unknown field `keys`"),
        ];
        for (text, needle) in cases {
            let msg = match manifest(text) {
                Err(e) => e.to_string(),
                Ok(m) => m.validate(&BTreeSet::new()).unwrap_err().to_string(),
            };
            assert!(msg.contains(needle), "{text}: {msg}");
            assert!(msg.contains("m.toml"), "{text}: {msg}");
        }
        // A dependency on an installed container is fine.
        let m =
            manifest("[[container]]\nname = \"a\"\nimage = \"x\"\nafter = [\"etcd\"]\n").unwrap();
        m.validate(&["etcd".to_string()].into()).unwrap();
    }

    #[test]
    fn a_directory_is_merged_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("20-b.toml"),
            "[[container]]\nname = \"b\"\nimage = \"x/b\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("10-a.toml"),
            "[[container]]\nname = \"a\"\nimage = \"x/a\"\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("README"), "not toml").unwrap();
        let m = load(dir.path()).unwrap();
        let n: Vec<_> = m.entries.iter().map(|l| l.entry.name.as_str()).collect();
        assert_eq!(n, ["a", "b"]);
        assert!(m.entries[1].file.ends_with("20-b.toml"));
    }

    #[test]
    fn owners_are_recorded_as_seen_inside_the_root() {
        let root = tempfile::tempdir().unwrap();
        let r = std::fs::canonicalize(root.path()).unwrap();
        assert_eq!(
            owner_key(&r, &r.join("etc/berth/manifest.d")),
            "/etc/berth/manifest.d"
        );
        assert_eq!(
            owner_key(Path::new("/"), Path::new("/etc/berth/m.toml")),
            "/etc/berth/m.toml"
        );
        assert_eq!(owner_key(&r, Path::new("/srv/m.toml")), "/srv/m.toml");
    }

    #[test]
    fn the_schema_in_docs_is_current() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/manifest.schema.json");
        let want = schema();
        if std::env::var_os("BERTH_UPDATE_SCHEMA").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "docs/manifest.schema.json is outdated: run BERTH_UPDATE_SCHEMA=1 cargo test --lib the_schema"
        );
    }
}
