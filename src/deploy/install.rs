//! `berth install`: plan every file and link first (nothing changes), then
//! stage the deployment `NAME.0` and switch the host to it in a journaled
//! [`Transaction`] whose commit point is the `NAME` symlink.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::plan::{plan, Plan, PlanRequest};
use super::recover::{check_free, recover, recover_interrupted};
use super::switch::{switch, HostFile};
use super::txn::Transaction;
use super::{containers_inside, failpoint, DeployError, EntryKind, Info};
use crate::image::limits::Limits;
use crate::image::registry::{RegistryError, RemoteOptions};
use crate::image::{reference, regconf};
use crate::layout::Layout;
use crate::progress::Progress;
use crate::pull::{self, PullRequest};
use crate::rootfs::Root;
use crate::store::image::{self, ImageRecord};
use crate::store::{lock_root, Store, StoreError};
use crate::systemd::manager::{Manager, ManagerError};
use crate::systemd::{ContainerName, UnitName};
use crate::template::{SetValue, ValuesError};
use crate::trust::source::PolicyOptions;
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
    /// Also start the units (`--now`) and wait for the result.
    pub now: bool,
    /// Create the `[Install]` links (the default).
    pub enable: bool,
    /// How hostfs modes reach the host (`--hostfs-modes`).
    pub hostfs_modes: super::hostfs::HostfsModes,
    /// Caps on what pulling the image may decompress to.
    pub limits: Limits,
    /// The signature policy a pull applies.
    pub policy: PolicyOptions,
    /// The operator's health check keys (`--health-*`, a manifest's `health`).
    pub health: crate::runtime::health::source::Overrides,
    /// Containers a manifest entry orders this one after (`after`,
    /// `requires`), recorded for `update --all`'s groups.
    pub after: Vec<String>,
}

/// Parses `--set` arguments.
pub fn parse_set(set: &[String]) -> Result<Vec<SetValue>, DeployError> {
    Ok(set
        .iter()
        .map(|s| s.parse::<SetValue>())
        .collect::<Result<Vec<_>, ValuesError>>()?)
}

/// Installs (or with `display`, only plans) `req` below `root`.
pub fn install(
    layout: &Layout,
    req: &InstallRequest,
    manager: &dyn Manager,
    progress: Arc<dyn Progress>,
) -> Result<Plan, Error> {
    let name = ContainerName::parse(&match &req.name {
        Some(n) => n.clone(),
        None => default_name(&req.image),
    })
    .map_err(DeployError::from)?;
    let set = parse_set(&req.set)?;
    // Before the lock: pull takes it itself.
    let fetch = Fetch {
        display: req.display,
        limits: req.limits,
        policy: req.policy.clone(),
        ..Fetch::default()
    };
    let record = ensure_image(layout, &req.image, fetch, progress)?;
    super::run_once::refuse_install(&req.image, &record)?;
    let _lock = lock_root(layout)?;
    let store = Store::open(layout, false)?
        .ok_or_else(|| StoreError::Damaged("store missing after pull".into()))?;
    if !req.display {
        recover_interrupted(layout, manager)?;
        recover(layout, &name)?;
    }
    check_free(layout, &name)?;
    let preq = PlanRequest {
        name: &name,
        image_name: &req.image,
        set: &set,
        runtime: &req.runtime,
        berth: &req.berth,
        slot: format!("{name}.0"),
        previous: None,
        reset_values: false,
        enable: req.enable,
        hostfs_modes: req.hostfs_modes,
        health: &req.health,
        after: &req.after,
    };
    let plan = plan(layout, &store, &record, &preq, manager)?;
    if req.display {
        return Ok(plan);
    }
    let mut txn = Transaction::journaled(layout)?;
    txn.create_dir_all(&containers_inside(layout))?;
    let mut info = stage(&mut txn, &store, &plan, None)?;
    failpoint("stage")?;
    let switched = switch(
        layout,
        &mut txn,
        name.as_str(),
        None,
        &host_files(&plan),
        &plan.links,
    )?;
    info.dirs = switched.dirs.clone();
    info.files = switched.tracked(&info.files);
    write_info(layout, &info)?;
    failpoint("files")?;
    let mut plan = plan;
    plan.kept = switched.kept;
    plan.shared = switched.shared;
    let active = containers_inside(layout).join(name.as_str());
    let tmp = containers_inside(layout).join(format!(".{name}.tmp"));
    txn.root().remove(&tmp)?;
    txn.symlink(&tmp, Path::new(&plan.slot))?;
    txn.rename_new(&tmp, &active)?;
    txn.root().sync_dir(&containers_inside(layout))?;
    failpoint("commit")?;
    apply_tmpfiles(layout, manager, &info)?;
    manager.reload().map_err(DeployError::from)?;
    failpoint("reload")?;
    if req.now {
        if let Err(e) = start_all(manager, &info) {
            for u in info.units.iter().rev() {
                if let Ok(u) = UnitName::parse(u) {
                    let _ = manager.stop(&u);
                }
            }
            drop(txn);
            let _ = manager.reload();
            return Err(e.into());
        }
    }
    txn.commit();
    Ok(plan)
}

