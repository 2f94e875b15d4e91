//! The ledger's on-disk format. Pure: bytes in, values out.
//!
//! Segment file `log-<first seq, 20 digits>.rvl`:
//!   header  "RVCDLOG" 0x01
//!   record* len:u32le crc32:u32le payload[len]
//!   payload version:u8 (2) seq:u64le kind:u8 issuer_len:u8 issuer
//!           serial_len:u8 serial (INTEGER content octets) body
//!           author_len:u8 author (UTF-8: who made the change)
//!     kind 1 register: not_after:i64le
//!     kind 2 revoke:   at:i64le reason:u8 flags:u8 [invalidity:i64le if flags & 1]
//!     kind 3 release:  (empty)
//!   Version 1 records (written before authors were recorded) have no
//!   author field; they are read with an empty author ("unattributed").
//!
//! Snapshot file `snap-<seq, 20 digits>.rvs`:
//!   "RVCDSNP" 0x02 seq:u64le n_authors:u32le (author_len:u8 author)*
//!   n_issuers:u32le
//!   per issuer: id_len:u8 id n_entries:u64le
//!     per entry: serial_len:u8 serial flags:u8 (1 not_after, 2 revoked,
//!       4 invalidity, 8 author) [not_after:i64le] [at:i64le reason:u8]
//!       [invalidity:i64le] [author:u32le, an index into the authors]
//!   sha256 of everything before it (32 bytes)
//!   ("RVCDSNP" 0x01, the version before authors, has no author table and
//!   no flag 8; it is still read.)
//!
//! Fleet batch object `ledger/<seq, 20 digits>` (one per group commit):
//!   "RVCDBAT" 0x01 seq:u64le written_at:i64le writer_len:u8 writer
//!   n_records:u32le, the records as in a segment (every one carries seq)
//!   sha256 of everything before it (32 bytes)

use crate::state::{Change, Entry, Reason, Serial, Status};

pub const LOG_MAGIC: &[u8; 8] = b"RVCDLOG\x01";
pub const SNAP_MAGIC: &[u8; 8] = b"RVCDSNP\x02";
/// Snapshots written before authors were recorded.
pub const SNAP_MAGIC_V1: &[u8; 8] = b"RVCDSNP\x01";
pub const BATCH_MAGIC: &[u8; 8] = b"RVCDBAT\x01";
const VERSION: u8 = 2;
/// Records written before authors were recorded.
const VERSION_1: u8 = 1;
/// No record is anywhere near this; a larger length means a torn write.
const MAX_RECORD: u32 = 4096;

/// Whether `b` is a record version this build reads (the first payload
/// byte).
pub fn is_record_version(b: u8) -> bool {
    b == VERSION || b == VERSION_1
}

/// One durable change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub issuer: String,
    pub change: Change,
    /// Who made it (an operator, or a source such as `index`); empty in a
    /// version 1 record.
    pub author: String,
}

/// Why reading a record stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record is cut short")]
    Truncated,
    #[error("record checksum does not match")]
    Checksum,
    #[error("record is malformed: {0}")]
    Malformed(&'static str),
}

pub fn encode(rec: &Record, out: &mut Vec<u8>) {
    let mut p = Vec::with_capacity(64);
    p.push(VERSION);
    p.extend_from_slice(&rec.seq.to_le_bytes());
    let (kind, serial) = match &rec.change {
        Change::Register { serial, .. } => (1u8, serial),
        Change::Revoke { serial, .. } => (2, serial),
        Change::Release { serial } => (3, serial),
    };
    p.push(kind);
    let id = rec.issuer.as_bytes();
    p.push(id.len().min(255) as u8);
    p.extend_from_slice(&id[..id.len().min(255)]);
    let s = serial.content();
    p.push(s.len().min(255) as u8);
    p.extend_from_slice(&s[..s.len().min(255)]);
    match &rec.change {
        Change::Register { not_after, .. } => p.extend_from_slice(&not_after.to_le_bytes()),
        Change::Revoke {
            at,
            reason,
            invalidity_date,
            ..
        } => {
            p.extend_from_slice(&at.to_le_bytes());
            p.push(reason.code());
            match invalidity_date {
                Some(t) => {
                    p.push(1);
                    p.extend_from_slice(&t.to_le_bytes());
                }
                None => p.push(0),
            }
        }
        Change::Release { .. } => {}
    }
    let author = crate::state::truncate_utf8(&rec.author, 255).as_bytes();
    p.push(author.len() as u8);
    p.extend_from_slice(author);
    out.extend_from_slice(&(p.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&p).to_le_bytes());
    out.extend_from_slice(&p);
}

