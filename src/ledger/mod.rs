//! The durable ledger: every change is on disk (fsync) before it is
//! acknowledged, and state is rebuilt at start from the newest snapshot plus
//! the records after it. Embedded default: segment files and snapshots under
//! `<data-dir>/ledger/`; the format is in [`record`] and ARCHITECTURE.md.
//!
//! One writer thread owns the files. Appends queue up while it fsyncs, and
//! everything queued is written with a single fsync (group commit). Only after
//! the fsync are the changes applied to the in-memory state and acknowledged.

//!
//! Files: `writer` (the writer thread and the `Backend` seam), `file` (the
//! embedded backend and snapshots), `recover` (start-up recovery: the one
//! place that decides what is a torn write and what is corruption), `tools`
//! (`revocd ledger verify | dump | repair`), `fleet` (the object-storage
//! backend), `record` (the format, pure).
mod file;
pub mod fleet;
mod handle;
pub mod record;
pub mod recover;
pub mod source;
pub mod tools;
mod types;
mod writer;

pub use file::write_snapshot;
pub use handle::Ledger;
pub use recover::recover;
pub use source::{submit_from_source, FromSource};
pub use types::{
    Acknowledged, Applier, ApplyError, History, LedgerError, Options, Outcome, Recovery, Stats,
    Submitted, Written,
};
