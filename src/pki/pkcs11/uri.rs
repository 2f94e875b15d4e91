//! PKCS#11 URIs (RFC 7512), as OpenSSL, GnuTLS and p11-kit write them:
//! `pkcs11:token=revocd;object=ocsp?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/revocd/pin`.
//!
//! Pure parsing: nothing here opens a module or reads a PIN.

use std::path::{Path, PathBuf};

/// Where the PIN comes from. Never the URI itself: `pin-value` is refused,
/// so a PIN is never in the configuration text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinSource {
    /// `pin-source=file:/path` (or a bare path): the file's first line. The
    /// file must be private, like a key file.
    File(PathBuf),
    /// `pin-source=env:NAME`: an environment variable.
    Env(String),
}

/// A parsed PKCS#11 URI naming one private key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pkcs11Uri {
    /// `token=`: the token label.
    pub token: Option<String>,
    /// `serial=`: the token serial number.
    pub serial: Option<String>,
    /// `manufacturer=` and `model=` of the token.
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    /// `slot-id=`: the slot, as a decimal number.
    pub slot_id: Option<u64>,
    /// `object=`: the key's label (CKA_LABEL).
    pub object: Option<String>,
    /// `id=`: the key's CKA_ID bytes.
    pub id: Option<Vec<u8>>,
    /// `module-path=`: the PKCS#11 library.
    pub module_path: Option<PathBuf>,
    pub pin_source: Option<PinSource>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("not a PKCS#11 URI (it must start with \"pkcs11:\")")]
    Scheme,
    #[error("bad percent-encoding in {0:?}")]
    Percent(String),
    #[error("attribute {0:?} has no value (write name=value)")]
    NoValue(String),
    #[error("attribute {0:?} is given twice")]
    Twice(String),
    #[error("pin-value is refused: a PIN is never taken from the configuration; use pin-source=file:PATH or pin-source=env:NAME")]
    PinValue,
    #[error("type={0:?}: revocd signs with a private key (type=private or no type)")]
    Type(String),
    #[error("slot-id {0:?} is not a number")]
    SlotId(String),
    #[error("name the key with object= (its label) or id=")]
    NoObject,
    #[error("unknown attribute {0:?} (known: token, serial, manufacturer, model, slot-id, object, id, type, module-path, pin-source)")]
    Unknown(String),
}

