//! The per-file escaper (`template::render` with a `FileKind`): it never
//! panics, and a value stays data: the rendered file, read the way its reader
//! reads it, has the same lines, sections, keys and fields as with a neutral
//! value, and the value reads back as exactly itself.
//!
//! Input: byte 0 picks the kind, byte 1 is the value's length, then the value,
//! then the template text, in which every `$` is a placeholder `${V}`.
//!
//! Oracle: the template is rendered twice, with the fuzzed value and with a
//! sentinel (a private-use character that no reader treats specially and the
//! template never holds). Both renders are read back (units with
//! `systemd::unit::assignments`, berth's model of systemd's `config_parse`;
//! tmpfiles.d lines split as systemd-tmpfiles splits them, written out below;
//! JSON with serde_json); the value's reading must equal the sentinel's
//! reading with each sentinel replaced by the value. Where the reader trims
//! whitespace at a directive's or an argument's edges, the expected text is
//! trimmed the same way.
#![no_main]

use std::collections::BTreeMap;

use berth::systemd::unit::assignments;
use berth::template::values::{
    is_forbidden_in_value, resolve, Forced, HostDefaults, SetValue, Sources,
};
use berth::template::{parse, render, FileKind, Problem, RenderError};
use libfuzzer_sys::fuzz_target;

/// Stands for the value in the reference render.
const S: char = '\u{e000}';

fuzz_target!(|data: &[u8]| {
    let [k, n, rest @ ..] = data else { return };
    let kind = match k % 4 {
        0 => FileKind::Unit,
        1 => FileKind::Tmpfiles,
        2 => FileKind::Json,
        _ => FileKind::Plain,
    };
    let n = (*n as usize).min(rest.len());
    let value: String = String::from_utf8_lossy(&rest[..n])
        .chars()
        .filter(|c| !is_forbidden_in_value(*c) && *c != S)
        .collect();
    let text: String = String::from_utf8_lossy(&rest[n..])
        .chars()
        .filter(|c| *c != S)
        .collect();
    let source = text.split('$').collect::<Vec<_>>().join("${V}");
    let Ok(template) = parse("fuzz", &source) else {
        return;
    };
    let (Some(got), Some(reference)) = (
        rendered(&template, &value, kind),
        rendered(&template, &S.to_string(), kind),
    ) else {
        return;
    };
    let reference = match reference {
        Ok(r) => r,
        // A problem of the template's, whatever the value.
        Err(_) => return,
    };
    let got = match got {
        Ok(g) => g,
        Err(RenderError::Unsafe {
            problem: Problem::TrailingBackslash,
            ..
        }) if value.ends_with('\\') => return,
        Err(RenderError::Unsafe {
            problem: Problem::JsonOpenString,
            ..
        }) if kind == FileKind::Json => return,
        Err(RenderError::Unsafe {
            problem: Problem::UnitCommentStart,
            ..
        }) if value
            .trim_start_matches([' ', '\t'])
            .starts_with(['#', ';']) =>
        {
            return
        }
        // A blank value can end a continuation (a blank line), so a later
        // placeholder lands where a directive's name starts: refused, safely.
        Err(RenderError::Unsafe { .. }) if value.trim_matches(is_space).is_empty() => return,
        Err(e) => panic!("{value:?} refused where the sentinel was not: {e}"),
    };
    match kind {
        FileKind::Unit => check_unit(&got, &reference, &value),
        FileKind::Tmpfiles => check_tmpfiles(&got, &reference, &value),
        FileKind::Json => check_json(&got, &reference, &value),
        FileKind::Plain => assert_eq!(got, reference.replace(S, &value)),
    }
});

