//! PURE: the variables of an installation, where each value came from, and
//! the checks every value passes before it reaches a template.
//!
//! Three kinds of variables, as `atomic install --system` defined them:
//!
//! - forced ([`FORCED`]): computed by berth for every install (`NAME`,
//!   `DESTDIR`, the `EXEC_*` commands, ...); `--set` of one is an error.
//! - overridable ([`OVERRIDABLE`]): berth gives a host default (system or
//!   `--user`, see [`HostDefaults`]) that `--set` or a previous install replaces.
//! - image-defined: anything else, with defaults from the manifest's
//!   `defaultValues`.
//!
//! [`resolve`] takes the first value found in: forced, `--set`, previous
//! values (on update), host defaults, manifest `defaultValues`, and for
//! `UUID` the generated one. Values are data, templates are code: a value
//! with a control character (newline, CR, NUL, tab, DEL, C1) or a Unicode
//! line or paragraph separator is refused, so no value can start a line in
//! any file it is rendered into. The per-file escaping is in
//! [`super::escape`].

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::dollar::is_identifier;

/// Variables berth computes for every install; `--set` cannot change them.
pub const FORCED: [&str; 10] = [
    "NAME",
    "DESTDIR",
    "EXEC_START",
    "EXEC_STOP",
    "EXEC_STARTPRE",
    "EXEC_STOPPOST",
    "HOST_UID",
    "HOST_GID",
    "IMAGE_NAME",
    "IMAGE_ID",
];

/// Variables with a host default that `--set` (or a previous install) replaces.
///
/// atomic's list had the first six; it also defaulted `RUNTIME` and `ATOMIC`
/// only when unset, so they are overridable here too. See docs/variables.md.
pub const OVERRIDABLE: [&str; 8] = [
    "RUN_DIRECTORY",
    "STATE_DIRECTORY",
    "CONF_DIRECTORY",
    "PIDFILE",
    "UUID",
    "ALL_PROCESS_CAPABILITIES",
    "RUNTIME",
    "ATOMIC",
];

/// Where a value came from; `berth status` prints it beside the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provenance {
    /// Computed by berth for this install (see [`FORCED`]).
    Forced,
    /// Given with `--set` on this command line.
    Set,
    /// Kept from the install being updated.
    Previous,
    /// berth's host default for an overridable variable.
    Default,
    /// The image manifest's `defaultValues`.
    Manifest,
    /// Generated for this install (`UUID`).
    Generated,
}

impl fmt::Display for Provenance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Provenance::Forced => "forced",
            Provenance::Set => "--set",
            Provenance::Previous => "previous install",
            Provenance::Default => "host default",
            Provenance::Manifest => "image manifest",
            Provenance::Generated => "generated",
        })
    }
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Value {
    /// The value, exactly as it is substituted (before per-file escaping).
    pub value: String,
    /// Where it came from.
    pub provenance: Provenance,
}

/// The resolved variables of one install, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Values {
    entries: BTreeMap<String, Value>,
}

/// A variable or value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValuesError {
    /// A `--set` argument without `=`.
    #[error("--set {arg:?}: expected KEY=VALUE")]
    SetSyntax {
        /// The argument as given.
        arg: String,
    },
    /// A variable name that is not `[_A-Za-z][_A-Za-z0-9]*`.
    #[error("variable name {name:?} from {provenance} is invalid: expected letters, digits and _, not starting with a digit")]
    InvalidName {
        /// The name as given.
        name: String,
        /// Where it came from.
        provenance: Provenance,
    },
    /// `--set` of a variable berth computes.
    #[error("--set {name}: {name} is set by berth for every install and cannot be overridden")]
    ForcedSet {
        /// The variable.
        name: String,
    },
    /// A value with a control character or line separator.
    #[error("value of {name} (from {provenance}) contains the control character {character:?}; values must be one line of text")]
    ControlCharacter {
        /// The variable.
        name: String,
        /// Where the value came from.
        provenance: Provenance,
        /// The first offending character.
        character: char,
    },
    /// A manifest `defaultValues` entry that is not a string, number or boolean.
    #[error("manifest defaultValues.{name}: expected a string, number or boolean")]
    ManifestType {
        /// The variable.
        name: String,
    },
}

/// One `--set KEY=VALUE` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetValue {
    /// The variable name (a valid identifier).
    pub name: String,
    /// Everything after the first `=`; may be empty.
    pub value: String,
}

impl FromStr for SetValue {
    type Err = ValuesError;