impl Pkcs11Uri {
    /// True when `text` is meant as a PKCS#11 URI rather than a file path.
    pub fn is_uri(text: &str) -> bool {
        text.get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case("pkcs11:"))
    }

    /// Parses `text`. Relative `module-path` and `pin-source` file paths
    /// are resolved against `base` (the configuration's directory).
    pub fn parse(text: &str, base: &Path) -> Result<Self, UriError> {
        if !Self::is_uri(text) {
            return Err(UriError::Scheme);
        }
        let rest = &text[7..];
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, q),
            None => (rest, ""),
        };
        let mut uri = Pkcs11Uri::default();
        let mut seen = Vec::new();
        let pairs = path
            .split(';')
            .chain(query.split('&'))
            .filter(|a| !a.is_empty());
        for attr in pairs {
            let (name, raw) = attr
                .split_once('=')
                .ok_or_else(|| UriError::NoValue(attr.to_string()))?;
            let name = name.to_ascii_lowercase();
            if seen.contains(&name) {
                return Err(UriError::Twice(name));
            }
            seen.push(name.clone());
            let bytes = percent_decode(raw).ok_or_else(|| UriError::Percent(raw.to_string()))?;
            let text = || String::from_utf8_lossy(&bytes).into_owned();
            match name.as_str() {
                "token" => uri.token = Some(text()),
                "serial" => uri.serial = Some(text()),
                "manufacturer" => uri.manufacturer = Some(text()),
                "model" => uri.model = Some(text()),
                "slot-id" => {
                    let t = text();
                    uri.slot_id = Some(t.parse().map_err(|_| UriError::SlotId(t))?);
                }
                "object" => uri.object = Some(text()),
                "id" => uri.id = Some(bytes),
                "type" => {
                    let t = text();
                    if t != "private" {
                        return Err(UriError::Type(t));
                    }
                }
                "module-path" => uri.module_path = Some(base.join(text())),
                "pin-source" => {
                    let t = text();
                    uri.pin_source = Some(match t.strip_prefix("env:") {
                        Some(var) => PinSource::Env(var.to_string()),
                        None => {
                            let file = t
                                .strip_prefix("file://")
                                .or_else(|| t.strip_prefix("file:"));
                            PinSource::File(base.join(file.unwrap_or(&t)))
                        }
                    });
                }
                "pin-value" => return Err(UriError::PinValue),
                // Informational attributes other tools write; they select nothing.
                "library-manufacturer"
                | "library-description"
                | "library-version"
                | "slot-manufacturer"
                | "slot-description"
                | "module-name" => {}
                _ => return Err(UriError::Unknown(name)),
            }
        }
        if uri.object.is_none() && uri.id.is_none() {
            return Err(UriError::NoObject);
        }
        Ok(uri)
    }

    /// A short name for logs and errors: token and object, never the PIN.
    pub fn describe(&self) -> String {
        let mut s = String::from("pkcs11:");
        if let Some(t) = &self.token {
            s.push_str(&format!("token={t};"));
        }
        if let Some(o) = &self.object {
            s.push_str(&format!("object={o};"));
        }
        if let Some(id) = &self.id {
            s.push_str(&format!("id={};", hex::encode(id)));
        }
        s.pop();
        s
    }
}

fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_openssl_and_p11_kit_write() {
        let u = Pkcs11Uri::parse(
            "pkcs11:token=revocd;object=ocsp%20key;id=%01%a2;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:pin.txt",
            Path::new("/etc/revocd"),
        )
        .expect("parses");
        assert_eq!(u.token.as_deref(), Some("revocd"));
        assert_eq!(u.object.as_deref(), Some("ocsp key"));
        assert_eq!(u.id.as_deref(), Some(&[0x01, 0xa2][..]));
        assert_eq!(
            u.module_path.as_deref(),
            Some(Path::new("/usr/lib/softhsm/libsofthsm2.so"))
        );
        assert_eq!(
            u.pin_source,
            Some(PinSource::File(PathBuf::from("/etc/revocd/pin.txt")))
        );
        let e = Pkcs11Uri::parse("PKCS11:object=k?pin-source=env:HSM_PIN", Path::new("."))
            .expect("parses");
        assert_eq!(e.pin_source, Some(PinSource::Env("HSM_PIN".into())));
    }

    #[test]
    fn a_pin_in_the_uri_and_other_mistakes_are_refused_by_name() {
        let base = Path::new(".");
        assert_eq!(
            Pkcs11Uri::parse("pkcs11:object=k?pin-value=1234", base),
            Err(UriError::PinValue)
        );
        assert_eq!(
            Pkcs11Uri::parse("pkcs11:token=t", base),
            Err(UriError::NoObject)
        );
        assert_eq!(
            Pkcs11Uri::parse("pkcs11:object=k;object=j", base),
            Err(UriError::Twice("object".into()))
        );
        assert_eq!(
            Pkcs11Uri::parse("pkcs11:object=%zz", base),
            Err(UriError::Percent("%zz".into()))
        );
        assert_eq!(
            Pkcs11Uri::parse("pkcs11:object=k;type=cert", base),
            Err(UriError::Type("cert".into()))
        );
        assert!(matches!(
            Pkcs11Uri::parse("pkcs11:object=k;colour=red", base),
            Err(UriError::Unknown(_))
        ));
        assert_eq!(
            Pkcs11Uri::parse("/etc/key.pem", base),
            Err(UriError::Scheme)
        );
    }
}
