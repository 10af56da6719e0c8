//! PURE: the `$VAR` template language of image exports, parsed and rendered.
//!
//! Images written for `atomic install --system` ship `/exports/*.template`
//! files in the syntax of Python's `string.Template`, rendered with the strict
//! `substitute()`:
//!
//! | source | meaning |
//! | --- | --- |
//! | `$NAME` | the value of `NAME`; the longest run of `[_A-Za-z0-9]` after `$` |
//! | `${NAME}` | the same, delimited, so text may follow directly (`${NAME}ctl`) |
//! | `$$` | a literal `$` |
//! | `$` + anything else | an error at that `$`'s line and column |
//!
//! Names are ASCII identifiers `[_A-Za-z][_A-Za-z0-9]*` (Python's default
//! `idpattern` is case-insensitive and ASCII-only). `${` must be followed by
//! a name and `}` with no space in between. A name with no value is an error
//! naming the file, the variable and where it is used.
//!
//! This is hand-written on purpose: tera (which renders berth's own default
//! templates) reads `{{ }}` and `{% %}` and has no notion of `$NAME`, `${NAME}`
//! or `$$`, and the published images depend on exactly Python's rules,
//! including its errors. The tests below are a table of inputs whose results
//! were taken from CPython 3.11's `string.Template(s).substitute(d)`.
//!
//! Two differences from Python, both only in which error is reported: every
//! syntax error is found by [`parse`] before any lookup (Python stops at the
//! first problem in text order, so `$MISSING $1` is a missing name to Python
//! and a syntax error here), and lines and columns are counted the same way
//! (1-based, columns in characters, lines split like `str.splitlines`).

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;

