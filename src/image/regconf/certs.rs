//! CA certificates for a registry, from `certs.d` (see the table in
//! [`super`]).

use super::*;

/// PEM bytes of the CA certificates for `registry` (`host[:port]`): every
/// `*.crt` of `cert_dir` when given (missing is an error), else of the first
/// existing `BASE/REGISTRY` directory (bases from `$BERTH_CERTS_D` or
/// [`CERTS_D`]). Files are read in name order; client certificates
/// (`*.cert`, `*.key`) are ignored with a warning.
pub fn registry_ca_certs(
    registry: &str,
    cert_dir: Option<&Path>,
) -> Result<Vec<Vec<u8>>, RegConfError> {
    let bases: Vec<PathBuf> = match std::env::var(ENV_CERTS_D) {
        Ok(list) if !list.is_empty() => list
            .split(':')
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect(),
        _ => CERTS_D.iter().map(PathBuf::from).collect(),
    };
    ca_certs_from(registry, cert_dir, &bases)
}

pub(super) fn ca_certs_from(
    registry: &str,
    cert_dir: Option<&Path>,
    bases: &[PathBuf],
) -> Result<Vec<Vec<u8>>, RegConfError> {
    if let Some(dir) = cert_dir {
        return read_crt_files(dir)?.ok_or_else(|| RegConfError::CertDir {
            path: dir.to_owned(),
            err: io::Error::from(io::ErrorKind::NotFound),
        });
    }
    if registry.is_empty() || registry.contains(['/', '\0']) || registry == "." || registry == ".."
    {
        return Err(RegConfError::BadRegistryName {
            registry: registry.to_owned(),
        });
    }
    for base in bases {
        if let Some(certs) = read_crt_files(&base.join(registry))? {
            return Ok(certs);
        }
    }
    Ok(Vec::new())
}

/// `None` when `dir` does not exist.
fn read_crt_files(dir: &Path) -> Result<Option<Vec<Vec<u8>>>, RegConfError> {
    let dir_err = |err| RegConfError::CertDir {
        path: dir.to_owned(),
        err,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(dir_err(err)),
    };
    let mut paths = Vec::new();
    for entry in entries {
        paths.push(entry.map_err(dir_err)?.path());
    }
    paths.sort();
    let mut certs = Vec::new();
    for path in paths {
        match path.extension().and_then(|e| e.to_str()) {
            Some("crt") => certs.push(std::fs::read(&path).map_err(|err| RegConfError::Read {
                path: path.clone(),
                err,
            })?),
            Some("cert" | "key") => tracing::warn!(
                file = %path.display(),
                "client certificates are not supported; ignoring the file"
            ),
            _ => {}
        }
    }
    Ok(Some(certs))
}
