//! The service manager berth talks to. Only [`Offline`] exists so far: it
//! writes the enablement symlinks `systemctl --root=DIR enable` would write
//! and knows no unit state. A D-Bus manager (reload, enable, start, state)
//! will implement the same trait.

use std::path::{Path, PathBuf};

use super::{Install, Symlink, UnitName};

/// What install and uninstall ask of the service manager.
pub trait Manager {
    /// The symlinks (paths as seen inside the root) that enable `unit`,
    /// whose text is `text`, in `unit_dir`. Nothing is changed; the caller
    /// creates them in its transaction.
    fn enable_plan(
        &self,
        unit: &UnitName,
        text: &str,
        unit_dir: &str,
    ) -> Result<Vec<Symlink>, super::UnitError>;
    /// Reloads the manager's view of unit files (a no-op offline).
    fn reload(&self) -> std::io::Result<()>;
    /// The unit's active state, or `unknown`.
    fn unit_state(&self, unit: &UnitName) -> String;
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

    fn reload(&self) -> std::io::Result<()> {
        Ok(())
    }

    fn unit_state(&self, _unit: &UnitName) -> String {
        "unknown".into()
    }
}
