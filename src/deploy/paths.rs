//! PURE: the one check every path an image supplies passes before berth
//! uses it as a host path: `VOLUME`s of the image config and the bind
//! sources berth's default config makes of them, `/exports/hostfs` paths,
//! `manifest.json`'s `renameFiles` and `installedFilesTemplate`, and the
//! path field of each rendered `tmpfiles.template` line.
//!
//! A good path is absolute, normalised (no empty, `.` or `..` component,
//! no trailing `/`), not `/` itself, and free of control characters, so
//! joined below the root it names a place inside the root. Where an image
//! shows a directory with a trailing `/` (`VOLUME /data/`, a `renameFiles`
//! prefix), the caller strips one before asking.

use super::exports::Exports;
use super::DeployError;

/// Why a path an image supplies is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathProblem {
    /// Relative, or empty.
    #[error("is not an absolute path")]
    NotAbsolute,
    /// `/` itself.
    #[error("is the root directory")]
    Root,
    /// `//` or a trailing `/`.
    #[error("has an empty component (`//` or a trailing `/`)")]
    EmptyComponent,
    /// A `.` component.
    #[error("has a `.` component")]
    Dot,
    /// A `..` component: it could leave the root.
    #[error("has a `..` component, which could leave the root")]
    DotDot,
    /// A control character (a newline would split the line it is written on).
    #[error("contains a control character")]
    Control,
}

/// Checks that `path` is absolute, normalised and below `/`.
pub fn check_path(path: &str) -> Result<(), PathProblem> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(PathProblem::NotAbsolute);
    };
    if rest.is_empty() {
        return Err(PathProblem::Root);
    }
    if path.chars().any(char::is_control) {
        return Err(PathProblem::Control);
    }
    for component in rest.split('/') {
        match component {
            "" => return Err(PathProblem::EmptyComponent),
            "." => return Err(PathProblem::Dot),
            ".." => return Err(PathProblem::DotDot),
            _ => {}
        }
    }
    Ok(())
}

/// The error refusing `path`, found at `key` of `image`.
pub fn refuse(image: &str, key: &str, path: &str, why: impl ToString) -> DeployError {
    DeployError::ImagePath {
        image: image.to_string(),
        key: key.to_string(),
        path: path.to_string(),
        why: why.to_string(),
    }
}

/// [`check_path`], naming the image and the key when it fails.
pub fn check_image_path(image: &str, key: &str, path: &str) -> Result<(), DeployError> {
    check_path(path).map_err(|p| refuse(image, key, path, p))
}

/// The paths of `/exports/manifest.json`: each `renameFiles` prefix (one
/// trailing `/` allowed) and each `installedFilesTemplate` entry. (The
/// rendered `renameFiles` targets and the hostfs paths are checked as host
/// paths where they are planned.)
pub fn check_manifest_paths(image: &str, exports: &Exports) -> Result<(), DeployError> {
    for from in exports.rename_files.keys() {
        check_image_path(image, "manifest.json renameFiles", strip_dir_slash(from))?;
    }
    for path in &exports.installed_files_template {
        check_image_path(image, "manifest.json installedFilesTemplate", path)?;
    }
    Ok(())
}

/// The path of each line of a rendered tmpfiles.d file (`file`: the
/// template's name, `tmpfiles.template`), by [`check_tmpfiles_path`].
pub fn check_tmpfiles(image: &str, file: &str, text: &str) -> Result<(), DeployError> {
    for (line, path) in tmpfiles_paths(text) {
        check_tmpfiles_path(&path)
            .map_err(|p| refuse(image, &format!("{file} line {line}"), &path, p))?;
    }
    Ok(())
}

/// `path` less one trailing `/` (a directory as images often write it).
pub fn strip_dir_slash(path: &str) -> &str {
    match path.strip_suffix('/') {
        Some(p) if !p.is_empty() => p,
        _ => path,
    }
}

/// The path field of each line of a rendered tmpfiles.d file, with its
/// 1-based line number: quotes and backslash escapes undone as
/// systemd-tmpfiles splits its words, `%%` as `%`. Comments and blank lines
/// have none; a line with a type and no path yields an empty path.
pub fn tmpfiles_paths(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start_matches([' ', '\t']);
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let path = nth_word(trimmed, 1).unwrap_or_default();
        out.push((i + 1, path.replace("%%", "%")));
    }
    out
}

/// The directory specifiers systemd-tmpfiles expands to an absolute path
/// (`%h`, `%S`, `%C`, `%L`, `%T`, `%V`, `%t`, `%E`): a tmpfiles path may
/// start with one instead of `/`.
const DIR_SPECIFIERS: &[char] = &['h', 'S', 'C', 'L', 'T', 'V', 't', 'E'];

/// [`check_path`] for a tmpfiles.d path field, which may start with a
/// directory specifier (`%S/etcd`): the rest is then checked below it.
pub fn check_tmpfiles_path(path: &str) -> Result<(), PathProblem> {
    let mut chars = path.chars();
    if chars.next() == Some('%') && chars.next().is_some_and(|c| DIR_SPECIFIERS.contains(&c)) {
        let rest = chars.as_str();
        if rest.is_empty() {
            return Ok(());
        }
        return check_path(rest);
    }
    check_path(path)
}

