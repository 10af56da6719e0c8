//! Where berth keeps things, per scope: `--system` (the default, below
//! `--root DIR`) or `--user` (the invoking user's XDG directories). Every
//! path berth writes is computed here, once.
//!
//! ```text
//!                 --system (ROOT: / or --root DIR)  --user
//! data            ROOT/var/lib/berth/               $XDG_DATA_HOME/berth/ (~/.local/share/berth)
//! ├── repo/, lock, journal, owners.json, plain-http-registries
//! ├── containers/NAME -> NAME.N
//! └── mounts/
//! units           ROOT/etc/systemd/system/          $XDG_CONFIG_HOME/systemd/user/ (~/.config/...)
//! tmpfiles        ROOT/etc/tmpfiles.d/              $XDG_CONFIG_HOME/user-tmpfiles.d/
//! runtime state   ROOT/run/berth/runtime/           $XDG_RUNTIME_DIR/berth/runtime/
//! manager         system bus                        session bus (the user's systemd)
//! ```
//!
//! Paths recorded in `info.json` and planned files are "as seen inside the
//! root": for `--user` the root is `/`, so they are the absolute host paths.

use std::path::{Path, PathBuf};

use crate::template::UserDirs;

/// The system directories below the root (as seen inside it).
const SYSTEM_DATA: &str = "/var/lib/berth";
const SYSTEM_UNITS: &str = "/etc/systemd/system";
const SYSTEM_TMPFILES: &str = "/etc/tmpfiles.d";
const SYSTEM_RUNTIME: &str = "run/berth/runtime";

/// Which service manager and directories berth works with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The system manager; files below `--root` (default `/`).
    System,
    /// The calling user's manager; files below `$HOME` and `$XDG_RUNTIME_DIR`.
    User,
}

/// A `--user` request berth refuses.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// `--user` run by root.
    #[error("--user is for unprivileged users; as root use --system (the default)")]
    UserAsRoot,
    /// No home directory to put user containers in.
    #[error("--user needs $HOME (an absolute path) to find ~/.local/share and ~/.config")]
    NoHome,
    /// `--user` with `--root`.
    #[error("--user cannot be combined with --root {0}")]
    UserWithRoot(PathBuf),
    /// No `$XDG_RUNTIME_DIR` where the runtime needs it.
    #[error(
        "--user needs $XDG_RUNTIME_DIR (set by a login session, usually /run/user/UID) \
         for {what}; set it to a directory you own"
    )]
    NoRuntimeDir {
        /// What needs it.
        what: &'static str,
    },
}

/// Every path of one scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    scope: Scope,
    root: PathBuf,
    data: String,
    units: String,
    tmpfiles: String,
    runtime: Option<PathBuf>,
    user: Option<UserDirs>,
}

impl Layout {
    /// The system layout below `root` (`/`, or `--root DIR`).
    pub fn system(root: &Path) -> Layout {
        let abs = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
        Layout {
            scope: Scope::System,
            root: root.to_path_buf(),
            data: SYSTEM_DATA.into(),
            units: SYSTEM_UNITS.into(),
            tmpfiles: SYSTEM_TMPFILES.into(),
            runtime: Some(abs.join(SYSTEM_RUNTIME)),
            user: None,
        }
    }

    /// The `--user` layout for `dirs` (which the caller read from the
    /// environment; see [`user_dirs_from_env`]). As the XDG base directory
    /// spec says, empty or relative `XDG_*` values count as unset.
    pub fn user(dirs: &UserDirs) -> Result<Layout, LayoutError> {
        if !dirs.home.starts_with('/') {
            return Err(LayoutError::NoHome);
        }
        let data_home = dirs.data_home();
        let config_home = dirs.config_home();
        let runtime = dirs
            .xdg_runtime_dir
            .as_deref()
            .filter(|v| v.starts_with('/'))
            .map(|v| Path::new(v).join("berth/runtime"));
        Ok(Layout {
            scope: Scope::User,
            root: PathBuf::from("/"),
            data: format!("{data_home}/berth"),
            units: format!("{config_home}/systemd/user"),
            tmpfiles: format!("{config_home}/user-tmpfiles.d"),
            runtime,
            user: Some(dirs.clone()),
        })
    }

    /// The layout the global flags ask for: `--user` (refused as root and
    /// with a `--root` other than `/`) or the system one below `root`.
    pub fn from_flags(user: bool, root: &Path) -> Result<Layout, LayoutError> {
        if !user {
            return Ok(Layout::system(root));
        }
        if root != Path::new("/") {
            return Err(LayoutError::UserWithRoot(root.to_path_buf()));
        }
        if nix::unistd::geteuid().is_root() {
            return Err(LayoutError::UserAsRoot);
        }
        Layout::user(&user_dirs_from_env())
    }

    /// The scope.
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// Whether this is a `--user` layout.
    pub fn is_user(&self) -> bool {
        self.scope == Scope::User
    }

