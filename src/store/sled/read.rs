//! sled engine, reads: look-ups by key and index ranges, straight from sled
//! (no committer involved): records, raw bytes, tickets and their indexes.

use jiff::Timestamp;

use super::{about_key, be, dec, prefixed, read_u64, sled_err, ts_key, value, SledStore};
use crate::store::{normalise_id, MessageRecord, StoreError, Ticket};

impl SledStore {
    /// The message filed under a dedup key, if any.
    ///
    /// # Errors
    /// Read failures and corrupt records.
    pub fn find_filed(&self, dedup_key: &[u8]) -> Result<Option<MessageRecord>, StoreError> {
        match read_u64(
            self.t()?
                .dedup
                .get(dedup_key)
                .map_err(sled_err("read dedup"))?,
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
            .map_err(sled_err("read message"))?
            .map(|b| dec("messages", &b))
            .transpose()
    }

    /// The raw bytes of a stored message: from the raw-message log, or from the
    /// message value or the `raw` tree for messages stored by earlier versions.
    ///
    /// # Errors
    /// Read failures; a raw-log entry whose checksum does not match
    /// ([`StoreError::Corrupt`]).
    pub fn raw_message(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let t = self.t()?;
        let Some(value) = t.messages.get(be(seq)).map_err(sled_err("read message"))? else {
            return Ok(None);
        };
        match value::message_raw("messages", &value)? {
            Some(value::RawSection::Logged(at)) => return t.rawlog.read(at).map(Some),
            Some(value::RawSection::Inline(raw)) => return Ok(Some(raw)),
            None => {}
        }
        // Written by an earlier version: the raw bytes have their own tree.
        Ok(t.raw
            .get(be(seq))
            .map_err(sled_err("read raw"))?
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
            .map_err(sled_err("read ticket"))?
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
                .map_err(sled_err("read thread"))?,
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
            let (k, _) = item.map_err(sled_err("scan owners"))?;
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
            item.map_err(sled_err("scan senders"))?;
            n += 1;
        }
        Ok(n)
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
                let (_, v) = r.map_err(sled_err("scan tickets"))?;
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
}
