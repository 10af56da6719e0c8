//! `berth install`, `uninstall`, `rollback`, `status`, `list`.

use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use super::config::{LimitArgs, PolicyArgs};
use super::health::HealthArgs;
use super::output::{self, Renderer};
use super::plan_view::{display, footprint_section, print_footprint, print_mode_changes};
use super::GlobalOpts;
use crate::deploy::shared::HostfsAction;
use crate::deploy::{self, InstallRequest};
use crate::layout::Layout;
use crate::systemd::manager::{self, Manager};

/// Install an image as a systemd service.
///
/// Pulls IMAGE when it is not stored, checks it out into
/// ROOT/var/lib/berth/containers/NAME.0, renders the image's /exports
/// templates (or berth's defaults) into NAME.0/config.json,
/// /etc/systemd/system/NAME.service (and .socket/.timer), /etc/tmpfiles.d/NAME.conf
/// and the image's hostfs files, enables the units as their [Install]
/// sections ask and reloads systemd. Without a running systemd (or with
/// --root) only files and links are written, as `systemctl --root enable`
/// would.
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Container name (default: the image's repository name).
    #[arg(long)]
    pub name: Option<String>,
    /// Set a template variable; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Also start the units and wait for the result (a failure undoes the install).
    #[arg(long)]
    pub now: bool,
    /// Print every file and action; change nothing.
    #[arg(long)]
    pub display: bool,
    /// How the modes of the image's hostfs files and directories reach the
    /// host: `safe` drops group and other write, setuid, setgid and sticky
    /// (each change is printed); `as-image` keeps them. Updates keep the choice.
    #[arg(long, value_name = "MODES", default_value = "safe", value_parser = ["safe", "as-image"])]
    pub hostfs_modes: String,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub health: HealthArgs,
    /// The image (any reference `berth pull` takes).
    #[arg(value_name = "IMAGE")]
    pub image: String,
}

/// Remove an installed container: units stopped and disabled, unit files,
/// tmpfiles entry, unmodified host files and both deployments removed. The
/// image stays in the store until `berth images prune`.
#[derive(Debug, Args)]
pub struct UninstallArgs {
    /// The container.
    pub name: String,
}

/// Switch a container back to its previous deployment (units, tmpfiles,
/// host files and values), restarting the service if it was running.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The container.
    pub name: String,
}

/// Show a container: deployment, image, values, files, units, journal.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The container.
    pub name: String,
}

/// List installed containers: name, image, digest, deployment, unit state.
#[derive(Debug, Args)]
pub struct ListArgs {}

pub(super) fn connect(layout: &Layout) -> anyhow::Result<Box<dyn Manager>> {
    manager::connect(layout).context("connecting to systemd")
}

pub(super) fn berth_exe(layout: &Layout) -> anyhow::Result<std::path::PathBuf> {
    let exe = super::front::berth_executable().context("finding the berth executable")?;
    Ok(deploy::berth_for_root(layout, &exe))
}