    /// Splits at the first `=`; the name must be an identifier. The value is
    /// checked later, with the others, by [`resolve`].
    fn from_str(arg: &str) -> Result<Self, ValuesError> {
        let (name, value) = arg.split_once('=').ok_or_else(|| ValuesError::SetSyntax {
            arg: arg.to_string(),
        })?;
        check_name(name, Provenance::Set)?;
        Ok(SetValue {
            name: name.to_string(),
            value: value.to_string(),
        })
    }
}

/// The forced variables of one install, computed by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forced {
    /// `NAME`: the container name.
    pub name: String,
    /// `DESTDIR`: the real path of the deployment directory.
    pub destdir: String,
    /// `EXEC_START`: the command that runs the container.
    pub exec_start: String,
    /// `EXEC_STOP`: the command that stops it.
    pub exec_stop: String,
    /// `EXEC_STARTPRE`: the command run before `EXEC_START`.
    pub exec_startpre: String,
    /// `EXEC_STOPPOST`: the command run after the container stopped.
    pub exec_stoppost: String,
    /// `HOST_UID`: the installing user's uid.
    pub host_uid: u32,
    /// `HOST_GID`: the installing user's gid.
    pub host_gid: u32,
    /// `IMAGE_NAME`: the image reference as given.
    pub image_name: String,
    /// `IMAGE_ID`: the image's manifest digest, hex without `sha256:` (what
    /// atomic recorded as `docker.digest`); see [`image_id`].
    pub image_id: String,
}

impl Forced {
    fn entries(&self) -> [(&'static str, String); 10] {
        [
            ("NAME", self.name.clone()),
            ("DESTDIR", self.destdir.clone()),
            ("EXEC_START", self.exec_start.clone()),
            ("EXEC_STOP", self.exec_stop.clone()),
            ("EXEC_STARTPRE", self.exec_startpre.clone()),
            ("EXEC_STOPPOST", self.exec_stoppost.clone()),
            ("HOST_UID", self.host_uid.to_string()),
            ("HOST_GID", self.host_gid.to_string()),
            ("IMAGE_NAME", self.image_name.clone()),
            ("IMAGE_ID", self.image_id.clone()),
        ]
    }
}

/// The directories of a `--user` install, read from the environment by the
/// caller (this module reads nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserDirs {
    /// `$HOME`.
    pub home: String,
    /// The user's uid, for the `/run/user/UID` fallback.
    pub uid: u32,
    /// The user's gid.
    pub gid: u32,
    /// `$XDG_RUNTIME_DIR`, if set.
    pub xdg_runtime_dir: Option<String>,
    /// `$XDG_DATA_HOME`, if set.
    pub xdg_data_home: Option<String>,
    /// `$XDG_CONFIG_HOME`, if set.
    pub xdg_config_home: Option<String>,
}

impl UserDirs {
    /// `$XDG_RUNTIME_DIR`, else `/run/user/UID`.
    pub fn runtime_dir(&self) -> String {
        xdg(&self.xdg_runtime_dir).unwrap_or_else(|| format!("/run/user/{}", self.uid))
    }

    /// `$XDG_DATA_HOME`, else `~/.local/share`.
    pub fn data_home(&self) -> String {
        xdg(&self.xdg_data_home).unwrap_or_else(|| format!("{}/.local/share", self.home()))
    }

    /// `$XDG_CONFIG_HOME`, else `~/.config`.
    pub fn config_home(&self) -> String {
        xdg(&self.xdg_config_home).unwrap_or_else(|| format!("{}/.config", self.home()))
    }

    fn home(&self) -> &str {
        self.home.trim_end_matches('/')
    }
}

/// Host defaults of the overridable variables (all but `PIDFILE`, which
/// follows `RUN_DIRECTORY`, and `UUID`, which is generated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDefaults {
    /// `RUN_DIRECTORY`.
    pub run_directory: String,
    /// `STATE_DIRECTORY`.
    pub state_directory: String,
    /// `CONF_DIRECTORY`.
    pub conf_directory: String,
    /// `ALL_PROCESS_CAPABILITIES`; see [`capabilities_value`].
    pub all_process_capabilities: String,
    /// `RUNTIME`: the absolute path of the executable that runs the
    /// containers (`berth-run` for the bundled runtime, else crun, runc or
    /// the `--runtime` path).
    pub runtime: String,
    /// `ATOMIC`: the absolute path of the berth executable the units run;
    /// [`HostDefaults::with_atomic`] sets it (`/usr/bin/berth` until then).
    pub atomic: String,
}

