//! PURE: what an update adds to a container's footprint ([`growth`]).

use super::{Footprint, Grants};

/// What `new` has that `old` has not: the growth an update must have
/// accepted. Empty when the footprint stays or shrinks.
pub fn growth(old: &Footprint, new: &Footprint) -> Footprint {
    fn added<T: Clone, K: PartialEq>(new: &[T], old: &[T], key: impl Fn(&T) -> K) -> Vec<T> {
        new.iter()
            .filter(|n| !old.iter().any(|o| key(o) == key(n)))
            .cloned()
            .collect()
    }
    let (o, n) = (&old.config, &new.config);
    let same = |s: &String| s.clone();
    Footprint {
        host_paths: added(&new.host_paths, &old.host_paths, |h| h.path.clone()),
        tmpfiles: added(&new.tmpfiles, &old.tmpfiles, |l| {
            (l.typ.clone(), l.path.clone())
        }),
        commands: added(&new.commands, &old.commands, same),
        config: Grants {
            host_namespaces: added(&n.host_namespaces, &o.host_namespaces, same),
            capabilities: added(&n.capabilities, &o.capabilities, same),
            rw_binds: added(&n.rw_binds, &o.rw_binds, same),
            ro_binds: added(&n.ro_binds, &o.ro_binds, same),
            all_devices: n.all_devices && !o.all_devices,
            new_privileges: n.new_privileges && !o.new_privileges,
            no_seccomp: n.no_seccomp && !o.no_seccomp,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::footprint::{HostPath, TmpfilesLine};
    use crate::deploy::EntryKind;

    #[test]
    fn growth_is_what_the_new_one_adds() {
        let old = Footprint {
            host_paths: vec![HostPath {
                path: "/usr/bin/a".into(),
                kind: EntryKind::File,
                existing: false,
            }],
            tmpfiles: vec![TmpfilesLine {
                typ: "d".into(),
                path: "/srv".into(),
                changes_existing: false,
            }],
            config: Grants {
                capabilities: vec!["CAP_NET_ADMIN".into()],
                no_seccomp: true,
                ..Grants::default()
            },
            ..Footprint::default()
        };
        assert!(growth(&old, &old).is_empty());
        assert!(growth(&old, &Footprint::default()).is_empty());
        let mut new = old.clone();
        new.host_paths[0].existing = true;
        assert!(growth(&old, &new).is_empty(), "same path, now existing");
        new.host_paths.push(HostPath {
            path: "/etc/sudoers.d/x".into(),
            kind: EntryKind::File,
            existing: false,
        });
        new.tmpfiles.push(TmpfilesLine {
            typ: "w+".into(),
            path: "/etc/passwd".into(),
            changes_existing: true,
        });
        new.tmpfiles[0].typ = "D".into();
        new.tmpfiles[0].changes_existing = true;
        new.commands.push("ExecStart=/bin/sh -c x".into());
        new.config.capabilities.push("CAP_SYS_ADMIN".into());
        new.config.rw_binds.push("/ \u{2192} /host".into());
        new.config.host_namespaces.push("pid".into());
        new.config.all_devices = true;
        new.config.new_privileges = true;
        assert_eq!(
            growth(&old, &new).lines(),
            [
                "new host paths: /etc/sudoers.d/x",
                "tmpfiles lines changing existing paths: D /srv, w+ /etc/passwd",
                "host commands: ExecStart=/bin/sh -c x",
                "host namespaces: pid",
                "capabilities: CAP_SYS_ADMIN",
                "read-write host paths: / \u{2192} /host",
                "all devices",
                "new privileges (noNewPrivileges is not set)",
            ]
        );
    }
}
