//! Images before they reach the store: references, registries and archives,
//! and the tar filter every layer passes through.

// Registry configuration, certificates and archives the operator names: host
// paths, not the --root tree.
#![allow(clippy::disallowed_methods)]

pub mod archive;
pub mod blob;
pub mod layer;
pub mod limits;
pub mod manifest;
pub mod manifest_get;
pub mod reference;
pub mod regconf;
pub mod registry;
