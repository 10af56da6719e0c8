//! Runs the berth binary against a private root and a private environment.
//!
//! ```text
//! TMP/
//! ├── root/                      --root; the repo is root/var/lib/berth/repo
//! ├── home/                      $HOME (so $HOME/.docker/config.json is the test's)
//! ├── run/                       $XDG_RUNTIME_DIR (…/containers/auth.json)
//! ├── registries.conf            $CONTAINERS_REGISTRIES_CONF (empty unless written)
//! └── certs.d/                   $BERTH_CERTS_D (HOST:PORT/*.crt)
//! ```
//! Variables that could leak the host's configuration into berth (proxies, auth files,
//! CA bundles) are removed from its environment.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The berth binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_berth");

/// Set (to anything) to print every berth run, its exit code, time and stderr.
pub const VERBOSE_ENV: &str = "BERTH_TEST_VERBOSE";

/// Host variables never passed to berth.
const SCRUBBED: &[&str] = &[
    "REGISTRY_AUTH_FILE",
    "DOCKER_CONFIG",
    "CONTAINERS_REGISTRIES_CONF",
    "CONTAINERS_POLICY_JSON",
    "CONTAINERS_AUTH_FILE",
    "BERTH_CERTS_D",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "http_proxy",
    "https_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    "XDG_CONFIG_HOME",
    "XDG_RUNTIME_DIR",
    "HOME",
];

/// One finished berth run.
#[derive(Debug, Clone)]
pub struct Run {
    /// The arguments after `--root DIR`.
    pub args: Vec<String>,
    /// The exit code; -1 if killed by a signal.
    pub code: i32,
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
}

impl Run {
    /// Asserts the exit code, showing both streams if it differs.
    #[track_caller]
    pub fn code(&self, want: i32) -> &Run {
        assert_eq!(
            self.code, want,
            "berth {:?} exited {} (want {want})\nstdout:\n{}\nstderr:\n{}",
            self.args, self.code, self.stdout, self.stderr
        );
        self
    }

    /// Asserts exit 0.
    #[track_caller]
    pub fn ok(&self) -> &Run {
        self.code(0)
    }

    /// stdout parsed as one JSON document.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "berth {:?}: stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
                self.args, self.stdout, self.stderr
            )
        })
    }

    /// Asserts that stderr contains every one of `needles` (case-insensitive).
    #[track_caller]
    pub fn stderr_has(&self, needles: &[&str]) -> &Run {
        let low = self.stderr.to_lowercase();
        for n in needles {
            assert!(
                low.contains(&n.to_lowercase()),
                "berth {:?}: stderr does not mention {n:?}:\n{}",
                self.args,
                self.stderr
            );
        }
        self
    }

    /// Asserts that stderr contains at least one of `needles` (case-insensitive).
    #[track_caller]
    pub fn stderr_has_any(&self, needles: &[&str]) -> &Run {
        let low = self.stderr.to_lowercase();
        assert!(
            needles.iter().any(|n| low.contains(&n.to_lowercase())),
            "berth {:?}: stderr mentions none of {needles:?}:\n{}",
            self.args,
            self.stderr
        );
        self
    }
}

/// A berth with its own root and environment.
pub struct Berth {
    tmp: tempfile::TempDir,
    env: Vec<(OsString, OsString)>,
    /// How long one run may take before it is killed and the test fails.
    pub timeout: Duration,
}

impl Default for Berth {
    fn default() -> Self {
        Berth::new()
    }
}

impl Berth {
    /// A fresh root, home, runtime dir, empty registries.conf and certs.d, and
    /// no berth.toml (`config_file()` is where one would be).
    pub fn new() -> Berth {
        Berth::in_dir(super::tempdir())
    }

    /// [`Berth::new`] below [`super::short_base`], for tests whose paths must
    /// stay short wherever the checkout is (crun's notify socket path under
    /// the root must fit a unix socket address).
    pub fn short() -> Berth {
        Berth::in_dir(super::short_tempdir())
    }

    /// [`Berth::new`] in `tmp`.
    pub fn in_dir(tmp: tempfile::TempDir) -> Berth {
        for d in ["root", "home", "run", "certs.d"] {
            std::fs::create_dir_all(tmp.path().join(d)).unwrap();
        }
        std::fs::write(tmp.path().join("registries.conf"), "").unwrap();
        let p = tmp.path();
        let env = vec![
            ("HOME".into(), p.join("home").into()),
            ("XDG_RUNTIME_DIR".into(), p.join("run").into()),
            (
                "CONTAINERS_REGISTRIES_CONF".into(),
                p.join("registries.conf").into(),
            ),
            ("BERTH_CERTS_D".into(), p.join("certs.d").into()),
            // The host's /etc/berth/berth.toml must not change what a test sees.
            ("BERTH_CONFIG".into(), p.join("berth.toml").into()),
        ];
        Berth {
            tmp,
            env,
            timeout: Duration::from_secs(180),
        }
    }

    /// The berth.toml this berth reads (`$BERTH_CONFIG`; absent until written).
    pub fn config_file(&self) -> PathBuf {
        self.tmp.path().join("berth.toml")
    }

