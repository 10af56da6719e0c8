//! `berth pull`: reference → manifest → missing layers fetched in parallel and
//! imported as they arrive → merged image commit.
//!
//! The registry side is async (tokio); the store side is blocking libostree
//! on this thread. Blobs land in `repo/tmp/berth-pull-<pid>/` and are deleted
//! once imported; a dead pull's directory is removed by the next one.

// Blobs of a pull in the store's tmp/ (this process's own, under the lock).
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};

use serde::Serialize;

use crate::image::archive;
use crate::image::limits::{self, SizeBudget};
use crate::image::manifest::{self, Fetched, LayerInfo, Platform};
use crate::image::reference::{self, ImageRef};
use crate::image::regconf::{self, RegistriesConf};
use crate::image::registry::{RegistryError, Remote, RemoteOptions};
use crate::layout::Layout;
use crate::progress::{Event, Progress};
use crate::store::{image, import, refs, Store, StoreError};
use crate::trust::check::{Checked, PullPolicy, RegistryCheck};
use crate::trust::signatures::FixedSignatures;
use crate::trust::source::{PolicyOptions, TrustRecord};
use crate::{Error, ErrorKind};

/// What to pull and how.
#[derive(Debug, Clone)]
pub struct PullRequest {
    /// The reference as the user wrote it.
    pub input: String,
    /// Platform to choose from an index; the host's when `None`.
    pub platform: Option<Platform>,
    /// Registry options.
    pub remote: RemoteOptions,
    /// Parallel layer downloads.
    pub jobs: usize,
    /// The signature policy flags (and a manifest entry's extra key).
    pub policy: PolicyOptions,
}

/// One layer in a pull's result.
#[derive(Debug, Clone, Serialize)]
pub struct LayerOutcome {
    /// Blob digest.
    pub digest: String,
    /// Uncompressed digest.
    pub diff_id: String,
    /// Blob size.
    pub size: u64,
    /// Whether it was fetched (false: already in the store).
    pub fetched: bool,
}

/// What a pull did.
#[derive(Debug, Clone, Serialize)]
pub struct PullOutcome {
    /// Canonical reference the image is stored under.
    pub reference: String,
    /// Name without tag/digest.
    pub name: String,
    /// Tag, if any.
    pub tag: Option<String>,
    /// Manifest digest.
    pub digest: String,
    /// Config digest.
    pub image_id: String,
    /// Merged commit.
    pub commit: String,
    /// False when the store already had this exact image.
    pub changed: bool,
    /// Layers, bottom first.
    pub layers: Vec<LayerOutcome>,
    /// How the signature policy checked the image.
    pub trust: TrustRecord,
}

enum Source {
    Remote(Remote),
    Local(archive::Local),
}

/// Pulls an image into the store below `root`.
pub fn pull(
    layout: &Layout,
    req: &PullRequest,
    progress: Arc<dyn Progress>,
) -> Result<PullOutcome, Error> {
    let conf = regconf::load().map_err(RegistryError::from)?;
    let candidates = reference::resolve(&req.input, &conf.unqualified_search)?;
    let platform = req.platform.clone().unwrap_or_else(Platform::host);
    let store =
        Store::open(layout, true)?.ok_or_else(|| StoreError::Damaged("store missing".into()))?;
    let _lock = store.lock()?;
    clean_stale_tmp(&store);
    let trust = PullPolicy::load(layout, &req.policy, &req.input)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| StoreError::Io {
            path: PathBuf::from("tokio runtime"),
            source: e,
        })?;
    let mut last_err = None;
    for (i, candidate) in candidates.iter().enumerate() {
        match pull_one(
            &store, &rt, &conf, candidate, &platform, req, &trust, &progress,
        ) {
            Ok(o) => return Ok(o),
            Err(e) if e.kind() == ErrorKind::NotFound && i + 1 < candidates.len() => {
                tracing::info!("{candidate}: {e}; trying the next search registry");
                last_err = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| StoreError::Damaged("no candidates".into()).into()))
}

