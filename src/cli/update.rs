//! `berth update`: one container, a group named on the command line, or
//! every installed container by dependency group (`--all`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use super::config::{LimitArgs, PolicyArgs};
use super::install::{berth_exe, connect, switched};
use super::output::{self, Renderer};
use super::plan_view::{display, print_growth, print_mode_changes};
use super::GlobalOpts;
use crate::deploy::update::{update_group, Updated};
use crate::deploy::{self, groups, update_order, DeployError, UpdateRequest};
use crate::layout::Layout;

/// Update containers: re-pull each image (or --image), deploy it into the
/// other slot with the previous values overlaid by --set, switch, restart
/// the service if it was running, and hold it to the soak (active, ready,
/// healthy, not restarted). A failure switches back. Several containers
/// are one group: all are staged first, switched in dependency order, and
/// all put back when one fails.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The containers (several: one all-or-nothing group).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub names: Vec<String>,
    /// Update every installed container, by dependency group (re-pull
    /// each image; a failed group does not stop the others; exits
    /// non-zero if any failed). A digest rolled back before is not tried
    /// again until the image's reference moves.
    #[arg(long, conflicts_with_all = ["image", "set", "display"])]
    pub all: bool,
    /// Switch to this image instead of re-pulling the installed reference
    /// (one container only).
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// Set a template variable; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Print every file and action; change nothing.
    #[arg(long)]
    pub display: bool,
    /// Allow the update to grow the container's host footprint: new host
    /// paths, capabilities, binds, host namespaces, tmpfiles lines on host
    /// paths, host commands. Without it such an update is refused (exit 4)
    /// and `status` shows it waiting; `--all` never allows it.
    #[arg(long, conflicts_with = "all")]
    pub accept_footprint: bool,
    /// Change how hostfs modes reach the host (`safe` or `as-image`; see
    /// `install`); default: as the container was installed.
    #[arg(long, value_name = "MODES", value_parser = ["safe", "as-image"])]
    pub hostfs_modes: Option<String>,
    /// How long a restarted service must stay active (and ready and
    /// healthy, without restarts) before the update stays; `0` only
    /// checks it is still up a second after the restart.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub soak: Duration,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
}

