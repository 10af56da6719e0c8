//! The three verbs as library calls: run a container in the foreground,
//! exec into one, signal one.

use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;

use super::activation::{self, Listen};
use super::notify::NotifyEnv;
use super::supervise::{self, Signals};
use super::{check_id, open, prepare, Exit, IdLock, Paths, Result, RuntimeChoice, RuntimeError};
use crate::layout::Layout;

/// Where `berth run NAME` finds an installed container's bundle.
pub fn installed_bundle(layout: &Layout, name: &str) -> Result<PathBuf> {
    check_id(name)?;
    let path = layout.containers().join(name);
    if path.is_dir() {
        Ok(path)
    } else {
        Err(RuntimeError::NoContainer {
            name: name.to_string(),
            path,
        })
    }
}

/// One `berth run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// `--root` or `--user`.
    pub layout: Layout,
    /// The container ID.
    pub id: String,
    /// The bundle directory.
    pub bundle: PathBuf,
    /// Which runtime creates the container.
    pub runtime: RuntimeChoice,
}

/// Runs a container in the foreground and returns how it ended. Call it
/// before berth starts any thread: it edits the process environment.
pub fn run(o: &RunOptions) -> Result<Exit> {
    check_id(&o.id)?;
    let listen = Listen::take();
    let notify = NotifyEnv::take();
    let bundle = prepare::load(&o.bundle)?;
    let paths = Paths::for_layout(&o.layout)?;
    let mut rt = open(&o.runtime, &paths)?;
    let _lock = IdLock::take(&paths, &o.id)?;
    if let Some(prev) = paths.recorded_runtime(&o.id).filter(|p| *p != o.runtime) {
        match open(&prev, &paths) {
            Ok(old) => old.remove_stale(&o.id)?,
            Err(e) => tracing::warn!("{}: stale state of runtime {}: {e}", o.id, prev.name()),
        }
    }
    rt.remove_stale(&o.id)?;
    activation::cloexec_from(listen.fds).map_err(|e| {
        RuntimeError::io(
            "marking fds close-on-exec in",
            Path::new("/proc/self/fd"),
            e,
        )
    })?;
    let signals = Signals::block()?;
    let r = (|| {
        let rendered = prepare::render(&paths, &o.id, bundle, &listen, &notify, o.runtime.name())?;
        if !rendered.hardening.dropped_capabilities.is_empty() {
            tracing::warn!(
                "{}: dropping capabilities outside berth's bounding set: {}",
                o.id,
                rendered.hardening.dropped_capabilities.join(", ")
            );
        }
        let (pid, pending) = if rt.inherits_signal_mask() {
            signals.with_unblocked(|| rt.start(&rendered.req))
        } else {
            (rt.start(&rendered.req), Vec::new())
        };
        let pid = pid?;
        let target = || rt.signal_target(&o.id, pid);
        supervise::wait(pid, &target, &signals, rendered.relay.as_ref(), &pending)
    })();
    let deleted = rt.delete(&o.id);
    let removed = prepare::remove_ctr(&paths, &o.id);
    signals.unblock();
    let exit = r?;
    deleted?;
    removed?;
    Ok(exit)
}

/// Runs `args` inside running container `id`; returns how it ended.
pub fn exec(layout: &Layout, runtime: &RuntimeChoice, id: &str, args: &[String]) -> Result<Exit> {
    check_id(id)?;
    let paths = Paths::for_layout(layout)?;
    let choice = paths
        .recorded_runtime(id)
        .unwrap_or_else(|| runtime.clone());
    let mut rt = open(&choice, &paths)?;
    let signals = Signals::block()?;
    let (started, pending) = if rt.inherits_signal_mask() {
        signals.with_unblocked(|| rt.exec(id, args, &[]))
    } else {
        (rt.exec(id, args, &[]), Vec::new())
    };
    let r = started.and_then(|pid| supervise::wait(pid, &|| pid, &signals, None, &pending));
    signals.unblock();
    r
}

/// Sends `signal` to the init of running container `id`.
pub fn kill(layout: &Layout, runtime: &RuntimeChoice, id: &str, signal: Signal) -> Result<()> {
    check_id(id)?;
    let paths = Paths::for_layout(layout)?;
    let choice = paths
        .recorded_runtime(id)
        .unwrap_or_else(|| runtime.clone());
    open(&choice, &paths)?.kill(id, signal)
}