#[allow(clippy::too_many_arguments)]
fn pull_one(
    store: &Store,
    rt: &tokio::runtime::Runtime,
    conf: &RegistriesConf,
    r: &ImageRef,
    platform: &Platform,
    req: &PullRequest,
    trust: &PullPolicy<'_>,
    progress: &Arc<dyn Progress>,
) -> Result<PullOutcome, Error> {
    let shown = r.to_string();
    let existing = image::find(store, &shown)?;
    let (source, fetched, record) = match r {
        ImageRef::Registry(rr) => {
            let known = plain_http_registries(store);
            let mut opts = req.remote.clone();
            opts.known_plain_http = known.contains(&rr.registry);
            let mut remote = Remote::new(rr, &opts, conf)?;
            let tag_or_digest = rr
                .digest
                .clone()
                .or_else(|| rr.tag.clone())
                .unwrap_or_else(|| "latest".into());
            let (bytes, digest, index) =
                rt.block_on(remote.fetch_manifest(&shown, &tag_or_digest, platform))?;
            if remote.is_plain_http() != opts.known_plain_http {
                record_plain_http(store, known, &rr.registry, remote.is_plain_http());
            }
            // The manifest is what is signed: check it (and the index it
            // was chosen from) before anything of the image is stored.
            let registry = RegistryCheck {
                policy: trust,
                rt,
                remote: &remote,
                rr,
                r,
                shown: &shown,
            };
            let index_ref = index.as_ref().map(|(b, d)| (b.as_slice(), d.as_str()));
            let record = registry.check(&bytes, &digest, index_ref)?;
            let index_digest = index.map(|(_, d)| d);
            if let Some(old) = &existing {
                if old.digest == digest && layers_present(store, &old.layers)? {
                    return Ok(unchanged(r, old, record));
                }
            }
            let m = manifest::parse_manifest(&shown, &bytes)?;
            let config = rt.block_on(remote.fetch_config(
                &shown,
                m.config().digest().as_ref(),
                m.config().size(),
            ))?;
            let fetched = manifest::assemble(&shown, bytes, digest, index_digest, m, config)?;
            (Source::Remote(remote), fetched, record)
        }
        _ => {
            let (local, fetched) = archive::resolve(r, platform)?;
            let record = trust.check(
                r,
                &shown,
                Checked {
                    bytes: &fetched.manifest_bytes,
                    digest: &fetched.manifest_digest,
                    instance_of: None,
                },
                &|| {
                    // An oci: layout or archive carries no signatures.
                    Ok(Box::new(FixedSignatures::default()))
                },
            )?;
            if let Some(old) = &existing {
                if old.digest == fetched.manifest_digest && layers_present(store, &old.layers)? {
                    return Ok(unchanged(r, old, record));
                }
            }
            (Source::Local(local), fetched, record)
        }
    };
    let budget = SizeBudget::new(&shown, req.remote.limits);
    charge_stored_layers(store, &fetched.layers, &budget)?;
    let to_fetch = check_declared_sizes(&shown, &missing(store, &fetched.layers)?, &budget)?;
    progress.event(Event::Resolved {
        reference: shown.clone(),
        digest: fetched.manifest_digest.clone(),
        layers: fetched.layers.len(),
        to_fetch,
    });
    let fetched_flags = match source {
        Source::Remote(remote) => {
            let pipeline = Pipeline {
                image: &shown,
                budget: &budget,
                jobs: req.jobs,
            };
            fetch_remote(store, rt, remote, &fetched, progress, pipeline)?
        }
        Source::Local(local) => fetch_local(store, &local, &fetched, progress, &shown, &budget)?,
    };
    let mut layer_commits = Vec::new();
    for l in &fetched.layers {
        let c = store
            .resolve(&refs::layer_ref(&l.diff_id).map_err(|e| StoreError::Damaged(e.to_string()))?)?
            .ok_or_else(|| {
                StoreError::Damaged(format!("layer {} vanished during the pull", l.digest))
            })?;
        layer_commits.push(c);
    }
    let commit = image::commit_image(store, &shown, &shown, &fetched, &layer_commits, &record)?;
    progress.event(Event::Committed {
        commit: commit.clone(),
    });
    Ok(outcome(r, &fetched, commit, &fetched_flags, record))
}

