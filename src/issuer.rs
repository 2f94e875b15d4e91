//! The issuers revocd serves, loaded and checked at start-up: certificate,
//! signer (the CA's own key or a delegated responder), and initial state.

use std::path::Path;

use crate::config::{Config, IssuerConfig, SignerConfig, UnknownSerialPolicy};
use crate::ledger::record::IssuerEntries;
use crate::ledger::{Applier, ApplyError};
use crate::pki::{oids, Cert, HashAlg, HsmSettings, KeyRef, ResponseSigner, SigningKey};
use crate::state::{Applied, Author, Change, Entry, IssuerState, Serial};

/// One CA revocd answers for.
#[derive(Debug)]
pub struct Issuer {
    pub id: String,
    pub cert: Cert,
    /// Swapped whole on a key rotation (SIGHUP).
    signer: std::sync::RwLock<std::sync::Arc<ResponseSigner>>,
    /// Bumped with every signer swap; part of every cache key, so answers of
    /// the old signer become unreachable at the swap.
    generation: std::sync::atomic::AtomicU64,
    pub state: IssuerState,
    pub unknown_serial: UnknownSerialPolicy,
    /// The CA's own key, for CRLs (when configured).
    pub crl_key: Option<std::sync::Arc<SigningKey>>,
    /// OpenSSL index.txt followed as a source of changes.
    pub index: Option<std::path::PathBuf>,
    /// Warnings found at load (not fatal), for the log.
    pub warnings: Vec<String>,
}

impl Issuer {
    pub fn signer(&self) -> std::sync::Arc<ResponseSigner> {
        std::sync::Arc::clone(&self.signer.read().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Installs a new signer under generation `generation`.
    pub fn swap_signer(&self, signer: std::sync::Arc<ResponseSigner>, generation: u64) {
        *self.signer.write().unwrap_or_else(|p| p.into_inner()) = signer;
        self.generation
            .store(generation, std::sync::atomic::Ordering::Release);
    }

    /// The CertID issuer hashes under `alg`.
    pub fn hashes(&self, alg: HashAlg) -> (Vec<u8>, Vec<u8>) {
        (self.cert.name_hash(alg), self.cert.key_hash(alg))
    }
}

/// What must happen when a durable change is applied to issuer `idx`'s
/// state (the OCSP signer signs the serial again).
pub type ChangeHook = Box<dyn Fn(usize, &Change) + Send + Sync>;

/// What must happen at the end of a group of changes, before the ledger
/// acknowledges them (the OCSP signer signs a small queue of them again).
pub type SettleHook = Box<dyn Fn() + Send + Sync>;

/// The issuers revocd serves, with their certificates, signers and state:
/// the one owner of the state. OCSP (`ocsp::Responder`, `ocsp::Signer`),
/// CRLs (`crl::CrlService`) and the sources hold it; it is the ledger's
/// [`Applier`], and the OCSP signer registers what a change needs
/// ([`Issuers::on_change`]). Derefs to the slice, in configuration order
/// (indexes are stable).
pub struct Issuers {
    list: Vec<Issuer>,
    changed: std::sync::OnceLock<ChangeHook>,
    settled: std::sync::OnceLock<SettleHook>,
}

impl std::fmt::Debug for Issuers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuers")
            .field("list", &self.list)
            .finish_non_exhaustive()
    }
}

impl Issuers {
    pub fn new(list: Vec<Issuer>) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self {
            list,
            changed: std::sync::OnceLock::new(),
            settled: std::sync::OnceLock::new(),
        })
    }

    /// The index of the issuer named `id`.
    pub fn index(&self, id: &str) -> Option<usize> {
        self.list.iter().position(|i| i.id == id)
    }

    /// Runs `hook` after every change [`Applier::apply`] makes (once; a
    /// second hook is refused).
    pub fn on_change(&self, hook: ChangeHook) {
        if self.changed.set(hook).is_err() {
            tracing::error!("a second change hook for the issuers was refused");
        }
    }

    /// Runs `hook` at the end of every group of changes, before they are
    /// acknowledged ([`Applier::settle`]; once).
    pub fn on_settle(&self, hook: SettleHook) {
        if self.settled.set(hook).is_err() {
            tracing::error!("a second settle hook for the issuers was refused");
        }
    }
}

impl std::ops::Deref for Issuers {
    type Target = [Issuer];
    fn deref(&self) -> &[Issuer] {
        &self.list
    }
}

