//! How an install or update plan is shown: `--display` (every value, file
//! and link, nothing changed, and the whole footprint) and the footprint
//! block (what the deployment does to its host beyond its own files, in a
//! few lines on stderr; `--json` has it as `footprint`).

use super::output::escape_controls;
use crate::deploy::footprint::Footprint;
use crate::deploy::shared::HostfsAction;
use crate::deploy::Plan;
use crate::layout::Layout;

/// Items per kind in the short footprint block of `install`.
const SHORT: usize = 4;

/// The footprint block on stderr: nothing when there is no footprint.
pub(super) fn print_footprint(name: &str, footprint: &Footprint) {
    if footprint.is_empty() {
        return;
    }
    let mut block = format!("{name}: host footprint beyond its own files:");
    for l in footprint.lines_upto(SHORT) {
        block.push_str("\n  ");
        block.push_str(&escape_controls(&l));
    }
    eprintln!("{block}");
}

/// What an update adds to the footprint, on stderr: `accepted`, or with
/// `--display`, what `--accept-footprint` would have to allow.
pub(super) fn print_growth(name: &str, growth: &Footprint, accepted: bool) {
    let how = if accepted {
        "accepted"
    } else {
        "the update needs --accept-footprint"
    };
    let mut block = format!("{name}: host footprint grows ({how}):");
    for l in growth.lines() {
        block.push_str("\n  ");
        block.push_str(&escape_controls(&l));
    }
    eprintln!("{block}");
}

/// `footprint:` and one indented line per kind, or `footprint: none…`.
pub(super) fn footprint_section(footprint: &Footprint) -> String {
    if footprint.is_empty() {
        return "footprint: nothing beyond its own files".into();
    }
    let mut out = String::from("footprint:");
    for l in footprint.lines() {
        out.push_str("\n  ");
        out.push_str(&escape_controls(&l));
    }
    out
}

/// What `--display` prints: every value, file and link of the plan.
pub(super) fn display(layout: &Layout, plan: &Plan, verb: &str) -> String {
    let mut out = format!(
        "Would {verb} {} from {} ({})\n",
        plan.name, plan.image.reference, plan.image.digest
    );
    out.push_str(&format!(
        "check out {} into {}/rootfs\n",
        plan.image.commit, plan.deployment
    ));
    for (k, v) in plan.values.iter() {
        out.push_str(&format!("value {k}={} ({})\n", v.value, v.provenance));
    }
    if let Some(c) = &plan.config {
        out.push_str(&format!("write {}/config.json:\n{c}\n", plan.deployment));
    }
    for f in &plan.files {
        if let Some(h) = plan.hostfs.iter().find(|h| h.path == f.path) {
            match h.action {
                HostfsAction::Write => {}
                _ => {
                    out.push_str(&format!("{} ({})\n", h.message, h.source));
                    continue;
                }
            }
        }
        let text = String::from_utf8(f.content.clone())
            .unwrap_or_else(|_| format!("<{} bytes of binary data>", f.content.len()));
        out.push_str(&format!("write {} (mode {:o}):\n{text}", f.path, f.mode));
        if !text.ends_with('\n') {
            out.push('\n');
        }
    }
    out.push_str(&format!("write {}/info.json\n", plan.deployment));
    for l in &plan.links {
        out.push_str(&format!("symlink {} -> {}\n", l.path, l.target));
    }
    out.push_str(&format!(
        "symlink {}/{} -> {}\n",
        layout.containers_inside(),
        plan.name,
        plan.slot
    ));
    out.push_str(&footprint_section(&plan.footprint));
    out
}
