//! One loaded PKCS#11 library, shared by every key in it: the initialised
//! context, a pool of sessions per token, the bound on signings in flight
//! (the gate), and the reconnection that tears it all down and brings it up
//! again after a failure. The registry holds one per library path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

use super::types::{
    describe_object, describe_token, HsmError, HsmSettings, HsmSignError, ObjectSel, TokenSel,
    SHA256_DIGEST_INFO,
};
use crate::asn1;
use crate::pki::kind::KeyKind;

/// One module's health, for metrics.
#[derive(Debug, Clone)]
pub struct ModuleStatus {
    pub path: String,
    pub up: bool,
    pub errors: u64,
    pub reconnects: u64,
    pub in_flight: usize,
}

/// Every module opened in this process, for metrics.
pub fn status() -> Vec<ModuleStatus> {
    let registry = registry().lock().unwrap_or_else(PoisonError::into_inner);
    let mut out: Vec<ModuleStatus> = registry
        .values()
        .map(|m| ModuleStatus {
            path: m.path.display().to_string(),
            up: m.up.load(Ordering::Acquire),
            errors: m.errors.load(Ordering::Relaxed),
            reconnects: m.reconnects.load(Ordering::Relaxed),
            in_flight: *m.gate.used.lock().unwrap_or_else(PoisonError::into_inner),
        })
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Modules down right now, process-wide: cheap enough for every cache read.
static DOWN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Whether any HSM module is down (its keys cannot sign).
pub fn any_down() -> bool {
    DOWN.load(Ordering::Relaxed) > 0
}

fn registry() -> &'static Mutex<HashMap<PathBuf, Arc<Module>>> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Arc<Module>>>> = OnceLock::new();
    MODULES.get_or_init(Default::default)
}

/// What went wrong inside the module.
pub(super) enum Failure {
    /// A PKCS#11 error: the HSM, the session or the token.
    Pkcs11(String),
    /// The key is not what revocd can use (missing, ambiguous, unsupported).
    Key(String),
    Down,
    Busy,
}

impl From<cryptoki::error::Error> for Failure {
    fn from(e: cryptoki::error::Error) -> Self {
        Failure::Pkcs11(short_error(&e))
    }
}

/// `C_Sign: CKR_DEVICE_ERROR`-like text: the function and the code's name,
/// not cryptoki's paragraph-long description.
fn short_error(e: &cryptoki::error::Error) -> String {
    match e {
        cryptoki::error::Error::Pkcs11(rv, function) => format!("{function:?}: {rv:?}"),
        other => other.to_string(),
    }
}

/// A loaded PKCS#11 library and everything open in it.
pub(super) struct Module {
    path: PathBuf,
    settings: HsmSettings,
    live: RwLock<Option<Live>>,
    up: AtomicBool,
    reconnecting: AtomicBool,
    pins: Mutex<HashMap<TokenSel, Option<String>>>,
    /// Every key opened in this module: found again on reconnection.
    keys: Mutex<Vec<(TokenSel, ObjectSel)>>,
    gate: Gate,
    errors: AtomicU64,
    reconnects: AtomicU64,
}

/// The initialised library and its open tokens. Dropping it closes every
/// session and finalises the library.
struct Live {
    tokens: Mutex<HashMap<TokenSel, Arc<TokenLive>>>,
    // Dropped last: sessions hold clones of the context.
    ctx: Pkcs11,
}

struct TokenLive {
    slot: Slot,
    idle: Mutex<Vec<Session>>,
    handles: Mutex<HashMap<ObjectSel, ObjectHandle>>,
}

impl Module {
    pub(super) fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Signings allowed in flight at once.
    pub(super) fn max_in_flight(&self) -> usize {
        self.gate.max
    }

    pub(super) fn get(path: &Path, settings: HsmSettings) -> Result<Arc<Self>, HsmError> {
        let mut registry = registry().lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(m) = registry.get(path) {
            return Ok(Arc::clone(m));
        }
        let ctx = initialise(path).map_err(|error| HsmError::Module {
            path: path.display().to_string(),
            error,
        })?;
        let m = Arc::new(Module {
            path: path.to_path_buf(),
            settings,
            live: RwLock::new(Some(Live::new(ctx))),
            up: AtomicBool::new(true),
            reconnecting: AtomicBool::new(false),
            pins: Mutex::default(),
            keys: Mutex::default(),
            gate: Gate::new(settings.max_in_flight.max(1)),
            errors: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
        });
        registry.insert(path.to_path_buf(), Arc::clone(&m));
        Ok(m)
    }

