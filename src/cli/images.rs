//! `berth images` and its subcommands.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Serialize;

use super::output;
use super::GlobalOpts;
use crate::image::manifest::is_sha256;
use crate::image::reference;
use crate::image::regconf;
use crate::image::registry::RegistryError;
use crate::store::{gc, image, image::ImageRecord, Store, StoreError};

/// List stored images, or act on one.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ImagesArgs {
    /// What to do; lists images when absent.
    #[command(subcommand)]
    pub command: Option<ImagesCommand>,
}

/// `berth images` subcommands.
#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// Show an image's config, layers, labels and source.
    Inspect {
        /// Image name, reference or digest (manifest or image ID).
        #[arg(value_name = "REF")]
        reference: String,
    },
    /// Remove an image from the store (its data goes with `images prune`).
    Rm {
        /// Remove it even when installed containers use it.
        #[arg(long)]
        force: bool,
        /// Image name, reference or digest.
        #[arg(value_name = "REF")]
        reference: String,
    },
    /// Delete layers and objects no image references.
    Prune,
    /// Check an image out into a new directory as hardlinks to the store.
    ///
    /// The files ARE the store's objects: never modify them (mount the
    /// directory read-only, or use root.readonly in an OCI config).
    Checkout {
        /// Image name, reference or digest.
        #[arg(value_name = "REF")]
        reference: String,
        /// New directory to create.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

#[derive(Serialize)]
struct Row<'a> {
    name: String,
    tag: Option<String>,
    reference: &'a str,
    digest: &'a str,
    image_id: &'a str,
    size: u64,
    created: Option<String>,
    pulled: String,
    in_use: bool,
}

fn open(g: &GlobalOpts) -> anyhow::Result<Option<Store>> {
    Ok(Store::open(&g.layout()?, false).map_err(crate::Error::from)?)
}

fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .to_string()
}

/// Finds the stored image a user's REF means: the exact stored name, its
/// short-name expansions, or a manifest/config digest (or a prefix of ≥ 12 hex).
fn find(store: &Store, input: &str) -> anyhow::Result<ImageRecord> {
    let all = image::list(store)?;
    if let Some(r) = all.iter().find(|r| r.reference == input) {
        return Ok(r.clone());
    }
    let hex = input.strip_prefix("sha256:").unwrap_or(input);
    if hex.len() >= 12 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        let hits: Vec<&ImageRecord> = all
            .iter()
            .filter(|r| {
                [&r.digest, &r.image_id].iter().any(|d| {
                    d.strip_prefix("sha256:")
                        .is_some_and(|h| h.starts_with(hex))
                })
            })
            .collect();
        if let [one] = hits.as_slice() {
            return Ok((*one).clone());
        }
    }
    let _ = is_sha256;
    let conf = regconf::load()
        .map_err(RegistryError::from)
        .map_err(crate::Error::from)?;
    if let Ok(candidates) = reference::resolve(input, &conf.unqualified_search) {
        for c in candidates {
            let shown = c.to_string();
            if let Some(r) = all.iter().find(|r| r.reference == shown) {
                return Ok(r.clone());
            }
        }
    }
    Err(crate::Error::from(StoreError::ImageNotFound {
        name: input.to_string(),
    })
    .into())
}

fn not_found(input: &str) -> anyhow::Error {
    crate::Error::from(StoreError::ImageNotFound {
        name: input.to_string(),
    })
    .into()
}

/// Runs `berth images …`.
pub fn run(g: &GlobalOpts, a: &ImagesArgs) -> anyhow::Result<()> {
    match &a.command {
        None => list(g),
        Some(ImagesCommand::Inspect { reference }) => inspect(g, reference),
        Some(ImagesCommand::Rm { force, reference }) => {
            let store = open(g)?.ok_or_else(|| not_found(reference))?;
            let _lock = store.lock().map_err(crate::Error::from)?;
            let record = find(&store, reference)?;
            gc::remove(&store, &record.reference, *force)?;
            if g.json {
                output::print_json(
                    &serde_json::json!({"removed": record.reference, "digest": record.digest}),
                )
            } else {
                Ok(output::println(&format!("Removed {}", record.reference))?)
            }
        }
        Some(ImagesCommand::Prune) => {
            let Some(store) = open(g)? else {
                return if g.json {
                    output::print_json(&gc::Pruned::default())
                } else {
                    Ok(output::println("Nothing to prune")?)
                };
            };
            let _lock = store.lock().map_err(crate::Error::from)?;
            let pruned = gc::prune(&store)?;
            if g.json {
                output::print_json(&pruned)
            } else {
                Ok(output::println(&format!(
                    "Removed {} layers, {} objects, {} bytes",
                    pruned.removed_layers, pruned.removed_objects, pruned.freed_bytes
                ))?)
            }
        }
        Some(ImagesCommand::Checkout { reference, dir }) => {
            let store = open(g)?.ok_or_else(|| not_found(reference))?;
            let record = find(&store, reference)?;
            image::checkout(&store, &record.commit, dir)
                .with_context(|| format!("checking out {}", record.reference))?;
            if g.json {
                output::print_json(
                    &serde_json::json!({"reference": record.reference, "commit": record.commit, "path": dir}),
                )
            } else {
                Ok(output::println(&format!(
                    "Checked out {} into {}",
                    record.reference,
                    dir.display()
                ))?)
            }
        }
    }
}

