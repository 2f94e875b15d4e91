"""Loads a DER CRL with python `cryptography` and checks it against the CA.

usage: check_crl.py CRL.der CA.pem N_ENTRIES [SERIALHEX=REASON ...]
"""
import sys

from cryptography import x509


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def main():
    crl = x509.load_der_x509_crl(open(sys.argv[1], "rb").read())
    ca = x509.load_pem_x509_certificate(open(sys.argv[2], "rb").read())
    want = int(sys.argv[3])
    print("OK loaded")
    if not crl.is_signature_valid(ca.public_key()):
        fail("signature does not verify with the CA key")
    print("OK signature verifies")
    if crl.issuer != ca.subject:
        fail("issuer differs from the CA subject")
    if len(crl) != want:
        fail(f"{len(crl)} entries, expected {want}")
    print(f"OK {len(crl)} entries")
    number = crl.extensions.get_extension_for_class(x509.CRLNumber)
    if number.critical:
        fail("CRLNumber is critical")
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    if aki.key_identifier != ski.digest:
        fail("AKI is not the CA's SKI")
    print(f"OK crl number {number.value.crl_number}, AKI = CA SKI")
    if crl.next_update_utc is None:
        fail("no nextUpdate")
    if crl.last_update_utc.microsecond:
        fail("fractional thisUpdate")
    for expect in sys.argv[4:]:
        serial_hex, reason = expect.split("=")
        entry = crl.get_revoked_certificate_by_serial_number(int(serial_hex, 16))
        if entry is None:
            fail(f"{serial_hex} not on the CRL")
        try:
            got = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.name
        except x509.ExtensionNotFound:
            got = "unspecified"
        if got.lower().replace("_", "") != reason.lower():
            fail(f"{serial_hex}: reason {got}, expected {reason}")
        print(f"OK {serial_hex} {got}")


if __name__ == "__main__":
    main()