    pub(super) fn set_pin(&self, token: &TokenSel, pin: Option<String>) {
        self.pins
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(token.clone(), pin);
    }

    fn pin(&self, token: &TokenSel) -> Option<String> {
        self.pins
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(token)
            .cloned()
            .flatten()
    }

    pub(super) fn remember(&self, token: &TokenSel, object: &ObjectSel) {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if !keys.iter().any(|(t, o)| t == token && o == object) {
            keys.push((token.clone(), object.clone()));
        }
    }

    /// Runs `f` with a session of `token` and the handle of `object`, within
    /// the in-flight bound. A PKCS#11 error marks the module down.
    fn with_key<T>(
        self: &Arc<Self>,
        token: &TokenSel,
        object: &ObjectSel,
        f: impl FnOnce(&Session, ObjectHandle) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        if !self.up.load(Ordering::Acquire) {
            return Err(Failure::Down);
        }
        let _slot = self.gate.acquire(self.settings.wait).ok_or(Failure::Busy)?;
        let result = {
            let live = self.live.read().unwrap_or_else(PoisonError::into_inner);
            let Some(live) = live.as_ref() else {
                return Err(Failure::Down);
            };
            live.with_key(self, token, object, f)
        };
        if let Err(Failure::Pkcs11(error)) = &result {
            self.fail(error);
        }
        result
    }

    pub(super) fn sign(
        self: &Arc<Self>,
        token: &TokenSel,
        object: &ObjectSel,
        mechanism: &Mechanism,
        data: &[u8],
    ) -> Result<Vec<u8>, HsmSignError> {
        self.with_key(token, object, |s, key| Ok(s.sign(mechanism, key, data)?))
            .map_err(|e| match e {
                Failure::Down => HsmSignError::Down,
                Failure::Busy => HsmSignError::Busy,
                // The error marked the module down: what failed is the HSM,
                // not this message.
                Failure::Pkcs11(_) => HsmSignError::Down,
                Failure::Key(_) => HsmSignError::Failed,
            })
    }

    /// The kind of the key `object` (from CKA_KEY_TYPE, CKA_EC_PARAMS,
    /// CKA_MODULUS).
    pub(super) fn key_kind(
        self: &Arc<Self>,
        token: &TokenSel,
        object: &ObjectSel,
    ) -> Result<KeyKind, Failure> {
        self.with_key(token, object, |s, key| {
            let attrs = s.get_attributes(
                key,
                &[
                    AttributeType::KeyType,
                    AttributeType::EcParams,
                    AttributeType::Modulus,
                ],
            )?;
            let mut key_type = None;
            let (mut params, mut modulus) = (None, None);
            for a in attrs {
                match a {
                    Attribute::KeyType(t) => key_type = Some(t),
                    Attribute::EcParams(p) => params = Some(p),
                    Attribute::Modulus(m) => modulus = Some(m),
                    _ => {}
                }
            }
            match key_type {
                Some(t) if t == KeyType::EC => {
                    let p = params.unwrap_or_default();
                    if p == asn1::oid(&asn1::oid_content(crate::pki::oids::P256)) {
                        Ok(KeyKind::EcdsaP256)
                    } else if p == asn1::oid(&asn1::oid_content(crate::pki::oids::P384)) {
                        Ok(KeyKind::EcdsaP384)
                    } else {
                        Err(Failure::Key(
                            "an EC key on a curve revocd does not sign with (P-256 and P-384 only)"
                                .into(),
                        ))
                    }
                }
                Some(t) if t == KeyType::RSA => {
                    let bits = modulus.map_or(0, |m| {
                        let lead = m.iter().take_while(|b| **b == 0).count();
                        (m.len() - lead) * 8
                    });
                    if bits < 2048 {
                        Err(Failure::Key(format!(
                            "an RSA key of {bits} bits; revocd needs 2048 or more"
                        )))
                    } else {
                        Ok(KeyKind::Rsa)
                    }
                }
                other => Err(Failure::Key(format!(
                    "key type {other:?} is not supported (ECDSA P-256, P-384, RSA >= 2048)"
                ))),
            }
        })
    }