/// Runs `berth install`.
pub fn install(g: &GlobalOpts, a: &InstallArgs) -> anyhow::Result<()> {
    let layout = g.layout()?;
    let req = InstallRequest {
        name: a.name.clone(),
        image: a.image.clone(),
        set: a.set.clone(),
        runtime: g.runtime.clone(),
        berth: berth_exe(&layout)?,
        display: a.display,
        now: a.now,
        enable: true,
        hostfs_modes: a.hostfs_modes.parse().map_err(anyhow::Error::msg)?,
        limits: a.limits.resolve(g.user)?,
        policy: a.policy.options(g),
        health: a.health.overrides(),
        after: Vec::new(),
    };
    let renderer = Arc::new(Renderer::new(g));
    let m = connect(&layout)?;
    if a.now && !a.display && !m.is_live() {
        if layout.is_user() {
            anyhow::bail!(
                "--now needs your systemd user manager (on the session bus), and none \
                 answers; install without --now (the units start at your next login)"
            );
        }
        anyhow::bail!(
            "--now needs a running systemd, and {} has none; install without --now \
             (the units start at the next boot)",
            g.root.display()
        );
    }
    let plan = deploy::install(&layout, &req, m.as_ref(), renderer.clone()).map_err(|e| {
        // The refusal of a run-once image names the image itself: one line.
        let run_once = matches!(e, crate::Error::RunOnce(_));
        let e = anyhow::Error::from(e);
        if run_once {
            e
        } else {
            e.context(format!("installing {}", a.image))
        }
    })?;
    renderer.finish();
    print_mode_changes(&plan);
    for k in &plan.kept {
        eprintln!("warning: kept {k}");
    }
    if g.json {
        return output::print_json(&plan);
    }
    let out = if a.display {
        display(&layout, &plan, "install")
    } else {
        print_footprint(&plan.name, &plan.footprint);
        let mut out = format!(
            "Checked out {} into {}/rootfs",
            plan.image.reference, plan.deployment
        );
        for f in &plan.files {
            match plan.hostfs.iter().find(|h| h.path == f.path) {
                Some(h) => match &h.action {
                    HostfsAction::Write => out.push_str(&format!("\nWrote {}", f.path)),
                    HostfsAction::CreateDir => {
                        out.push_str(&format!("\nCreated directory {}", f.path))
                    }
                    HostfsAction::Link => out.push_str(&format!(
                        "\nCreated symlink {} \u{2192} {}.",
                        f.path,
                        String::from_utf8_lossy(&f.content)
                    )),
                    HostfsAction::Shared { .. } | HostfsAction::SharedDir => {
                        out.push_str(&format!("\nShared {}", h.message))
                    }
                    HostfsAction::NotBerths => {}
                },
                None => out.push_str(&format!("\nWrote {}", f.path)),
            }
        }
        for l in &plan.links {
            out.push_str(&format!(
                "\nCreated symlink {} \u{2192} {}.",
                l.path, l.target
            ));
        }
        out.push_str(&format!(
            "\nInstalled {} ({})",
            plan.name, plan.image.digest
        ));
        if a.now {
            out.push_str(&format!("\nStarted {}", plan.units.join(", ")));
        }
        out
    };
    output::println(&out)?;
    Ok(())
}

/// Runs `berth uninstall`.
pub fn uninstall(g: &GlobalOpts, a: &UninstallArgs) -> anyhow::Result<()> {
    let layout = g.layout()?;
    let m = connect(&layout)?;
    let r = deploy::uninstall(&layout, &a.name, m.as_ref())
        .with_context(|| format!("uninstalling {}", a.name))?;
    for k in &r.kept {
        eprintln!("warning: kept {k}");
    }
    for s in &r.shared {
        eprintln!("{s}");
    }
    for n in &r.needed_by {
        eprintln!("warning: {n}; it will fail to start without it");
    }
    if g.json {
        return output::print_json(&r);
    }
    output::println(&format!("Uninstalled {}", a.name))?;
    Ok(())
}

/// Runs `berth rollback`.
pub fn rollback(g: &GlobalOpts, a: &RollbackArgs) -> anyhow::Result<()> {
    let layout = g.layout()?;
    let m = connect(&layout)?;
    let r = deploy::rollback(&layout, &a.name, m.as_ref())
        .with_context(|| format!("rolling back {}", a.name))?;
    for k in &r.kept {
        eprintln!("warning: kept {k}");
    }
    if g.json {
        return output::print_json(&r);
    }
    output::println(&switched("Rolled back", &r))?;
    Ok(())
}

/// `VERB NAME from SLOT (DIGEST) to SLOT (DIGEST)[; restarted]`.
pub(super) fn switched(verb: &str, r: &deploy::update::Updated) -> String {
    format!(
        "{verb} {} from {} ({}) to {} ({}){}",
        r.name,
        r.from,
        r.from_digest,
        r.to,
        r.to_digest,
        if r.restarted { "; restarted" } else { "" }
    )
}

