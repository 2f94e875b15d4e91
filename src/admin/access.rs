//! Who may do what on the admin API: named operators, each with a
//! credential (a bearer token, or a TLS client certificate named by its
//! subject or by the SHA-256 of its public key) and scopes. Transport-free:
//! the `http` layer hands in the Authorization header and the client
//! certificate the TLS handshake verified, from the headers alone, before a
//! body is read.

use std::path::PathBuf;

use crate::pki::Cert;

/// What an operator may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Status calls.
    Read,
    /// Register issued certificates.
    Register,
    /// Revoke (any reason but removeFromCRL).
    Revoke,
    /// Release a certificateHold (removeFromCRL): undoing a hold is the
    /// riskier act, so it is a scope of its own.
    Release,
    /// Ask for a CRL publish now.
    Publish,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::Read,
        Scope::Register,
        Scope::Revoke,
        Scope::Release,
        Scope::Publish,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Register => "register",
            Scope::Revoke => "revoke",
            Scope::Release => "release",
            Scope::Publish => "publish",
        }
    }

    pub fn from_name(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.name() == name)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// One operator as configured (`[[admin.operator]]`, or the legacy
/// `admin.token-file` as `admin` with every scope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorConfig {
    pub name: String,
    /// A file holding the bearer token (a secret).
    pub token_file: Option<PathBuf>,
    /// A client certificate's subject, as RFC 4514 writes it
    /// (`CN=alice,O=Example`, most specific first).
    pub client_cert_subject: Option<String>,
    /// The SHA-256 of a client certificate's SubjectPublicKeyInfo.
    pub client_cert_spki_sha256: Option<[u8; 32]>,
    pub scopes: Vec<Scope>,
}

/// An operator with its credentials loaded.
pub struct Operator {
    pub name: String,
    token_digest: Option<[u8; 32]>,
    subject: Option<String>,
    spki_sha256: Option<[u8; 32]>,
    scopes: u8,
}

impl std::fmt::Debug for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token, not even its digest.
        f.debug_struct("Operator")
            .field("name", &self.name)
            .field("token", &self.token_digest.is_some())
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl Operator {
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes & scope.bit() != 0
    }

    /// An operator with no credentials and these scopes (tests).
    #[cfg(test)]
    pub fn test(name: &str, scopes: &[Scope]) -> Self {
        Self {
            name: name.into(),
            token_digest: None,
            subject: None,
            spki_sha256: None,
            scopes: scopes.iter().fold(0, |acc, s| acc | s.bit()),
        }
    }
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("no credentials: give a bearer token or a client certificate")]
    Missing,
    #[error("the bearer token matches no operator")]
    BadToken,
    #[error("the client certificate names no operator")]
    UnknownCertificate,
}

impl AuthFailure {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing",
            AuthFailure::BadToken => "bad_token",
            AuthFailure::UnknownCertificate => "unknown_certificate",
        }
    }
}

#[derive(Debug, Default)]
pub struct Access {
    operators: Vec<Operator>,
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    out
}

/// Equal in time independent of where they differ.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Access {
    /// Loads every operator's token file. Errors name the file.
    pub fn load(operators: &[OperatorConfig]) -> anyhow::Result<Self> {
        let mut out = Vec::with_capacity(operators.len());
        for o in operators {
            let token_digest = match &o.token_file {
                Some(path) => {
                    let token = std::fs::read_to_string(path).map_err(|e| {
                        anyhow::anyhow!(
                            "reading the token of operator {:?} from {}: {e}",
                            o.name,
                            path.display()
                        )
                    })?;
                    let token = token.trim();
                    anyhow::ensure!(
                        token.len() >= 16,
                        "the token of operator {:?} in {} is shorter than 16 characters",
                        o.name,
                        path.display()
                    );
                    Some(sha256(token.as_bytes()))
                }
                None => None,
            };
            out.push(Operator {
                name: o.name.clone(),
                token_digest,
                subject: o.client_cert_subject.clone(),
                spki_sha256: o.client_cert_spki_sha256,
                scopes: o.scopes.iter().fold(0, |acc, s| acc | s.bit()),
            });
        }
        Ok(Self { operators: out })
    }

    pub fn is_empty(&self) -> bool {
        self.operators.is_empty()
    }

    /// The operator a request speaks for: the one its client certificate
    /// names, else the one whose token it carries (`Authorization: Bearer`,
    /// scheme case-insensitive, RFC 9110 11.1). Every operator's token is
    /// compared, in constant time each, so timing tells nothing of which
    /// came close.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        client_cert: Option<&Cert>,
    ) -> Result<&Operator, AuthFailure> {
        if let Some(cert) = client_cert {
            let spki = sha256(&cert.spki_der);
            let by_cert = self.operators.iter().find(|o| {
                o.spki_sha256.is_some_and(|d| same(&d, &spki))
                    || o.subject.as_deref() == Some(cert.subject_text.as_str())
            });
            if let Some(o) = by_cert {
                return Ok(o);
            }
            if authorization.is_none() {
                return Err(AuthFailure::UnknownCertificate);
            }
        }
        let Some(header) = authorization else {
            return Err(AuthFailure::Missing);
        };
        let given = header
            .trim_start()
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| sha256(token.trim().as_bytes()))
            .ok_or(AuthFailure::BadToken)?;
        let mut found = None;
        for o in &self.operators {
            if o.token_digest.is_some_and(|d| same(&d, &given)) && found.is_none() {
                found = Some(o);
            }
        }
        found.ok_or(AuthFailure::BadToken)
    }
}

