//! The variables of an install: berth's forced values (the commands the
//! units run, the deployment directory, the image), the host defaults of the
//! scope, and the previous deployment's values, resolved by
//! [`crate::template::resolve`].

use std::path::Path;

use super::exports::Exports;
use super::plan::PlanRequest;
use super::{in_root, io_err, DeployError};
use crate::layout::Layout;
use crate::store::image::ImageRecord;
use crate::template::values::{capabilities_value, Forced};
use crate::template::{resolve, HostDefaults, Sources, Values};

/// The resolved values of deploying `record` per `req` into `destdir`.
pub fn values(
    layout: &Layout,
    record: &ImageRecord,
    destdir: &str,
    req: &PlanRequest<'_>,
    exports: &Exports,
) -> Result<Values, DeployError> {
    let name = req.name;
    // `--user` units pass `--user` on, so berth finds the user's store.
    let berth = format!("{}{}", req.berth.display(), layout.scope_args());
    // Units exec berth-run (the same runtime without libostree linked) when
    // it is installed beside berth; see docs/runtime.md.
    let lean = req.berth.with_file_name("berth-run");
    let exec_start = if in_root(layout, &lean.display().to_string()).is_file() {
        format!("{}{} {name}", lean.display(), layout.scope_args())
    } else {
        format!("{berth} run {name}")
    };
    let forced = Forced {
        name: name.to_string(),
        destdir: destdir.to_string(),
        exec_start,
        exec_stop: format!("{berth} kill --if-running {name}"),
        exec_startpre: String::new(),
        exec_stoppost: String::new(),
        host_uid: nix::unistd::getuid().as_raw(),
        host_gid: nix::unistd::getgid().as_raw(),
        image_name: req.image_name.to_string(),
        image_id: record.image_id.clone(),
    };
    let mut caps: Vec<String> = caps::read(None, caps::CapSet::Bounding)
        .map(|s| s.iter().map(|c| c.to_string()).collect())
        .unwrap_or_default();
    caps.sort();
    let host = match layout.user_dirs() {
        None => HostDefaults::system(capabilities_value(&caps), req.runtime.to_string()),
        Some(dirs) => {
            // RUN_DIRECTORY and the runtime's state need $XDG_RUNTIME_DIR.
            layout.runtime_dir().map_err(|e| DeployError::Invalid {
                file: "RUN_DIRECTORY".into(),
                detail: e.to_string(),
            })?;
            HostDefaults::user(dirs, capabilities_value(&caps), req.runtime.to_string())
        }
    };
    let uuid = std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .map_err(io_err(Path::new("/proc/sys/kernel/random/uuid")))?;
    let mut previous = req
        .previous
        .map(|i| i.values.carried_over())
        .unwrap_or_default();
    if req.reset_values {
        if let Some(i) = req.previous {
            previous.retain(|k, _| {
                i.values.provenance(k) == Some(crate::template::Provenance::Generated)
            });
        }
    }
    Ok(resolve(&Sources {
        forced: &forced,
        set: req.set,
        previous: &previous,
        host: &host,
        manifest: &exports.defaults,
        generated_uuid: uuid.trim(),
    })?)
}
