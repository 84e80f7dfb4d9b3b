//! The store's behavioural suite: every promise of the interface, run once per
//! engine (`behaviour!` makes one test per engine and case, so a failure names both).
//! Engine-specific matters (sled's raw-message log, stores of earlier versions)
//! are tested beside each engine.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::*;
use crate::decision::{Decision, Finding, Outcome, Status};
use crate::facts::Envelope;

/// An empty store of one engine, and what keeps it alive.
pub(crate) struct TestStore {
    pub store: Store,
    pub committer: Committer,
    _dir: Option<tempfile::TempDir>,
}

impl TestStore {
    /// Files through the engine's group commit, as the service does.
    pub fn file(&self, f: Filing) -> Result<Committed, std::sync::Arc<StoreError>> {
        self.committer.commit_blocking(f)
    }
}

/// An empty sled store in a temporary directory.
pub(crate) fn sled_store() -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 100_001, 0).unwrap();
    TestStore {
        committer: Committer::start(store.clone(), Duration::from_millis(1)),
        store,
        _dir: Some(dir),
    }
}

/// An empty PostgreSQL store in a database of its own (`None`: skipped, see
/// `postgres::testdb`).
pub(crate) fn postgres_store() -> Option<TestStore> {
    let url = super::postgres::testdb::new_database()?;
    let store = Store::open_postgres(&url, None, 100_001).unwrap();
    Some(TestStore {
        committer: Committer::start(store.clone(), Duration::from_millis(1)),
        store,
        _dir: None,
    })
}

pub(crate) fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// A filing of a new message `key` from `a@b.ru` of client MI-1 at 10:00.
pub(crate) fn filing(key: &str, outcome: Outcome, ticket: Option<u64>) -> Filing {
    Filing {
        raw: format!("Message-ID: <{key}@x>\r\nSubject: s\r\n\r\nbody of {key}\r\n").into_bytes(),
        dedup_key: key.as_bytes().to_vec(),
        message_id: Some(format!("{key}@x")),
        from: "a@b.ru".into(),
        subject: "s".into(),
        subject_core: "s".into(),
        subject_norm: "s".into(),
        client_id: Some("MI-1".into()),
        lang: "ru".into(),
        text_norm: "t".into(),
        received_at: at("2026-11-24T10:00:00Z"),
        envelope: Envelope::default(),
        decision: Decision {
            outcome,
            status: None,
            findings: vec![Finding {
                code: "x".into(),
                rule: "r".into(),
                detail: String::new(),
                ticket: None,
            }],
            reply: Some("created".into()),
            ticket,
            lang: "ru".into(),
            link: None,
            charset_guessed: None,
        },
        rules_revision: "rev".into(),
        timings: Timings::default(),
        sla: None,
        reply: Some(ReplyIntent {
            template: "created".into(),
            lang: "ru".into(),
            to: "a@b.ru".into(),
            original_subject: "s".into(),
            original_message_id: None,
            references: vec![],
            vars: Default::default(),
            human: false,
        }),
        reply_suppressed: None,
        replies_per_day: 2,
        reply_domain: "vendor.example".into(),
        writes: Writes::new(),
        on_filed: None,
    }
}

pub(crate) fn new_ticket(key: &str) -> Filing {
    filing(key, Outcome::Create, None)
}

/// One `#[test]` per engine for each case `fn case(t: &TestStore)` below.
macro_rules! behaviour {
    ($($case:ident),* $(,)?) => {
        mod sled_engine {
            $( #[test] fn $case() { super::$case(&super::sled_store()) } )*
        }
        mod postgres_engine {
            $( #[test] fn $case() {
                if let Some(t) = super::postgres_store() { super::$case(&t) }
            } )*
        }
    };
}

behaviour!(
    numbers_are_sequential_and_redelivery_is_idempotent,
    a_failed_filing_uses_no_number,
    replies_are_limited_per_address,
    open_tickets_and_sender_counts,
    raw_bytes_and_records_read_back,
    concurrent_filings_get_gap_free_numbers,
    ticket_changes_are_atomic_with_replies_and_collection_writes,
    a_filing_writes_its_collection_entries_in_its_transaction,
    the_outbox_queues_reschedules_and_sends_once,
    collections_get_put_delete_and_scan_in_key_order,
    collection_entries_expire,
    a_taken_entry_is_taken_once,
    counters_and_rate_limits,
    invalid_collection_names_write_nothing,
);

