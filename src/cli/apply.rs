//! `berth apply` and `berth diff`: a host described by a manifest.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use super::config::{LimitArgs, PolicyArgs};
use super::output::{self, Renderer};
use super::GlobalOpts;
use crate::deploy::Info;
use crate::image::limits::Limits;
use crate::manifest::apply::{apply as apply_manifest, ApplyOptions};
use crate::manifest::plan::Action;
use crate::systemd::manager;

/// Make the installed system containers match a manifest.
///
/// PATH is a TOML file or a directory of them (merged in name order; see
/// docs/manifest.md). Every entry is validated, pulled if its image is not
/// stored, and rendered before anything changes; then entries are
/// installed, updated or reconfigured in dependency order, and containers
/// this manifest installed earlier but no longer lists are removed.
/// Containers installed by hand are never removed. A failure puts every
/// entry switched in this run back.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Print what would be done, per entry, and change nothing.
    #[arg(long)]
    pub plan: bool,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// The manifest file or directory.
    pub path: PathBuf,
}

/// Show the file changes `berth apply PATH` would make, per container.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The manifest file or directory.
    pub path: PathBuf,
}

fn run(
    g: &GlobalOpts,
    path: &std::path::Path,
    plan_only: bool,
    limits: Limits,
    policy: crate::trust::source::PolicyOptions,
) -> anyhow::Result<crate::manifest::apply::Applied> {
    let manifest = crate::manifest::load(path).map_err(crate::Error::from)?;
    let layout = g.layout()?;
    let m = manager::connect(&layout).context("connecting to systemd")?;
    let opts = ApplyOptions {
        runtime: g.runtime.clone(),
        berth: crate::deploy::berth_for_root(
            &layout,
            &super::front::berth_executable().context("finding the berth executable")?,
        ),
        plan_only,
        limits,
        policy,
    };
    let renderer = Arc::new(Renderer::new(g));
    let r = apply_manifest(&layout, &manifest, &opts, m.as_ref(), renderer.clone())
        .with_context(|| format!("applying {}", path.display()))?;
    renderer.finish();
    for p in r.plans.values() {
        super::plan_view::print_mode_changes(p);
    }
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    Ok(r)
}

/// Runs `berth apply`.
pub fn apply(g: &GlobalOpts, a: &ApplyArgs) -> anyhow::Result<()> {
    let r = run(
        g,
        &a.path,
        a.plan,
        a.limits.resolve(g.user)?,
        a.policy.options(g),
    )?;
    if g.json {
        return output::print_json(&r);
    }
    let mut out = String::new();
    for s in &r.steps {
        let action = serde_json::to_value(s.action)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        out.push_str(&format!("{:<12} {:<20} {}\n", action, s.name, s.reason));
    }
    if !r.changed {
        out.push_str("Nothing to do.");
    } else if a.plan {
        out.push_str("(plan only; nothing changed)");
    } else {
        out.push_str("Applied.");
    }
    output::println(out.trim_end())?;
    Ok(())
}

/// Runs `berth diff`.
pub fn diff(g: &GlobalOpts, a: &DiffArgs) -> anyhow::Result<()> {
    let layout = g.layout()?;
    let r = run(g, &a.path, true, Limits::default(), Default::default())?;
    let mut out = String::new();
    let mut diffs = serde_json::Map::new();
    for s in &r.steps {
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        match (s.action, r.plans.get(&s.name)) {
            (Action::Unchanged, _) => continue,
            (Action::Remove, _) => {
                if let Ok(info) = Info::read(&layout, &s.name) {
                    files = info
                        .files
                        .iter()
                        .map(|f| (f.path.clone(), Vec::new()))
                        .collect();
                }
            }
            (_, Some(plan)) => {
                files = plan
                    .files
                    .iter()
                    .map(|f| (f.path.clone(), f.content.clone()))
                    .collect();
                if let Ok(info) = Info::read(&layout, &s.name) {
                    for f in info.files {
                        if !files.iter().any(|(p, _)| p == &f.path) {
                            files.push((f.path, Vec::new()));
                        }
                    }
                }
            }
            (_, None) => {
                out.push_str(&format!(
                    "# {}: {} (not rendered: image not stored yet)\n",
                    s.name, s.reason
                ));
                continue;
            }
        }
        let mut text = String::new();
        for (path, new) in files {
            let old = layout
                .open_root()
                .and_then(|r| r.read(std::path::Path::new(&path)))
                .unwrap_or_default();
            if old == new {
                continue;
            }
            let old = String::from_utf8_lossy(&old);
            let new = String::from_utf8_lossy(&new);
            let d = similar::TextDiff::from_lines(old.as_ref(), new.as_ref());
            text.push_str(
                &d.unified_diff()
                    .header(&format!("a{path}"), &format!("b{path}"))
                    .to_string(),
            );
        }
        out.push_str(&format!("# {}: {}\n{text}", s.name, s.reason));
        diffs.insert(s.name.clone(), text.into());
    }
    if g.json {
        return output::print_json(&diffs);
    }
    output::println(out.trim_end())?;
    Ok(())
}