    /// The temporary directory holding everything.
    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// `--root`.
    pub fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }

    /// The OSTree repo berth keeps under its root.
    pub fn repo(&self) -> PathBuf {
        self.root().join("var/lib/berth/repo")
    }

    /// `$HOME`.
    pub fn home(&self) -> PathBuf {
        self.tmp.path().join("home")
    }

    /// `$XDG_RUNTIME_DIR`.
    pub fn runtime_dir(&self) -> PathBuf {
        self.tmp.path().join("run")
    }

    /// `$BERTH_CERTS_D`.
    pub fn certs_d(&self) -> PathBuf {
        self.tmp.path().join("certs.d")
    }

    /// `$CONTAINERS_REGISTRIES_CONF`.
    pub fn registries_conf(&self) -> PathBuf {
        self.tmp.path().join("registries.conf")
    }

    /// Writes `$CONTAINERS_REGISTRIES_CONF`.
    pub fn write_registries_conf(&self, toml: &str) {
        std::fs::write(self.registries_conf(), toml).unwrap();
    }

    /// Writes a registries.conf that lets berth talk plain HTTP to `addr`
    /// (a test registry on 127.0.0.1).
    pub fn allow_plain_http(&self, addr: &str) {
        self.write_registries_conf(&format!(
            "[[registry]]\nlocation = \"{addr}\"\ninsecure = true\n"
        ));
    }

    /// Sets (or overrides) a variable for every later run.
    pub fn set_env(&mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> &mut Berth {
        let k = k.as_ref().to_os_string();
        self.env.retain(|(x, _)| *x != k);
        self.env.push((k, v.as_ref().to_os_string()));
        self
    }

    /// Removes a variable from every later run.
    pub fn unset_env(&mut self, k: impl AsRef<OsStr>) -> &mut Berth {
        let k = k.as_ref();
        self.env.retain(|(x, _)| x != k);
        self
    }

    /// `berth --root ROOT ARGS…` with the private environment, not yet started.
    pub fn command<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        self.command_of(Path::new(BIN), args)
    }

    /// [`Berth::command`] of another berth executable (the full binary
    /// `berth-core`, a copy of the front).
    pub fn command_of<S: AsRef<OsStr>>(&self, bin: &Path, args: &[S]) -> Command {
        let mut c = Command::new(bin);
        for k in SCRUBBED {
            c.env_remove(k);
        }
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c.arg("--root").arg(self.root()).args(args);
        c.stdin(Stdio::null());
        c
    }

    /// Starts berth with piped stdout/stderr (for tests that kill it).
    pub fn spawn<S: AsRef<OsStr>>(&self, args: &[S]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting berth")
    }

    /// Runs berth to completion (killing it after [`Berth::timeout`]).
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Run {
        let shown: Vec<String> = args
            .iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect();
        let started = Instant::now();
        let child = self.spawn(args);
        let run = finish(child, shown, self.timeout);
        if std::env::var_os(VERBOSE_ENV).is_some() {
            eprintln!(
                "berth {:?} -> {} in {:.2?}\n{}",
                run.args,
                run.code,
                started.elapsed(),
                run.stderr
            );
        }
        run
    }

    /// Runs `berth --json ARGS…`, asserts exit 0 and returns stdout as JSON.
    #[track_caller]
    pub fn json<S: AsRef<OsStr>>(&self, args: &[S]) -> Value {
        let mut all: Vec<OsString> = vec!["--json".into()];
        all.extend(args.iter().map(|a| a.as_ref().to_os_string()));
        let r = self.run(&all);
        r.ok();
        r.json()
    }

    /// `berth --json pull [FLAGS…] REF`; the run (check its code yourself).
    pub fn pull(&self, reference: &str, flags: &[&str]) -> Run {
        let mut a: Vec<&str> = vec!["--json", "pull"];
        a.extend_from_slice(flags);
        a.push(reference);
        self.run(&a)
    }

    /// `berth images --json` as a list.
    #[track_caller]
    pub fn images(&self) -> Vec<Value> {
        match self.json(&["images"]) {
            Value::Array(a) => a,
            other => panic!("berth images --json is not an array: {other}"),
        }
    }

    /// Checks `reference` out into a fresh directory `DIR.dir()/co-NAME`; returns it.
    #[track_caller]
    pub fn checkout(&self, reference: &str, name: &str) -> PathBuf {
        let dest = self.dir().join(format!("co-{name}"));
        self.run(&[
            OsStr::new("images"),
            OsStr::new("checkout"),
            OsStr::new(reference),
            dest.as_os_str(),
        ])
        .ok();
        dest
    }

    /// Every path under the repo's `objects/`.
    pub fn objects(&self) -> std::collections::BTreeSet<String> {
        super::tree::path_set(&self.repo().join("objects"))
    }

    /// `ostree fsck` of berth's repo must be clean.
    pub fn fsck(&self) {
        super::ostree_fsck(&self.repo());
    }
}

/// Waits for `child` (reading its pipes in threads) up to `timeout`.
pub fn finish(mut child: Child, args: Vec<String>, timeout: Duration) -> Run {
    let pipe = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut s);
            }
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = pipe(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = pipe(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "berth {args:?} still running after {timeout:?}; killed\nstderr:\n{}",
                err.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        args,
        code: status.code().unwrap_or(-1),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}
