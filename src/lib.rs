//! berth: run OCI images as first-class systemd services.
//!
//! Module index:
//! - [`error`]: the crate error, its kinds and the stable exit codes.
//! - [`image`]: references, registry client, archives and the layer tar filter.
//! - [`store`]: the OSTree repository: layer commits, merged image commits, checkout, prune.
//! - [`progress`]: events the library reports while it works; `cli` renders them.
//! - [`pull`]: the pull pipeline from reference to image commit.
//! - [`cli`]: clap definitions and one function per verb.

pub mod cli;
pub mod error;
pub mod image;
pub mod progress;
pub mod pull;
pub mod store;

pub use error::{Error, ErrorKind, Result};
