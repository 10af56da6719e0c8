//! PURE: does the identity a signature names (`docker-reference`) fit the
//! image being pulled, under a requirement's `signedIdentity` rule?
//!
//! The rules are those of containers-policy.json(5) as containers/image
//! implements them. References are normalised by the project's grammar
//! ([`crate::image::reference`]): `busybox` is `docker.io/library/busybox`,
//! and a reference is compared as `HOST/PATH[:TAG][@DIGEST]`. Unlike a pull,
//! a name without tag or digest is *not* given `latest` here: a signature
//! naming only a repository is "name-only", which most rules refuse.
//!
//! | rule | the signature must name |
//! | --- | --- |
//! | `matchExact` | the pulled reference exactly (tag or digest); never name-only |
//! | `matchRepoDigestOrExact` | pulled by tag: that reference exactly; pulled by digest: the same repository (tag or digest) |
//! | `matchRepository` | the same repository |
//! | `exactReference` | the given reference exactly |
//! | `exactRepository` | the given repository |
//! | `remapIdentity` | the pulled reference with `prefix` replaced by `signedPrefix`, then as `matchRepoDigestOrExact` |

use super::SignedIdentity;
use crate::image::reference::{self, ImageRef, DOCKER_HUB};

/// A registry reference as containers/image's `ParseNormalizedNamed` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Named {
    /// `HOST/PATH`.
    name: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl Named {
    /// Parses `text`; `None` when it is not a registry reference.
    fn parse(text: &str) -> Option<Named> {
        // A transport prefix is not part of a docker reference.
        if text.contains("://") {
            return None;
        }
        let name_only = !text.contains('@')
            && text
                .rsplit_once(':')
                .is_none_or(|(_, after)| after.contains('/'));
        let resolved = reference::resolve(text, &[DOCKER_HUB.to_string()]).ok()?;
        let Some(ImageRef::Registry(r)) = resolved.into_iter().next() else {
            return None;
        };
        Some(Named {
            name: r.name(),
            // The grammar defaults a bare name to `latest`; undo that.
            tag: if name_only { None } else { r.tag },
            digest: r.digest,
        })
    }

    fn is_name_only(&self) -> bool {
        self.tag.is_none() && self.digest.is_none()
    }

    /// `HOST/PATH[:TAG][@DIGEST]`.
    fn full(&self) -> String {
        let mut s = self.name.clone();
        if let Some(tag) = &self.tag {
            s.push(':');
            s.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            s.push('@');
            s.push_str(digest);
        }
        s
    }
}

/// Whether a signature naming `signed` is acceptable for an image pulled
/// as `pulled` under `rule`. `pulled` is `None` for sources without a
/// registry reference (`oci:` layouts, archives): only the `exact…` rules,
/// which do not look at it, can then match.
pub fn matches(rule: &SignedIdentity, pulled: Option<&str>, signed: &str) -> bool {
    let Some(signed) = Named::parse(signed) else {
        return false;
    };
    let pulled = pulled.and_then(Named::parse);
    match rule {
        SignedIdentity::MatchExact => pulled.is_some_and(|p| exact(&p, &signed)),
        SignedIdentity::MatchRepoDigestOrExact => {
            pulled.is_some_and(|p| repo_digest_or_exact(&p, &signed))
        }
        SignedIdentity::MatchRepository => pulled.is_some_and(|p| p.name == signed.name),
        SignedIdentity::ExactReference(r) => Named::parse(r).is_some_and(|r| exact(&r, &signed)),
        SignedIdentity::ExactRepository(r) => {
            Named::parse(r).is_some_and(|r| r.name == signed.name)
        }
        SignedIdentity::RemapIdentity {
            prefix,
            signed_prefix,
        } => pulled
            .and_then(|p| remap(&p, prefix, signed_prefix))
            .is_some_and(|p| repo_digest_or_exact(&p, &signed)),
    }
}

fn exact(intended: &Named, signed: &Named) -> bool {
    !intended.is_name_only() && !signed.is_name_only() && intended.full() == signed.full()
}

fn repo_digest_or_exact(intended: &Named, signed: &Named) -> bool {
    if signed.is_name_only() {
        return false;
    }
    if intended.tag.is_some() {
        intended.full() == signed.full()
    } else if intended.digest.is_some() {
        // The digest itself is checked against the manifest elsewhere.
        intended.name == signed.name
    } else {
        false
    }
}

