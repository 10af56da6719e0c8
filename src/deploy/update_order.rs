//! The I/O half of [`super::groups`]: the installed containers' units,
//! read through the root, as grouping [`Node`]s.

use std::path::PathBuf;

use super::groups::Node;
use super::Info;
use crate::layout::Layout;
use crate::systemd::{Dependencies, UnitName};

/// The grouping node of each installed container in `names` (skipped with
/// a warning when its record cannot be read).
pub fn nodes(layout: &Layout, names: &[String]) -> Vec<Node> {
    let root = layout.open_root().ok();
    let mut out = Vec::new();
    for name in names {
        let info = match Info::read(layout, name) {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!("{name}: {e}; ordered by name only");
                out.push(Node {
                    name: name.clone(),
                    ..Node::default()
                });
                continue;
            }
        };
        let mut node = Node {
            name: name.clone(),
            units: info.units.clone(),
            after: info.after.clone(),
            ..Node::default()
        };
        for u in &info.units {
            let Ok(unit) = UnitName::parse(u) else {
                continue;
            };
            let path = PathBuf::from(format!("{}/{u}", layout.unit_dir()));
            let Some(text) = root.as_ref().and_then(|r| r.read(&path).ok()) else {
                continue;
            };
            let Ok(deps) = Dependencies::parse(&String::from_utf8_lossy(&text), &unit) else {
                continue;
            };
            let words = |l: &[UnitName]| l.iter().map(|u| u.to_string()).collect::<Vec<_>>();
            node.needs.extend(words(&deps.after));
            node.needs.extend(words(&deps.requires));
            node.needs.extend(words(&deps.wants));
            node.before.extend(words(&deps.before));
        }
        out.push(node);
    }
    out
}
