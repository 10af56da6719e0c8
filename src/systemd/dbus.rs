//! [`Live`]: the running systemd, over D-Bus (`org.freedesktop.systemd1`).
//!
//! berth's CLI is synchronous and zbus 6 has no blocking API (its proxies
//! are async only), so `Live` owns a small current-thread tokio runtime and
//! `block_on`s each call. The connection's socket is only read while a call
//! is running; nothing happens on it in between. `Live` must therefore be
//! created and called outside any async runtime: from inside one, every
//! call fails with [`ManagerError::Bus`] (instead of tokio's panic).
//!
//! A job (start, stop, restart) is awaited through the manager's
//! `JobRemoved` signal: berth subscribes once per connection, opens the
//! signal stream *before* queueing the job (so a job that finishes at once
//! cannot be missed), then waits for the signal naming the job's path.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt;
use tokio::runtime::Runtime;
use zbus::proxy::CacheProperties;
use zbus::Connection;
use zbus_systemd::systemd1::{ManagerProxy, ServiceProxy, UnitProxy};

use super::manager::{Manager, ManagerError, UnitStatus};
use super::UnitName;

/// The D-Bus error systemd answers for a unit it has no file for.
const NO_SUCH_UNIT: &str = "org.freedesktop.systemd1.NoSuchUnit";

/// The job mode berth queues its jobs with.
const MODE: &str = "replace";

/// Which service manager: the system one or the user's own (`--user`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    System,
    User,
}

/// A job berth queues and waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Start,
    Stop,
    Restart,
}

impl Verb {
    /// The word errors use.
    fn as_str(self) -> &'static str {
        match self {
            Verb::Start => "start",
            Verb::Stop => "stop",
            Verb::Restart => "restart",
        }
    }

    /// The `org.freedesktop.systemd1.Manager` method that queues the job.
    fn method(self) -> &'static str {
        match self {
            Verb::Start => "StartUnit",
            Verb::Stop => "StopUnit",
            Verb::Restart => "RestartUnit",
        }
    }
}

/// A running systemd, reached over D-Bus.
pub struct Live {
    // Declared before the runtime so it is dropped while the runtime still
    // exists (zbus spawns its clean-up on the runtime it was built on).
    manager: ManagerProxy<'static>,
    conn: Connection,
    rt: Runtime,
    scope: Scope,
    subscribed: AtomicBool,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").field("scope", &self.scope).finish()
    }
}

impl Live {
    /// The system manager, on the system bus.
    pub fn system() -> Result<Live, ManagerError> {
        Live::connect(Scope::System)
    }

    /// The calling user's manager, on the session bus (`--user`).
    pub fn user() -> Result<Live, ManagerError> {
        Live::connect(Scope::User)
    }

