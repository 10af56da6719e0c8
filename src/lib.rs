//! berth: run OCI images as first-class systemd services.
//!
//! Module index:
//! - [`error`]: the crate error, its kinds and the stable exit codes.
//! - [`image`]: references, registry client, archives and the layer tar filter.
//! - [`store`]: the OSTree repository: layer commits, merged image commits, checkout, prune.
//! - [`layout`]: where berth keeps things for `--system` (below `--root`) and `--user`.
//! - [`logging`]: the lean logging set-up of the runtime verbs.
//! - [`progress`]: events the library reports while it works; `cli` renders them.
//! - [`pull`]: the pull pipeline from reference to image commit.
//! - [`rootfs`]: the one root-relative file layer: every path below `--root` resolved inside it.
//! - [`runtime`]: `berth run`: the bundled OCI runtime (libcontainer) or crun/runc, notify relay, signals.
//! - [`template`]: image templates (`$VAR`), the variables of an install, per-file escaping.
//! - [`systemd`]: unit and container names, unit text, ownership marker, offline enablement.
//! - [`deploy`]: `berth install`/`uninstall`/`list`: render, write, enable, in one transaction.
//! - [`trust`]: the containers policy and image signatures, checked before import.
//! - [`cli`]: clap definitions and one function per verb.

pub mod cli;
pub mod deploy;
pub mod error;
pub mod image;
pub mod layout;
pub mod logging;
pub mod manifest;
pub mod progress;
pub mod pull;
pub mod rootfs;
pub mod runtime;
pub mod store;
pub mod systemd;
pub mod template;
pub mod trust;

pub use error::{Error, ErrorKind, Result};
