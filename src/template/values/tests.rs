//! Tests of `values`.

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
        serde_json::from_str(r#"{"S": "x", "N": 5, "F": 1.5, "T": true, "Fa": false}"#).unwrap();
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
