//! How an install or update plan is shown: `--display` (every value, file
//! and link, nothing changed, and the whole footprint) and the footprint
//! block (what the deployment does to its host beyond its own files, in a
//! few lines on stderr; `--json` has it as `footprint`).

use super::output::{escape_controls, escape_controls_in_text};
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
        "symlink {}/{} -> {}\n",
        e(&layout.containers_inside()),
        e(&plan.name),
        e(&plan.slot)
    ));
    out.push_str(&footprint_section(&plan.footprint));
    out
}
