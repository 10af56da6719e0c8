//! `berth trust show` and `berth trust set`: the containers signature
//! policy (containers-policy.json(5)) berth checks every pull against.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::{output, GlobalOpts, UsageError};
use crate::layout::Layout;
use crate::rootfs::Root;
use crate::trust::edit::{self, SetType};
use crate::trust::source::{self, Loaded, PolicyOptions};
use crate::trust::{pin, KeySource, Requirement, SignedIdentity};

/// Show or edit the signature policy.
///
/// The policy is /etc/containers/policy.json (inside --root; for --user
/// ~/.config/containers/policy.json first), the file podman, skopeo, CRI-O
/// and bootc read: per registry scope, the signatures an image needs before
/// berth pulls it. See docs/trust.md.
#[derive(Debug, Args)]
pub struct TrustArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: TrustCommand,
}

/// `berth trust` verbs.
#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Print the effective policy: each scope and its requirements.
    Show(ShowArgs),
    /// Set the requirements of one scope, as `podman image trust set` does.
    ///
    /// SCOPE is `default` (images no scope lists) or a registry scope:
    /// HOST[:PORT][/PATH…] or *.DOMAIN. The file is replaced atomically and
    /// everything else in it is kept.
    Set(SetArgs),
}

/// `berth trust show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Read this policy file (a host path) instead of the default
    /// (unset: `$CONTAINERS_POLICY_JSON` when set).
    #[arg(long, value_name = "FILE")]
    pub signature_policy: Option<PathBuf>,
}

/// `berth trust set`.
#[derive(Debug, Args)]
pub struct SetArgs {
    /// The requirement: accept (insecureAcceptAnything), reject, signedBy
    /// (GPG simple signing) or sigstoreSigned (cosign).
    #[arg(long = "type", short = 't', value_name = "TYPE", value_parser = parse_type)]
    pub ty: SetType,
    /// A public key file (absolute; read inside --root): an OpenPGP key for
    /// signedBy, a PEM public key for sigstoreSigned. Repeatable: each key
    /// must have signed.
    #[arg(long = "pubkeys", short = 'f', value_name = "FILE")]
    pub pubkeys: Vec<PathBuf>,
    /// Edit this policy file (a host path) instead of the default
    /// (unset: `$CONTAINERS_POLICY_JSON` when set).
    #[arg(long, value_name = "FILE")]
    pub signature_policy: Option<PathBuf>,
    /// `default` or a registry scope.
    #[arg(value_name = "SCOPE")]
    pub scope: String,
}

fn parse_type(s: &str) -> Result<SetType, String> {
    s.parse()
}

/// Runs `berth trust`.
pub fn run(g: &GlobalOpts, a: &TrustArgs) -> anyhow::Result<()> {
    match &a.command {
        TrustCommand::Show(s) => show(g, s),
        TrustCommand::Set(s) => set(g, s),
    }
}