impl HostDefaults {
    /// Defaults of a system install: `/run`, `/var/lib`, `/etc`.
    pub fn system(all_process_capabilities: String, runtime: String) -> Self {
        HostDefaults {
            run_directory: "/run".into(),
            state_directory: "/var/lib".into(),
            conf_directory: "/etc".into(),
            all_process_capabilities,
            runtime,
            atomic: DEFAULT_ATOMIC.into(),
        }
    }

    /// The same defaults with `ATOMIC` = `atomic`.
    pub fn with_atomic(mut self, atomic: String) -> Self {
        self.atomic = atomic;
        self
    }

    /// Defaults of a `--user` install: `$XDG_RUNTIME_DIR` (else
    /// `/run/user/UID`), `$XDG_DATA_HOME` (else `~/.local/share`),
    /// `$XDG_CONFIG_HOME` (else `~/.config`). As the XDG base directory spec
    /// says, empty or relative values count as unset. (atomic used `~/.data`
    /// and `~/.config`; docs/variables.md says why berth follows XDG.)
    pub fn user(dirs: &UserDirs, all_process_capabilities: String, runtime: String) -> Self {
        HostDefaults {
            run_directory: dirs.runtime_dir(),
            state_directory: dirs.data_home(),
            conf_directory: dirs.config_home(),
            all_process_capabilities,
            runtime,
            atomic: DEFAULT_ATOMIC.into(),
        }
    }
}

/// Where the packages install berth: `ATOMIC` until the caller says otherwise.
const DEFAULT_ATOMIC: &str = "/usr/bin/berth";

/// `IMAGE_ID` of an image whose manifest digest is `digest`: the hex after
/// `ALGORITHM:`, as atomic dropped the `sha256:` prefix of `docker.digest`.
pub fn image_id(digest: &str) -> &str {
    digest.split_once(':').map_or(digest, |(_, hex)| hex)
}

/// Whether a unit template asks for a pid file: it references `$PIDFILE`
/// (or `${PIDFILE}`) anywhere, comments included. berth then has the
/// container's `berth-run` write its pid there (`--pid-file`). atomic asked
/// for `$EXEC_STOPPOST` too, because runc's pid file needed runc's `delete`
/// afterwards; berth-run removes its own pid file, so naming the file is
/// enough. A template that does not parse asks for nothing (rendering it
/// reports the error).
pub fn wants_pid_file(unit_template: &str) -> bool {
    super::dollar::parse("service.template", unit_template)
        .is_ok_and(|t| t.variables().contains("PIDFILE"))
}

/// An XDG variable's value: empty or relative counts as unset (the XDG base
/// directory spec); a trailing `/` is dropped.
fn xdg(var: &Option<String>) -> Option<String> {
    var.as_deref()
        .filter(|v| v.starts_with('/'))
        .map(|v| v.trim_end_matches('/').to_string())
}

/// The `ALL_PROCESS_CAPABILITIES` value for the given capability names: a
/// comma-separated list of JSON strings, `"CAP_CHOWN", "CAP_KILL"`, to be
/// placed inside a JSON array. (atomic joined them with `,\n`; values here are
/// one line, so they are joined with `, `.)
pub fn capabilities_value<S: AsRef<str>>(capabilities: &[S]) -> String {
    capabilities
        .iter()
        .map(|c| serde_json::Value::String(c.as_ref().to_string()).to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The manifest's `defaultValues` object as strings. Numbers keep their JSON
/// text; booleans become `True` / `False`, as Python's `str()` made them for
/// atomic. Anything else is an error naming the key.
pub fn manifest_defaults(
    object: &serde_json::Map<String, serde_json::Value>,
) -> Result<BTreeMap<String, String>, ValuesError> {
    object
        .iter()
        .map(|(name, value)| {
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(true) => "True".into(),
                serde_json::Value::Bool(false) => "False".into(),
                _ => return Err(ValuesError::ManifestType { name: name.clone() }),
            };
            Ok((name.clone(), text))
        })
        .collect()
}

/// Everything [`resolve`] chooses from.
#[derive(Debug, Clone, Copy)]
pub struct Sources<'a> {
    /// The forced variables.
    pub forced: &'a Forced,
    /// `--set` arguments in command-line order; a later one for the same name wins.
    pub set: &'a [SetValue],
    /// Values of the install being updated ([`Values::carried_over`]); empty on install.
    pub previous: &'a BTreeMap<String, String>,
    /// Host defaults of the overridable variables.
    pub host: &'a HostDefaults,
    /// The manifest's `defaultValues` ([`manifest_defaults`]).
    pub manifest: &'a BTreeMap<String, String>,
    /// A freshly generated UUID, used only when no other `UUID` is found.
    pub generated_uuid: &'a str,
}

