//! A manifest GET that reads no more than berth accepts.
//!
//! oci-client's `pull_manifest_raw` reads the whole response body into memory
//! before its caller sees a byte: a registry that declares gigabytes, or
//! streams a manifest without end, would make berth allocate until the kernel
//! kills it. A manifest named by tag has no descriptor to bound it, so berth
//! caps it at [`super::blob::MAX_MANIFEST_SIZE`] (as containers/image does)
//! and stops reading there. oci-client has no body limit to set, so this GET
//! is written here; it takes its token from oci-client ([`Client::auth`],
//! which also caches it for the blob requests that follow) and reports in
//! oci-client's error type, so retries and the plain-HTTP fallback of
//! [`super::registry`] treat it exactly as before.

use futures_util::StreamExt;
use oci_client::client::{Certificate, CertificateEncoding};
use oci_client::errors::{OciDistributionError, OciEnvelope};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use sha2::{Digest as _, Sha256};

/// What a bounded GET returned.
#[derive(Debug)]
pub enum Fetched {
    /// The whole body and its digest (the reference's, or the body's sha256
    /// when the reference is a tag and the registry sent none).
    Complete(Vec<u8>, String),
    /// The body passed the limit: the registry declared `size` bytes, or
    /// sent more than `limit` (`size` is then what was read, limit + 1).
    TooLarge {
        /// Bytes declared or read.
        size: u64,
        /// Whether `size` is the declared Content-Length.
        declared: bool,
    },
}

/// The plain HTTP client the bounded GET uses, with the same trust roots,
/// timeouts and certificate policy as the oci-client one.
pub fn http_client(
    only: &[Certificate],
    extra: &[Certificate],
    accept_invalid: bool,
    connect_timeout: std::time::Duration,
    read_timeout: std::time::Duration,
) -> Result<reqwest::Client, reqwest::Error> {
    let convert = |certs: &[Certificate]| -> Result<Vec<reqwest::Certificate>, reqwest::Error> {
        certs
            .iter()
            .map(|c| match c.encoding {
                CertificateEncoding::Der => reqwest::Certificate::from_der(&c.data),
                CertificateEncoding::Pem => reqwest::Certificate::from_pem(&c.data),
            })
            .collect()
    };
    let mut b = reqwest::Client::builder()
        .danger_accept_invalid_certs(accept_invalid)
        .connect_timeout(connect_timeout)
        .read_timeout(read_timeout)
        .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")));
    if !only.is_empty() {
        b = b.tls_certs_only(convert(only)?);
    }
    b.tls_certs_merge(convert(extra)?).build()
}

/// How a manifest request authenticates.
#[derive(Debug, Clone)]
pub enum Authz {
    /// No credentials, or a registry that asks for none.
    Anonymous,
    /// A bearer token from the registry's token service.
    Bearer(String),
    /// HTTP basic authentication (a registry without a token service).
    Basic(String, String),
}

/// Authenticates for pulling from `reference`'s repository the way
/// oci-client does (it caches the token for its own blob requests too).
pub async fn authorize(
    oci: &Client,
    reference: &Reference,
    auth: &RegistryAuth,
) -> Result<Authz, OciDistributionError> {
    Ok(
        match oci.auth(reference, auth, RegistryOperation::Pull).await? {
            Some(token) => Authz::Bearer(token),
            None => match auth {
                RegistryAuth::Basic(user, pass) => Authz::Basic(user.clone(), pass.clone()),
                _ => Authz::Anonymous,
            },
        },
    )
}

/// GETs the manifest `reference` names, reading at most `limit` bytes.
/// `scheme` is `https` or `http`; `accept` the media types to ask for.
pub async fn get(
    http: &reqwest::Client,
    scheme: &str,
    reference: &Reference,
    authz: &Authz,
    accept: &[&str],
    limit: u64,
) -> Result<Fetched, OciDistributionError> {
    let url = format!(
        "{scheme}://{}/v2/{}/manifests/{}",
        reference.resolve_registry(),
        reference.repository(),
        reference.digest().or(reference.tag()).unwrap_or("latest")
    );
    let req = http.get(&url).header("Accept", accept.join(", "));
    let req = match authz {
        Authz::Anonymous => req,
        Authz::Bearer(token) => req.bearer_auth(token),
        Authz::Basic(user, pass) => req.basic_auth(user, Some(pass)),
    };
    let res = req.send().await?;
    let status = res.status();
    let header_digest = res
        .headers()
        .get("Docker-Content-Digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(declared) = res.content_length().filter(|n| *n > limit) {
        return Ok(Fetched::TooLarge {
            size: declared,
            declared: true,
        });
    }
    let mut body = Vec::new();
    let mut stream = res.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Ok(Fetched::TooLarge {
                size: limit + 1,
                declared: false,
            });
        }
        body.extend_from_slice(&chunk);
    }
    check_status(status, &body, &url)?;
    let digest = match (reference.digest(), header_digest) {
        (Some(d), _) => d.to_string(),
        (None, Some(d)) if d.starts_with("sha256:") => d,
        (None, _) => format!("sha256:{}", hex::encode(Sha256::digest(&body))),
    };
    Ok(Fetched::Complete(body, digest))
}

/// The error oci-client reports for `status` (its rules, so berth's error
/// mapping and retry decisions stay the same).
fn check_status(
    status: reqwest::StatusCode,
    body: &[u8],
    url: &str,
) -> Result<(), OciDistributionError> {
    let server = || OciDistributionError::ServerError {
        code: status.as_u16(),
        url: url.to_string(),
        message: String::from_utf8_lossy(body).to_string(),
    };
    match status {
        reqwest::StatusCode::OK => Ok(()),
        reqwest::StatusCode::UNAUTHORIZED => Err(OciDistributionError::UnauthorizedError {
            url: url.to_string(),
        }),
        s if s.is_client_error() => match serde_json::from_slice::<OciEnvelope>(body) {
            Ok(envelope) => Err(OciDistributionError::RegistryError {
                envelope,
                url: url.to_string(),
            }),
            Err(_) => Err(server()),
        },
        _ => Err(server()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_as_oci_client_maps_them() {
        let url = "https://r/v2/x/manifests/1";
        assert!(check_status(reqwest::StatusCode::OK, b"", url).is_ok());
        assert!(matches!(
            check_status(reqwest::StatusCode::UNAUTHORIZED, b"", url),
            Err(OciDistributionError::UnauthorizedError { .. })
        ));
        let envelope = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"no"}]}"#;
        assert!(matches!(
            check_status(reqwest::StatusCode::NOT_FOUND, envelope, url),
            Err(OciDistributionError::RegistryError { .. })
        ));
        assert!(matches!(
            check_status(reqwest::StatusCode::NOT_FOUND, b"nope", url),
            Err(OciDistributionError::ServerError { code: 404, .. })
        ));
        assert!(matches!(
            check_status(reqwest::StatusCode::BAD_GATEWAY, b"", url),
            Err(OciDistributionError::ServerError { code: 502, .. })
        ));
    }
}
