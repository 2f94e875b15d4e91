"""moto's S3/CloudFront/SQS/EventBridge/Private CA mock on 127.0.0.1, on a
port the OS picks.

Prints the port on the first line of stdout, then serves until SIGTERM or
SIGINT. (`moto_server -p PORT` needs the port chosen beforehand, and a port
picked free may be taken by another process before moto binds it.)

Commands on stdin, one per line, each answered with one line on stdout
("ok ..." or "error ..."), for what moto's APIs cannot do:
- `responder CA_ARN DIR`: a delegated OCSP responder for a mock Private CA
  (Private CA's OCSPSigningCertificate template is not mocked): a P-256 key
  and a certificate with id-kp-OCSPSigning signed with the mock CA's own
  key, written to DIR/responder.pem and DIR/responder.key.
- `crl CA_ARN FILE NUMBER [SERIAL_HEX=REASON ...]`: a CRL signed with the
  mock CA's key, as Private CA would write it to S3, in DER.
"""
import datetime
import signal
import sys
import threading

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from moto.server import ThreadedMotoServer

REASONS = {
    "KEY_COMPROMISE": x509.ReasonFlags.key_compromise,
    "SUPERSEDED": x509.ReasonFlags.superseded,
    "UNSPECIFIED": x509.ReasonFlags.unspecified,
    "CESSATION_OF_OPERATION": x509.ReasonFlags.cessation_of_operation,
    "AFFILIATION_CHANGED": x509.ReasonFlags.affiliation_changed,
}


def mock_ca(arn):
    from moto.acmpca.models import acmpca_backends

    parts = arn.split(":")
    return acmpca_backends[parts[4]][parts[3]].certificate_authorities[arn]


def responder(arn, out):
    ca = mock_ca(arn)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "revocd OCSP responder")]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), False)
        .add_extension(x509.OCSPNoCheck(), False)
        .sign(ca.key, hashes.SHA256())
    )
    with open(f"{out}/responder.pem", "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(f"{out}/responder.key", "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )


def crl(arn, path, number, entries):
    ca = mock_ca(arn)
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    b = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now)
        .next_update(now + datetime.timedelta(days=1))
        .add_extension(x509.CRLNumber(int(number)), False)
    )
    for e in entries:
        serial, reason = e.split("=")
        r = (
            x509.RevokedCertificateBuilder()
            .serial_number(int(serial, 16))
            .revocation_date(now)
            .add_extension(x509.CRLReason(REASONS[reason]), False)
            .build()
        )
        b = b.add_revoked_certificate(r)
    der = b.sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    with open(path + ".tmp", "wb") as f:
        f.write(der)
    import os

    os.replace(path + ".tmp", path)


def commands():
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        try:
            if words[0] == "responder":
                responder(words[1], words[2])
            elif words[0] == "crl":
                crl(words[1], words[2], words[3], words[4:])
            else:
                raise ValueError(f"unknown command {words[0]}")
            print("ok", flush=True)
        except Exception as e:  # reported to the test, which fails
            print(f"error {type(e).__name__}: {e}", flush=True)


server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
threading.Thread(target=commands, daemon=True).start()
signal.sigwait({signal.SIGTERM, signal.SIGINT})
server.stop()
sys.exit(0)