/// Decodes one record from the front of `input`; returns it and its length.
pub fn decode(input: &[u8]) -> Result<(Record, usize), RecordError> {
    if input.len() < 8 {
        return Err(RecordError::Truncated);
    }
    let len = u32::from_le_bytes([input[0], input[1], input[2], input[3]]);
    let crc = u32::from_le_bytes([input[4], input[5], input[6], input[7]]);
    if len > MAX_RECORD {
        return Err(RecordError::Malformed("length out of range"));
    }
    let end = 8 + len as usize;
    let payload = input.get(8..end).ok_or(RecordError::Truncated)?;
    if crc32fast::hash(payload) != crc {
        return Err(RecordError::Checksum);
    }
    let mut r = Reader(payload);
    let version = r.u8()?;
    if version != VERSION && version != VERSION_1 {
        return Err(RecordError::Malformed("unknown record version"));
    }
    let seq = r.u64()?;
    let kind = r.u8()?;
    let id_len = r.u8()? as usize;
    let issuer = String::from_utf8(r.take(id_len)?.to_vec())
        .map_err(|_| RecordError::Malformed("issuer id is not UTF-8"))?;
    let serial_len = r.u8()? as usize;
    let serial = Serial::from_content(r.take(serial_len)?);
    let change = match kind {
        1 => Change::Register {
            serial,
            not_after: r.i64()?,
        },
        2 => {
            let at = r.i64()?;
            let reason = reason_from_code(r.u8()?)?;
            let invalidity_date = match r.u8()? {
                0 => None,
                _ => Some(r.i64()?),
            };
            Change::Revoke {
                serial,
                at,
                reason,
                invalidity_date,
            }
        }
        3 => Change::Release { serial },
        _ => return Err(RecordError::Malformed("unknown change kind")),
    };
    let author = if version == VERSION {
        let n = r.u8()? as usize;
        String::from_utf8(r.take(n)?.to_vec())
            .map_err(|_| RecordError::Malformed("author is not UTF-8"))?
    } else {
        String::new()
    };
    if !r.0.is_empty() {
        return Err(RecordError::Malformed("trailing bytes in record"));
    }
    Ok((
        Record {
            seq,
            issuer,
            change,
            author,
        },
        end,
    ))
}

