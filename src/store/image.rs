//! Image commits: the merged tree plus what berth knows about the image
//! (manifest, config, digests, source, pull time) in the commit metadata,
//! under `berth/image/<escaped name>`.

use std::path::Path;

use ostree::glib;
use ostree::prelude::*;
use serde::Serialize;

use super::{merge, ot, refs, Store, StoreError, NOCANCEL};
use crate::image::manifest::{Fetched, LayerInfo};
use crate::trust::source::TrustRecord;
use crate::Error;

const META_MANIFEST: &str = "berth.manifest";
const META_MANIFEST_DIGEST: &str = "berth.manifest-digest";
const META_INDEX_DIGEST: &str = "berth.index-digest";
const META_CONFIG: &str = "berth.config";
const META_SOURCE: &str = "berth.source";
const META_PULLED: &str = "berth.pulled";
const META_LAYERS: &str = "berth.layers";
const META_TRUST: &str = "berth.trust";

/// What the store records about an image.
#[derive(Debug, Clone, Serialize)]
pub struct ImageRecord {
    /// The name it is stored under (canonical reference text).
    pub reference: String,
    /// The merged commit.
    pub commit: String,
    /// Manifest digest.
    pub digest: String,
    /// Index digest, when chosen from an index.
    pub index_digest: Option<String>,
    /// Config digest (image ID).
    pub image_id: String,
    /// Raw manifest JSON.
    #[serde(skip)]
    pub manifest: String,
    /// Raw config JSON.
    #[serde(skip)]
    pub config: String,
    /// Layers, bottom first.
    pub layers: Vec<LayerInfo>,
    /// Where it was pulled from.
    pub source: String,
    /// Pull time, seconds since the epoch.
    pub pulled: u64,
    /// How the signature policy checked the image when it was stored
    /// (`None` for images stored before berth read the policy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust: Option<TrustRecord>,
}

impl ImageRecord {
    /// Compressed size of config and layers.
    pub fn size(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum::<u64>() + self.config.len() as u64
    }

    /// The parsed config as JSON.
    pub fn config_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.config).unwrap_or(serde_json::Value::Null)
    }

    /// The parsed manifest as JSON.
    pub fn manifest_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.manifest).unwrap_or(serde_json::Value::Null)
    }
}

/// Writes the merged commit of `layer_commits` and points the image ref at
/// it, in one transaction: before it the old image (if any) stands.
pub fn commit_image(
    store: &Store,
    reference: &str,
    source: &str,
    fetched: &Fetched,
    layer_commits: &[String],
    trust: &TrustRecord,
) -> Result<String, Error> {
    let repo = store.repo();
    store.transaction(|| -> Result<String, Error> {
        let tree = merge::merge_layers(store, layer_commits)?;
        let root = repo
            .write_mtree(&tree, NOCANCEL)
            .map_err(ot(|| format!("writing the tree of {reference}")))?
            .downcast::<ostree::RepoFile>()
            .map_err(|_| StoreError::Damaged("write_mtree returned a non-repo file".into()))?;
        let dict = glib::VariantDict::new(None);
        dict.insert(
            META_MANIFEST,
            String::from_utf8_lossy(&fetched.manifest_bytes).as_ref(),
        );
        dict.insert(META_MANIFEST_DIGEST, fetched.manifest_digest.as_str());
        if let Some(i) = &fetched.index_digest {
            dict.insert(META_INDEX_DIGEST, i.as_str());
        }
        dict.insert(
            META_CONFIG,
            String::from_utf8_lossy(&fetched.config_bytes).as_ref(),
        );
        dict.insert(META_SOURCE, source);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        dict.insert(META_PULLED, now);
        let layers = serde_json::to_string(&fetched.layers).unwrap_or_default();
        dict.insert(META_LAYERS, layers.as_str());
        let trust = serde_json::to_string(trust).unwrap_or_default();
        dict.insert(META_TRUST, trust.as_str());
        let commit = repo
            .write_commit_with_time(
                None,
                Some(reference),
                None,
                Some(&dict.end()),
                &root,
                now,
                NOCANCEL,
            )
            .map_err(ot(|| format!("committing {reference}")))?
            .to_string();
        repo.transaction_set_ref(None, &refs::image_ref(reference), Some(&commit));
        Ok(commit)
    })
}

