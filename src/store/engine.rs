//! Store interface, the engine trait: what every storage engine provides behind the
//! [`Store`](super::Store) handle. Synchronous by design: the policy's look-ups are
//! called from inside Rhai, and an engine that talks to a server (PostgreSQL) runs
//! its own runtime and waits for it here, so callers never need one.
//!
//! Callers use the [`Store`](super::Store) handle, which derefs to this trait; its
//! generic conveniences (`change_ticket`, `collection`) are built on these methods.

use std::sync::atomic::AtomicUsize;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use jiff::Timestamp;

use super::committer::Job;
use super::{Entry, MessageRecord, OutboxItem, RateHit, SentRecord, StoreError, Ticket, Writes};

/// Entries and live bytes of one part of a store (a sled tree, a table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    pub name: String,
    pub entries: u64,
    pub bytes: u64,
}

/// A ticket change inside a transaction: edits the ticket, adds collection writes,
/// returns the replies to queue.
pub type TicketChange<'a> =
    dyn FnMut(&mut Ticket, &mut Writes) -> Result<Vec<OutboxItem>, StoreError> + 'a;

/// One storage engine (sled, PostgreSQL). Every method is safe to call from any
/// thread, including an async worker's (it blocks that thread for the call).
pub trait Engine: Send + Sync {
    /// `sled` or `postgres`.
    fn name(&self) -> &'static str;

    // --- messages and tickets (reads) ---

    /// The message filed under a dedup key, if any.
    ///
    /// # Errors
    /// Read failures and corrupt records.
    fn find_filed(&self, dedup_key: &[u8]) -> Result<Option<MessageRecord>, StoreError>;

    /// A message record by sequence number.
    ///
    /// # Errors
    /// Read failures and corrupt records.
    fn message(&self, seq: u64) -> Result<Option<MessageRecord>, StoreError>;