/// Refuses layers whose blobs alone pass the caps (a blob holds at least
/// about as many bytes as it decompresses to, and the download is bounded by
/// the declared size, so this bounds the disk a pull uses before it starts).
/// Returns the bytes to fetch.
fn check_declared_sizes(
    image: &str,
    missing: &[LayerInfo],
    budget: &SizeBudget,
) -> Result<u64, Error> {
    let caps = budget.limits();
    let mut total = 0u64;
    for l in missing {
        total = total.saturating_add(l.size);
        let (what, size, limit) = if l.size > caps.layer {
            (
                format!("layer {} (compressed)", l.digest),
                l.size,
                caps.layer,
            )
        } else if total > caps.image {
            (
                "the image's layers (compressed)".to_string(),
                total,
                caps.image,
            )
        } else {
            continue;
        };
        let flag = if limit == caps.layer && size == l.size {
            "--max-layer-size"
        } else {
            "--max-image-size"
        };
        return Err(RegistryError::TooLarge {
            image: image.to_string(),
            what,
            size,
            limit: format!("{} ({flag})", limits::format_size(limit)),
        }
        .into());
    }
    Ok(total)
}

/// Charges the layers already in the store to the image's budget (each
/// diff_id once), so the image cap covers the whole image.
fn charge_stored_layers(
    store: &Store,
    layers: &[LayerInfo],
    budget: &SizeBudget,
) -> Result<(), Error> {
    let mut seen = std::collections::BTreeSet::new();
    for l in layers {
        if !seen.insert(l.diff_id.as_str()) {
            continue;
        }
        let r = refs::layer_ref(&l.diff_id).map_err(|e| StoreError::Damaged(e.to_string()))?;
        if let Some(commit) = store.resolve(&r)? {
            // Layers stored before berth recorded sizes count as empty.
            let size = import::stored_size(store, &commit)?.unwrap_or(0);
            budget.charge_stored(&l.digest, size)?;
        }
    }
    Ok(())
}

/// What the downloads and imports of one pull share.
#[derive(Clone, Copy)]
struct Pipeline<'a> {
    /// The image, as errors name it.
    image: &'a str,
    /// The decompressed bytes the pull may still write.
    budget: &'a SizeBudget,
    /// Parallel downloads.
    jobs: usize,
}

fn unchanged(r: &ImageRef, old: &image::ImageRecord, trust: TrustRecord) -> PullOutcome {
    PullOutcome {
        reference: r.to_string(),
        name: r.name(),
        tag: r.tag().map(str::to_string),
        digest: old.digest.clone(),
        image_id: old.image_id.clone(),
        commit: old.commit.clone(),
        changed: false,
        layers: old
            .layers
            .iter()
            .map(|l| LayerOutcome {
                digest: l.digest.clone(),
                diff_id: l.diff_id.clone(),
                size: l.size,
                fetched: false,
            })
            .collect(),
        trust,
    }
}

fn outcome(
    r: &ImageRef,
    f: &Fetched,
    commit: String,
    fetched: &[bool],
    trust: TrustRecord,
) -> PullOutcome {
    PullOutcome {
        reference: r.to_string(),
        name: r.name(),
        tag: r.tag().map(str::to_string),
        digest: f.manifest_digest.clone(),
        image_id: f.config_digest.clone(),
        commit,
        changed: true,
        layers: f
            .layers
            .iter()
            .zip(fetched)
            .map(|(l, &fetched)| LayerOutcome {
                digest: l.digest.clone(),
                diff_id: l.diff_id.clone(),
                size: l.size,
                fetched,
            })
            .collect(),
        trust,
    }
}

fn layer_present(store: &Store, l: &LayerInfo) -> Result<bool, Error> {
    let r = refs::layer_ref(&l.diff_id).map_err(|e| StoreError::Damaged(e.to_string()))?;
    Ok(store.resolve(&r)?.is_some())
}

