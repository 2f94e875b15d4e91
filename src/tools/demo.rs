//! `revocd init`: a throw-away demo PKI and a working configuration
//! (docs/design.md: contract with users). A CA, a delegated OCSP responder, a good and a revoked
//! leaf, an index.txt holding both, an admin token, and `revocd.toml`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
    SignatureAlgorithm, PKCS_ECDSA_P256_SHA256, PKCS_ML_DSA_44, PKCS_ML_DSA_65, PKCS_ML_DSA_87,
};
use ring::rand::SecureRandom;
use time::{Duration, OffsetDateTime};

use crate::asn1;

/// The demo issuer's id; its CRL will be served at `/crl/demo.crl`.
pub const DEMO_ISSUER: &str = "demo";

/// The demo PKI's key algorithm: every key (CA, responder, leaves) is one
/// of these, so an ML-DSA demo is a post-quantum hierarchy end to end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Algorithm {
    #[default]
    #[value(name = "ecdsa-p256")]
    EcdsaP256,
    #[value(name = "ml-dsa-44")]
    MlDsa44,
    #[value(name = "ml-dsa-65")]
    MlDsa65,
    #[value(name = "ml-dsa-87")]
    MlDsa87,
}

impl Algorithm {
    fn rcgen(self) -> &'static SignatureAlgorithm {
        match self {
            Algorithm::EcdsaP256 => &PKCS_ECDSA_P256_SHA256,
            Algorithm::MlDsa44 => &PKCS_ML_DSA_44,
            Algorithm::MlDsa65 => &PKCS_ML_DSA_65,
            Algorithm::MlDsa87 => &PKCS_ML_DSA_87,
        }
    }

    /// Whether OpenSSL before 3.5 can check what this demo signs.
    pub fn is_post_quantum(self) -> bool {
        self != Algorithm::EcdsaP256
    }
}

pub struct InitOptions {
    pub dir: PathBuf,
    /// Public listener address, written into the config and the AIA/CDP URLs.
    pub listen: String,
    pub admin_listen: String,
    pub force: bool,
    pub algorithm: Algorithm,
}

/// What `init` wrote, for the caller to print.
pub struct InitOutput {
    pub config: PathBuf,
    pub good_serial: String,
    pub revoked_serial: String,
}

fn random_serial() -> anyhow::Result<Vec<u8>> {
    let mut s = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut s)
        .map_err(|_| anyhow::anyhow!("no randomness"))?;
    s[0] &= 0x7f;
    s[0] |= 0x10;
    Ok(s.to_vec())
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "revocd demo");
    dn.push(DnType::CommonName, cn);
    dn
}

/// AuthorityInfoAccess with one id-ad-ocsp URI (RFC 5280 4.2.2.1).
fn aia_ocsp(url: &str) -> CustomExtension {
    let access = asn1::sequence(&[
        &asn1::oid(&asn1::oid_content("1.3.6.1.5.5.7.48.1")),
        &asn1::tlv(asn1::context_primitive(6), url.as_bytes()),
    ]);
    CustomExtension::from_oid_content(&[1, 3, 6, 1, 5, 5, 7, 1, 1], asn1::sequence(&[&access]))
}

fn write(path: &Path, contents: &[u8], private: bool) -> anyhow::Result<()> {
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("chmod {}", path.display()))?;
    }
    Ok(())
}

