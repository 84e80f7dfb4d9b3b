//! Store unit tests.

/// Opens the store at `path`, waiting while the file lock of a database dropped a
/// moment ago is still held: sled's own threads let go of it shortly after the last
/// handle is dropped, so a test that reopens a directory can otherwise race them.
fn open(path: &std::path::Path) -> super::Store {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match super::Store::open(path, 100_001, 0) {
            Ok(store) => return store,
            Err(e) if format!("{e:?}").contains("lock") && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("cannot open the store at {}: {e:?}", path.display()),
        }
    }
}

mod unit {
    use super::super::*;
    use crate::decision::{Decision, Finding, Outcome};
    use crate::facts::Envelope;
    use jiff::Timestamp;

    pub(super) fn filing_pub(key: &str) -> Filing {
        filing(key, Outcome::Create, None)
    }

    fn filing(key: &str, outcome: Outcome, ticket: Option<u64>) -> Filing {
        Filing {
            raw: b"raw".to_vec(),
            dedup_key: key.as_bytes().to_vec(),
            message_id: Some(format!("{key}@x")),
            from: "a@b.ru".into(),
            subject: "s".into(),
            subject_core: "s".into(),
            subject_norm: "s".into(),
            client_id: Some("MI-1".into()),
            lang: "ru".into(),
            text_norm: "t".into(),
            received_at: "2026-11-24T10:00:00Z".parse().unwrap(),
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
        }
    }

    #[test]
    fn numbers_are_sequential_and_redelivery_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::open(dir.path());
        let a = store.apply(&filing("a", Outcome::Create, None)).unwrap();
        let b = store.apply(&filing("b", Outcome::Create, None)).unwrap();
        assert_eq!(a.record.decision.ticket, Some(100_001));
        assert_eq!(b.record.decision.ticket, Some(100_002));
        let again = store.apply(&filing("a", Outcome::Create, None)).unwrap();
        assert!(again.redelivery);
        assert_eq!(again.record.decision.ticket, Some(100_001));
        assert_eq!(store.ticket_for_message_id("<a@x>").unwrap(), Some(100_001));
    }

    #[test]
    fn failed_append_does_not_use_a_number() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::open(dir.path());
        assert!(matches!(
            store.apply(&filing("a", Outcome::Append, Some(5))),
            Err(StoreError::NoSuchTicket(5))
        ));
        let b = store.apply(&filing("b", Outcome::Create, None)).unwrap();
        assert_eq!(b.record.decision.ticket, Some(100_001));
        assert_eq!(b.record.seq, 1);
    }

    #[test]
    fn reply_limit_per_address() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::open(dir.path());
        for (i, k) in ["a", "b", "c"].iter().enumerate() {
            let c = store.apply(&filing(k, Outcome::Create, None)).unwrap();
            assert_eq!(c.record.reply_suppressed.is_some(), i >= 2, "{k}");
            assert_eq!(c.record.decision.reply.is_none(), i >= 2);
        }
        assert_eq!(store.outbox_len(), 2);
    }

    #[test]
    fn open_tickets_and_sender_counts() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::open(dir.path());
        store.apply(&filing("a", Outcome::Create, None)).unwrap();
        let t0: Timestamp = "2026-11-24T09:00:00Z".parse().unwrap();
        assert_eq!(store.open_tickets("client:MI-1", t0).unwrap().len(), 1);
        assert_eq!(
            store
                .open_tickets_about("client:MI-1", "s", t0)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            store
                .open_tickets_about("client:MI-1", "other", t0)
                .unwrap()
                .len(),
            0
        );
        assert_eq!(store.open_tickets("client:MI-2", t0).unwrap().len(), 0);
        let later: Timestamp = "2026-11-24T11:00:00Z".parse().unwrap();
        assert_eq!(store.open_tickets("sender:a@b.ru", later).unwrap().len(), 0);
        assert_eq!(
            store.count_from_sender("a@b.ru", t0, later, 100).unwrap(),
            1
        );
        assert_eq!(
            store
                .count_from_sender("a@b.ru", later, later, 100)
                .unwrap(),
            0
        );
    }

    #[test]
    fn a_batch_logs_the_raw_bytes_of_new_messages_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::open(dir.path());
        store.apply(&filing("a", Outcome::Create, None)).unwrap();
        let log = dir.path().join("raw").join("000001.log");
        let one = std::fs::metadata(&log).unwrap().len();
        let (a, b) = (
            filing("a", Outcome::Create, None),
            filing("b", Outcome::Create, None),
        );
        let packed = PackedRaw::pack(&a.raw);
        let (_, res) = store.apply_batch(&[(&a, &packed), (&b, &packed), (&b, &packed)]);
        let res: Vec<_> = res.into_iter().map(|r| r.unwrap().redelivery).collect();
        assert_eq!(res, [true, false, true]);
        // One new entry (b), the same size as a's.
        assert_eq!(std::fs::metadata(&log).unwrap().len(), 2 * one);
        assert_eq!(store.raw_message(2).unwrap().as_deref(), Some(&b"raw"[..]));
    }

    #[test]
    fn committer_flushes_and_answers() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::open(dir.path());
        let c = Committer::start(store.clone(), Duration::from_millis(1));
        let r = c
            .commit_blocking(filing("a", Outcome::Create, None))
            .unwrap();
        assert_eq!(r.record.decision.ticket, Some(100_001));
        assert!(store.ticket(100_001).unwrap().is_some());
    }
}
mod reopen_tests {
    use super::super::*;
    use crate::decision::Outcome;

