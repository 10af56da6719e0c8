//! PURE: rendering a template into the kind of file it becomes, so that a
//! value stays data there.
//!
//! Every value is one line of text ([`super::values`] refuses control
//! characters), so no value can start a new line in any file. On top of that,
//! each kind of file has its rules, applied at each placeholder:
//!
//! - unit files (`.service`, `.socket`, `.timer`): `%` becomes `%%`, so a
//!   value cannot become a specifier. A value may only stand where a
//!   directive's value or a comment is: a placeholder in a directive's name
//!   (before the `=`, including the start of a line) or in a `[Section]`
//!   header is an error, so a value can never add or rename a directive or a
//!   section. A value ending in `\` is refused, since it would continue the
//!   line onto the next one and swallow the directive there; so is a value
//!   right after an unpaired `%` (the `%` would take its first character as
//!   a specifier), and one starting a continuation line with `#` or `;`
//!   (systemd would skip that line as a comment). Comment text is copied as
//!   is. Lines end where systemd's `read_line()` ends them: at `\n`, `\r`,
//!   NUL, or a run of them in which no marker repeats.
//! - tmpfiles.d lines: `%` becomes `%%` (tmpfiles expands specifiers in its
//!   path and argument fields), and the value stays inside the field it
//!   stands in, as systemd-tmpfiles splits a line: the first six fields
//!   (type, path, mode, user, group, age) are words that quotes and a
//!   backslash before any character (taken as is) join, so there a space or
//!   tab is quoted (`" "`: a `\ ` at the line's end would lose its blank to
//!   the line's stripping) and `"`, `'`, `\` and `#` get a `\` before them;
//!   the rest of the line is the argument, which systemd-tmpfiles
//!   C-unescapes, so there `\` becomes `\\` and a space `\x20`
//!   (spaces ending the line would otherwise be trimmed with the line's
//!   trailing blanks). A placeholder right after a
//!   template's `\` or an unpaired `%` is refused (the template's escape or
//!   specifier would take the value's first character). Lines end at `\n`,
//!   `\r` or NUL. Comment text is copied as is. An empty value inserted as a
//!   whole field still drops that field.
//! - `config.json`: the published templates use placeholders in two ways:
//!   inside JSON strings (`"source": "${STATE_DIRECTORY}/etcd"`) and as raw
//!   JSON between values (`$ADDTL_MOUNTS` adds mount objects;
//!   `$ALL_PROCESS_CAPABILITIES` is a list of strings). So the rule depends
//!   on where the placeholder stands, found by lexing the template's JSON:
//!   inside a string the value is JSON-escaped (`"` → `\"`, `\` → `\\`), so it
//!   is exactly the string's content and can never end the string; outside a
//!   string it is inserted verbatim, as the template author intended, but it
//!   must close every string it opens, so it cannot swallow the template's
//!   text into a string. The rendered document must still parse as a runtime
//!   config, which the caller checks. atomic inserted values raw everywhere;
//!   for values without `"` or `\` the output is the same.
//! - other files (`hostfs` files listed in `installedFilesTemplate`,
//!   `renameFiles` paths): values are inserted as they are.

use super::dollar::{Position, Template, TemplateError, Token};
use super::values::Values;
use crate::systemd::unit::{line_end_marker, starts_line_end};

/// What a rendered template becomes; decides the escaping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A systemd unit file.
    Unit,
    /// A tmpfiles.d configuration file.
    Tmpfiles,
    /// The OCI runtime `config.json`.
    Json,
    /// Anything else: values are inserted verbatim.
    Plain,
}

/// A template that cannot be rendered safely with these values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// A syntax error or a variable without value.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// A placeholder whose value would not stay data where it stands.
    #[error("{file}:{position}: ${name} {problem}")]
    Unsafe {
        /// The template file.
        file: String,
        /// The variable.
        name: String,
        /// Where it is used.
        position: Position,
        /// What is wrong.
        problem: Problem,
    },
}

/// Why a placeholder's value would not stay data; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// In a unit file, before a directive's `=` (including a line's start).
    #[error("stands in a directive name of a unit file; a value may only be a directive's value")]
    UnitDirectiveName,
    /// In a unit file's `[Section]` header.
    #[error("stands in a section header of a unit file; a value may only be a directive's value")]
    UnitSectionHeader,
    /// A unit-file value ending in `\`.
    #[error(
        "has a value ending in a backslash, which would continue the line onto the next directive"
    )]
    TrailingBackslash,
    /// Right after a `\` inside a JSON string.
    #[error("follows a backslash inside a JSON string")]
    JsonAfterBackslash,
    /// Raw JSON (outside a string) that opens a string it does not close.
    #[error("is inserted as JSON here, but its value opens a string it does not close")]
    JsonOpenString,
    /// Right after a `\` in a tmpfiles.d line.
    #[error("follows a backslash in a tmpfiles.d line; put the backslash elsewhere")]
    TmpfilesAfterBackslash,
    /// Right after an unpaired `%` where specifiers are expanded.
    #[error("follows an unpaired %, which would make the value's first character a specifier; write %% for a literal %")]
    AfterPercent,
    /// A unit-file value starting a continuation line with `#` or `;`.
    #[error("starts a continuation line with a value beginning with # or ;, which would make the line a comment")]
    UnitCommentStart,
}

