//! PURE: the drop-in berth owns beside an image's service unit,
//! `NAME.service.d/berth.conf`, holding what berth's runtime needs from
//! systemd and the image's unit does not already say.
//!
//! Images written for `atomic install --system` have units without
//! `Delegate=` or `KillMode=` (runc did not need them). berth's runtime does:
//!
//! - `Delegate=yes`: berth-run creates the container's cgroup below the
//!   unit's (`NAME.service/berth-NAME`, and `supervisor` on cgroup v2 with
//!   controllers). Without delegation systemd on a hybrid host creates the
//!   unit's cgroup only in the v1 controllers whose accounting is on, and on
//!   cgroup v2 it may move processes back out of cgroups it did not make.
//!   An image that says `Delegate=no` is overridden (with a note): the
//!   container could not be placed otherwise.
//! - `KillMode=mixed`: `systemctl stop` signals berth-run only, which forwards
//!   the signal to the container's init so it shuts down in its own order;
//!   SIGKILL after `TimeoutStopSec=` still reaches every process. An image
//!   that chose its own `KillMode=` keeps it: every mode works with berth-run,
//!   `mixed` is only the gentlest default.
//!
//! - `ExecStopPost=berth-run … --cleanup NAME`, for a unit whose berth-run
//!   becomes the runtime (`--exec-runtime`, crun) and whose image's unit does
//!   not run that command after the main process already: nothing of berth
//!   stays to remove `ctr/NAME/` when the container ends.
//!
//! The image's unit text is never edited: what is added lives in a file berth
//! owns (marker first), so `systemctl cat` shows both and an operator's own
//! drop-in (sorted after `berth.conf`, e.g. `override.conf`) still wins.

use super::unit::{assignments, UnitError};

/// The drop-in's file name inside `NAME.service.d/`.
pub const DROPIN_FILE: &str = "berth.conf";

/// What the drop-in holds, and what it overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DropIn {
    /// The `[Service]` section to write (without berth's marker), or `None`
    /// when the image's unit already says everything the runtime needs.
    pub body: Option<String>,
    /// Settings of the image's unit the drop-in overrides, one line each.
    pub overridden: Vec<String>,
}

/// The drop-in for a container service whose unit text is `unit`;
/// `cleanup`, when given, must run after the main process (see above).
pub fn runtime_dropin(unit: &str, cleanup: Option<&str>) -> Result<DropIn, UnitError> {
    let parsed = assignments(unit)?;
    // The last assignment in [Service] wins, as in systemd.
    let last = |key: &str| {
        parsed
            .assignments
            .iter()
            .rev()
            .find(|a| a.section == "Service" && a.key == key)
    };
    let mut lines = Vec::new();
    let mut overridden = Vec::new();
    match last("Delegate") {
        None => lines.push("Delegate=yes"),
        // `yes`, or a controller list: delegation either way.
        Some(a) if !is_false(&a.value) => {}
        Some(a) => {
            overridden.push(format!(
                "Delegate={} (line {}): berth's runtime creates the container's cgroup below the unit's, \
                 which needs Delegate=yes",
                a.value, a.line
            ));
            lines.push("Delegate=yes");
        }
    }
    if last("KillMode").is_none() {
        lines.push("KillMode=mixed");
    }
    let stop_post;
    if let Some(cmd) = cleanup {
        // systemd's prefixes (`-`, `@`, `:`, `+`, `!`) do not change the command.
        let runs = parsed.assignments.iter().any(|a| {
            a.section == "Service"
                && a.key == "ExecStopPost"
                && a.value.trim_start_matches(['-', '@', ':', '+', '!']).trim() == cmd
        });
        if !runs {
            stop_post = format!("ExecStopPost={cmd}");
            lines.push(&stop_post);
        }
    }
    let body = (!lines.is_empty()).then(|| format!("[Service]\n{}\n", lines.join("\n")));
    Ok(DropIn { body, overridden })
}

fn is_false(value: &str) -> bool {
    value.is_empty()
        || matches!(
            value.to_ascii_lowercase().as_str(),
            "0" | "no" | "n" | "false" | "f" | "off"
        )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_cleanup_runs_after_the_main_process_once() {
        let cmd = "/usr/bin/berth-run --runtime /usr/bin/crun --cleanup etcd";
        let full = "[Service]\nDelegate=yes\nKillMode=mixed\n";
        let cases: &[(String, Option<String>)] = &[
            (
                full.to_string(),
                Some(format!("[Service]\nExecStopPost={cmd}\n")),
            ),
            (format!("{full}ExecStopPost={cmd}\n"), None),
            (format!("{full}ExecStopPost=-{cmd}\n"), None),
            (
                format!("{full}ExecStopPost=/bin/true\n"),
                Some(format!("[Service]\nExecStopPost={cmd}\n")),
            ),
            // Another section's key does not count.
            (
                format!("[Unit]\nExecStopPost={cmd}\n{full}"),
                Some(format!("[Service]\nExecStopPost={cmd}\n")),
            ),
        ];
        for (unit, want) in cases {
            let d = runtime_dropin(unit, Some(cmd)).unwrap();
            assert_eq!(d.body.as_deref(), want.as_deref(), "{unit}");
        }
        assert_eq!(runtime_dropin(full, None).unwrap().body, None);
    }

    #[test]
    fn adds_only_what_the_unit_lacks() {
        let cases: &[(&str, Option<&str>, usize)] = &[
            (
                "[Service]\nExecStart=/x\n",
                Some("[Service]\nDelegate=yes\nKillMode=mixed\n"),
                0,
            ),
            (
                "[Service]\nExecStart=/x\nDelegate=yes\nKillMode=mixed\n",
                None,
                0,
            ),
            (
                "[Service]\nDelegate=cpu memory\n",
                Some("[Service]\nKillMode=mixed\n"),
                0,
            ),
            (
                "[Service]\nKillMode=process\n",
                Some("[Service]\nDelegate=yes\n"),
                0,
            ),
            (
                "[Service]\nDelegate=no\nKillMode=control-group\n",
                Some("[Service]\nDelegate=yes\n"),
                1,
            ),
            // The last assignment wins; another section's key does not count.
            (
                "[Unit]\nKillMode=none\n[Service]\nDelegate=yes\nDelegate=off\n",
                Some("[Service]\nDelegate=yes\nKillMode=mixed\n"),
                1,
            ),
        ];
        for (unit, body, overridden) in cases {
            let d = runtime_dropin(unit, None).unwrap();
            assert_eq!(d.body.as_deref(), *body, "{unit}");
            assert_eq!(
                d.overridden.len(),
                *overridden,
                "{unit}: {:?}",
                d.overridden
            );
        }
    }

    #[test]
    fn a_broken_unit_is_an_error() {
        assert!(runtime_dropin("[Service\nExecStart=/x\n", None).is_err());
    }
}