    /// Marks the module down after `error` and starts the reconnection
    /// thread (one per module).
    fn fail(self: &Arc<Self>, error: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if self.up.swap(false, Ordering::AcqRel) {
            DOWN.fetch_add(1, Ordering::Relaxed);
            tracing::error!(module = %self.path.display(), error, "HSM signing failed: signer down, reconnecting");
        }
        if self.reconnecting.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("revocd-hsm-reconnect".into())
            .spawn(move || this.reconnect());
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the HSM reconnection thread");
            self.reconnecting.store(false, Ordering::Release);
        }
    }

    /// Tears the library down and brings it up again, with backoff, until
    /// every key opened in it signs a probe.
    fn reconnect(self: Arc<Self>) {
        let mut pause = Duration::from_millis(250);
        let started = Instant::now();
        for attempt in 1u64.. {
            std::thread::sleep(pause);
            pause = (pause * 2).min(self.settings.retry_max);
            let mut live = self.live.write().unwrap_or_else(PoisonError::into_inner);
            // Every session closed and the library finalised before it is
            // initialised again (handles from before are stale).
            *live = None;
            match self.bring_up() {
                Ok(fresh) => {
                    *live = Some(fresh);
                    self.up.store(true, Ordering::Release);
                    DOWN.fetch_sub(1, Ordering::Relaxed);
                    self.reconnects.fetch_add(1, Ordering::Relaxed);
                    self.reconnecting.store(false, Ordering::Release);
                    tracing::warn!(
                        module = %self.path.display(),
                        attempt,
                        down_seconds = started.elapsed().as_secs_f64(),
                        "HSM reconnected: signer up"
                    );
                    return;
                }
                Err(error) => {
                    tracing::warn!(module = %self.path.display(), attempt, error, retry_in_ms = pause.as_millis() as u64, "HSM still unavailable");
                }
            }
        }
    }

    /// A fresh library context in which every remembered key is found and
    /// signs a probe.
    fn bring_up(&self) -> Result<Live, String> {
        let fresh = Live::new(initialise(&self.path)?);
        let keys = self
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for (token, object) in &keys {
            fresh
                .with_key(self, token, object, |s, key| {
                    // The probe: a digest-sized ECDSA or RSA input is fine for
                    // both; what matters is that the HSM signs at all.
                    let kind = s.get_attributes(key, &[AttributeType::KeyType])?;
                    let rsa = kind
                        .iter()
                        .any(|a| matches!(a, Attribute::KeyType(t) if *t == KeyType::RSA));
                    let (mech, data) = if rsa {
                        (
                            Mechanism::RsaPkcs,
                            [&SHA256_DIGEST_INFO[..], &[0u8; 32]].concat(),
                        )
                    } else {
                        (Mechanism::Ecdsa, vec![0u8; 32])
                    };
                    s.sign(&mech, key, &data)?;
                    Ok(())
                })
                .map_err(|e| match e {
                    Failure::Pkcs11(s) | Failure::Key(s) => s,
                    Failure::Down => "down".into(),
                    Failure::Busy => "busy".into(),
                })?;
        }
        Ok(fresh)
    }
}

/// Loads the library and calls `C_Initialize` (OS locking: revocd signs
/// from many threads).
fn initialise(path: &Path) -> Result<Pkcs11, String> {
    let ctx = Pkcs11::new(path).map_err(|e| short_error(&e))?;
    ctx.initialize(CInitializeArgs::OsThreads)
        .map_err(|e| short_error(&e))?;
    Ok(ctx)
}

impl Live {
    fn new(ctx: Pkcs11) -> Self {
        Self {
            tokens: Mutex::default(),
            ctx,
        }
    }

