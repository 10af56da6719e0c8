//! GPG simple signing for the signature tests: keys made by `gpg --batch`
//! in their own GNUPGHOME, images copied to the test registry and signed by
//! Debian's skopeo (`copy --sign-by`) into a lookaside-staging directory,
//! and the registries.d files that point berth at it.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::registry::Registry;
use super::run_ok;

/// A GPG key in its own GNUPGHOME.
pub struct GpgKey {
    /// The GNUPGHOME holding the secret key.
    pub home: PathBuf,
    /// The primary key's fingerprint.
    pub fpr: String,
    /// The armored public key, exported to a file.
    pub public: PathBuf,
}

impl GpgKey {
    /// Makes a key named `name` (no passphrase, no expiry), its public key
    /// exported below `dir`. The GNUPGHOME is below [`super::short_base`]:
    /// gpg-agent's sockets live in it when `/run/user/UID` does not exist.
    pub fn new(dir: &Path, name: &str) -> GpgKey {
        let home = tempfile::Builder::new()
            .prefix(&format!("gnupg-{name}-"))
            .tempdir_in(super::short_base())
            .unwrap()
            .keep();
        std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        let gpg = || {
            let mut c = Command::new("gpg");
            c.env("GNUPGHOME", &home).args(["--batch", "--quiet"]);
            c
        };
        run_ok(gpg().args([
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--quick-gen-key",
            &format!("{name} <{name}@berth.test>"),
            "default",
            "default",
            "never",
        ]));
        let out = run_ok(gpg().args(["--with-colons", "--list-keys"]));
        let fpr = String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .map(|l| l.trim_matches(':').to_string())
            .expect("gpg listed no fingerprint");
        let public = dir.join(format!("{name}.asc"));
        let out = run_ok(gpg().args(["--armor", "--export", &fpr]));
        std::fs::write(&public, &out.stdout).unwrap();
        GpgKey { home, fpr, public }
    }

    /// Stops the agent signing started (a world kept in a static is never
    /// dropped, so its tests call this once signing is done).
    pub fn stop_agent(&self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", &self.home)
            .args(["--kill", "all"])
            .status();
    }
}

/// Writes `ROOT/etc/containers/registries.d/berth-test.yaml`.
pub fn registries_d(root: &Path, yaml: &str) {
    let d = root.join("etc/containers/registries.d");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("berth-test.yaml"), yaml).unwrap();
}

/// `skopeo copy --sign-by FPR SOURCE docker://ADDR/dest` (with `--all`
/// when `all`: an index and each of its instances are signed), signatures
/// written to the lookaside-staging directory `staging`; `w_dir` holds
/// skopeo's own registries.d.
pub fn copy_signed(
    w_dir: &Path,
    reg: &Registry,
    key: &GpgKey,
    source: &str,
    dest: &str,
    staging: &Path,
    all: bool,
) {
    let regd = w_dir.join(format!("skopeo-registries.d-{}", super::unique("r")));
    std::fs::create_dir_all(&regd).unwrap();
    std::fs::write(
        regd.join("staging.yaml"),
        format!(
            "docker:\n  {}:\n    lookaside-staging: file://{}\n",
            reg.addr(),
            staging.display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new("skopeo");
    cmd.env("GNUPGHOME", &key.home)
        .args(["copy", "--quiet", "--dest-tls-verify=false"]);
    if all {
        cmd.arg("--all");
    }
    run_ok(
        cmd.args(["--sign-by", &key.fpr])
            .arg("--registries.d")
            .arg(&regd)
            .arg(source)
            .arg(format!("docker://{}/{dest}", reg.addr())),
    );
}

/// Where the lookaside keeps `repository`'s signature `n` of `digest`.
pub fn signature_file(sigs: &Path, repository: &str, digest: &str, n: usize) -> PathBuf {
    sigs.join(format!(
        "{repository}@{}/signature-{n}",
        digest.replacen(':', "=", 1)
    ))
}
