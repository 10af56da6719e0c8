//! Registry credentials, found as podman and skopeo find them (see the
//! table in [`super`]).

use super::*;

/// A user name and password for a registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password or token.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Parses `--creds USER:PASSWORD` (split at the first `:`).
pub fn parse_creds(s: &str) -> Result<Credentials, RegConfError> {
    let bad = |reason: String| RegConfError::BadCreds { reason };
    let Some((username, password)) = s.split_once(':') else {
        return Err(bad(format!("a password is needed for user {s:?}")));
    };
    if username.is_empty() {
        return Err(bad("the user name is empty".to_owned()));
    }
    if password.is_empty() {
        return Err(bad(format!("the password for user {username:?} is empty")));
    }
    Ok(Credentials {
        username: username.to_owned(),
        password: password.to_owned(),
    })
}

/// Finds credentials for `registry`/`repository` in the auth files podman and
/// skopeo read (see the module doc); the first file with a matching entry wins.
pub fn find_credentials(
    registry: &str,
    repository: &str,
    explicit_authfile: Option<&Path>,
) -> Result<Option<Credentials>, RegConfError> {
    let env = AuthEnv {
        registry_auth_file: non_empty_env(ENV_REGISTRY_AUTH_FILE),
        xdg_runtime_dir: non_empty_env("XDG_RUNTIME_DIR"),
        xdg_config_home: non_empty_env("XDG_CONFIG_HOME"),
        docker_config: non_empty_env("DOCKER_CONFIG"),
        home: non_empty_env("HOME"),
        uid: nix::unistd::getuid().as_raw(),
    };
    find_credentials_in(&auth_files(explicit_authfile, &env), registry, repository)
}

/// The environment values the auth-file search depends on.
#[derive(Debug, Clone, Default)]
pub(super) struct AuthEnv {
    pub(super) registry_auth_file: Option<PathBuf>,
    pub(super) xdg_runtime_dir: Option<PathBuf>,
    pub(super) xdg_config_home: Option<PathBuf>,
    pub(super) docker_config: Option<PathBuf>,
    pub(super) home: Option<PathBuf>,
    pub(super) uid: u32,
}

/// One place credentials may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AuthFile {
    pub(super) path: PathBuf,
    /// Named by the user: missing is an error.
    pub(super) required: bool,
    /// `.dockercfg`: the top level is the `auths` map.
    pub(super) legacy: bool,
}

pub(super) fn auth_files(explicit: Option<&Path>, env: &AuthEnv) -> Vec<AuthFile> {
    let file = |path: PathBuf, required: bool, legacy: bool| AuthFile {
        path,
        required,
        legacy,
    };
    let mut files = Vec::new();
    if let Some(path) = explicit
        .map(Path::to_owned)
        .or_else(|| env.registry_auth_file.clone())
    {
        files.push(file(path, true, false));
    }
    let runtime = match &env.xdg_runtime_dir {
        Some(dir) => dir.join("containers"),
        None => PathBuf::from(format!("/run/containers/{}", env.uid)),
    };
    files.push(file(runtime.join("auth.json"), false, false));
    let config_home = env
        .xdg_config_home
        .clone()
        .or_else(|| env.home.as_ref().map(|h| h.join(".config")));
    if let Some(dir) = config_home {
        files.push(file(dir.join("containers/auth.json"), false, false));
    }
    let docker = env
        .docker_config
        .clone()
        .or_else(|| env.home.as_ref().map(|h| h.join(".docker")));
    if let Some(dir) = docker {
        files.push(file(dir.join("config.json"), false, false));
    }
    if let Some(home) = &env.home {
        files.push(file(home.join(".dockercfg"), false, true));
    }
    files
}

pub(super) fn find_credentials_in(
    files: &[AuthFile],
    registry: &str,
    repository: &str,
) -> Result<Option<Credentials>, RegConfError> {
    for file in files {
        let text = match std::fs::read_to_string(&file.path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !file.required => continue,
            Err(err) if file.required => {
                return Err(RegConfError::AuthFileMissing {
                    path: file.path.clone(),
                    err,
                })
            }
            Err(err) => {
                return Err(RegConfError::Read {
                    path: file.path.clone(),
                    err,
                })
            }
        };
        if let Some(creds) = lookup_auth(&text, &file.path, file.legacy, registry, repository)? {
            return Ok(Some(creds));
        }
    }
    Ok(None)
}

