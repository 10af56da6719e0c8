//! `berth pull`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use super::config::{LimitArgs, PolicyArgs};
use super::output::{self, Renderer};
use super::{GlobalOpts, UsageError};
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
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// The image to pull.
    #[arg(value_name = "REF")]
    pub reference: String,
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
            limits: a.limits.resolve(g.user)?,
        },
        jobs: a.jobs as usize,
        policy: a.policy.options(g),
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
            "{verb} {} ({} layers, {fetched} fetched)\nDigest: {}\nTrust:  {}",
            outcome.reference,
            outcome.layers.len(),
            outcome.digest,
            outcome.trust.describe()
        ))?;
    }
    Ok(())
}