    fn connect(scope: Scope) -> Result<Live, ManagerError> {
        outside_runtime()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ManagerError::Bus(format!("starting the D-Bus runtime: {e}")))?;
        let (conn, manager) = rt.block_on(async {
            let conn = match scope {
                Scope::System => Connection::system().await,
                Scope::User => Connection::session().await,
            }
            .map_err(|e| {
                let bus = match scope {
                    Scope::System => "system",
                    Scope::User => "session",
                };
                ManagerError::Bus(format!("connecting to the {bus} bus: {e}"))
            })?;
            // Methods and signals only: no property cache, no match rule for it.
            let manager = ManagerProxy::builder(&conn)
                .cache_properties(CacheProperties::No)
                .build()
                .await
                .map_err(|e| ManagerError::Bus(format!("systemd1.Manager proxy: {e}")))?;
            Ok::<_, ManagerError>((conn, manager))
        })?;
        Ok(Live {
            manager,
            conn,
            rt,
            scope,
            subscribed: AtomicBool::new(false),
        })
    }

    /// `Subscribe`, once per connection: systemd sends job signals only
    /// to subscribed clients.
    async fn subscribe(&self) -> Result<(), ManagerError> {
        if !self.subscribed.load(Ordering::Acquire) {
            self.manager
                .subscribe()
                .await
                .map_err(|e| ManagerError::Bus(format!("Subscribe: {e}")))?;
            self.subscribed.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Queues `verb` for `unit` and waits for the job to be removed.
    async fn job(&self, verb: Verb, unit: &str) -> Result<(), ManagerError> {
        let bus = |e: zbus::Error| ManagerError::Bus(format!("{} {unit}: {e}", verb.method()));
        self.subscribe().await?;
        // The stream (its match rule) exists before the job does. arg2 is the
        // unit: the bus only forwards this unit's job signals.
        let mut removed = self
            .manager
            .receive_job_removed_with_args(&[(2, unit)])
            .await
            .map_err(bus)?;
        let queued = match verb {
            Verb::Start => self.manager.start_unit(unit.into(), MODE.into()).await,
            Verb::Stop => self.manager.stop_unit(unit.into(), MODE.into()).await,
            Verb::Restart => self.manager.restart_unit(unit.into(), MODE.into()).await,
        };
        let job = match queued {
            Ok(job) => job,
            Err(e) => return queue_failed(verb, unit, e),
        };
        tracing::debug!("{} {unit}: job {}", verb.method(), job.as_str());
        while let Some(signal) = removed.next().await {
            let args = signal.args().map_err(bus)?;
            if args.job == job {
                return job_outcome(verb, unit, &args.result);
            }
        }
        Err(ManagerError::Bus(format!(
            "{} {unit}: the bus connection closed before job {} finished",
            verb.method(),
            job.as_str()
        )))
    }

    /// Runs `call` to completion on the runtime.
    fn run<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, ManagerError>>,
    ) -> Result<T, ManagerError> {
        outside_runtime()?;
        self.rt.block_on(call)
    }

    async fn active_state(&self, unit: &str) -> Result<String, ManagerError> {
        let bus = |e: zbus::Error| ManagerError::Bus(format!("ActiveState of {unit}: {e}"));
        // LoadUnit (not GetUnit): a unit systemd has not loaded yet is
        // loaded now and reports `inactive` instead of an error.
        let path = self.manager.load_unit(unit.into()).await.map_err(bus)?;
        let proxy = UnitProxy::builder(&self.conn)
            .path(path)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(bus)?;
        proxy.active_state().await.map_err(bus)
    }

    async fn status(&self, unit: &str) -> Result<UnitStatus, ManagerError> {
        let bus = |e: zbus::Error| ManagerError::Bus(format!("status of {unit}: {e}"));
        let path = self.manager.load_unit(unit.into()).await.map_err(bus)?;
        let proxy = UnitProxy::builder(&self.conn)
            .path(path.clone())
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(bus)?;
        let mut out = UnitStatus {
            active: proxy.active_state().await.map_err(bus)?,
            sub: proxy.sub_state().await.map_err(bus)?,
            ..UnitStatus::default()
        };
        if unit.ends_with(".service") {
            let service = ServiceProxy::builder(&self.conn)
                .path(path)
                .cache_properties(CacheProperties::No)
                .build()
                .await
                .map_err(bus)?;
            out.n_restarts = service.n_restarts().await.ok();
            out.main_status = service.exec_main_status().await.ok();
        }
        Ok(out)
    }
}

/// `block_on` panics on a thread that is already driving a runtime: refuse
/// instead.
fn outside_runtime() -> Result<(), ManagerError> {
    match tokio::runtime::Handle::try_current() {
        Ok(_) => Err(ManagerError::Bus(
            "the blocking D-Bus manager was called from inside an async runtime".into(),
        )),
        Err(_) => Ok(()),
    }
}

/// What a failed `StartUnit`/`StopUnit`/`RestartUnit` call means: stopping
/// a unit systemd does not know is already done.
fn queue_failed(verb: Verb, unit: &str, e: zbus::Error) -> Result<(), ManagerError> {
    if verb == Verb::Stop && error_name(&e) == Some(NO_SUCH_UNIT) {
        return Ok(());
    }
    Err(ManagerError::Bus(format!("{} {unit}: {e}", verb.method())))
}

/// The D-Bus error name of a method error reply, if `e` is one.
fn error_name(e: &zbus::Error) -> Option<&str> {
    match e {
        zbus::Error::MethodError(name, _, _) => Some(name.as_str()),
        _ => None,
    }
}

/// The outcome of a job from the result `JobRemoved` reported.
fn job_outcome(verb: Verb, unit: &str, result: &str) -> Result<(), ManagerError> {
    if result == "done" {
        Ok(())
    } else {
        Err(ManagerError::Job {
            verb: verb.as_str().into(),
            unit: unit.into(),
            result: result.into(),
        })
    }
}

