//! `revocd query`: an OCSP client for people. Builds a request, sends it by
//! POST or GET, verifies the signed answer against the issuer (directly or
//! through a delegated responder certificate) and prints it.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::asn1;
use crate::ocsp::response::cert_id_der;
use crate::pki::{oids, Cert, HashAlg};
use crate::state::Serial;

pub struct QueryOptions {
    pub url: String,
    pub issuer: PathBuf,
    pub cert: Option<PathBuf>,
    pub serial: Option<String>,
    pub sha256: bool,
    pub get: bool,
}

/// Allowed clock skew when checking thisUpdate / nextUpdate.
const SKEW: i64 = 300;

/// Builds a one-certificate DER OCSPRequest.
pub fn build_request(issuer: &Cert, serial: &Serial, alg: HashAlg) -> Vec<u8> {
    let cert_id = cert_id_der(alg, &issuer.name_hash(alg), &issuer.key_hash(alg), serial);
    let request = asn1::sequence(&[&cert_id]);
    let list = asn1::sequence(&[&request]);
    let tbs = asn1::sequence(&[&list]);
    asn1::sequence(&[&tbs])
}

/// The report printed for a verified answer.
#[derive(Debug)]
pub struct Verdict {
    pub lines: Vec<String>,
    pub status: String,
    pub revoked_at: Option<i64>,
    /// The reason as rasn names it (`KeyCompromise`), when one is given.
    pub reason: Option<String>,
    /// thisUpdate, in seconds since the epoch.
    pub this_update: i64,
}

fn dotted(oid: &rasn::types::ObjectIdentifier) -> String {
    oid.iter().map(u32::to_string).collect::<Vec<_>>().join(".")
}

fn show_time(t: i64) -> String {
    let g = asn1::generalized_time_text(t);
    format!(
        "{}-{}-{} {}:{}:{} UTC",
        &g[0..4],
        &g[4..6],
        &g[6..8],
        &g[8..10],
        &g[10..12],
        &g[12..14]
    )
}