    fn token(&self, module: &Module, sel: &TokenSel) -> Result<Arc<TokenLive>, Failure> {
        if let Some(t) = self
            .tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(sel)
        {
            return Ok(Arc::clone(t));
        }
        let slot = self.find_slot(sel)?;
        let token = Arc::new(TokenLive {
            slot,
            idle: Mutex::default(),
            handles: Mutex::default(),
        });
        // Log in once: PKCS#11 login state is shared by every session of the
        // application on that token.
        let session = self.ctx.open_ro_session(slot)?;
        let info = self.ctx.get_token_info(slot)?;
        if info.login_required() {
            let Some(pin) = module.pin(sel) else {
                return Err(Failure::Key(
                    "the token requires a login: add pin-source=file:PATH or pin-source=env:NAME"
                        .into(),
                ));
            };
            match session.login(UserType::User, Some(&AuthPin::new(pin))) {
                Ok(()) => {}
                Err(cryptoki::error::Error::Pkcs11(
                    cryptoki::error::RvError::UserAlreadyLoggedIn,
                    _,
                )) => {}
                Err(e) => return Err(e.into()),
            }
        }
        token
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(session);
        self.tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(sel.clone(), Arc::clone(&token));
        Ok(token)
    }

    fn find_slot(&self, sel: &TokenSel) -> Result<Slot, Failure> {
        let mut found = Vec::new();
        for slot in self.ctx.get_slots_with_token()? {
            if sel.slot_id.is_some_and(|id| id != slot.id()) {
                continue;
            }
            let info = self.ctx.get_token_info(slot)?;
            let matches = |want: &Option<String>, have: &str| {
                want.as_deref().is_none_or(|w| w == have.trim_end())
            };
            if matches(&sel.label, info.label())
                && matches(&sel.serial, info.serial_number())
                && matches(&sel.manufacturer, info.manufacturer_id())
                && matches(&sel.model, info.model())
            {
                found.push(slot);
            }
        }
        match found.as_slice() {
            [one] => Ok(*one),
            [] => Err(Failure::Pkcs11(format!(
                "no token matches {}",
                describe_token(sel)
            ))),
            many => Err(Failure::Key(format!(
                "{} tokens match {}; add token=, serial= or slot-id=",
                many.len(),
                describe_token(sel)
            ))),
        }
    }

    fn with_key<T>(
        &self,
        module: &Module,
        token: &TokenSel,
        object: &ObjectSel,
        f: impl FnOnce(&Session, ObjectHandle) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        let t = self.token(module, token)?;
        let session = t.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let session = match session {
            Some(s) => s,
            None => self.ctx.open_ro_session(t.slot)?,
        };
        let handle = t
            .handles
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(object)
            .copied();
        let handle = match handle {
            Some(h) => h,
            None => {
                let found = session.find_objects(&object.template())?;
                let h = match found.as_slice() {
                    [one] => *one,
                    [] => {
                        return Err(Failure::Key(format!(
                            "no private key with {} on the token",
                            describe_object(object)
                        )))
                    }
                    many => {
                        return Err(Failure::Key(format!(
                            "{} private keys match {}; add id= or object=",
                            many.len(),
                            describe_object(object)
                        )))
                    }
                };
                t.handles
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(object.clone(), h);
                h
            }
        };
        // A session that failed is dropped (closed), not pooled.
        let out = f(&session, handle)?;
        let mut idle = t.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < module.settings.sessions {
            idle.push(session);
        }
        Ok(out)
    }
}

/// A counting bound on signings in flight.
struct Gate {
    used: Mutex<usize>,
    freed: Condvar,
    max: usize,
    /// The most ever in flight at once.
    peak: AtomicU64,
}

struct Permit<'a>(&'a Gate);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.0.used.lock().unwrap_or_else(PoisonError::into_inner) -= 1;
        self.0.freed.notify_one();
    }
}

impl Gate {
    fn new(max: usize) -> Self {
        Self {
            used: Mutex::new(0),
            freed: Condvar::new(),
            max,
            peak: AtomicU64::new(0),
        }
    }

