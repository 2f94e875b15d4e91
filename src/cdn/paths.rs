//! The GET paths under which a CDN may hold an OCSP answer for a serial,
//! pure: what real clients send for one certificate.

use base64::Engine;

use crate::asn1;
use crate::pki::{Cert, HashAlg};
use crate::state::Serial;

/// A one-CertID OCSPRequest with no extensions, as openssl, browsers and
/// stapling servers send it for GET: the hash algorithm's parameters NULL
/// (openssl, most clients) or absent (RFC 5754 style, some clients).
pub fn request_der(issuer: &Cert, serial: &Serial, alg: HashAlg, null_params: bool) -> Vec<u8> {
    let algorithm = if null_params {
        alg.algorithm_identifier_der()
    } else {
        let arcs: Vec<u64> = alg.arcs().iter().map(|a| u64::from(*a)).collect();
        asn1::sequence(&[&asn1::oid(&asn1::oid_content_of_arcs(&arcs))])
    };
    let cert_id = asn1::sequence(&[
        &algorithm,
        &asn1::octet_string(&issuer.name_hash(alg)),
        &asn1::octet_string(&issuer.key_hash(alg)),
        &asn1::integer_from_content(serial.content()),
    ]);
    let request = asn1::sequence(&[&cert_id]);
    let list = asn1::sequence(&[&request]);
    let tbs = asn1::sequence(&[&list]);
    asn1::sequence(&[&tbs])
}

/// Every GET path of `serial`'s answers under `prefix` (`ocsp.path`):
/// SHA-1 and SHA-256 CertIDs, NULL and absent parameters, the base64 plain
/// and %-encoded (`+` `/` `=` as `%2B` `%2F` `%3D`, as some clients and CDNs
/// write it). Distinct, in a stable order.
pub fn get_paths(prefix: &str, issuer: &Cert, serial: &Serial) -> Vec<String> {
    let base = if prefix == "/" {
        "/".to_string()
    } else {
        format!("{}/", prefix.trim_end_matches('/'))
    };
    let mut out = Vec::with_capacity(8);
    for alg in [HashAlg::Sha1, HashAlg::Sha256] {
        for null_params in [true, false] {
            let der = request_der(issuer, serial, alg, null_params);
            let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
            for path in [
                format!("{base}{b64}"),
                format!("{base}{}", percent_encode(&b64)),
            ] {
                if !out.contains(&path) {
                    out.push(path);
                }
            }
        }
    }
    out
}

fn percent_encode(b64: &str) -> String {
    let mut s = String::with_capacity(b64.len() + 16);
    for c in b64.chars() {
        match c {
            '+' => s.push_str("%2B"),
            '/' => s.push_str("%2F"),
            '=' => s.push_str("%3D"),
            c => s.push(c),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_paths_are_what_the_get_handler_decodes() {
        let dir = tempfile::tempdir().expect("tmp");
        crate::tools::demo::init(&crate::tools::demo::InitOptions {
            dir: dir.path().to_path_buf(),
            listen: "127.0.0.1:0".into(),
            admin_listen: "127.0.0.1:0".into(),
            force: false,
            algorithm: Default::default(),
        })
        .expect("init");
        let ca = Cert::parse(&std::fs::read(dir.path().join("ca.pem")).expect("ca")).expect("ca");
        let serial = Serial::from_hex("0FFB").expect("hex");
        let paths = get_paths("/ocsp", &ca, &serial);
        assert!(paths.len() >= 4 && paths.len() <= 8, "{paths:?}");
        for p in &paths {
            let rest = p.strip_prefix("/ocsp/").expect("prefix");
            let der = crate::ocsp::request::decode_get_path(rest).expect("decodes");
            let req = crate::ocsp::request::decode_der(&der).expect("a request");
            assert_eq!(req.queries.len(), 1);
            assert_eq!(req.queries[0].serial, serial);
        }
        // NULL and absent parameters give different requests.
        assert_ne!(
            request_der(&ca, &serial, HashAlg::Sha1, true),
            request_der(&ca, &serial, HashAlg::Sha1, false)
        );
        assert!(get_paths("/", &ca, &serial)[0].starts_with("/M"));
    }
}