/// Verifies an OCSPResponse for `serial` issued by `issuer`.
pub fn verify(der: &[u8], issuer: &Cert, serial: &Serial, now: i64) -> anyhow::Result<Verdict> {
    let resp: rasn_ocsp::OcspResponse =
        rasn::der::decode(der).map_err(|e| anyhow!("not an OCSPResponse: {e}"))?;
    if resp.status != rasn_ocsp::OcspResponseStatus::Successful {
        bail!("responder error: {:?}", resp.status);
    }
    let bytes = resp
        .bytes
        .ok_or_else(|| anyhow!("successful response without responseBytes"))?;
    let basic_der = bytes.response.to_vec();
    let basic: rasn_ocsp::BasicOcspResponse =
        rasn::der::decode(&basic_der).map_err(|e| anyhow!("not a BasicOCSPResponse: {e}"))?;
    // The signed bytes, exactly as received.
    let (basic_tlv, _) =
        asn1::read_tlv(&basic_der).ok_or_else(|| anyhow!("BasicOCSPResponse is not DER"))?;
    let parts =
        asn1::children(basic_tlv.content).ok_or_else(|| anyhow!("BasicOCSPResponse is not DER"))?;
    let tbs = parts
        .first()
        .map(|p| p.whole)
        .ok_or_else(|| anyhow!("no tbsResponseData"))?;
    let certs: Vec<Cert> = match parts.get(3) {
        Some(explicit) => {
            let (seq, _) = asn1::read_tlv(explicit.content).ok_or_else(|| anyhow!("bad certs"))?;
            asn1::children(seq.content)
                .ok_or_else(|| anyhow!("bad certs"))?
                .into_iter()
                .map(|c| Cert::parse(c.whole).map_err(|e| anyhow!("certs: {e}")))
                .collect::<anyhow::Result<_>>()?
        }
        None => Vec::new(),
    };
    let mut lines = Vec::new();
    let signer = match certs.first() {
        None => issuer.clone(),
        Some(rc) => {
            if !rc.is_issued_by(issuer) {
                bail!(
                    "responder certificate {} is not issued by the issuer",
                    rc.subject_text
                );
            }
            if !rc.has_eku(oids::EKU_OCSP_SIGNING) {
                bail!("responder certificate lacks id-kp-OCSPSigning");
            }
            lines.push(format!(
                "Signed by delegated responder: {}",
                rc.subject_text
            ));
            rc.clone()
        }
    };
    let sig_oid = dotted(&basic.signature_algorithm.algorithm);
    if !crate::pki::verify_signature(
        &sig_oid,
        &signer.key_oid,
        signer.curve_oid.as_deref(),
        &signer.public_key,
        tbs,
        basic.signature.as_raw_slice(),
    ) {
        bail!("Response Verify Failure: bad signature ({sig_oid})");
    }
    let data = basic.tbs_response_data;
    match &data.responder_id {
        rasn_ocsp::ResponderId::ByKey(k) if k.as_ref() == signer.key_hash(HashAlg::Sha1) => {}
        rasn_ocsp::ResponderId::ByName(_) => {}
        _ => bail!("responder id does not name the signer"),
    }
    if data.responses.len() != 1 {
        bail!("expected one SingleResponse, got {}", data.responses.len());
    }
    let single = &data.responses[0];
    let (b, n) = rasn::types::IntegerType::to_signed_bytes_be(&single.cert_id.serial_number);
    if Serial::from_content(b.as_ref().get(..n).unwrap_or_default()) != *serial {
        bail!("the answer is for another serial");
    }
    let this_update = single.this_update.timestamp();
    let next_update = single
        .next_update
        .map(|t| t.timestamp())
        .ok_or_else(|| anyhow!("no nextUpdate"))?;
    if this_update > now + SKEW || next_update < now - SKEW {
        bail!("Status times invalid: thisUpdate {this_update}, nextUpdate {next_update}");
    }
    let mut revoked_at = None;
    let mut reason = None;
    let status = match &single.cert_status {
        rasn_ocsp::CertStatus::Good => "good".to_string(),
        rasn_ocsp::CertStatus::Unknown(_) => "unknown".to_string(),
        rasn_ocsp::CertStatus::Revoked(info) => {
            revoked_at = Some(info.revocation_time.timestamp());
            lines.push(format!(
                "Revocation Time: {}",
                show_time(info.revocation_time.timestamp())
            ));
            if let Some(r) = info.revocation_reason {
                lines.push(format!("Reason: {r:?}"));
                reason = Some(format!("{r:?}"));
            }
            "revoked".to_string()
        }
    };
    lines.insert(0, format!("{}: {status}", serial));
    lines.push(format!("This Update: {}", show_time(this_update)));
    lines.push(format!("Next Update: {}", show_time(next_update)));
    lines.push("Response verify OK".to_string());
    Ok(Verdict {
        lines,
        status,
        revoked_at,
        reason,
        this_update,
    })
}

/// Runs the query; returns the verdict to print.
pub async fn query(opts: &QueryOptions) -> anyhow::Result<Verdict> {
    let issuer_bytes = std::fs::read(&opts.issuer)
        .with_context(|| format!("reading {}", opts.issuer.display()))?;
    let issuer =
        Cert::parse(&issuer_bytes).map_err(|e| anyhow!("{}: {e}", opts.issuer.display()))?;
    let serial = match (&opts.cert, &opts.serial) {
        (Some(path), None) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            Serial::from_content(
                &Cert::parse(&bytes)
                    .map_err(|e| anyhow!("{}: {e}", path.display()))?
                    .serial,
            )
        }
        (None, Some(hex)) => Serial::from_hex(hex).map_err(|e| anyhow!("--serial: {e}"))?,
        _ => bail!("give exactly one of --cert and --serial"),
    };
    let alg = if opts.sha256 {
        HashAlg::Sha256
    } else {
        HashAlg::Sha1
    };
    let der = build_request(&issuer, &serial, alg);
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = if opts.get {
        let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
        let escaped = b64
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D");
        hyper::Request::get(format!("{}/{}", opts.url.trim_end_matches('/'), escaped))
            .body(Full::new(Bytes::new()))?
    } else {
        hyper::Request::post(&opts.url)
            .header("content-type", "application/ocsp-request")
            .body(Full::new(Bytes::from(der)))?
    };
    let response =
        tokio::time::timeout(std::time::Duration::from_secs(30), client.request(request))
            .await
            .map_err(|_| anyhow!("{}: no answer within 30s", opts.url))?
            .with_context(|| format!("querying {}", opts.url))?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        bail!("HTTP {status} from {}", opts.url);
    }
    verify(
        &body,
        &issuer,
        &serial,
        crate::clock::Clock::now(&crate::clock::SystemClock),
    )
}
