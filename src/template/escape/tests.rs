//! Tests of `escape`.

use super::super::dollar::parse;
use super::super::values::{resolve, Forced, HostDefaults, SetValue, Sources};
use super::*;
use std::collections::BTreeMap;

fn values(set: &[(&str, &str)]) -> Values {
    let forced = Forced {
        name: "flannel".into(),
        destdir: "/var/lib/berth/containers/flannel.0".into(),
        exec_start: "/usr/bin/berth run --bundle /var/lib/berth/containers/flannel.0 flannel"
            .into(),
        exec_stop: "/usr/bin/berth kill flannel".into(),
        exec_startpre: String::new(),
        exec_stoppost: String::new(),
        host_uid: 0,
        host_gid: 0,
        image_name: "flannel".into(),
        image_id: "sha256:1".into(),
    };
    let set: Vec<SetValue> = set
        .iter()
        .map(|(k, v)| SetValue {
            name: k.to_string(),
            value: v.to_string(),
        })
        .collect();
    resolve(&Sources {
        forced: &forced,
        set: &set,
        previous: &BTreeMap::new(),
        host: &HostDefaults::system(r#""CAP_A", "CAP_B""#.into(), "berth".into()),
        manifest: &BTreeMap::new(),
        generated_uuid: "u",
    })
    .unwrap()
}

fn render_one(text: &str, set: &[(&str, &str)], kind: FileKind) -> Result<String, RenderError> {
    render(&parse("t", text).unwrap(), &values(set), kind)
}

#[test]
fn renders_the_flannel_unit() {
    let text = "[Unit]\nAfter=$AFTER\n\n[Service]\nExecStart=$EXEC_START\n\
                    WorkingDirectory=$DESTDIR\nRuntimeDirectory=${NAME}\n\n\
                    [Install]\nRequiredBy=$REQUIRED_BY\n";
    let got = render_one(
        text,
        &[("AFTER", "etcd.service"), ("REQUIRED_BY", "docker.service")],
        FileKind::Unit,
    )
    .unwrap();
    assert_eq!(
        got,
        "[Unit]\nAfter=etcd.service\n\n[Service]\nExecStart=/usr/bin/berth run --bundle \
             /var/lib/berth/containers/flannel.0 flannel\nWorkingDirectory=\
             /var/lib/berth/containers/flannel.0\nRuntimeDirectory=flannel\n\n\
             [Install]\nRequiredBy=docker.service\n"
    );
}

#[test]
fn unit_values_cannot_become_specifiers() {
    let got = render_one(
        "[Service]\nEnvironment=X=$V\n",
        &[("V", "100%n")],
        FileKind::Unit,
    );
    assert_eq!(got.unwrap(), "[Service]\nEnvironment=X=100%%n\n");
}

#[test]
fn unit_placeholders_may_not_stand_in_names_or_headers() {
    use Problem::{UnitDirectiveName as Name, UnitSectionHeader as Header};
    let cases = [
        ("$V\n", Name, (1, 1)),
        ("[Service]\n  $V\n", Name, (2, 3)),
        ("[Service]\nUser$V=x\n", Name, (2, 5)),
        ("[Service]\nExec${V}=x\n", Name, (2, 5)),
        ("[Service$V]\n", Header, (1, 9)),
        ("[Unit]\nA=b\n$V=c\n", Name, (3, 1)),
    ];
    for (text, problem, (line, column)) in cases {
        let got = render_one(text, &[("V", "User=root")], FileKind::Unit);
        assert_eq!(
            got,
            Err(RenderError::Unsafe {
                file: "t".into(),
                name: "V".into(),
                position: Position { line, column },
                problem,
            }),
            "{text:?}"
        );
    }
}

#[test]
fn unit_placeholders_in_values_comments_and_continuations_are_fine() {
    let cases = [
        ("A=$V\n", "A=x y\n"),
        ("# from $V\n", "# from x y\n"),
        ("; $V\n", "; x y\n"),
        ("A=b \\\n  $V\n", "A=b \\\n  x y\n"),
        ("A=b \\\n# comment\n$V\n", "A=b \\\n# comment\nx y\n"),
        ("A=[$V]\n", "A=[x y]\n"),
        ("A\\\n=$V\n", "A\\\n=x y\n"),
        ("A=b \\\r\n$V\n", "A=b \\\r\nx y\n"),
    ];
    for (text, want) in cases {
        assert_eq!(
            render_one(text, &[("V", "x y")], FileKind::Unit).unwrap(),
            want,
            "{text:?}"
        );
    }
    // A comment keeps the value as written: it is never parsed.
    assert_eq!(
        render_one("# $V\n", &[("V", "5%")], FileKind::Unit).unwrap(),
        "# 5%\n"
    );
}

#[test]
fn unit_lines_after_a_continuation_are_new_lines() {
    // An even run of backslashes does not continue the line; nor does an
    // empty line inside a continuation.
    for text in [
        "A=b\\\\\n$V\n",
        "A=b \\\n\n$V\n",
        "A=b\n$V\n",
        "A=b \\ \n$V\n",
    ] {
        let got = render_one(text, &[("V", "x")], FileKind::Unit);
        assert!(
            matches!(
                got,
                Err(RenderError::Unsafe {
                    problem: Problem::UnitDirectiveName,
                    ..
                })
            ),
            "{text:?}: {got:?}"
        );
    }
}

#[test]
fn unit_lines_end_at_cr_and_nul_as_systemd_reads_them() {
    // Found by fuzz/fuzz_targets/escape.rs: systemd ends a line at a bare
    // `\r` or a NUL too, so a placeholder after one starts a directive.
    for text in ["[Service]\nA=b\r$V\n", "[Service]\nA=b\0$V\n"] {
        let got = render_one(text, &[("V", "User=root")], FileKind::Unit);
        assert!(
            matches!(
                got,
                Err(RenderError::Unsafe {
                    problem: Problem::UnitDirectiveName,
                    ..
                })
            ),
            "{text:?}: {got:?}"
        );
    }
    // `\n\r` is one line end: the continuation goes on.
    let got = render_one("A=b \\\n\r$V\n", &[("V", "x y")], FileKind::Unit);
    assert_eq!(got.unwrap(), "A=b \\\n\rx y\n");
}

#[test]
fn unit_placeholders_on_a_continued_section_header_are_refused() {
    // Found by fuzz/fuzz_targets/escape.rs: "[A \\\nB=$V]" is one header,
    // "[A  B=value]", for systemd.
    let got = render_one("[Unit \\\nX=$V]\n", &[("V", "x")], FileKind::Unit);
    assert!(
        matches!(
            got,
            Err(RenderError::Unsafe {
                problem: Problem::UnitSectionHeader,
                ..
            })
        ),
        "{got:?}"
    );
}

#[test]
fn unit_values_after_an_unpaired_percent_are_refused() {
    let got = render_one("A=100%$V\n", &[("V", "n")], FileKind::Unit);
    assert!(matches!(
        got,
        Err(RenderError::Unsafe {
            problem: Problem::AfterPercent,
            ..
        })
    ));
    let got = render_one("A=100%%$V\n", &[("V", "n")], FileKind::Unit);
    assert_eq!(got.unwrap(), "A=100%%n\n");
}

#[test]
fn unit_values_cannot_turn_a_continuation_line_into_a_comment() {
    let text = "A=b \\\n$V\nUser=nobody\n";
    for value in ["# x", "  ;x"] {
        let got = render_one(text, &[("V", value)], FileKind::Unit);
        assert!(
            matches!(
                got,
                Err(RenderError::Unsafe {
                    problem: Problem::UnitCommentStart,
                    ..
                })
            ),
            "{value:?}: {got:?}"
        );
    }
    // A blank value keeps the line blank: it ends the continuation.
    let got = render_one(text, &[("V", " ")], FileKind::Unit).unwrap();
    assert_eq!(got, "A=b \\\n \nUser=nobody\n");
}

#[test]
fn unsafe_placeholders_are_reported_with_file_position_and_reason() {
    let err = render_one("[Service]\nUser$V=x\n", &[("V", "x")], FileKind::Unit).unwrap_err();
    assert_eq!(
        err.to_string(),
        "t:2:5: $V stands in a directive name of a unit file; \
             a value may only be a directive's value"
    );
}

#[test]
fn unit_values_ending_in_a_backslash_are_refused() {
    let got = render_one(
        "Environment=A=$V\nUser=nobody\n",
        &[("V", "x\\")],
        FileKind::Unit,
    );
    assert!(
        matches!(got, Err(RenderError::Unsafe { ref name, problem: Problem::TrailingBackslash, .. }) if name == "V")
    );
    assert_eq!(
        render_one("A=$V\n", &[("V", "a\\b")], FileKind::Unit).unwrap(),
        "A=a\\b\n"
    );
}

#[test]
fn tmpfiles_values_cannot_become_specifiers() {
    let got = render_one(
        "d ${STATE_DIRECTORY}/$V 0700 - - -\n",
        &[("V", "%h")],
        FileKind::Tmpfiles,
    );
    assert_eq!(got.unwrap(), "d /var/lib/%%h 0700 - - -\n");
}

#[test]
fn tmpfiles_values_stay_inside_their_field() {
    let t = |line: &str, v: &str| render_one(line, &[("V", v)], FileKind::Tmpfiles);
    let table = [
        ("d /x/$V 0700 - - -\n", "a b", "d /x/a\" \"b 0700 - - -\n"),
        (
            "d /x/$V - - - -\n",
            r#"q"u'o\te"#,
            r#"d /x/q\"u\'o\\te - - - -"#,
        ),
        (
            "d \"/x/$V\" - - - -\n",
            "a b\"",
            "d \"/x/a\\ b\\\"\" - - - -\n",
        ),
        ("d /x 0700 $V - -\n", "us er", "d /x 0700 us\" \"er - -\n"),
        (
            "L /l - - - - /t/$V\n",
            "a b\\c%",
            "L /l - - - - /t/a\\x20b\\\\c%%\n",
        ),
        (
            "L '/a b' - - - - /t/$V\n",
            "x y",
            "L '/a b' - - - - /t/x\\x20y\n",
        ),
        ("# d $V\nd /x/$V\n", "a b", "# d a b\nd /x/a\" \"b\n"),
    ];
    for (line, value, want) in table {
        let want = if want.ends_with('\n') {
            want.to_string()
        } else {
            format!("{want}\n")
        };
        assert_eq!(t(line, value).unwrap(), want, "{line:?} with {value:?}");
    }
    let err = t("d /x\\$V - - - -\n", "a").unwrap_err();
    assert!(matches!(
        err,
        RenderError::Unsafe {
            problem: Problem::TmpfilesAfterBackslash,
            ..
        }
    ));
}

#[test]
fn tmpfiles_values_keep_their_line_as_systemd_tmpfiles_reads_it() {
    // Found by fuzz/fuzz_targets/escape.rs.
    let t = |line: &str, v: &str| render_one(line, &[("V", v)], FileKind::Tmpfiles);
    // A trailing blank survives the line's stripping.
    assert_eq!(t("d /x/$V\n", "a ").unwrap(), "d /x/a\" \"\n");
    // Blanks ending an argument are not trimmed with the line's
    // (fuzz/findings/escape-open-trailing-escaped-blank); checked with
    // systemd-tmpfiles 252: `f /out - - - - a\x20\x20` writes "a  ".
    assert_eq!(
        t("f /x - - - - a$V\n", "  ").unwrap(),
        "f /x - - - - a\\x20\\x20\n"
    );
    // `\r` and NUL end lines: the value starts a new line's first field.
    assert_eq!(
        t("d /a - - - - x\r$V /b\n", "L /e").unwrap(),
        "d /a - - - - x\rL\" \"/e /b\n"
    );
    // A `#` cannot make the line a comment.
    assert_eq!(t("$V /x - - - -\n", "#d").unwrap(), "\\#d /x - - - -\n");
    let refused = |line: &str, problem: Problem| {
        let got = t(line, "n");
        assert!(
            matches!(got, Err(RenderError::Unsafe { problem: p, .. }) if p == problem),
            "{line:?}: {got:?}"
        );
    };
    refused("L /l - - - - /t\\$V\n", Problem::TmpfilesAfterBackslash);
    refused("d /x% - - - -\nd /x/%$V - - - -\n", Problem::AfterPercent);
    refused("L /l - - - - /t%$V\n", Problem::AfterPercent);
    refused("d \"/x/%\"$V - - - -\n", Problem::AfterPercent);
    assert_eq!(
        t("L /l - - - - /t\\\\%%$V\n", "n").unwrap(),
        "L /l - - - - /t\\\\%%n\n"
    );
}

#[test]
fn json_values_inside_strings_are_escaped() {
    let text = r#"{"env": ["NAME=$NAME", "X=${X}"], "k\"$X": 1}"#;
    let got = render_one(text, &[("X", r#"a"b\c"#)], FileKind::Json).unwrap();
    assert_eq!(
        got,
        r#"{"env": ["NAME=flannel", "X=a\"b\\c"], "k\"a\"b\\c": 1}"#
    );
    let parsed: serde_json::Value = serde_json::from_str(&got).unwrap();
    assert_eq!(parsed["env"][1], r#"X=a"b\c"#);
}

#[test]
fn json_cannot_be_broken_out_of_a_string() {
    let text = r#"{"source": "$DIR", "readonly": true}"#;
    let got = render_one(
        text,
        &[("DIR", r#"x", "readonly": false, "y": ""#)],
        FileKind::Json,
    )
    .unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&got).unwrap();
    assert_eq!(parsed["readonly"], true);
    assert_eq!(parsed["source"], r#"x", "readonly": false, "y": ""#);
}

#[test]
fn json_values_outside_strings_are_raw_json() {
    let text = "{\"mounts\": [{\"a\": 1}\n        $ADDTL_MOUNTS\n], \
                    \"caps\": [$ALL_PROCESS_CAPABILITIES]}";
    let got = render_one(
        text,
        &[("ADDTL_MOUNTS", r#", {"b": "x\"y"}"#)],
        FileKind::Json,
    )
    .unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&got).unwrap();
    assert_eq!(parsed["mounts"][1]["b"], "x\"y");
    assert_eq!(parsed["caps"], serde_json::json!(["CAP_A", "CAP_B"]));
    let empty = render_one(text, &[("ADDTL_MOUNTS", "")], FileKind::Json).unwrap();
    assert!(serde_json::from_str::<serde_json::Value>(&empty).is_ok());
}

#[test]
fn json_raw_values_must_close_their_strings() {
    let text = r#"{"a": [$V], "b": "$NAME"}"#;
    for bad in [r#"""#, r#""x"#, r#""x\"#, r#"1, "a\""#] {
        let got = render_one(text, &[("V", bad)], FileKind::Json);
        assert!(
            matches!(
                got,
                Err(RenderError::Unsafe {
                    problem: Problem::JsonOpenString,
                    ..
                })
            ),
            "{bad}: {got:?}"
        );
    }
}

#[test]
fn json_placeholder_after_a_backslash_is_refused() {
    let got = render_one(r#"{"a": "\$V"}"#, &[("V", "n")], FileKind::Json);
    assert!(matches!(
        got,
        Err(RenderError::Unsafe {
            problem: Problem::JsonAfterBackslash,
            ..
        })
    ));
    // An escaped backslash is complete: the placeholder is plain string content.
    let got = render_one(r#"{"a": "\\$V"}"#, &[("V", "n")], FileKind::Json).unwrap();
    assert_eq!(got, r#"{"a": "\\n"}"#);
}

#[test]
fn plain_files_get_values_verbatim() {
    let got = render_one("$V ${NAME}ctl\n", &[("V", "50% \"q\" \\")], FileKind::Plain);
    assert_eq!(got.unwrap(), "50% \"q\" \\ flannelctl\n");
}

#[test]
fn missing_values_name_file_and_variable() {
    let got = render_one("A=$NOPE\n", &[], FileKind::Unit);
    assert!(matches!(
        got,
        Err(RenderError::Template(TemplateError::MissingValue { ref name, .. })) if name == "NOPE"
    ));
}
