//! PURE: a unit's `[Install]` section, and the symlinks that enable it
//! exactly as `systemctl --root=DIR enable` (systemd 252) creates them.
//!
//! ```text
//! <unit dir>/                           /etc/systemd/system for --system
//! ├── NAME.service                      the unit file
//! ├── ALIAS.service -> <unit dir>/NAME.service                    Alias=
//! ├── TARGET.wants/NAME.service -> <unit dir>/NAME.service        WantedBy=
//! └── TARGET.requires/NAME.service -> <unit dir>/NAME.service     RequiredBy=
//! ```
//!
//! Link targets are absolute paths as seen from inside the root. `Also=`
//! names other units to enable in the same way; the caller does that with
//! their own files. These rules were taken from experiments with
//! `systemctl --root` and are the table tests below:
//!
//! - `WantedBy=`, `RequiredBy=`, `Alias=`: words split on whitespace, with
//!   `"…"` / `'…'` quoting and `\` as a plain character; an empty assignment
//!   clears the list; an unbalanced quote drops the rest of the line (a
//!   warning). `Also=` splits without unquoting.
//! - Specifiers `%n %N %p %i %j %%` are resolved for the unit (a template's
//!   `DefaultInstance=` fills `%i`); `%P %I %J` are invalid in `[Install]`;
//!   host specifiers (`%H`, `%m`, …) are refused, since berth enables offline.
//!   A word that is then not a unit name is an error (systemctl fails too).
//! - A template (`foo@.service`) is linked under its `DefaultInstance=`
//!   (`foo@inst.service` → the template file); without one it can only be
//!   wanted by template targets. Template targets are not instantiated.
//! - `Alias=`: same type; same kind (plain, template, instance with the same
//!   instance) or an instance alias of a template; a template alias of an
//!   instance takes its instance; an alias to itself is skipped.
//! - `UpheldBy=` is unknown to systemd 252's enabler and, like any unknown
//!   key, ignored with a warning.

use super::name::{is_unit_name_byte, UnitName, UnitType};
use super::unit::{assignments, resolve_specifiers, SpecifierSet, UnitError};

/// The `[Install]` section of one unit, specifiers resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Install {
    /// The unit this section belongs to (the unit file's name).
    pub unit: UnitName,
    /// `WantedBy=`.
    pub wanted_by: Vec<UnitName>,
    /// `RequiredBy=`.
    pub required_by: Vec<UnitName>,
    /// `Alias=`, validated; self-aliases dropped.
    pub alias: Vec<UnitName>,
    /// `Also=`: units to enable along with this one.
    pub also: Vec<UnitName>,
    /// `DefaultInstance=` of a template.
    pub default_instance: Option<String>,
    /// What systemctl would warn about and skip.
    pub warnings: Vec<String>,
}

/// One symlink to create: `link` (a path in the root) pointing to `target`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Symlink {
    /// Where the link goes, such as
    /// `/etc/systemd/system/multi-user.target.wants/foo.service`.
    pub link: String,
    /// What it points to, such as `/etc/systemd/system/foo.service`.
    pub target: String,
}

/// Raw words of the section, before specifiers.
#[derive(Default)]
struct Raw {
    wanted_by: Vec<(String, usize)>,
    required_by: Vec<(String, usize)>,
    alias: Vec<(String, usize)>,
    also: Vec<(String, usize)>,
    default_instance: Option<String>,
}

impl Install {
    /// Reads the `[Install]` section(s) of `text`, the unit file of `unit`.
    pub fn parse(text: &str, unit: &UnitName) -> Result<Install, UnitError> {
        parse_install(text, unit)
    }
}

fn parse_install(text: &str, unit: &UnitName) -> Result<Install, UnitError> {
    let parsed = assignments(text)?;
    let mut warnings = parsed.warnings;
    let mut raw = Raw::default();
    for a in parsed.assignments.iter().filter(|a| a.section == "Install") {
        let line = a.line;
        let list = match a.key.as_str() {
            "WantedBy" => &mut raw.wanted_by,
            "RequiredBy" => &mut raw.required_by,
            "Alias" if !unit.unit_type().may_alias() => {
                warnings.push(format!(
                    "line {line}: Alias= is not allowed for this unit type, ignored"
                ));
                continue;
            }
            "Alias" => &mut raw.alias,
            "Also" => {
                let words = a.value.split(is_space).filter(|w| !w.is_empty());
                raw.also.extend(words.map(|w| (w.to_string(), line)));
                continue;
            }
            "DefaultInstance" if unit.is_template() => {
                raw.default_instance = Some(a.value.clone());
                continue;
            }
            "DefaultInstance" => {
                warnings.push(format!(
                    "line {line}: DefaultInstance= only applies to templates, ignored"
                ));
                continue;
            }
            key => {
                warnings.push(format!(
                    "line {line}: unknown key {key:?} in [Install], ignored"
                ));
                continue;
            }
        };
        if a.value.is_empty() {
            list.clear();
            continue;
        }
        let (words, complete) = unquote_words(&a.value);
        list.extend(words.into_iter().map(|w| (w, line)));
        if !complete {
            warnings.push(format!(
                "line {line}: unbalanced quote, rest of the line ignored"
            ));
        }
    }
    resolve(raw, unit, warnings)
}

