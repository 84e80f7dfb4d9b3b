//! sled engine, the reply queue: queued replies ordered by due time → the sent
//! log, each move made durable.

use jiff::Timestamp;
use sled::transaction::TransactionError;
use sled::Transactional;

use super::{dec, enc, sled_err, SledStore};
use crate::store::{queue_key, OutboxItem, SentRecord, StoreError};

impl SledStore {
    /// Every queued reply, oldest first.
    ///
    /// # Errors
    /// Read failures and corrupt records.
    pub fn outbox_items(&self) -> Result<Vec<OutboxItem>, StoreError> {
        self.t()?
            .outbox
            .iter()
            .map(|r| {
                let (_, v) = r.map_err(sled_err("scan outbox"))?;
                dec("outbox", &v)
            })
            .collect()
    }

    /// The queued reply due first, if it is due at `now`.
    ///
    /// # Errors
    /// Read failures and corrupt records.
    pub fn next_due(&self, now: Timestamp) -> Result<Option<OutboxItem>, StoreError> {
        let Some(first) = self.t()?.outbox.first().map_err(sled_err("read outbox"))? else {
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
            .map_err(sled_err("reschedule"))?;
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
                let (_, v) = r.map_err(sled_err("scan sent"))?;
                dec("sent", &v)
            })
            .collect()
    }

    /// Queues a reply that belongs to no stored message (a sign-in link), durably.
    ///
    /// # Errors
    /// Write failures.
    pub fn enqueue(&self, item: &OutboxItem) -> Result<(), StoreError> {
        self.t()?
            .outbox
            .insert(item.queue_key.as_slice(), enc(item))
            .map_err(sled_err("enqueue"))?;
        self.flush()
    }
}
