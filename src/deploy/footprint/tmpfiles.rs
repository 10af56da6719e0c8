//! PURE: a tmpfiles.d line's type and path, as systemd-tmpfiles splits it,
//! and whether the line changes paths that exist or only creates missing
//! ones (tmpfiles.d(5)).

/// One line of a tmpfiles.d file: what the footprint needs of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The type with its modifiers (`w+`, `Z`, `d`).
    pub typ: String,
    /// The path, unquoted; `None` when it holds a backslash or a specifier
    /// (`%h`): systemd-tmpfiles decides where it goes, so it is no one's own.
    pub plain_path: Option<String>,
    /// The path as written.
    pub path: String,
    /// The line acts on a path that exists: writes, appends, truncates,
    /// replaces, removes, or changes modes, owners, attributes, ACLs, or
    /// ages out its contents.
    pub changes_existing: bool,
}

/// Types that act on what exists whatever their modifiers: `w`/`a` write,
/// `z`/`Z`/`t`/`T`/`h`/`H`/`a`/`A` set modes, owners, attributes, ACLs,
/// `r`/`R` remove, `D` empties at boot, `e` ages out contents, `x`/`X`
/// change what cleaning removes, `F` truncates.
const CHANGERS: &[char] = &[
    'w', 'a', 'A', 'z', 'Z', 't', 'T', 'h', 'H', 'r', 'R', 'D', 'e', 'x', 'X', 'F',
];

/// Types whose age field cleans the contents of an existing directory.
const AGED: &[char] = &['d', 'D', 'v', 'q', 'Q', 'C', 'e'];

/// The lines of a tmpfiles.d file (comments and blank lines skipped).
pub fn lines(text: &str) -> Vec<Line> {
    text.lines().filter_map(line).collect()
}

fn line(raw: &str) -> Option<Line> {
    let trimmed = raw.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return None;
    }
    let words = words(trimmed);
    let typ = words.first()?.clone();
    let path_word = words.get(1)?;
    let base = typ.text.chars().next()?;
    // `+` replaces or truncates what is there; `=` removes it when its
    // type differs.
    let modifiers = typ.text.get(base.len_utf8()..).unwrap_or_default();
    let aged = words
        .get(5)
        .is_some_and(|a| a.text != "-" && !a.text.is_empty());
    let changes_existing = CHANGERS.contains(&base)
        || modifiers.contains(['+', '='])
        || (aged && AGED.contains(&base));
    Some(Line {
        typ: typ.text,
        plain_path: (!path_word.escaped && !path_word.text.contains('%'))
            .then(|| path_word.text.clone()),
        path: path_word.text.clone(),
        changes_existing,
    })
}

#[derive(Debug, Clone)]
struct Word {
    text: String,
    /// It held a backslash escape.
    escaped: bool,
}

/// Splits a line into words as systemd's `extract_first_word` does with
/// quotes: whitespace separates, `"…"` and `'…'` group, `\` escapes.
fn words(line: &str) -> Vec<Word> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return out;
        }
        let mut w = Word {
            text: String::new(),
            escaped: false,
        };
        let mut quote: Option<char> = None;
        while let Some(c) = chars.next() {
            match (c, quote) {
                ('\\', _) => {
                    w.escaped = true;
                    if let Some(n) = chars.next() {
                        w.text.push(n);
                    }
                }
                (q @ ('"' | '\''), None) => quote = Some(q),
                (q, Some(open)) if q == open => quote = None,
                (c, None) if c.is_whitespace() => break,
                (c, _) => w.text.push(c),
            }
        }
        out.push(w);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sorts_lines_into_changers_and_creators() {
        let text = "# comment\n\n\
            w+ /etc/passwd - - - - x:0:0::/:/bin/sh\n\
            z /etc/shadow 0666 - - -\n\
            R /srv/userdata\n\
            d /var/lib/docker - - - -\n\
            d /var/log - - - 1d\n\
            f /etc/ld.so.preload - - - - /lib/x.so\n\
            L+ /etc/localtime - - - - /x\n\
            f= /etc/x\n\
            D! /run/x\n\
            d \"/srv/with space\" 0755\n";
        let got: Vec<(String, String, bool)> = lines(text)
            .into_iter()
            .map(|l| (l.typ, l.path, l.changes_existing))
            .collect();
        let want = [
            ("w+", "/etc/passwd", true),
            ("z", "/etc/shadow", true),
            ("R", "/srv/userdata", true),
            ("d", "/var/lib/docker", false),
            ("d", "/var/log", true),
            ("f", "/etc/ld.so.preload", false),
            ("L+", "/etc/localtime", true),
            ("f=", "/etc/x", true),
            ("D!", "/run/x", true),
            ("d", "/srv/with space", false),
        ];
        let want: Vec<(String, String, bool)> = want
            .iter()
            .map(|(t, p, c)| (t.to_string(), p.to_string(), *c))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn escaped_or_specifier_paths_are_not_plain() {
        let l = lines("w /var/lib/x/\\x2e\\x2e/etc/passwd\nw /home/%u/x\nw '/var/lib/x'\n");
        assert_eq!(l[0].plain_path, None);
        assert_eq!(l[1].plain_path, None);
        assert_eq!(l[2].plain_path.as_deref(), Some("/var/lib/x"));
    }
}