pub fn init(opts: &InitOptions) -> anyhow::Result<InitOutput> {
    let dir = &opts.dir;
    let config_path = dir.join("revocd.toml");
    if config_path.exists() && !opts.force {
        bail!(
            "{} exists; use --force to overwrite the demo PKI",
            config_path.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let base_url = format!("http://{}", opts.listen);
    let now = OffsetDateTime::now_utc().replace_nanosecond(0)?;

    let ca_key = KeyPair::generate_for(opts.algorithm.rcgen())?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name = name("revocd demo CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = now - Duration::hours(1);
    ca.not_after = now + Duration::days(3650);
    ca.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, &ca_key);

    // Delegated responder: EKU OCSPSigning and id-pkix-ocsp-nocheck (RFC 6960 4.2.2.2.1).
    let responder_key = KeyPair::generate_for(opts.algorithm.rcgen())?;
    let mut responder = CertificateParams::default();
    responder.distinguished_name = name("revocd demo OCSP responder");
    responder.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    responder.extended_key_usages = vec![ExtendedKeyUsagePurpose::OcspSigning];
    responder.custom_extensions = vec![CustomExtension::from_oid_content(
        &[1, 3, 6, 1, 5, 5, 7, 48, 1, 5],
        asn1::NULL.to_vec(),
    )];
    responder.use_authority_key_identifier_extension = true;
    responder.not_before = now - Duration::hours(1);
    responder.not_after = now + Duration::days(365);
    responder.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
    let responder_cert = responder.signed_by(&responder_key, &issuer)?;

    let mut index = String::new();
    let mut leaf = |file: &str, cn: &str, revoked_at: Option<i64>| -> anyhow::Result<String> {
        let key = KeyPair::generate_for(opts.algorithm.rcgen())?;
        let mut p = CertificateParams::new(vec!["localhost".to_string()])?;
        p.distinguished_name = name(cn);
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.use_authority_key_identifier_extension = true;
        p.custom_extensions = vec![aia_ocsp(&format!("{base_url}/"))];
        p.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
            uris: vec![format!("{base_url}/crl/{DEMO_ISSUER}.crl")],
        }];
        p.not_before = now - Duration::hours(1);
        p.not_after = now + Duration::days(90);
        let serial = random_serial()?;
        p.serial_number = Some(SerialNumber::from_slice(&serial));
        let cert = p.signed_by(&key, &issuer)?;
        write(
            &dir.join(format!("{file}.pem")),
            cert.pem().as_bytes(),
            false,
        )?;
        write(
            &dir.join(format!("{file}.key")),
            key.serialize_pem().as_bytes(),
            true,
        )?;
        let hex = hex::encode_upper(&serial);
        let expiry = crate::sources::index::format_time(p.not_after.unix_timestamp());
        let subject = format!("/O=revocd demo/CN={cn}");
        match revoked_at {
            None => index.push_str(&format!("V\t{expiry}\t\t{hex}\tunknown\t{subject}\n")),
            Some(at) => index.push_str(&format!(
                "R\t{expiry}\t{},keyCompromise\t{hex}\tunknown\t{subject}\n",
                crate::sources::index::format_time(at)
            )),
        }
        Ok(hex)
    };
    let good_serial = leaf("leaf-good", "good.revocd.test", None)?;
    let revoked_serial = leaf(
        "leaf-revoked",
        "revoked.revocd.test",
        Some(now.unix_timestamp() - 60),
    )?;

    write(&dir.join("ca.pem"), ca_cert.pem().as_bytes(), false)?;
    write(&dir.join("ca.key"), ca_key.serialize_pem().as_bytes(), true)?;
    write(
        &dir.join("responder.pem"),
        responder_cert.pem().as_bytes(),
        false,
    )?;
    write(
        &dir.join("responder.key"),
        responder_key.serialize_pem().as_bytes(),
        true,
    )?;
    write(&dir.join("index.txt"), index.as_bytes(), false)?;
    let mut token = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut token)
        .map_err(|_| anyhow::anyhow!("no randomness"))?;
    write(
        &dir.join("admin.token"),
        format!("{}\n", hex::encode(token)).as_bytes(),
        true,
    )?;
    std::fs::create_dir_all(dir.join("data"))?;
    let config = demo_config(&opts.listen, &opts.admin_listen);
    write(&config_path, config.as_bytes(), false)?;
    Ok(InitOutput {
        config: config_path,
        good_serial,
        revoked_serial,
    })
}

/// The demo's `revocd.toml`: the listeners given, one operator with every
/// scope, CRLs in a local directory, and the demo issuer with its delegated
/// responder and index.txt.
fn demo_config(listen: &str, admin: &str) -> String {
    format!(
        r#"# revocd demo configuration, written by `revocd init`. See config/revocd.toml
# in the source tree for every setting with its meaning.
data-dir = "data"

[listen]
public = "{listen}"
admin = "{admin}"

# Who may use the admin API: one operator with every scope. Add more with
# their own token files (or client certificates, with admin TLS) and only
# the scopes they need: read, register, revoke, release, publish.
[[admin.operator]]
name = "admin"
token-file = "admin.token"
scopes = ["read", "register", "revoke", "release", "publish"]

[ocsp]
window = "60m"
validity = "8h"

# CRLs go to a local directory (an object store on disk) and are served at
# /crl/demo.crl; see config/revocd.toml for S3.
[crl]
store = "file://crl"

[[issuer]]
id = "{DEMO_ISSUER}"
certificate = "ca.pem"
# The CA key signs CRLs; the delegated responder signs OCSP.
key = "ca.key"
responder-certificate = "responder.pem"
responder-key = "responder.key"
index = "index.txt"
"#,
        listen = listen,
        admin = admin,
    )
}