/// Renders `template` with `values` for a file of `kind`; see the module docs.
pub fn render(template: &Template, values: &Values, kind: FileKind) -> Result<String, RenderError> {
    let mut out = String::new();
    let mut unit = UnitLexer::default();
    let mut json = JsonLexer::default();
    let mut tmpfiles = TmpfilesLexer::default();
    for token in template.tokens() {
        match token {
            Token::Literal(text) => {
                out.push_str(text);
                match kind {
                    FileKind::Unit => text.chars().for_each(|c| unit.feed(c)),
                    FileKind::Json => text.chars().for_each(|c| json.feed(c)),
                    FileKind::Tmpfiles => text.chars().for_each(|c| tmpfiles.feed(c)),
                    FileKind::Plain => {}
                }
            }
            Token::Variable(p) => {
                let value = values.get(&p.name).ok_or_else(|| template.missing(p))?;
                let inserted = match kind {
                    FileKind::Unit => unit.insert(value, &mut out),
                    FileKind::Json => json.insert(value, &mut out),
                    FileKind::Tmpfiles => tmpfiles.insert(value, &mut out),
                    FileKind::Plain => {
                        out.push_str(value);
                        Ok(())
                    }
                };
                inserted.map_err(|problem| RenderError::Unsafe {
                    file: template.file().to_string(),
                    name: p.name.clone(),
                    position: p.position,
                    problem,
                })?;
            }
        }
    }
    Ok(out)
}

/// Where on a unit-file line the text so far stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum UnitPlace {
    /// Only whitespace so far on this line.
    #[default]
    Start,
    /// A `#` or `;` comment line.
    Comment,
    /// A `[Section]` header.
    Section,
    /// A directive's name, before its `=`.
    Key,
    /// A directive's value.
    Value,
}

/// Follows systemd's line rules over the template's literal text: comment
/// lines, `[Section]` headers, `Key=Value`, and lines continued with a
/// trailing `\` (comment lines inside a continuation are skipped).
#[derive(Debug, Default)]
struct UnitLexer {
    place: UnitPlace,
    /// What a continued line goes on with (`Key`, `Value` or `Section`).
    continued: Option<UnitPlace>,
    /// Backslashes at the end of the line so far.
    backslashes: usize,
    /// `%` at the end of the line so far.
    percents: usize,
    /// The line-end markers of the run just read (see `line_end_marker`).
    line_end: u8,
}

impl UnitLexer {
    fn feed(&mut self, c: char) {
        let marker = line_end_marker(c);
        if marker != 0 {
            if starts_line_end(self.line_end, marker) {
                self.end_line();
                self.line_end = 0;
            }
            self.line_end |= marker;
            return;
        }
        self.line_end = 0;
        if c == '\\' {
            self.backslashes += 1;
        } else {
            self.backslashes = 0;
        }
        self.percents = if c == '%' { self.percents + 1 } else { 0 };
        if self.place == UnitPlace::Start && !matches!(c, ' ' | '\t' | '\r') {
            self.place = match (c, self.continued) {
                ('#' | ';', _) => UnitPlace::Comment,
                (_, Some(place)) => place,
                ('[', None) => UnitPlace::Section,
                _ => UnitPlace::Key,
            };
        }
        if self.place == UnitPlace::Key && c == '=' {
            self.place = UnitPlace::Value;
        }
    }

    fn end_line(&mut self) {
        let continues = self.backslashes % 2 == 1;
        self.continued = match self.place {
            // Comment lines neither continue nor end a continuation.
            UnitPlace::Comment => self.continued,
            // A `[Section]` header continues too: systemd joins lines
            // before it looks at what they are.
            UnitPlace::Key | UnitPlace::Value | UnitPlace::Section if continues => Some(self.place),
            // An empty line ends a continuation, like any other line.
            _ => None,
        };
        self.place = UnitPlace::Start;
        self.backslashes = 0;
        self.percents = 0;
    }

    fn insert(&mut self, value: &str, out: &mut String) -> Result<(), Problem> {
        let place = match (self.place, self.continued) {
            (UnitPlace::Start, Some(continued)) => {
                // The value starts a continuation line: systemd would read a
                // `#` or `;` there as a comment line; blanks keep the line
                // at its start.
                match value.trim_start_matches([' ', '\t']).chars().next() {
                    Some('#' | ';') => return Err(Problem::UnitCommentStart),
                    None if continued == UnitPlace::Value => {
                        out.push_str(value);
                        return Ok(());
                    }
                    _ => continued,
                }
            }
            (place, _) => place,
        };
        match place {
            UnitPlace::Start | UnitPlace::Key => Err(Problem::UnitDirectiveName),
            UnitPlace::Section => Err(Problem::UnitSectionHeader),
            UnitPlace::Comment => {
                out.push_str(value);
                Ok(())
            }
            UnitPlace::Value if value.ends_with('\\') => Err(Problem::TrailingBackslash),
            UnitPlace::Value if self.percents % 2 == 1 => Err(Problem::AfterPercent),
            UnitPlace::Value => {
                self.place = UnitPlace::Value;
                if !value.is_empty() {
                    self.backslashes = 0;
                    self.percents = 0;
                }
                out.push_str(&value.replace('%', "%%"));
                Ok(())
            }
        }
    }
}

