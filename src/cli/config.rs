//! berth's own configuration file and the pull flags it gives defaults to.
//!
//! `/etc/berth/berth.toml` (`--user`: `$XDG_CONFIG_HOME/berth/berth.toml`;
//! `$BERTH_CONFIG` names another file) holds defaults an operator sets once
//! for a host instead of on every command line. Like registries.conf and
//! auth.json, it is the host's: `--root DIR` does not read one inside DIR.
//! A flag wins over the file, the file over the built-in default.
//!
//! ```toml
//! [pull]
//! max_layer_size = "16G"   # what one layer may decompress to
//! max_image_size = "32G"   # what all layers of an image may, together
//! ```
//!
//! Unknown keys are refused, naming the file and the key: a misspelt cap
//! must not silently fall back to the default.

use std::path::{Path, PathBuf};

use clap::Args;
use serde::Deserialize;

use super::UsageError;
use crate::image::limits::{self, Limits};

/// The variable that names another configuration file.
pub const ENV_CONFIG: &str = "BERTH_CONFIG";
/// The system scope's file.
pub const SYSTEM_CONFIG: &str = "/etc/berth/berth.toml";

/// What `berth.toml` may set.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[pull]`: defaults of the pull flags.
    #[serde(default)]
    pub pull: PullConfig,
}

/// The `[pull]` table.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PullConfig {
    /// Default of `--max-layer-size` (`"16G"`).
    pub max_layer_size: Option<String>,
    /// Default of `--max-image-size` (`"32G"`).
    pub max_image_size: Option<String>,
}

impl Config {
    /// Parses `text`, read from `path` (named in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Config, UsageError> {
        toml::from_str(text).map_err(|e| {
            UsageError(format!(
                "{}: {}; berth.toml takes [pull] max_layer_size and max_image_size",
                path.display(),
                e.message()
            ))
        })
    }

    /// The size caps this file sets over `base` (the built-in defaults).
    pub fn limits(&self, base: Limits, path: &Path) -> Result<Limits, UsageError> {
        let size = |key: &str, v: &Option<String>, dflt: u64| match v {
            None => Ok(dflt),
            Some(text) => limits::parse_size(text)
                .map_err(|e| UsageError(format!("{}: [pull] {key}: {e}", path.display()))),
        };
        Ok(Limits {
            layer: size("max_layer_size", &self.pull.max_layer_size, base.layer)?,
            image: size("max_image_size", &self.pull.max_image_size, base.image)?,
        })
    }
}

/// The configuration file for this scope: `$BERTH_CONFIG` when set, else the
/// system file, or for `--user` the one in the user's config directory.
pub fn config_path(user: bool) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(ENV_CONFIG).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    if !user {
        return Some(PathBuf::from(SYSTEM_CONFIG));
    }
    let dirs = crate::layout::user_dirs_from_env();
    let config_home = dirs.config_home();
    config_home
        .starts_with('/')
        .then(|| Path::new(&config_home).join("berth/berth.toml"))
}

/// Reads the configuration at `path`; a missing file is the empty config.
pub fn load(path: &Path) -> Result<Config, UsageError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Config::parse(&text, path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
        Err(e) => Err(UsageError(format!("reading {}: {e}", path.display()))),
    }
}

/// The size caps of every verb that pulls (`pull`, `install`, `update`,
/// `apply`, `run-once`).
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Refuse a layer that decompresses to more than SIZE (K, M, G, T: powers
    /// of 1024) [default: berth.toml's [pull] max_layer_size, else 16G].
    #[arg(long, value_name = "SIZE", value_parser = size_arg)]
    pub max_layer_size: Option<u64>,
    /// Refuse an image whose layers decompress to more than SIZE together
    /// [default: berth.toml's [pull] max_image_size, else 32G].
    #[arg(long, value_name = "SIZE", value_parser = size_arg)]
    pub max_image_size: Option<u64>,
}