    #[test]
    fn stores_of_earlier_versions_stay_readable() {
        // Written the way earlier versions did: sled compression, bare JSON
        // records, the raw bytes in their own tree.
        let dir = tempfile::tempdir().unwrap();
        let mut record = Store::open(tempfile::tempdir().unwrap().path(), 100_001, 0)
            .unwrap()
            .apply(&super::unit::filing_pub("a"))
            .unwrap()
            .record;
        record.seq = 1;
        {
            let db = sled::Config::new()
                .path(dir.path())
                .use_compression(true)
                .open()
                .unwrap();
            let messages = db.open_tree("messages").unwrap();
            messages
                .insert(be(1), serde_json::to_vec(&record).unwrap())
                .unwrap();
            db.open_tree("raw")
                .unwrap()
                .insert(be(1), &b"old raw"[..])
                .unwrap();
            db.open_tree("dedup").unwrap().insert(b"a", &be(1)).unwrap();
            db.flush().unwrap();
        }
        let store = super::open(dir.path());
        assert_eq!(store.message(1).unwrap(), Some(record));
        assert_eq!(
            store.raw_message(1).unwrap().as_deref(),
            Some(&b"old raw"[..])
        );
        assert!(
            store
                .apply(&super::unit::filing_pub("a"))
                .unwrap()
                .redelivery
        );
    }

    #[test]
    fn stores_with_raw_bytes_in_the_message_value_stay_readable() {
        // Written the way the version before the raw-message log did: the record
        // and the packed raw bytes in one message value.
        let dir = tempfile::tempdir().unwrap();
        let raw = b"Subject: inline\r\n\r\n".repeat(20);
        {
            let store = super::open(dir.path());
            let mut record = store.apply(&super::unit::filing_pub("a")).unwrap().record;
            record.seq = 2;
            let value = codec::enc_message_inline(&record, &PackedRaw::pack(&raw));
            let t = store.t().unwrap();
            t.messages.insert(be(2), value).unwrap();
            t.dedup.insert(b"old", &be(2)).unwrap();
            store.flush().unwrap();
        }
        let store = super::open(dir.path());
        assert_eq!(store.message(2).unwrap().unwrap().seq, 2);
        assert_eq!(store.raw_message(2).unwrap(), Some(raw));
        // The new message next to it went to the raw-message log.
        assert_eq!(store.raw_message(1).unwrap().as_deref(), Some(&b"raw"[..]));
        let mut f = super::unit::filing_pub("old");
        f.dedup_key = b"old".to_vec();
        assert!(store.apply(&f).unwrap().redelivery);
    }

    #[test]
    fn raw_bytes_survive_reopen_and_a_bad_checksum_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = super::open(dir.path());
            let c = Committer::start(store.clone(), Duration::from_millis(1));
            for k in ["a", "b"] {
                let mut f = super::unit::filing_pub(k);
                f.raw = format!("Subject: {k}\r\n\r\n{}", "text ".repeat(50)).into_bytes();
                c.commit_blocking(f).unwrap();
            }
        }
        std::thread::sleep(Duration::from_millis(200));
        let store = super::open(dir.path());
        let b = store.raw_message(2).unwrap().unwrap();
        assert!(b.starts_with(b"Subject: b"));
        // The raw bytes are not in sled.
        let value = store.t().unwrap().messages.get(be(2)).unwrap().unwrap();
        assert!(matches!(
            codec::message_raw("messages", &value).unwrap(),
            Some(codec::RawSection::Logged(_))
        ));
        drop(store);
        // Damage the last byte of the log (inside message b's entry).
        let seg = dir.path().join("raw").join("000001.log");
        let mut bytes = std::fs::read(&seg).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        std::fs::write(&seg, bytes).unwrap();
        let store = super::open(dir.path());
        assert!(store
            .raw_message(1)
            .unwrap()
            .unwrap()
            .starts_with(b"Subject: a"));
        assert!(matches!(
            store.raw_message(2),
            Err(StoreError::Corrupt {
                tree: "raw log",
                ..
            })
        ));
    }

    #[test]
    fn counters_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = super::open(dir.path());
            let c = Committer::start(store.clone(), Duration::from_millis(1));
            let mut f = super::unit::filing_pub("a");
            f.decision.outcome = Outcome::Create;
            let r = c.commit_blocking(f).unwrap();
            assert_eq!(r.record.decision.ticket, Some(100_001));
        }
        std::thread::sleep(Duration::from_millis(200));
        let store = super::open(dir.path());
        eprintln!(
            "meta next_ticket = {:?}",
            store.t().unwrap().meta.get(NEXT_TICKET).unwrap()
        );
        let r = store.apply(&super::unit::filing_pub("b")).unwrap();
        assert_eq!(r.record.decision.ticket, Some(100_002));
    }
}