fn layers_present(store: &Store, layers: &[LayerInfo]) -> Result<bool, Error> {
    for l in layers {
        if !layer_present(store, l)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Layers not yet in the store, each diff_id once.
fn missing(store: &Store, layers: &[LayerInfo]) -> Result<Vec<LayerInfo>, Error> {
    let mut out: Vec<LayerInfo> = Vec::new();
    for l in layers {
        if !layer_present(store, l)? && !out.iter().any(|o| o.diff_id == l.diff_id) {
            out.push(l.clone());
        }
    }
    Ok(out)
}

fn fetched_flags(layers: &[LayerInfo], missing: &[LayerInfo]) -> Vec<bool> {
    layers
        .iter()
        .map(|l| missing.iter().any(|m| m.diff_id == l.diff_id))
        .collect()
}

fn fetch_local(
    store: &Store,
    local: &archive::Local,
    fetched: &Fetched,
    progress: &Arc<dyn Progress>,
    image: &str,
    budget: &SizeBudget,
) -> Result<Vec<bool>, Error> {
    let missing = missing(store, &fetched.layers)?;
    for l in &missing {
        progress.event(Event::LayerStarted {
            digest: l.digest.clone(),
            size: l.size,
        });
        let mut blob = local.open_blob(image, &l.digest, l.size)?;
        let imported = import::import_layer(
            store,
            &mut blob.reader,
            &l.digest,
            false,
            &l.diff_id,
            budget,
        );
        if let Err(e) = imported {
            // A blob that differs from its descriptor often fails to
            // decompress first; its digest is the cause to report.
            blob.verdict()?;
            return Err(e);
        }
        progress.event(Event::LayerStored {
            digest: l.digest.clone(),
            fetched: true,
        });
    }
    Ok(fetched_flags(&fetched.layers, &missing))
}

fn tmp_dir(store: &Store) -> PathBuf {
    store
        .repo_path()
        .join(format!("tmp/berth-pull-{}", std::process::id()))
}

/// Removes blob directories of pulls that died (we hold the lock, so no
/// other pull is running).
fn clean_stale_tmp(store: &Store) {
    let Ok(entries) = std::fs::read_dir(store.repo_path().join("tmp")) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with("berth-pull-") {
            if let Err(err) = std::fs::remove_dir_all(e.path()) {
                tracing::warn!("cannot remove {}: {err}", e.path().display());
            }
        }
    }
}

fn fetch_remote(
    store: &Store,
    rt: &tokio::runtime::Runtime,
    remote: Remote,
    fetched: &Fetched,
    progress: &Arc<dyn Progress>,
    pipeline: Pipeline<'_>,
) -> Result<Vec<bool>, Error> {
    let missing = missing(store, &fetched.layers)?;
    if missing.is_empty() {
        return Ok(fetched_flags(&fetched.layers, &missing));
    }
    let dir = tmp_dir(store);
    std::fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
        path: dir.clone(),
        source,
    })?;
    let result = download_and_import(store, rt, remote, &missing, &dir, progress, pipeline);
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        tracing::warn!("cannot remove {}: {e}", dir.display());
    }
    result?;
    Ok(fetched_flags(&fetched.layers, &missing))
}