/// The `n`th (0-based) word of a tmpfiles.d line: words split on spaces and
/// tabs, joined by `"…"`/`'…'` quotes and `\` before any character.
fn nth_word(line: &str, n: usize) -> Option<String> {
    let mut words = 0;
    let mut word = String::new();
    let mut in_word = false;
    let mut quote = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                in_word = true;
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            }
            c if quote == Some(c) => quote = None,
            '"' | '\'' if quote.is_none() => {
                quote = Some(c);
                in_word = true;
            }
            ' ' | '\t' if quote.is_none() => {
                if in_word {
                    if words == n {
                        return Some(word);
                    }
                    words += 1;
                    word.clear();
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    (in_word && words == n).then_some(word)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn accepts_only_absolute_normalised_paths() {
        for ok in [
            "/a",
            "/var/lib/etcd",
            "/usr/local/bin/x y",
            "/a/.hidden",
            "/a/..b",
        ] {
            assert_eq!(check_path(ok), Ok(()), "{ok:?}");
        }
        let table = [
            ("", PathProblem::NotAbsolute),
            ("a/b", PathProblem::NotAbsolute),
            ("../etc", PathProblem::NotAbsolute),
            ("/", PathProblem::Root),
            ("//", PathProblem::EmptyComponent),
            ("/a//b", PathProblem::EmptyComponent),
            ("/a/", PathProblem::EmptyComponent),
            ("/./a", PathProblem::Dot),
            ("/a/.", PathProblem::Dot),
            ("/..", PathProblem::DotDot),
            ("/data/../../etc/shadow", PathProblem::DotDot),
            ("/a/b/..", PathProblem::DotDot),
            ("/a\nb", PathProblem::Control),
            ("/a\u{1b}[2J", PathProblem::Control),
        ];
        for (bad, want) in table {
            assert_eq!(check_path(bad), Err(want), "{bad:?}");
        }
    }

    #[test]
    fn errors_name_the_image_the_key_and_the_path() {
        let text = "d /ok 0755 - - -\n\nd /a/../b 0755 - - -\n";
        let e = check_tmpfiles("img", "tmpfiles.template", text).unwrap_err();
        assert_eq!(
            e.to_string(),
            "image img: tmpfiles.template line 3: path \"/a/../b\" has a `..` component, \
             which could leave the root; refusing the image"
        );
        assert_eq!(e.kind(), crate::ErrorKind::Usage);
        let mut ex = Exports::default();
        ex.rename_files.insert("/etc/app/".into(), "/etc/x".into());
        ex.installed_files_template.push("/etc/x/a.conf".into());
        check_manifest_paths("img", &ex).unwrap();
        ex.installed_files_template.push("etc/x/b.conf".into());
        let e = check_manifest_paths("img", &ex).unwrap_err().to_string();
        assert!(
            e.contains("manifest.json installedFilesTemplate: path \"etc/x/b.conf\""),
            "{e}"
        );
        ex.rename_files.insert("/etc/./y".into(), "/etc/y".into());
        let e = check_manifest_paths("img", &ex).unwrap_err().to_string();
        assert!(
            e.contains("manifest.json renameFiles: path \"/etc/./y\""),
            "{e}"
        );
    }

    #[test]
    fn strips_one_directory_slash() {
        assert_eq!(strip_dir_slash("/data/"), "/data");
        assert_eq!(strip_dir_slash("/data//"), "/data/");
        assert_eq!(strip_dir_slash("/"), "/");
        assert_eq!(strip_dir_slash("/data"), "/data");
    }

    #[test]
    fn finds_the_path_field_of_each_tmpfiles_line() {
        let text = "# comment\n\
                    d    /var/lib/etcd   0700 root root - -\n\
                    \n\
                    d \"/var/lib/a b\" 0755 - - -\n\
                    d /var/lib/x\\ y\\\"z 0755 - - -\n\
                    w+ /etc/passwd - - - - x:0:0::/:/bin/sh\n\
                    \t z\t/srv/a%%b\n\
                    R /var/lib/../../etc\n\
                    x\n";
        assert_eq!(
            tmpfiles_paths(text),
            [
                (2, "/var/lib/etcd".to_string()),
                (4, "/var/lib/a b".to_string()),
                (5, "/var/lib/x y\"z".to_string()),
                (6, "/etc/passwd".to_string()),
                (7, "/srv/a%b".to_string()),
                (8, "/var/lib/../../etc".to_string()),
                (9, String::new()),
            ]
        );
    }

    #[test]
    fn tmpfiles_paths_may_start_with_a_directory_specifier() {
        for ok in ["%S/etcd", "%t", "%h/.cache/x", "/run/x"] {
            assert_eq!(check_tmpfiles_path(ok), Ok(()), "{ok:?}");
        }
        assert_eq!(check_tmpfiles_path("%S/../x"), Err(PathProblem::DotDot));
        assert_eq!(check_tmpfiles_path("%m/x"), Err(PathProblem::NotAbsolute));
        assert_eq!(
            check_tmpfiles_path("%S//x"),
            Err(PathProblem::EmptyComponent)
        );
        assert_eq!(check_tmpfiles_path(""), Err(PathProblem::NotAbsolute));
    }
}
