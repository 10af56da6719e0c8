//! The commit point of `update` (one container or a group) and
//! `rollback`: each member's `NAME` link is pointed at its new deployment
//! in turn, tmpfiles applied, the manager reloaded, and a service that was
//! running restarted and held to the gate ([`super::soak`]). When one
//! fails, the transaction is undone (every member back on its previous
//! deployment, journaled, so a killed berth leaves the whole group on one
//! side), and the services already restarted are restarted again on their
//! previous deployments, newest first, each gated the same way. Each
//! restart is journaled first, and the journal stays until the services
//! are back: a berth killed at any moment leaves the next one
//! ([`super::recover::recover_interrupted`]) what to restart.

use std::path::Path;
use std::time::{Duration, Instant};

use super::install::{apply_tmpfiles, settle};
use super::soak::{start_failed, Decision, Failure, Observation, Soak, START_BOUND};
use super::txn::Transaction;
use super::{containers_inside, failpoint, DeployError, Info};
use crate::layout::Layout;
use crate::runtime::health::{Config as HealthConfig, State as HealthState};
use crate::runtime::Paths;
use crate::systemd::manager::Manager;
use crate::systemd::UnitName;

/// How often the gate polls the manager.
const POLL: Duration = Duration::from_millis(250);

/// Journal lines shown with a rollback.
const JOURNAL_LINES: usize = 15;

/// One container switched by [`activate`].
#[derive(Debug, Clone, Copy)]
pub struct Member<'a> {
    /// Its deployment before (the one put back on failure).
    pub current: &'a Info,
    /// Its staged deployment.
    pub info: &'a Info,
    /// How long its restarted service must hold (zero: the settle).
    pub soak: Duration,
}

