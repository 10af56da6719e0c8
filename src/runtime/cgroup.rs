//! Where the container's cgroup goes: a child of berth's own cgroup.
//!
//! Under systemd berth is the unit's main process, so its own cgroup is the
//! unit's. Putting the container in a child of it keeps `systemctl status`,
//! `MemoryMax=`/`CPUQuota=` and `systemctl stop` covering the container.
//! (The unit's cgroup itself would not do: libcontainer's delete kills every
//! process of the container's cgroup, berth included.)
//!
//! libcontainer takes one `cgroupsPath` for every hierarchy. On a cgroup v2
//! host that is the `0::` line of `/proc/self/cgroup`. On a hybrid or v1
//! host each v1 controller has its own line; under systemd with
//! `Delegate=yes` they all equal the `name=systemd` path, but elsewhere they
//! can differ. berth picks the deepest of its own paths that lies below all
//! the others, so the container is inside berth's cgroup in every hierarchy.
//!
//! On a pure cgroup v2 host with controllers, berth (a unit's main process) first
//! moves itself into `NAME.service/supervisor` ([`OwnCgroups::leave_unit_root`]):
//! libcontainer enables every available controller in the subtree_control of each
//! ancestor of the container's cgroup, and with berth still in `NAME.service` the
//! threaded ones (cpu, cpuset, pids) succeed while the domain ones (memory, io) fail
//! (no internal processes), which turns `NAME.service` into a thread root and makes
//! `NAME.service/berth-ID` an invalid domain: moving the container there fails with
//! EOPNOTSUPP. With the unit's cgroup empty, the controllers are enabled and the
//! container's cgroup gets them (podman's "split" layout).

use std::path::{Path, PathBuf};

/// berth's own cgroups, parsed from `/proc/self/cgroup`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OwnCgroups {
    /// `(controllers, path)` per line; controllers is `""` for the v2 line.
    pub lines: Vec<(String, String)>,
}

impl OwnCgroups {
    /// Parses the text of `/proc/self/cgroup`.
    pub fn parse(text: &str) -> OwnCgroups {
        let lines = text
            .lines()
            .filter_map(|l| {
                let mut parts = l.splitn(3, ':');
                let _id = parts.next()?;
                let ctrl = parts.next()?;
                let path = parts.next()?;
                Some((ctrl.to_string(), path.to_string()))
            })
            .collect();
        OwnCgroups { lines }
    }

    /// Reads `/proc/self/cgroup`.
    pub fn read() -> std::io::Result<OwnCgroups> {
        Ok(OwnCgroups::parse(&std::fs::read_to_string(
            "/proc/self/cgroup",
        )?))
    }

    /// The cgroup systemd tracks processes in: `name=systemd` on hybrid and
    /// v1 hosts, else the unified (`0::`) one.
    pub fn tracking(&self) -> Option<&str> {
        self.find("name=systemd").or_else(|| self.find(""))
    }

    fn find(&self, ctrl: &str) -> Option<&str> {
        self.lines
            .iter()
            .find(|(c, _)| c == ctrl)
            .map(|(_, p)| p.as_str())
    }

    /// The deepest of berth's own cgroup paths that is at or below every
    /// other one; when the paths disagree (none is below all the others),
    /// the tracking path.
    pub fn base(&self) -> PathBuf {
        let paths: Vec<&Path> = self
            .lines
            .iter()
            .map(|(_, p)| Path::new(p.as_str()))
            .collect();
        let below_all = |c: &Path| paths.iter().all(|p| c.starts_with(p));
        let deepest = paths
            .iter()
            .filter(|c| below_all(c))
            .max_by_key(|c| c.components().count());
        match deepest {
            Some(p) => p.to_path_buf(),
            None => PathBuf::from(self.tracking().unwrap_or("/")),
        }
    }

    /// `cgroupsPath` for container `id`: `BASE/berth-ID`.
    pub fn container_path(&self, id: &str) -> PathBuf {
        self.base().join(format!("berth-{id}"))
    }

    /// The cgroup berth moves itself into before creating a container: `BASE/supervisor`,
    /// on a pure cgroup v2 host (one `0::` line) when berth is a service's process
    /// (`BASE` ends in `.service`); `None` elsewhere.
    pub fn supervisor_path(&self) -> Option<PathBuf> {
        let base = match self.lines.as_slice() {
            [(c, p)] if c.is_empty() => Path::new(p.as_str()),
            _ => return None,
        };
        base.file_name()?
            .to_str()?
            .ends_with(".service")
            .then(|| base.join("supervisor"))
    }

    /// Moves this process into [`Self::supervisor_path`] when there is one and the
    /// unit's cgroup has controllers to hand down (see the module documentation), so
    /// the unit's cgroup holds no process itself. Returns the cgroup moved into.
    pub fn leave_unit_root(&self) -> std::io::Result<Option<PathBuf>> {
        const MOUNT: &str = "/sys/fs/cgroup";
        let Some(sup) = self.supervisor_path() else {
            return Ok(None);
        };
        let base = Path::new(MOUNT).join(self.base().strip_prefix("/").unwrap_or(Path::new("")));
        let controllers = std::fs::read_to_string(base.join("cgroup.controllers"))?;
        if controllers.trim().is_empty() {
            return Ok(None);
        }
        let dir = Path::new(MOUNT).join(sup.strip_prefix("/").unwrap_or(&sup));
        match std::fs::create_dir(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        std::fs::write(dir.join("cgroup.procs"), "0")?;
        Ok(Some(sup))
    }
}

/// The v1 controllers libcontainer's cgroup manager uses.
const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "hugetlb",
    "memory",
    "pids",
    "perf_event",
    "blkio",
    "net_prio",
    "net_cls",
    "freezer",
];