/// Runs `berth status`.
pub fn status(g: &GlobalOpts, a: &StatusArgs) -> anyhow::Result<()> {
    let layout = g.layout()?;
    let m = connect(&layout)?;
    deploy::recover_if_needed(&layout, m.as_ref())?;
    // Through crate::Error, so that exit_code finds its kind: a container
    // that is not installed is exit 3.
    let s = deploy::status::status(&layout, &a.name, m.as_ref())
        .map_err(crate::Error::from)
        .with_context(|| format!("status of {}", a.name))?;
    if g.json {
        return output::print_json(&s);
    }
    let mut out = format!(
        "{}: {} ({})\ndeployment: {}",
        s.name, s.image, s.digest, s.deployment
    );
    if let Some(t) = &s.trust {
        out.push_str(&format!("\ntrust:      {}", t.describe()));
    }
    if let Some(p) = &s.previous {
        out.push_str(&format!(
            "\nprevious:   {} {} ({}) (berth rollback {})",
            p.deployment, p.image, p.digest, s.name
        ));
    }
    for u in &s.units {
        out.push_str(&format!("\nunit {}: {}", u.unit, u.state));
    }
    if let Some(h) = &s.health {
        out.push('\n');
        out.push_str(&output::health_line(h));
    }
    out.push_str("\nvalues:");
    for (k, v) in s.values.iter() {
        let value = output::escape_controls(&v.value);
        out.push_str(&format!("\n  {k}={value} ({})", v.provenance));
    }
    out.push_str("\nfiles:");
    for f in &s.files {
        let path = output::escape_controls(&f.path);
        out.push_str(&format!("\n  {path} ({})", f.state));
    }
    for l in &s.links {
        out.push_str(&format!("\n  {} (link)", output::escape_controls(l)));
    }
    out.push('\n');
    out.push_str(&footprint_section(&s.footprint));
    if let Some(l) = &s.last_update {
        for line in l.describe(&s.name).lines() {
            out.push('\n');
            out.push_str(&output::escape_controls(line));
        }
    }
    if let Some(w) = &s.update_waits {
        for l in w.describe().lines() {
            out.push('\n');
            out.push_str(&output::escape_controls(l));
        }
    }
    if !s.journal.is_empty() {
        out.push_str("\njournal:");
        for l in &s.journal {
            out.push_str(&format!("\n  {}", output::escape_controls(l)));
        }
    }
    output::println(&out)?;
    Ok(())
}

/// Runs `berth list`.
pub fn list(g: &GlobalOpts, _a: &ListArgs) -> anyhow::Result<()> {
    let layout = g.layout()?;
    let m = connect(&layout)?;
    deploy::recover_if_needed(&layout, m.as_ref())?;
    let rows = deploy::list(&layout, m.as_ref());
    if g.json {
        return output::print_json(&rows);
    }
    let mut out = format!(
        "{:<20} {:<40} {:<20} {:<16} {:<12} HEALTH",
        "NAME", "IMAGE", "DIGEST", "DEPLOYMENT", "STATE"
    );
    for r in rows {
        let digest: String = r.digest.chars().take(19).collect();
        out.push_str(&format!(
            "\n{:<20} {:<40} {:<20} {:<16} {:<12} {}",
            r.name,
            r.image,
            digest,
            r.deployment,
            r.state,
            output::health_word(r.health)
        ));
    }
    output::println(&out)?;
    Ok(())
}

/// Mount an installed container's deployment, or a stored image, read-only on DIR.
#[derive(Debug, Args)]
pub struct MountArgs {
    /// A container name or an image reference.
    pub what: String,
    /// An existing directory.
    pub dir: std::path::PathBuf,
}

/// Unmount what `berth mount` mounted on DIR.
#[derive(Debug, Args)]
pub struct UmountArgs {
    /// The directory.
    pub dir: std::path::PathBuf,
}

/// Runs `berth mount`.
pub fn mount(g: &GlobalOpts, a: &MountArgs) -> anyhow::Result<()> {
    let layout = g.layout()?;
    if layout.is_user() {
        // A bind mount needs CAP_SYS_ADMIN; a user's deployments are plain
        // read-only trees the user can read where they are.
        return Err(super::UsageError(format!(
            "berth --user mount: mounting needs root. A user container's files are \
             readable in place: {}/{}/rootfs; an image: berth --user images checkout IMAGE DIR",
            deploy::containers_dir(&layout).display(),
            a.what
        ))
        .into());
    }
    let m = deploy::mount::mount_at(&layout, &a.what, &a.dir)
        .with_context(|| format!("mounting {} on {}", a.what, a.dir.display()))?;
    if g.json {
        return output::print_json(&m);
    }
    output::println(&format!(
        "Mounted {} read-only on {}",
        m.what,
        m.dir.display()
    ))?;
    Ok(())
}

/// Runs `berth umount`.
pub fn umount(g: &GlobalOpts, a: &UmountArgs) -> anyhow::Result<()> {
    deploy::mount::umount_at(&g.layout()?, &a.dir)
        .with_context(|| format!("unmounting {}", a.dir.display()))?;
    Ok(())
}
