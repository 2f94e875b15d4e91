//! Property tests: encode/decode round trips, and "a published CRL contains
//! exactly the revoked, unexpired serials".

use std::collections::BTreeSet;

use proptest::prelude::*;
use revocd::crl::build::{self, CrlParams};
use revocd::ledger::record::{self, Record};
use revocd::pki::{Cert, HashAlg, SigningKey};
use revocd::state::{Change, Entry, Reason, Serial, Status};

fn serial() -> impl Strategy<Value = Serial> {
    // Positive, non-zero, at most 20 octets with the sign octet.
    proptest::collection::vec(any::<u8>(), 1..=20).prop_filter_map("a certificate serial", |b| {
        Serial::from_hex(&hex::encode(b)).ok()
    })
}

fn reason() -> impl Strategy<Value = Reason> {
    proptest::sample::select(Reason::ALL.to_vec())
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        (serial(), any::<i64>())
            .prop_map(|(serial, not_after)| Change::Register { serial, not_after }),
        (
            serial(),
            any::<i64>(),
            reason(),
            proptest::option::of(any::<i64>())
        )
            .prop_map(|(serial, at, reason, invalidity_date)| Change::Revoke {
                serial,
                at,
                reason,
                invalidity_date
            }),
        serial().prop_map(|serial| Change::Release { serial }),
    ]
}

proptest! {
    #[test]
    fn ledger_records_round_trip(seq in any::<u64>(), issuer in "[a-z0-9_-]{1,40}", change in change(), author in "\\PC{0,60}") {
        let author = revocd::state::truncate_utf8(&author, 255).to_string();
        let rec = Record { seq, issuer, change, author };
        let mut buf = Vec::new();
        record::encode(&rec, &mut buf);
        let (back, n) = record::decode(&buf).expect("decode");
        prop_assert_eq!(n, buf.len());
        prop_assert_eq!(back, rec);
    }

    #[test]
    fn serials_round_trip_through_hex(s in serial()) {
        prop_assert_eq!(Serial::from_hex(&s.to_hex()).expect("hex"), s);
    }

    #[test]
    fn get_paths_decode_to_the_request(s in serial(), url_safe in any::<bool>(), pad in any::<bool>()) {
        use base64::Engine;
        let ca = fixture().0.clone();
        let der = revocd::tools::query::build_request(&ca, &s, HashAlg::Sha256);
        let b64 = match (url_safe, pad) {
            (true, true) => base64::engine::general_purpose::URL_SAFE.encode(&der),
            (true, false) => base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&der),
            (false, true) => base64::engine::general_purpose::STANDARD.encode(&der),
            (false, false) => base64::engine::general_purpose::STANDARD_NO_PAD.encode(&der),
        };
        let escaped = b64.replace('/', "%2F").replace('+', "%2B").replace('=', "%3D");
        for path in [b64, escaped] {
            let got = revocd::ocsp::decode_get_path(&path).expect("path");
            prop_assert_eq!(&got, &der);
            let req = revocd::ocsp::decode_der(&got).expect("der");
            prop_assert_eq!(&req.queries[0].serial, &s);
        }
    }
}

/// The demo CA and its key, made once.
fn fixture() -> &'static (Cert, SigningKey) {
    static FIXTURE: std::sync::OnceLock<(Cert, SigningKey)> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tmp");
        revocd::tools::demo::init(&revocd::tools::demo::InitOptions {
            dir: dir.path().to_path_buf(),
            listen: "127.0.0.1:8080".into(),
            admin_listen: "127.0.0.1:9090".into(),
            force: false,
            algorithm: Default::default(),
        })
        .expect("init");
        let ca = Cert::parse(&std::fs::read(dir.path().join("ca.pem")).expect("ca")).expect("ca");
        let key =
            SigningKey::from_pkcs8_pem(&std::fs::read(dir.path().join("ca.key")).expect("key"))
                .expect("key");
        (ca, key)
    })
}

const LIVE: i64 = 1_800_000_000;

fn entry() -> impl Strategy<Value = Entry> {
    let not_after = proptest::option::of(LIVE - 1000..LIVE + 1000);
    let status = prop_oneof![
        Just(Status::Good),
        (
            LIVE - 100_000..LIVE,
            reason(),
            proptest::option::of(LIVE - 200_000..LIVE)
        )
            .prop_map(|(at, reason, invalidity_date)| Status::Revoked {
                at,
                reason,
                invalidity_date
            }),
    ];
    (not_after, status).prop_map(|(not_after, status)| Entry {
        not_after,
        status,
        revision: 1,
        author: revocd::state::Author::UNRECORDED,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn a_published_crl_holds_exactly_the_revoked_unexpired_serials(
        state in proptest::collection::btree_map(serial(), entry(), 0..60),
        shards in 1u32..4,
    ) {
        let (ca, key) = fixture();
        let snapshot: Vec<(Serial, Entry)> = state.clone().into_iter().collect();
        let want: BTreeSet<Serial> = state
            .iter()
            .filter(|(_, e)| matches!(e.status, Status::Revoked { .. }))
            .filter(|(_, e)| e.not_after.is_none_or(|na| na >= LIVE))
            .map(|(s, _)| s.clone())
            .collect();
        let mut got = BTreeSet::new();
        for k in 0..shards {
            let shard = (shards > 1).then_some((k, shards));
            let entries = revocd::crl::select_entries(snapshot.clone(), Some(LIVE), shard);
            let aki = build::authority_key_id(ca);
            let der = build::build(&CrlParams {
                issuer_name: &ca.subject_der,
                authority_key_id: &aki,
                number: 7,
                this_update: LIVE + 10,
                next_update: LIVE + 10 + 86_400,
                entries: &entries,
                distribution_point: None,
                delta_of: None,
            }, key).expect("build");
            let facts = build::check_new(&der, ca, Some(6)).expect("self-check");
            prop_assert_eq!(facts.n_entries, entries.len());
            for e in build::entries_of(&der).expect("entries") {
                // Reasons and dates survive the round trip.
                let Some(Entry { status: Status::Revoked { at, reason, invalidity_date }, .. }) = state.get(&e.serial) else {
                    return Err(TestCaseError::fail("an entry for a serial that is not revoked"));
                };
                prop_assert_eq!(e.revoked_at, *at);
                prop_assert_eq!(e.reason, *reason);
                prop_assert_eq!(e.invalidity_date, *invalidity_date);
                prop_assert!(got.insert(e.serial), "a serial on two shards");
            }
        }
        prop_assert_eq!(got, want);
    }
}
