//! Stage 5, store: a [`Filing`] (message + decision + reply intent) → sled, in one
//! transaction per message, made durable by group commit before the hook answers.
//!
//! [`Store`] is a cheap `Clone` handle with one typed accessor per tree. Writes go
//! through a single committer thread ([`Committer`]): it applies each filing in its
//! own multi-tree transaction (ticket numbers are allocated inside it, so a failed
//! request never uses one up), then flushes once for everything it applied in that
//! round, then answers every waiting request. Reads go straight to sled.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Transactional;

use crate::decision::{Decision, Outcome, Status};
use crate::facts::Envelope;
use crate::sla::SlaDue;

mod codec;
mod committer;

pub use codec::PackedRaw;
use codec::{dec, enc};
pub use committer::{Committer, InFlight};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sled error on {op}")]
    Sled {
        op: &'static str,
        #[source]
        source: sled::Error,
    },
    #[error("corrupt record in {tree}: {message}")]
    Corrupt { tree: &'static str, message: String },
    #[error("ticket {0} does not exist")]
    NoSuchTicket(u64),
    #[error("the store's committer has stopped")]
    CommitterGone,
    #[error("the store is being reopened after a fault")]
    Reopening,
    #[error(transparent)]
    Lifecycle(#[from] crate::lifecycle::LifecycleError),
}

impl StoreError {
    fn sled(op: &'static str) -> impl FnOnce(sled::Error) -> StoreError {
        move |source| StoreError::Sled { op, source }
    }
}

/// A support ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    pub number: u64,
    pub status: Status,
    /// Client identifier of the contract, when one was identified.
    pub client_id: Option<String>,
    /// The address that opened the ticket.
    pub owner: String,
    pub subject: String,
    pub subject_core: String,
    pub lang: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub sla: Option<SlaDue>,
    /// Message sequence numbers, oldest first.
    pub messages: Vec<u64>,
    /// Normalised new text of the opening message (for duplicate detection), capped.
    pub text_norm: String,
    pub events: Vec<TicketEvent>,
    /// SLA timer state: reaction and in-work stops, pauses while waiting for the client.
    #[serde(default)]
    pub timers: crate::lifecycle::Timers,
    /// The earlier ticket this one continues (a follow-up after the reopen period).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<u64>,
}

/// Something that happened to a ticket: who, when, what, from which status to
/// which, and why.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TicketEvent {
    pub at: Timestamp,
    pub kind: String,
    pub detail: String,
    /// Who did it: `client:<address>`, `staff:<name>`, `system`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Status>,
    /// Why (a status change's note) or what was said (a staff reply's text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Message-ID of the message this event sent or filed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Whether the client sees it in the portal (internal notes do not show).
    #[serde(default)]
    pub public: bool,
}

/// What the pipeline asks the store to record for one message.
#[derive(Debug, Clone)]
pub struct Filing {
    pub raw: Vec<u8>,
    pub dedup_key: Vec<u8>,
    pub message_id: Option<String>,
    pub from: String,
    pub subject: String,
    pub subject_core: String,
    /// `normalize(subject_core)`: the key of the duplicate index.
    pub subject_norm: String,
    pub client_id: Option<String>,
    pub lang: String,
    pub text_norm: String,
    pub received_at: Timestamp,
    pub envelope: Envelope,
    pub decision: Decision,
    pub rules_revision: String,
    pub timings: Timings,
    pub sla: Option<SlaDue>,
    /// The reply to queue, if the policy asked for one and the sender may get it.
    pub reply: Option<ReplyIntent>,
    /// Why a reply the policy asked for is not sent, decided before the write.
    pub reply_suppressed: Option<String>,
    /// Daily reply limit per address (0: no limit).
    pub replies_per_day: u32,
    /// Domain for generated Message-IDs of replies.
    pub reply_domain: String,
}

/// A reply to send: rendered by the outbox at send time from these values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplyIntent {
    pub template: String,
    pub lang: String,
    pub to: String,
    pub original_subject: String,
    pub original_message_id: Option<String>,
    pub references: Vec<String>,
    /// Values for templates beyond the ticket's own: a staff reply's text, a
    /// status change, a sign-in link.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub vars: std::collections::BTreeMap<String, String>,
    /// Written by a person (a staff reply): not marked `Auto-Submitted`.
    #[serde(default)]
    pub human: bool,
}

/// Per-stage timings in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub parse_us: u64,
    pub facts_us: u64,
    pub policy_us: u64,
    pub store_us: u64,
}