/// `intended` with `prefix` replaced by `signed_prefix` when `prefix` is a
/// whole leading part of it (ending at `/`, `:` or `@`); unchanged when it
/// is not; `None` when the result is not a reference.
fn remap(intended: &Named, prefix: &str, signed_prefix: &str) -> Option<Named> {
    let full = intended.full();
    let Some(rest) = full.strip_prefix(prefix) else {
        return Some(intended.clone());
    };
    if !(rest.is_empty() || rest.starts_with(['/', ':', '@'])) {
        return Some(intended.clone());
    }
    // containers/image parses the result without normalising it: it must
    // already be the canonical spelling.
    let remapped = format!("{signed_prefix}{rest}");
    Named::parse(&remapped).filter(|n| n.full() == remapped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use SignedIdentity as S;

    const D: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn at(name: &str) -> String {
        format!("{name}@{D}")
    }

    #[test]
    fn normalises_docker_hub_names() {
        let n = Named::parse("busybox").unwrap();
        assert_eq!(n.name, "docker.io/library/busybox");
        assert!(n.is_name_only());
        assert_eq!(
            Named::parse("docker.io/busybox:1").unwrap().full(),
            "docker.io/library/busybox:1"
        );
        assert!(Named::parse("localhost:5000/a").unwrap().is_name_only());
        assert!(Named::parse("docker://r.example/a:1").is_none());
        assert!(Named::parse("oci:/srv/x:1").is_none());
        assert!(Named::parse("Not A Ref").is_none());
    }

    #[test]
    fn match_exact() {
        let rule = S::MatchExact;
        assert!(matches(&rule, Some("r.example/a:1"), "r.example/a:1"));
        assert!(matches(
            &rule,
            Some("docker.io/library/busybox:1"),
            "busybox:1"
        ));
        assert!(matches(&rule, Some(&at("r.example/a")), &at("r.example/a")));
        assert!(!matches(&rule, Some("r.example/a:1"), "r.example/a:2"));
        assert!(!matches(&rule, Some("r.example/a:1"), "r.example/a"));
        assert!(!matches(&rule, Some(&at("r.example/a")), "r.example/a:1"));
        assert!(!matches(&rule, None, "r.example/a:1"));
    }

    #[test]
    fn match_repo_digest_or_exact() {
        let rule = S::MatchRepoDigestOrExact;
        assert!(matches(&rule, Some("r.example/a:1"), "r.example/a:1"));
        assert!(matches(&rule, Some(&at("r.example/a")), "r.example/a:7"));
        assert!(matches(&rule, Some(&at("r.example/a")), &at("r.example/a")));
        assert!(!matches(&rule, Some("r.example/a:1"), "r.example/a:2"));
        assert!(!matches(&rule, Some("r.example/a:1"), &at("r.example/a")));
        assert!(!matches(&rule, Some(&at("r.example/a")), "r.example/b:1"));
        assert!(!matches(&rule, Some(&at("r.example/a")), "r.example/a"));
    }

    #[test]
    fn match_repository() {
        let rule = S::MatchRepository;
        assert!(matches(&rule, Some("r.example/a:1"), "r.example/a:2"));
        assert!(matches(&rule, Some("r.example/a:1"), "r.example/a"));
        assert!(matches(&rule, Some(&at("r.example/a")), "r.example/a:2"));
        assert!(!matches(&rule, Some("r.example/a:1"), "r.example/ab:1"));
        assert!(!matches(&rule, Some("r.example/a:1"), "other.example/a:1"));
    }

    #[test]
    fn exact_reference() {
        let rule = S::ExactReference("r.example/a:1".into());
        assert!(matches(&rule, Some("mirror.example/a:9"), "r.example/a:1"));
        assert!(matches(&rule, None, "r.example/a:1"));
        assert!(!matches(&rule, None, "r.example/a:2"));
        assert!(!matches(&rule, None, "r.example/a"));
        let name_only = S::ExactReference("r.example/a".into());
        assert!(!matches(&name_only, None, "r.example/a"));
    }

    #[test]
    fn exact_repository() {
        let rule = S::ExactRepository("r.example/a".into());
        assert!(matches(&rule, Some("mirror.example/b:9"), "r.example/a:1"));
        assert!(matches(&rule, None, "r.example/a"));
        assert!(!matches(&rule, None, "r.example/b:1"));
    }

    #[test]
    fn remap_identity() {
        let rule = S::RemapIdentity {
            prefix: "mirror.example/ns".into(),
            signed_prefix: "r.example/upstream".into(),
        };
        assert!(matches(
            &rule,
            Some("mirror.example/ns/a:1"),
            "r.example/upstream/a:1"
        ));
        assert!(matches(
            &rule,
            Some(&at("mirror.example/ns/a")),
            "r.example/upstream/a:3"
        ));
        assert!(!matches(
            &rule,
            Some("mirror.example/ns/a:1"),
            "r.example/upstream/a:2"
        ));
        assert!(!matches(
            &rule,
            Some("mirror.example/ns/a:1"),
            "mirror.example/ns/a:2"
        ));
        // Not under the prefix: matched as matchRepoDigestOrExact, unchanged.
        assert!(matches(
            &rule,
            Some("mirror.example/nsx/a:1"),
            "mirror.example/nsx/a:1"
        ));
        assert!(!matches(
            &rule,
            Some("mirror.example/nsx/a:1"),
            "r.example/upstreamx/a:1"
        ));
        // A host prefix.
        let host = S::RemapIdentity {
            prefix: "mirror.example".into(),
            signed_prefix: "r.example".into(),
        };
        assert!(matches(
            &host,
            Some("mirror.example/a/b:1"),
            "r.example/a/b:1"
        ));
        // The result must be canonical: no normalisation to docker.io/library.
        let hub = S::RemapIdentity {
            prefix: "mirror.example/ns".into(),
            signed_prefix: "busybox".into(),
        };
        assert!(!matches(&hub, Some("mirror.example/ns:1"), "busybox:1"));
    }
}