/// The directories the container's cgroup is created in (`MOUNT/BASE`),
/// given the text of `/proc/self/mountinfo`: one per v1 hierarchy of a
/// controller libcontainer uses, or the cgroup2 mount when there is none
/// (on hybrid hosts libcontainer leaves cgroup2 alone).
pub fn parent_dirs(mountinfo: &str, base: &Path) -> Vec<PathBuf> {
    let mut v1 = Vec::new();
    let mut v2 = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mut r = right.split_whitespace();
        let (Some(fstype), Some(_source), Some(opts)) = (r.next(), r.next(), r.next()) else {
            continue;
        };
        let Some(mount) = left.split_whitespace().nth(4) else {
            continue;
        };
        let dir = Path::new(mount).join(base.strip_prefix("/").unwrap_or(base));
        match fstype {
            "cgroup" if opts.split(',').any(|o| V1_CONTROLLERS.contains(&o)) => v1.push(dir),
            "cgroup2" => v2.push(dir),
            _ => {}
        }
    }
    if v1.is_empty() {
        v2
    } else {
        v1
    }
}

/// Removes what is left of a container's cgroup `path` (its `cgroupsPath`)
/// after the runtime's delete: the runtime finds the cgroup through the
/// container's state, and a state removed under a running container (a
/// wiped `/run`, an operator's `rm`) would leave it on the host. Only empty
/// directories go (`rmdir`; a cgroup with processes is `EBUSY` and stays);
/// returns the directories that could not be removed, with why.
pub fn remove_leftover(path: &Path) -> Vec<(PathBuf, std::io::Error)> {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    parent_dirs(&mountinfo, path)
        .into_iter()
        .filter_map(|dir| match std::fs::remove_dir(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Some((dir, e)),
            _ => None,
        })
        .collect()
}

/// [`remove_leftover`] of container `id`'s cgroup `path`, after its
/// runtime's delete; what stays is logged as a warning.
pub fn remove_leftover_of(id: &str, path: &Path) {
    for (dir, e) in remove_leftover(path) {
        tracing::warn!("{id}: removing its cgroup {}: {e}", dir.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_dirs_are_the_v1_hierarchies_or_the_unified_one() {
        let hybrid = "\
30 25 0:26 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw
31 25 0:27 / /sys/fs/cgroup/systemd rw,nosuid - cgroup cgroup rw,xattr,name=systemd
34 25 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
35 25 0:31 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
22 1 0:20 / /proc rw - proc proc rw
";
        assert_eq!(
            parent_dirs(hybrid, Path::new("/user.slice/u.service")),
            [
                PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/user.slice/u.service"),
                PathBuf::from("/sys/fs/cgroup/memory/user.slice/u.service"),
            ]
        );
        let unified = "30 25 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n";
        assert_eq!(
            parent_dirs(unified, Path::new("/a")),
            [PathBuf::from("/sys/fs/cgroup/a")]
        );
    }

    #[test]
    fn unit_cgroup_on_hybrid_systemd_host() {
        let t = "12:memory:/system.slice/etcd.service\n3:cpu,cpuacct:/system.slice\n1:name=systemd:/system.slice/etcd.service\n0::/system.slice/etcd.service\n";
        let c = OwnCgroups::parse(t);
        assert_eq!(c.tracking(), Some("/system.slice/etcd.service"));
        assert_eq!(
            c.container_path("etcd"),
            PathBuf::from("/system.slice/etcd.service/berth-etcd")
        );
    }

    #[test]
    fn unified_host() {
        let c = OwnCgroups::parse("0::/system.slice/web.service\n");
        assert_eq!(
            c.container_path("web"),
            PathBuf::from("/system.slice/web.service/berth-web")
        );
    }

    #[test]
    fn supervisor_only_for_a_service_on_unified() {
        let c = OwnCgroups::parse("0::/system.slice/web.service\n");
        assert_eq!(
            c.supervisor_path(),
            Some(PathBuf::from("/system.slice/web.service/supervisor"))
        );
        let scope = OwnCgroups::parse("0::/user.slice/user-0.slice/session-1.scope\n");
        assert_eq!(scope.supervisor_path(), None);
        let hybrid = "1:name=systemd:/system.slice/web.service\n0::/system.slice/web.service\n";
        assert_eq!(OwnCgroups::parse(hybrid).supervisor_path(), None);
    }

    #[test]
    fn deepest_controller_path_wins_when_below_the_others() {
        let t = "4:memory:/process_api/abc\n1:cpu:/\n9:name=systemd:/\n0::/\n";
        assert_eq!(
            OwnCgroups::parse(t).base(),
            PathBuf::from("/process_api/abc")
        );
    }

    #[test]
    fn disagreeing_paths_fall_back_to_tracking() {
        let t = "4:memory:/a\n1:cpu:/b\n9:name=systemd:/c\n0::/\n";
        assert_eq!(OwnCgroups::parse(t).base(), PathBuf::from("/c"));
    }
}