    /// The user's directories (`--user` only).
    pub fn user_dirs(&self) -> Option<&UserDirs> {
        self.user.as_ref()
    }

    /// The root the paths below are relative to (`/` for `--user`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `path` (absolute, as seen inside the root) on the host.
    pub fn host(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// berth's data directory, as seen inside the root.
    pub fn data_inside(&self) -> &str {
        &self.data
    }

    /// The root, opened: every path below it resolves inside it.
    pub fn open_root(&self) -> Result<crate::rootfs::Root, crate::rootfs::RootError> {
        crate::rootfs::Root::open(&self.root)
    }

    /// The journal of the open transaction, as seen inside the root.
    pub fn journal_inside(&self) -> PathBuf {
        PathBuf::from(format!("{}/journal", self.data))
    }

    /// Container → the manifest that installed it, as seen inside the root.
    pub fn owners_inside(&self) -> PathBuf {
        PathBuf::from(format!("{}/owners.json", self.data))
    }

    /// The write lock, as seen inside the root.
    pub fn lock_inside(&self) -> PathBuf {
        PathBuf::from(format!("{}/lock", self.data))
    }

    /// berth's data directory on the host: resolved inside the root, so
    /// a symlink planted on the way (`ROOT/var/lib -> /elsewhere`) leads to
    /// `ROOT/elsewhere`, never out of the root. When it cannot be resolved
    /// (a loop, a dangling link) this is the plain joined path, and every
    /// verb that writes refuses first ([`Layout::resolve_data`], called as
    /// it takes the lock).
    pub fn data(&self) -> PathBuf {
        self.resolve_data()
            .unwrap_or_else(|_| self.host(&self.data))
    }

    /// `NAME` in the data directory on the host, resolved inside the root
    /// (falling back as [`Layout::data`] does).
    fn below_data(&self, name: &str) -> PathBuf {
        let inside = format!("{}/{name}", self.data);
        self.open_root()
            .and_then(|r| r.resolve(Path::new(&inside)))
            .unwrap_or_else(|_| self.host(&inside))
    }

    /// berth's data directory on the host, resolved inside the root; an
    /// error names what is in the way.
    pub fn resolve_data(&self) -> Result<PathBuf, crate::rootfs::RootError> {
        self.open_root()?.resolve(Path::new(&self.data))
    }

    /// The OSTree repository.
    pub fn repo(&self) -> PathBuf {
        self.below_data("repo")
    }

    /// The write lock.
    pub fn lock(&self) -> PathBuf {
        self.below_data("lock")
    }

    /// The journal of the open transaction.
    pub fn journal(&self) -> PathBuf {
        self.below_data("journal")
    }

    /// The deployments directory, as seen inside the root.
    pub fn containers_inside(&self) -> String {
        format!("{}/containers", self.data)
    }

    /// The deployments directory on the host.
    pub fn containers(&self) -> PathBuf {
        self.below_data("containers")
    }

    /// Checkouts behind `berth mount IMAGE`.
    pub fn mounts(&self) -> PathBuf {
        self.below_data("mounts")
    }

    /// Container → the manifest that installed it (`berth apply`).
    pub fn owners(&self) -> PathBuf {
        self.below_data("owners.json")
    }

    /// The unit directory, as seen inside the root.
    pub fn unit_dir(&self) -> &str {
        &self.units
    }

    /// The tmpfiles.d directory, as seen inside the root.
    pub fn tmpfiles_dir(&self) -> &str {
        &self.tmpfiles
    }

    /// The runtime state directory (`run`, `exec`, `kill`); `--user` needs
    /// `$XDG_RUNTIME_DIR`.
    pub fn runtime_dir(&self) -> Result<&Path, LayoutError> {
        self.runtime.as_deref().ok_or(LayoutError::NoRuntimeDir {
            what: "the runtime state of running containers",
        })
    }

    /// The global flags that select this scope on a berth command line
    /// (what units put in `ExecStart=`): `--user`, or nothing.
    pub fn scope_args(&self) -> &'static str {
        match self.scope {
            Scope::System => "",
            Scope::User => " --user",
        }
    }
}