/// Fields after which the rest of a tmpfiles.d line is the argument.
const TMPFILES_WORDS: usize = 6;

/// Where on a tmpfiles.d line the text so far stands, as systemd-tmpfiles
/// splits it (`extract_first_word` with quotes; the argument is the rest).
#[derive(Debug, Default)]
struct TmpfilesLexer {
    /// Words ended on this line; [`TMPFILES_WORDS`] and more: the argument.
    words: usize,
    in_word: bool,
    quote: Option<char>,
    escaped: bool,
    comment: bool,
    /// `%` ending the text so far of the current word (unquoted) or argument.
    percents: usize,
}

impl TmpfilesLexer {
    fn feed(&mut self, c: char) {
        // Any line end starts a new line; empty lines are skipped.
        if line_end_marker(c) != 0 {
            *self = TmpfilesLexer::default();
            return;
        }
        if self.comment {
            return;
        }
        if self.words >= TMPFILES_WORDS {
            // The argument, C-unescaped: a `\` takes the next character.
            let literal = !self.escaped && c != '\\';
            self.escaped = !self.escaped && c == '\\';
            self.percents = if literal && c == '%' {
                self.percents + 1
            } else {
                0
            };
            return;
        }
        if self.escaped {
            self.escaped = false;
            self.word_char(c);
            return;
        }
        match c {
            '\\' => {
                self.escaped = true;
                self.in_word = true;
            }
            c if self.quote == Some(c) => self.quote = None,
            '"' | '\'' if self.quote.is_none() => {
                self.quote = Some(c);
                self.in_word = true;
            }
            ' ' | '\t' if self.quote.is_none() => {
                if self.in_word {
                    self.words += 1;
                    self.in_word = false;
                }
                self.percents = 0;
            }
            '#' if self.words == 0 && !self.in_word => self.comment = true,
            _ => self.word_char(c),
        }
    }

    /// `c` joins the current word.
    fn word_char(&mut self, c: char) {
        self.in_word = true;
        self.percents = if c == '%' { self.percents + 1 } else { 0 };
    }

    fn insert(&mut self, value: &str, out: &mut String) -> Result<(), Problem> {
        if self.escaped {
            return Err(Problem::TmpfilesAfterBackslash);
        }
        if self.comment {
            out.push_str(value);
            return Ok(());
        }
        if self.percents % 2 == 1 {
            return Err(Problem::AfterPercent);
        }
        let in_field = self.words < TMPFILES_WORDS;
        for c in value.chars() {
            match c {
                '%' => out.push_str("%%"),
                // Quoted rather than escaped: systemd-tmpfiles strips the
                // line's trailing blanks, which would leave a lone `\`.
                ' ' | '\t' if in_field && self.quote.is_none() => {
                    out.push('"');
                    out.push(c);
                    out.push('"');
                }
                // `#` too: at a line's start it would make a comment.
                ' ' | '\t' | '"' | '\'' | '\\' | '#' if in_field => {
                    out.push('\\');
                    out.push(c);
                }
                '\\' => out.push_str("\\\\"),
                // The argument is C-unescaped; an escaped blank is never
                // trimmed with the line's trailing blanks.
                ' ' => out.push_str("\\x20"),
                c => out.push(c),
            }
        }
        if !value.is_empty() {
            self.percents = 0;
            if in_field {
                self.in_word = true;
            }
        }
        Ok(())
    }
}

/// Whether the JSON text so far is inside a string.
#[derive(Debug, Default)]
struct JsonLexer {
    in_string: bool,
    escaped: bool,
}

impl JsonLexer {
    fn feed(&mut self, c: char) {
        if !self.in_string {
            self.in_string = c == '"';
        } else if self.escaped {
            self.escaped = false;
        } else if c == '\\' {
            self.escaped = true;
        } else if c == '"' {
            self.in_string = false;
        }
    }

    fn insert(&mut self, value: &str, out: &mut String) -> Result<(), Problem> {
        if self.escaped {
            return Err(Problem::JsonAfterBackslash);
        }
        if self.in_string {
            for c in value.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
                    c => out.push(c),
                }
            }
            return Ok(());
        }
        value.chars().for_each(|c| self.feed(c));
        if self.in_string {
            return Err(Problem::JsonOpenString);
        }
        out.push_str(value);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
