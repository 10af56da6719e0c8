//! How an install or update plan is shown: `--display` (every value, file
//! and link, nothing changed) and the grants block (what the image's config
//! allows beyond berth's default, on stderr and in `--json`).

use super::output::{escape_controls, escape_controls_in_text};
use crate::deploy::grants::{self, Grants};
use crate::deploy::shared::HostfsAction;
use crate::deploy::Plan;
use crate::layout::Layout;

/// A `--json` document with the `grants` field added beside the others.
#[derive(serde::Serialize)]
pub(super) struct WithGrants<'a, T: serde::Serialize> {
    #[serde(flatten)]
    pub(super) inner: &'a T,
    /// What the config grants beyond berth's default (absent without one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) grants: Option<Grants>,
}

/// What the plan's config.json grants beyond berth's default config.
pub(super) fn config_grants(plan: &Plan) -> Option<Grants> {
    let config = plan.config.as_deref()?;
    let state = match (plan.values.get("STATE_DIRECTORY"), plan.values.get("NAME")) {
        (Some(dir), Some(name)) => Some(format!("{}/{name}", dir.trim_end_matches('/'))),
        _ => None,
    };
    match grants::of_config(config, state.as_deref()) {
        Ok(g) => Some(g),
        Err(e) => {
            tracing::warn!("{}: config.json: {e}", plan.name);
            None
        }
    }
}

/// The grants block on stderr: nothing when the config grants nothing more.
pub(super) fn print_grants(name: &str, grants: Option<&Grants>) {
    let Some(g) = grants.filter(|g| !g.is_empty()) else {
        return;
    };
    let mut block = format!("{name}: its config grants more than berth's default:");
    for l in g.lines() {
        block.push_str("\n  ");
        block.push_str(&l);
    }
    eprintln!("{block}");
}

/// One line on stderr per hostfs path whose mode is not the image's
/// (`hostfs /usr/local/bin/helper: mode 0777 → 0755`); `--json` has them
/// as `hostfs_mode_changes`.
pub(super) fn print_mode_changes(plan: &Plan) {
    for c in &plan.hostfs_mode_changes {
        eprintln!("{}", escape_controls(&c.message));
    }
}

/// What `--display` prints: every value, file and link of the plan. Text
/// the image supplies (values, paths, file contents, link targets) is shown
/// with its control characters escaped; file contents keep their lines.
pub(super) fn display(layout: &Layout, plan: &Plan, verb: &str) -> String {
    let e = escape_controls;
    let mut out = format!(
        "Would {verb} {} from {} ({})\n",
        e(&plan.name),
        e(&plan.image.reference),
        e(&plan.image.digest)
    );
    out.push_str(&format!(
        "check out {} into {}/rootfs\n",
        e(&plan.image.commit),
        e(&plan.deployment)
    ));
    for (k, v) in plan.values.iter() {
        out.push_str(&format!(
            "value {}={} ({})\n",
            e(k),
            e(&v.value),
            e(&v.provenance.to_string())
        ));
    }
    if let Some(c) = &plan.config {
        out.push_str(&format!(
            "write {}/config.json:\n{}\n",
            e(&plan.deployment),
            escape_controls_in_text(c)
        ));
    }
    for f in &plan.files {
        if let Some(h) = plan.hostfs.iter().find(|h| h.path == f.path) {
            match h.action {
                HostfsAction::Write => {}
                _ => {
                    out.push_str(&format!("{} ({})\n", e(&h.message), e(&h.source)));
                    continue;
                }
            }
        }
        let text = String::from_utf8(f.content.clone())
            .unwrap_or_else(|_| format!("<{} bytes of binary data>", f.content.len()));
        out.push_str(&format!(
            "write {} (mode {:o}):\n{}",
            e(&f.path),
            f.mode,
            escape_controls_in_text(&text)
        ));
        if !text.ends_with('\n') {
            out.push('\n');
        }
    }
    out.push_str(&format!("write {}/info.json\n", e(&plan.deployment)));
    for l in &plan.links {
        out.push_str(&format!("symlink {} -> {}\n", e(&l.path), e(&l.target)));
    }
    out.push_str(&format!(
        "symlink {}/{} -> {}",
        e(&layout.containers_inside()),
        e(&plan.name),
        e(&plan.slot)
    ));
    out
}
