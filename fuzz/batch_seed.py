#!/usr/bin/env python3
"""Writes a version 1 fleet ledger batch (see src/ledger/record.rs) to argv[1]:
batch 7 by "replica-a" with a registration and a keyCompromise revocation."""
import hashlib
import struct
import sys
import zlib


def record(seq, kind, serial, body):
    p = bytes([1]) + struct.pack("<Q", seq) + bytes([kind])
    p += bytes([4]) + b"demo" + bytes([len(serial)]) + serial + body
    return struct.pack("<II", len(p), zlib.crc32(p)) + p


seq = 7
records = record(seq, 1, b"\x10\x01", struct.pack("<q", 2_000_000_000))
records += record(seq, 2, b"\x10\x01", struct.pack("<q", 1_800_000_000) + bytes([1, 0]))
body = b"RVCDBAT\x01" + struct.pack("<Qq", seq, 1_800_000_100)
body += bytes([9]) + b"replica-a" + struct.pack("<I", 2) + records
with open(sys.argv[1], "wb") as f:
    f.write(body + hashlib.sha256(body).digest())
