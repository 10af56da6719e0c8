//! `berth run-once IMAGE [-- CMD ARGS...]`.

use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use super::config::{LimitArgs, PolicyArgs};
use super::output::{self, Renderer};
use super::GlobalOpts;
use crate::deploy::run_once::{self, RunOnceRequest};
use crate::runtime::supervise::Signals;

/// The arguments of `berth run-once` (its help is the doc comment of
/// [`super::Command::RunOnce`]: clap takes the variant's).
#[derive(Debug, Args)]
pub struct RunOnceArgs {
    /// Set a template variable; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Container name ($NAME and the runtime's ID; default: IMAGE-once-RANDOM).
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// The image (any reference `berth pull` takes).
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// The command and its arguments, replacing the config's process.args.
    #[arg(value_name = "CMD", last = true)]
    pub command: Vec<String>,
}

/// The `--json` result.
#[derive(Debug, Serialize)]
struct Outcome<'a> {
    image: &'a str,
    name: &'a str,
    exit: i32,
}

/// Runs `berth run-once`; returns the exit code (the payload's status, or
/// berth's for its own errors).
pub fn run(g: &GlobalOpts, a: &RunOnceArgs) -> i32 {
    match run_inner(g, a) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            super::exit_code(&e)
        }
    }
}

fn run_inner(g: &GlobalOpts, a: &RunOnceArgs) -> anyhow::Result<i32> {
    let layout = g.layout()?;
    let berth = super::front::berth_executable().context("finding the berth executable")?;
    let req = RunOnceRequest {
        image: a.image.clone(),
        set: a.set.clone(),
        name: a.name.clone(),
        args: a.command.clone(),
        runtime: g.runtime.clone(),
        berth,
        verbose: g.verbose,
        limits: a.limits.resolve(g.user)?,
        policy: a.policy.options(g),
    };
    let renderer = Arc::new(Renderer::new(g));
    let record = run_once::pull(&layout, &req, renderer.clone())
        .with_context(|| format!("pulling {}", a.image))?;
    renderer.finish();
    drop(renderer);
    // From here on berth must outlive the payload to clean up after it:
    // the signals that would end it are read from a signalfd instead.
    let threads = std::fs::read_dir("/proc/self/task").map_or(0, Iterator::count);
    if threads > 1 {
        tracing::debug!("{threads} threads run while blocking signals");
    }
    let signals = Signals::block().map_err(crate::Error::from)?;
    let mut slot = run_once::prepare(&layout, &req, record)
        .with_context(|| format!("preparing {}", a.image))?;
    slot.remove_after(run_once::runtime_dirs_missing(&layout, &slot.id));
    tracing::info!(
        "running {} as {} from {}",
        a.image,
        slot.id,
        slot.dir.display()
    );
    let result = run_once::run(&layout, &req, &slot, &signals);
    let cleaned = run_once::cleanup(&layout, &slot);
    signals.unblock();
    let code = result.with_context(|| format!("running {}", a.image))?;
    cleaned.with_context(|| format!("cleaning up after {}", slot.id))?;
    if g.json {
        let line = serde_json::to_string(&Outcome {
            image: &slot.image.reference,
            name: &slot.id,
            exit: code,
        })?;
        output::println(&line)?;
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::super::{Command, Opt};
    use clap::Parser;

    #[test]
    fn parses_image_flags_and_command() {
        let o = Opt::try_parse_from([
            "berth", "run-once", "--set", "A=1", "--name", "t", "img", "--", "ls", "-l",
        ])
        .unwrap();
        match o.command {
            Command::RunOnce(r) => {
                assert_eq!(r.image, "img");
                assert_eq!(r.set, ["A=1"]);
                assert_eq!(r.name.as_deref(), Some("t"));
                assert_eq!(r.command, ["ls", "-l"]);
            }
            other => panic!("{other:?}"),
        }
        let o = Opt::try_parse_from(["berth", "run-once", "img"]).unwrap();
        match o.command {
            Command::RunOnce(r) => assert!(r.command.is_empty()),
            other => panic!("{other:?}"),
        }
        assert!(Opt::try_parse_from(["berth", "run-once"]).is_err());
    }
}