    /// The raw bytes of a stored message.
    ///
    /// # Errors
    /// Read failures; bytes whose checksum does not match ([`StoreError::Corrupt`]).
    fn raw_message(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError>;

    /// A ticket by number.
    ///
    /// # Errors
    /// Read failures and corrupt records.
    fn ticket(&self, number: u64) -> Result<Option<Ticket>, StoreError>;

    /// The ticket a stored message or sent reply with this Message-ID belongs to.
    ///
    /// # Errors
    /// Read failures.
    fn ticket_for_message_id(&self, message_id: &str) -> Result<Option<u64>, StoreError>;

    /// Open tickets of an owner key (`client:MI-1` or `sender:a@b`) created at or
    /// after `since`.
    ///
    /// # Errors
    /// Read failures and corrupt records.
    fn open_tickets(&self, owner_key: &str, since: Timestamp) -> Result<Vec<Ticket>, StoreError>;

    /// Open tickets of an owner key with this normalised core subject, created at
    /// or after `since`: the duplicate look-up, whose cost does not grow with the
    /// owner's other tickets.
    ///
    /// # Errors
    /// Read failures and corrupt records.
    fn open_tickets_about(
        &self,
        owner_key: &str,
        subject_norm: &str,
        since: Timestamp,
    ) -> Result<Vec<Ticket>, StoreError>;

    /// Messages from `sender` stored with a receipt time in `(since, until]`
    /// (whole seconds), counted up to `limit`.
    ///
    /// # Errors
    /// Read failures.
    fn count_from_sender(
        &self,
        sender: &str,
        since: Timestamp,
        until: Timestamp,
        limit: u64,
    ) -> Result<u64, StoreError>;

    /// Messages of a ticket, oldest first.
    ///
    /// # Errors
    /// Read failures and corrupt records.
    fn ticket_messages(&self, ticket: &Ticket) -> Result<Vec<MessageRecord>, StoreError> {
        let mut out = Vec::with_capacity(ticket.messages.len());
        for seq in &ticket.messages {
            if let Some(m) = self.message(*seq)? {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// Every ticket, in number order (staff lists, overdue scans).
    ///
    /// # Errors
    /// Read failures and corrupt records.
    fn all_tickets(&self) -> Result<Vec<Ticket>, StoreError>;

    /// Every ticket of a client (open or not), newest first: the portal's list.
    ///
    /// # Errors
    /// Read failures and corrupt records.
    fn client_tickets(&self, client_id: &str) -> Result<Vec<Ticket>, StoreError>;

    // --- ticket changes ---

    /// Changes one ticket in one durable transaction, with the replies `change`
    /// returns (each threaded under its Message-ID) and the collection writes it
    /// adds. `change` may run more than once (a conflict retries it); only the
    /// last run's effects are kept.
    ///
    /// # Errors
    /// No such ticket; `change` refused (its error aborts everything); writes failed.
    fn change_ticket_dyn(
        &self,
        number: u64,
        change: &mut TicketChange<'_>,
    ) -> Result<(), StoreError>;

    // --- the reply queue ---

    /// Every queued reply, oldest first.
    ///
    /// # Errors
    /// Read failures and corrupt records.
    fn outbox_items(&self) -> Result<Vec<OutboxItem>, StoreError>;

    /// The queued reply due first, if it is due at `now`.
    ///
    /// # Errors
    /// Read failures and corrupt records.
    fn next_due(&self, now: Timestamp) -> Result<Option<OutboxItem>, StoreError>;

    /// Number of queued replies (0 when the store cannot be read).
    fn outbox_len(&self) -> usize;

    /// Records a changed attempt count, error or due time of a queued reply, durably.
    ///
    /// # Errors
    /// Write failures.
    fn reschedule(&self, item: &mut OutboxItem) -> Result<(), StoreError>;

    /// Moves a reply from the outbox to the sent log, durably, exactly once.
    ///
    /// # Errors
    /// Write failures.
    fn mark_done(&self, item: &OutboxItem, ok: bool, at: Timestamp) -> Result<(), StoreError>;

    /// Every sent (or abandoned) reply record.
    ///
    /// # Errors
    /// Read failures and corrupt records.
    fn sent_items(&self) -> Result<Vec<SentRecord>, StoreError>;

    /// Queues a reply that belongs to no stored message (a sign-in link), durably.
    ///
    /// # Errors
    /// Write failures.
    fn enqueue(&self, item: &OutboxItem) -> Result<(), StoreError>;

    /// Notified when a reply was queued on any node sharing the store (the
    /// outbox then looks at once instead of at its next poll); `None` when only
    /// this process writes the store.
    fn outbox_wake(&self) -> Option<Arc<tokio::sync::Notify>> {
        None
    }

    // --- keyed collections (see `collections`) ---

    /// # Errors
    /// Read failures.
    fn kv_get(&self, collection: &str, key: &[u8]) -> Result<Option<Entry>, StoreError>;

    /// # Errors
    /// Read failures.
    fn kv_scan(
        &self,
        collection: &str,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError>;

    /// # Errors
    /// Read/write failures.
    fn kv_take(&self, collection: &str, key: &[u8]) -> Result<Option<Entry>, StoreError>;

    /// Applies a batch atomically and durably.
    ///
    /// # Errors
    /// Write failures; an invalid collection name (nothing written).
    fn kv_write(&self, writes: &Writes) -> Result<(), StoreError>;

    /// # Errors
    /// Read/write failures.
    fn kv_add(&self, collection: &str, key: &[u8], delta: i64) -> Result<i64, StoreError>;

    /// # Errors
    /// Read/write failures.
    fn kv_hit(
        &self,
        collection: &str,
        key: &[u8],
        max: u32,
        window: Duration,
        now: Timestamp,
    ) -> Result<RateHit, StoreError>;

    /// # Errors
    /// Read/write failures.
    fn kv_purge_expired(&self, collection: &str, now: Timestamp) -> Result<u64, StoreError>;

    // --- running ---

    /// What each part of the store holds: entries and live bytes per tree or
    /// table (for tools and benchmarks; reads everything on some engines).
    ///
    /// # Errors
    /// Read failures.
    fn usage(&self) -> Result<Vec<Usage>, StoreError>;

    /// Starts the engine's group commit, taking filings from `jobs`. `in_flight`
    /// counts requests still evaluating (worth waiting up to `window` for).
    ///
    /// # Errors
    /// The engine's threads cannot be started.
    fn start_committer(
        &self,
        jobs: mpsc::Receiver<Job>,
        in_flight: Arc<AtomicUsize>,
        window: Duration,
    ) -> std::io::Result<()>;

    /// After a fault: reopens or reconnects (rate-limited by the engine).
    ///
    /// # Errors
    /// The fault persists.
    fn heal(&self) -> Result<(), StoreError>;

    /// Makes everything written so far durable.
    ///
    /// # Errors
    /// The sync failed.
    fn flush(&self) -> Result<(), StoreError>;

    /// Whether the store answers reads and writes (for `/readyz`); tries to heal.
    ///
    /// # Errors
    /// The store cannot take writes.
    fn check(&self) -> Result<(), StoreError>;
}