fn lookup_str(dict: &glib::VariantDict, key: &str) -> Option<String> {
    dict.lookup::<String>(key).ok().flatten()
}

/// Reads the record of the image commit `commit` stored as `reference`.
pub fn read_record(store: &Store, reference: &str, commit: &str) -> Result<ImageRecord, Error> {
    let (v, _) = store
        .repo()
        .load_commit(commit)
        .map_err(ot(|| format!("loading image commit of {reference}")))?;
    let dict = glib::VariantDict::new(Some(&v.child_value(0)));
    let get = |k: &str| {
        lookup_str(&dict, k)
            .ok_or_else(|| StoreError::Damaged(format!("image {reference} lacks {k}")))
    };
    let manifest = get(META_MANIFEST)?;
    let config = get(META_CONFIG)?;
    let layers: Vec<LayerInfo> = serde_json::from_str(&get(META_LAYERS)?)
        .map_err(|e| StoreError::Damaged(format!("image {reference}: layer list: {e}")))?;
    let image_id = serde_json::from_str::<serde_json::Value>(&manifest)
        .ok()
        .and_then(|m| m["config"]["digest"].as_str().map(str::to_string))
        .unwrap_or_default();
    Ok(ImageRecord {
        reference: reference.to_string(),
        commit: commit.to_string(),
        digest: get(META_MANIFEST_DIGEST)?,
        index_digest: lookup_str(&dict, META_INDEX_DIGEST),
        image_id,
        manifest,
        config,
        layers,
        source: get(META_SOURCE)?,
        pulled: dict.lookup::<u64>(META_PULLED).ok().flatten().unwrap_or(0),
        trust: lookup_str(&dict, META_TRUST).and_then(|t| serde_json::from_str(&t).ok()),
    })
}

/// The image stored as `reference`, if any.
pub fn find(store: &Store, reference: &str) -> Result<Option<ImageRecord>, Error> {
    match store.resolve(&refs::image_ref(reference))? {
        Some(commit) => Ok(Some(read_record(store, reference, &commit)?)),
        None => Ok(None),
    }
}

/// Every image in the store, sorted by reference.
pub fn list(store: &Store) -> Result<Vec<ImageRecord>, Error> {
    let mut out = Vec::new();
    for (r, commit) in store.refs_with_prefix(refs::IMAGE_PREFIX)? {
        let Some(name) = refs::image_name(&r) else {
            tracing::warn!("ignoring ref {r}: not a berth image name");
            continue;
        };
        out.push(read_record(store, &name, &commit)?);
    }
    Ok(out)
}

/// Checks the image out read-only-by-contract into `dest` (which must not
/// exist): every file is a hardlink to the store's object.
pub fn checkout(store: &Store, commit: &str, dest: &Path) -> Result<(), Error> {
    if dest.symlink_metadata().is_ok() {
        return Err(StoreError::Destination {
            path: dest.to_path_buf(),
            detail: "already exists; choose a new directory".into(),
        }
        .into());
    }
    let mode = if store.is_bare() {
        ostree::RepoCheckoutMode::None
    } else {
        ostree::RepoCheckoutMode::User
    };
    let opts = ostree::RepoCheckoutAtOptions {
        mode,
        no_copy_fallback: true,
        process_whiteouts: false,
        ..Default::default()
    };
    store
        .repo()
        .checkout_at(Some(&opts), libc::AT_FDCWD, dest, commit, NOCANCEL)
        .map_err(ot(|| format!("checking out into {}", dest.display())))?;
    Ok(())
}