/// The stored record of one message and its decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub seq: u64,
    pub message_id: Option<String>,
    pub from: String,
    pub subject: String,
    pub received_at: Timestamp,
    pub size: u64,
    pub envelope: Envelope,
    pub decision: Decision,
    pub rules_revision: String,
    pub timings: Timings,
    pub reply_message_id: Option<String>,
    pub reply_suppressed: Option<String>,
}

/// A queued reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxItem {
    /// Identity of the reply: message sequence number and template (sent log key).
    pub key: Vec<u8>,
    /// Position in the queue: due time, then `key`; the outbox tree is ordered by it.
    pub queue_key: Vec<u8>,
    pub seq: u64,
    pub ticket: Option<u64>,
    pub intent: ReplyIntent,
    pub message_id: String,
    pub attempts: u32,
    pub next_at: Timestamp,
    pub last_error: Option<String>,
    pub queued_at: Timestamp,
}

impl OutboxItem {
    /// A reply that is not the answer to a stored message (a staff reply, a
    /// status notification, a sign-in link): `key` must be unique per reply and
    /// is its identity in the sent log.
    pub fn standalone(
        key: Vec<u8>,
        ticket: Option<u64>,
        intent: ReplyIntent,
        message_id: String,
        at: Timestamp,
    ) -> OutboxItem {
        let next_at = at.min(Timestamp::now());
        OutboxItem {
            queue_key: queue_key(next_at, &key),
            key,
            seq: 0,
            ticket,
            intent,
            message_id,
            attempts: 0,
            next_at,
            last_error: None,
            queued_at: at,
        }
    }
}

/// A reply that left through the relay, or gave up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentRecord {
    pub item: OutboxItem,
    pub at: Timestamp,
    pub ok: bool,
}

/// What a commit produced.
#[derive(Debug, Clone)]
pub struct Committed {
    pub record: MessageRecord,
    /// True when the message had been filed before (idempotent re-delivery).
    pub redelivery: bool,
}

/// Handle on the sled database; clone freely.
///
/// The trees sit behind a swappable cell: sled poisons itself after an I/O error
/// (a full or read-only disk), so [`Store::heal`] drops the poisoned database and
/// opens it again from disk, and every clone of the handle carries on with the new one.
#[derive(Clone)]
pub struct Store {
    cell: Arc<std::sync::RwLock<Option<Arc<Trees>>>>,
    path: std::path::PathBuf,
    cache_bytes: u64,
    last_heal: Arc<std::sync::Mutex<Option<Instant>>>,
    first_number: u64,
}

/// The open database and its trees.
struct Trees {
    /// How many times the store was reopened before this database was opened: a
    /// write is durable only if a flush of the same generation followed it.
    generation: u64,
    db: sled::Db,
    raw: sled::Tree,
    messages: sled::Tree,
    dedup: sled::Tree,
    tickets: sled::Tree,
    thread: sled::Tree,
    owners: sled::Tree,
    senders: sled::Tree,
    outbox: sled::Tree,
    sent: sled::Tree,
    replies: sled::Tree,
    meta: sled::Tree,
}

/// Shortest pause between two attempts to reopen a failed store.
const HEAL_INTERVAL: Duration = Duration::from_millis(250);

const NEXT_TICKET: &[u8] = b"next_ticket";
const NEXT_SEQ: &[u8] = b"next_seq";

fn be(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

fn ts_key(t: Timestamp) -> [u8; 8] {
    // Offset so that instants before 1970 still sort correctly.
    ((t.as_second() as i128 + (1i128 << 62)) as u64).to_be_bytes()
}

fn prefixed(prefix: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + 1 + parts.iter().map(|p| p.len()).sum::<usize>());
    k.extend_from_slice(prefix.as_bytes());
    k.push(0);
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

fn read_u64(v: Option<sled::IVec>) -> Option<u64> {
    v.and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
        .map(u64::from_be_bytes)
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

fn abort<T>(e: StoreError) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(e))
}

/// Whether the store at `path` was created with sled's own compression (by versions
/// before values were compressed one by one): sled refuses to open it otherwise, so
/// such a store keeps it. New stores are created without it.
fn sled_compressed(path: &std::path::Path) -> bool {
    // sled's `conf`: `key: value` lines, then a CRC32 (so not UTF-8 as a whole).
    std::fs::read(path.join("conf")).is_ok_and(|conf| {
        conf.split(|&b| b == b'\n')
            .any(|l| l == b"use_compression: true")
    })
}

