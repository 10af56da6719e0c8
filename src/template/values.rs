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
mod tests {
    use super::*;

    fn forced() -> Forced {
        Forced {
            name: "etcd".into(),
            destdir: "/var/lib/berth/containers/etcd.0".into(),
            exec_start: "/usr/bin/berth run etcd".into(),
            exec_stop: "/usr/bin/berth kill etcd".into(),
            exec_startpre: "/usr/bin/berth prepare etcd".into(),
            exec_stoppost: "/usr/bin/berth cleanup etcd".into(),
            host_uid: 0,
            host_gid: 0,
            image_name: "registry.example/etcd:3".into(),
            image_id: "sha256:abc".into(),
        }
    }

    fn host() -> HostDefaults {
        HostDefaults::system(
            capabilities_value(&["CAP_CHOWN", "CAP_KILL"]),
            "berth".into(),
        )
    }

    fn set(args: &[&str]) -> Vec<SetValue> {
        args.iter().map(|a| a.parse().unwrap()).collect()
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn resolve_with(
        set: &[SetValue],
        previous: &BTreeMap<String, String>,
        manifest: &BTreeMap<String, String>,
    ) -> Result<Values, ValuesError> {
        resolve(&Sources {
            forced: &forced(),
            set,
            previous,
            host: &host(),
            manifest,
            generated_uuid: "00000000-0000-4000-8000-000000000000",
        })
    }

    #[test]
    fn fresh_install_uses_host_defaults_manifest_and_generated_uuid() {
        let manifest = map(&[("ETCD_NAME", "default"), ("CONF_DIRECTORY", "/srv/conf")]);
        let v = resolve_with(&[], &map(&[]), &manifest).unwrap();
        let want = [
            (
                "ALL_PROCESS_CAPABILITIES",
                "\"CAP_CHOWN\", \"CAP_KILL\"",
                Provenance::Default,
            ),
            ("ATOMIC", "/usr/bin/berth", Provenance::Default),
            ("CONF_DIRECTORY", "/etc", Provenance::Default),
            (
                "DESTDIR",
                "/var/lib/berth/containers/etcd.0",
                Provenance::Forced,
            ),
            ("ETCD_NAME", "default", Provenance::Manifest),
            ("HOST_GID", "0", Provenance::Forced),
            ("NAME", "etcd", Provenance::Forced),
            ("PIDFILE", "/run/container-etcd.pid", Provenance::Default),
            ("RUN_DIRECTORY", "/run", Provenance::Default),
            ("RUNTIME", "berth", Provenance::Default),
            ("STATE_DIRECTORY", "/var/lib", Provenance::Default),
            (
                "UUID",
                "00000000-0000-4000-8000-000000000000",
                Provenance::Generated,
            ),
        ];
        for (name, value, provenance) in want {
            assert_eq!(v.get(name), Some(value), "{name}");
            assert_eq!(v.provenance(name), Some(provenance), "{name}");
        }
        for name in FORCED.iter().chain(OVERRIDABLE.iter()) {
            assert!(v.get(name).is_some(), "{name} missing");
        }
        assert_eq!(v.iter().count(), FORCED.len() + OVERRIDABLE.len() + 1);
    }

    #[test]
    fn set_beats_previous_beats_host_default_beats_manifest() {
        let previous = map(&[("RUN_DIRECTORY", "/prev/run"), ("A", "prev"), ("B", "prev")]);
        let manifest = map(&[
            ("A", "man"),
            ("B", "man"),
            ("C", "man"),
            ("RUN_DIRECTORY", "/m"),
        ]);
        let v = resolve_with(
            &set(&["A=set", "STATE_DIRECTORY=/srv"]),
            &previous,
            &manifest,
        )
        .unwrap();
        assert_eq!(
            (v.get("A"), v.provenance("A")),
            (Some("set"), Some(Provenance::Set))
        );
        assert_eq!(v.get("B"), Some("prev"));
        assert_eq!(v.provenance("B"), Some(Provenance::Previous));
        assert_eq!(v.get("C"), Some("man"));
        assert_eq!(v.get("RUN_DIRECTORY"), Some("/prev/run"));
        assert_eq!(v.get("STATE_DIRECTORY"), Some("/srv"));
        // PIDFILE follows the resolved RUN_DIRECTORY.
        assert_eq!(v.get("PIDFILE"), Some("/prev/run/container-etcd.pid"));
    }

    #[test]
    fn later_set_of_the_same_name_wins() {
        let v = resolve_with(&set(&["A=1", "A=2"]), &map(&[]), &map(&[])).unwrap();
        assert_eq!(v.get("A"), Some("2"));
    }

    #[test]
    fn forced_always_win_over_previous_and_manifest() {
        let previous = map(&[("NAME", "old"), ("DESTDIR", "/old")]);
        let manifest = map(&[("HOST_UID", "1000"), ("IMAGE_ID", "x")]);
        let v = resolve_with(&[], &previous, &manifest).unwrap();
        assert_eq!(v.get("NAME"), Some("etcd"));
        assert_eq!(v.get("DESTDIR"), Some("/var/lib/berth/containers/etcd.0"));
        assert_eq!(v.get("HOST_UID"), Some("0"));
        assert_eq!(v.provenance("IMAGE_ID"), Some(Provenance::Forced));
    }

    #[test]
    fn set_of_a_forced_variable_is_refused_by_name() {
        for name in FORCED {
            let err = resolve_with(&set(&[&format!("{name}=x")]), &map(&[]), &map(&[]));
            assert_eq!(err, Err(ValuesError::ForcedSet { name: name.into() }));
        }
        let err = resolve_with(&set(&["NAME=x"]), &map(&[]), &map(&[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--set NAME: NAME is set by berth for every install and cannot be overridden"
        );
    }

    #[test]
    fn uuid_is_kept_across_updates() {
        let first = resolve_with(&[], &map(&[]), &map(&[])).unwrap();
        let previous = first.carried_over();
        let second = resolve(&Sources {
            forced: &forced(),
            set: &[],
            previous: &previous,
            host: &host(),
            manifest: &map(&[]),
            generated_uuid: "11111111-1111-4111-8111-111111111111",
        })
        .unwrap();
        assert_eq!(second.get("UUID"), first.get("UUID"));
        assert_eq!(second.provenance("UUID"), Some(Provenance::Previous));
    }

    #[test]
    fn carried_over_keeps_set_previous_and_generated_only() {
        let v = resolve_with(&set(&["A=1"]), &map(&[("B", "2")]), &map(&[("C", "3")])).unwrap();
        assert_eq!(
            v.carried_over(),
            map(&[
                ("A", "1"),
                ("B", "2"),
                ("UUID", "00000000-0000-4000-8000-000000000000")
            ])
        );
    }

    #[test]
    fn values_with_control_characters_are_refused_naming_the_variable() {
        for bad in [
            "a\nb",
            "a\rb",
            "a\0b",
            "\t",
            "\u{7f}",
            "\u{85}",
            "\u{1b}[2J",
            "a\u{2028}",
        ] {
            let err = resolve_with(&set(&[&format!("X={bad}")]), &map(&[]), &map(&[]));
            assert!(
                matches!(&err, Err(ValuesError::ControlCharacter { name, provenance: Provenance::Set, .. }) if name == "X"),
                "{bad:?}: {err:?}"
            );
        }
        let err = resolve_with(&[], &map(&[]), &map(&[("M", "x\ny")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "value of M (from image manifest) contains the control character '\\n'; \
             values must be one line of text"
        );
        let mut f = forced();
        f.image_name = "evil\n[Install]".into();
        let err = resolve(&Sources {
            forced: &f,
            set: &[],
            previous: &map(&[]),
            host: &host(),
            manifest: &map(&[]),
            generated_uuid: "u",
        });
        assert!(matches!(
            err,
            Err(ValuesError::ControlCharacter {
                provenance: Provenance::Forced,
                ..
            })
        ));
    }

    #[test]
    fn ordinary_text_is_accepted() {
        for ok in [
            "",
            "a b",
            "%n",
            "$X",
            "\"q\"",
            "\\",
            "é ü 漢",
            "a=b=c",
            "[Install]",
        ] {
            let v = resolve_with(&set(&[&format!("X={ok}")]), &map(&[]), &map(&[])).unwrap();
            assert_eq!(v.get("X"), Some(ok));
        }
    }

    #[test]
    fn set_parsing_splits_at_the_first_equals_and_checks_the_name() {
        let s: SetValue = "A_1=x=y".parse().unwrap();
        assert_eq!((s.name.as_str(), s.value.as_str()), ("A_1", "x=y"));
        let s: SetValue = "EMPTY=".parse().unwrap();
        assert_eq!(s.value, "");
        assert_eq!(
            "NOEQUALS".parse::<SetValue>(),
            Err(ValuesError::SetSyntax {
                arg: "NOEQUALS".into()
            })
        );
        for bad in ["=x", "1A=x", "A-B=x", "A B=x", "Ä=x"] {
            assert!(
                matches!(
                    bad.parse::<SetValue>(),
                    Err(ValuesError::InvalidName { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn invalid_manifest_names_are_refused() {
        let err = resolve_with(&[], &map(&[]), &map(&[("BAD-NAME", "x")])).unwrap_err();
        assert_eq!(
            err,
            ValuesError::InvalidName {
                name: "BAD-NAME".into(),
                provenance: Provenance::Manifest
            }
        );
    }

    #[test]
    fn user_defaults_follow_xdg_with_fallbacks() {
        let mut dirs = UserDirs {
            home: "/home/u/".into(),
            uid: 1000,
            gid: 1000,
            ..UserDirs::default()
        };
        let d = HostDefaults::user(&dirs, String::new(), "berth".into());
        assert_eq!(d.run_directory, "/run/user/1000");
        assert_eq!(d.state_directory, "/home/u/.local/share");
        assert_eq!(d.conf_directory, "/home/u/.config");
        dirs.xdg_runtime_dir = Some("/run/user/1000x".into());
        dirs.xdg_data_home = Some("/data".into());
        dirs.xdg_config_home = Some("relative/ignored".into());
        let d = HostDefaults::user(&dirs, String::new(), "berth".into());
        assert_eq!(d.run_directory, "/run/user/1000x");
        assert_eq!(d.state_directory, "/data");
        assert_eq!(d.conf_directory, "/home/u/.config");
        let s = HostDefaults::system(String::new(), "crun".into());
        assert_eq!(
            (s.run_directory.as_str(), s.state_directory.as_str()),
            ("/run", "/var/lib")
        );
        assert_eq!(s.conf_directory, "/etc");
    }

    #[test]
    fn manifest_defaults_stringify_like_python() {
        let json: serde_json::Value =
            serde_json::from_str(r#"{"S": "x", "N": 5, "F": 1.5, "T": true, "Fa": false}"#)
                .unwrap();
        let got = manifest_defaults(json.as_object().unwrap()).unwrap();
        assert_eq!(
            got,
            map(&[
                ("S", "x"),
                ("N", "5"),
                ("F", "1.5"),
                ("T", "True"),
                ("Fa", "False")
            ])
        );
        for bad in [r#"{"X": null}"#, r#"{"X": []}"#, r#"{"X": {}}"#] {
            let json: serde_json::Value = serde_json::from_str(bad).unwrap();
            assert_eq!(
                manifest_defaults(json.as_object().unwrap()),
                Err(ValuesError::ManifestType { name: "X".into() })
            );
        }
    }

    #[test]
    fn capabilities_are_one_line_of_json_strings() {
        assert_eq!(
            capabilities_value(&["CAP_A", "CAP_B"]),
            r#""CAP_A", "CAP_B""#
        );
        assert_eq!(capabilities_value::<&str>(&[]), "");
    }

    #[test]
    fn values_serialize_with_provenance_for_status() {
        let v = resolve_with(&set(&["A=1"]), &map(&[]), &map(&[])).unwrap();
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(
            json["A"],
            serde_json::json!({"value": "1", "provenance": "set"})
        );
        assert_eq!(json["NAME"]["provenance"], "forced");
        let back: Values = serde_json::from_value(json).unwrap();
        assert_eq!(back, v);
    }

    /// Every variable atomic set, for a system and a `--user` install.
    #[test]
    fn every_atomic_variable_for_system_and_user_installs() {
        let f = Forced {
            name: "etcd".into(),
            destdir: "/var/lib/berth/containers/etcd.0".into(),
            exec_start: "/usr/bin/berth-run etcd".into(),
            exec_stop: "/usr/bin/berth kill --if-running etcd".into(),
            exec_startpre: String::new(),
            exec_stoppost: "/usr/bin/berth-run --cleanup etcd".into(),
            host_uid: 1000,
            host_gid: 100,
            image_name: "registry.example/etcd:3".into(),
            image_id: image_id("sha256:0123abcd").into(),
        };
        let system = HostDefaults::system("\"CAP_KILL\"".into(), "/usr/bin/berth-run".into())
            .with_atomic("/usr/bin/berth".into());
        let dirs = UserDirs {
            home: "/home/u".into(),
            uid: 1000,
            gid: 100,
            xdg_runtime_dir: Some("/run/user/1000".into()),
            ..UserDirs::default()
        };
        let user = HostDefaults::user(&dirs, "\"CAP_KILL\"".into(), "/usr/bin/crun".into())
            .with_atomic("/usr/local/bin/berth".into());
        let common = [
            ("NAME", "etcd"),
            ("DESTDIR", "/var/lib/berth/containers/etcd.0"),
            ("EXEC_START", "/usr/bin/berth-run etcd"),
            ("EXEC_STOP", "/usr/bin/berth kill --if-running etcd"),
            ("EXEC_STARTPRE", ""),
            ("EXEC_STOPPOST", "/usr/bin/berth-run --cleanup etcd"),
            ("HOST_UID", "1000"),
            ("HOST_GID", "100"),
            ("IMAGE_NAME", "registry.example/etcd:3"),
            ("IMAGE_ID", "0123abcd"),
            ("UUID", "u-1"),
            ("ALL_PROCESS_CAPABILITIES", "\"CAP_KILL\""),
        ];
        let table = [
            (
                &system,
                [
                    ("RUN_DIRECTORY", "/run"),
                    ("STATE_DIRECTORY", "/var/lib"),
                    ("CONF_DIRECTORY", "/etc"),
                    ("PIDFILE", "/run/container-etcd.pid"),
                    ("RUNTIME", "/usr/bin/berth-run"),
                    ("ATOMIC", "/usr/bin/berth"),
                ],
            ),
            (
                &user,
                [
                    ("RUN_DIRECTORY", "/run/user/1000"),
                    ("STATE_DIRECTORY", "/home/u/.local/share"),
                    ("CONF_DIRECTORY", "/home/u/.config"),
                    ("PIDFILE", "/run/user/1000/container-etcd.pid"),
                    ("RUNTIME", "/usr/bin/crun"),
                    ("ATOMIC", "/usr/local/bin/berth"),
                ],
            ),
        ];
        for (host, scoped) in table {
            let v = resolve(&Sources {
                forced: &f,
                set: &[],
                previous: &map(&[]),
                host,
                manifest: &map(&[]),
                generated_uuid: "u-1",
            })
            .unwrap();
            for (name, value) in common.iter().chain(scoped.iter()) {
                assert_eq!(v.get(name), Some(*value), "{name}");
            }
            assert_eq!(v.iter().count(), common.len() + scoped.len());
        }
    }

    #[test]
    fn runtime_and_atomic_can_be_set_but_the_image_id_cannot() {
        let v = resolve_with(
            &set(&["RUNTIME=/opt/crun", "ATOMIC=/opt/berth"]),
            &map(&[]),
            &map(&[]),
        )
        .unwrap();
        assert_eq!(v.get("RUNTIME"), Some("/opt/crun"));
        assert_eq!(v.get("ATOMIC"), Some("/opt/berth"));
        assert!(resolve_with(&set(&["IMAGE_ID=x"]), &map(&[]), &map(&[])).is_err());
    }

    #[test]
    fn image_id_is_the_digest_hex() {
        assert_eq!(image_id("sha256:abc123"), "abc123");
        assert_eq!(image_id("sha512:ff"), "ff");
        assert_eq!(image_id("abc123"), "abc123");
    }

    #[test]
    fn a_unit_template_naming_pidfile_wants_a_pid_file() {
        for (template, wanted) in [
            ("[Service]\nPIDFile=$PIDFILE\n", true),
            ("[Service]\nPIDFile=${PIDFILE}\n", true),
            (
                "[Service]\nExecStart=$EXEC_START\nExecStopPost=$EXEC_STOPPOST\nPIDFile=$PIDFILE\n",
                true,
            ),
            (
                "# writes $PIDFILE\n[Service]\nExecStart=$EXEC_START\n",
                true,
            ),
            ("[Service]\nExecStopPost=$EXEC_STOPPOST\n", false),
            ("[Service]\nPIDFile=$$PIDFILE\n", false),
            ("[Service]\nPIDFile=$PIDFILES\n", false),
            ("[Service]\nExecStart=${PIDFILE\n", false),
        ] {
            assert_eq!(wants_pid_file(template), wanted, "{template}");
        }
    }
}
