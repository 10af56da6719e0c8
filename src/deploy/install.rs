//! `berth install`: plan every file and link first (nothing changes), then
//! apply the plan in a [`Transaction`] whose commit point is the `NAME`
//! symlink.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::plan::{plan, Plan};
use super::recover::{check_free, recover, tmp_of};
use super::txn::Transaction;
use super::{containers_dir, failpoint, in_root, io_err, sha256, DeployError, Info, WrittenFile};
use crate::image::registry::{RegistryError, RemoteOptions};
use crate::image::{reference, regconf};
use crate::progress::Progress;
use crate::pull::{self, PullRequest};
use crate::store::image::{self, ImageRecord};
use crate::store::{lock_root, Store, StoreError};
use crate::systemd::manager::Manager;
use crate::systemd::ContainerName;
use crate::template::{SetValue, ValuesError};
use crate::Error;

/// What to install.
#[derive(Debug, Clone)]
pub struct InstallRequest {
    /// `--name`; derived from the image when `None`.
    pub name: Option<String>,
    /// The image reference as given.
    pub image: String,
    /// `--set KEY=VALUE` arguments, in order.
    pub set: Vec<String>,
    /// The `--runtime` value (the `RUNTIME` default).
    pub runtime: String,
    /// The berth executable the unit runs (`ExecStart=BERTH run NAME`).
    pub berth: PathBuf,
    /// Plan only; change nothing.
    pub display: bool,
}

/// Installs (or with `display`, only plans) `req` below `root`.
pub fn install(
    root: &Path,
    req: &InstallRequest,
    manager: &dyn Manager,
    progress: Arc<dyn Progress>,
) -> Result<Plan, Error> {
    let name = ContainerName::parse(&match &req.name {
        Some(n) => n.clone(),
        None => default_name(&req.image),
    })
    .map_err(DeployError::from)?;
    let set = req
        .set
        .iter()
        .map(|s| s.parse::<SetValue>())
        .collect::<Result<Vec<_>, ValuesError>>()
        .map_err(DeployError::from)?;
    // Before the lock: pull takes it itself.
    let record = ensure_image(root, &req.image, req.display, progress)?;
    let _lock = lock_root(root)?;
    let store = Store::open(root, false)?
        .ok_or_else(|| StoreError::Damaged("store missing after pull".into()))?;
    if !req.display {
        recover(root, &name)?;
    }
    check_free(root, &name)?;
    let plan = plan(root, &store, &record, &name, &set, req, manager)?;
    if !req.display {
        apply(root, &store, &plan, manager)?;
    }
    Ok(plan)
}

/// The name an image installs as without `--name`: the last path component
/// of its repository, without tag or digest.
pub fn default_name(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    let last = last.split('@').next().unwrap_or(last);
    last.split(':').next().unwrap_or(last).to_string()
}

fn ensure_image(
    root: &Path,
    input: &str,
    display: bool,
    progress: Arc<dyn Progress>,
) -> Result<ImageRecord, Error> {
    let conf = regconf::load().map_err(RegistryError::from)?;
    let candidates = reference::resolve(input, &conf.unqualified_search)?;
    if let Some(store) = Store::open(root, false)? {
        for c in &candidates {
            if let Some(r) = image::find(&store, &c.to_string())? {
                return Ok(r);
            }
        }
    }
    if display {
        return Err(StoreError::ImageNotFound {
            name: format!("{input} (--display does not pull; run `berth pull {input}` first)"),
        }
        .into());
    }
    let req = PullRequest {
        input: input.to_string(),
        platform: None,
        remote: RemoteOptions::default(),
        jobs: 3,
    };
    let outcome = pull::pull(root, &req, progress)?;
    let store = Store::open(root, false)?
        .ok_or_else(|| StoreError::Damaged("store missing after pull".into()))?;
    image::find(&store, &outcome.reference)?.ok_or_else(|| {
        StoreError::ImageNotFound {
            name: outcome.reference,
        }
        .into()
    })
}

fn apply(root: &Path, store: &Store, plan: &Plan, manager: &dyn Manager) -> Result<(), Error> {
    let mut txn = Transaction::new();
    let cdir = containers_dir(root);
    txn.create_dir_all(&cdir)?;
    let dep = in_root(root, &plan.deployment);
    std::fs::create_dir(&dep).map_err(io_err(&dep))?;
    txn.created(&dep);
    failpoint("checkout")?;
    image::checkout(store, &plan.image.commit, &dep.join("rootfs"))?;
    let mut written = Vec::new();
    let mut staged = Vec::new();
    for f in &plan.files {
        let path = in_root(root, &f.path);
        let tmp = tmp_of(&path);
        if let Some(parent) = path.parent() {
            txn.create_dir_all(parent)?;
        }
        txn.write_new(&tmp, f.content.as_bytes(), 0o644)?;
        staged.push((tmp, path));
        written.push(WrittenFile {
            path: f.path.clone(),
            sha256: sha256(f.content.as_bytes()),
        });
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let info = Info {
        name: plan.name.clone(),
        deployment: format!("{}.0", plan.name),
        image: plan.image.clone(),
        values: plan.values.clone(),
        files: written,
        links: plan.links.iter().map(|(l, _)| l.clone()).collect(),
        installed: now,
    };
    let info_json = serde_json::to_string_pretty(&info).map_err(|e| DeployError::Invalid {
        file: "info.json".into(),
        detail: e.to_string(),
    })?;
    txn.write_new(&dep.join("info.json"), info_json.as_bytes(), 0o644)?;
    failpoint("stage")?;
    for (tmp, path) in &staged {
        txn.rename_new(tmp, path)?;
        sync_parent(path)?;
    }
    failpoint("files")?;
    for (link, target) in &plan.links {
        let link = in_root(root, link);
        if let Some(parent) = link.parent() {
            txn.create_dir_all(parent)?;
        }
        std::os::unix::fs::symlink(target, &link).map_err(io_err(&link))?;
        txn.created(&link);
    }
    failpoint("enable")?;
    let tmp_link = cdir.join(format!("{}.tmp", plan.name));
    std::os::unix::fs::symlink(format!("{}.0", plan.name), &tmp_link).map_err(io_err(&tmp_link))?;
    txn.created(&tmp_link);
    txn.rename_new(&tmp_link, &cdir.join(&plan.name))?;
    sync_parent(&tmp_link)?;
    failpoint("commit")?;
    manager.reload().map_err(DeployError::from)?;
    txn.commit();
    Ok(())
}

/// fsyncs the directory holding `path`, so a rename in it is durable.
fn sync_parent(path: &Path) -> Result<(), DeployError> {
    let Some(dir) = path.parent() else {
        return Ok(());
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}
