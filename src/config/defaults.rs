//! Defaults, in one place: what a setting is when the file does not give it.

pub const PUBLIC_LISTEN: &str = "127.0.0.1:8080";
pub const ADMIN_LISTEN: &str = "127.0.0.1:9090";
/// docs/design.md: Windows. Responses are pre-signed per 60-minute window.
pub const WINDOW: &str = "60m";
/// BR 4.9.10 allows 8h..10d between thisUpdate and nextUpdate.
pub const VALIDITY: &str = "8h";
/// docs/conformance.md 3: bound POST bodies at about 10 KB.
pub const MAX_REQUEST_BYTES: usize = 10 * 1024;
/// How many CertIDs one OCSPRequest may ask about.
pub const MAX_CERTS_PER_REQUEST: usize = 16;
/// Concurrent on-demand signings before answering tryLater.
pub const SIGNING_BUDGET: usize = 64;
pub const CACHE_MAX_BYTES: u64 = 4 << 30;
/// Half the cores for the background pre-signer: serving keeps the rest.
pub const PRESIGN_CPU_SHARE: f64 = 0.5;
/// Ready within seconds even with millions of serials (#8: 10 s at 1M).
pub const STARTUP_PRESIGN: &str = "5s";
/// Uncommon requests (several CertIDs, unknown serials, nonces): two
/// signings in flight, 100 a second (0.2% of a core with P-256, 13%
/// with RSA-2048), 16 MiB of their own cache (see README, abuse figures).
pub const UNCOMMON_SIGNING_BUDGET: usize = 2;
pub const UNCOMMON_SIGNING_RATE: f64 = 100.0;
pub const UNCOMMON_CACHE_BYTES: u64 = 16 << 20;
pub const HEADER_READ_TIMEOUT: &str = "10s";
/// An OCSP request is a few hundred bytes: 10 s is generous.
pub const BODY_TIMEOUT: &str = "10s";
/// 64 KiB/s: a 16 MiB registration gets about 4 minutes on top.
pub const BODY_MIN_RATE: u64 = 64 << 10;
pub const WRITE_TIMEOUT: &str = "10s";
/// Admin request bodies: a 10,000-certificate registration fits.
pub const ADMIN_MAX_BODY_BYTES: usize = 16 << 20;
pub const MAX_CONNECTIONS: usize = 10_000;
/// Ledger records between snapshots.
pub const SNAPSHOT_EVERY: u64 = 100_000;
pub const CRL_STORE: &str = "file://crl";
pub const CRL_DEBOUNCE: &str = "5m";
pub const CRL_MAX_DELAY: &str = "15m";
pub const CRL_VALIDITY: &str = "7d";
pub const CRL_CACHE_MAX_AGE: &str = "2m";
/// Fleet mode: how often a replica looks for other replicas' batches.
pub const FLEET_POLL: &str = "1s";
/// Fleet mode: batches between snapshots in the store.
pub const FLEET_SNAPSHOT_EVERY: u64 = 1000;