fn numbers_are_sequential_and_redelivery_is_idempotent(t: &TestStore) {
    let a = t.file(new_ticket("a")).unwrap();
    let b = t.file(new_ticket("b")).unwrap();
    assert_eq!(a.record.decision.ticket, Some(100_001));
    assert_eq!(b.record.decision.ticket, Some(100_002));
    assert!(!a.redelivery && !b.redelivery);
    let again = t.file(new_ticket("a")).unwrap();
    assert!(again.redelivery);
    assert_eq!(again.record.seq, a.record.seq);
    assert_eq!(again.record.decision.ticket, Some(100_001));
    assert_eq!(
        t.store.ticket_for_message_id("<a@x>").unwrap(),
        Some(100_001)
    );
    assert_eq!(
        t.store.find_filed(b"a").unwrap().map(|m| m.seq),
        Some(a.record.seq)
    );
    assert_eq!(t.store.find_filed(b"zzz").unwrap(), None);
    // One ticket each, one reply each: the re-delivery queued nothing.
    assert_eq!(t.store.all_tickets().unwrap().len(), 2);
    assert_eq!(t.store.outbox_len(), 2);
}

fn a_failed_filing_uses_no_number(t: &TestStore) {
    let err = t.file(filing("a", Outcome::Append, Some(5))).unwrap_err();
    assert!(matches!(*err, StoreError::NoSuchTicket(5)), "{err:?}");
    let b = t.file(new_ticket("b")).unwrap();
    assert_eq!(b.record.decision.ticket, Some(100_001));
    assert_eq!(b.record.seq, 1);
    // The failed one was not filed: posting it again is not a re-delivery.
    assert_eq!(t.store.find_filed(b"a").unwrap(), None);
}

fn replies_are_limited_per_address(t: &TestStore) {
    for (i, k) in ["a", "b", "c"].iter().enumerate() {
        let c = t.file(new_ticket(k)).unwrap();
        assert_eq!(c.record.reply_suppressed.is_some(), i >= 2, "{k}");
        assert_eq!(c.record.decision.reply.is_none(), i >= 2, "{k}");
        assert_eq!(c.record.reply_message_id.is_some(), i < 2, "{k}");
    }
    assert_eq!(t.store.outbox_len(), 2);
}

fn open_tickets_and_sender_counts(t: &TestStore) {
    t.file(new_ticket("a")).unwrap();
    let t0 = at("2026-11-24T09:00:00Z");
    assert_eq!(t.store.open_tickets("client:MI-1", t0).unwrap().len(), 1);
    assert_eq!(
        t.store
            .open_tickets_about("client:MI-1", "s", t0)
            .unwrap()
            .len(),
        1
    );
    assert!(t
        .store
        .open_tickets_about("client:MI-1", "other", t0)
        .unwrap()
        .is_empty());
    assert!(t.store.open_tickets("client:MI-2", t0).unwrap().is_empty());
    let later = at("2026-11-24T11:00:00Z");
    assert!(t
        .store
        .open_tickets("sender:a@b.ru", later)
        .unwrap()
        .is_empty());
    assert_eq!(
        t.store.count_from_sender("a@b.ru", t0, later, 100).unwrap(),
        1
    );
    assert_eq!(
        t.store
            .count_from_sender("a@b.ru", later, later, 100)
            .unwrap(),
        0
    );
    assert_eq!(
        t.store.count_from_sender("x@b.ru", t0, later, 100).unwrap(),
        0
    );
    // A closed ticket is no longer open.
    t.store
        .change_ticket(100_001, |tk| {
            tk.status = Status::Closed;
            Ok(((), vec![]))
        })
        .unwrap();
    assert!(t.store.open_tickets("client:MI-1", t0).unwrap().is_empty());
    assert!(t
        .store
        .open_tickets_about("client:MI-1", "s", t0)
        .unwrap()
        .is_empty());
    assert_eq!(t.store.client_tickets("MI-1").unwrap().len(), 1);
}

fn raw_bytes_and_records_read_back(t: &TestStore) {
    let mut f = new_ticket("a");
    f.raw = "Subject: привет\r\n\r\n".repeat(300).into_bytes();
    let raw = f.raw.clone();
    let mut c = t.file(f).unwrap();
    // The answer's store time is measured after the record was written.
    c.record.timings.store_us = 0;
    assert_eq!(t.store.raw_message(c.record.seq).unwrap(), Some(raw));
    assert_eq!(
        t.store.message(c.record.seq).unwrap(),
        Some(c.record.clone())
    );
    assert_eq!(t.store.raw_message(999).unwrap(), None);
    assert_eq!(t.store.message(999).unwrap(), None);
    let ticket = t.store.ticket(100_001).unwrap().unwrap();
    assert_eq!(ticket.messages, vec![c.record.seq]);
    assert_eq!(t.store.ticket_messages(&ticket).unwrap(), vec![c.record]);
    assert_eq!(t.store.ticket(100_002).unwrap(), None);
}

