//! PURE: where a deployment's health check comes from, merged into one
//! [`Config`]: the image config's `Healthcheck`, then the operator's keys
//! (`berth install --health-*`, a manifest entry's `health = { … }`), later
//! wins, Docker's defaults for what neither sets.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Command, Config};

/// Docker's default interval between checks.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// Docker's default check timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Docker's default start period.
pub const DEFAULT_START_PERIOD: Duration = Duration::ZERO;
/// Docker's default retries.
pub const DEFAULT_RETRIES: u32 = 3;
/// The `--health-cmd` value that turns an image's check off.
pub const NONE: &str = "none";

/// Why a health check source is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The image config's `Healthcheck` cannot be read.
    #[error("image config Healthcheck: {0}; rebuild the image or override it with --health-cmd")]
    BadImage(String),
    /// An operator key out of range.
    #[error("health {key} {value:?}: {why}")]
    BadKey {
        /// The key (`interval`, `retries`, …).
        key: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        why: &'static str,
    },
}

/// What an image's config asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageCheck {
    /// `["NONE"]`: no check, whatever a base image set.
    Disabled,
    /// A check, with the timings the image set (`None`: unset or 0).
    Check {
        /// What to run.
        command: Command,
        /// `Interval`.
        interval: Option<Duration>,
        /// `Timeout`.
        timeout: Option<Duration>,
        /// `StartPeriod`.
        start_period: Option<Duration>,
        /// `Retries`.
        retries: Option<u32>,
    },
}

/// The `Healthcheck` field of a Docker image config (oci-spec's
/// `ImageConfiguration` does not carry it): durations in nanoseconds.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawHealthcheck {
    #[serde(default)]
    test: Option<Vec<String>>,
    #[serde(default)]
    interval: Option<i64>,
    #[serde(default)]
    timeout: Option<i64>,
    #[serde(default)]
    start_period: Option<i64>,
    #[serde(default)]
    retries: Option<i64>,
}

/// Reads `config.Healthcheck` of an image config blob; `Ok(None)` when the
/// image sets none (absent, `null`, or an empty `Test`: "inherit").
pub fn from_image_config(blob: &serde_json::Value) -> Result<Option<ImageCheck>, SourceError> {
    let field = &blob["config"]["Healthcheck"];
    if field.is_null() {
        return Ok(None);
    }
    let raw: RawHealthcheck =
        serde_json::from_value(field.clone()).map_err(|e| SourceError::BadImage(e.to_string()))?;
    let test = raw.test.unwrap_or_default();
    let command = match test.split_first() {
        None => return Ok(None),
        Some((kind, _)) if kind == "NONE" => return Ok(Some(ImageCheck::Disabled)),
        Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => Command::Exec(rest.to_vec()),
        Some((kind, [text])) if kind == "CMD-SHELL" => Command::Shell(text.clone()),
        Some((kind, _)) => {
            return Err(SourceError::BadImage(format!(
                "Test {kind:?} with {} arguments: use [\"CMD\", prog, …], [\"CMD-SHELL\", text] or [\"NONE\"]",
                test.len() - 1
            )))
        }
    };
    let nanos = |n: Option<i64>| {
        n.and_then(|n| u64::try_from(n).ok())
            .filter(|n| *n > 0)
            .map(Duration::from_nanos)
    };
    Ok(Some(ImageCheck::Check {
        command,
        interval: nanos(raw.interval),
        timeout: nanos(raw.timeout),
        start_period: nanos(raw.start_period),
        retries: raw
            .retries
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n > 0),
    }))
}

/// The operator's keys (install flags or a manifest entry's `health`
/// table), kept in `info.json` so an update merges them again with the new
/// image's config. Durations are humantime text (`"30s"`, `"1m30s"`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    /// A shell command (`/bin/sh -c CMD`), or `none` to turn the check off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<String>,
    /// Time between checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// A check running longer fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Consecutive failures that make the container unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Failures inside this time after start do not count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<String>,
}

impl Overrides {
    /// True when the operator set nothing.
    pub fn is_empty(&self) -> bool {
        *self == Overrides::default()
    }

