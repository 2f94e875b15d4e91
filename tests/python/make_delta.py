"""Writes a delta CRL with python `cryptography`, as ADCS publishes them
beside a base: DeltaCRLIndicator(BASE), CRLNumber(NUMBER), signed by the CA.

usage: make_delta.py CA.pem CA.key BASE NUMBER OUT.der [SERIALHEX=REASON ...]
REASON is an RFC 5280 name (keyCompromise, superseded, removeFromCRL, ...).
"""
import datetime
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

REASONS = {
    "unspecified": x509.ReasonFlags.unspecified,
    "keyCompromise": x509.ReasonFlags.key_compromise,
    "cACompromise": x509.ReasonFlags.ca_compromise,
    "affiliationChanged": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessationOfOperation": x509.ReasonFlags.cessation_of_operation,
    "certificateHold": x509.ReasonFlags.certificate_hold,
    "removeFromCRL": x509.ReasonFlags.remove_from_crl,
}


def main():
    ca = x509.load_pem_x509_certificate(open(sys.argv[1], "rb").read())
    key = serialization.load_pem_private_key(open(sys.argv[2], "rb").read(), None)
    base, number, out = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    b = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.subject)
        .last_update(now - datetime.timedelta(minutes=1))
        .next_update(now + datetime.timedelta(days=1))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(x509.DeltaCRLIndicator(base), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.public_key()), critical=False
        )
    )
    for arg in sys.argv[6:]:
        serial, reason = arg.split("=")
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(int(serial, 16))
            .revocation_date(now - datetime.timedelta(minutes=1))
            .add_extension(x509.CRLReason(REASONS[reason]), critical=False)
            .build()
        )
        b = b.add_revoked_certificate(entry)
    crl = b.sign(key, hashes.SHA256())
    open(out, "wb").write(crl.public_bytes(serialization.Encoding.DER))


if __name__ == "__main__":
    main()