/// The ledger applies durable changes here, on its writer thread, so the
/// hook may block: a revocation or release is signed again before the
/// writer acknowledges it, so the next request is a hit.
impl Applier for Issuers {
    fn check(&self, issuer: &str, change: &Change) -> Result<Applied, ApplyError> {
        let idx = self
            .index(issuer)
            .ok_or_else(|| ApplyError::UnknownIssuer(issuer.to_string()))?;
        Ok(self.list[idx].state.check(change)?)
    }

    fn apply(&self, issuer: &str, change: &Change, author: &str) {
        let Some(idx) = self.index(issuer) else {
            return;
        };
        let changed = matches!(
            self.list[idx].state.apply(change, Author::named(author)),
            Ok(Applied::Changed { .. })
        );
        if let (true, Some(hook)) = (changed, self.changed.get()) {
            hook(idx, change);
        }
    }

    fn settle(&self) {
        if let Some(hook) = self.settled.get() {
            hook();
        }
    }

    fn restore(&self, issuer: &str, entries: Vec<(Serial, Entry)>) {
        match self.index(issuer) {
            Some(idx) => self.list[idx].state.restore(entries),
            None => tracing::warn!(
                issuer,
                "snapshot holds an issuer no longer configured; ignored"
            ),
        }
    }

    fn snapshot(&self) -> Vec<IssuerEntries> {
        self.list
            .iter()
            .map(|i| (i.id.clone(), i.state.snapshot()))
            .collect()
    }
}

/// A problem with a secret file's permissions: readable or writable by
/// group or others (Unix).
pub fn loose_permissions(path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode();
        (mode & 0o077 != 0).then(|| {
            format!(
                "{} is accessible by group or others (mode {:o}); chmod 600 it",
                path.display(),
                mode & 0o777
            )
        })
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Loads every issuer, collecting every problem (each names its file).
pub fn load_all(config: &Config, now: i64) -> Result<Vec<Issuer>, Vec<String>> {
    let mut errors = Vec::new();
    let mut issuers = Vec::new();
    let mut secrets: Vec<&Path> = config
        .admin_operators
        .iter()
        .filter_map(|o| o.token_file.as_deref())
        .chain(config.admin_tls.as_ref().map(|t| t.key.as_path()))
        .collect();
    for ic in &config.issuers {
        secrets.extend(ic.ca_key.as_ref().and_then(KeyRef::secret_file));
        let (SignerConfig::Delegated { key, .. } | SignerConfig::Issuer { key }) = &ic.signer;
        secrets.extend(key.secret_file());
    }
    secrets.sort();
    secrets.dedup();
    for path in secrets {
        if let Some(problem) = loose_permissions(path) {
            if config.refuse_loose_secrets {
                errors.push(format!(
                    "{problem} (or set security.loose-secret-permissions = \"warn\")"
                ));
            } else {
                tracing::warn!("{problem}");
            }
        }
    }
    for ic in &config.issuers {
        match load(ic, config.pkcs11, now) {
            Ok(i) => issuers.push(i),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(issuers)
    } else {
        Err(errors)
    }
}

fn read(path: &Path, errors: &mut Vec<String>, at: &str) -> Option<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| errors.push(format!("{at}: cannot read {}: {e}", path.display())))
        .ok()
}

fn load_cert(path: &Path, errors: &mut Vec<String>, at: &str) -> Option<Cert> {
    let bytes = read(path, errors, at)?;
    Cert::parse(&bytes)
        .map_err(|e| errors.push(format!("{at}: {}: {e}", path.display())))
        .ok()
}

fn load_key(
    key: &KeyRef,
    hsm: HsmSettings,
    errors: &mut Vec<String>,
    at: &str,
) -> Option<SigningKey> {
    key.load(hsm)
        .map_err(|e| errors.push(format!("{at}: {e}")))
        .ok()
}

/// Whether `key` belongs to `cert`; a key in an HSM proves it by signing.
fn key_matches(key: &SigningKey, cert: &Cert, errors: &mut Vec<String>, at: &str) -> bool {
    match key.matches(cert) {
        Ok(m) => m,
        Err(e) => {
            errors.push(format!(
                "{at}: cannot check key {} against its certificate: {e}",
                key.location()
            ));
            true
        }
    }
}