/// One group's outcome, for `--all`.
#[derive(Debug, Serialize)]
struct GroupReport {
    /// The members, in switch order.
    group: Vec<String>,
    /// Per member, when the group went through.
    results: Vec<Updated>,
    /// Why the group was not updated (all of it put back).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Runs `berth update`.
pub fn update(g: &GlobalOpts, a: &UpdateArgs) -> anyhow::Result<()> {
    let layout = g.layout()?;
    if a.image.is_some() && a.names.len() > 1 {
        anyhow::bail!("--image names one container's image; update the others separately");
    }
    let m = connect(&layout)?;
    let plan = if a.all {
        deploy::recover_if_needed(&layout, m.as_ref())?;
        let names: Vec<String> = deploy::list(&layout, m.as_ref())
            .into_iter()
            .map(|l| l.name)
            .collect();
        groups::groups(&update_order::nodes(&layout, &names))
    } else {
        groups::one_group(&update_order::nodes(&layout, &a.names))
    };
    for c in &plan.cycles {
        eprintln!("warning: {c}");
    }
    let mut reports = Vec::new();
    let mut first_error = None;
    for group in &plan.groups {
        let reqs = group
            .iter()
            .map(|n| request(g, &layout, a, n))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let renderer = Arc::new(Renderer::new(g));
        let r = update_group(&layout, &reqs, m.as_ref(), renderer.clone());
        renderer.finish();
        match r {
            Ok(results) => {
                warn_about(&results);
                reports.push(GroupReport {
                    group: group.clone(),
                    results,
                    error: None,
                });
            }
            Err(e) => {
                let e = in_context(e, group);
                if !a.all {
                    return Err(e);
                }
                eprintln!("error: {e:#}");
                reports.push(GroupReport {
                    group: group.clone(),
                    results: Vec::new(),
                    error: Some(format!("{e:#}")),
                });
                first_error.get_or_insert(e);
            }
        }
    }
    print(g, a, &layout, &reports)?;
    let failed: Vec<String> = reports
        .iter()
        .filter(|r| r.error.is_some())
        .map(|r| r.group.join(", "))
        .collect();
    match first_error {
        // The first error keeps its kind (and so the exit code).
        Some(e) => Err(e.context(format!("not updated: {}", failed.join("; ")))),
        None => Ok(()),
    }
}

/// The error of a group: a rollback names the container itself (one
/// line); anything else says what was being updated.
fn in_context(e: crate::Error, group: &[String]) -> anyhow::Error {
    let rolled_back = matches!(e, crate::Error::Deploy(DeployError::RolledBack { .. }));
    let e = anyhow::Error::from(e);
    if rolled_back {
        e
    } else {
        e.context(format!("updating {}", group.join(", ")))
    }
}

fn request(
    g: &GlobalOpts,
    layout: &Layout,
    a: &UpdateArgs,
    name: &str,
) -> anyhow::Result<UpdateRequest> {
    Ok(UpdateRequest {
        name: name.to_string(),
        image: a.image.clone(),
        set: a.set.clone(),
        runtime: g.runtime.clone(),
        berth: berth_exe(layout)?,
        display: a.display,
        refresh: true,
        reset_values: false,
        accept_footprint: a.accept_footprint,
        hostfs_modes: a
            .hostfs_modes
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(anyhow::Error::msg)?,
        limits: a.limits.resolve(g.user).context("--limit")?,
        // update keeps the installed health keys (no --health-* here).
        policy: a.policy.options(g),
        health: None,
        after: None,
        soak: a.soak,
        retry_failed: !a.all,
    })
}

/// Mode changes, kept and shared files, and skipped digests, on stderr.
fn warn_about(results: &[Updated]) {
    for r in results {
        if let Some(p) = &r.plan {
            print_mode_changes(p);
        }
        for k in &r.kept {
            eprintln!("warning: kept {k}");
        }
        for s in &r.shared {
            eprintln!("{s}");
        }
        if let Some(s) = &r.skipped {
            eprintln!("{s}");
        }
    }
}

fn print(
    g: &GlobalOpts,
    a: &UpdateArgs,
    layout: &Layout,
    reports: &[GroupReport],
) -> anyhow::Result<()> {
    if g.json {
        if a.all {
            return output::print_json(&reports);
        }
        let results: Vec<&Updated> = reports.iter().flat_map(|r| &r.results).collect();
        return match results.as_slice() {
            [one] => output::print_json(one),
            all => output::print_json(&all),
        };
    }
    let mut out = String::new();
    for report in reports {
        for r in &report.results {
            if let Some(growth) = &r.footprint_growth {
                print_growth(&r.name, growth, !a.display);
            }
        }
        if a.all && report.group.len() > 1 {
            out.push_str(&format!("group {}:\n", report.group.join(" \u{2192} ")));
        }
        if let Some(e) = &report.error {
            let first = e.lines().next().unwrap_or_default();
            out.push_str(&format!("not updated: {first}\n"));
        }
        for r in &report.results {
            let line = match (&r.plan, a.display, r.changed, &r.skipped) {
                (_, _, false, Some(_)) => format!(
                    "{} stays on {} ({}): its update was rolled back before",
                    r.name, r.from, r.from_digest
                ),
                (_, _, false, None) => format!("{} is up to date ({})", r.name, r.to_digest),
                (Some(plan), true, _, _) => display(layout, plan, "update"),
                _ => switched("Updated", r),
            };
            out.push_str(&line);
            out.push('\n');
        }
    }
    if !out.is_empty() {
        output::println(out.trim_end())?;
    }
    Ok(())
}