    /// Checks the keys without an image: what [`merge`] would refuse.
    pub fn check(&self) -> Result<(), SourceError> {
        let with_cmd = Overrides {
            cmd: Some(self.cmd.clone().unwrap_or_else(|| "true".into())),
            ..self.clone()
        };
        merge(None, &with_cmd).map(|_| ())
    }
}

fn duration(
    key: &'static str,
    text: Option<&str>,
    zero_ok: bool,
) -> Result<Option<Duration>, SourceError> {
    let Some(text) = text else { return Ok(None) };
    let bad = |why| SourceError::BadKey {
        key,
        value: text.to_string(),
        why,
    };
    let d = humantime::parse_duration(text.trim())
        .map_err(|_| bad("not a duration; use e.g. 30s, 1m30s, 500ms"))?;
    if d.is_zero() && !zero_ok {
        return Err(bad("must be more than 0"));
    }
    Ok(Some(d))
}

/// Merges the image's check and the operator's keys into the deployment's
/// check; `Ok(None)` when there is none (none asked for, `NONE`, or
/// `cmd = "none"`). Timings the operator sets apply to the image's command
/// too; timings without any command are ignored.
pub fn merge(image: Option<&ImageCheck>, ov: &Overrides) -> Result<Option<Config>, SourceError> {
    let interval = duration("interval", ov.interval.as_deref(), false)?;
    let timeout = duration("timeout", ov.timeout.as_deref(), false)?;
    let start_period = duration("start_period", ov.start_period.as_deref(), true)?;
    if ov.retries == Some(0) {
        return Err(SourceError::BadKey {
            key: "retries",
            value: "0".into(),
            why: "must be at least 1",
        });
    }
    let (command, img) = match (ov.cmd.as_deref().map(str::trim), image) {
        (Some(c), _) if c.eq_ignore_ascii_case(NONE) => return Ok(None),
        (Some(""), _) => {
            return Err(SourceError::BadKey {
                key: "cmd",
                value: String::new(),
                why: "is empty; give a shell command, or none",
            })
        }
        (Some(c), Some(ImageCheck::Check { .. }) | Some(ImageCheck::Disabled) | None) => {
            (Command::Shell(c.to_string()), image)
        }
        (None, Some(ImageCheck::Check { command, .. })) => (command.clone(), image),
        (None, Some(ImageCheck::Disabled) | None) => return Ok(None),
    };
    let (i_interval, i_timeout, i_start, i_retries) = match img {
        Some(ImageCheck::Check {
            interval,
            timeout,
            start_period,
            retries,
            ..
        }) => (*interval, *timeout, *start_period, *retries),
        _ => (None, None, None, None),
    };
    Ok(Some(Config {
        command,
        interval: interval.or(i_interval).unwrap_or(DEFAULT_INTERVAL),
        timeout: timeout.or(i_timeout).unwrap_or(DEFAULT_TIMEOUT),
        start_period: start_period.or(i_start).unwrap_or(DEFAULT_START_PERIOD),
        retries: ov.retries.or(i_retries).unwrap_or(DEFAULT_RETRIES),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn image(v: serde_json::Value) -> Option<ImageCheck> {
        from_image_config(&json!({ "config": { "Healthcheck": v } })).unwrap()
    }

    #[test]
    fn reads_the_image_healthcheck_in_nanoseconds() {
        let c = image(json!({
            "Test": ["CMD", "/bin/check", "-q"],
            "Interval": 10_000_000_000i64,
            "Timeout": 2_500_000_000i64,
            "StartPeriod": 0,
            "Retries": 5
        }));
        assert_eq!(
            c,
            Some(ImageCheck::Check {
                command: Command::Exec(vec!["/bin/check".into(), "-q".into()]),
                interval: Some(Duration::from_secs(10)),
                timeout: Some(Duration::from_millis(2500)),
                start_period: None,
                retries: Some(5),
            })
        );
        let shell = image(json!({ "Test": ["CMD-SHELL", "curl -f localhost || exit 1"] }));
        assert!(matches!(
            shell,
            Some(ImageCheck::Check { command: Command::Shell(s), interval: None, .. })
                if s == "curl -f localhost || exit 1"
        ));
    }

    #[test]
    fn none_disables_and_empty_inherits() {
        assert_eq!(
            image(json!({ "Test": ["NONE"] })),
            Some(ImageCheck::Disabled)
        );
        assert_eq!(image(json!({ "Test": [] })), None);
        assert_eq!(image(json!({})), None);
        assert_eq!(from_image_config(&json!({ "config": {} })).unwrap(), None);
        assert_eq!(from_image_config(&json!({})).unwrap(), None);
    }

    #[test]
    fn refuses_malformed_tests() {
        for bad in [
            json!({ "Test": ["CMD"] }),
            json!({ "Test": ["CMD-SHELL", "a", "b"] }),
            json!({ "Test": ["SHELL", "x"] }),
            json!({ "Test": "CMD-SHELL true" }),
            json!({ "Interval": "30s", "Test": ["NONE"] }),
        ] {
            let r = from_image_config(&json!({ "config": { "Healthcheck": bad.clone() } }));
            assert!(matches!(r, Err(SourceError::BadImage(_))), "{bad}: {r:?}");
        }
    }

    #[test]
    fn defaults_fill_what_nobody_sets() {
        let img = image(json!({ "Test": ["CMD-SHELL", "true"] }));
        let c = merge(img.as_ref(), &Overrides::default()).unwrap().unwrap();
        assert_eq!(c.interval, DEFAULT_INTERVAL);
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert_eq!(c.start_period, Duration::ZERO);
        assert_eq!(c.retries, 3);
    }

    #[test]
    fn operator_keys_win_over_the_image() {
        let img = image(json!({
            "Test": ["CMD", "/bin/check"], "Interval": 10_000_000_000i64, "Retries": 5
        }));
        let ov = Overrides {
            interval: Some("2s".into()),
            start_period: Some("1m".into()),
            ..Overrides::default()
        };
        let c = merge(img.as_ref(), &ov).unwrap().unwrap();
        assert_eq!(c.command, Command::Exec(vec!["/bin/check".into()]));
        assert_eq!(c.interval, Duration::from_secs(2));
        assert_eq!(c.start_period, Duration::from_secs(60));
        assert_eq!(c.retries, 5);
        let ov = Overrides {
            cmd: Some("pgrep etcd".into()),
            ..ov
        };
        let c = merge(img.as_ref(), &ov).unwrap().unwrap();
        assert_eq!(c.command, Command::Shell("pgrep etcd".into()));
        assert_eq!(c.retries, 5, "the image's timings stay under a new command");
    }

    #[test]
    fn none_turns_any_check_off_and_cmd_turns_none_on() {
        let img = image(json!({ "Test": ["CMD", "/bin/check"] }));
        let off = Overrides {
            cmd: Some("none".into()),
            ..Overrides::default()
        };
        assert_eq!(merge(img.as_ref(), &off).unwrap(), None);
        let disabled = Some(ImageCheck::Disabled);
        assert_eq!(
            merge(disabled.as_ref(), &Overrides::default()).unwrap(),
            None
        );
        let on = Overrides {
            cmd: Some("true".into()),
            ..Overrides::default()
        };
        let c = merge(disabled.as_ref(), &on).unwrap().unwrap();
        assert_eq!(c.command, Command::Shell("true".into()));
        let timing_only = Overrides {
            interval: Some("5s".into()),
            ..Overrides::default()
        };
        assert_eq!(merge(None, &timing_only).unwrap(), None);
    }

    #[test]
    fn refuses_bad_operator_keys() {
        for ov in [
            Overrides {
                interval: Some("0s".into()),
                ..Overrides::default()
            },
            Overrides {
                timeout: Some("soon".into()),
                ..Overrides::default()
            },
            Overrides {
                retries: Some(0),
                ..Overrides::default()
            },
            Overrides {
                cmd: Some(" ".into()),
                ..Overrides::default()
            },
        ] {
            assert!(
                matches!(merge(None, &ov), Err(SourceError::BadKey { .. })),
                "{ov:?}"
            );
        }
        let zero_start = Overrides {
            cmd: Some("true".into()),
            start_period: Some("0s".into()),
            ..Overrides::default()
        };
        assert!(merge(None, &zero_start).is_ok());
    }
}
