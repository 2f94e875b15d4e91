//! revocd-tablebench: how fast are answers read back from an answer table
//! file, with positioned reads (`pread`, what revocd does) and through a
//! memory map, from the page cache (warm) and from the disk (cold: the page
//! cache dropped before each run, which needs root).
//!
//! `--make N` first writes a table of N records of ANSWER bytes each in the
//! real format (`revocd::ocsp::answers::tablefmt`); otherwise `--file` names a table
//! revocd wrote. Each run reads `--reads` random live records one at a
//! time on one thread and checks each record's checksum, as serving does.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{ensure, Context};
use clap::Parser;
use hdrhistogram::Histogram;

use revocd::clock::Windows;
use revocd::ocsp::answers::tablefmt as fmt;
use revocd::ocsp::response::CertStatus;
use revocd::pki::HashAlg;

#[derive(Debug, Parser)]
struct Args {
    /// The table file (made first with --make).
    #[arg(long)]
    file: PathBuf,
    /// Write a table of this many records first.
    #[arg(long)]
    make: Option<u64>,
    /// Bytes of each record's answer (ETag and DER) when making one.
    #[arg(long, default_value_t = 350)]
    answer: usize,
    /// Random reads per run.
    #[arg(long, default_value_t = 20_000)]
    reads: usize,
    /// Drop the page cache before each run (root).
    #[arg(long)]
    cold: bool,
    /// Advise random access (posix_fadvise / madvise RANDOM: no readahead).
    #[arg(long)]
    random: bool,
}

fn window() -> revocd::clock::Window {
    Windows::new(3600).by_index(1)
}

fn make(args: &Args, n: u64) -> anyhow::Result<()> {
    let mut out = BufWriter::with_capacity(4 << 20, File::create(&args.file)?);
    out.write_all(&fmt::encode_header(window()))?;
    let mut offset = fmt::HEADER_LEN as u64;
    let mut index = Vec::with_capacity(n as usize * fmt::INDEX_ENTRY);
    let mut rec = Vec::with_capacity(1024);
    let answer: Vec<u8> = (0..args.answer).map(|i| (i * 7) as u8).collect();
    for i in 0..n {
        let serial = (0x1000_0000 + i / 2).to_be_bytes();
        let alg = if i % 2 == 0 {
            HashAlg::Sha1
        } else {
            HashAlg::Sha256
        };
        let key = fmt::FileKey::new(0, alg, &serial).context("key")?;
        let claim = fmt::Claim::of(&CertStatus::Good);
        rec.clear();
        let len = fmt::encode_record(
            &mut rec,
            &fmt::RecordHead {
                key,
                claim,
                this_off: 0,
                next_off: 28_800,
            },
            &answer,
        );
        out.write_all(&rec)?;
        fmt::encode_index_entry(
            &mut index,
            &fmt::IndexEntry {
                key,
                claim,
                offset,
                len: len as u32,
            },
        );
        offset += len as u64;
    }
    let signers = fmt::encode_signers(&[fmt::SignerInfo {
        issuer_id: "bench".into(),
        issuer_key_sha1: [1; 20],
        responder_key_sha1: [2; 20],
        certs: vec![0; 500],
    }]);
    let refs = fmt::encode_references(&[]);
    out.write_all(&signers)?;
    out.write_all(&refs)?;
    out.write_all(&index)?;
    out.write_all(&fmt::encode_footer(&fmt::Footer {
        records_end: offset,
        signers_len: signers.len() as u64,
        references_len: refs.len() as u64,
        index_count: n,
        signers_crc: 0,
        references_crc: 0,
        index_crc: 0,
    }))?;
    out.into_inner()?.sync_all()?;
    Ok(())
}

/// (offset, len) of every record the index names.
fn records(file: &File) -> anyhow::Result<Vec<(u64, usize)>> {
    let len = file.metadata()?.len();
    let mut footer = [0u8; fmt::FOOTER_LEN];
    file.read_exact_at(&mut footer, len - fmt::FOOTER_LEN as u64)?;
    let footer = fmt::decode_footer(&footer, len)?;
    let mut index = vec![0u8; footer.index_len() as usize];
    file.read_exact_at(&mut index, footer.index_offset())?;
    index
        .chunks_exact(fmt::INDEX_ENTRY)
        .enumerate()
        .map(|(n, b)| {
            let e = fmt::decode_index_entry(b, n as u64, footer.records_end, usize::MAX)?;
            Ok((e.offset, e.len as usize))
        })
        .collect()
}

fn drop_caches() -> anyhow::Result<()> {
    std::process::Command::new("sync").status()?;
    std::fs::write("/proc/sys/vm/drop_caches", "3").context("dropping the page cache needs root")
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn report(name: &str, h: &Histogram<u64>, secs: f64, reads: usize) {
    let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "  {name:<6} {reads} reads in {secs:.2} s ({:.0}/s): mean {:.1} us  p50 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1} us",
        reads as f64 / secs,
        h.mean() / 1000.0,
        us(0.5),
        us(0.99),
        us(0.999),
        h.max() as f64 / 1000.0
    );
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(n) = args.make {
        let t = Instant::now();
        make(&args, n)?;
        println!(
            "made {} with {n} records in {:.1} s",
            args.file.display(),
            t.elapsed().as_secs_f64()
        );
    }
    let file = File::open(&args.file)?;
    let size = file.metadata()?.len();
    let recs = records(&file)?;
    ensure!(!recs.is_empty(), "no records");
    println!(
        "{}: {:.2} GB, {} records, {} random reads per run{}",
        args.file.display(),
        size as f64 / 1e9,
        recs.len(),
        args.reads,
        if args.cold {
            ", page cache dropped before each run"
        } else {
            ", warm (page cache)"
        }
    );
    if args.random {
        println!("  random access advised (no readahead)");
    }
    #[allow(unsafe_code)]
    // SAFETY: the file is only read while mapped and nobody truncates it
    // during the run (a truncation would fault, not corrupt memory safety
    // of this measurement's own data).
    let map = unsafe { memmap2::Mmap::map(&file)? };
    if args.random {
        rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::Random)?;
        map.advise(memmap2::Advice::Random)?;
    }
    for round in 0..2 {
        for mode in ["pread", "mmap"] {
            if args.cold {
                drop_caches()?;
            }
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (round + 1));
            let mut h = Histogram::<u64>::new(3)?;
            let mut buf = vec![0u8; 4096];
            let mut checked = 0usize;
            let t = Instant::now();
            for _ in 0..args.reads {
                let (offset, len) = recs[rng.below(recs.len())];
                let s = Instant::now();
                let bytes: &[u8] = if mode == "pread" {
                    file.read_exact_at(&mut buf[..len], offset)?;
                    &buf[..len]
                } else {
                    &map[offset as usize..offset as usize + len]
                };
                if fmt::decode_record(bytes, offset).is_ok() {
                    checked += 1;
                }
                h.record(s.elapsed().as_nanos() as u64)?;
            }
            ensure!(
                checked == args.reads,
                "{} records failed their checksum",
                args.reads - checked
            );
            report(mode, &h, t.elapsed().as_secs_f64(), args.reads);
        }
    }
    Ok(())
}