fn open_trees(
    path: &std::path::Path,
    cache_bytes: u64,
    generation: u64,
) -> Result<Trees, StoreError> {
    let db = sled::Config::new()
        .path(path)
        .cache_capacity(cache_bytes.max(8 * 1024 * 1024))
        .use_compression(sled_compressed(path))
        .compression_factor(3)
        .flush_every_ms(Some(1000))
        .open()
        .map_err(StoreError::sled("open"))?;
    let t = |name: &str| db.open_tree(name).map_err(StoreError::sled("open tree"));
    Ok(Trees {
        generation,
        raw: t("raw")?,
        messages: t("messages")?,
        dedup: t("dedup")?,
        tickets: t("tickets")?,
        thread: t("thread")?,
        owners: t("owners")?,
        senders: t("senders")?,
        outbox: t("outbox")?,
        sent: t("sent")?,
        replies: t("replies")?,
        meta: t("meta")?,
        db,
    })
}

impl Store {
    /// Opens (creating) the database under `path`.
    ///
    /// # Errors
    /// The directory cannot be created or opened (e.g. locked by another process).
    pub fn open(
        path: &std::path::Path,
        first_number: u64,
        cache_bytes: u64,
    ) -> Result<Store, StoreError> {
        let trees = open_trees(path, cache_bytes, 0)?;
        Ok(Store {
            cell: Arc::new(std::sync::RwLock::new(Some(Arc::new(trees)))),
            path: path.to_owned(),
            cache_bytes,
            last_heal: Arc::default(),
            first_number,
        })
    }

    /// The open trees; an error while the store is being reopened.
    fn t(&self) -> Result<Arc<Trees>, StoreError> {
        self.cell
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(StoreError::Reopening)
    }