/// The scopes that can open an endpoint, before its body is read: any of
/// them lets the request in (revocations: `revoke` or `release`; which one
/// the body needs is checked once it is read). `None`: no such endpoint.
pub fn endpoint_scopes(method: &str, rest: &[&str]) -> Option<&'static [Scope]> {
    Some(match (method, rest) {
        ("GET", ["certificates", _]) => &[Scope::Read],
        ("POST", ["certificates"]) => &[Scope::Register],
        ("POST", ["revocations"]) => &[Scope::Revoke, Scope::Release],
        ("POST", ["crl", "publish"]) => &[Scope::Publish],
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(name: &str, token: Option<&std::path::Path>, scopes: &[Scope]) -> OperatorConfig {
        OperatorConfig {
            name: name.into(),
            token_file: token.map(|p| p.to_path_buf()),
            client_cert_subject: None,
            client_cert_spki_sha256: None,
            scopes: scopes.to_vec(),
        }
    }

    #[test]
    fn a_token_names_its_operator_and_scopes_are_theirs() {
        let dir = tempfile::tempdir().expect("tmp");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "alice-token-0123456789\n").expect("write");
        std::fs::write(&b, "bob-token-0123456789abc").expect("write");
        let access = Access::load(&[
            config("alice", Some(&a), &[Scope::Read]),
            config("bob", Some(&b), &Scope::ALL),
        ])
        .expect("load");
        let alice = access
            .authenticate(Some("Bearer alice-token-0123456789"), None)
            .expect("alice");
        assert_eq!(alice.name, "alice");
        assert!(alice.has(Scope::Read) && !alice.has(Scope::Revoke));
        let bob = access
            .authenticate(Some("bearer   bob-token-0123456789abc "), None)
            .expect("bob");
        assert!(bob.has(Scope::Release));
        assert_eq!(
            access.authenticate(Some("Bearer nope"), None).err(),
            Some(AuthFailure::BadToken)
        );
        assert_eq!(
            access.authenticate(Some("Basic YWxpY2U="), None).err(),
            Some(AuthFailure::BadToken)
        );
        assert_eq!(
            access.authenticate(None, None).err(),
            Some(AuthFailure::Missing)
        );
        assert!(!format!("{alice:?}").contains("0123456789"));
    }

    #[test]
    fn short_tokens_are_refused_at_load() {
        let dir = tempfile::tempdir().expect("tmp");
        let t = dir.path().join("t");
        std::fs::write(&t, "short").expect("write");
        let e = Access::load(&[config("x", Some(&t), &[Scope::Read])]).expect_err("short");
        assert!(e.to_string().contains("shorter than 16"), "{e}");
    }

    #[test]
    fn revocations_open_to_revoke_or_release_and_nothing_else_is_an_endpoint() {
        assert_eq!(
            endpoint_scopes("POST", &["revocations"]),
            Some(&[Scope::Revoke, Scope::Release][..])
        );
        assert_eq!(
            endpoint_scopes("GET", &["certificates", "01"]),
            Some(&[Scope::Read][..])
        );
        assert_eq!(endpoint_scopes("DELETE", &["certificates", "01"]), None);
    }
}
