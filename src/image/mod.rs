//! Images before they reach the store: references, registries and archives,
//! and the tar filter every layer passes through.

pub mod archive;
pub mod blob;
pub mod layer;
pub mod limits;
pub mod manifest;
pub mod manifest_get;
pub mod reference;
pub mod regconf;
pub mod registry;