fn resolve(raw: Raw, unit: &UnitName, warnings: Vec<String>) -> Result<Install, UnitError> {
    let default_instance = match raw.default_instance {
        None => None,
        Some(value) => {
            let v =
                resolve_specifiers("DefaultInstance", &value, unit, None, SpecifierSet::Install)?;
            if !v.bytes().all(is_unit_name_byte) {
                return Err(UnitError::DefaultInstance { value: v });
            }
            Some(v).filter(|v| !v.is_empty())
        }
    };
    let names = |key: &str, words: &[(String, usize)]| -> Result<Vec<UnitName>, UnitError> {
        let mut out: Vec<UnitName> = Vec::new();
        for (word, _) in words {
            let resolved = resolve_specifiers(
                key,
                word,
                unit,
                default_instance.as_deref(),
                SpecifierSet::Install,
            )?;
            let name = UnitName::parse(&resolved).map_err(|_| UnitError::UnitName {
                key: key.to_string(),
                word: resolved,
            })?;
            if !out.contains(&name) {
                out.push(name);
            }
        }
        Ok(out)
    };
    let mut alias = Vec::new();
    for a in names("Alias", &raw.alias)? {
        if let Some(a) = check_alias(a, unit)? {
            if !alias.contains(&a) {
                alias.push(a);
            }
        }
    }
    Ok(Install {
        unit: unit.clone(),
        wanted_by: names("WantedBy", &raw.wanted_by)?,
        required_by: names("RequiredBy", &raw.required_by)?,
        alias,
        also: names("Also", &raw.also)?,
        default_instance,
        warnings,
    })
}

/// systemd's `unit_validate_alias_symlink_or_warn()` after instance
/// propagation; `None` for an alias to the unit itself.
fn check_alias(alias: UnitName, unit: &UnitName) -> Result<Option<UnitName>, UnitError> {
    let alias = match unit.instance() {
        Some(instance) if unit.is_instance() && alias.is_template() => {
            alias.with_instance(instance).unwrap_or(alias)
        }
        _ => alias,
    };
    if &alias == unit {
        return Ok(None);
    }
    let kind = |u: &UnitName| (u.is_template(), u.is_instance());
    let same_kind = kind(&alias) == kind(unit) || (alias.is_instance() && unit.is_template());
    let same_instance = !unit.is_instance() || alias.instance() == unit.instance();
    let templated = !alias.stem().contains('@') || may_template(alias.unit_type());
    if same_kind && same_instance && templated && alias.unit_type() == unit.unit_type() {
        Ok(Some(alias))
    } else {
        Err(UnitError::Alias {
            unit: unit.to_string(),
            alias: alias.to_string(),
        })
    }
}

/// systemd's `unit_type_may_template()`.
fn may_template(t: UnitType) -> bool {
    matches!(
        t,
        UnitType::Service | UnitType::Socket | UnitType::Target | UnitType::Timer | UnitType::Path
    )
}

impl Install {
    /// Whether there is nothing to enable: systemctl's "The unit files have
    /// no installation config".
    pub fn is_empty(&self) -> bool {
        self.wanted_by.is_empty()
            && self.required_by.is_empty()
            && self.alias.is_empty()
            && self.also.is_empty()
            && self.default_instance.is_none()
    }

    /// The symlinks that enable the unit, whose file is `unit_dir/UNIT`
    /// (`unit_dir` as seen inside the root: `/etc/systemd/system`). Aliases
    /// first, then `.wants/`, then `.requires/`, as systemctl creates them.
    /// `Also=` units are not included.
    pub fn symlinks(&self, unit_dir: &str) -> Result<Vec<Symlink>, UnitError> {
        let dir = unit_dir.trim_end_matches('/');
        let target = format!("{dir}/{}", self.unit);
        let link = |path: String| Symlink {
            link: path,
            target: target.clone(),
        };
        let mut links: Vec<Symlink> = self
            .alias
            .iter()
            .map(|a| link(format!("{dir}/{a}")))
            .collect();
        let enabled = match (&self.default_instance, self.unit.is_template()) {
            (Some(instance), true) => self.unit.with_instance(instance),
            (_, true) => None,
            (_, false) => Some(self.unit.clone()),
        };
        for (targets, suffix) in [(&self.wanted_by, "wants"), (&self.required_by, "requires")] {
            for t in targets {
                let name = match &enabled {
                    Some(name) => name,
                    None if t.is_template() => &self.unit,
                    None => {
                        return Err(UnitError::TemplateWithoutInstance {
                            unit: self.unit.to_string(),
                            target: t.to_string(),
                        })
                    }
                };
                links.push(link(format!("{dir}/{t}.{suffix}/{name}")));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        links.retain(|l| seen.insert(l.link.clone()));
        Ok(links)
    }
}

/// Splits on whitespace with `"`/`'` quoting (systemd's `extract_first_word`
/// with `EXTRACT_UNQUOTE|EXTRACT_RETAIN_ESCAPE`); `false` if a quote was left
/// open, in which case the words before it are returned.
fn unquote_words(value: &str) -> (Vec<String>, bool) {
    let mut words = Vec::new();
    let mut chars = value.chars().peekable();
    loop {
        while chars.next_if(|c| is_space(*c)).is_some() {}
        if chars.peek().is_none() {
            return (words, true);
        }
        let mut word = String::new();
        let mut quote = None;
        loop {
            match (chars.next(), quote) {
                (None, Some(_)) => return (words, false),
                (None, None) => break,
                (Some(c), Some(q)) if c == q => quote = None,
                (Some(c), Some(_)) => word.push(c),
                (Some(c @ ('"' | '\'')), None) => quote = Some(c),
                (Some(c), None) if is_space(c) => break,
                (Some(c), None) => word.push(c),
            }
        }
        words.push(word);
    }
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

#[cfg(test)]
mod tests;
