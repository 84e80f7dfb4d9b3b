//! sled engine, the [`Engine`] implementation: each method is the engine's own
//! (in `read`, `filing`, `outbox`, `kv`, `commit` and the module root).

use std::sync::atomic::AtomicUsize;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use jiff::Timestamp;

use super::SledStore;
use crate::store::{
    Engine, Entry, Job, MessageRecord, OutboxItem, RateHit, SentRecord, StoreError, Ticket,
    TicketChange, Usage, Writes,
};

impl Engine for SledStore {
    fn name(&self) -> &'static str {
        "sled"
    }

    fn find_filed(&self, dedup_key: &[u8]) -> Result<Option<MessageRecord>, StoreError> {
        SledStore::find_filed(self, dedup_key)
    }

    fn message(&self, seq: u64) -> Result<Option<MessageRecord>, StoreError> {
        SledStore::message(self, seq)
    }

    fn raw_message(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        SledStore::raw_message(self, seq)
    }

    fn ticket(&self, number: u64) -> Result<Option<Ticket>, StoreError> {
        SledStore::ticket(self, number)
    }

    fn ticket_for_message_id(&self, message_id: &str) -> Result<Option<u64>, StoreError> {
        SledStore::ticket_for_message_id(self, message_id)
    }

    fn open_tickets(&self, owner_key: &str, since: Timestamp) -> Result<Vec<Ticket>, StoreError> {
        SledStore::open_tickets(self, owner_key, since)
    }

    fn open_tickets_about(
        &self,
        owner_key: &str,
        subject_norm: &str,
        since: Timestamp,
    ) -> Result<Vec<Ticket>, StoreError> {
        SledStore::open_tickets_about(self, owner_key, subject_norm, since)
    }

    fn count_from_sender(
        &self,
        sender: &str,
        since: Timestamp,
        until: Timestamp,
        limit: u64,
    ) -> Result<u64, StoreError> {
        SledStore::count_from_sender(self, sender, since, until, limit)
    }

    fn all_tickets(&self) -> Result<Vec<Ticket>, StoreError> {
        SledStore::all_tickets(self)
    }

    fn client_tickets(&self, client_id: &str) -> Result<Vec<Ticket>, StoreError> {
        SledStore::client_tickets(self, client_id)
    }

    fn change_ticket_dyn(
        &self,
        number: u64,
        change: &mut TicketChange<'_>,
    ) -> Result<(), StoreError> {
        SledStore::change_ticket_dyn(self, number, change)
    }

    fn outbox_items(&self) -> Result<Vec<OutboxItem>, StoreError> {
        SledStore::outbox_items(self)
    }

    fn next_due(&self, now: Timestamp) -> Result<Option<OutboxItem>, StoreError> {
        SledStore::next_due(self, now)
    }

    fn outbox_len(&self) -> usize {
        SledStore::outbox_len(self)
    }

    fn reschedule(&self, item: &mut OutboxItem) -> Result<(), StoreError> {
        SledStore::reschedule(self, item)
    }

    fn mark_done(&self, item: &OutboxItem, ok: bool, at: Timestamp) -> Result<(), StoreError> {
        SledStore::mark_done(self, item, ok, at)
    }

    fn sent_items(&self) -> Result<Vec<SentRecord>, StoreError> {
        SledStore::sent_items(self)
    }

    fn enqueue(&self, item: &OutboxItem) -> Result<(), StoreError> {
        SledStore::enqueue(self, item)
    }

    fn kv_get(&self, collection: &str, key: &[u8]) -> Result<Option<Entry>, StoreError> {
        SledStore::kv_get(self, collection, key)
    }

    fn kv_scan(
        &self,
        collection: &str,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        SledStore::kv_scan(self, collection, prefix, after, limit)
    }

    fn kv_take(&self, collection: &str, key: &[u8]) -> Result<Option<Entry>, StoreError> {
        SledStore::kv_take(self, collection, key)
    }

    fn kv_write(&self, writes: &Writes) -> Result<(), StoreError> {
        SledStore::kv_write(self, writes)
    }

    fn kv_add(&self, collection: &str, key: &[u8], delta: i64) -> Result<i64, StoreError> {
        SledStore::kv_add(self, collection, key, delta)
    }

    fn kv_hit(
        &self,
        collection: &str,
        key: &[u8],
        max: u32,
        window: Duration,
        now: Timestamp,
    ) -> Result<RateHit, StoreError> {
        SledStore::kv_hit(self, collection, key, max, window, now)
    }

    fn kv_purge_expired(&self, collection: &str, now: Timestamp) -> Result<u64, StoreError> {
        SledStore::kv_purge_expired(self, collection, now)
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
        SledStore::usage(self)
    }

    fn heal(&self) -> Result<(), StoreError> {
        SledStore::heal(self)
    }

    fn flush(&self) -> Result<(), StoreError> {
        SledStore::flush(self)
    }

    fn check(&self) -> Result<(), StoreError> {
        SledStore::check(self)
    }
}