fn rendered(
    template: &berth::template::Template,
    value: &str,
    kind: FileKind,
) -> Option<Result<String, RenderError>> {
    let forced = Forced {
        name: "n".into(),
        destdir: "/d".into(),
        exec_start: "s".into(),
        exec_stop: "s".into(),
        exec_startpre: "s".into(),
        exec_stoppost: "s".into(),
        host_uid: 0,
        host_gid: 0,
        image_name: "i".into(),
        image_id: "d".into(),
    };
    let set = [SetValue {
        name: "V".into(),
        value: value.into(),
    }];
    let empty = BTreeMap::new();
    let values = resolve(&Sources {
        forced: &forced,
        set: &set,
        previous: &empty,
        host: &HostDefaults::system(String::new(), "r".into()),
        manifest: &empty,
        generated_uuid: "u",
    })
    .ok()?;
    Some(render(template, &values, kind))
}

/// systemd's WHITESPACE.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// `with_sentinel` with the value, %-escaped as the escaper does, in place of
/// each sentinel; and no sentinel may follow an unpaired `%` (the template's
/// `%` would take the value's first character as a specifier).
fn expected(with_sentinel: &str, value: &str) -> String {
    let mut percents = 0;
    for c in with_sentinel.chars() {
        if c == S {
            assert!(
                percents % 2 == 0,
                "the value follows an unpaired % in {with_sentinel:?}"
            );
        }
        percents = if c == '%' { percents + 1 } else { 0 };
    }
    with_sentinel.replace(S, &value.replace('%', "%%"))
}

fn check_unit(got: &str, reference: &str, value: &str) {
    // A blank value carries no data; the template's own text around it
    // decides what the lines are (where it starts a continuation line, or
    // where an empty value joins the template's backslashes into a pair).
    if value.trim_matches(is_space).is_empty() {
        return;
    }
    let (Ok(g), Ok(r)) = (assignments(got), assignments(reference)) else {
        assert!(
            assignments(reference).is_err(),
            "{got:?} does not parse, {reference:?} does"
        );
        return;
    };
    assert_eq!(
        g.assignments.len(),
        r.assignments.len(),
        "{got:?} vs {reference:?}"
    );
    assert_eq!(
        g.warnings.len(),
        r.warnings.len(),
        "{got:?} vs {reference:?}"
    );
    for (g, r) in g.assignments.iter().zip(&r.assignments) {
        assert_eq!(
            (&g.section, &g.key, g.line),
            (&r.section, &r.key, r.line),
            "{got:?} vs {reference:?}"
        );
        let want = expected(&r.value, value);
        assert_eq!(
            g.value,
            want.trim_matches(is_space),
            "{got:?} vs {reference:?}"
        );
    }
}

/// Lines as systemd's `read_line()` ends them: `\n`, `\r`, NUL, and each
/// combination in which no marker repeats (`\r\n`, `\n\r`, `\r\n\0`, ...);
/// nothing follows a NUL on its line end.
fn systemd_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut seen = 0u8;
    let mut line_end = None;
    for (i, c) in text.char_indices() {
        let marker = match c {
            '\n' => 1,
            '\r' => 2,
            '\0' => 4,
            _ => 0,
        };
        if seen != 0 && (seen & 4 != 0 || marker == 0 || seen & marker != 0) {
            lines.push(&text[start..line_end.unwrap_or(i)]);
            start = i;
            seen = 0;
            line_end = None;
        }
        if marker != 0 {
            if seen == 0 {
                line_end = Some(i);
            }
            seen |= marker;
        }
    }
    if seen != 0 {
        lines.push(&text[start..line_end.unwrap_or(text.len())]);
    } else if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

/// A tmpfiles.d line as systemd-tmpfiles reads it: up to six words
/// (`extract_first_word` with quotes; a `\` takes the next character as is),
/// then the rest of the line, C-unescaped (only `\\` and berth's `\x20`
/// matter here; other escapes are kept as written on both sides). `None`: a line it refuses.
#[derive(Debug, PartialEq)]
struct TmpfilesLine {
    words: Vec<String>,
    argument: String,
}