fn split_name(reference: &str) -> (String, Option<String>) {
    match reference::resolve(reference, &[]) {
        Ok(v) => match v.first() {
            Some(r) => (r.name(), r.tag().map(str::to_string)),
            None => (reference.to_string(), None),
        },
        Err(_) => (reference.to_string(), None),
    }
}

fn list(g: &GlobalOpts) -> anyhow::Result<()> {
    let layout = g.layout()?;
    let records = match open(g)? {
        Some(store) => image::list(&store)?,
        None => Vec::new(),
    };
    let rows: Vec<Row> = records
        .iter()
        .map(|r| {
            let (name, tag) = split_name(&r.reference);
            Row {
                name,
                tag,
                reference: &r.reference,
                digest: &r.digest,
                image_id: &r.image_id,
                size: r.size(),
                created: r.config_json()["created"].as_str().map(str::to_string),
                pulled: rfc3339(r.pulled),
                in_use: !gc::users(&layout, r).is_empty(),
            }
        })
        .collect();
    if g.json {
        return output::print_json(&rows);
    }
    let mut lines = vec![format!(
        "{:<40} {:<12} {:<19} {:>10}  {:<20} {}",
        "NAME", "TAG", "DIGEST", "SIZE", "CREATED", "IN USE"
    )];
    for r in &rows {
        lines.push(format!(
            "{:<40} {:<12} {:<19} {:>10}  {:<20} {}",
            r.name,
            r.tag.as_deref().unwrap_or("<none>"),
            r.digest.get(..19).unwrap_or(r.digest),
            human_size(r.size),
            r.created
                .as_deref()
                .and_then(|c| c.get(..19))
                .unwrap_or("-"),
            if r.in_use { "yes" } else { "no" }
        ));
    }
    // Created comes from the image config; references are validated.
    let lines: Vec<String> = lines.iter().map(|l| output::escape_controls(l)).collect();
    output::println(&lines.join("\n"))?;
    Ok(())
}

fn human_size(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "kB", "MB", "GB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn inspect(g: &GlobalOpts, input: &str) -> anyhow::Result<()> {
    let store = open(g)?.ok_or_else(|| not_found(input))?;
    let r = find(&store, input)?;
    let config = r.config_json();
    let (name, _) = split_name(&r.reference);
    let doc = serde_json::json!({
        "name": name,
        "reference": r.reference,
        "digest": r.digest,
        "index_digest": r.index_digest,
        "image_id": r.image_id,
        "commit": r.commit,
        "labels": config["config"]["Labels"].clone(),
        "config": config,
        "manifest": r.manifest_json(),
        "layers": r.layers,
        "size": r.size(),
        "source": r.source,
        "pulled": rfc3339(r.pulled),
        "in_use_by": gc::users(store.layout(), &r),
        "trust": r.trust,
    });
    if g.json {
        return output::print_json(&doc);
    }
    let mut out = vec![
        format!("Name:      {}", r.reference),
        format!("Digest:    {}", r.digest),
        format!("Image ID:  {}", r.image_id),
        format!("Commit:    {}", r.commit),
        format!("Source:    {}", r.source),
        format!("Pulled:    {}", rfc3339(r.pulled)),
        format!("Size:      {}", human_size(r.size())),
        format!(
            "Trust:     {}",
            r.trust.as_ref().map_or(
                "not recorded (pulled before berth checked signatures)".into(),
                |t| t.describe()
            )
        ),
        format!("Created:   {}", config["created"].as_str().unwrap_or("-")),
        format!(
            "Arch:      {}/{}",
            config["os"].as_str().unwrap_or("?"),
            config["architecture"].as_str().unwrap_or("?")
        ),
    ];
    for key in ["Entrypoint", "Cmd", "Env", "WorkingDir", "User"] {
        let v = &config["config"][key];
        if !v.is_null() {
            out.push(format!("{key:<10} {v}"));
        }
    }
    // One label a line, as the image has it (escaped below, like the rest).
    if let Some(labels) = config["config"]["Labels"].as_object() {
        out.push("Labels:".into());
        for (k, v) in labels {
            out.push(format!("  {k}={}", v.as_str().unwrap_or_default()));
        }
    }
    out.push("Layers:".into());
    for l in &r.layers {
        out.push(format!(
            "  {} {:>10}  {}",
            l.digest,
            human_size(l.size),
            l.media_type
        ));
    }
    // Every line but the headers is the image's: escaped line by line.
    let out: Vec<String> = out.iter().map(|l| output::escape_controls(l)).collect();
    output::println(&out.join("\n"))?;
    Ok(())
}