/// Switches `members` in order inside `txn`, gating each restart for
/// its soak; returns per member whether its service was restarted. On a
/// failure everything is put back and [`DeployError::RolledBack`] names
/// the member that failed.
pub fn activate(
    layout: &Layout,
    mut txn: Transaction,
    manager: &dyn Manager,
    members: &[Member<'_>],
) -> Result<Vec<bool>, DeployError> {
    // Asked before anything restarts: restarting one may stop another.
    let running: Vec<bool> = members
        .iter()
        .map(|m| service(m.current).is_some_and(|u| manager.is_running(&u)))
        .collect();
    let mut restarted = Vec::new();
    for (i, m) in members.iter().enumerate() {
        let new_service = service(m.info).filter(|_| running[i]);
        if new_service.is_some() {
            restarted.push(i);
        }
        match switch_one(layout, &mut txn, manager, m, new_service) {
            Ok(()) => {}
            Err(Stop::Before(e)) => {
                // Not restarted: undone like any failed step, and the
                // members restarted before it are put back.
                let undone = txn.abort();
                for p in put_back(layout, manager, members, &restarted) {
                    tracing::warn!("{p}");
                }
                drop(undone);
                return Err(e);
            }
            Err(Stop::Gate(failure)) => {
                let journal = service(m.info)
                    .map(|u| manager.journal_tail(&u, JOURNAL_LINES))
                    .unwrap_or_default();
                let failure = failure.with_journal_output(&journal);
                let undone = txn.abort();
                let put_back = put_back(layout, manager, members, &restarted);
                drop(undone);
                return Err(rolled_back(members, i, failure, &put_back, &journal));
            }
        }
    }
    txn.commit();
    Ok((0..members.len()).map(|i| restarted.contains(&i)).collect())
}

/// Where a member's switch stopped.
enum Stop {
    /// Before its restart (a file step, tmpfiles, the reload).
    Before(DeployError),
    /// Its restart or the gate after it.
    Gate(Failure),
}

/// Points `m`'s link at its new deployment and restarts and gates it.
fn switch_one(
    layout: &Layout,
    txn: &mut Transaction,
    manager: &dyn Manager,
    m: &Member<'_>,
    restart: Option<UnitName>,
) -> Result<(), Stop> {
    let link = containers_inside(layout).join(&m.info.name);
    txn.replace_symlink(&link, Path::new(&m.info.deployment))
        .map_err(Stop::Before)?;
    failpoint("switch").map_err(Stop::Before)?;
    // Each member of a group has its own, to stop between two switches.
    failpoint(&format!("switch-{}", m.info.name)).map_err(Stop::Before)?;
    apply_tmpfiles(layout, manager, m.info).map_err(Stop::Before)?;
    manager
        .reload()
        .map_err(|e| Stop::Before(DeployError::from(e)))?;
    if let Some(unit) = restart {
        txn.note_restart(unit.as_str()).map_err(Stop::Before)?;
        manager.restart(&unit).map_err(|e| {
            let retries = health_config(layout, m.info).map(|c| c.retries);
            Stop::Gate(start_failed(
                &manager.unit_status(&unit),
                retries,
                e.to_string(),
            ))
        })?;
        gate(layout, manager, &unit, m.info, m.soak).map_err(Stop::Gate)?;
    }
    Ok(())
}

/// Restarts the services of `restarted` (indexes into `members`) again on
/// their previous deployments, newest first; one line per problem.
fn put_back(
    layout: &Layout,
    manager: &dyn Manager,
    members: &[Member<'_>],
    restarted: &[usize],
) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = manager.reload() {
        problems.push(format!("reloading the manager failed: {e}"));
    }
    for &i in restarted.iter().rev() {
        let m = &members[i];
        let Some(unit) = service(m.current) else {
            continue;
        };
        let back = manager
            .restart(&unit)
            .map_err(|e| Failure::Start {
                detail: e.to_string(),
            })
            .and_then(|_| gate(layout, manager, &unit, m.current, m.soak));
        if let Err(f) = back {
            problems.push(format!(
                "{} on {} did not come back either: {f}",
                m.current.name, m.current.deployment
            ));
        }
    }
    problems
}

/// The error naming member `i`'s failure and what was put back.
fn rolled_back(
    members: &[Member<'_>],
    i: usize,
    failure: Failure,
    problems: &[String],
    journal: &[String],
) -> DeployError {
    let m = &members[i];
    let mut detail = format!("\nput {} back on {}", m.current.name, m.current.deployment);
    let others: Vec<String> = members[..i]
        .iter()
        .rev()
        .map(|o| format!("{} on {}", o.current.name, o.current.deployment))
        .collect();
    if !others.is_empty() {
        detail.push_str(&format!(
            "; also put back, as one group: {}",
            others.join(", ")
        ));
    }
    for p in problems {
        detail.push_str(&format!("\nwarning: {p}"));
    }
    if let (false, Some(unit)) = (journal.is_empty(), m.info.service()) {
        detail.push_str(&format!(
            "\nlast journal lines of {unit}:\n  {}",
            journal.join("\n  ")
        ));
    }
    DeployError::RolledBack {
        name: m.info.name.clone(),
        reason: failure.to_string(),
        detail,
    }
}

/// The service of a deployment, if it has one.
fn service(info: &Info) -> Option<UnitName> {
    info.service().and_then(|u| UnitName::parse(u).ok())
}

/// The health check of deployment `info`, if it has one (an unreadable
/// one is a warning: the gate goes without it).
fn health_config(layout: &Layout, info: &Info) -> Option<HealthConfig> {
    let bundle = layout.host(&info.dir(layout));
    HealthConfig::read(&bundle).unwrap_or_else(|e| {
        tracing::warn!("{}: {e}; gating without it", bundle.display());
        None
    })
}

/// Waits until `unit`, just restarted on deployment `info`, passes the
/// soak; `soak` zero keeps the one-second settle.
pub fn gate(
    layout: &Layout,
    manager: &dyn Manager,
    unit: &UnitName,
    info: &Info,
    soak: Duration,
) -> Result<(), Failure> {
    if soak.is_zero() {
        return settle(manager, unit, "restart").map_err(|e| Failure::Start {
            detail: e.to_string(),
        });
    }
    let check = health_config(layout, info);
    let paths = Paths::for_layout(layout).ok();
    let bound = START_BOUND
        + check.as_ref().map_or(Duration::ZERO, |c| {
            c.start_period + (c.interval + c.timeout) * (c.retries + 1)
        });
    let restarted = super::last_update::now();
    let mut soak = Soak::new(soak, bound, check.is_some())
        .health_retries(check.as_ref().map_or(0, |c| c.retries))
        .checks_after(restarted);
    let started = Instant::now();
    loop {
        let health = match (&check, &paths) {
            (Some(_), Some(p)) => HealthState::read(p, &info.name),
            _ => None,
        };
        let obs = Observation {
            at: started.elapsed(),
            unit: manager.unit_status(unit),
            health,
        };
        match soak.observe(&obs) {
            Decision::Wait => std::thread::sleep(POLL),
            Decision::Passed => return Ok(()),
            Decision::Failed(f) => return Err(f),
        }
    }
}
