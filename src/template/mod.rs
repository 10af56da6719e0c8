//! Image templates: atomic's `$VAR` language, the variables of an install and
//! the escaping that keeps values data in each kind of file.
//!
//! An image's `/exports/*.template` files are parsed with [`parse`] (syntax
//! errors carry file, line and column), its variables are resolved once per
//! install with [`resolve`] (forced > `--set` > previous > host defaults >
//! manifest `defaultValues` > generated `UUID`), and each template is
//! rendered with [`render`] for the [`FileKind`] it becomes:
//!
//! ```text
//! /exports/service.template      ─► NAME.service          FileKind::Unit
//! /exports/socket.template       ─► NAME.socket           FileKind::Unit
//! /exports/timer.template        ─► NAME.timer            FileKind::Unit
//! /exports/tmpfiles.template     ─► tmpfiles.d/NAME.conf  FileKind::Tmpfiles
//! /exports/config.json.template  ─► DESTDIR/config.json   FileKind::Json
//! installedFilesTemplate files   ─► host paths            FileKind::Plain
//! ```
//!
//! Everything here is pure: callers read the files and the environment.

pub mod dollar;
pub mod escape;
pub mod values;

pub use dollar::{parse, Placeholder, Position, Template, TemplateError, Token};
pub use escape::{render, FileKind, Problem, RenderError};
pub use values::{
    resolve, HostDefaults, Provenance, SetValue, Sources, UserDirs, Value, Values, ValuesError,
};