fn show(g: &GlobalOpts, a: &ShowArgs) -> anyhow::Result<()> {
    let layout = g.layout()?;
    let opts = PolicyOptions {
        file: super::config::policy_file(a.signature_policy.as_deref()),
        ..PolicyOptions::default()
    };
    let loaded = source::load(&layout, &opts).map_err(crate::Error::from)?;
    let (file, policy) = match loaded {
        Loaded::Policy { file, policy } => (file, policy),
        Loaded::Absent { looked } => {
            let looked: Vec<String> = looked
                .iter()
                .map(|p| layout.host(&p.to_string_lossy()).display().to_string())
                .collect();
            if g.json {
                return output::print_json(
                    &json!({"policy": null, "looked": looked, "scopes": []}),
                );
            }
            output::println(&format!(
                "No signature policy ({}): every image is accepted.",
                looked.join(", ")
            ))?;
            return Ok(());
        }
        // Only with PolicyOptions::insecure, which `show` never sets.
        Loaded::Insecure => return Ok(()),
    };
    let mut scopes = vec![json!({
        "transport": null,
        "scope": "default",
        "requirements": policy.default.iter().map(requirement_json).collect::<Vec<_>>(),
    })];
    for (transport, map) in &policy.transports {
        for (scope, reqs) in map {
            scopes.push(json!({
                "transport": transport,
                "scope": scope,
                "requirements": reqs.iter().map(requirement_json).collect::<Vec<_>>(),
            }));
        }
    }
    if g.json {
        return output::print_json(&json!({"policy": file, "scopes": scopes}));
    }
    let mut rows = vec![[
        "TRANSPORT".to_string(),
        "SCOPE".into(),
        "TYPE".into(),
        "KEYS".into(),
        "IDENTITY".into(),
    ]];
    for s in &scopes {
        let transport = s["transport"].as_str().unwrap_or("(all)").to_string();
        let scope = match s["scope"].as_str().unwrap_or_default() {
            "" => "(transport default)".to_string(),
            other => other.to_string(),
        };
        for r in s["requirements"].as_array().into_iter().flatten() {
            let keys: Vec<&str> = r["keys"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let keys = match (keys.is_empty(), r["keyless"].as_bool()) {
                (true, Some(true)) => "keyless (Fulcio/Rekor)".to_string(),
                (true, _) => "-".into(),
                (false, _) => keys.join(","),
            };
            rows.push([
                transport.clone(),
                scope.clone(),
                r["type"].as_str().unwrap_or_default().into(),
                keys,
                r["identity"].as_str().unwrap_or("-").into(),
            ]);
        }
    }
    let mut widths = [0usize; 5];
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = format!("Policy: {}\n", file.display());
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    // Scopes and key paths come from the file: escaped line by line.
    let lines: Vec<String> = out.lines().map(output::escape_controls).collect();
    output::println(&lines.join("\n"))?;
    Ok(())
}

/// How `trust show --json` prints a requirement.
fn requirement_json(r: &Requirement) -> Value {
    let key = |k: &KeySource| match k {
        KeySource::Path(p) | KeySource::Loaded { path: p, .. } => p.display().to_string(),
        KeySource::Data(d) => format!("keyData ({} bytes)", d.len()),
    };
    match r {
        Requirement::InsecureAcceptAnything | Requirement::Reject => {
            json!({"type": r.type_name()})
        }
        Requirement::SignedBy { keys, identity, .. } => json!({
            "type": r.type_name(),
            "key_type": "GPGKeys",
            "keys": keys.iter().map(key).collect::<Vec<_>>(),
            "identity": identity_text(identity),
        }),
        Requirement::SigstoreSigned {
            key: k,
            keyless,
            identity,
        } => json!({
            "type": r.type_name(),
            "keys": k.iter().map(key).collect::<Vec<_>>(),
            "keyless": keyless,
            "identity": identity_text(identity),
        }),
    }
}

fn identity_text(i: &SignedIdentity) -> String {
    match i {
        SignedIdentity::MatchRepoDigestOrExact => "matchRepoDigestOrExact".into(),
        SignedIdentity::MatchExact => "matchExact".into(),
        SignedIdentity::MatchRepository => "matchRepository".into(),
        SignedIdentity::ExactReference(r) => format!("exactReference {r}"),
        SignedIdentity::ExactRepository(r) => format!("exactRepository {r}"),
        SignedIdentity::RemapIdentity {
            prefix,
            signed_prefix,
        } => format!("remapIdentity {prefix} -> {signed_prefix}"),
    }
}

/// The file `trust set` edits: the root it is inside and its path there.
fn target(layout: &Layout, explicit: Option<&Path>) -> anyhow::Result<(Root, PathBuf)> {
    if let Some(p) = explicit {
        let abs = std::path::absolute(p).with_context(|| format!("{}", p.display()))?;
        return Ok((Root::open(Path::new("/")).map_err(crate::Error::from)?, abs));
    }
    let root = layout.open_root().map_err(crate::Error::from)?;
    let first = source::candidates(layout)
        .into_iter()
        .next()
        .unwrap_or_else(|| PathBuf::from(source::SYSTEM_POLICY));
    Ok((root, first))
}

fn set(g: &GlobalOpts, a: &SetArgs) -> anyhow::Result<()> {
    let layout = g.layout()?;
    let keys_root = layout.open_root().map_err(crate::Error::from)?;
    let mut pubkeys = Vec::new();
    for k in &a.pubkeys {
        let bytes = keys_root
            .read_at_most(k, crate::trust::MAX_KEY_SIZE)
            .map_err(crate::Error::from)?;
        let req = pin::requirement_for_key(k, &bytes).map_err(crate::Error::from)?;
        let want = match a.ty {
            SetType::SignedBy => "signedBy",
            _ => "sigstoreSigned",
        };
        if req.type_name() != want {
            return Err(UsageError(format!(
                "--pubkeys {}: a key for {}, not {want}",
                k.display(),
                req.type_name()
            ))
            .into());
        }
        pubkeys.push(k.display().to_string());
    }
    let reqs = edit::requirements(a.ty, &pubkeys).map_err(UsageError)?;
    let file = super::config::policy_file(a.signature_policy.as_deref());
    let (root, path) = target(&layout, file.as_deref())?;
    let shown = if file.is_some() {
        path.clone()
    } else {
        layout.host(&path.to_string_lossy())
    };
    let (current, mode) = match root.read_at_most(&path, source::MAX_POLICY_SIZE) {
        Ok(bytes) => {
            let doc: Value = serde_json::from_slice(&bytes).map_err(|e| {
                UsageError(format!("{}: {e}; fix or remove it first", shown.display()))
            })?;
            let mode = root
                .lstat(&path)
                .map_err(crate::Error::from)?
                .map_or(0o644, |e| e.mode & 0o7777);
            (Some(doc), mode)
        }
        Err(e) if e.is_not_found() => (None, 0o644),
        Err(e) => return Err(crate::Error::from(e).into()),
    };
    let doc = edit::set_scope(current, &a.scope, reqs.clone())
        .map_err(|e| UsageError(format!("{}: {e}", shown.display())))?;
    let mut text = serde_json::to_vec_pretty(&doc)?;
    text.push(b'\n');
    if let Some(parent) = path.parent() {
        root.create_dir_all(parent, 0o755)
            .map_err(crate::Error::from)?;
    }
    root.write_atomic(&path, &text, mode)
        .map_err(crate::Error::from)?;
    if g.json {
        return output::print_json(&json!({
            "policy": shown,
            "scope": a.scope,
            "requirements": reqs,
        }));
    }
    let types: Vec<&str> = reqs.iter().filter_map(|r| r["type"].as_str()).collect();
    output::println(&format!(
        "Wrote {}: {} → {}",
        shown.display(),
        a.scope,
        types.join(", ")
    ))?;
    Ok(())
}
