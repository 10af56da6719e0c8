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
mod tests {
    use super::*;

    const DIR: &str = "/etc/systemd/system";

    fn unit(name: &str) -> UnitName {
        UnitName::parse(name).unwrap()
    }

    /// `(link, target)` pairs relative to DIR, sorted, as `find -type l` lists them.
    fn links(text: &str, name: &str) -> Result<Vec<(String, String)>, UnitError> {
        let install = Install::parse(text, &unit(name))?;
        let mut got: Vec<(String, String)> = install
            .symlinks(DIR)?
            .into_iter()
            .map(|s| {
                let rel = s
                    .link
                    .strip_prefix("/etc/systemd/system/")
                    .unwrap()
                    .to_string();
                (rel, s.target)
            })
            .collect();
        got.sort();
        Ok(got)
    }

    fn want(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(l, t)| (l.to_string(), format!("{DIR}/{t}")))
            .collect()
    }

    /// Each case was run with `systemctl --root=DIR enable UNIT` (systemd
    /// 252) on a unit file with this text; the links are what it created.
    #[test]
    fn symlinks_match_systemctl_root_enable() {
        type Case = (
            &'static str,
            &'static str,
            &'static [(&'static str, &'static str)],
        );
        let cases: &[Case] = &[
            (
                "# c\n[Unit]\nDescription=x\n[Service]\nExecStart=/bin/true\n[Install]\n\
                 WantedBy=multi-user.target \\\n  default.target\n; c\nRequiredBy=docker.service\n\
                 RequiredBy=other@%i.service\nAlias=bar.service %N-alias.service\nAlso=baz.service\n",
                "foo.service",
                &[
                    ("bar.service", "foo.service"),
                    ("default.target.wants/foo.service", "foo.service"),
                    ("docker.service.requires/foo.service", "foo.service"),
                    ("foo-alias.service", "foo.service"),
                    ("multi-user.target.wants/foo.service", "foo.service"),
                    ("other@.service.requires/foo.service", "foo.service"),
                ],
            ),
            (
                "[Install]\nWantedBy=a.target \\\n# inner comment\n  b.target\nWantedBy=\nWantedBy=c.target\n",
                "foo.service",
                &[("c.target.wants/foo.service", "foo.service")],
            ),
            (
                "[Install]\nWantedBy=a.target \"b.target\n",
                "foo.service",
                &[("a.target.wants/foo.service", "foo.service")],
            ),
            (
                "[Install]\nWantedBy=a.target x\"b\".target 'c.target'\n",
                "foo.service",
                &[
                    ("a.target.wants/foo.service", "foo.service"),
                    ("c.target.wants/foo.service", "foo.service"),
                    ("xb.target.wants/foo.service", "foo.service"),
                ],
            ),
            (
                "[Install]\nWantedBy=a.target\tb.target\r\nRequiredBy=c.target\n",
                "foo.service",
                &[
                    ("a.target.wants/foo.service", "foo.service"),
                    ("b.target.wants/foo.service", "foo.service"),
                    ("c.target.requires/foo.service", "foo.service"),
                ],
            ),
            (
                "\u{feff}[Install]\nWantedBy=bom.target\n",
                "foo.service",
                &[("bom.target.wants/foo.service", "foo.service")],
            ),
            (
                "[Install]\nWantedBy=a.target\n\u{feff}WantedBy=b.target\n",
                "foo.service",
                &[
                    ("a.target.wants/foo.service", "foo.service"),
                    ("b.target.wants/foo.service", "foo.service"),
                ],
            ),
            (
                "[Install]\nWantedBy=a.target \\\n\nRequiredBy=b.target\n",
                "foo.service",
                &[
                    ("a.target.wants/foo.service", "foo.service"),
                    ("b.target.requires/foo.service", "foo.service"),
                ],
            ),
            (
                "[Install]\nWantedBy=a.target\n[X-Ext]\nWantedBy=b.target\n",
                "foo.service",
                &[("a.target.wants/foo.service", "foo.service")],
            ),
            (
                "[Install]\nWantedBy=a.target a.target\nRequiredBy=a.target\nAlias=foo.service\n",
                "foo.service",
                &[
                    ("a.target.requires/foo.service", "foo.service"),
                    ("a.target.wants/foo.service", "foo.service"),
                ],
            ),
            ("[install]\nWantedBy=a.target\n", "foo.service", &[]),
            (
                "[Install]\n  WantedBy  =  a.target  \n[Service]\nWantedBy=b.target\n[Install]\nwantedby=c.target\n",
                "foo.service",
                &[("a.target.wants/foo.service", "foo.service")],
            ),
            (
                "WantedBy=z.target\n[Install]\n=x\nWantedBy\nWantedBy=a.target\n",
                "foo.service",
                &[("a.target.wants/foo.service", "foo.service")],
            ),
            (
                "[Install]\nWantedBy=a.target\n[Install]\nWantedBy=b.target\n",
                "foo.service",
                &[
                    ("a.target.wants/foo.service", "foo.service"),
                    ("b.target.wants/foo.service", "foo.service"),
                ],
            ),
            (
                "[Install]\nWantedBy=multi-user.target\nDefaultInstance=inst\nAlias=al@.service\n",
                "t@.service",
                &[
                    ("al@.service", "t@.service"),
                    ("multi-user.target.wants/t@inst.service", "t@.service"),
                ],
            ),
            (
                "[Install]\nDefaultInstance=inst\nWantedBy=w%i.target p%p.target n%n.target\n\
                 Alias=al@%i.service\nRequiredBy=r@.target\n",
                "t@.service",
                &[
                    ("al@inst.service", "t@.service"),
                    ("nt@inst.service.target.wants/t@inst.service", "t@.service"),
                    ("pt.target.wants/t@inst.service", "t@.service"),
                    ("r@.target.requires/t@inst.service", "t@.service"),
                    ("winst.target.wants/t@inst.service", "t@.service"),
                ],
            ),
            (
                "[Install]\nWantedBy=x@.target\nAlias=al@.service\n",
                "t@.service",
                &[("al@.service", "t@.service"), ("x@.target.wants/t@.service", "t@.service")],
            ),
            (
                "[Install]\nWantedBy=multi-user.target %i.target %p.target %n.target %N.target \
                 %j.target x@.target\nAlias=al@%i.service\n",
                "t-a-b@z-y.service",
                &[
                    ("al@z-y.service", "t-a-b@z-y.service"),
                    ("b.target.wants/t-a-b@z-y.service", "t-a-b@z-y.service"),
                    ("multi-user.target.wants/t-a-b@z-y.service", "t-a-b@z-y.service"),
                    ("t-a-b.target.wants/t-a-b@z-y.service", "t-a-b@z-y.service"),
                    ("t-a-b@z-y.service.target.wants/t-a-b@z-y.service", "t-a-b@z-y.service"),
                    ("t-a-b@z-y.target.wants/t-a-b@z-y.service", "t-a-b@z-y.service"),
                    ("x@.target.wants/t-a-b@z-y.service", "t-a-b@z-y.service"),
                    ("z-y.target.wants/t-a-b@z-y.service", "t-a-b@z-y.service"),
                ],
            ),
            ("[Install]\nAlias=bar@a.service\n", "foo@a.service", &[("bar@a.service", "foo@a.service")]),
            ("[Install]\nAlias=bar@.service\n", "foo@a.service", &[("bar@a.service", "foo@a.service")]),
            ("[Install]\nAlias=a.target\n", "foo.target", &[("a.target", "foo.target")]),
            (
                "[Install]\nWantedBy=sockets.target\nAlias=s2.socket\n",
                "foo.socket",
                &[("s2.socket", "foo.socket"), ("sockets.target.wants/foo.socket", "foo.socket")],
            ),
            (
                "[Install]\nWantedBy=x@y.target\n",
                "foo.service",
                &[("x@y.target.wants/foo.service", "foo.service")],
            ),
            (
                "[Install]\nAlso=missing.service\nWantedBy=a.target\nUpheldBy=up.target\n",
                "foo.service",
                &[("a.target.wants/foo.service", "foo.service")],
            ),
        ];
        for (text, name, expected) in cases {
            assert_eq!(
                links(text, name).unwrap(),
                want(expected),
                "{name}: {text:?}"
            );
        }
    }

    /// Each case made `systemctl --root=DIR enable` fail (exit 1).
    #[test]
    fn refuses_what_systemctl_refuses() {
        let cases = [
            (
                "[Install]\nWantedBy=\"d.target e.target\" f.target\n",
                "foo.service",
            ),
            (
                "[Install]\nWantedBy=a.target\\\\\nb.target\n",
                "foo.service",
            ),
            (
                "[Install]\nWantedBy=bad/name.target ok.target\n",
                "foo.service",
            ),
            ("[Install]\nAlias=foo.socket\n", "foo.service"),
            ("[Install]\nWantedBy=multi-user.target\n", "t@.service"),
            (
                "[Install]\nWantedBy=%P.target\n",
                "a\\x2db-c@x\\x2dy-z.service",
            ),
            ("[Install]\nWantedBy=%Q.target\n", "foo.service"),
            ("[Install]\nWantedBy=%m.target\n", "foo.service"),
            (
                "[Install]\nWantedBy=a.target \\  \n  b.target\n",
                "foo.service",
            ),
            ("[Install]\nWantedBy=a\\ b.target\n", "foo.service"),
            ("[Install]\nWantedBy=a.target # trailing\n", "foo.service"),
            ("[Install]\nWantedBy=a%%.target\n", "foo.service"),
            ("[Install]\nAlso=\"bar.service\"\n", "foo.service"),
            ("[Install]\nWantedBy=%n.wants\n", "foo.service"),
            (
                "[Install]\nAlias=\"al.service\" 'b c.service'\n",
                "foo.service",
            ),
            ("[Install]\nAlias=bar@b.service\n", "foo@a.service"),
            ("[Install]\nAlias=bar@x.service\n", "foo.service"),
            (
                "[Install]\nAlias=plain.service\nDefaultInstance=i\n",
                "t@.service",
            ),
            ("[Install]\nAlias=x/y.service\n", "foo.service"),
            (
                "[Install]\nWantedBy=a.target\n[Install\nWantedBy=b.target\n",
                "foo.service",
            ),
        ];
        for (text, name) in cases {
            assert!(
                links(text, name).is_err(),
                "{name}: {text:?} gave {:?}",
                links(text, name)
            );
        }
    }

    #[test]
    fn keeps_also_default_instance_and_warnings() {
        let i = Install::parse(
            "[Install]\nAlso=%p-x.service baz.socket\nDefaultInstance=\nUpheldBy=u.target\nWantedBy=a.target \"b\n",
            &unit("foo.service"),
        )
        .unwrap();
        assert_eq!(i.also, [unit("foo-x.service"), unit("baz.socket")]);
        assert_eq!(i.default_instance, None);
        assert_eq!(i.warnings.len(), 3, "{:?}", i.warnings);
        assert!(!i.is_empty());
        let t =
            Install::parse("[Install]\nDefaultInstance=%p1\n", &unit("getty@.service")).unwrap();
        assert_eq!(t.default_instance.as_deref(), Some("getty1"));
        assert!(Install::parse("[Install]\nDefaultInstance=a b\n", &unit("t@.service")).is_err());
    }

    #[test]
    fn nothing_to_enable_without_install_section() {
        let i = Install::parse("[Service]\nExecStart=/bin/true\n", &unit("foo.service")).unwrap();
        assert!(i.is_empty());
        assert_eq!(i.symlinks(DIR).unwrap(), []);
    }

    #[test]
    fn links_are_made_for_the_given_unit_directory() {
        let i =
            Install::parse("[Install]\nWantedBy=default.target\n", &unit("app.service")).unwrap();
        assert_eq!(
            i.symlinks("/home/u/.config/systemd/user/").unwrap(),
            [Symlink {
                link: "/home/u/.config/systemd/user/default.target.wants/app.service".into(),
                target: "/home/u/.config/systemd/user/app.service".into(),
            }]
        );
    }

    #[test]
    fn unquotes_words_like_extract_first_word() {
        assert_eq!(
            unquote_words(" a  'b c'd \"e\"\\f "),
            (vec!["a".into(), "b cd".into(), "e\\f".into()], true)
        );
        assert_eq!(unquote_words("a \"b"), (vec!["a".into()], false));
        assert_eq!(unquote_words("\"\""), (vec![String::new()], true));
        assert_eq!(unquote_words(""), (vec![], true));
    }
}