impl LimitArgs {
    /// The caps in force: the flags over the configuration file over the
    /// built-in defaults. The file is read only when a flag is missing.
    pub fn resolve(&self, user: bool) -> Result<Limits, UsageError> {
        let from_file = match (self.max_layer_size, self.max_image_size) {
            (Some(_), Some(_)) => Limits::default(),
            _ => match config_path(user) {
                Some(path) => load(&path)?.limits(Limits::default(), &path)?,
                None => Limits::default(),
            },
        };
        Ok(Limits {
            layer: self.max_layer_size.unwrap_or(from_file.layer),
            image: self.max_image_size.unwrap_or(from_file.image),
        })
    }
}

/// The signature policy flags of every verb that pulls.
#[derive(Debug, Clone, Args)]
pub struct PolicyArgs {
    /// Check images against this containers-policy.json(5) file (a host
    /// path) [default: ROOT/etc/containers/policy.json; --user:
    /// ~/.config/containers/policy.json first]. Without a policy file every
    /// image is accepted, as before berth read one. Unset:
    /// `$CONTAINERS_POLICY_JSON` when set, as podman and skopeo read it.
    #[arg(long, value_name = "FILE")]
    pub signature_policy: Option<PathBuf>,
    /// Accept every image without checking the signature policy (printed
    /// as a warning on every pull).
    #[arg(long, conflicts_with = "signature_policy")]
    pub insecure_policy: bool,
}

impl PolicyArgs {
    /// The library's options for these flags (and the global
    /// `--registries.d`).
    pub fn options(&self, g: &super::GlobalOpts) -> crate::trust::source::PolicyOptions {
        crate::trust::source::PolicyOptions {
            file: policy_file(self.signature_policy.as_deref()),
            insecure: self.insecure_policy,
            registries_d: g.registries_d.clone(),
            extra: Vec::new(),
        }
    }
}

/// The name of the environment variable the containers tools read the
/// signature policy's path from.
pub const ENV_POLICY: &str = "CONTAINERS_POLICY_JSON";

/// The policy file a verb reads: `--signature-policy`, else a non-empty
/// `$CONTAINERS_POLICY_JSON` (a host path, like the flag), else none (the
/// default lookup inside the root).
pub fn policy_file(flag: Option<&Path>) -> Option<PathBuf> {
    flag.map(Path::to_path_buf).or_else(|| {
        std::env::var_os(ENV_POLICY)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
}

/// Parses a `--max-*-size` value (clap reports the message as a usage error).
pub fn size_arg(text: &str) -> Result<u64, String> {
    limits::parse_size(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, UsageError> {
        Config::parse(text, Path::new("/etc/berth/berth.toml"))
    }

    #[test]
    fn empty_file_keeps_the_defaults() {
        let c = parse("").unwrap();
        let l = c.limits(Limits::default(), Path::new("f")).unwrap();
        assert_eq!(l, Limits::default());
    }

    #[test]
    fn pull_sizes_override_the_defaults() {
        let c = parse("[pull]\nmax_layer_size = \"1G\"\nmax_image_size = \"2GiB\"\n").unwrap();
        let l = c.limits(Limits::default(), Path::new("f")).unwrap();
        assert_eq!(l.layer, 1 << 30);
        assert_eq!(l.image, 2 << 30);
    }

    #[test]
    fn unknown_key_is_refused_naming_file_and_key() {
        let e = parse("[pull]\nmax_layer = \"1G\"\n").unwrap_err().0;
        assert!(e.contains("/etc/berth/berth.toml"), "{e}");
        assert!(e.contains("max_layer"), "{e}");
    }

    #[test]
    fn bad_size_names_the_key() {
        let c = parse("[pull]\nmax_image_size = \"lots\"\n").unwrap();
        let e = c
            .limits(Limits::default(), Path::new("/x.toml"))
            .unwrap_err()
            .0;
        assert!(e.contains("/x.toml: [pull] max_image_size"), "{e}");
    }

    #[test]
    fn help_defaults_are_the_library_defaults() {
        assert_eq!(size_arg("16G"), Ok(Limits::default().layer));
        assert_eq!(size_arg("32G"), Ok(Limits::default().image));
        assert!(size_arg("lots").is_err());
    }

    #[test]
    fn flags_win_over_the_file() {
        let a = LimitArgs {
            max_layer_size: Some(5),
            max_image_size: Some(7),
        };
        let l = a.resolve(false).unwrap();
        assert_eq!((l.layer, l.image), (5, 7));
    }
}
