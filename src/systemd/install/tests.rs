//! Tests of `install`.

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
    let t = Install::parse("[Install]\nDefaultInstance=%p1\n", &unit("getty@.service")).unwrap();
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
    let i = Install::parse("[Install]\nWantedBy=default.target\n", &unit("app.service")).unwrap();
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
