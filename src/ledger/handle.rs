//! The handle everything appends through ([`Ledger`]): it queues changes
//! for the writer thread and answers once each is durable and applied,
//! refused, or failed; it reads back what this replica wrote
//! ([`Ledger::own_changes_after`]).

use std::fs;
use std::fs::File;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::oneshot;

use super::file;
use super::fleet;
use super::record::Record;
use super::recover;
use super::types::{
    numbered, Acknowledged, Applier, History, LedgerError, Observer, Options, Outcome, Recovery,
    Request, Stats, Submitted, Written,
};
use super::writer::{self, Backend};
use crate::metrics::Metrics;
use crate::state::Change;

/// The handle the admin API and sources append through.
#[derive(Clone)]
pub struct Ledger {
    tx: std::sync::mpsc::Sender<Request>,
    stats: Arc<Stats>,
    /// Told of every revocation and release this replica records, by the
    /// writer thread, in sequence order (the CDN purger).
    observer: Observer,
    history: Arc<History>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").finish_non_exhaustive()
    }
}

impl Ledger {
    /// Starts the writer thread on the segment `recover` returned.
    pub fn start(
        opts: Options,
        file: File,
        recovery: &Recovery,
        applier: Arc<dyn Applier>,
        metrics: Metrics,
        clock: Arc<dyn crate::clock::Clock>,
    ) -> Self {
        let last_seq = recovery.last_seq;
        let stats = Arc::new(Stats::default());
        stats.last_seq.store(last_seq, Ordering::Release);
        // An existing snapshot counts for the age metric.
        if let Ok(snaps) = numbered(&opts.dir, "snap-", ".rvs") {
            if let Some((_, p)) = snaps.last() {
                let mtime = fs::metadata(p)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0);
                stats.snapshot_at.store(mtime, Ordering::Release);
            }
        }
        let history = History::File(opts.dir.clone());
        let backend = file::FileBackend::new(
            opts,
            file,
            last_seq,
            recovery.snapshot_seq,
            metrics.clone(),
            Arc::clone(&stats),
            clock,
        );
        Self::with_backend(Box::new(backend), applier, metrics, stats, history)
    }

    /// Starts the writer thread on any backend (the file ledger or the fleet
    /// ledger in object storage).
    pub(crate) fn with_backend(
        backend: Box<dyn Backend>,
        applier: Arc<dyn Applier>,
        metrics: Metrics,
        stats: Arc<Stats>,
        history: History,
    ) -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        let observer: Observer = Arc::default();
        let writer = writer::Writer {
            backend,
            applier,
            metrics,
            observer: Arc::clone(&observer),
        };
        std::thread::Builder::new()
            .name("revocd-ledger".into())
            .spawn(move || writer.run(rx))
            .map(|_| ())
            .unwrap_or_else(|e| tracing::error!(error = %e, "cannot start the ledger writer"));
        Self {
            tx,
            stats,
            observer,
            history: Arc::new(history),
        }
    }

    /// Reports every revocation and release recorded from now on to `tx`.
    pub fn observe(&self, tx: tokio::sync::mpsc::UnboundedSender<Acknowledged>) {
        let _ = self.observer.set(tx);
    }

    /// Appends changes; resolves once each is durable and applied, refused,
    /// or failed.
    pub async fn submit(&self, changes: Vec<Submitted>) -> Vec<Outcome> {
        let n = changes.len();
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Request { changes, reply }).is_err() {
            return vec![Outcome::Failed(LedgerError::Closed); n];
        }
        rx.await
            .unwrap_or_else(|_| vec![Outcome::Failed(LedgerError::Closed); n])
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The revocations and releases this replica recorded after sequence
    /// `after`, read back from the ledger; `None` when the ledger no longer
    /// holds all of them (a snapshot has replaced the records, or, in fleet
    /// mode, more than 10,000 batches came since).
    pub async fn own_changes_after(&self, after: u64) -> anyhow::Result<Option<Vec<Written>>> {
        let keep = |c: &Change| !matches!(c, Change::Register { .. });
        match self.history.as_ref() {
            History::File(dir) => {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || {
                    let mut found = Vec::new();
                    let scan =
                        recover::scan(&dir, false, &mut |rec: &Record, _: recover::At<'_>| {
                            if rec.seq > after && keep(&rec.change) {
                                found.push(Written {
                                    seq: rec.seq,
                                    issuer: rec.issuer.clone(),
                                    change: rec.change.clone(),
                                });
                            }
                        })?;
                    // The scan reads records after its base snapshot only.
                    Ok((after >= scan.base.unwrap_or(0)).then_some(found))
                })
                .await?
            }
            History::Fleet { store, replica } => {
                fleet::own_changes_after(store, replica, after, 10_000, keep).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::record::IssuerEntries;
    use super::super::tools;
    use super::super::types::{segment_name, snapshot_name, ApplyError};
    use super::*;
    use crate::clock::ManualClock;
    use crate::state::{Applied, Entry, IssuerState, Reason, Serial};
    use std::collections::HashMap;
    use std::fs::OpenOptions;
    use std::path::{Path, PathBuf};
    use std::time::Instant;

    /// State for one issuer "demo", as the ledger sees it.
    #[derive(Default)]
    struct Mem(HashMap<String, IssuerState>);

    impl Mem {
        fn new() -> Arc<Self> {
            let mut m = HashMap::new();
            m.insert("demo".to_string(), IssuerState::new());
            Arc::new(Self(m))
        }
        fn status(&self, serial: &str) -> Option<crate::state::Status> {
            self.0["demo"]
                .lookup(&Serial::from_hex(serial).expect("hex"))
                .map(|e| e.status)
        }
    }

    impl Applier for Mem {
        fn check(&self, issuer: &str, change: &Change) -> Result<Applied, ApplyError> {
            let st = self
                .0
                .get(issuer)
                .ok_or_else(|| ApplyError::UnknownIssuer(issuer.into()))?;
            Ok(st.check(change)?)
        }
        fn apply(&self, issuer: &str, change: &Change, author: &str) {
            if let Some(st) = self.0.get(issuer) {
                let _ = st.apply(change, crate::state::Author::named(author));
            }
        }
        fn restore(&self, issuer: &str, entries: Vec<(Serial, Entry)>) {
            if let Some(st) = self.0.get(issuer) {
                st.restore(entries);
            }
        }
        fn snapshot(&self) -> Vec<IssuerEntries> {
            self.0
                .iter()
                .map(|(id, st)| (id.clone(), st.snapshot()))
                .collect()
        }
    }

    fn revoke(n: u32) -> Submitted {
        Submitted {
            issuer: "demo".into(),
            author: "test".into(),
            change: Change::Revoke {
                serial: Serial::from_hex(&format!("{n:X}")).expect("hex"),
                at: 1_700_000_000 + i64::from(n),
                reason: Reason::KeyCompromise,
                invalidity_date: None,
            },
        }
    }

    fn open(dir: &Path, every: u64) -> (Arc<Mem>, Recovery, Ledger) {
        let mem = Mem::new();
        let opts = Options {
            dir: dir.to_path_buf(),
            snapshot_every: every,
        };
        let (rec, file, last) = recover(&opts, mem.as_ref()).expect("recover");
        let _ = last;
        let ledger = Ledger::start(
            opts,
            file,
            &rec,
            mem.clone(),
            Metrics::new(),
            ManualClock::new(0),
        );
        (mem, rec, ledger)
    }

    #[tokio::test]
    async fn a_torn_last_record_is_dropped_and_everything_before_recovers() {
        let dir = tempfile::tempdir().expect("tmp");
        {
            let (_, _, ledger) = open(dir.path(), 1_000_000);
            for n in 1..=10 {
                let out = ledger.submit(vec![revoke(n)]).await;
                assert!(matches!(out[0], Outcome::Recorded { seq } if seq == u64::from(n)));
            }
        }
        let seg = dir.path().join(segment_name(1));
        let len = fs::metadata(&seg).expect("meta").len();
        // Cut the last record in half, as a crash mid-write would.
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .and_then(|f| f.set_len(len - 10))
            .expect("truncate");
        let (mem, rec, ledger) = open(dir.path(), 1_000_000);
        assert_eq!(rec.records_replayed, 9);
        assert_eq!(rec.last_seq, 9);
        assert!(rec.dropped_bytes > 0);
        assert_eq!(rec.dropped_reason.as_deref(), Some("record is cut short"));
        assert!(mem.status("9").is_some());
        assert!(mem.status("A").is_none());
        // The log continues cleanly after the cut.
        let out = ledger.submit(vec![revoke(10)]).await;
        assert!(matches!(out[0], Outcome::Recorded { seq: 10 }), "{out:?}");
    }

    #[tokio::test]
    async fn start_up_uses_the_snapshot_and_the_records_after_it() {
        let dir = tempfile::tempdir().expect("tmp");
        {
            let (_, _, ledger) = open(dir.path(), 100);
            for chunk in (1..=250u32).collect::<Vec<_>>().chunks(10) {
                ledger
                    .submit(chunk.iter().map(|n| revoke(*n)).collect())
                    .await;
            }
        }
        // Snapshots are written in the background; wait for the newest.
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while numbered(dir.path(), "snap-", ".rvs")
            .expect("ls")
            .last()
            .map(|s| s.0)
            != Some(200)
        {
            assert!(Instant::now() < deadline, "no snapshot at 200");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // Segments covered by the snapshot are gone.
        let segs = numbered(dir.path(), "log-", ".rvl").expect("ls");
        assert!(segs.iter().all(|(first, _)| *first >= 101), "{segs:?}");
        let (mem, rec, _) = open(dir.path(), 100);
        assert_eq!(rec.snapshot_seq, Some(200));
        assert_eq!(rec.records_replayed, 50);
        assert_eq!(rec.last_seq, 250);
        for n in 1..=250u32 {
            assert!(mem.status(&format!("{n:X}")).is_some(), "{n}");
        }
    }

    #[tokio::test]
    async fn group_commit_and_conflicts_in_one_batch() {
        let dir = tempfile::tempdir().expect("tmp");
        let (mem, _, ledger) = open(dir.path(), 1_000_000);
        let mut handles = Vec::new();
        for n in 1..=200u32 {
            let l = ledger.clone();
            handles.push(tokio::spawn(async move { l.submit(vec![revoke(n)]).await }));
        }
        for h in handles {
            assert!(matches!(
                h.await.expect("join")[0],
                Outcome::Recorded { .. }
            ));
        }
        // The same serial twice in one request: the second sees the first.
        let twice = vec![revoke(500), revoke(500)];
        let out = ledger.submit(twice).await;
        assert!(matches!(out[0], Outcome::Recorded { .. }), "{out:?}");
        assert!(matches!(out[1], Outcome::Unchanged), "{out:?}");
        let mut other = revoke(500);
        if let Change::Revoke { reason, .. } = &mut other.change {
            *reason = Reason::Superseded;
        }
        let out = ledger.submit(vec![other]).await;
        assert!(
            matches!(out[0], Outcome::Refused(ApplyError::Conflict(_))),
            "{out:?}"
        );
        assert_eq!(ledger.stats().last_seq.load(Ordering::Acquire), 201);
        assert!(mem.status("C8").is_some());
    }

    /// Writes `n` revocations with snapshots every `every`, waits for the
    /// snapshot at `snap` (if any), and returns the ledger files' bytes.
    async fn written(dir: &Path, n: u32, every: u64, snap: Option<u64>) {
        {
            let (_, _, ledger) = open(dir, every);
            for chunk in (1..=n).collect::<Vec<_>>().chunks(5) {
                let out = ledger
                    .submit(chunk.iter().map(|n| revoke(*n)).collect())
                    .await;
                assert!(out.iter().all(|o| matches!(o, Outcome::Recorded { .. })));
            }
        }
        if let Some(want) = snap {
            let deadline = Instant::now() + std::time::Duration::from_secs(10);
            while numbered(dir, "snap-", ".rvs")
                .expect("ls")
                .last()
                .map(|s| s.0)
                != Some(want)
            {
                assert!(Instant::now() < deadline, "no snapshot at {want}");
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            // Let the pruning after the rename finish.
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out: Vec<_> = fs::read_dir(dir)
            .expect("ls")
            .flatten()
            .filter(|e| e.path().is_file())
            .map(|e| (e.path(), fs::read(e.path()).expect("read")))
            .collect();
        out.sort();
        out
    }

    fn recover_only(dir: &Path) -> anyhow::Result<(Arc<Mem>, Recovery)> {
        let mem = Mem::new();
        let opts = Options {
            dir: dir.to_path_buf(),
            snapshot_every: 1_000_000,
        };
        recover(&opts, mem.as_ref()).map(|(rec, _, _)| (mem, rec))
    }

    #[tokio::test]
    async fn a_flipped_byte_in_the_middle_of_the_last_segment_refuses_start_and_changes_nothing() {
        let dir = tempfile::tempdir().expect("tmp");
        written(dir.path(), 40, 1_000_000, None).await;
        let seg = dir.path().join(segment_name(1));
        let mut bytes = fs::read(&seg).expect("read");
        // Record 20's payload (records are the same size: 8 + 12 + issuer
        // "demo" + a 1-byte serial + 10 bytes of body).
        let len = (bytes.len() - 8) / 40;
        bytes[8 + 19 * len + 14] ^= 0x40;
        fs::write(&seg, &bytes).expect("write");
        let before = files(dir.path());
        let err = recover_only(dir.path()).err().expect("must refuse");
        let msg = format!("{err:#}");
        assert!(msg.contains(&seg.display().to_string()), "{msg}");
        assert!(msg.contains(&format!("byte {}", 8 + 19 * len)), "{msg}");
        assert!(msg.contains("last good record is seq 19"), "{msg}");
        assert!(msg.contains("20 valid records follow"), "{msg}");
        assert!(msg.contains("--truncate-after 19"), "{msg}");
        assert_eq!(files(dir.path()), before, "a refusal changes no byte");
        // verify says the same and exits 1.
        let mut out = Vec::new();
        assert!(!tools::verify(dir.path(), &mut out).expect("verify"));
        let out = String::from_utf8(out).expect("utf8");
        assert!(out.contains("PROBLEM:") && out.contains("seq 19"), "{out}");
        // The way out: repair cuts after 19, keeps the bytes, lists what is lost.
        let done = tools::repair(dir.path(), 19, 1).expect("repair");
        assert_eq!(
            done.lost.iter().map(|r| r.seq).collect::<Vec<_>>(),
            (21..=40).collect::<Vec<_>>(),
            "the readable records after the damage are listed as lost"
        );
        assert!(done.unreadable_bytes > 0);
        let kept: usize = done
            .moved_files
            .iter()
            .map(|f| fs::read(f).expect("read").len())
            .sum();
        assert_eq!(kept, bytes.len() - (8 + 19 * len), "the cut bytes are kept");
        let (mem, rec) = recover_only(dir.path()).expect("recovers after repair");
        assert_eq!(rec.last_seq, 19);
        assert!(mem.status("13").is_some() && mem.status("14").is_none());
    }

    #[tokio::test]
    async fn an_unreadable_newest_snapshot_recovers_from_the_older_one_with_nothing_lost() {
        let dir = tempfile::tempdir().expect("tmp");
        written(dir.path(), 250, 100, Some(200)).await;
        let snap = dir.path().join(snapshot_name(200));
        assert!(
            dir.path().join(snapshot_name(100)).exists(),
            "the previous snapshot is kept"
        );
        let mut bytes = fs::read(&snap).expect("read");
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x01;
        fs::write(&snap, &bytes).expect("write");
        let (mem, rec) = recover_only(dir.path()).expect("survivable");
        assert_eq!(rec.snapshot_seq, Some(100));
        assert_eq!(rec.last_seq, 250);
        assert_eq!(rec.unreadable_snapshots.len(), 1);
        for n in 1..=250u32 {
            assert!(mem.status(&format!("{n:X}")).is_some(), "{n} lost");
        }
        let mut out = Vec::new();
        assert!(
            !tools::verify(dir.path(), &mut out).expect("verify"),
            "verify reports it"
        );
    }

    #[tokio::test]
    async fn a_gap_in_the_ledger_sequence_refuses_start() {
        let dir = tempfile::tempdir().expect("tmp");
        written(dir.path(), 250, 100, Some(200)).await;
        // The older snapshot gone and the newer one unreadable: the log
        // starts at 101 with nothing to start it from.
        fs::remove_file(dir.path().join(snapshot_name(100))).expect("rm");
        let snap = dir.path().join(snapshot_name(200));
        let mut bytes = fs::read(&snap).expect("read");
        bytes[20] ^= 0x01;
        fs::write(&snap, &bytes).expect("write");
        let before = files(dir.path());
        let msg = format!("{:#}", recover_only(dir.path()).err().expect("must refuse"));
        assert!(msg.contains("gap in the ledger sequence"), "{msg}");
        assert!(msg.contains("expected seq 1, found 101"), "{msg}");
        assert_eq!(files(dir.path()), before);
    }

    #[tokio::test]
    async fn every_cut_of_the_final_write_is_a_torn_tail_and_everything_acknowledged_survives() {
        let dir = tempfile::tempdir().expect("tmp");
        written(dir.path(), 10, 1_000_000, None).await;
        let seg = dir.path().join(segment_name(1));
        let whole = fs::read(&seg).expect("read");
        let len = (whole.len() - 8) / 10;
        // Record 10 was never acknowledged if it is not whole.
        for cut in 1..len {
            fs::write(&seg, &whole[..whole.len() - cut]).expect("write");
            let (mem, rec) = recover_only(dir.path()).expect("a torn tail is recovered");
            assert_eq!(rec.last_seq, 9, "cut {cut}");
            assert!(mem.status("9").is_some());
            assert_eq!(
                fs::metadata(&seg).expect("meta").len() as usize,
                whole.len() - len
            );
        }
        // The disk padded a torn write with zeros from a sector boundary.
        let mut padded = whole.clone();
        padded.resize(1024, 0);
        fs::write(&seg, &padded).expect("write");
        assert_eq!(recover_only(dir.path()).expect("zeros").1.last_seq, 10);
    }

    /// The harness's byte flips: every byte of every ledger file, one at a
    /// time. Start-up either recovers every acknowledged change or refuses;
    /// it never starts with one missing.
    #[tokio::test]
    async fn flipping_any_byte_of_any_ledger_file_never_starts_with_an_acknowledged_change_missing()
    {
        let dir = tempfile::tempdir().expect("tmp");
        written(dir.path(), 60, 25, Some(50)).await;
        let originals = files(dir.path());
        let (mut refused, mut recovered, mut lost) = (0, 0, 0);
        for (path, bytes) in &originals {
            for at in 0..bytes.len() {
                let mut bad = bytes.clone();
                bad[at] ^= 0x5a;
                fs::write(path, &bad).expect("write");
                match recover_only(dir.path()) {
                    Err(_) => refused += 1,
                    Ok((mem, rec)) => {
                        recovered += 1;
                        let missing = (1..=60u32)
                            .filter(|n| mem.status(&format!("{n:X}")).is_none())
                            .count();
                        if missing > 0 || rec.last_seq != 60 {
                            lost += 1;
                            eprintln!(
                                "silent loss: {} byte {at}: {missing} missing",
                                path.display()
                            );
                        }
                    }
                }
                for (p, b) in &originals {
                    fs::write(p, b).expect("restore");
                }
            }
        }
        eprintln!("byte flips: {refused} refused, {recovered} recovered, {lost} silent losses");
        assert!(refused > 0 && recovered > 0);
        assert_eq!(lost, 0, "silent losses");
    }
}
