"""Loads an OCSP response with python `cryptography` and checks it.

usage: check_ocsp.py RESPONSE.der ISSUER.pem EXPECT [EXPECT ...]
EXPECT is SERIALHEX=good|revoked|unknown (one per certificate asked, in order),
or SERIALHEX=revoked:REASON. Prints one OK line per check; exits 1 on failure.
"""
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import ocsp


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def verify(public_key, signature, data, hash_alg):
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        public_key.verify(signature, data, ec.ECDSA(hash_alg))
    elif isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(signature, data, padding.PKCS1v15(), hash_alg)
    elif isinstance(public_key, ed25519.Ed25519PublicKey):
        public_key.verify(signature, data)
    elif isinstance(
        public_key, (mldsa.MLDSA44PublicKey, mldsa.MLDSA65PublicKey, mldsa.MLDSA87PublicKey)
    ):
        # RFC 9881: pure ML-DSA, empty context.
        public_key.verify(signature, data)
    else:
        fail(f"unsupported key {type(public_key)}")


def main():
    der = open(sys.argv[1], "rb").read()
    issuer = x509.load_pem_x509_certificate(open(sys.argv[2], "rb").read())
    expects = sys.argv[3:]
    resp = ocsp.load_der_ocsp_response(der)
    if resp.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        fail(f"status {resp.response_status}")
    print("OK loaded, successful")
    singles = list(resp.responses)
    if len(singles) != len(expects):
        fail(f"{len(singles)} SingleResponses for {len(expects)} certificates")
    print(f"OK {len(singles)} SingleResponse(s)")
    if resp.responder_key_hash is None or resp.responder_name is not None:
        fail("responder id is not byKey")
    signer = resp.certificates[0] if resp.certificates else issuer
    if len(resp.certificates) > 1:
        fail("more than one certificate in certs")
    spki_bits = signer.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    # ResponderID byKey is SHA-1 over the signer's SPKI BIT STRING contents.
    digest = hashes.Hash(hashes.SHA1())

    # Extract the BIT STRING contents from the SPKI DER (last TLV, skip unused-bits octet).
    def bit_string_contents(spki):
        i = 0
        assert spki[i] == 0x30
        i += 1
        if spki[i] & 0x80:
            i += 1 + (spki[i] & 0x7F)
        else:
            i += 1
        # skip AlgorithmIdentifier
        assert spki[i] == 0x30
        i += 1
        if spki[i] & 0x80:
            n = spki[i] & 0x7F
            ln = int.from_bytes(spki[i + 1 : i + 1 + n], "big")
            i += 1 + n + ln
        else:
            i += 1 + spki[i]
        assert spki[i] == 0x03
        i += 1
        if spki[i] & 0x80:
            i += 1 + (spki[i] & 0x7F)
        else:
            i += 1
        return spki[i + 1 :]

    digest.update(bit_string_contents(spki_bits))
    if digest.finalize() != resp.responder_key_hash:
        fail("responder key hash is not SHA-1 of the signer's key")
    print("OK responder id byKey names the signer")
    verify(signer.public_key(), resp.signature, resp.tbs_response_bytes, resp.signature_hash_algorithm)
    print("OK signature verifies")
    if resp.certificates:
        cert = resp.certificates[0]
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if x509.oid.ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
            fail("delegated responder lacks OCSPSigning")
        verify(issuer.public_key(), cert.signature, cert.tbs_certificate_bytes, cert.signature_hash_algorithm)
        print("OK delegated responder certificate issued by the CA")
    if resp.produced_at_utc.microsecond != 0:
        fail("fractional producedAt")
    for single, expect in zip(singles, expects):
        serial_hex, want = expect.split("=")
        want_status, _, want_reason = want.partition(":")
        if single.serial_number != int(serial_hex, 16):
            fail(f"serial {single.serial_number:x} != {serial_hex}")
        if single.this_update_utc.microsecond or single.next_update_utc.microsecond:
            fail("fractional seconds")
        if single.next_update_utc is None:
            fail("no nextUpdate")
        got = single.certificate_status.name.lower()
        if got != want_status:
            fail(f"{serial_hex}: status {got}, expected {want_status}")
        if got == "revoked" and want_reason:
            reason = single.revocation_reason.name if single.revocation_reason else "unspecified"
            if reason.lower().replace("_", "") != want_reason.lower():
                fail(f"{serial_hex}: reason {reason}, expected {want_reason}")
            if single.revocation_time_utc.microsecond != 0:
                fail("fractional revocation time")
        life = (single.next_update_utc - single.this_update_utc).total_seconds()
        print(f"OK {serial_hex} {got} validity={int(life)}s")


if __name__ == "__main__":
    main()