    /// After an I/O error: drops the (poisoned) database and opens it again from
    /// disk, at most once per `HEAL_INTERVAL`. What was flushed before the fault is
    /// there again; what was not was answered with an error and will be retried.
    ///
    /// # Errors
    /// The database cannot be opened yet (the fault persists).
    pub fn heal(&self) -> Result<(), StoreError> {
        {
            let mut last = self.last_heal.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|at| at.elapsed() < HEAL_INTERVAL) {
                return Err(StoreError::Reopening);
            }
            *last = Some(Instant::now());
        }
        let mut cell = self.cell.write().unwrap_or_else(|p| p.into_inner());
        let generation = cell.as_ref().map_or(0, |t| t.generation) + 1;
        // sled holds a file lock until every handle on the old database is gone;
        // readers hold one only for the duration of a call.
        if let Some(old) = cell.take() {
            let deadline = Instant::now() + Duration::from_secs(2);
            let mut old = Some(old);
            while let Some(o) = old.take() {
                match Arc::try_unwrap(o) {
                    Ok(trees) => drop(trees),
                    Err(shared) if Instant::now() < deadline => {
                        old = Some(shared);
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(shared) => drop(shared),
                }
            }
        }
        let mut err = None;
        for _ in 0..20 {
            match open_trees(&self.path, self.cache_bytes, generation) {
                Ok(trees) => {
                    *cell = Some(Arc::new(trees));
                    tracing::warn!(path = %self.path.display(), "store reopened after a fault");
                    return Ok(());
                }
                Err(e) => {
                    let locked = matches!(&e, StoreError::Sled { source: sled::Error::Io(io), .. } if io.kind() == std::io::ErrorKind::WouldBlock)
                        || e.to_string().contains("lock")
                        || format!("{e:?}").contains("lock");
                    err = Some(e);
                    if !locked {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
        Err(err.unwrap_or(StoreError::Reopening))
    }

    /// Makes everything written so far durable.
    ///
    /// # Errors
    /// The fsync failed (disk full, read-only file system).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.flush_generation().map(|_| ())
    }

    /// Flushes, and tells which generation of the database it made durable (see
    /// [`Store::heal`]): writes made on an earlier one were lost with it.
    fn flush_generation(&self) -> Result<u64, StoreError> {
        let t = self.t()?;
        t.db.flush().map_err(StoreError::sled("flush"))?;
        Ok(t.generation)
    }

    /// Whether the database answers reads and writes (for `/readyz`).
    ///
    /// The probe is flushed: a full or read-only disk only shows when sled writes.
    /// A failed probe tries to reopen the store (see [`Store::heal`]) and probes again.
    pub fn check(&self) -> Result<(), StoreError> {
        let probe = || -> Result<(), StoreError> {
            self.t()?
                .meta
                .insert(b"ready_probe", &be(Timestamp::now().as_second() as u64))
                .map_err(StoreError::sled("probe"))?;
            self.flush()
        };
        probe().or_else(|e| match self.heal() {
            Ok(()) => probe(),
            Err(_) => Err(e),
        })
    }

    /// The message filed under a dedup key, if any.
    ///
    /// # Errors
    /// Read failures and corrupt records.
    pub fn find_filed(&self, dedup_key: &[u8]) -> Result<Option<MessageRecord>, StoreError> {
        match read_u64(
            self.t()?
                .dedup
                .get(dedup_key)
                .map_err(StoreError::sled("read dedup"))?,
        ) {
            Some(seq) => self.message(seq),
            None => Ok(None),
        }
    }

    /// A message record by sequence number.
    ///
    /// # Errors
    /// Read failures and corrupt records.
    pub fn message(&self, seq: u64) -> Result<Option<MessageRecord>, StoreError> {
        self.t()?
            .messages
            .get(be(seq))
            .map_err(StoreError::sled("read message"))?
            .map(|b| dec("messages", &b))
            .transpose()
    }

    /// The raw bytes of a stored message.
    ///
    /// # Errors
    /// Read failures.
    pub fn raw_message(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let t = self.t()?;
        let Some(value) = t
            .messages
            .get(be(seq))
            .map_err(StoreError::sled("read message"))?
        else {
            return Ok(None);
        };
        if let Some(raw) = codec::message_raw("messages", &value)? {
            return Ok(Some(raw));
        }
        // Written by an earlier version: the raw bytes have their own tree.
        Ok(t.raw
            .get(be(seq))
            .map_err(StoreError::sled("read raw"))?
            .map(|v| v.to_vec()))
    }

    /// A ticket by number.
    ///
    /// # Errors
    /// Read failures and corrupt records.
    pub fn ticket(&self, number: u64) -> Result<Option<Ticket>, StoreError> {
        self.t()?
            .tickets
            .get(be(number))
            .map_err(StoreError::sled("read ticket"))?
            .map(|b| dec("tickets", &b))
            .transpose()
    }

    /// The ticket a stored message or sent reply with this Message-ID belongs to.
    ///
    /// # Errors
    /// Read failures.
    pub fn ticket_for_message_id(&self, message_id: &str) -> Result<Option<u64>, StoreError> {
        let key = normalise_id(message_id);
        Ok(read_u64(
            self.t()?
                .thread
                .get(key.as_bytes())
                .map_err(StoreError::sled("read thread"))?,
        ))
    }

    /// Open tickets of an owner key (`client:MI-1` or `sender:a@b`) created at or after `since`.
    ///
    /// # Errors
    /// Read failures and corrupt records.
    pub fn open_tickets(
        &self,
        owner_key: &str,
        since: Timestamp,
    ) -> Result<Vec<Ticket>, StoreError> {
        self.open_tickets_in(owner_key, since)
    }

    /// Open tickets of an owner key with this normalised core subject, created at or
    /// after `since`: the duplicate look-up, whose cost does not grow with the
    /// owner's other tickets.
    ///
    /// # Errors
    /// Read failures and corrupt records.
    pub fn open_tickets_about(
        &self,
        owner_key: &str,
        subject_norm: &str,
        since: Timestamp,
    ) -> Result<Vec<Ticket>, StoreError> {
        self.open_tickets_in(&about_key(owner_key, subject_norm), since)
    }

    fn open_tickets_in(
        &self,
        index_key: &str,
        since: Timestamp,
    ) -> Result<Vec<Ticket>, StoreError> {
        let start = prefixed(index_key, &[&ts_key(since)]);
        let end = prefixed(index_key, &[&[0xff; 16]]);
        let mut out = self.indexed_tickets(start, end)?;
        out.retain(|t| t.status.is_open());
        Ok(out)
    }

    /// The tickets an owners-index key range names (the number ends each key).
    fn indexed_tickets(&self, start: Vec<u8>, end: Vec<u8>) -> Result<Vec<Ticket>, StoreError> {
        let mut out = Vec::new();
        for item in self.t()?.owners.range(start..end) {
            let (k, _) = item.map_err(StoreError::sled("scan owners"))?;
            let Some(num) = k
                .get(k.len().saturating_sub(8)..)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
            else {
                continue;
            };
            if let Some(t) = self.ticket(u64::from_be_bytes(num))? {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// Messages from `sender` stored with a receipt time in `(since, until]`,
    /// counted up to `limit` (the scan stops there).
    ///
    /// # Errors
    /// Read failures.
    pub fn count_from_sender(
        &self,
        sender: &str,
        since: Timestamp,
        until: Timestamp,
        limit: u64,
    ) -> Result<u64, StoreError> {
        let start = prefixed(
            sender,
            &[&ts_key(since + jiff::SignedDuration::from_secs(1))],
        );
        let end = prefixed(
            sender,
            &[&ts_key(until + jiff::SignedDuration::from_secs(1))],
        );
        let mut n = 0;
        for item in self.t()?.senders.range(start..end) {
            if n >= limit {
                break;
            }
            item.map_err(StoreError::sled("scan senders"))?;
            n += 1;
        }
        Ok(n)
    }

    /// Every queued reply, oldest first.
    ///
    /// # Errors
    /// Read failures and corrupt records.
    pub fn outbox_items(&self) -> Result<Vec<OutboxItem>, StoreError> {
        self.t()?
            .outbox
            .iter()
            .map(|r| {
                let (_, v) = r.map_err(StoreError::sled("scan outbox"))?;
                dec("outbox", &v)
            })
            .collect()
    }

    /// The queued reply due first, if it is due at `now`.
    ///
    /// # Errors
    /// Read failures and corrupt records.
    pub fn next_due(&self, now: Timestamp) -> Result<Option<OutboxItem>, StoreError> {
        let Some(first) = self
            .t()?
            .outbox
            .first()
            .map_err(StoreError::sled("read outbox"))?
        else {
            return Ok(None);
        };
        let item: OutboxItem = dec("outbox", &first.1)?;
        Ok((item.next_at <= now).then_some(item))
    }

    /// Number of queued replies.
    pub fn outbox_len(&self) -> usize {
        self.t().map(|t| t.outbox.len()).unwrap_or(0)
    }

    /// Records a failed attempt and when to try again.
    ///
    /// # Errors
    /// Write failures.
    pub fn reschedule(&self, item: &mut OutboxItem) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        batch.remove(item.queue_key.as_slice());
        item.queue_key = queue_key(item.next_at, &item.key);
        batch.insert(item.queue_key.as_slice(), enc(item));
        self.t()?
            .outbox
            .apply_batch(batch)
            .map_err(StoreError::sled("reschedule"))?;
        self.flush()
    }

    /// Moves a reply from the outbox to the sent log, durably, exactly once.
    ///
    /// # Errors
    /// Write failures.
    pub fn mark_done(&self, item: &OutboxItem, ok: bool, at: Timestamp) -> Result<(), StoreError> {
        let rec = SentRecord {
            item: item.clone(),
            at,
            ok,
        };
        let t = self.t()?;
        (&t.outbox, &t.sent)
            .transaction(|(outbox, sent)| {
                outbox.remove(item.queue_key.as_slice())?;
                sent.insert(item.key.as_slice(), enc(&rec))?;
                Ok(())
            })
            .map_err(|e: TransactionError<StoreError>| match e {
                TransactionError::Abort(e) => e,
                TransactionError::Storage(source) => StoreError::Sled {
                    op: "mark sent",
                    source,
                },
            })?;
        self.flush()
    }

    /// Every sent (or abandoned) reply record.
    ///
    /// # Errors
    /// Read failures and corrupt records.
    pub fn sent_items(&self) -> Result<Vec<SentRecord>, StoreError> {
        self.t()?
            .sent
            .iter()
            .map(|r| {
                let (_, v) = r.map_err(StoreError::sled("scan sent"))?;
                dec("sent", &v)
            })
            .collect()
    }

    /// Messages of a ticket, oldest first.
    ///
    /// # Errors
    /// Read failures and corrupt records.
    pub fn ticket_messages(&self, ticket: &Ticket) -> Result<Vec<MessageRecord>, StoreError> {
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
    pub fn all_tickets(&self) -> Result<Vec<Ticket>, StoreError> {
        self.t()?
            .tickets
            .iter()
            .map(|r| {
                let (_, v) = r.map_err(StoreError::sled("scan tickets"))?;
                dec("tickets", &v)
            })
            .collect()
    }

    /// Every ticket of a client (open or not), newest first: the portal's list.
    ///
    /// # Errors
    /// Read failures and corrupt records.
    pub fn client_tickets(&self, client_id: &str) -> Result<Vec<Ticket>, StoreError> {
        let key = format!("client:{client_id}");
        let start = prefixed(&key, &[]);
        let end = prefixed(&key, &[&[0xff; 16]]);
        let mut out = self.indexed_tickets(start, end)?;
        out.sort_by_key(|t| std::cmp::Reverse(t.number));
        out.dedup_by_key(|t| t.number);
        Ok(out)
    }

    /// Queues a reply that belongs to no stored message (a sign-in link), durably.
    ///
    /// # Errors
    /// Write failures.
    pub fn enqueue(&self, item: &OutboxItem) -> Result<(), StoreError> {
        self.t()?
            .outbox
            .insert(item.queue_key.as_slice(), enc(item))
            .map_err(StoreError::sled("enqueue"))?;
        self.flush()
    }

    /// A named tree of the same database, for modules that keep their own
    /// records (the portal's sign-in links and sessions).
    ///
    /// # Errors
    /// sled cannot open the tree.
    pub fn tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        self.t()?
            .db
            .open_tree(name)
            .map_err(StoreError::sled("open tree"))
    }

    /// Changes one ticket in a transaction and durably: `change` edits the ticket
    /// and returns the replies to queue (each indexed in the thread tree under its
    /// Message-ID, so answers to it thread back) and a value for the caller.
    ///
    /// # Errors
    /// No such ticket; `change` refused (its error aborts everything); writes failed.
    pub fn change_ticket<T, F>(&self, number: u64, change: F) -> Result<T, StoreError>
    where
        F: Fn(&mut Ticket) -> Result<(T, Vec<OutboxItem>), StoreError>,
    {
        let trees = self.t()?;
        let res = (&trees.tickets, &trees.outbox, &trees.thread).transaction(
            |(tickets, outbox, thread)| {
                let Some(bytes) = tickets.get(be(number))? else {
                    return abort(StoreError::NoSuchTicket(number));
                };
                let mut ticket: Ticket = dec("tickets", &bytes).or_else(abort)?;
                let (out, items) = change(&mut ticket).or_else(abort)?;
                for item in &items {
                    outbox.insert(item.queue_key.as_slice(), enc(item))?;
                    thread.insert(normalise_id(&item.message_id).as_bytes(), &be(number))?;
                }
                tickets.insert(&be(number), enc(&ticket))?;
                Ok(out)
            },
        );
        let out = match res {
            Ok(v) => v,
            Err(TransactionError::Abort(e)) => return Err(e),
            Err(TransactionError::Storage(source)) => {
                return Err(StoreError::Sled {
                    op: "change ticket",
                    source,
                })
            }
        };
        self.flush()?;
        Ok(out)
    }

    /// Applies one filing in a transaction (no flush), compressing its raw bytes here.
    #[cfg(test)]
    fn apply(&self, f: &Filing) -> Result<Committed, StoreError> {
        self.apply_packed(f, &PackedRaw::pack(&f.raw)).1
    }

    /// Applies one filing whose raw bytes are already packed, in one transaction
    /// (no flush). Used by the committer.
    /// Returns the generation of the database written to, with the outcome.
    fn apply_packed(&self, f: &Filing, raw: &PackedRaw) -> (u64, Result<Committed, StoreError>) {
        let t = match self.t() {
            Ok(t) => t,
            Err(e) => return (0, Err(e)),
        };
        let trees = [
            &t.messages,
            &t.dedup,
            &t.tickets,
            &t.thread,
            &t.owners,
            &t.senders,
            &t.outbox,
            &t.replies,
            &t.meta,
        ];
        let first_number = self.first_number;
        let res = trees
            .as_slice()
            .transaction(|t| apply_tx(t, f, raw, first_number));
        let out = match res {
            Ok(c) => Ok(c),
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(source)) => Err(StoreError::Sled {
                op: "file message",
                source,
            }),
        };
        (t.generation, out)
    }
}

/// Index key of an owner's tickets about one normalised core subject.
fn about_key(owner_key: &str, subject_norm: &str) -> String {
    let h = blake3::hash(subject_norm.as_bytes());
    let hex: String = h.as_bytes()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("about:{owner_key}:{hex}")
}

fn queue_key(due: Timestamp, key: &[u8]) -> Vec<u8> {
    let mut k = ts_key(due).to_vec();
    k.extend_from_slice(key);
    k
}

/// Message-IDs are compared without angle brackets and surrounding space.
pub fn normalise_id(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_owned()
}

fn apply_tx(
    t: &[TransactionalTree],
    f: &Filing,
    raw: &PackedRaw,
    first_number: u64,
) -> TxResult<Committed> {
    let [messages, dedup, tickets, thread, owners, senders, outbox, replies, meta] = t else {
        return abort(StoreError::Corrupt {
            tree: "transaction",
            message: "wrong tree count".into(),
        });
    };
    if let Some(seq) = read_u64(dedup.get(&f.dedup_key)?) {
        let Some(bytes) = messages.get(be(seq))? else {
            return abort(StoreError::Corrupt {
                tree: "dedup",
                message: format!("points at missing message {seq}"),
            });
        };
        let record: MessageRecord = dec("messages", &bytes).or_else(abort)?;
        return Ok(Committed {
            record,
            redelivery: true,
        });
    }
    let seq = read_u64(meta.get(NEXT_SEQ)?).unwrap_or(1);
    meta.insert(NEXT_SEQ, &be(seq + 1))?;
    let mut decision = f.decision.clone();
    let ticket_number = match decision.outcome {
        Outcome::Create => {
            let number = read_u64(meta.get(NEXT_TICKET)?)
                .unwrap_or(first_number)
                .max(first_number);
            meta.insert(NEXT_TICKET, &be(number + 1))?;
            let status = decision.status.unwrap_or(Status::New);
            let mut ticket = Ticket {
                number,
                status,
                client_id: f.client_id.clone(),
                owner: f.from.clone(),
                subject: f.subject.clone(),
                subject_core: f.subject_core.clone(),
                lang: f.lang.clone(),
                created_at: f.received_at,
                updated_at: f.received_at,
                sla: f.sla.clone(),
                messages: vec![seq],
                text_norm: f.text_norm.clone(),
                events: vec![TicketEvent {
                    at: f.received_at,
                    kind: "created".into(),
                    detail: status.as_str().into(),
                    by: Some(format!("client:{}", f.from)),
                    to: Some(status),
                    message_id: f.message_id.clone(),
                    public: true,
                    ..TicketEvent::default()
                }],
                timers: crate::lifecycle::Timers::default(),
                link: decision.link,
            };
            crate::lifecycle::on_created(&mut ticket);
            tickets.insert(&be(number), enc(&ticket))?;
            let mut owner_keys = Vec::with_capacity(2);
            if let Some(c) = &f.client_id {
                owner_keys.push(format!("client:{c}"));
            }
            if !f.from.is_empty() {
                owner_keys.push(format!("sender:{}", f.from));
            }
            for owner in owner_keys {
                let when = [&ts_key(f.received_at)[..], &be(number)[..]];
                owners.insert(prefixed(&about_key(&owner, &f.subject_norm), &when), &[])?;
                owners.insert(prefixed(&owner, &when), &[])?;
            }
            decision.status = Some(status);
            Some(number)
        }
        Outcome::Append | Outcome::Duplicate => {
            let number = decision.ticket.unwrap_or(0);
            let Some(bytes) = tickets.get(be(number))? else {
                return abort(StoreError::NoSuchTicket(number));
            };
            let mut ticket: Ticket = dec("tickets", &bytes).or_else(abort)?;
            ticket.messages.push(seq);
            ticket.updated_at = f.received_at;
            ticket.events.push(TicketEvent {
                at: f.received_at,
                kind: decision.outcome.as_str().into(),
                detail: format!("message {seq}"),
                by: Some(format!("client:{}", f.from)),
                message_id: f.message_id.clone(),
                public: true,
                ..TicketEvent::default()
            });
            if let (Outcome::Append, Some(to)) = (decision.outcome, decision.status) {
                // The policy asked to resume or reopen; the lifecycle decides
                // against the status the ticket has now.
                crate::lifecycle::client_answer(&mut ticket, to, &f.from, f.received_at);
            }
            tickets.insert(&be(number), enc(&ticket))?;
            decision.status = Some(ticket.status);
            Some(number)
        }
        Outcome::Reject | Outcome::Ignore => None,
    };
    decision.ticket = ticket_number;
    if let (Some(id), Some(n)) = (&f.message_id, ticket_number) {
        thread.insert(normalise_id(id).as_bytes(), &be(n))?;
    }
    if !f.from.is_empty() {
        senders.insert(prefixed(&f.from, &[&ts_key(f.received_at), &be(seq)]), &[])?;
    }
    let mut reply_message_id = None;
    let mut reply_suppressed = f.reply_suppressed.clone();
    if let Some(intent) = &f.reply {
        let day_ago = f.received_at - jiff::SignedDuration::from_hours(24);
        // TransactionalTree has no range scan: the reply log keeps the recent
        // reply times of an address under one key.
        let log_key = prefixed(&intent.to, &[]);
        let mut recent: Vec<i64> = replies
            .get(&log_key)?
            .map(|b| dec::<Vec<i64>>("replies", &b))
            .transpose()
            .or_else(abort)?
            .unwrap_or_default();
        recent.retain(|&s| s > day_ago.as_second());
        if f.replies_per_day > 0 && recent.len() >= f.replies_per_day as usize {
            reply_suppressed = Some("rate_limit".into());
        } else {
            recent.push(f.received_at.as_second());
            replies.insert(log_key, enc(&recent))?;
            let id = format!("intake.{seq}.{}@{}", intent.template, f.reply_domain);
            let mut key = be(seq).to_vec();
            key.extend_from_slice(intent.template.as_bytes());
            let next_at = f.received_at.min(Timestamp::now());
            let item = OutboxItem {
                queue_key: queue_key(next_at, &key),
                key,
                seq,
                ticket: ticket_number,
                intent: intent.clone(),
                message_id: id.clone(),
                attempts: 0,
                next_at,
                last_error: None,
                queued_at: f.received_at,
            };
            outbox.insert(item.queue_key.as_slice(), enc(&item))?;
            if let Some(n) = ticket_number {
                thread.insert(id.as_bytes(), &be(n))?;
            }
            reply_message_id = Some(id);
        }
    }
    if reply_suppressed.is_some() {
        decision.reply = None;
    }
    let record = MessageRecord {
        seq,
        message_id: f.message_id.clone(),
        from: f.from.clone(),
        subject: f.subject.clone(),
        received_at: f.received_at,
        size: f.raw.len() as u64,
        envelope: f.envelope.clone(),
        decision,
        rules_revision: f.rules_revision.clone(),
        timings: f.timings.clone(),
        reply_message_id,
        reply_suppressed,
    };
    messages.insert(&be(seq), codec::enc_message(&record, raw))?;
    dedup.insert(f.dedup_key.as_slice(), &be(seq))?;
    Ok(Committed {
        record,
        redelivery: false,
    })
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Finding;

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
        let store = Store::open(dir.path(), 100_001, 0).unwrap();
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
        let store = Store::open(dir.path(), 100_001, 0).unwrap();
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
        let store = Store::open(dir.path(), 100_001, 0).unwrap();
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
        let store = Store::open(dir.path(), 100_001, 0).unwrap();
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
    fn committer_flushes_and_answers() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 100_001, 0).unwrap();
        let c = Committer::start(store.clone(), Duration::from_millis(1));
        let r = c
            .commit_blocking(filing("a", Outcome::Create, None))
            .unwrap();
        assert_eq!(r.record.decision.ticket, Some(100_001));
        assert!(store.ticket(100_001).unwrap().is_some());
    }
}
#[cfg(test)]
mod reopen_tests {
    use super::*;

    #[test]
    fn stores_of_earlier_versions_stay_readable() {
        // Written the way earlier versions did: sled compression, bare JSON
        // records, the raw bytes in their own tree.
        let dir = tempfile::tempdir().unwrap();
        let mut record = Store::open(tempfile::tempdir().unwrap().path(), 100_001, 0)
            .unwrap()
            .apply(&tests::filing_pub("a"))
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
        let store = Store::open(dir.path(), 100_001, 0).unwrap();
        assert_eq!(store.message(1).unwrap(), Some(record));
        assert_eq!(
            store.raw_message(1).unwrap().as_deref(),
            Some(&b"old raw"[..])
        );
        assert!(store.apply(&tests::filing_pub("a")).unwrap().redelivery);
    }

    #[test]
    fn counters_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), 100_001, 0).unwrap();
            let c = Committer::start(store.clone(), Duration::from_millis(1));
            let mut f = tests::filing_pub("a");
            f.decision.outcome = Outcome::Create;
            let r = c.commit_blocking(f).unwrap();
            assert_eq!(r.record.decision.ticket, Some(100_001));
        }
        std::thread::sleep(Duration::from_millis(200));
        let store = Store::open(dir.path(), 100_001, 0).unwrap();
        eprintln!(
            "meta next_ticket = {:?}",
            store.t().unwrap().meta.get(NEXT_TICKET).unwrap()
        );
        let r = store.apply(&tests::filing_pub("b")).unwrap();
        assert_eq!(r.record.decision.ticket, Some(100_002));
    }
}