fn load(ic: &IssuerConfig, hsm: HsmSettings, now: i64) -> Result<Issuer, Vec<String>> {
    let at = format!("issuer {:?}", ic.id);
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let ca = load_cert(&ic.certificate, &mut errors, &at);
    if let Some(ca) = &ca {
        if !ca.is_ca {
            warnings.push(format!(
                "{at}: {} has no basicConstraints cA=TRUE",
                ic.certificate.display()
            ));
        }
    }
    let signer = match &ic.signer {
        SignerConfig::Issuer { key } => {
            let k = load_key(key, hsm, &mut errors, &at);
            match (k, &ca) {
                (Some(k), Some(ca)) => {
                    if !key_matches(&k, ca, &mut errors, &at) {
                        errors.push(format!(
                            "{at}: key {key} does not match certificate {}",
                            ic.certificate.display()
                        ));
                        None
                    } else {
                        Some(ResponseSigner::new(k, ca, false))
                    }
                }
                _ => None,
            }
        }
        SignerConfig::Delegated { certificate, key } => {
            let rc = load_cert(certificate, &mut errors, &at);
            let k = load_key(key, hsm, &mut errors, &at);
            match (rc, k, &ca) {
                (Some(rc), Some(k), Some(ca)) => {
                    let before = errors.len();
                    check_delegated(&rc, ca, certificate, now, &at, &mut errors, &mut warnings);
                    if !key_matches(&k, &rc, &mut errors, &at) {
                        errors.push(format!(
                            "{at}: key {key} does not match responder certificate {}",
                            certificate.display()
                        ));
                    }
                    (errors.len() == before).then(|| ResponseSigner::new(k, &rc, true))
                }
                _ => None,
            }
        }
    };
    let crl_key = match (&ic.ca_key, &ca) {
        (Some(key), Some(ca)) => match load_key(key, hsm, &mut errors, &at) {
            Some(k) if key_matches(&k, ca, &mut errors, &at) => Some(std::sync::Arc::new(k)),
            Some(_) => {
                errors.push(format!(
                    "{at}: key {key} does not match certificate {}",
                    ic.certificate.display()
                ));
                None
            }
            None => None,
        },
        _ => None,
    };
    // The index is imported through the ledger at start; here it is only
    // read, so check-config reports its bad lines.
    if let Some(index) = &ic.index {
        if let Some(bytes) = read(index, &mut errors, &at) {
            let parsed = crate::sources::index::parse(&String::from_utf8_lossy(&bytes), now);
            for e in &parsed.errors {
                warnings.push(format!("{at}: {}: {e} (skipped)", index.display()));
            }
        }
    }
    match (ca, signer) {
        (Some(cert), Some(signer)) if errors.is_empty() => Ok(Issuer {
            id: ic.id.clone(),
            cert,
            signer: std::sync::RwLock::new(std::sync::Arc::new(signer)),
            generation: std::sync::atomic::AtomicU64::new(0),
            state: IssuerState::new(),
            unknown_serial: ic.unknown_serial,
            index: ic.index.clone(),
            crl_key,
            warnings,
        }),
        _ => Err(errors),
    }
}

/// RFC 6960 4.2.2.2: a delegated responder certificate carries
/// id-kp-OCSPSigning and is issued directly by the CA; it must be valid now.
fn check_delegated(
    rc: &Cert,
    ca: &Cert,
    path: &Path,
    now: i64,
    at: &str,
    errors: &mut Vec<String>,
    warnings: &mut Vec<String>,
) {
    let file = path.display();
    if !rc.has_eku(oids::EKU_OCSP_SIGNING) {
        errors.push(format!(
            "{at}: responder certificate {file} lacks extendedKeyUsage id-kp-OCSPSigning"
        ));
    }
    if !rc.is_issued_by(ca) {
        errors.push(format!(
            "{at}: responder certificate {file} is not issued by the issuer certificate (name or signature does not match)"
        ));
    }
    if now >= rc.not_after {
        errors.push(format!("{at}: responder certificate {file} has expired"));
    } else if now < rc.not_before {
        errors.push(format!(
            "{at}: responder certificate {file} is not valid yet"
        ));
    }
    if !rc.has_ocsp_nocheck {
        warnings.push(format!(
            "{at}: responder certificate {file} lacks id-pkix-ocsp-nocheck; clients may try to check its revocation"
        ));
    }
}
