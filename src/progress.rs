//! Progress events: the library reports what it is doing, the CLI decides how
//! to show it (bars on a terminal, JSON lines with `--json`, a line per milestone
//! otherwise, e.g. in the journal of berth-apply.service).

use serde::Serialize;

/// Something worth telling the user while an operation runs.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The manifest was resolved; `layers` will be fetched unless present.
    Resolved {
        /// The reference being pulled.
        reference: String,
        /// Manifest digest.
        digest: String,
        /// Number of layers in the image.
        layers: usize,
        /// Total compressed bytes of the layers that must be fetched.
        to_fetch: u64,
    },
    /// A layer download started.
    LayerStarted {
        /// Layer (blob) digest.
        digest: String,
        /// Blob size from the descriptor.
        size: u64,
    },
    /// Bytes of a layer arrived (cumulative count for this layer).
    LayerBytes {
        /// Layer digest.
        digest: String,
        /// Bytes received so far.
        bytes: u64,
    },
    /// A download failed and will be retried.
    Retry {
        /// What is retried (URL or digest).
        what: String,
        /// Attempt number starting at 1.
        attempt: u32,
        /// Why.
        reason: String,
    },
    /// A layer was imported into the store (or found already there).
    LayerStored {
        /// Layer digest.
        digest: String,
        /// Whether it had to be fetched.
        fetched: bool,
    },
    /// The merged image commit was written.
    Committed {
        /// OSTree commit checksum.
        commit: String,
    },
    /// `berth apply` finished a step of one manifest entry.
    Entry {
        /// The container.
        name: String,
        /// install | update | reconfigure | remove.
        action: String,
        /// staged (pulled and rendered) | switched | put back.
        step: String,
    },
}

/// Receives progress events; must be cheap and must not fail.
pub trait Progress: Send + Sync {
    /// Handle one event.
    fn event(&self, event: Event);
}

/// Discards every event.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Progress for Silent {
    fn event(&self, _event: Event) {}
}