fn reason_from_code(code: u8) -> Result<Reason, RecordError> {
    Reason::ALL
        .into_iter()
        .find(|r| r.code() == code)
        .ok_or(RecordError::Malformed("unknown reason code"))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.0.len() < n {
            return Err(RecordError::Malformed("field runs past the record"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, RecordError> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> Result<u64, RecordError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn i64(&mut self) -> Result<i64, RecordError> {
        self.u64().map(|v| v as i64)
    }
    fn u32(&mut self) -> Result<u32, RecordError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// One issuer's entries in a snapshot.
pub type IssuerEntries = (String, Vec<(Serial, Entry)>);

pub fn encode_snapshot(seq: u64, issuers: &[IssuerEntries]) -> Vec<u8> {
    use crate::state::Author;
    // The authors the entries name, each once, in a table up front.
    let mut table: Vec<Author> = Vec::new();
    let mut index: std::collections::HashMap<Author, u32> = std::collections::HashMap::new();
    for (_, entries) in issuers {
        for (_, e) in entries {
            if e.author != Author::UNRECORDED && !index.contains_key(&e.author) {
                index.insert(e.author, table.len() as u32);
                table.push(e.author);
            }
        }
    }
    let mut out = Vec::new();
    out.extend_from_slice(SNAP_MAGIC);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&(table.len() as u32).to_le_bytes());
    for a in &table {
        let name = a.name();
        let b = crate::state::truncate_utf8(&name, 255).as_bytes();
        out.push(b.len() as u8);
        out.extend_from_slice(b);
    }
    out.extend_from_slice(&(issuers.len() as u32).to_le_bytes());
    for (id, entries) in issuers {
        let idb = &id.as_bytes()[..id.len().min(255)];
        out.push(idb.len() as u8);
        out.extend_from_slice(idb);
        out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
        for (serial, e) in entries {
            let s = &serial.content()[..serial.content().len().min(255)];
            out.push(s.len() as u8);
            out.extend_from_slice(s);
            let (revoked, invalidity) = match &e.status {
                Status::Good => (None, None),
                Status::Revoked {
                    at,
                    reason,
                    invalidity_date,
                } => (Some((*at, *reason)), *invalidity_date),
            };
            let author = index.get(&e.author);
            let flags = u8::from(e.not_after.is_some())
                | (u8::from(revoked.is_some()) << 1)
                | (u8::from(invalidity.is_some()) << 2)
                | (u8::from(author.is_some()) << 3);
            out.push(flags);
            if let Some(t) = e.not_after {
                out.extend_from_slice(&t.to_le_bytes());
            }
            if let Some((at, reason)) = revoked {
                out.extend_from_slice(&at.to_le_bytes());
                out.push(reason.code());
            }
            if let Some(t) = invalidity {
                out.extend_from_slice(&t.to_le_bytes());
            }
            if let Some(i) = author {
                out.extend_from_slice(&i.to_le_bytes());
            }
        }
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, &out);
    out.extend_from_slice(digest.as_ref());
    out
}

/// Decodes a snapshot: its sequence number and entries (revision 0).
pub fn decode_snapshot(bytes: &[u8]) -> Result<(u64, Vec<IssuerEntries>), RecordError> {
    use crate::state::Author;
    let v1 = bytes.starts_with(SNAP_MAGIC_V1);
    if bytes.len() < SNAP_MAGIC.len() + 32 || !(v1 || bytes.starts_with(SNAP_MAGIC)) {
        return Err(RecordError::Malformed(
            "not a revocd snapshot (version 1 or 2)",
        ));
    }
    let (body, digest) = bytes.split_at(bytes.len() - 32);
    if ring::digest::digest(&ring::digest::SHA256, body).as_ref() != digest {
        return Err(RecordError::Checksum);
    }
    let mut r = Reader(&body[SNAP_MAGIC.len()..]);
    let seq = r.u64()?;
    let mut authors = Vec::new();
    if !v1 {
        let n = r.u32()?;
        for _ in 0..n {
            let len = r.u8()? as usize;
            let name = std::str::from_utf8(r.take(len)?)
                .map_err(|_| RecordError::Malformed("author is not UTF-8"))?;
            authors.push(Author::named(name));
        }
    }
    let n_issuers = r.u32()?;
    let mut issuers = Vec::new();
    for _ in 0..n_issuers {
        let id_len = r.u8()? as usize;
        let id = String::from_utf8(r.take(id_len)?.to_vec())
            .map_err(|_| RecordError::Malformed("issuer id is not UTF-8"))?;
        let n = r.u64()?;
        let mut entries = Vec::with_capacity(n.min(1 << 24) as usize);
        for _ in 0..n {
            let sl = r.u8()? as usize;
            let serial = Serial::from_content(r.take(sl)?);
            let flags = r.u8()?;
            let not_after = if flags & 1 != 0 { Some(r.i64()?) } else { None };
            let status = if flags & 2 != 0 {
                let at = r.i64()?;
                let reason = reason_from_code(r.u8()?)?;
                let invalidity_date = if flags & 4 != 0 { Some(r.i64()?) } else { None };
                Status::Revoked {
                    at,
                    reason,
                    invalidity_date,
                }
            } else {
                Status::Good
            };
            let author = if flags & 8 != 0 {
                *authors
                    .get(r.u32()? as usize)
                    .ok_or(RecordError::Malformed("author index out of range"))?
            } else {
                Author::UNRECORDED
            };
            entries.push((
                serial,
                Entry {
                    not_after,
                    status,
                    revision: 0,
                    author,
                },
            ));
        }
        issuers.push((id, entries));
    }
    Ok((seq, issuers))
}

/// One fleet ledger object: a group commit written by one replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub seq: u64,
    /// Unix time the writer created it (for the replica lag metric).
    pub written_at: i64,
    /// The replica that wrote it.
    pub writer: String,
    pub records: Vec<Record>,
}

pub fn encode_batch(b: &Batch) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + b.records.len() * 56);
    out.extend_from_slice(BATCH_MAGIC);
    out.extend_from_slice(&b.seq.to_le_bytes());
    out.extend_from_slice(&b.written_at.to_le_bytes());
    let w = &b.writer.as_bytes()[..b.writer.len().min(255)];
    out.push(w.len() as u8);
    out.extend_from_slice(w);
    out.extend_from_slice(&(b.records.len() as u32).to_le_bytes());
    for r in &b.records {
        encode(r, &mut out);
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, &out);
    out.extend_from_slice(digest.as_ref());
    out
}

