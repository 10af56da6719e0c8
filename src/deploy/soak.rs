//! The update gate's soak, pure: after an update restarts a service, what
//! the manager and the health checker report ([`Observation`]s, polled by
//! the caller) goes into a [`Soak`], which answers [`Decision::Wait`],
//! [`Decision::Passed`] or [`Decision::Failed`] with the reason.
//!
//! Passed: the unit is `active` (not activating, not auto-restarting; for
//! `Type=notify` systemd reports `active` only after `READY=1`), the health
//! check (when the deployment has one) reports healthy, and both held for
//! the whole soak, while `NRestarts` never grew. The whole wait is bounded:
//! a unit still not passing at the bound fails with what it was doing.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::runtime::health::checker::UNHEALTHY_EXIT;
use crate::runtime::health::{State as Health, Status as HealthStatus};
use crate::systemd::manager::UnitStatus;

/// The soak an update waits for unless told otherwise.
pub const DEFAULT_SOAK: Duration = Duration::from_secs(10);

/// How long a unit may take to become active before the soak begins:
/// systemd's own `DefaultTimeoutStartSec`.
pub const START_BOUND: Duration = Duration::from_secs(90);

/// What the caller saw at one poll.
#[derive(Debug, Clone)]
pub struct Observation {
    /// Time since the restart's job finished.
    pub at: Duration,
    /// The unit's states and counters.
    pub unit: UnitStatus,
    /// The health checker's report (`None`: no check, or none written yet).
    pub health: Option<Health>,
}

/// Why a soak failed: the text after `rolled back NAME: `.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Failure {
    /// The main process exited (the unit is failed, inactive, or about to
    /// be restarted by systemd).
    #[error("exited {} s after start{}", .after_secs, status_text(*.status, .state))]
    Exited {
        /// Seconds after the restart it was seen.
        after_secs: u64,
        /// `ExecMainStatus`, when the process exited with one.
        status: Option<i32>,
        /// `ActiveState/SubState` then.
        state: String,
    },
    /// systemd restarted it (`NRestarts` grew) during the soak.
    #[error("exited and was restarted by systemd {} s after start{}", .after_secs, status_text(*.status, ""))]
    Restarted {
        /// Seconds after the restart it was seen.
        after_secs: u64,
        /// `ExecMainStatus` of the last exit.
        status: Option<i32>,
    },
    /// The health check reported unhealthy.
    #[error("health check failed {streak} times: {output}")]
    Unhealthy {
        /// Consecutive failed checks.
        streak: u32,
        /// The last check's output.
        output: String,
    },
    /// The restart itself failed (its job, or the one-second settle of
    /// `--soak 0`).
    #[error("{detail}")]
    Start {
        /// The manager's error.
        detail: String,
    },
    /// Nothing failed, but it did not pass within the bound either.
    #[error("not {what} {} s after start (unit {state})", .after_secs)]
    Timeout {
        /// Seconds waited.
        after_secs: u64,
        /// `active` or `healthy`: what it was waiting for.
        what: String,
        /// `ActiveState/SubState` then.
        state: String,
    },
}

/// The output of a check that gave up before the gate saw a failed one.
const GAVE_UP_UNSEEN: &str = "berth-run stopped the container (exit 69); see the journal";

/// How berth-run's line about a check that gave up ends (see
/// `runtime::health::checker`): `… (last: exit N, "OUTPUT"); stopping the container`.
const GAVE_UP_LINE_END: &str = "\"); stopping the container";

impl Failure {
    /// A health failure whose check output the gate never saw, completed
    /// from berth-run's own line about it in the unit's `journal` (the
    /// excerpt shown with the rollback); anything else unchanged.
    pub fn with_journal_output(self, journal: &[String]) -> Failure {
        match self {
            Failure::Unhealthy { streak, output } if output == GAVE_UP_UNSEEN => {
                let found = journal.iter().rev().find_map(|l| {
                    let body = l.strip_suffix(GAVE_UP_LINE_END)?;
                    let at = body.find("health check failed ")?;
                    let (_, quoted) = body[at..].split_once(", \"")?;
                    Some(quoted.trim().to_string())
                });
                Failure::Unhealthy {
                    streak,
                    output: found.filter(|o| !o.is_empty()).unwrap_or(output),
                }
            }
            other => other,
        }
    }
}

fn status_text(status: Option<i32>, state: &str) -> String {
    match status {
        Some(s) => format!(" (status {s})"),
        None if state.is_empty() => String::new(),
        None => format!(" (unit {state})"),
    }
}

/// Why a restart whose job failed failed: the health check when berth-run
/// gave up on it (exit [`UNHEALTHY_EXIT`]; `retries` is the deployment's
/// check, if it has one), else the manager's `detail`. A `Type=notify`
/// service whose check never passes fails its start job this way.
pub fn start_failed(unit: &UnitStatus, retries: Option<u32>, detail: String) -> Failure {
    match retries {
        Some(r) if unit.main_status == Some(UNHEALTHY_EXIT) => {
            Soak::new(Duration::ZERO, Duration::ZERO, true)
                .health_retries(r)
                .gave_up()
        }
        _ => Failure::Start { detail },
    }
}

