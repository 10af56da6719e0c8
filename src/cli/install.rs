//! `berth install`, `berth uninstall`, `berth list`.

use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use super::output::{self, Renderer};
use super::GlobalOpts;
use crate::deploy::{self, InstallRequest};
use crate::systemd::manager::{Manager, Offline};

/// Install an image as a systemd service (offline: writes the unit and its
/// enablement links; nothing is started).
///
/// Pulls IMAGE when it is not stored, checks it out into
/// ROOT/var/lib/berth/containers/NAME.0, renders the image's /exports
/// templates (or berth's defaults) into NAME.0/config.json,
/// /etc/systemd/system/NAME.service and /etc/tmpfiles.d/NAME.conf, and
/// enables the unit as its [Install] section asks.
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Container name (default: the image's repository name).
    #[arg(long)]
    pub name: Option<String>,
    /// Set a template variable; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Print every file and action; change nothing.
    #[arg(long)]
    pub display: bool,
    /// The image (any reference `berth pull` takes).
    #[arg(value_name = "IMAGE")]
    pub image: String,
}

/// Remove an installed container: unit, enablement links, tmpfiles entry
/// and deployments. The image stays in the store.
#[derive(Debug, Args)]
pub struct UninstallArgs {
    /// The container.
    pub name: String,
}

/// List installed containers: name, image, digest, deployment, unit state.
#[derive(Debug, Args)]
pub struct ListArgs {}

/// The service manager for this root; offline only for now (no D-Bus yet).
fn manager(g: &GlobalOpts) -> Box<dyn Manager> {
    Box::new(Offline::new(&g.root))
}

/// Warns when a running systemd will not hear of the change: berth has no
/// D-Bus manager yet, so it only writes files and links.
fn warn_if_systemd_runs(g: &GlobalOpts) {
    if g.root == std::path::Path::new("/") && std::path::Path::new("/run/systemd/system").exists() {
        eprintln!(
            "warning: systemd is running, but berth does not talk to it yet; \
             run `systemctl daemon-reload` (and start or stop the unit) yourself"
        );
    }
}

/// Runs `berth install`.
pub fn install(g: &GlobalOpts, a: &InstallArgs) -> anyhow::Result<()> {
    let berth = std::env::current_exe().context("finding the berth executable")?;
    let req = InstallRequest {
        name: a.name.clone(),
        image: a.image.clone(),
        set: a.set.clone(),
        runtime: g.runtime.clone(),
        berth,
        display: a.display,
    };
    if !a.display {
        warn_if_systemd_runs(g);
    }
    let renderer = Arc::new(Renderer::new(g));
    let m = manager(g);
    let plan = deploy::install(&g.root, &req, m.as_ref(), renderer.clone())
        .with_context(|| format!("installing {}", a.image))?;
    renderer.finish();
    if g.json {
        return output::print_json(&plan);
    }
    let mut out = String::new();
    if a.display {
        out.push_str(&format!(
            "Would install {} from {} ({})\n",
            plan.name, plan.image.reference, plan.image.digest
        ));
        out.push_str(&format!(
            "check out {} into {}/rootfs\n",
            plan.image.commit, plan.deployment
        ));
        for (k, v) in plan.values.iter() {
            out.push_str(&format!("value {k}={} ({})\n", v.value, v.provenance));
        }
        for f in &plan.files {
            out.push_str(&format!("write {}:\n{}", f.path, f.content));
            if !f.content.ends_with('\n') {
                out.push('\n');
            }
        }
        out.push_str(&format!("write {}/info.json\n", plan.deployment));
        for (l, t) in &plan.links {
            out.push_str(&format!("symlink {l} -> {t}\n"));
        }
        out.push_str(&format!(
            "symlink /var/lib/berth/containers/{0} -> {0}.0",
            plan.name
        ));
    } else {
        out.push_str(&format!(
            "Checked out {} into {}/rootfs",
            plan.image.reference, plan.deployment
        ));
        for f in &plan.files {
            out.push_str(&format!("\nWrote {}", f.path));
        }
        for (l, t) in &plan.links {
            out.push_str(&format!("\nCreated symlink {l} \u{2192} {t}."));
        }
        out.push_str(&format!(
            "\nInstalled {} ({})",
            plan.name, plan.image.digest
        ));
    }
    output::println(&out)?;
    Ok(())
}

/// Runs `berth uninstall`.
pub fn uninstall(g: &GlobalOpts, a: &UninstallArgs) -> anyhow::Result<()> {
    warn_if_systemd_runs(g);
    let m = manager(g);
    let r = deploy::uninstall(&g.root, &a.name, m.as_ref())
        .with_context(|| format!("uninstalling {}", a.name))?;
    for k in &r.kept {
        eprintln!("warning: kept {k}");
    }
    if g.json {
        return output::print_json(&r);
    }
    output::println(&format!("Uninstalled {}", a.name))?;
    Ok(())
}

/// Runs `berth list`.
pub fn list(g: &GlobalOpts, _a: &ListArgs) -> anyhow::Result<()> {
    let m = manager(g);
    let rows = deploy::list(&g.root, m.as_ref());
    if g.json {
        return output::print_json(&rows);
    }
    let mut out = format!(
        "{:<20} {:<40} {:<20} {:<16} STATE",
        "NAME", "IMAGE", "DIGEST", "DEPLOYMENT"
    );
    for r in rows {
        let digest: String = r.digest.chars().take(19).collect();
        out.push_str(&format!(
            "\n{:<20} {:<40} {:<20} {:<16} {}",
            r.name, r.image, digest, r.deployment, r.state
        ));
    }
    output::println(&out)?;
    Ok(())
}
