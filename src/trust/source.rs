//! Where the policy comes from, and what a pull records about its check.
//!
//! ```text
//! --signature-policy FILE          a host file, as skopeo reads it
//! ROOT/etc/containers/policy.json  the system scope (inside --root)
//! ~/.config/containers/policy.json --user, first; then /etc/containers/policy.json
//! ```
//!
//! With `--root DIR`, the policy and every `keyPath` are read inside DIR
//! through [`Root`] (an absolute or `../` symlink in DIR cannot reach the
//! host), each bounded ([`MAX_POLICY_SIZE`], [`MAX_KEY_SIZE`]): a host
//! image carries its trust with it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::policy::{Policy, PolicyError};
use super::verify::Verified;
use super::{KeySource, Requirement, MAX_KEY_SIZE};
use crate::layout::Layout;
use crate::rootfs::{Root, RootError};

/// The system policy, as every containers tool reads it.
pub const SYSTEM_POLICY: &str = "/etc/containers/policy.json";

/// How large policy.json may be (keyData inline makes it larger than most
/// configuration).
pub const MAX_POLICY_SIZE: u64 = 4 << 20;

/// The `--user` policy below `$XDG_CONFIG_HOME`.
pub const USER_POLICY: &str = "containers/policy.json";

/// The policy flags of the verbs that pull.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyOptions {
    /// `--signature-policy FILE` (a host path).
    pub file: Option<PathBuf>,
    /// `--insecure-policy`: accept every image, whatever the policy says.
    pub insecure: bool,
    /// `--registries.d DIR` (a host path, read as given even with
    /// `--root`): where signatures are, instead of the usual lookup.
    pub registries_d: Option<PathBuf>,
    /// Requirements on top of the policy's (a provisioning manifest's
    /// `verify = { key = … }`); checked even with `--insecure-policy`.
    pub extra: Vec<Requirement>,
}

/// The policy a pull applies.
#[derive(Debug, Clone)]
pub enum Loaded {
    /// `--insecure-policy`.
    Insecure,
    /// No policy file exists: berth accepts every image, as before it read one.
    Absent {
        /// The files looked for.
        looked: Vec<PathBuf>,
    },
    /// A policy file.
    Policy {
        /// Where it was read (as seen inside the root for the default).
        file: PathBuf,
        /// Its content.
        policy: Policy,
    },
}

/// What a pull records about how its image was checked (`status`,
/// `images inspect`, `pull --json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustRecord {
    /// The policy file, or `none` / `insecure-policy`.
    pub policy: String,
    /// The scope that applied (`default`, `transports.docker "quay.io"`…).
    pub scope: String,
    /// The requirements met, key fingerprints and identities.
    #[serde(flatten)]
    pub verified: Verified,
}

impl TrustRecord {
    /// The record of a pull that checked nothing (`policy` says why).
    pub fn unchecked(policy: &str) -> TrustRecord {
        TrustRecord {
            policy: policy.into(),
            scope: String::new(),
            verified: Verified {
                requirements: vec![],
                keys: vec![],
                identities: vec![],
            },
        }
    }
}

impl TrustRecord {
    /// One line for `status` and `images inspect`.
    pub fn describe(&self) -> String {
        let v = &self.verified;
        if v.requirements.is_empty() {
            return match self.policy.as_str() {
                "none" => "not checked (no signature policy file)".into(),
                "insecure-policy" => "not checked (--insecure-policy)".into(),
                p => format!("not checked ({p})"),
            };
        }
        let mut out = format!(
            "{} (policy {}, scope {})",
            v.requirements.join(", "),
            self.policy,
            self.scope
        );
        if !v.keys.is_empty() {
            out.push_str(&format!("; keys {}", v.keys.join(", ")));
        }
        if !v.identities.is_empty() {
            out.push_str(&format!("; identities {}", v.identities.join(", ")));
        }
        out
    }
}

/// The policy files to try for `layout`, in order, as seen inside its root.
pub fn candidates(layout: &Layout) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(dirs) = layout.user_dirs() {
        let home = dirs.config_home();
        if home.starts_with('/') {
            out.push(Path::new(&home).join(USER_POLICY));
        }
    }
    out.push(PathBuf::from(SYSTEM_POLICY));
    out
}

