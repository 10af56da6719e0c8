//! Health checks: what a deployment asks for ([`Config`], written by
//! install into the deployment as `health.json`) and what `berth-run`
//! reports while its container runs ([`State`], in
//! `/run/berth/runtime/ctr/NAME/health.json`), read by `status`, `list`
//! and the update gate.
//!
//! This module is the contract between the three: data and file locations
//! only. Beside it: [`source`] merges the image's and the operator's keys
//! into a [`Config`] (install), [`machine`] decides when to check and what a
//! result means, [`checker`] runs those decisions in berth-run's poll loop,
//! and [`probe`] is the check's own process inside the container.

pub mod checker;
pub mod machine;
pub mod probe;
pub mod source;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The file name of both the deployment's [`Config`] and the runtime [`State`].
pub const FILE: &str = "health.json";

/// How a check runs inside the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "argv")]
pub enum Command {
    /// `["CMD", prog, args…]`: executed directly.
    Exec(Vec<String>),
    /// `["CMD-SHELL", text]`: run as `/bin/sh -c text`.
    Shell(String),
}

/// A deployment's health check, after all sources were merged (image config
/// `Healthcheck`, then install flags or manifest keys). Absent means none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// What to run.
    pub command: Command,
    /// Time between checks.
    #[serde(with = "humantime_serde_compat")]
    pub interval: Duration,
    /// A check running longer than this fails.
    #[serde(with = "humantime_serde_compat")]
    pub timeout: Duration,
    /// Failures inside this time after start do not count.
    #[serde(with = "humantime_serde_compat")]
    pub start_period: Duration,
    /// Consecutive failures that make the container unhealthy.
    pub retries: u32,
}

/// Where the container stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// No check has passed yet (and the failures so far do not count or
    /// are fewer than the retries).
    Starting,
    /// The last check passed.
    Healthy,
    /// `retries` consecutive checks failed: berth-run stops the container.
    Unhealthy,
}

/// One finished check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// When it finished, seconds since the epoch.
    pub at: u64,
    /// Its exit status (`None` when it timed out or could not run).
    pub exit: Option<i32>,
    /// The end of its output (bounded), or why it could not run.
    pub output: String,
}

/// What `berth-run` reports while its container runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Where the container stands.
    pub status: Status,
    /// Consecutive failed checks.
    pub failing_streak: u32,
    /// Checks run since start.
    pub checks: u64,
    /// The last finished check, if any.
    pub last: Option<Check>,
}

impl Command {
    /// The argv run inside the container.
    pub fn argv(&self) -> Vec<String> {
        match self {
            Command::Exec(v) => v.clone(),
            Command::Shell(s) => vec!["/bin/sh".into(), "-c".into(), s.clone()],
        }
    }
}

impl Config {
    /// The deployment's config file in a bundle (deployment) directory.
    pub fn path(bundle: &Path) -> PathBuf {
        bundle.join(FILE)
    }

    /// Reads a bundle's health check; `Ok(None)` when it has none.
    pub fn read(bundle: &Path) -> std::io::Result<Option<Config>> {
        match std::fs::read(Config::path(bundle)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl State {
    /// The state file of running container `id` (see [`super::Paths::ctr`]).
    pub fn path(paths: &super::Paths, id: &str) -> PathBuf {
        paths.ctr(id).join(FILE)
    }

    /// Reads the state of running container `id`; `None` when it has no
    /// health check, is not running, or the file is unreadable.
    pub fn read(paths: &super::Paths, id: &str) -> Option<State> {
        let bytes = std::fs::read(State::path(paths, id)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// Durations as humantime text (`"30s"`, `"1m 30s"`) in health.json.
mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_through_json() {
        let c = Config {
            command: Command::Shell("curl -fs http://127.0.0.1/".into()),
            interval: Duration::from_secs(30),
            timeout: Duration::from_millis(5500),
            start_period: Duration::ZERO,
            retries: 3,
        };
        let text = serde_json::to_string(&c).unwrap_or_default();
        assert!(text.contains("\"interval\":\"30s\""), "{text}");
        let back: Option<Config> = serde_json::from_str(&text).ok();
        assert_eq!(back, Some(c));
    }
}
