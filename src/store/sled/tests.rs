//! sled engine tests: what only this engine has (the raw-message log, stores
//! written by earlier versions). The behavioural suite is `store/tests.rs`.

/// Opens the store at `path`, waiting while the file lock of a database dropped a
/// moment ago is still held: sled's own threads let go of it shortly after the last
/// handle is dropped, so a test that reopens a directory can otherwise race them.
fn open(path: &std::path::Path) -> super::SledStore {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match super::SledStore::open(path, 100_001, 0) {
            Ok(store) => return store,
            Err(e) if format!("{e:?}").contains("lock") && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("cannot open the store at {}: {e:?}", path.display()),
        }
    }
}

mod unit {
    use crate::store::tests::new_ticket;
    use crate::store::PackedRaw;

    #[test]
    fn a_batch_logs_the_raw_bytes_of_new_messages_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::open(dir.path());
        store.apply(&new_ticket("a")).unwrap();
        let log = dir.path().join("raw").join("000001.log");
        let one = std::fs::metadata(&log).unwrap().len();
        let (a, b) = (new_ticket("a"), new_ticket("b"));
        let packed = PackedRaw::pack(&b.raw);
        let (_, res) = store.apply_batch(&[(&a, &packed), (&b, &packed), (&b, &packed)]);
        let res: Vec<_> = res.into_iter().map(|r| r.unwrap().redelivery).collect();
        assert_eq!(res, [true, false, true]);
        // One new entry (b), the same size as a's.
        assert_eq!(std::fs::metadata(&log).unwrap().len(), 2 * one);
        assert_eq!(store.raw_message(2).unwrap(), Some(b.raw.clone()));
    }

    #[test]
    fn portal_trees_of_earlier_versions_become_collections() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::Config::new().path(dir.path()).open().unwrap();
            let links = db.open_tree("portal_links").unwrap();
            let grant = br#"{"email":"a@x.ru","client_id":"MI-1","lang":"ru","expires_at":"2026-11-24T10:20:00Z"}"#;
            links.insert([7u8; 32], &grant[..]).unwrap();
            db.flush().unwrap();
        }
        let store = super::open(dir.path());
        let e = store.kv_get("portal_links", &[7u8; 32]).unwrap().unwrap();
        assert!(e.value.starts_with(b"{\"email\":\"a@x.ru\""));
        assert_eq!(e.expires_at, Some("2026-11-24T10:20:00Z".parse().unwrap()));
        assert!(!store
            .t()
            .unwrap()
            .db
            .tree_names()
            .iter()
            .any(|n| n.as_ref() == b"portal_links"));
    }
}
mod reopen_tests {
    use std::time::Duration;

    use super::super::*;
    use crate::decision::Outcome;
    use crate::store::tests::new_ticket;
    use crate::store::PackedRaw;
    use crate::store::{Committer, Store};

    fn committer(store: &SledStore) -> Committer {
        Committer::start(Store::wrap(store.clone()), Duration::from_millis(1))
    }

    #[test]
    fn stores_of_earlier_versions_stay_readable() {
        // Written the way earlier versions did: sled compression, bare JSON
        // records, the raw bytes in their own tree.
        let dir = tempfile::tempdir().unwrap();
        let mut record = SledStore::open(tempfile::tempdir().unwrap().path(), 100_001, 0)
            .unwrap()
            .apply(&new_ticket("a"))
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
        assert!(store.apply(&new_ticket("a")).unwrap().redelivery);
    }

    #[test]
    fn stores_with_raw_bytes_in_the_message_value_stay_readable() {
        // Written the way the version before the raw-message log did: the record
        // and the packed raw bytes in one message value.
        let dir = tempfile::tempdir().unwrap();
        let raw = b"Subject: inline\r\n\r\n".repeat(20);
        {
            let store = super::open(dir.path());
            let mut record = store.apply(&new_ticket("a")).unwrap().record;
            record.seq = 2;
            let value = value::enc_message_inline(&record, &PackedRaw::pack(&raw));
            let t = store.t().unwrap();
            t.messages.insert(be(2), value).unwrap();
            t.dedup.insert(b"old", &be(2)).unwrap();
            store.flush().unwrap();
        }
        let store = super::open(dir.path());
        assert_eq!(store.message(2).unwrap().unwrap().seq, 2);
        assert_eq!(store.raw_message(2).unwrap(), Some(raw));
        // The new message next to it went to the raw-message log.
        assert_eq!(store.raw_message(1).unwrap(), Some(new_ticket("a").raw));
        let mut f = new_ticket("old");
        f.dedup_key = b"old".to_vec();
        assert!(store.apply(&f).unwrap().redelivery);
    }

    #[test]
    fn raw_bytes_survive_reopen_and_a_bad_checksum_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = super::open(dir.path());
            let c = committer(&store);
            for k in ["a", "b"] {
                let mut f = new_ticket(k);
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
            value::message_raw("messages", &value).unwrap(),
            Some(value::RawSection::Logged(_))
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
            let c = committer(&store);
            let mut f = new_ticket("a");
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
        let r = store.apply(&new_ticket("b")).unwrap();
        assert_eq!(r.record.decision.ticket, Some(100_002));
    }
}