#[derive(Deserialize, Default)]
struct RawAuthFile {
    auths: Option<BTreeMap<String, RawAuth>>,
    #[serde(rename = "credHelpers")]
    cred_helpers: Option<BTreeMap<String, String>>,
    #[serde(rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Deserialize, Default)]
struct RawAuth {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
}

/// Looks `registry`/`repository` up in one auth file's text. Keys are tried
/// from the most specific (`host/ns/repo`) to the registry alone; empty
/// entries are skipped.
pub(super) fn lookup_auth(
    text: &str,
    path: &Path,
    legacy: bool,
    registry: &str,
    repository: &str,
) -> Result<Option<Credentials>, RegConfError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let parse_err = |e: serde_json::Error| RegConfError::Parse {
        path: path.to_owned(),
        line: None,
        message: e.to_string(),
    };
    let raw: RawAuthFile = if legacy {
        RawAuthFile {
            auths: Some(serde_json::from_str(text).map_err(parse_err)?),
            ..RawAuthFile::default()
        }
    } else {
        serde_json::from_str(text).map_err(parse_err)?
    };
    let registry_key = normalize_host(registry);
    let helper = raw
        .cred_helpers
        .iter()
        .flatten()
        .any(|(k, _)| normalize_key(k, true) == registry_key);
    if helper || raw.creds_store.is_some() {
        tracing::warn!(
            file = %path.display(),
            registry,
            "credential helpers (credHelpers/credsStore) are not supported; using only plain auths entries"
        );
    }
    let auths: Vec<(String, &String, &RawAuth)> = raw
        .auths
        .iter()
        .flatten()
        .map(|(k, v)| (normalize_key(k, legacy), k, v))
        .collect();
    for candidate in lookup_keys(&registry_key, repository) {
        for (_, key, entry) in auths.iter().filter(|(n, _, _)| *n == candidate) {
            if let Some(creds) = decode_auth(entry, path, key)? {
                return Ok(Some(creds));
            }
        }
    }
    Ok(None)
}

/// `host/a/b`, `host/a`, `host`.
fn lookup_keys(registry: &str, repository: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut name = format!("{registry}/{repository}");
    while let Some((parent, _)) = name.rsplit_once('/') {
        let parent = parent.to_owned();
        keys.push(std::mem::replace(&mut name, parent));
    }
    keys.push(name);
    keys
}

fn normalize_host(host: &str) -> String {
    if DOCKER_HUB_ALIASES.contains(&host) {
        DOCKER_HUB.to_owned()
    } else {
        host.to_owned()
    }
}

/// `https://host/v1/` → `host`; `host/ns` stays; Docker Hub spellings → `docker.io`.
fn normalize_key(key: &str, host_only: bool) -> String {
    let stripped = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"));
    let key = match stripped {
        Some(rest) => rest.split('/').next().unwrap_or(rest),
        None if host_only => key.split('/').next().unwrap_or(key),
        None => key,
    };
    match key.split_once('/') {
        Some((host, path)) => format!("{}/{path}", normalize_host(host)),
        None => normalize_host(key),
    }
}

fn decode_auth(
    entry: &RawAuth,
    path: &Path,
    key: &str,
) -> Result<Option<Credentials>, RegConfError> {
    let bad = |reason: &str| RegConfError::BadAuthEntry {
        path: path.to_owned(),
        key: key.to_owned(),
        reason: reason.to_owned(),
    };
    if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| bad("\"auth\" is not base64"))?;
        let text = String::from_utf8(bytes).map_err(|_| bad("\"auth\" is not UTF-8"))?;
        let (username, password) = text
            .split_once(':')
            .ok_or_else(|| bad("\"auth\" is not base64 of USER:PASSWORD"))?;
        return Ok(Some(Credentials {
            username: username.to_owned(),
            password: password.to_owned(),
        }));
    }
    match (&entry.username, &entry.password) {
        (Some(u), Some(p)) if !u.is_empty() => Ok(Some(Credentials {
            username: u.clone(),
            password: p.clone(),
        })),
        _ => {
            if entry
                .identitytoken
                .as_deref()
                .is_some_and(|t| !t.is_empty())
            {
                tracing::warn!(file = %path.display(), key, "identity tokens are not supported; skipping the entry");
            }
            Ok(None)
        }
    }
}