/// Starts what `--now` starts (sockets and timers, else the service) and
/// checks that the service stays up; the error carries the journal tail.
pub fn start_all(manager: &dyn Manager, info: &Info) -> Result<(), DeployError> {
    for u in info.start_units() {
        let unit = UnitName::parse(&u)?;
        manager
            .start(&unit)
            .and_then(|_| {
                if u.ends_with(".service") {
                    settle(manager, &unit, "start")
                } else {
                    Ok(())
                }
            })
            .map_err(|e| with_journal(manager, &unit, e))?;
    }
    Ok(())
}

/// How long a started service must stay up to count as started: a Type=exec
/// or simple service whose process exits at once has its job done already.
pub const SETTLE: std::time::Duration = std::time::Duration::from_millis(1000);

/// Fails when `unit` is not active within [`SETTLE`] of its job finishing.
pub fn settle(manager: &dyn Manager, unit: &UnitName, verb: &str) -> Result<(), ManagerError> {
    let deadline = std::time::Instant::now() + SETTLE;
    loop {
        let state = manager.unit_state(unit);
        if matches!(state.as_str(), "failed" | "inactive" | "deactivating") {
            return Err(ManagerError::Job {
                verb: verb.into(),
                unit: unit.to_string(),
                result: format!("done, but the unit is {state} right after"),
            });
        }
        if std::time::Instant::now() >= deadline {
            // Still activating a second after the job: a process that keeps
            // exiting and being restarted (Restart=on-failure) looks like this.
            if matches!(state.as_str(), "active" | "reloading") {
                return Ok(());
            }
            return Err(ManagerError::Job {
                verb: verb.into(),
                unit: unit.to_string(),
                result: format!("done, but the unit is still {state} a second later"),
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// `e` with the unit's last journal lines appended.
pub fn with_journal(manager: &dyn Manager, unit: &UnitName, e: ManagerError) -> DeployError {
    let lines = manager.journal_tail(unit, 15);
    if lines.is_empty() {
        return e.into();
    }
    DeployError::Failed {
        detail: format!(
            "{e}\nlast journal lines of {unit}:\n  {}",
            lines.join("\n  ")
        ),
    }
}

/// The name an image installs as without `--name`: the last path component
/// of its repository, without tag or digest.
pub fn default_name(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    let last = last.split('@').next().unwrap_or(last);
    last.split(':').next().unwrap_or(last).to_string()
}

/// How [`ensure_image`] may get an image.
#[derive(Debug, Clone, Default)]
pub struct Fetch {
    /// Plan only: never pull, the image must be stored.
    pub display: bool,
    /// Pull even when stored (update: a tag may have moved).
    pub refresh: bool,
    /// Caps on what a pull may decompress to.
    pub limits: Limits,
    /// The signature policy a pull applies.
    pub policy: PolicyOptions,
}

/// The stored image for `input`; pulled when not stored (or always, with
/// `refresh`, as update does: a tag may have moved).
pub fn ensure_image(
    layout: &Layout,
    input: &str,
    fetch: Fetch,
    progress: Arc<dyn Progress>,
) -> Result<ImageRecord, Error> {
    let Fetch {
        display,
        refresh,
        limits,
        policy,
    } = fetch;
    let conf = regconf::load().map_err(RegistryError::from)?;
    let candidates = reference::resolve(input, &conf.unqualified_search)?;
    if !refresh || display {
        if let Some(store) = Store::open(layout, false)? {
            for c in &candidates {
                if let Some(r) = image::find(&store, &c.to_string())? {
                    return Ok(r);
                }
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
        remote: RemoteOptions {
            limits,
            ..RemoteOptions::default()
        },
        jobs: 3,
        policy,
    };
    let outcome = pull::pull(layout, &req, progress)?;
    let store = Store::open(layout, false)?
        .ok_or_else(|| StoreError::Damaged("store missing after pull".into()))?;
    image::find(&store, &outcome.reference)?.ok_or_else(|| {
        StoreError::ImageNotFound {
            name: outcome.reference,
        }
        .into()
    })
}

/// Whether `input` names an image already in the store below `root`.
pub fn is_stored(layout: &Layout, input: &str) -> bool {
    let Ok(conf) = regconf::load() else {
        return false;
    };
    let Ok(candidates) = reference::resolve(input, &conf.unqualified_search) else {
        return false;
    };
    let Ok(Some(store)) = Store::open(layout, false) else {
        return false;
    };
    candidates
        .iter()
        .any(|c| matches!(image::find(&store, &c.to_string()), Ok(Some(_))))
}

/// The host files of a plan.
pub fn host_files(plan: &Plan) -> Vec<HostFile> {
    plan.files
        .iter()
        .map(|f| HostFile {
            path: f.path.clone(),
            content: f.content.clone(),
            mode: f.mode,
            owned: f.owned,
            kind: f.kind,
        })
        .collect()
}

/// Creates the deployment directory of `plan` (recorded in `txn`, so undo
/// removes it whole): the checkout, `config.json` and copies of the host
/// files under `host/` (rollback restores them from there). Returns its
/// info, written by [`write_info`] once the switch has recorded its dirs.
pub fn stage(
    txn: &mut Transaction,
    store: &Store,
    plan: &Plan,
    reuse: Option<&Path>,
) -> Result<Info, Error> {
    let dep = PathBuf::from(&plan.deployment);
    txn.create_dir(&dep, 0o755)?;
    failpoint("checkout")?;
    match reuse {
        // A checkout of the same commit (the replaced slot's): moved, not
        // made again; undo moves it back.
        Some(rootfs) => txn.rename(rootfs, &dep.join("rootfs"))?,
        // libostree writes by path: the deployment directory resolved
        // inside the root (it was just made there).
        None => {
            let host = txn.root().resolve(&dep)?;
            image::checkout(store, &plan.image.commit, &host.join("rootfs"))?
        }
    }
    let root = txn.root();
    if let Some(config) = &plan.config {
        root.write_atomic(&dep.join("config.json"), config.as_bytes(), SECRET_MODE)?;
    }
    if let Some(check) = &plan.health {
        let text = serde_json::to_vec_pretty(check).map_err(|e| DeployError::Invalid {
            file: crate::runtime::health::FILE.into(),
            detail: e.to_string(),
        })?;
        root.write_atomic(&dep.join(crate::runtime::health::FILE), &text, 0o644)?;
    }
    for f in plan.files.iter().filter(|f| f.kind.is_file()) {
        let copy = dep.join("host").join(f.path.trim_start_matches('/'));
        if let Some(parent) = copy.parent() {
            root.create_dir_all(parent, 0o755)?;
        }
        root.write_atomic(&copy, &f.content, f.mode)?;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Ok(Info {
        name: plan.name.clone(),
        deployment: plan.slot.clone(),
        image: plan.image.clone(),
        values: plan.values.clone(),
        files: host_files(plan).iter().map(HostFile::written).collect(),
        links: plan.links.clone(),
        dirs: Vec::new(),
        units: plan.units.clone(),
        installed: now,
        footprint: Some(plan.footprint.clone()),
        hostfs_modes: plan.hostfs_modes,
        health: plan.health_keys.clone(),
        after: plan.after.clone(),
    })
}

/// The host files of a staged deployment, from its `host/` copies.
pub fn staged_files(layout: &Layout, info: &Info) -> Result<Vec<HostFile>, DeployError> {
    let root = layout.open_root()?;
    let dep = PathBuf::from(info.dir(layout));
    info.files
        .iter()
        .map(|f| {
            let copy = dep.join("host").join(f.path.trim_start_matches('/'));
            let content = match f.kind {
                EntryKind::File => root.read(&copy)?,
                EntryKind::Symlink => f.target.clone().unwrap_or_default().into_bytes(),
                EntryKind::Dir => Vec::new(),
            };
            if super::sha256(&content) != f.sha256 {
                return Err(DeployError::Invalid {
                    file: Root::show(&copy),
                    detail: "does not match the checksum in info.json; the deployment is damaged"
                        .into(),
                });
            }
            Ok(HostFile {
                path: f.path.clone(),
                content,
                mode: f.mode,
                owned: f.owned,
                kind: f.kind,
            })
        })
        .collect()
}

/// Mode of `config.json` and `info.json`: both hold `--set` values, which
/// may be secrets.
pub const SECRET_MODE: u32 = crate::store::SECRET_FILE_MODE;

/// Writes `info.json` into its deployment directory (mode [`SECRET_MODE`]).
pub fn write_info(layout: &Layout, info: &Info) -> Result<(), DeployError> {
    let path = PathBuf::from(info.dir(layout)).join("info.json");
    let json = serde_json::to_string_pretty(info).map_err(|e| DeployError::Invalid {
        file: "info.json".into(),
        detail: e.to_string(),
    })?;
    Ok(layout
        .open_root()?
        .write_atomic(&path, json.as_bytes(), SECRET_MODE)?)
}

/// Applies the container's tmpfiles.d entry at once where systemd runs
/// (`systemd-tmpfiles [--user] --create FILE`); offline,
/// systemd-tmpfiles-setup applies it at the next boot (users named in it
/// may only exist there), for `--user` at the next login.
pub fn apply_tmpfiles(
    layout: &Layout,
    manager: &dyn Manager,
    info: &Info,
) -> Result<(), DeployError> {
    if !manager.is_live() {
        return Ok(());
    }
    let Some(f) = info
        .files
        .iter()
        .find(|f| f.path.starts_with(layout.tmpfiles_dir()))
    else {
        return Ok(());
    };
    let path = layout.open_root()?.resolve(Path::new(&f.path))?;
    let mut cmd = std::process::Command::new("systemd-tmpfiles");
    if layout.is_user() {
        cmd.arg("--user");
    }
    let out = cmd
        .arg("--create")
        .arg(&path)
        .output()
        .map_err(super::io_err(Path::new("systemd-tmpfiles")))?;
    if !out.status.success() {
        return Err(DeployError::Invalid {
            file: f.path.clone(),
            detail: format!(
                "systemd-tmpfiles --create failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(())
}
