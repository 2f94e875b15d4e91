//! Where a private key lives, as the configuration names it, and loading
//! it from there: a PKCS#8 file, or an object in an HSM named by an
//! RFC 7512 URI. The rest of revocd sees a [`KeyRef`] and a [`SigningKey`],
//! never the module behind them.

use std::path::{Path, PathBuf};

use super::pkcs11::{HsmKey, HsmSettings, PinSource, Pkcs11Uri};
use super::SigningKey;

/// Where a private key is: a PKCS#8 file, or an HSM object named by a
/// PKCS#11 URI (RFC 7512).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    File(PathBuf),
    Hsm(Pkcs11Uri),
}

impl KeyRef {
    /// Reads `text` from the configuration: a `pkcs11:` URI, else a path
    /// (relative ones against `base`, the configuration's directory).
    pub fn parse(text: &str, base: &Path) -> Result<Self, String> {
        if Pkcs11Uri::is_uri(text) {
            Pkcs11Uri::parse(text, base)
                .map(KeyRef::Hsm)
                .map_err(|e| e.to_string())
        } else {
            let p = Path::new(text);
            Ok(KeyRef::File(if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }))
        }
    }

    /// The file that must be private: the key file, or the HSM's PIN file.
    pub fn secret_file(&self) -> Option<&Path> {
        match self {
            KeyRef::File(p) => Some(p),
            KeyRef::Hsm(u) => match &u.pin_source {
                Some(PinSource::File(p)) => Some(p),
                _ => None,
            },
        }
    }

    /// Opens the key: parses the file (PEM, else DER), or logs in to the
    /// HSM with `hsm`'s limits. The error names where the key was looked for.
    pub fn load(&self, hsm: HsmSettings) -> Result<SigningKey, String> {
        match self {
            KeyRef::File(path) => {
                let bytes = std::fs::read(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                SigningKey::from_pkcs8_pem(&bytes)
                    .or_else(|pem_err| SigningKey::from_pkcs8_der(&bytes).map_err(|_| pem_err))
                    .map_err(|e| format!("{}: {e}", path.display()))
            }
            KeyRef::Hsm(uri) => HsmKey::open(uri, hsm)
                .map(SigningKey::from_hsm)
                .map_err(|e| e.to_string()),
        }
    }
}

impl std::fmt::Display for KeyRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyRef::File(p) => write!(f, "{}", p.display()),
            KeyRef::Hsm(u) => f.write_str(&u.describe()),
        }
    }
}