fn concurrent_filings_get_gap_free_numbers(t: &TestStore) {
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let c = t.committer.clone();
            std::thread::spawn(move || {
                (0..25)
                    .map(|j| {
                        let mut f = new_ticket(&format!("m{i}-{j}"));
                        f.from = format!("s{i}-{j}@b.ru");
                        f.replies_per_day = 0;
                        c.commit_blocking(f)
                            .unwrap()
                            .record
                            .decision
                            .ticket
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut numbers: Vec<u64> = threads
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (100_001..100_201).collect::<Vec<_>>());
    assert_eq!(t.store.outbox_len(), 200);
}

fn ticket_changes_are_atomic_with_replies_and_collection_writes(t: &TestStore) {
    t.file(new_ticket("a")).unwrap();
    let queued = t.store.outbox_len();
    let now = at("2026-11-24T10:05:00Z");
    let item = |key: &[u8]| {
        OutboxItem::standalone(
            key.to_vec(),
            Some(100_001),
            new_ticket("a").reply.unwrap(),
            format!("{}@vendor.example", String::from_utf8_lossy(key)),
            now,
        )
    };
    // A refused change writes nothing: not the ticket, not its reply, not its entry.
    let err = t
        .store
        .change_ticket_with(100_001, |tk, w| {
            tk.status = Status::Closed;
            w.put("hooks", b"e1", b"x".to_vec());
            let _ = item(b"r1");
            Err::<((), Vec<OutboxItem>), _>(StoreError::NoSuchTicket(7))
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::NoSuchTicket(7)));
    assert_ne!(
        t.store.ticket(100_001).unwrap().unwrap().status,
        Status::Closed
    );
    assert_eq!(
        t.store.collection("hooks").unwrap().get(b"e1").unwrap(),
        None
    );
    assert_eq!(t.store.outbox_len(), queued);
    // An accepted one writes all three.
    let n = t
        .store
        .change_ticket_with(100_001, |tk, w| {
            tk.status = Status::Closed;
            w.put("hooks", b"e1", b"x".to_vec());
            w.add("hook_stats", b"queued", 1);
            Ok((42, vec![item(b"r1")]))
        })
        .unwrap();
    assert_eq!(n, 42);
    assert_eq!(
        t.store.ticket(100_001).unwrap().unwrap().status,
        Status::Closed
    );
    assert_eq!(
        t.store
            .collection("hooks")
            .unwrap()
            .get(b"e1")
            .unwrap()
            .unwrap()
            .value,
        b"x"
    );
    assert_eq!(
        t.store
            .collection("hook_stats")
            .unwrap()
            .counter(b"queued")
            .unwrap(),
        1
    );
    assert_eq!(t.store.outbox_len(), queued + 1);
    // The reply threads back to the ticket.
    assert_eq!(
        t.store
            .ticket_for_message_id("<r1@vendor.example>")
            .unwrap(),
        Some(100_001)
    );
    assert!(matches!(
        t.store.change_ticket(999, |_| Ok(((), vec![]))),
        Err(StoreError::NoSuchTicket(999))
    ));
}

fn a_filing_writes_its_collection_entries_in_its_transaction(t: &TestStore) {
    let mut f = new_ticket("a");
    f.writes.put("seen", b"a", b"1".to_vec());
    f.on_filed = Some(OnFiled::new(|rec, w| {
        let ticket = rec.decision.ticket.unwrap_or(0).to_string();
        w.put(
            "deliveries",
            ticket.as_bytes(),
            rec.seq.to_be_bytes().to_vec(),
        );
        w.add("delivery_count", b"all", 1);
    }));
    let again = f.clone();
    let c = t.file(f).unwrap();
    let deliveries = t.store.collection("deliveries").unwrap();
    let entry = deliveries.get(b"100001").unwrap().unwrap();
    assert_eq!(entry.value, c.record.seq.to_be_bytes());
    assert!(t
        .store
        .collection("seen")
        .unwrap()
        .get(b"a")
        .unwrap()
        .is_some());
    // A re-delivery was filed before: its writes are not made again.
    assert!(t.file(again).unwrap().redelivery);
    let count = t.store.collection("delivery_count").unwrap();
    assert_eq!(count.counter(b"all").unwrap(), 1);
    // A filing that fails writes none of its entries.
    let mut bad = filing("b", Outcome::Append, Some(5));
    bad.writes.put("seen", b"b", b"1".to_vec());
    assert!(t.file(bad).is_err());
    assert!(t
        .store
        .collection("seen")
        .unwrap()
        .get(b"b")
        .unwrap()
        .is_none());
}

fn the_outbox_queues_reschedules_and_sends_once(t: &TestStore) {
    t.file(new_ticket("a")).unwrap();
    let now = at("2026-11-24T10:00:00Z");
    assert_eq!(t.store.outbox_len(), 1);
    // Not yet due a second before it was queued.
    assert!(t
        .store
        .next_due(now - SignedDuration::from_secs(1))
        .unwrap()
        .is_none());
    let mut item = t.store.next_due(now).unwrap().unwrap();
    assert_eq!(item.ticket, Some(100_001));
    item.attempts += 1;
    item.last_error = Some("451 try later".into());
    item.next_at = now + SignedDuration::from_secs(60);
    t.store.reschedule(&mut item).unwrap();
    assert!(t.store.next_due(now).unwrap().is_none());
    let later = t
        .store
        .next_due(now + SignedDuration::from_secs(60))
        .unwrap()
        .unwrap();
    assert_eq!(later.attempts, 1);
    assert_eq!(later.last_error.as_deref(), Some("451 try later"));
    assert_eq!(t.store.outbox_items().unwrap(), vec![later.clone()]);
    t.store.mark_done(&later, true, now).unwrap();
    // Exactly once: a second mark is a no-op.
    t.store.mark_done(&later, true, now).unwrap();
    assert_eq!(t.store.outbox_len(), 0);
    let sent = t.store.sent_items().unwrap();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].ok);
    assert_eq!(sent[0].item.key, later.key);
    // A standalone reply (a sign-in link).
    let link = OutboxItem::standalone(
        b"link-1".to_vec(),
        None,
        new_ticket("x").reply.unwrap(),
        "link-1@vendor.example".into(),
        now,
    );
    t.store.enqueue(&link).unwrap();
    assert_eq!(
        t.store.next_due(Timestamp::now()).unwrap().unwrap().key,
        b"link-1"
    );
}

fn collections_get_put_delete_and_scan_in_key_order(t: &TestStore) {
    let c = t.store.collection("things").unwrap();
    let other = t.store.collection("things_other").unwrap();
    for k in ["b/2", "a/1", "b/1", "b/10", "c"] {
        c.put(k.as_bytes(), k.as_bytes().to_vec(), None).unwrap();
    }
    other.put(b"b/0", b"not mine".to_vec(), None).unwrap();
    assert_eq!(c.get(b"a/1").unwrap().unwrap().value, b"a/1");
    assert_eq!(c.get(b"zz").unwrap(), None);
    let keys = |v: Vec<Entry>| -> Vec<String> {
        v.into_iter()
            .map(|e| String::from_utf8(e.key).unwrap())
            .collect()
    };
    assert_eq!(
        keys(c.scan_all(b"b/", None).unwrap()),
        ["b/1", "b/10", "b/2"]
    );
    assert_eq!(
        keys(c.scan_all(b"", None).unwrap()),
        ["a/1", "b/1", "b/10", "b/2", "c"]
    );
    // Paging: after a key, up to a limit.
    assert_eq!(keys(c.scan(b"b/", Some(b"b/1"), 1).unwrap()), ["b/10"]);
    assert_eq!(
        keys(c.scan(b"b/", Some(b"b/2"), 10).unwrap()),
        Vec::<String>::new()
    );
    // Replace, delete, JSON.
    c.put(b"c", b"new".to_vec(), None).unwrap();
    assert_eq!(c.get(b"c").unwrap().unwrap().value, b"new");
    c.delete(b"c").unwrap();
    c.delete(b"never").unwrap();
    assert_eq!(c.get(b"c").unwrap(), None);
    c.put_json(b"j", &vec!["x", "y"], None).unwrap();
    let now = at("2026-11-24T10:00:00Z");
    assert_eq!(
        c.get_json::<Vec<String>>(b"j", now).unwrap().unwrap(),
        ["x", "y"]
    );
    // Binary keys with 0x00 and 0xff stay inside their collection.
    c.put(&[0, 0xff], vec![1], None).unwrap();
    assert_eq!(c.scan_all(&[0], None).unwrap().len(), 1);
    assert_eq!(other.scan_all(b"", None).unwrap().len(), 1);
    // Many entries page through scan_all.
    let mut w = Writes::new();
    for i in 0..1200u32 {
        w.put("many", i.to_be_bytes(), vec![]);
    }
    t.store.write(&w).unwrap();
    let all = t
        .store
        .collection("many")
        .unwrap()
        .scan_all(b"", None)
        .unwrap();
    assert_eq!(all.len(), 1200);
    assert!(all.windows(2).all(|p| p[0].key < p[1].key));
}

fn collection_entries_expire(t: &TestStore) {
    let c = t.store.collection("blocks").unwrap();
    let now = at("2026-11-24T10:00:00Z");
    c.put(
        b"x@a",
        b"5.1.1".to_vec(),
        Some(now + SignedDuration::from_hours(1)),
    )
    .unwrap();
    c.put(b"y@a", b"5.1.1".to_vec(), Some(now)).unwrap();
    c.put(b"z@a", b"for ever".to_vec(), None).unwrap();
    assert!(c.get_live(b"x@a", now).unwrap().is_some());
    assert!(c.get_live(b"y@a", now).unwrap().is_none());
    assert!(c.get(b"y@a").unwrap().is_some());
    assert_eq!(c.scan_all(b"", Some(now)).unwrap().len(), 2);
    let two_hours = now + SignedDuration::from_hours(2);
    assert_eq!(c.purge_expired(two_hours).unwrap(), 2);
    assert_eq!(c.scan_all(b"", None).unwrap().len(), 1);
    assert_eq!(c.get(b"x@a").unwrap().and_then(|e| e.expires_at), None);
    assert_eq!(c.purge_expired(two_hours).unwrap(), 0);
}

fn a_taken_entry_is_taken_once(t: &TestStore) {
    let c = t.store.collection("links").unwrap();
    for i in 0..20u8 {
        c.put(&[i], vec![i], None).unwrap();
    }
    let takers: Vec<_> = (0..4)
        .map(|_| {
            let c = c.clone();
            std::thread::spawn(move || {
                (0..20u8)
                    .filter(|i| c.take(&[*i]).unwrap().is_some())
                    .count()
            })
        })
        .collect();
    let taken: usize = takers.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(taken, 20);
    assert!(c.scan_all(b"", None).unwrap().is_empty());
}

fn counters_and_rate_limits(t: &TestStore) {
    let c = t.store.collection("counts").unwrap();
    assert_eq!(c.counter(b"k").unwrap(), 0);
    let adders: Vec<_> = (0..4)
        .map(|_| {
            let c = c.clone();
            std::thread::spawn(move || {
                for _ in 0..25 {
                    c.add(b"k", 1).unwrap();
                }
            })
        })
        .collect();
    adders.into_iter().for_each(|h| h.join().unwrap());
    assert_eq!(c.counter(b"k").unwrap(), 100);
    assert_eq!(c.add(b"k", -101).unwrap(), -1);
    let hits = t.store.collection("hits").unwrap();
    let now = at("2026-11-24T10:00:00Z");
    let w = Duration::from_secs(60);
    let allowed: Vec<bool> = (0..4)
        .map(|i| {
            hits.hit(b"ip", 3, w, now + SignedDuration::from_secs(i))
                .unwrap()
                .allowed
        })
        .collect();
    assert_eq!(allowed, [true, true, true, false]);
    // Another key has its own budget; the window slides.
    assert!(hits.hit(b"other", 3, w, now).unwrap().allowed);
    let r = hits
        .hit(b"ip", 3, w, now + SignedDuration::from_secs(61))
        .unwrap();
    // Of the hits at 0, 1 and 2 s only the one at 2 s is within (1 s, 61 s].
    assert_eq!(
        r,
        RateHit {
            allowed: true,
            count: 2
        }
    );
}

fn invalid_collection_names_write_nothing(t: &TestStore) {
    assert!(matches!(
        t.store.collection("Bad Name"),
        Err(StoreError::InvalidCollection(_))
    ));
    let mut w = Writes::new();
    w.put("good", b"k", vec![]);
    w.put("bad/name", b"k", vec![]);
    assert!(matches!(
        t.store.write(&w),
        Err(StoreError::InvalidCollection(_))
    ));
    assert_eq!(t.store.collection("good").unwrap().get(b"k").unwrap(), None);
}