/// Resolves every variable; see the module docs for the order.
pub fn resolve(sources: &Sources<'_>) -> Result<Values, ValuesError> {
    let mut values = Values::default();
    for s in sources.set {
        check_name(&s.name, Provenance::Set)?;
        if is_forced(&s.name) {
            return Err(ValuesError::ForcedSet {
                name: s.name.clone(),
            });
        }
        values.insert(&s.name, &s.value, Provenance::Set);
    }
    for (name, value) in sources.previous {
        check_name(name, Provenance::Previous)?;
        values.insert_default(name, value, Provenance::Previous);
    }
    let host = sources.host;
    for (name, value) in [
        ("RUN_DIRECTORY", &host.run_directory),
        ("STATE_DIRECTORY", &host.state_directory),
        ("CONF_DIRECTORY", &host.conf_directory),
        ("ALL_PROCESS_CAPABILITIES", &host.all_process_capabilities),
        ("RUNTIME", &host.runtime),
        ("ATOMIC", &host.atomic),
    ] {
        values.insert_default(name, value, Provenance::Default);
    }
    let run_directory = values.get("RUN_DIRECTORY").unwrap_or_default();
    let pidfile = format!(
        "{}/container-{}.pid",
        run_directory.trim_end_matches('/'),
        sources.forced.name
    );
    values.insert_default("PIDFILE", &pidfile, Provenance::Default);
    for (name, value) in sources.manifest {
        check_name(name, Provenance::Manifest)?;
        values.insert_default(name, value, Provenance::Manifest);
    }
    values.insert_default("UUID", sources.generated_uuid, Provenance::Generated);
    for (name, value) in sources.forced.entries() {
        values.insert(name, &value, Provenance::Forced);
    }
    values.check()?;
    Ok(values)
}

/// Whether `name` is one of the [`FORCED`] variables.
pub fn is_forced(name: &str) -> bool {
    FORCED.contains(&name)
}

fn check_name(name: &str, provenance: Provenance) -> Result<(), ValuesError> {
    if is_identifier(name) {
        Ok(())
    } else {
        Err(ValuesError::InvalidName {
            name: name.to_string(),
            provenance,
        })
    }
}

/// Whether `c` may not appear in a value: it could end or start a line in
/// some reader (systemd, tmpfiles, JSON, a shell) or hide text on a terminal.
pub fn is_forbidden_in_value(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

impl Values {
    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries.get(name).map(|v| v.value.as_str())
    }

    /// Where the value of `name` came from.
    pub fn provenance(&self, name: &str) -> Option<Provenance> {
        self.entries.get(name).map(|v| v.provenance)
    }

    /// Every variable, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The values an update starts from (its `previous`): what the user set
    /// and what was generated, so that `--set` choices and the `UUID` survive
    /// while host and manifest defaults are taken afresh from the new image.
    pub fn carried_over(&self) -> BTreeMap<String, String> {
        self.entries
            .iter()
            .filter(|(_, v)| {
                matches!(
                    v.provenance,
                    Provenance::Set | Provenance::Previous | Provenance::Generated
                )
            })
            .map(|(k, v)| (k.clone(), v.value.clone()))
            .collect()
    }

    /// Checks every value for forbidden characters ([`is_forbidden_in_value`]).
    pub fn check(&self) -> Result<(), ValuesError> {
        for (name, v) in &self.entries {
            if let Some(character) = v.value.chars().find(|c| is_forbidden_in_value(*c)) {
                return Err(ValuesError::ControlCharacter {
                    name: name.clone(),
                    provenance: v.provenance,
                    character,
                });
            }
        }
        Ok(())
    }

    fn insert(&mut self, name: &str, value: &str, provenance: Provenance) {
        let value = Value {
            value: value.to_string(),
            provenance,
        };
        self.entries.insert(name.to_string(), value);
    }

    /// Inserts unless `name` already has a value or is forced.
    fn insert_default(&mut self, name: &str, value: &str, provenance: Provenance) {
        if !self.entries.contains_key(name) && !is_forced(name) {
            self.insert(name, value, provenance);
        }
    }
}

#[cfg(test)]
mod tests;
