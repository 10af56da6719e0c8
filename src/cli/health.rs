//! `--health-*`: the operator's health check keys of `berth install`.

use clap::Args;

use crate::runtime::health::source::Overrides;

/// The health check flags; they override the image config's `Healthcheck`.
#[derive(Debug, Clone, Default, Args)]
pub struct HealthArgs {
    /// Health check command, run with /bin/sh -c inside the running
    /// container as its user; `none` turns the image's check off.
    #[arg(long, value_name = "CMD")]
    pub health_cmd: Option<String>,
    /// Time between checks [default: the image's, else 30s].
    #[arg(long, value_name = "DURATION", value_parser = positive_duration_arg)]
    pub health_interval: Option<String>,
    /// A check running longer fails [default: the image's, else 30s].
    #[arg(long, value_name = "DURATION", value_parser = positive_duration_arg)]
    pub health_timeout: Option<String>,
    /// Consecutive failures after which berth-run stops the container
    /// [default: the image's, else 3].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub health_retries: Option<u32>,
    /// Failures inside this time after start do not count [default: the
    /// image's, else 0s].
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub health_start_period: Option<String>,
}

impl HealthArgs {
    /// The keys as recorded in `info.json`.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            cmd: self.health_cmd.clone(),
            interval: self.health_interval.clone(),
            timeout: self.health_timeout.clone(),
            retries: self.health_retries,
            start_period: self.health_start_period.clone(),
        }
    }
}

/// Checks a duration flag (`30s`, `1m30s`, `500ms`, `0s`), keeping its text.
fn duration_arg(text: &str) -> Result<String, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("{e}; use e.g. 30s, 1m30s, 500ms"))?;
    Ok(text.trim().to_string())
}

/// [`duration_arg`], more than 0 (interval, timeout).
fn positive_duration_arg(text: &str) -> Result<String, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("{e}; use e.g. 30s, 1m30s, 500ms"))?;
    if d.is_zero() {
        return Err("must be more than 0".into());
    }
    Ok(text.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct T {
        #[command(flatten)]
        h: HealthArgs,
    }

    #[test]
    fn flags_become_the_recorded_keys() {
        let t = T::try_parse_from([
            "t",
            "--health-cmd",
            "pgrep etcd",
            "--health-interval",
            "5s",
            "--health-retries",
            "2",
        ])
        .unwrap();
        let o = t.h.overrides();
        assert_eq!(o.cmd.as_deref(), Some("pgrep etcd"));
        assert_eq!(o.interval.as_deref(), Some("5s"));
        assert_eq!(o.retries, Some(2));
        assert_eq!(o.timeout, None);
        let t = T::try_parse_from(["t", "--health-start-period", "0s"]).unwrap();
        assert_eq!(t.h.overrides().start_period.as_deref(), Some("0s"));
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [
            ["t", "--health-interval", "soon"],
            ["t", "--health-interval", "0s"],
            ["t", "--health-retries", "0"],
            ["t", "--health-timeout", "0s"],
            ["t", "--health-start-period", "later"],
        ] {
            assert!(T::try_parse_from(args).is_err(), "{args:?}");
        }
    }
}