/// Finds and reads the policy for `layout` under `opts`.
pub fn load(layout: &Layout, opts: &PolicyOptions) -> Result<Loaded, PolicyError> {
    if opts.insecure {
        return Ok(Loaded::Insecure);
    }
    if let Some(file) = &opts.file {
        // A host path as given (relative to the working directory), bounded.
        let absolute = std::path::absolute(file).map_err(|source| PolicyError::Read {
            file: file.clone(),
            source,
        })?;
        let text = Root::open(Path::new("/"))?.read_at_most(&absolute, MAX_POLICY_SIZE)?;
        let policy = Policy::parse(&text, file)?;
        return Ok(Loaded::Policy {
            file: file.clone(),
            policy,
        });
    }
    let root = layout.open_root()?;
    let looked = candidates(layout);
    for file in &looked {
        match root.read_at_most(file, MAX_POLICY_SIZE) {
            Ok(text) => {
                let shown = layout.host(&file.to_string_lossy());
                let policy = Policy::parse(&text, &shown)?;
                return Ok(Loaded::Policy {
                    file: shown,
                    policy,
                });
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Loaded::Absent { looked })
}

/// A key file a requirement names that cannot be read.
#[derive(Debug)]
pub struct KeyReadError {
    /// The requirement type.
    pub requirement: &'static str,
    /// The key's path, as the policy names it.
    pub path: PathBuf,
    /// Why (the error names the path inside the root).
    pub source: RootError,
}

/// `reqs` with every key path read through `root` (resolved inside it,
/// bounded to [`MAX_KEY_SIZE`]), so the verifiers check with the root's
/// keys, never the host's, and never open a path again.
pub fn load_keys(root: &Root, reqs: &[Requirement]) -> Result<Vec<Requirement>, KeyReadError> {
    let read = |requirement: &'static str, k: &KeySource| -> Result<KeySource, KeyReadError> {
        Ok(match k {
            KeySource::Path(path) => KeySource::Loaded {
                path: path.clone(),
                bytes: root
                    .read_at_most(path, MAX_KEY_SIZE)
                    .map_err(|source| KeyReadError {
                        requirement,
                        path: path.clone(),
                        source,
                    })?,
            },
            other => other.clone(),
        })
    };
    reqs.iter()
        .map(|r| {
            Ok(match r {
                Requirement::SignedBy {
                    key_type,
                    keys,
                    identity,
                } => Requirement::SignedBy {
                    key_type: *key_type,
                    keys: keys
                        .iter()
                        .map(|k| read(r.type_name(), k))
                        .collect::<Result<_, _>>()?,
                    identity: identity.clone(),
                },
                Requirement::SigstoreSigned {
                    key,
                    keyless,
                    identity,
                } => Requirement::SigstoreSigned {
                    key: key.as_ref().map(|k| read(r.type_name(), k)).transpose()?,
                    keyless: *keyless,
                    identity: identity.clone(),
                },
                other => other.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::disallowed_methods)]
    use super::*;
    use crate::template::UserDirs;

    #[test]
    fn user_policy_comes_before_the_system_one() {
        let dirs = UserDirs {
            home: "/home/u".into(),
            uid: 1000,
            ..Default::default()
        };
        let user = Layout::user(&dirs).unwrap();
        assert_eq!(
            candidates(&user),
            [
                PathBuf::from("/home/u/.config/containers/policy.json"),
                PathBuf::from(SYSTEM_POLICY)
            ]
        );
        assert_eq!(
            candidates(&Layout::system(Path::new("/r"))),
            [PathBuf::from(SYSTEM_POLICY)]
        );
    }

    #[test]
    fn the_roots_policy_and_keys_are_read_inside_it() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::system(tmp.path());
        let opts = PolicyOptions::default();
        assert!(matches!(
            load(&layout, &opts).unwrap(),
            Loaded::Absent { .. }
        ));
        std::fs::create_dir_all(tmp.path().join("etc/containers")).unwrap();
        std::fs::create_dir_all(tmp.path().join("keys")).unwrap();
        // An absolute symlink in the root resolves inside it.
        std::os::unix::fs::symlink("/keys", tmp.path().join("etc/pki")).unwrap();
        std::fs::write(
            tmp.path().join("etc/containers/policy.json"),
            r#"{"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/etc/pki/k.gpg"}]}"#,
        )
        .unwrap();
        let Loaded::Policy { file, policy } = load(&layout, &opts).unwrap() else {
            panic!("no policy")
        };
        assert_eq!(file, tmp.path().join("etc/containers/policy.json"));
        let root = layout.open_root().unwrap();
        // Not there: the error names the path inside the root.
        let e = load_keys(&root, &policy.default).unwrap_err();
        assert_eq!(e.path, Path::new("/etc/pki/k.gpg"));
        assert!(e.source.is_not_found(), "{}", e.source);
        std::fs::write(tmp.path().join("keys/k.gpg"), "inside").unwrap();
        let reqs = load_keys(&root, &policy.default).unwrap();
        let Requirement::SignedBy { keys, .. } = &reqs[0] else {
            panic!("{reqs:?}")
        };
        assert_eq!(
            keys,
            &[KeySource::Loaded {
                path: "/etc/pki/k.gpg".into(),
                bytes: b"inside".to_vec()
            }]
        );
        let insecure = PolicyOptions {
            insecure: true,
            ..PolicyOptions::default()
        };
        assert!(matches!(
            load(&layout, &insecure).unwrap(),
            Loaded::Insecure
        ));
    }

    #[test]
    fn key_links_in_a_root_never_reach_the_host() {
        let tmp = tempfile::tempdir().unwrap();
        let host_key = tmp.path().join("host.gpg");
        std::fs::write(&host_key, "host").unwrap();
        let root_dir = tmp.path().join("root");
        std::fs::create_dir_all(root_dir.join("etc/pki")).unwrap();
        let root = Root::open(&root_dir).unwrap();
        let req = |path: &str| {
            vec![Requirement::SigstoreSigned {
                key: Some(KeySource::Path(path.into())),
                keyless: false,
                identity: crate::trust::SignedIdentity::MatchRepository,
            }]
        };
        // An absolute link to the host's key, and a `../` one: both stay
        // inside the root, where nothing is.
        std::os::unix::fs::symlink(&host_key, root_dir.join("etc/pki/abs.pub")).unwrap();
        std::os::unix::fs::symlink("../../../host.gpg", root_dir.join("etc/pki/up.pub")).unwrap();
        for key in ["/etc/pki/abs.pub", "/etc/pki/up.pub"] {
            let e = load_keys(&root, &req(key)).unwrap_err();
            assert!(e.source.is_not_found(), "{key}: {}", e.source);
            assert_eq!(e.requirement, "sigstoreSigned");
        }
        // The root's own file at the link's target is what is read.
        std::fs::write(root_dir.join("host.gpg"), "inside").unwrap();
        let reqs = load_keys(&root, &req("/etc/pki/up.pub")).unwrap();
        let Requirement::SigstoreSigned { key: Some(k), .. } = &reqs[0] else {
            panic!("{reqs:?}")
        };
        assert_eq!(
            k,
            &KeySource::Loaded {
                path: "/etc/pki/up.pub".into(),
                bytes: b"inside".to_vec()
            }
        );
        // Bounded.
        std::fs::write(
            root_dir.join("etc/pki/big.pub"),
            vec![b'k'; MAX_KEY_SIZE as usize + 1],
        )
        .unwrap();
        let e = load_keys(&root, &req("/etc/pki/big.pub")).unwrap_err();
        assert!(
            matches!(e.source, RootError::TooLarge { .. }),
            "{}",
            e.source
        );
    }

    #[test]
    fn records_describe_themselves() {
        assert_eq!(
            TrustRecord::unchecked("none").describe(),
            "not checked (no signature policy file)"
        );
        let r = TrustRecord {
            policy: "/etc/containers/policy.json".into(),
            scope: "default".into(),
            verified: Verified {
                requirements: vec!["signedBy".into()],
                keys: vec!["ABCD".into()],
                identities: vec!["quay.io/a:1".into()],
            },
        };
        assert_eq!(
            r.describe(),
            "signedBy (policy /etc/containers/policy.json, scope default); keys ABCD; identities quay.io/a:1"
        );
    }
}
