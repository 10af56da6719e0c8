//! The service manager berth talks to, behind one small trait so the
//! offline path is tested without systemd.
//!
//! - [`Offline`]: no running systemd (`--root DIR`, or PID 1 is not
//!   systemd). Enablement links are computed as `systemctl --root=DIR
//!   enable` would write them; reload is a no-op; nothing can be started.
//! - [`super::dbus::Live`]: systemd over D-Bus (`org.freedesktop.systemd1`),
//!   jobs awaited through `JobRemoved`.
//!
//! Either way berth creates the enablement symlinks itself, inside its
//! transaction (so a failed or killed install undoes them exactly), and a
//! live manager is then told with `Reload`.

use std::path::{Path, PathBuf};

use super::{Install, Symlink, UnitName};
use crate::layout::{Layout, Scope};

/// A service manager operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// No running systemd to ask (offline root).
    #[error("{what} needs a running systemd; this root has none (offline install)")]
    NotLive {
        /// The operation asked for.
        what: String,
    },
    /// The bus connection or a call on it failed.
    #[error("systemd D-Bus: {0}")]
    Bus(String),
    /// A job ended with a result other than `done`.
    #[error("{verb} {unit}: job {result}")]
    Job {
        /// start, stop, restart.
        verb: String,
        /// The unit.
        unit: String,
        /// systemd's job result: failed, timeout, dependency, canceled, ...
        result: String,
    },
}

/// What the update gate polls of a unit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitStatus {
    /// `ActiveState`: `active`, `activating`, `failed`, ... (`unknown` offline).
    pub active: String,
    /// `SubState`: `running`, `auto-restart`, `exited`, ... (may be empty).
    pub sub: String,
    /// A service's `NRestarts`: restarts systemd made on its own.
    pub n_restarts: Option<u32>,
    /// A service's `ExecMainStatus`: the main process's last exit status.
    pub main_status: Option<i32>,
}

/// What install, update and uninstall ask of the service manager.
pub trait Manager {
    /// The symlinks (paths as seen inside the root) that enable `unit`,
    /// whose text is `text`, in `unit_dir`. Nothing is changed; the caller
    /// creates them in its transaction.
    fn enable_plan(
        &self,
        unit: &UnitName,
        text: &str,
        unit_dir: &str,
    ) -> Result<Vec<Symlink>, super::UnitError> {
        let install = Install::parse(text, unit)?;
        for w in &install.warnings {
            tracing::warn!("{unit}: {w}");
        }
        install.symlinks(unit_dir)
    }
    /// Whether a running systemd hears of changes (and can start units).
    fn is_live(&self) -> bool;
    /// Reloads the manager's view of unit files (a no-op offline).
    fn reload(&self) -> Result<(), ManagerError>;
    /// The unit's `ActiveState` (`active`, `inactive`, `failed`, ...), or
    /// `unknown` offline.
    fn unit_state(&self, unit: &UnitName) -> String;
    /// The unit's states and counters; by default its `ActiveState` only.
    fn unit_status(&self, unit: &UnitName) -> UnitStatus {
        UnitStatus {
            active: self.unit_state(unit),
            ..UnitStatus::default()
        }
    }
    /// Starts `unit` and waits for the job's result.
    fn start(&self, unit: &UnitName) -> Result<(), ManagerError>;
    /// Stops `unit` and waits for the job's result.
    fn stop(&self, unit: &UnitName) -> Result<(), ManagerError>;
    /// Restarts `unit` and waits for the job's result.
    fn restart(&self, unit: &UnitName) -> Result<(), ManagerError>;
    /// The last `lines` journal lines of `unit` (empty offline).
    fn journal_tail(&self, unit: &UnitName, lines: usize) -> Vec<String>;
    /// Whether the unit is running or about to (active, activating, reloading).
    fn is_running(&self, unit: &UnitName) -> bool {
        matches!(
            self.unit_state(unit).as_str(),
            "active" | "activating" | "reloading"
        )
    }
}

/// No running systemd (`--root DIR`, or PID 1 is not systemd).
#[derive(Debug, Clone)]
pub struct Offline {
    /// The root the unit files live in.
    pub root: PathBuf,
}

impl Offline {
    /// The offline manager for `root`.
    pub fn new(root: &Path) -> Self {
        Offline {
            root: root.to_path_buf(),
        }
    }
}

impl Manager for Offline {
    fn is_live(&self) -> bool {
        false
    }

    fn reload(&self) -> Result<(), ManagerError> {
        Ok(())
    }

    fn unit_state(&self, _unit: &UnitName) -> String {
        "unknown".into()
    }

    fn start(&self, unit: &UnitName) -> Result<(), ManagerError> {
        Err(ManagerError::NotLive {
            what: format!("starting {unit}"),
        })
    }

    fn stop(&self, _unit: &UnitName) -> Result<(), ManagerError> {
        Ok(())
    }

    fn restart(&self, unit: &UnitName) -> Result<(), ManagerError> {
        Err(ManagerError::NotLive {
            what: format!("restarting {unit}"),
        })
    }

    fn journal_tail(&self, _unit: &UnitName, _lines: usize) -> Vec<String> {
        Vec::new()
    }
}

/// Whether berth should talk to a running systemd for `root`: the root is
/// `/` and systemd is PID 1 (`/run/systemd/system` exists, as
/// `sd_booted()` checks).
pub fn systemd_running(root: &Path) -> bool {
    root == Path::new("/") && Path::new("/run/systemd/system").is_dir()
}

/// Whether the calling user's systemd runs and its session bus is there:
/// `$XDG_RUNTIME_DIR/systemd/private` exists (what `systemctl --user`
/// checks) and `$DBUS_SESSION_BUS_ADDRESS` is set or
/// `$XDG_RUNTIME_DIR/bus` exists.
pub fn user_manager_running() -> bool {
    let Some(run) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) else {
        return false;
    };
    let manager = run.join("systemd/private").exists();
    let bus = std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some_and(|a| !a.is_empty())
        || run.join("bus").exists();
    if manager && !bus {
        tracing::warn!(
            "your systemd user manager runs but no session bus answers; \
             working offline (run `systemctl --user daemon-reload` yourself)"
        );
    }
    manager && bus
}

/// The manager for a layout: for `--system`, systemd over D-Bus when it
/// runs and the root is `/`; for `--user`, the user's systemd on the
/// session bus when it runs; else [`Offline`].
pub fn connect(layout: &Layout) -> Result<Box<dyn Manager>, ManagerError> {
    match layout.scope() {
        Scope::System if systemd_running(layout.root()) => {
            Ok(Box::new(super::dbus::Live::system()?))
        }
        Scope::User if user_manager_running() => Ok(Box::new(super::dbus::Live::user()?)),
        _ => Ok(Box::new(Offline::new(layout.root()))),
    }
}
