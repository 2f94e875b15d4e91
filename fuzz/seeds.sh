#!/usr/bin/env bash
# Regenerates the seed corpora in fuzz/corpus from a real demo run:
# openssl requests, GET paths, configs, a ledger segment, admin bodies, a CRL.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet
bin=target/debug/revocd
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin" init --dir "$work" >/dev/null
c=fuzz/corpus
cd "$work"
openssl ocsp -issuer ca.pem -cert leaf-good.pem -no_nonce -reqout req-sha1.der >/dev/null
openssl ocsp -issuer ca.pem -sha256 -cert leaf-revoked.pem -reqout req-sha256-nonce.der >/dev/null
openssl ocsp -issuer ca.pem -cert leaf-good.pem -cert leaf-revoked.pem -no_nonce -reqout req-two.der >/dev/null
cd - >/dev/null
cp "$work"/req-*.der "$c/ocsp_request/"
for f in "$work"/req-*.der; do
  b=$(base64 -w0 "$f")
  printf '%s' "$b" >"$c/get_path/$(basename "$f" .der).b64"
  printf '//%s' "$b" | sed 's#/#%2F#g' >"$c/get_path/$(basename "$f" .der).escaped"
done
cp config/revocd.toml "$c/config/reference.toml"
cp "$work/revocd.toml" "$c/config/demo.toml"
"$bin" serve --config "$work/revocd.toml" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 >"$work/out" 2>/dev/null &
pid=$!
for _ in $(seq 100); do grep -q "admin listener" "$work/out" 2>/dev/null && break; sleep 0.1; done
public=$(sed -n 's/^revocd: public listener on //p' "$work/out")
until curl -sf "$public/crl/demo.crl" -o "$c/crl/demo.crl"; do sleep 0.2; done
kill $pid
cp "$work"/data/ledger/log-*.rvl "$c/ledger_record/segment.rvl"
tail -c +9 "$work"/data/ledger/log-*.rvl >"$c/ledger_record/records.bin"
cp "$work/index.txt" "$c/ledger_record/index.txt"
python3 fuzz/batch_seed.py "$c/ledger_record/batch.rvb"
printf '{"serial": "1A2B", "reason": "keyCompromise", "revoked_at": "2026-01-01T00:00:00Z", "invalidity_date": "2025-12-31T00:00:00Z"}' >"$c/admin_json/full.json"
printf '{"serial": "01"}' >"$c/admin_json/minimal.json"
printf '{"serial": "ff", "reason": "removeFromCRL"}' >"$c/admin_json/release.json"
ca="arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/11223344-1234-1122-2233-112233445566"
printf '%s' "{\"version\":\"0\",\"id\":\"e1\",\"detail-type\":\"AWS API Call via CloudTrail\",\"source\":\"aws.acm-pca\",\"account\":\"111122223333\",\"time\":\"2026-12-04T10:00:05Z\",\"region\":\"us-east-1\",\"resources\":[],\"detail\":{\"eventTime\":\"2026-12-04T10:00:03Z\",\"eventSource\":\"acm-pca.amazonaws.com\",\"eventName\":\"RevokeCertificate\",\"requestParameters\":{\"certificateAuthorityArn\":\"$ca\",\"certificateSerial\":\"e8:cb:d2:be\",\"revocationReason\":\"KEY_COMPROMISE\"}}}" >"$c/aws_event/revoke-call.json"
for t in "Certificate Issuance" "Certificate Revocation" "CRL Generation"; do
  n=$(echo "$t" | tr ' A-Z' '-a-z')
  printf '%s' "{\"version\":\"0\",\"id\":\"e2\",\"detail-type\":\"ACM Private CA $t\",\"source\":\"aws.acm-pca\",\"time\":\"2026-12-04T10:00:07Z\",\"resources\":[\"$ca\",\"$ca/certificate/6707447683a9b7f4055627ffd55cebcc\"],\"detail\":{\"result\":\"success\"}}" >"$c/aws_event/$n.json"
done
echo "seeds written to $c"