/// What to do after an observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Poll again.
    Wait,
    /// Everything held for the soak.
    Passed,
    /// Switch back, for this reason.
    Failed(Failure),
}

/// The state machine of one soak.
#[derive(Debug, Clone)]
pub struct Soak {
    soak: Duration,
    bound: Duration,
    has_check: bool,
    retries: u32,
    fresh_after: u64,
    restarts: Option<u32>,
    holding_since: Option<Duration>,
    last_health: Option<Health>,
}

impl Soak {
    /// A soak of `soak` for a unit that gets `start_bound` to become
    /// active (and healthy, with `has_check`) first.
    pub fn new(soak: Duration, start_bound: Duration, has_check: bool) -> Soak {
        Soak {
            soak,
            bound: soak + start_bound,
            has_check,
            retries: 0,
            fresh_after: 0,
            restarts: None,
            holding_since: None,
            last_health: None,
        }
    }

    /// Counts only health checks that finished at or after `epoch_secs`
    /// (the restart): a report left by the previous run says nothing of
    /// the new one.
    pub fn checks_after(mut self, epoch_secs: u64) -> Soak {
        self.fresh_after = epoch_secs;
        self
    }

    /// The check's `retries`: how many consecutive failures it took when
    /// berth-run stopped the container (exit [`UNHEALTHY_EXIT`]) before
    /// the gate saw its last report.
    pub fn health_retries(mut self, retries: u32) -> Soak {
        self.retries = retries;
        self
    }

    /// Takes one observation; observations come in time order.
    pub fn observe(&mut self, obs: &Observation) -> Decision {
        let secs = obs.at.as_secs();
        let state = format!("{}/{}", obs.unit.active, obs.unit.sub);
        let health = obs.health.as_ref().filter(|h| {
            h.last
                .as_ref()
                .map_or(h.status == HealthStatus::Starting, |c| {
                    c.at >= self.fresh_after
                })
        });
        if let Some(h) = health {
            self.last_health = Some(h.clone());
        }
        if let Some(f) = self.unhealthy() {
            return Decision::Failed(f);
        }
        let base = *self
            .restarts
            .get_or_insert(obs.unit.n_restarts.unwrap_or(0));
        let gave_up = self.has_check && obs.unit.main_status == Some(UNHEALTHY_EXIT);
        if obs.unit.n_restarts.is_some_and(|n| n > base) {
            if gave_up {
                return Decision::Failed(self.gave_up());
            }
            return Decision::Failed(Failure::Restarted {
                after_secs: secs,
                status: obs.unit.main_status,
            });
        }
        let exited = matches!(
            obs.unit.active.as_str(),
            "failed" | "inactive" | "deactivating"
        ) || obs.unit.sub == "auto-restart";
        if exited && gave_up {
            return Decision::Failed(self.gave_up());
        }
        if exited {
            return Decision::Failed(Failure::Exited {
                after_secs: secs,
                status: obs.unit.main_status.filter(|s| *s != 0),
                state,
            });
        }
        let active = obs.unit.active == "active";
        let healthy = !self.has_check || health.is_some_and(|h| h.status == HealthStatus::Healthy);
        if active && healthy {
            let since = *self.holding_since.get_or_insert(obs.at);
            if obs.at.saturating_sub(since) >= self.soak {
                return Decision::Passed;
            }
        } else {
            self.holding_since = None;
        }
        if obs.at >= self.bound {
            return Decision::Failed(Failure::Timeout {
                after_secs: secs,
                what: if active { "healthy" } else { "active" }.into(),
                state,
            });
        }
        Decision::Wait
    }

    /// berth-run exited [`UNHEALTHY_EXIT`]: its check gave up, and the
    /// state file went with the container. The failing streak is at least
    /// the retries; the output is the last failed check's seen, if any.
    fn gave_up(&self) -> Failure {
        let seen = self.last_health.as_ref();
        let output = seen
            .and_then(|h| h.last.as_ref())
            .filter(|c| c.exit != Some(0))
            .map(|c| c.output.trim().to_string())
            .filter(|o| !o.is_empty())
            .unwrap_or_else(|| GAVE_UP_UNSEEN.to_string());
        Failure::Unhealthy {
            streak: seen
                .map_or(0, |h| h.failing_streak)
                .max(self.retries)
                .max(1),
            output,
        }
    }

    /// The unhealthy report seen last, if the last report was one.
    fn unhealthy(&self) -> Option<Failure> {
        let h = self.last_health.as_ref().filter(|_| self.has_check)?;
        (h.status == HealthStatus::Unhealthy).then(|| Failure::Unhealthy {
            streak: h.failing_streak,
            output: h
                .last
                .as_ref()
                .map(|c| c.output.trim().to_string())
                .unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests;