fn tmpfiles_line(line: &str) -> Option<TmpfilesLine> {
    let mut chars = line.trim_matches(is_space).chars().peekable();
    let mut words = Vec::new();
    while words.len() < 6 {
        while chars.peek().is_some_and(|c| is_space(*c)) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut word = String::new();
        let mut quote = None;
        loop {
            match (chars.next(), quote) {
                (None, Some(_)) => return None,
                (None, None) => break,
                (Some('\\'), _) => word.push(chars.next()?),
                (Some(c), Some(q)) if c == q => quote = None,
                (Some(c), Some(_)) => word.push(c),
                (Some(c @ ('"' | '\'')), None) => quote = Some(c),
                (Some(c), None) if is_space(c) => break,
                (Some(c), None) => word.push(c),
            }
        }
        words.push(word);
    }
    while chars.peek().is_some_and(|c| is_space(*c)) {
        chars.next();
    }
    let mut argument = String::new();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('\\') => argument.push('\\'),
                // The template's backslash would take the value's first
                // character as an escape.
                Some(S) => panic!("the value follows a backslash in the argument of {line:?}"),
                // systemd-tmpfiles C-unescapes the argument strictly: an
                // unknown escape such as `\%` fails the whole line.
                Some(other) if !"abfnrtvs\"'xuU01234567".contains(other) => return None,
                // berth writes a space in an argument as `\x20`.
                Some('x') if chars.peek() == Some(&'2') => {
                    chars.next();
                    match chars.next() {
                        Some('0') => argument.push(' '),
                        Some(d) => argument.extend(['\\', 'x', '2', d]),
                        None => return None,
                    }
                }
                Some(other) => {
                    argument.push('\\');
                    argument.push(other);
                }
                None => return None,
            },
            c => argument.push(c),
        }
    }
    Some(TmpfilesLine { words, argument })
}

fn tmpfiles(text: &str) -> Vec<Option<TmpfilesLine>> {
    systemd_lines(text)
        .into_iter()
        .filter(|l| {
            let l = l.trim_matches(is_space);
            !l.is_empty() && !l.starts_with('#')
        })
        .map(tmpfiles_line)
        .collect()
}

fn check_tmpfiles(got: &str, reference: &str, value: &str) {
    // Documented: an empty value inserted as a whole field drops that field.
    if value.is_empty() {
        return;
    }
    let (g, r) = (tmpfiles(got), tmpfiles(reference));
    assert_eq!(g.len(), r.len(), "{got:?} vs {reference:?}");
    for (g, r) in g.iter().zip(&r) {
        let Some(r) = r else { continue };
        let Some(g) = g else {
            panic!("{got:?}: a line systemd-tmpfiles refuses; {reference:?} is fine");
        };
        assert_eq!(g.words.len(), r.words.len(), "{got:?} vs {reference:?}");
        for (gw, rw) in g.words.iter().zip(&r.words) {
            assert_eq!(gw, &expected(rw, value), "{got:?} vs {reference:?}");
        }
        let want = expected(&r.argument, value);
        // The value's spaces are escaped: neither end of the argument
        // trims them.
        assert_eq!(g.argument, want, "{got:?} vs {reference:?}");
    }
}

fn substituted(v: &serde_json::Value, value: &str) -> serde_json::Value {
    use serde_json::Value::{Array, Object, String as Str};
    match v {
        Str(s) => Str(s.replace(S, value)),
        Array(a) => Array(a.iter().map(|x| substituted(x, value)).collect()),
        Object(o) => Object(
            o.iter()
                .map(|(k, x)| (k.replace(S, value), substituted(x, value)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn check_json(got: &str, reference: &str, value: &str) {
    // A sentinel outside a string is not JSON: the placeholder stood where
    // raw JSON goes, which is inserted verbatim by design.
    let Ok(r) = serde_json::from_str::<serde_json::Value>(reference) else {
        return;
    };
    let g: serde_json::Value = serde_json::from_str(got)
        .unwrap_or_else(|e| panic!("{got:?} is not JSON ({e}); {reference:?} is"));
    assert_eq!(g, substituted(&r, value), "{got:?} vs {reference:?}");
}
