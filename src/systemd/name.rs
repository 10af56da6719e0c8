//! PURE: container names and systemd unit names, as validated newtypes.
//!
//! A [`ContainerName`] is `[A-Za-z0-9][A-Za-z0-9_.@-]*`, at most
//! [`CONTAINER_NAME_MAX`] characters, not ending in `@` nor in `.N` (digits:
//! the deployments are `NAME.0` and `NAME.1`); it names the
//! units (`NAME.service`), the deployments and the tmpfiles entry.
//! A [`UnitName`] follows systemd's `unit_name_is_valid()`: at most 255
//! bytes, `PREFIX[@INSTANCE].TYPE` with a known type, characters
//! `[A-Za-z0-9:_.\\-]` plus `@`, no `@` first; `foo@.service` is a template,
//! `foo@bar.service` an instance of it.

use std::fmt;
use std::str::FromStr;

/// Longest container name. The name ends up in file names with suffixes
/// (`NAME.service`, `container-NAME.pid`), in unix socket paths (108 bytes in
/// all) and often as the container's hostname (`HOST_NAME_MAX` is 64).
pub const CONTAINER_NAME_MAX: usize = 64;
/// Longest unit name systemd accepts (`UNIT_NAME_MAX` - 1).
pub const UNIT_NAME_MAX: usize = 255;

/// A name that is not a valid container or unit name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Not a valid container name.
    #[error(
        "invalid container name {name:?}: use letters, digits and _ . @ -, \
         starting with a letter or digit, not ending in @ or in .N (berth names deployments \
         NAME.0 and NAME.1), at most {max} characters",
        max = CONTAINER_NAME_MAX
    )]
    Container {
        /// The name as given.
        name: String,
    },
    /// Not a valid systemd unit name.
    #[error("invalid unit name {name:?}: expected NAME.TYPE (such as foo.service) with letters, digits and : _ . \\ - @")]
    Unit {
        /// The name as given.
        name: String,
    },
}

/// The type of a unit, from its suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UnitType {
    /// `.service`
    Service,
    /// `.socket`
    Socket,
    /// `.target`
    Target,
    /// `.device`
    Device,
    /// `.mount`
    Mount,
    /// `.automount`
    Automount,
    /// `.swap`
    Swap,
    /// `.timer`
    Timer,
    /// `.path`
    Path,
    /// `.slice`
    Slice,
    /// `.scope`
    Scope,
}

impl UnitType {
    const ALL: [UnitType; 11] = [
        UnitType::Service,
        UnitType::Socket,
        UnitType::Target,
        UnitType::Device,
        UnitType::Mount,
        UnitType::Automount,
        UnitType::Swap,
        UnitType::Timer,
        UnitType::Path,
        UnitType::Slice,
        UnitType::Scope,
    ];

    /// The suffix without its dot: `service`.
    pub fn suffix(self) -> &'static str {
        match self {
            UnitType::Service => "service",
            UnitType::Socket => "socket",
            UnitType::Target => "target",
            UnitType::Device => "device",
            UnitType::Mount => "mount",
            UnitType::Automount => "automount",
            UnitType::Swap => "swap",
            UnitType::Timer => "timer",
            UnitType::Path => "path",
            UnitType::Slice => "slice",
            UnitType::Scope => "scope",
        }
    }

    fn from_suffix(suffix: &str) -> Option<UnitType> {
        UnitType::ALL.into_iter().find(|t| t.suffix() == suffix)
    }

    /// Whether units of this type may have `Alias=` (systemd's
    /// `unit_type_may_alias`).
    pub fn may_alias(self) -> bool {
        matches!(
            self,
            UnitType::Service
                | UnitType::Socket
                | UnitType::Target
                | UnitType::Device
                | UnitType::Timer
                | UnitType::Path
        )
    }
}