/// `$HOME`, the effective uid and the `XDG_*` variables of this process;
/// `$HOME` falls back to the passwd entry.
pub fn user_dirs_from_env() -> UserDirs {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let uid = nix::unistd::geteuid();
    let home = var("HOME")
        .or_else(|| {
            nix::unistd::User::from_uid(uid)
                .ok()
                .flatten()
                .map(|u| u.dir.display().to_string())
        })
        .unwrap_or_default();
    UserDirs {
        home,
        uid: uid.as_raw(),
        gid: nix::unistd::getegid().as_raw(),
        xdg_runtime_dir: var("XDG_RUNTIME_DIR"),
        xdg_data_home: var("XDG_DATA_HOME"),
        xdg_config_home: var("XDG_CONFIG_HOME"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn dirs() -> UserDirs {
        UserDirs {
            home: "/home/u/".into(),
            uid: 1000,
            gid: 1000,
            xdg_runtime_dir: Some("/run/user/1000".into()),
            xdg_data_home: None,
            xdg_config_home: None,
        }
    }

    #[test]
    fn system_layout_is_below_the_root() {
        let l = Layout::system(Path::new("/tmp/r"));
        assert_eq!(l.repo(), PathBuf::from("/tmp/r/var/lib/berth/repo"));
        assert_eq!(l.lock(), PathBuf::from("/tmp/r/var/lib/berth/lock"));
        assert_eq!(l.journal(), PathBuf::from("/tmp/r/var/lib/berth/journal"));
        assert_eq!(l.containers_inside(), "/var/lib/berth/containers");
        assert_eq!(
            l.containers(),
            PathBuf::from("/tmp/r/var/lib/berth/containers")
        );
        assert_eq!(
            l.owners(),
            PathBuf::from("/tmp/r/var/lib/berth/owners.json")
        );
        assert_eq!(l.unit_dir(), "/etc/systemd/system");
        assert_eq!(l.tmpfiles_dir(), "/etc/tmpfiles.d");
        assert_eq!(
            l.runtime_dir().unwrap(),
            Path::new("/tmp/r/run/berth/runtime")
        );
        assert_eq!(l.host("/etc/x"), PathBuf::from("/tmp/r/etc/x"));
        assert_eq!(l.scope_args(), "");
        let slash = Layout::system(Path::new("/"));
        assert_eq!(slash.repo(), PathBuf::from("/var/lib/berth/repo"));
        assert_eq!(
            slash.runtime_dir().unwrap(),
            Path::new("/run/berth/runtime")
        );
    }

    #[test]
    #[allow(clippy::disallowed_methods)]
    fn the_data_dir_resolves_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("r");
        std::fs::create_dir_all(root.join("data/lib")).unwrap();
        std::fs::create_dir_all(root.join("var")).unwrap();
        std::os::unix::fs::symlink("/data/lib", root.join("var/lib")).unwrap();
        let l = Layout::system(&root);
        let real = root.canonicalize().unwrap().join("data/lib/berth");
        assert_eq!(l.data(), real);
        assert_eq!(l.repo(), real.join("repo"));
        assert_eq!(l.containers(), real.join("containers"));
        // A link whose target is not in the root: refused, named.
        std::fs::remove_file(root.join("var/lib")).unwrap();
        std::os::unix::fs::symlink(t.path().join("elsewhere"), root.join("var/lib")).unwrap();
        let e = l.resolve_data().unwrap_err();
        assert!(e.to_string().starts_with("/var/lib is a symlink to"), "{e}");
    }

    #[test]
    fn user_layout_follows_the_xdg_defaults() {
        let l = Layout::user(&dirs()).unwrap();
        assert!(l.is_user());
        assert_eq!(l.repo(), PathBuf::from("/home/u/.local/share/berth/repo"));
        assert_eq!(l.lock(), PathBuf::from("/home/u/.local/share/berth/lock"));
        assert_eq!(
            l.containers_inside(),
            "/home/u/.local/share/berth/containers"
        );
        assert_eq!(l.unit_dir(), "/home/u/.config/systemd/user");
        assert_eq!(l.tmpfiles_dir(), "/home/u/.config/user-tmpfiles.d");
        assert_eq!(
            l.runtime_dir().unwrap(),
            Path::new("/run/user/1000/berth/runtime")
        );
        assert_eq!(l.host("/home/u/x"), PathBuf::from("/home/u/x"));
        assert_eq!(l.scope_args(), " --user");
    }

    #[test]
    fn user_layout_takes_absolute_xdg_variables_only() {
        let mut d = dirs();
        d.xdg_data_home = Some("/data/".into());
        d.xdg_config_home = Some("relative/conf".into());
        let l = Layout::user(&d).unwrap();
        assert_eq!(l.data(), PathBuf::from("/data/berth"));
        assert_eq!(l.unit_dir(), "/home/u/.config/systemd/user");
    }

    #[test]
    fn user_layout_needs_home_and_a_runtime_dir_for_the_runtime() {
        let mut d = dirs();
        d.xdg_runtime_dir = None;
        let l = Layout::user(&d).unwrap();
        assert!(matches!(
            l.runtime_dir(),
            Err(LayoutError::NoRuntimeDir { .. })
        ));
        d.home = String::new();
        assert!(matches!(Layout::user(&d), Err(LayoutError::NoHome)));
    }

    #[test]
    fn user_flag_refuses_another_root() {
        assert!(matches!(
            Layout::from_flags(true, Path::new("/tmp/r")),
            Err(LayoutError::UserWithRoot(_))
        ));
        assert_eq!(
            Layout::from_flags(false, Path::new("/tmp/r")).unwrap(),
            Layout::system(Path::new("/tmp/r"))
        );
    }
}
