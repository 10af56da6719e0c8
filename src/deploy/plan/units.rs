//! The units and tmpfiles.d text of a plan, rendered from the image's
//! templates (or berth's defaults).

use super::super::render;
use super::super::unit_names::Claim;
use super::super::{exports, paths, DeployError, EntryKind, Link};
use super::PlannedFile;
use crate::layout::Layout;
use crate::store::image::ImageRecord;
use crate::systemd::dropin::{runtime_dropin, DROPIN_FILE};
use crate::systemd::manager::Manager;
use crate::systemd::{ContainerName, Install, Marker, UnitType};
use crate::template::{FileKind, Values};

/// The tmpfiles.d text: the image's `tmpfiles.template` rendered and
/// checked, else berth's default for the container's config.
pub(super) fn tmpfiles(
    layout: &Layout,
    record: &ImageRecord,
    exports: &exports::Exports,
    values: &Values,
    config: Option<&str>,
) -> Result<Option<String>, DeployError> {
    Ok(match (&exports.tmpfiles, config) {
        (Some(t), _) => {
            let text = render::render("/exports/tmpfiles.template", t, values, FileKind::Tmpfiles)?;
            paths::check_tmpfiles(&record.reference, "tmpfiles.template", &text)?;
            Some(text)
        }
        (None, Some(c)) => render::default_tmpfiles(layout.root(), c, layout.is_user()),
        (None, None) => None,
    })
}

/// The unit templates to render: the image's, or berth's default service.
pub(super) fn unit_templates<'e>(
    layout: &Layout,
    exports: &'e exports::Exports,
) -> Vec<(UnitType, &'static str, &'e str)> {
    let mut out: Vec<(UnitType, &'static str, &'e str)> = Vec::new();
    if exports.no_container_service {
        return out;
    }
    out.push(match &exports.service {
        Some(t) => (UnitType::Service, "/exports/service.template", t.as_str()),
        None if layout.is_user() => (
            UnitType::Service,
            "templates/user-service.template",
            render::DEFAULT_USER_SERVICE,
        ),
        None => (
            UnitType::Service,
            "templates/service.template",
            render::DEFAULT_SERVICE,
        ),
    });
    if let Some(t) = &exports.socket {
        out.push((UnitType::Socket, "/exports/socket.template", t.as_str()));
    }
    if let Some(t) = &exports.timer {
        out.push((UnitType::Timer, "/exports/timer.template", t.as_str()));
    }
    out
}

/// One unit template and what it is rendered with.
pub(super) struct UnitInput<'a> {
    pub(super) layout: &'a Layout,
    pub(super) name: &'a ContainerName,
    pub(super) kind: UnitType,
    pub(super) file: &'a str,
    pub(super) template: &'a str,
    pub(super) values: &'a Values,
    pub(super) marker: &'a Marker,
    pub(super) enable: bool,
}

/// A rendered unit: its name and the enablement links it asks for.
pub(super) struct RenderedUnit {
    pub(super) name: String,
    pub(super) links: Vec<Link>,
}

/// Renders one unit into `files` (a service's runtime drop-in before it),
/// with the names it claims in `claims`.
pub(super) fn render_unit(
    u: &UnitInput<'_>,
    manager: &dyn Manager,
    files: &mut Vec<PlannedFile>,
    claims: &mut Vec<(String, Claim)>,
) -> Result<RenderedUnit, DeployError> {
    let unit_dir = u.layout.unit_dir();
    let unit_name = u.name.unit(u.kind);
    let unit_path = format!("{unit_dir}/{unit_name}");
    let body = render::render(u.file, u.template, u.values, FileKind::Unit)?;
    let text = u.marker.prepend_to(&body);
    let unit_err = |source| DeployError::Unit {
        file: unit_path.clone(),
        source,
    };
    crate::systemd::unit::assignments(&text).map_err(unit_err)?;
    if u.kind == UnitType::Service {
        // Before the unit: PID 1 never sees the unit without it.
        // A berth-run that becomes crun leaves ctr/NAME to the unit's cleanup.
        let cleanup = u
            .values
            .get("EXEC_START")
            .filter(|s| crate::runtime::direct::in_command(s))
            .and(u.values.get("EXEC_STOPPOST"));
        let dropin = runtime_dropin(&body, cleanup).map_err(unit_err)?;
        for o in &dropin.overridden {
            tracing::warn!("{unit_path}: {o}; overridden in {unit_name}.d/{DROPIN_FILE}");
        }
        if let Some(d) = dropin.body {
            files.push(PlannedFile {
                path: format!("{unit_path}.d/{DROPIN_FILE}"),
                content: u.marker.prepend_to(&d).into_bytes(),
                mode: 0o644,
                owned: true,
                kind: EntryKind::File,
            });
        }
    }
    claims.push((unit_name.to_string(), Claim::Container));
    if u.enable {
        let install = Install::parse(&text, &unit_name).map_err(unit_err)?;
        let words = install.alias.iter().map(|a| ("Alias", a));
        for (key, word) in words.chain(install.also.iter().map(|a| ("Also", a))) {
            let holder = unit_name.to_string();
            claims.push((word.to_string(), Claim::Install { key, unit: holder }));
        }
    }
    let links = manager
        .enable_plan(&unit_name, &text, unit_dir)
        .map_err(unit_err)?
        .into_iter()
        .map(|s| Link {
            path: s.link,
            target: s.target,
        })
        .collect();
    files.push(PlannedFile {
        path: unit_path,
        content: text.into_bytes(),
        mode: 0o644,
        owned: true,
        kind: EntryKind::File,
    });
    Ok(RenderedUnit {
        name: unit_name.to_string(),
        links,
    })
}