/// A 1-based line and column (in characters) in a template's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// Line, from 1; lines end where Python's `str.splitlines` ends them.
    pub line: usize,
    /// Column, from 1, counted in characters (not bytes).
    pub column: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A placeholder: `$NAME` or `${NAME}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder {
    /// The variable name.
    pub name: String,
    /// Written as `${NAME}` rather than `$NAME`.
    pub braced: bool,
    /// Where its `$` is.
    pub position: Position,
}

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// Text copied as is; each `$$` of the source is already a single `$`.
    Literal(String),
    /// A variable to substitute.
    Variable(Placeholder),
}

/// A template that parsed; render it with [`Template::render`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    file: String,
    tokens: Vec<Token>,
}

/// A template that cannot be parsed or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A `$` not followed by `$`, a name or `{name}`.
    #[error(
        "{file}:{position}: invalid placeholder: `$` must be followed by a name, \
         `{{name}}` or another `$` (write `$$` for a literal `$`)"
    )]
    InvalidPlaceholder {
        /// The template file, as the caller named it.
        file: String,
        /// Where the `$` is.
        position: Position,
    },
    /// A variable the template uses has no value.
    #[error("{file}:{position}: variable {name} has no value; set it with --set {name}=VALUE")]
    MissingValue {
        /// The template file, as the caller named it.
        file: String,
        /// The variable.
        name: String,
        /// Where it is first used without a value.
        position: Position,
    },
}

/// Whether `s` is a template variable name: `[_A-Za-z][_A-Za-z0-9]*`.
pub fn is_identifier(s: &str) -> bool {
    !s.is_empty() && identifier_len(s) == s.len()
}

/// `text` with every `$` doubled, so that it parses to itself as a literal.
pub fn escape(text: &str) -> String {
    text.replace('$', "$$")
}

/// Parses `text`, the contents of the template `file` (used in errors only).
pub fn parse(file: &str, text: &str) -> Result<Template, TemplateError> {
    let mut tokens = Vec::new();
    let mut literal = String::new();
    let mut cursor = Cursor::new(text);
    while let Some(c) = cursor.peek() {
        if c != '$' {
            literal.push(c);
            cursor.bump();
            continue;
        }
        let position = cursor.position();
        let rest = cursor.rest().get(1..).unwrap_or_default();
        let (name, braced, len) = match scan_placeholder(rest) {
            Some(Scan::Dollar) => {
                literal.push('$');
                cursor.skip_ascii(2);
                continue;
            }
            Some(Scan::Named(n)) => (rest.get(..n), false, 1 + n),
            Some(Scan::Braced(n)) => (rest.get(1..1 + n), true, 3 + n),
            None => (None, false, 0),
        };
        let Some(name) = name else {
            return Err(TemplateError::InvalidPlaceholder {
                file: file.to_string(),
                position,
            });
        };
        if !literal.is_empty() {
            tokens.push(Token::Literal(std::mem::take(&mut literal)));
        }
        tokens.push(Token::Variable(Placeholder {
            name: name.to_string(),
            braced,
            position,
        }));
        cursor.skip_ascii(len);
    }
    if !literal.is_empty() {
        tokens.push(Token::Literal(literal));
    }
    Ok(Template {
        file: file.to_string(),
        tokens,
    })
}

impl Template {
    /// The file name given to [`parse`].
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The literals and placeholders, in order; adjacent literals are merged.
    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    /// The placeholders, in order.
    pub fn placeholders(&self) -> impl Iterator<Item = &Placeholder> {
        self.tokens.iter().filter_map(|t| match t {
            Token::Variable(p) => Some(p),
            Token::Literal(_) => None,
        })
    }

    /// Every variable name the template uses, each once.
    pub fn variables(&self) -> BTreeSet<&str> {
        self.placeholders().map(|p| p.name.as_str()).collect()
    }

    /// The template with each placeholder replaced by `lookup(name)`, verbatim.
    ///
    /// The first placeholder whose lookup is `None` is an error.
    pub fn render<'v, F>(&self, lookup: F) -> Result<String, TemplateError>
    where
        F: Fn(&str) -> Option<Cow<'v, str>>,
    {
        let mut out = String::new();
        for token in &self.tokens {
            match token {
                Token::Literal(text) => out.push_str(text),
                Token::Variable(p) => match lookup(&p.name) {
                    Some(value) => out.push_str(&value),
                    None => return Err(self.missing(p)),
                },
            }
        }
        Ok(out)
    }

    /// The error for `placeholder` having no value.
    pub fn missing(&self, placeholder: &Placeholder) -> TemplateError {
        TemplateError::MissingValue {
            file: self.file.clone(),
            name: placeholder.name.clone(),
            position: placeholder.position,
        }
    }
}

/// The template's source text: parsing it gives back the same tokens, and it
/// equals the text the template was parsed from.
impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for token in &self.tokens {
            match token {
                Token::Literal(text) => f.write_str(&escape(text))?,
                Token::Variable(p) if p.braced => write!(f, "${{{}}}", p.name)?,
                Token::Variable(p) => write!(f, "${}", p.name)?,
            }
        }
        Ok(())
    }
}

/// What follows a `$`; lengths are in bytes of the text after the `$`.
enum Scan {
    /// `$$`.
    Dollar,
    /// `$NAME`: the name's length.
    Named(usize),
    /// `${NAME}`: the name's length (without braces).
    Braced(usize),
}

fn scan_placeholder(rest: &str) -> Option<Scan> {
    let bytes = rest.as_bytes();
    match bytes.first()? {
        b'$' => Some(Scan::Dollar),
        b'{' => {
            let inner = rest.get(1..)?;
            let n = identifier_len(inner);
            (n > 0 && inner.as_bytes().get(n) == Some(&b'}')).then_some(Scan::Braced(n))
        }
        _ => {
            let n = identifier_len(rest);
            (n > 0).then_some(Scan::Named(n))
        }
    }
}

/// Length in bytes of the identifier at the start of `s` (0 if none).
fn identifier_len(s: &str) -> usize {
    let bytes = s.as_bytes();
    match bytes.first() {
        Some(b) if b.is_ascii_alphabetic() || *b == b'_' => bytes
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
            .count(),
        _ => 0,
    }
}

/// Walks the text keeping Python's line and column numbers.
struct Cursor<'a> {
    text: &'a str,
    offset: usize,
    line: usize,
    column: usize,
    after_cr: bool,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Cursor {
            text,
            offset: 0,
            line: 1,
            column: 1,
            after_cr: false,
        }
    }

    fn rest(&self) -> &'a str {
        self.text.get(self.offset..).unwrap_or_default()
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn position(&self) -> Position {
        Position {
            line: self.line,
            column: self.column,
        }
    }

    fn bump(&mut self) {
        let Some(c) = self.peek() else { return };
        self.offset += c.len_utf8();
        // "\r\n" is one line break; its "\n" only finishes it.
        if c == '\n' && self.after_cr {
            self.after_cr = false;
            return;
        }
        self.after_cr = c == '\r';
        if is_line_break(c) {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
    }

    /// Skips `n` characters known to be ASCII and not line breaks.
    fn skip_ascii(&mut self, n: usize) {
        self.offset += n;
        self.column += n;
        self.after_cr = false;
    }
}

/// The line boundaries of Python's `str.splitlines`.
fn is_line_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r'
            | '\u{0b}'
            | '\u{0c}'
            | '\u{1c}'
            | '\u{1d}'
            | '\u{1e}'
            | '\u{85}'
            | '\u{2028}'
            | '\u{2029}'
    )
}

#[cfg(test)]
mod tests;
