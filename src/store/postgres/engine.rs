//! PostgreSQL engine, the [`Engine`] implementation: each method is the engine's
//! own (in `read`, `filing`, `outbox`, `kv`, `commit` and the module root).

use std::sync::atomic::AtomicUsize;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use jiff::Timestamp;

use super::PgStore;
use crate::store::{
    Engine, Entry, Job, MessageRecord, OutboxItem, RateHit, SentRecord, StoreError, Ticket,
    TicketChange, Usage, Writes,
};

impl Engine for PgStore {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn find_filed(&self, dedup_key: &[u8]) -> Result<Option<MessageRecord>, StoreError> {
        PgStore::find_filed(self, dedup_key)
    }

    fn message(&self, seq: u64) -> Result<Option<MessageRecord>, StoreError> {
        PgStore::message(self, seq)
    }

    fn raw_message(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        PgStore::raw_message(self, seq)
    }

    fn ticket(&self, number: u64) -> Result<Option<Ticket>, StoreError> {
        PgStore::ticket(self, number)
    }

    fn ticket_for_message_id(&self, message_id: &str) -> Result<Option<u64>, StoreError> {
        PgStore::ticket_for_message_id(self, message_id)
    }

    fn open_tickets(&self, owner_key: &str, since: Timestamp) -> Result<Vec<Ticket>, StoreError> {
        PgStore::open_tickets(self, owner_key, since)
    }

    fn open_tickets_about(
        &self,
        owner_key: &str,
        subject_norm: &str,
        since: Timestamp,
    ) -> Result<Vec<Ticket>, StoreError> {
        PgStore::open_tickets_about(self, owner_key, subject_norm, since)
    }

    fn count_from_sender(
        &self,
        sender: &str,
        since: Timestamp,
        until: Timestamp,
        limit: u64,
    ) -> Result<u64, StoreError> {
        PgStore::count_from_sender(self, sender, since, until, limit)
    }

    fn all_tickets(&self) -> Result<Vec<Ticket>, StoreError> {
        PgStore::all_tickets(self)
    }

    fn client_tickets(&self, client_id: &str) -> Result<Vec<Ticket>, StoreError> {
        PgStore::client_tickets(self, client_id)
    }

    fn change_ticket_dyn(
        &self,
        number: u64,
        change: &mut TicketChange<'_>,
    ) -> Result<(), StoreError> {
        self.block(self.change_ticket_async(number, change))
    }

    fn outbox_items(&self) -> Result<Vec<OutboxItem>, StoreError> {
        PgStore::outbox_items(self)
    }

    fn next_due(&self, now: Timestamp) -> Result<Option<OutboxItem>, StoreError> {
        PgStore::next_due(self, now)
    }

    fn outbox_len(&self) -> usize {
        PgStore::outbox_len(self)
    }

    fn reschedule(&self, item: &mut OutboxItem) -> Result<(), StoreError> {
        PgStore::reschedule(self, item)
    }

    fn mark_done(&self, item: &OutboxItem, ok: bool, at: Timestamp) -> Result<(), StoreError> {
        PgStore::mark_done(self, item, ok, at)
    }

    fn sent_items(&self) -> Result<Vec<SentRecord>, StoreError> {
        PgStore::sent_items(self)
    }

    fn enqueue(&self, item: &OutboxItem) -> Result<(), StoreError> {
        PgStore::enqueue(self, item)
    }

    fn outbox_wake(&self) -> Option<Arc<tokio::sync::Notify>> {
        Some(PgStore::outbox_wake(self))
    }

    fn kv_get(&self, collection: &str, key: &[u8]) -> Result<Option<Entry>, StoreError> {
        PgStore::kv_get(self, collection, key)
    }

    fn kv_scan(
        &self,
        collection: &str,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        PgStore::kv_scan(self, collection, prefix, after, limit)
    }

    fn kv_take(&self, collection: &str, key: &[u8]) -> Result<Option<Entry>, StoreError> {
        PgStore::kv_take(self, collection, key)
    }

    fn kv_write(&self, writes: &Writes) -> Result<(), StoreError> {
        PgStore::kv_write(self, writes)
    }

    fn kv_add(&self, collection: &str, key: &[u8], delta: i64) -> Result<i64, StoreError> {
        PgStore::kv_add(self, collection, key, delta)
    }

    fn kv_hit(
        &self,
        collection: &str,
        key: &[u8],
        max: u32,
        window: Duration,
        now: Timestamp,
    ) -> Result<RateHit, StoreError> {
        PgStore::kv_hit(self, collection, key, max, window, now)
    }

    fn kv_purge_expired(&self, collection: &str, now: Timestamp) -> Result<u64, StoreError> {
        PgStore::kv_purge_expired(self, collection, now)
    }

    fn start_committer(
        &self,
        jobs: mpsc::Receiver<Job>,
        in_flight: Arc<AtomicUsize>,
        window: Duration,
    ) -> std::io::Result<()> {
        super::commit::start(self.clone(), jobs, in_flight, window)
    }

    fn usage(&self) -> Result<Vec<Usage>, StoreError> {
        PgStore::usage(self)
    }

    /// The pool reconnects by itself: a broken connection is dropped when it is
    /// returned and a new one made on the next call.
    fn heal(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Every write is committed with `synchronous_commit` on before it returns.
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn check(&self) -> Result<(), StoreError> {
        PgStore::check(self)
    }
}
