//! Tests of `dollar`.

use super::*;
use std::collections::BTreeMap;

/// The values every table case is rendered with.
fn values() -> BTreeMap<&'static str, &'static str> {
    [
        ("NAME", "n"),
        ("name", "low"),
        ("_x", "u"),
        ("A1", "a1"),
        ("X", "x"),
        ("k", "K"),
    ]
    .into_iter()
    .collect()
}

fn substitute(text: &str) -> Result<String, TemplateError> {
    let values = values();
    parse("t", text)?.render(|n| values.get(n).map(|v| Cow::Borrowed(*v)))
}

enum Want {
    Ok(&'static str),
    /// Python's KeyError: the missing name.
    Missing(&'static str),
    /// Python's ValueError: line and column.
    Invalid(usize, usize),
}

/// Each row was run through CPython 3.11:
/// `string.Template(s).substitute(values)`.
#[test]
fn matches_cpython_substitute() {
    use Want::*;
    let table: &[(&str, Want)] = &[
        ("$NAME", Ok("n")),
        ("${NAME}", Ok("n")),
        ("$$", Ok("$")),
        ("$$NAME", Ok("$NAME")),
        ("$$$NAME", Ok("$n")),
        ("$$1", Ok("$1")),
        ("$NAME$NAME", Ok("nn")),
        ("$name", Ok("low")),
        ("$_x", Ok("u")),
        ("${_x}", Ok("u")),
        ("${A1}b", Ok("a1b")),
        ("${NAME}}", Ok("n}")),
        ("{$NAME}", Ok("{n}")),
        ("$NAME.x", Ok("n.x")),
        ("$X-y", Ok("x-y")),
        ("${NAME}x${X}", Ok("nxx")),
        ("$X\u{e9}", Ok("x\u{e9}")),
        ("$k\u{301}", Ok("K\u{301}")),
        ("no dollars at all", Ok("no dollars at all")),
        ("", Ok("")),
        ("$NAMEx", Missing("NAMEx")),
        ("$A1b", Missing("A1b")),
        ("$UNDEF", Missing("UNDEF")),
        ("${UNDEF}", Missing("UNDEF")),
        ("$K", Missing("K")),
        ("$", Invalid(1, 1)),
        ("a$", Invalid(1, 2)),
        ("$1", Invalid(1, 1)),
        ("${1}", Invalid(1, 1)),
        ("${}", Invalid(1, 1)),
        ("${NAME", Invalid(1, 1)),
        ("${ NAME}", Invalid(1, 1)),
        ("${ UNDEF}", Invalid(1, 1)),
        ("${NAME:-d}", Invalid(1, 1)),
        ("$-", Invalid(1, 1)),
        ("$ ", Invalid(1, 1)),
        ("$\n", Invalid(1, 1)),
        ("$$$", Invalid(1, 3)),
        ("\t$ ", Invalid(1, 2)),
        ("\u{e9}$1", Invalid(1, 2)),
        ("$\u{c4}", Invalid(1, 1)),
        ("${\u{c4}}", Invalid(1, 1)),
        ("$\u{c4}X", Invalid(1, 1)),
        ("${X\u{130}}", Invalid(1, 1)),
        ("$\u{130}", Invalid(1, 1)),
        ("$\u{212a}", Invalid(1, 1)),
        ("${\u{212a}}", Invalid(1, 1)),
        ("x\n  $1", Invalid(2, 3)),
        ("ab\n$", Invalid(2, 1)),
        ("\n$1", Invalid(2, 1)),
        ("a\n\n$1", Invalid(3, 1)),
        ("a\nb$1", Invalid(2, 2)),
        ("a\r$1", Invalid(2, 1)),
        ("a\r\n$1", Invalid(2, 1)),
        ("a\r\n\r\n$1", Invalid(3, 1)),
        ("a\n\r$1", Invalid(3, 1)),
        ("a\u{0b}$1", Invalid(2, 1)),
        ("a\u{2028}$1", Invalid(2, 1)),
        ("a\u{85}b$1", Invalid(2, 2)),
        ("$NAME\n\u{e9}\u{e9}$$ $?", Invalid(2, 6)),
    ];
    for (text, want) in table {
        let got = substitute(text);
        match (want, &got) {
            (Ok(w), Result::Ok(g)) if w == g => {}
            (Missing(w), Err(TemplateError::MissingValue { name, .. })) if name == w => {}
            (Invalid(l, c), Err(TemplateError::InvalidPlaceholder { position, .. }))
                if (position.line, position.column) == (*l, *c) => {}
            _ => panic!("{text:?}: got {got:?}"),
        }
    }
}

#[test]
fn tokens_keep_names_positions_and_braces() {
    let t = parse("f", "a$$b ${X}c\n $Y").unwrap();
    assert_eq!(
        t.tokens(),
        &[
            Token::Literal("a$b ".into()),
            Token::Variable(Placeholder {
                name: "X".into(),
                braced: true,
                position: Position { line: 1, column: 6 },
            }),
            Token::Literal("c\n ".into()),
            Token::Variable(Placeholder {
                name: "Y".into(),
                braced: false,
                position: Position { line: 2, column: 2 },
            }),
        ]
    );
    assert_eq!(t.file(), "f");
}

#[test]
fn variables_lists_each_name_once() {
    let t = parse("f", "$B ${A} $B $$C ${_z}").unwrap();
    assert_eq!(
        t.variables().into_iter().collect::<Vec<_>>(),
        ["A", "B", "_z"]
    );
    assert!(parse("f", "plain $$").unwrap().variables().is_empty());
}

#[test]
fn missing_value_names_file_variable_and_position() {
    let t = parse("/exports/service.template", "[Unit]\nAfter=$AFTER\n").unwrap();
    let err = t.render(|_| None).unwrap_err();
    assert_eq!(
        err,
        TemplateError::MissingValue {
            file: "/exports/service.template".into(),
            name: "AFTER".into(),
            position: Position { line: 2, column: 7 },
        }
    );
    assert_eq!(
        err.to_string(),
        "/exports/service.template:2:7: variable AFTER has no value; \
             set it with --set AFTER=VALUE"
    );
}

#[test]
fn invalid_placeholder_message_names_file_line_and_column() {
    let err = parse("/exports/tmpfiles.template", "d $1").unwrap_err();
    assert_eq!(
        err.to_string(),
        "/exports/tmpfiles.template:1:3: invalid placeholder: `$` must be followed by \
             a name, `{name}` or another `$` (write `$$` for a literal `$`)"
    );
}

#[test]
fn values_are_inserted_verbatim() {
    // A value is never parsed again: `$` and `${..}` inside it stay as they are.
    let t = parse("f", "<$A>").unwrap();
    let out = t.render(|_| Some(Cow::Borrowed("$B ${C} $$"))).unwrap();
    assert_eq!(out, "<$B ${C} $$>");
}

#[test]
fn display_gives_back_the_source() {
    for text in [
        "",
        "a$$b",
        "${X}y $Z",
        "$$$$",
        "\u{e9}${A}\n$B$$",
        "$A$B${C}",
    ] {
        let t = parse("f", text).unwrap();
        assert_eq!(t.to_string(), text);
        assert_eq!(parse("f", &t.to_string()).unwrap(), t);
    }
}

#[test]
fn escape_round_trips_any_text() {
    for text in ["", "$", "$$", "${X}", "a$1 $ $", "\u{e9}$\n$"] {
        let t = parse("f", &escape(text)).unwrap();
        assert!(t.variables().is_empty());
        assert_eq!(t.render(|_| None).unwrap(), text);
    }
}

#[test]
fn identifiers_are_ascii() {
    for ok in ["A", "_", "_1", "abc_DEF_09", "HOST_UID"] {
        assert!(is_identifier(ok), "{ok}");
    }
    for bad in ["", "1A", "A-B", "A B", "\u{c4}", "A\u{e9}", "$A", "{A}"] {
        assert!(!is_identifier(bad), "{bad}");
    }
}
