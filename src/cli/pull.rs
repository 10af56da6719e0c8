//! `berth pull`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use super::output::{self, Renderer};
use super::{GlobalOpts, UsageError};
use crate::image::limits::{self, Limits};
use crate::image::manifest::Platform;
use crate::image::regconf;
use crate::image::registry::{RegistryError, RemoteOptions};
use crate::pull::{self, PullRequest};

/// Pull an image from a registry or an archive into the store.
///
/// REF is `[docker://]HOST[:PORT]/PATH[:TAG][@sha256:DIGEST]`, a short name
/// resolved through unqualified-search-registries of registries.conf,
/// `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]` or `docker-archive:FILE[:NAME:TAG]`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// Platform to pick from a multi-platform image, as OS/ARCH[/VARIANT].
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,
    /// Credentials for the registry.
    #[arg(long, value_name = "USER:PASS")]
    pub creds: Option<String>,
    /// auth.json to read credentials from.
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// Directory of CA certificates (*.crt) for the registry.
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// Verify TLS certificates; false also allows plain HTTP.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub tls_verify: Option<bool>,
    /// Layers downloaded in parallel.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=32))]
    pub jobs: u16,
    /// Refuse a layer that decompresses to more than SIZE (K, M, G, T: powers of 1024).
    #[arg(long, value_name = "SIZE", default_value = "16G", value_parser = size_arg)]
    pub max_layer_size: u64,
    /// Refuse an image whose layers decompress to more than SIZE together.
    #[arg(long, value_name = "SIZE", default_value = "32G", value_parser = size_arg)]
    pub max_image_size: u64,
    /// The image to pull.
    #[arg(value_name = "REF")]
    pub reference: String,
}

/// Parses a `--max-*-size` value (clap reports the message as a usage error).
pub fn size_arg(text: &str) -> Result<u64, String> {
    limits::parse_size(text)
}

/// Runs `berth pull`.
pub fn run(g: &GlobalOpts, a: &PullArgs) -> anyhow::Result<()> {
    let platform = match &a.platform {
        Some(p) => Some(Platform::parse(p).ok_or_else(|| {
            UsageError(format!(
                "--platform {p:?}: expected OS/ARCH[/VARIANT], e.g. linux/arm64"
            ))
        })?),
        None => None,
    };
    let creds = match &a.creds {
        Some(c) => Some(
            regconf::parse_creds(c)
                .map_err(RegistryError::from)
                .map_err(crate::Error::from)?,
        ),
        None => None,
    };
    let req = PullRequest {
        input: a.reference.clone(),
        platform,
        remote: RemoteOptions {
            creds,
            authfile: a.authfile.clone(),
            cert_dir: a.cert_dir.clone(),
            tls_verify: a.tls_verify,
            known_plain_http: false,
            limits: Limits {
                layer: a.max_layer_size,
                image: a.max_image_size,
            },
        },
        jobs: a.jobs as usize,
    };
    let renderer = Arc::new(Renderer::new(g));
    let outcome = pull::pull(&g.layout()?, &req, renderer.clone())
        .with_context(|| format!("pulling {}", a.reference))?;
    renderer.finish();
    if g.json {
        output::print_json(&outcome)?;
    } else {
        let fetched = outcome.layers.iter().filter(|l| l.fetched).count();
        let verb = if outcome.changed {
            "Pulled"
        } else {
            "Up to date:"
        };
        output::println(&format!(
            "{verb} {} ({} layers, {fetched} fetched)\nDigest: {}",
            outcome.reference,
            outcome.layers.len(),
            outcome.digest
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_flag_defaults_are_the_library_defaults() {
        assert_eq!(size_arg("16G"), Ok(Limits::default().layer));
        assert_eq!(size_arg("32G"), Ok(Limits::default().image));
        assert!(size_arg("lots").is_err());
    }
}
