"""Checks ML-DSA signatures with a second, independent implementation:
dilithium-py (pure Python FIPS 204), not OpenSSL or AWS-LC.

usage: check_mldsa.py PARAMS CA.pem FILE...
PARAMS is 44, 65 or 87. Each FILE is a certificate (.pem), an OCSP
response (.ocsp, DER) or a CRL (.crl, DER); python `cryptography` only
parses them here (the bytes signed, the signature, the signer's raw key),
dilithium-py verifies (and `cryptography` too for certificates and
CRLs; check_ocsp.py does it for answers), with an empty context (RFC 9881). A signature with
one byte flipped must fail. Prints one OK line per file; exits 1 on failure.
"""
import sys

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import ocsp
from dilithium_py.ml_dsa import ML_DSA_44, ML_DSA_65, ML_DSA_87

OIDS = {"44": "2.16.840.1.101.3.4.3.17", "65": "2.16.840.1.101.3.4.3.18", "87": "2.16.840.1.101.3.4.3.19"}
IMPL = {"44": ML_DSA_44, "65": ML_DSA_65, "87": ML_DSA_87}


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def raw(cert):
    return cert.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def check(params, what, key, data, sig, oid):
    if oid.dotted_string != OIDS[params]:
        fail(f"{what}: signature algorithm {oid.dotted_string}, expected ML-DSA-{params}")
    impl = IMPL[params]
    if not impl.verify(key, data, sig, ctx=b""):
        fail(f"{what}: dilithium-py does not verify the signature")
    flipped = bytearray(sig)
    flipped[len(sig) // 2] ^= 1
    if impl.verify(key, data, bytes(flipped), ctx=b""):
        fail(f"{what}: a flipped signature verifies")
    print(f"OK {what}: ML-DSA-{params} signature, {len(sig)} bytes, verified by dilithium-py")


def main():
    params = sys.argv[1]
    ca = x509.load_pem_x509_certificate(open(sys.argv[2], "rb").read())
    for path in sys.argv[3:]:
        data = open(path, "rb").read()
        if path.endswith(".pem"):
            cert = x509.load_pem_x509_certificate(data)
            cert.verify_directly_issued_by(ca)  # python cryptography (OpenSSL)
            check(params, path, raw(ca), cert.tbs_certificate_bytes, cert.signature, cert.signature_algorithm_oid)
        elif path.endswith(".crl"):
            crl = x509.load_der_x509_crl(data)
            if not crl.is_signature_valid(ca.public_key()):
                fail(f"{path}: python cryptography does not verify the CRL")
            check(params, path, raw(ca), crl.tbs_certlist_bytes, crl.signature, crl.signature_algorithm_oid)
        else:
            resp = ocsp.load_der_ocsp_response(data)
            signer = resp.certificates[0] if resp.certificates else ca
            check(params, path, raw(signer), resp.tbs_response_bytes, resp.signature, resp.signature_algorithm_oid)
            if resp.certificates:
                cert = resp.certificates[0]
                check(params, path + " certs[0]", raw(ca), cert.tbs_certificate_bytes, cert.signature, cert.signature_algorithm_oid)


if __name__ == "__main__":
    main()
