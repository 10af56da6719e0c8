//! The crate error and its exit codes.
//!
//! Every module has its own `thiserror` enum whose variants carry the thing
//! they are about; [`Error`] gathers them and [`Error::kind`] maps each to one
//! of the stable exit codes below (documented in README.md and `berth --help`).
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | done, including "nothing to change" |
//! | 1 | the operation failed; the previous state stands |
//! | 2 | usage or invalid input: reference, name, manifest, template value |
//! | 3 | not found: container, image or unit |
//! | 4 | conflict: name taken, image in use, another berth holds the lock |
//! | 5 | registry or network; retrying may help |
//! | 6 | integrity: digest mismatch, hostile layer, damaged store, an image the signature policy refuses |

use crate::deploy::DeployError;
use crate::image::{layer::LayerError, reference::ReferenceError, registry::RegistryError};
use crate::runtime::RuntimeError;
use crate::store::StoreError;

/// What kind of failure an error is; decides the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The operation failed; the previous state stands (exit 1).
    Failed,
    /// Usage or invalid input (exit 2).
    Usage,
    /// Not found: container, image or unit (exit 3).
    NotFound,
    /// Conflict: name taken, image in use, lock held (exit 4).
    Conflict,
    /// Registry or network; retrying may help (exit 5).
    Network,
    /// Integrity: digest mismatch, hostile layer, damaged store (exit 6).
    Integrity,
}

impl ErrorKind {
    /// The process exit code for this kind.
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::Failed => 1,
            ErrorKind::Usage => 2,
            ErrorKind::NotFound => 3,
            ErrorKind::Conflict => 4,
            ErrorKind::Network => 5,
            ErrorKind::Integrity => 6,
        }
    }
}

/// The exit-code table as printed in `berth --help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  done (also: nothing to change)
  1  the operation failed; the previous state stands
  2  usage or invalid input (reference, name, manifest, value)
  3  not found (image, container, unit)
  4  conflict (image in use, name taken, lock held, footprint grows)
  5  registry or network error; retrying may help
  6  integrity (digest mismatch, hostile layer, damaged store, signature policy)";

/// Any error the berth library returns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A malformed or unresolvable image reference.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// Talking to a registry or reading an archive failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A layer could not be read or was hostile.
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// The OSTree store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `berth run`/`exec`/`kill`: a bad bundle, a busy ID, a runtime failure.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// `berth install`/`uninstall`/`list`: names, values, templates, files.
    #[error(transparent)]
    Deploy(#[from] DeployError),
    /// `berth run-once`, and `install` of a run-once image.
    #[error(transparent)]
    RunOnce(#[from] crate::deploy::run_once::RunOnceError),
    /// `--user` refused or its directories unknown.
    #[error(transparent)]
    Layout(#[from] crate::layout::LayoutError),
    /// `berth apply`/`diff`: the manifest.
    #[error(transparent)]
    Manifest(#[from] crate::manifest::ManifestError),
    /// A path below the root could not be used (a planted symlink, a loop, I/O).
    #[error(transparent)]
    Root(#[from] crate::rootfs::RootError),
    /// The signature policy could not be read or is invalid.
    #[error(transparent)]
    Policy(#[from] crate::trust::policy::PolicyError),
    /// A registries.d file (where signatures live) could not be used.
    #[error(transparent)]
    RegistriesD(#[from] crate::trust::registries_d::RegistriesDError),
    /// The signature policy refused the image.
    #[error("{refusal} (policy {policy}, scope {scope}); nothing of the image was stored")]
    Trust {
        /// The policy file (or `provisioning manifest`).
        policy: String,
        /// The scope whose requirements applied.
        scope: String,
        /// The requirement not met (not a `source`: its text is already
        /// the start of this message, and `{:#}` would print it twice).
        refusal: Box<crate::trust::verify::TrustError>,
    },
    /// `berth apply`: one entry's install, update or removal failed.
    #[error("{file}: container {name:?}: {action} failed: {source}")]
    InEntry {
        /// The manifest file.
        file: String,
        /// The container.
        name: String,
        /// install, update, reconfigure, remove.
        action: String,
        /// Cause; its kind is the exit code.
        source: Box<Error>,
    },
}

impl Error {
    /// The exit-code kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Reference(_) => ErrorKind::Usage,
            Error::Registry(e) => e.kind(),
            Error::Layer(_) => ErrorKind::Integrity,
            Error::Store(e) => e.kind(),
            Error::Runtime(e) => e.kind(),
            Error::Deploy(e) => e.kind(),
            Error::RunOnce(e) => e.kind(),
            Error::Root(e) => e.kind(),
            Error::Manifest(_) | Error::Layout(_) | Error::Policy(_) => ErrorKind::Usage,
            Error::RegistriesD(e) => e.kind(),
            // A refusal is 6; an unreadable key 2; a lookaside that could
            // not be read says why (network, auth…).
            Error::Trust { refusal, .. } => refusal.kind(),
            Error::InEntry { source, .. } => source.kind(),
        }
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