/// The journalctl arguments that select `unit`'s last `lines` lines.
fn journal_args(scope: Scope, unit: &str, lines: usize) -> Vec<String> {
    let select = match scope {
        Scope::System => "-u",
        Scope::User => "--user-unit",
    };
    [
        select,
        unit,
        "-n",
        &lines.to_string(),
        "--no-pager",
        "-q",
        "-o",
        "short-iso",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

impl Manager for Live {
    fn is_live(&self) -> bool {
        true
    }

    fn reload(&self) -> Result<(), ManagerError> {
        self.run(async {
            self.manager
                .reload()
                .await
                .map_err(|e| ManagerError::Bus(format!("Reload: {e}")))
        })
    }

    fn unit_state(&self, unit: &UnitName) -> String {
        match self.run(self.active_state(unit.as_str())) {
            Ok(state) => state,
            Err(e) => {
                tracing::debug!("{e}");
                "unknown".into()
            }
        }
    }

    fn unit_status(&self, unit: &UnitName) -> UnitStatus {
        match self.run(self.status(unit.as_str())) {
            Ok(status) => status,
            Err(e) => {
                tracing::debug!("{e}");
                UnitStatus {
                    active: "unknown".into(),
                    ..UnitStatus::default()
                }
            }
        }
    }

    fn start(&self, unit: &UnitName) -> Result<(), ManagerError> {
        self.run(self.job(Verb::Start, unit.as_str()))
    }

    fn stop(&self, unit: &UnitName) -> Result<(), ManagerError> {
        self.run(self.job(Verb::Stop, unit.as_str()))
    }

    fn restart(&self, unit: &UnitName) -> Result<(), ManagerError> {
        self.run(self.job(Verb::Restart, unit.as_str()))
    }

    fn journal_tail(&self, unit: &UnitName, lines: usize) -> Vec<String> {
        if lines == 0 {
            return Vec::new();
        }
        if self.scope == Scope::System {
            // What journald received but has not written yet (a unit that
            // failed a moment ago) would be missing from the excerpt.
            if let Err(e) = Command::new("journalctl").arg("--sync").output() {
                tracing::debug!("journalctl --sync: {e}");
            }
        }
        let out = Command::new("journalctl")
            .args(journal_args(self.scope, unit.as_str(), lines))
            .output();
        match out {
            Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_owned)
                .collect(),
            Ok(out) => {
                tracing::debug!("journalctl for {unit}: {}", out.status);
                Vec::new()
            }
            Err(e) => {
                tracing::debug!("journalctl for {unit}: {e}");
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_is_ok() {
        assert!(job_outcome(Verb::Start, "a.service", "done").is_ok());
        assert!(job_outcome(Verb::Stop, "a.service", "done").is_ok());
    }

    #[test]
    fn other_results_name_verb_unit_and_result() {
        for result in ["failed", "timeout", "dependency", "canceled", "skipped"] {
            match job_outcome(Verb::Restart, "a.service", result) {
                Err(ManagerError::Job {
                    verb,
                    unit,
                    result: r,
                }) => {
                    assert_eq!(
                        (verb.as_str(), unit.as_str(), r.as_str()),
                        ("restart", "a.service", result)
                    );
                }
                other => panic!("{result}: {other:?}"),
            }
        }
        let e = job_outcome(Verb::Start, "a.service", "failed").unwrap_err();
        assert_eq!(e.to_string(), "start a.service: job failed");
    }

    fn method_error(name: &str) -> zbus::Error {
        let call = zbus::Message::method_call("/org/freedesktop/systemd1", "StopUnit")
            .build(&())
            .unwrap();
        let reply = zbus::Message::error(&call.header(), name)
            .build(&("Unit a.service not loaded.",))
            .unwrap();
        zbus::Error::from(reply)
    }

    #[test]
    fn stopping_an_unknown_unit_is_done() {
        assert!(queue_failed(Verb::Stop, "a.service", method_error(NO_SUCH_UNIT)).is_ok());
    }

    #[test]
    fn other_queue_errors_are_bus_errors_naming_call_and_unit() {
        let e = queue_failed(Verb::Start, "a.service", method_error(NO_SUCH_UNIT)).unwrap_err();
        let ManagerError::Bus(msg) = e else {
            panic!("{e:?}")
        };
        assert!(msg.starts_with("StartUnit a.service: "), "{msg}");
        assert!(msg.contains(NO_SUCH_UNIT), "{msg}");
        let denied = "org.freedesktop.systemd1.UnitMasked";
        assert!(queue_failed(Verb::Stop, "a.service", method_error(denied)).is_err());
        assert!(queue_failed(Verb::Stop, "a.service", zbus::Error::InvalidReply).is_err());
    }

    #[test]
    fn journal_args_per_scope() {
        assert_eq!(
            journal_args(Scope::System, "a.service", 20).join(" "),
            "-u a.service -n 20 --no-pager -q -o short-iso"
        );
        assert_eq!(
            journal_args(Scope::User, "a.service", 5)[..2],
            ["--user-unit", "a.service"]
        );
    }

    #[test]
    fn refuses_to_block_inside_a_runtime() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let e = rt.block_on(async { Live::system().unwrap_err() });
        assert!(e.to_string().contains("inside an async runtime"), "{e}");
    }

    #[test]
    fn verbs_map_to_manager_methods() {
        assert_eq!(Verb::Start.method(), "StartUnit");
        assert_eq!(Verb::Stop.method(), "StopUnit");
        assert_eq!(Verb::Restart.method(), "RestartUnit");
    }
}