/// Decodes a batch object; every record must carry the batch's sequence.
pub fn decode_batch(bytes: &[u8]) -> Result<Batch, RecordError> {
    if bytes.len() < BATCH_MAGIC.len() + 32 || !bytes.starts_with(BATCH_MAGIC) {
        return Err(RecordError::Malformed("not a version 1 ledger batch"));
    }
    let (body, digest) = bytes.split_at(bytes.len() - 32);
    if ring::digest::digest(&ring::digest::SHA256, body).as_ref() != digest {
        return Err(RecordError::Checksum);
    }
    let mut r = Reader(&body[BATCH_MAGIC.len()..]);
    let seq = r.u64()?;
    let written_at = r.i64()?;
    let wl = r.u8()? as usize;
    let writer = String::from_utf8(r.take(wl)?.to_vec())
        .map_err(|_| RecordError::Malformed("writer is not UTF-8"))?;
    let n = r.u32()?;
    let mut rest = r.0;
    let mut records = Vec::with_capacity(n.min(4096) as usize);
    for _ in 0..n {
        let (rec, used) = decode(rest)?;
        if rec.seq != seq {
            return Err(RecordError::Malformed(
                "record sequence differs from its batch",
            ));
        }
        records.push(rec);
        rest = &rest[used..];
    }
    if !rest.is_empty() {
        return Err(RecordError::Malformed("bytes after the last record"));
    }
    Ok(Batch {
        seq,
        written_at,
        writer,
        records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(h: &str) -> Serial {
        Serial::from_hex(h).expect("hex")
    }

    fn records() -> Vec<Record> {
        vec![
            Record {
                seq: 1,
                issuer: "demo".into(),
                author: "alice".into(),
                change: Change::Register {
                    serial: s("1001"),
                    not_after: 2_000_000_000,
                },
            },
            Record {
                seq: 2,
                issuer: "demo".into(),
                author: "upstream:s3://crls/ca.crl".into(),
                change: Change::Revoke {
                    serial: s("1001"),
                    at: 1_700_000_000,
                    reason: Reason::KeyCompromise,
                    invalidity_date: Some(1_699_000_000),
                },
            },
            Record {
                seq: 3,
                issuer: "other".into(),
                author: String::new(),
                change: Change::Release { serial: s("ff") },
            },
        ]
    }

    #[test]
    fn records_round_trip() {
        let mut buf = Vec::new();
        for r in records() {
            encode(&r, &mut buf);
        }
        let mut at = 0;
        for want in records() {
            let (got, n) = decode(&buf[at..]).expect("decode");
            assert_eq!(got, want);
            at += n;
        }
        assert_eq!(at, buf.len());
    }

    #[test]
    fn every_cut_of_a_record_is_an_error_not_a_panic() {
        let mut buf = Vec::new();
        encode(&records()[1], &mut buf);
        for cut in 0..buf.len() {
            assert!(decode(&buf[..cut]).is_err(), "cut {cut}");
        }
        let mut flipped = buf.clone();
        flipped[12] ^= 1;
        assert_eq!(decode(&flipped).map(|_| ()), Err(RecordError::Checksum));
    }

    #[test]
    fn snapshots_round_trip_and_detect_corruption() {
        let entries = vec![(
            "demo".to_string(),
            vec![
                (
                    s("01"),
                    Entry {
                        not_after: Some(5),
                        status: Status::Good,
                        revision: 0,
                        author: crate::state::Author::named("alice"),
                    },
                ),
                (
                    s("02"),
                    Entry {
                        not_after: None,
                        status: Status::Revoked {
                            at: 7,
                            reason: Reason::CertificateHold,
                            invalidity_date: Some(3),
                        },
                        revision: 0,
                        author: crate::state::Author::UNRECORDED,
                    },
                ),
            ],
        )];
        let bytes = encode_snapshot(42, &entries);
        let (seq, back) = decode_snapshot(&bytes).expect("decode");
        assert_eq!(seq, 42);
        assert_eq!(back, entries);
        let mut bad = bytes.clone();
        bad[20] ^= 0x40;
        assert!(decode_snapshot(&bad).is_err());
    }

    #[test]
    fn batches_round_trip_and_reject_corruption_and_foreign_sequences() {
        let records: Vec<Record> = records()
            .into_iter()
            .map(|r| Record { seq: 7, ..r })
            .collect();
        let batch = Batch {
            seq: 7,
            written_at: 1_800_000_000,
            writer: "replica-a".into(),
            records,
        };
        let bytes = encode_batch(&batch);
        assert_eq!(decode_batch(&bytes), Ok(batch.clone()));
        for cut in 0..bytes.len() {
            assert!(decode_batch(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[20] ^= 1;
        assert_eq!(decode_batch(&flipped), Err(RecordError::Checksum));
        // A record numbered differently from its batch is refused even with
        // a valid digest.
        let mut odd = batch;
        odd.records[0].seq = 8;
        assert!(matches!(
            decode_batch(&encode_batch(&odd)),
            Err(RecordError::Malformed(_))
        ));
    }

    #[test]
    fn the_checked_in_batch_seed_decodes() {
        // fuzz/batch_seed.py writes the format from its description, not
        // from this code: the two must agree.
        let bytes = include_bytes!("../../fuzz/corpus/ledger_record/batch.rvb");
        let b = decode_batch(bytes).expect("seed decodes");
        assert_eq!(
            (b.seq, b.writer.as_str(), b.records.len()),
            (7, "replica-a", 2)
        );
        assert!(matches!(
            b.records[1].change,
            Change::Revoke {
                reason: Reason::KeyCompromise,
                ..
            }
        ));
    }
}