    fn acquire(&self, wait: Duration) -> Option<Permit<'_>> {
        let used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut used, timeout) = self
            .freed
            .wait_timeout_while(used, wait, |u| *u >= self.max)
            .unwrap_or_else(PoisonError::into_inner);
        if timeout.timed_out() && *used >= self.max {
            return None;
        }
        *used += 1;
        self.peak.fetch_max(*used as u64, Ordering::Relaxed);
        Some(Permit(self))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{HsmKey, Pkcs11Uri};
    use super::*;

    /// A P-256 key imported into a fresh SoftHSM2 token, signed with from
    /// 16 threads through 2 sessions: every signature verifies, and never
    /// more than 2 signings were in flight.
    #[test]
    fn softhsm_signs_from_many_threads_within_the_bound() {
        use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256};
        let util = std::env::var_os("PATH")
            .and_then(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join("softhsm2-util"))
                    .find(|f| f.is_file())
            })
            .expect("softhsm2-util is not installed; run ./scripts/test");
        let module = [
            "/usr/lib/softhsm/libsofthsm2.so",
            "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        ]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("libsofthsm2.so");
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("softhsm2.conf");
        std::fs::create_dir(dir.path().join("tokens")).expect("mkdir");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\n",
                dir.path().join("tokens").display()
            ),
        )
        .expect("conf");
        // The only test in this binary that loads SoftHSM, which reads its
        // configuration at C_Initialize.
        std::env::set_var("SOFTHSM2_CONF", &conf);
        let softhsm = |args: &[&str]| {
            let out = std::process::Command::new(&util)
                .args(args)
                .output()
                .expect("softhsm2-util");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        softhsm(&[
            "--init-token",
            "--free",
            "--label",
            "unit",
            "--pin",
            "4321",
            "--so-pin",
            "8765",
        ]);
        let pair = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("keygen");
        let pem = dir.path().join("k.pem");
        std::fs::write(&pem, pair.serialize_pem()).expect("pem");
        softhsm(&[
            "--import",
            &pem.display().to_string(),
            "--token",
            "unit",
            "--label",
            "k",
            "--id",
            "07",
            "--pin",
            "4321",
        ]);
        std::fs::write(dir.path().join("pin"), "4321\n").expect("pin");
        let uri = Pkcs11Uri::parse(
            &format!(
                "pkcs11:token=unit;object=k?module-path={}&pin-source=file:pin",
                module.display()
            ),
            dir.path(),
        )
        .expect("uri");
        let settings = HsmSettings {
            sessions: 2,
            max_in_flight: 2,
            ..HsmSettings::default()
        };
        let key = Arc::new(HsmKey::open(&uri, settings).expect("open"));
        assert_eq!(key.kind(), KeyKind::EcdsaP256);
        assert!(format!("{key:?}").contains("object=k") && !format!("{key:?}").contains("4321"));
        let public = pair.public_key_raw().to_vec();
        let threads: Vec<_> = (0..16)
            .map(|t| {
                let (key, public) = (Arc::clone(&key), public.clone());
                std::thread::spawn(move || {
                    for i in 0..25 {
                        let msg = format!("message {t}/{i}");
                        let sig = key.sign(msg.as_bytes()).expect("sign");
                        ring::signature::UnparsedPublicKey::new(
                            &ring::signature::ECDSA_P256_SHA256_ASN1,
                            &public,
                        )
                        .verify(msg.as_bytes(), &sig)
                        .expect("verifies");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let peak = key.module.gate.peak.load(Ordering::Relaxed);
        assert!((1..=2).contains(&peak), "peak in flight {peak}");
        let idle = key.module.live.read().expect("lock").as_ref().map(|l| {
            l.tokens
                .lock()
                .expect("lock")
                .values()
                .map(|t| t.idle.lock().expect("lock").len())
                .sum::<usize>()
        });
        assert!(
            idle.is_some_and(|n| (1..=2).contains(&n)),
            "the pool keeps at most its two sessions: {idle:?}"
        );
    }

    #[test]
    fn the_gate_bounds_what_is_in_flight() {
        let gate = Gate::new(2);
        let a = gate.acquire(Duration::ZERO).expect("first");
        let _b = gate.acquire(Duration::ZERO).expect("second");
        assert!(gate.acquire(Duration::from_millis(10)).is_none());
        drop(a);
        assert!(gate.acquire(Duration::ZERO).is_some());
    }
}