/// Whether `name` ends in `.` and digits, the form of a deployment
/// directory (`NAME.0`): a container called `foo.1` would collide with the
/// second deployment of `foo`.
fn ends_in_slot_number(name: &str) -> bool {
    name.rsplit_once('.')
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// A valid container name; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContainerName(String);

impl ContainerName {
    /// Checks `name`.
    pub fn parse(name: &str) -> Result<Self, NameError> {
        let bytes = name.as_bytes();
        let valid = match bytes.first() {
            Some(first) => {
                first.is_ascii_alphanumeric()
                    && bytes.len() <= CONTAINER_NAME_MAX
                    && bytes
                        .iter()
                        .all(|b| b.is_ascii_alphanumeric() || b"_.@-".contains(b))
                    && !name.ends_with('@')
                    && !ends_in_slot_number(name)
            }
            None => false,
        };
        if valid {
            Ok(ContainerName(name.to_string()))
        } else {
            Err(NameError::Container {
                name: name.to_string(),
            })
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The unit of this container with the given type: `NAME.service`.
    /// (Always valid: a container name is a valid, non-template unit prefix.)
    pub fn unit(&self, unit_type: UnitType) -> UnitName {
        UnitName(format!("{}.{}", self.0, unit_type.suffix()))
    }
}

/// A valid systemd unit name; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnitName(String);

impl UnitName {
    /// Checks `name` with systemd's rules (any unit type).
    pub fn parse(name: &str) -> Result<Self, NameError> {
        if is_valid_unit_name(name) {
            Ok(UnitName(name.to_string()))
        } else {
            Err(NameError::Unit {
                name: name.to_string(),
            })
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Everything before the last `.`: `foo@bar` of `foo@bar.service`.
    pub fn stem(&self) -> &str {
        self.0
            .rsplit_once('.')
            .map_or(self.0.as_str(), |(stem, _)| stem)
    }

    /// The unit type.
    pub fn unit_type(&self) -> UnitType {
        self.0
            .rsplit_once('.')
            .and_then(|(_, suffix)| UnitType::from_suffix(suffix))
            .unwrap_or(UnitType::Service)
    }

    /// The part before the first `@` (or the whole stem): `%p`.
    pub fn prefix(&self) -> &str {
        let stem = self.stem();
        stem.split_once('@').map_or(stem, |(prefix, _)| prefix)
    }

    /// The part between the first `@` and the type; `Some("")` for a
    /// template, `None` without `@`.
    pub fn instance(&self) -> Option<&str> {
        self.stem().split_once('@').map(|(_, instance)| instance)
    }

    /// `foo@.service`.
    pub fn is_template(&self) -> bool {
        self.instance() == Some("")
    }

    /// `foo@bar.service`.
    pub fn is_instance(&self) -> bool {
        self.instance().is_some_and(|i| !i.is_empty())
    }

    /// The same name with `instance` as instance (`foo@.service` +
    /// `bar` → `foo@bar.service`); `None` if that is not a valid instance
    /// name or this name has no `@`.
    pub fn with_instance(&self, instance: &str) -> Option<UnitName> {
        self.instance()?;
        let name = format!(
            "{}@{}.{}",
            self.prefix(),
            instance,
            self.unit_type().suffix()
        );
        let name = UnitName::parse(&name).ok()?;
        name.is_instance().then_some(name)
    }
}

/// systemd's `unit_name_is_valid(name, UNIT_NAME_ANY)`.
fn is_valid_unit_name(name: &str) -> bool {
    let Some((stem, suffix)) = name.rsplit_once('.') else {
        return false;
    };
    !stem.is_empty()
        && name.len() <= UNIT_NAME_MAX
        && UnitType::from_suffix(suffix).is_some()
        && !stem.starts_with('@')
        && stem.bytes().all(is_unit_name_byte)
}

/// A byte valid in a unit name's stem (`@` included).
pub(crate) fn is_unit_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b":-_.\\@".contains(&b)
}

macro_rules! string_newtype {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $t {
            type Err = NameError;

            fn from_str(s: &str) -> Result<Self, NameError> {
                <$t>::parse(s)
            }
        }
    };
}

string_newtype!(ContainerName);
string_newtype!(UnitName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_names() {
        let long = "a".repeat(CONTAINER_NAME_MAX);
        for ok in [
            "etcd",
            "a",
            "0",
            "my_app.v2",
            "etcd@1",
            "a-b.c_d@e-f",
            "etcd.0a",
            "v1.2x",
            long.as_str(),
        ] {
            assert_eq!(ContainerName::parse(ok).unwrap().as_str(), ok);
        }
        let too_long = "a".repeat(CONTAINER_NAME_MAX + 1);
        for bad in [
            "",
            "-a",
            ".a",
            "_a",
            "@a",
            "a/b",
            "a b",
            "a:b",
            "a\\b",
            "é",
            "a\n",
            "a@",
            "..",
            "etcd.0",
            "etcd.12",
            too_long.as_str(),
        ] {
            assert_eq!(
                ContainerName::parse(bad),
                Err(NameError::Container { name: bad.into() }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn container_units_are_valid_unit_names() {
        let name = ContainerName::parse("etcd@1").unwrap();
        for t in UnitType::ALL {
            let unit = name.unit(t);
            assert_eq!(UnitName::parse(unit.as_str()).unwrap(), unit);
        }
        assert_eq!(name.unit(UnitType::Service).as_str(), "etcd@1.service");
        let longest = ContainerName::parse(&"a".repeat(CONTAINER_NAME_MAX)).unwrap();
        assert!(UnitName::parse(longest.unit(UnitType::Automount).as_str()).is_ok());
    }

    /// Each row agrees with systemd 252's `unit_name_is_valid(UNIT_NAME_ANY)`.
    #[test]
    fn unit_names_follow_systemd() {
        let max = format!("{}.service", "a".repeat(UNIT_NAME_MAX - 8));
        for ok in [
            "foo.service",
            "foo@.service",
            "foo@bar.service",
            "foo@bar@baz.service",
            "a:b_c.d-e\\x2d.target",
            "-.mount",
            "multi-user.target",
            "dev-sda1.device",
            "foo.bar.timer",
            max.as_str(),
        ] {
            assert!(UnitName::parse(ok).is_ok(), "{ok}");
        }
        let over = format!("{}.service", "a".repeat(UNIT_NAME_MAX - 7));
        for bad in [
            "",
            "foo",
            ".service",
            "@.service",
            "@foo.service",
            "foo.unknown",
            "foo.Service",
            "foo bar.service",
            "foo/bar.service",
            "foo%.service",
            "fö.service",
            "foo.service\n",
            over.as_str(),
        ] {
            assert!(UnitName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn unit_name_parts() {
        let u = UnitName::parse("t-a-b@z-y.service").unwrap();
        assert_eq!(
            (u.stem(), u.prefix(), u.instance()),
            ("t-a-b@z-y", "t-a-b", Some("z-y"))
        );
        assert_eq!(u.unit_type(), UnitType::Service);
        assert!(u.is_instance() && !u.is_template());
        let t = UnitName::parse("getty@.service").unwrap();
        assert!(t.is_template() && !t.is_instance());
        assert_eq!(
            t.with_instance("tty1").unwrap().as_str(),
            "getty@tty1.service"
        );
        assert_eq!(t.with_instance(""), None);
        assert_eq!(t.with_instance("a/b"), None);
        let p = UnitName::parse("sockets.target").unwrap();
        assert_eq!(
            (p.prefix(), p.instance(), p.unit_type()),
            ("sockets", None, UnitType::Target)
        );
        assert_eq!(p.with_instance("x"), None);
        let multi = UnitName::parse("a@b@c.socket").unwrap();
        assert_eq!((multi.prefix(), multi.instance()), ("a", Some("b@c")));
    }

    #[test]
    fn names_display_and_parse_back() {
        let c: ContainerName = "etcd".parse().unwrap();
        assert_eq!(c.to_string(), "etcd");
        let u: UnitName = "etcd.service".parse().unwrap();
        assert_eq!(u.to_string(), "etcd.service");
        assert!("bad name".parse::<UnitName>().is_err());
    }
}