fn download_and_import(
    store: &Store,
    rt: &tokio::runtime::Runtime,
    remote: Remote,
    missing: &[LayerInfo],
    dir: &Path,
    progress: &Arc<dyn Progress>,
    pipeline: Pipeline<'_>,
) -> Result<(), Error> {
    let remote = Arc::new(remote);
    let image: Arc<str> = Arc::from(pipeline.image);
    let permits = Arc::new(tokio::sync::Semaphore::new(pipeline.jobs.max(1)));
    let (tx, rx) = mpsc::channel::<Download>();
    let mut handles = Vec::new();
    for l in missing.iter().cloned() {
        let (remote, permits, tx, progress, image) = (
            remote.clone(),
            permits.clone(),
            tx.clone(),
            progress.clone(),
            image.clone(),
        );
        let path = dir.join(l.digest.replace(':', "-"));
        handles.push(rt.spawn(async move {
            let Ok(_permit) = permits.acquire_owned().await else {
                return;
            };
            progress.event(Event::LayerStarted {
                digest: l.digest.clone(),
                size: l.size,
            });
            let res = remote
                .fetch_blob(&image, &l.digest, l.size, &path, progress.as_ref())
                .await;
            let _ = tx.send((l, path, res));
        }));
    }
    drop(tx);
    // Layers are imported as their downloads finish, by up to IMPORTERS
    // threads, each with its own repo handle and transaction (libostree
    // allows concurrent transactions; identical objects are deduplicated on
    // rename). The first error stops the pull; layers already committed stay
    // and a later pull resumes from them.
    let rx = std::sync::Mutex::new(rx);
    let failed: std::sync::Mutex<Option<Error>> = std::sync::Mutex::new(None);
    let workers = IMPORTERS.min(missing.len()).max(1);
    let layout = store.layout();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| import_worker(layout, &rx, &failed, progress, pipeline.budget));
        }
    });
    let err = failed.lock().ok().and_then(|mut f| f.take());
    if let Some(e) = err {
        handles.iter().for_each(|h| h.abort());
        return Err(e);
    }
    Ok(())
}

/// Threads importing layers at once (the host has few cores; I/O bound past 2).
const IMPORTERS: usize = 2;

type Download = (LayerInfo, PathBuf, Result<(), RegistryError>);

fn import_worker(
    layout: &Layout,
    rx: &std::sync::Mutex<mpsc::Receiver<Download>>,
    failed: &std::sync::Mutex<Option<Error>>,
    progress: &Arc<dyn Progress>,
    budget: &SizeBudget,
) {
    let record = |e: Error| {
        if let Ok(mut f) = failed.lock() {
            f.get_or_insert(e);
        }
    };
    let own = match Store::open(layout, false) {
        Ok(Some(s)) => s,
        Ok(None) => return record(StoreError::Damaged("the store vanished".into()).into()),
        Err(e) => return record(e.into()),
    };
    loop {
        if failed.lock().map(|f| f.is_some()).unwrap_or(true) {
            return;
        }
        let next = match rx.lock() {
            Ok(r) => r.recv(),
            Err(_) => return,
        };
        let Ok((l, path, res)) = next else { return };
        if let Err(e) = res {
            return record(e.into());
        }
        let imported = std::fs::File::open(&path)
            .map_err(|source| {
                Error::from(StoreError::Io {
                    path: path.clone(),
                    source,
                })
            })
            .and_then(|file| {
                import::import_layer(&own, file, &l.digest, false, &l.diff_id, budget)
            });
        let _ = std::fs::remove_file(&path);
        if let Err(e) = imported {
            return record(e);
        }
        progress.event(Event::LayerStored {
            digest: l.digest.clone(),
            fetched: true,
        });
    }
}

/// Registries that answered over plain HTTP (when berth was allowed to use
/// it), one per line, below the store; only a hint for the protocol order.
const PLAIN_HTTP_FILE: &str = "plain-http-registries";

fn plain_http_registries(store: &Store) -> Vec<String> {
    let path = store.repo_path().with_file_name(PLAIN_HTTP_FILE);
    std::fs::read_to_string(path)
        .map(|t| t.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Adds or drops `registry`; a failure only costs a slower next pull.
fn record_plain_http(store: &Store, mut known: Vec<String>, registry: &str, plain: bool) {
    known.retain(|k| k != registry);
    if plain {
        known.push(registry.to_string());
    }
    let path = store.repo_path().with_file_name(PLAIN_HTTP_FILE);
    let tmp = path.with_extension("tmp");
    let text: String = known.iter().map(|k| format!("{k}\n")).collect();
    if let Err(e) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &path)) {
        tracing::warn!("{}: {e}", path.display());
    }
}
