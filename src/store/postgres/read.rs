//! PostgreSQL engine, reads: records by key, and the policy's look-ups as
//! indexed queries (ticket by number, by Message-ID, open tickets of an owner
//! about a subject, a sender's messages in a window) whose cost does not grow
//! with the number of tickets.

use jiff::Timestamp;

use super::{i64_of, text, u64_of, Pg, PgStore};
use crate::store::codec::dec;
use crate::store::{normalise_id, MessageRecord, PackedRaw, StoreError, Ticket};

impl PgStore {
    pub(super) fn find_filed(&self, dedup_key: &[u8]) -> Result<Option<MessageRecord>, StoreError> {
        self.block(async {
            let c = self.conn().await?;
            let st = c
                .prepare_cached("SELECT record FROM messages WHERE dedup_key = $1")
                .await
                .pg("prepare")?;
            c.query_opt(&st, &[&dedup_key])
                .await
                .pg("read dedup")?
                .map(|r| dec("messages", r.get::<_, &[u8]>(0)))
                .transpose()
        })
    }

    pub(super) fn message(&self, seq: u64) -> Result<Option<MessageRecord>, StoreError> {
        self.block(async {
            let c = self.conn().await?;
            let st = c
                .prepare_cached("SELECT record FROM messages WHERE seq = $1")
                .await
                .pg("prepare")?;
            c.query_opt(&st, &[&i64_of(seq)])
                .await
                .pg("read message")?
                .map(|r| dec("messages", r.get::<_, &[u8]>(0)))
                .transpose()
        })
    }

    /// The raw bytes, checked against the hash stored beside them.
    pub(super) fn raw_message(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.block(async {
            let c = self.conn().await?;
            let Some(row) = c
                .query_opt(
                    "SELECT raw, raw_hash FROM messages WHERE seq = $1",
                    &[&i64_of(seq)],
                )
                .await
                .pg("read raw")?
            else {
                return Ok(None);
            };
            let raw = PackedRaw::unpack("messages", row.get::<_, &[u8]>(0))?;
            if super::filing::raw_hash(&raw) != row.get::<_, &[u8]>(1) {
                return Err(StoreError::Corrupt {
                    tree: "messages",
                    message: format!("raw bytes of message {seq} do not match their checksum"),
                });
            }
            Ok(Some(raw))
        })
    }

    pub(super) fn ticket(&self, number: u64) -> Result<Option<Ticket>, StoreError> {
        self.block(async {
            let c = self.conn().await?;
            let st = c
                .prepare_cached("SELECT record FROM tickets WHERE number = $1")
                .await
                .pg("prepare")?;
            c.query_opt(&st, &[&i64_of(number)])
                .await
                .pg("read ticket")?
                .map(|r| dec("tickets", r.get::<_, &[u8]>(0)))
                .transpose()
        })
    }

    pub(super) fn ticket_for_message_id(
        &self,
        message_id: &str,
    ) -> Result<Option<u64>, StoreError> {
        let id = text(&normalise_id(message_id)).into_owned();
        self.block(async {
            let c = self.conn().await?;
            let st = c
                .prepare_cached("SELECT ticket FROM thread WHERE message_id = $1")
                .await
                .pg("prepare")?;
            Ok(c.query_opt(&st, &[&id])
                .await
                .pg("read thread")?
                .map(|r| u64_of(r.get(0))))
        })
    }

    pub(super) fn open_tickets(
        &self,
        owner_key: &str,
        since: Timestamp,
    ) -> Result<Vec<Ticket>, StoreError> {
        self.tickets_where(
            "SELECT t.record FROM ticket_owners o JOIN tickets t ON t.number = o.number
             WHERE o.owner_key = $1 AND o.created_s >= $2
               AND t.status NOT IN ('resolved', 'closed')
             ORDER BY o.created_s, o.number",
            &[&text(owner_key).as_ref(), &since.as_second()],
        )
    }

    pub(super) fn open_tickets_about(
        &self,
        owner_key: &str,
        subject_norm: &str,
        since: Timestamp,
    ) -> Result<Vec<Ticket>, StoreError> {
        self.tickets_where(
            "SELECT t.record FROM ticket_owners o JOIN tickets t ON t.number = o.number
             WHERE o.owner_key = $1 AND o.subject_norm = $2 AND o.created_s >= $3
               AND t.status NOT IN ('resolved', 'closed')
             ORDER BY o.created_s, o.number",
            &[
                &text(owner_key).as_ref(),
                &text(subject_norm).as_ref(),
                &since.as_second(),
            ],
        )
    }

    pub(super) fn all_tickets(&self) -> Result<Vec<Ticket>, StoreError> {
        self.tickets_where("SELECT record FROM tickets ORDER BY number", &[])
    }

    pub(super) fn client_tickets(&self, client_id: &str) -> Result<Vec<Ticket>, StoreError> {
        self.tickets_where(
            "SELECT record FROM tickets WHERE client_id = $1 ORDER BY number DESC",
            &[&text(client_id).as_ref()],
        )
    }

    fn tickets_where(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Ticket>, StoreError> {
        self.block(async {
            let c = self.conn().await?;
            let st = c.prepare_cached(sql).await.pg("prepare")?;
            let mut out: Vec<Ticket> = c
                .query(&st, params)
                .await
                .pg("read tickets")?
                .iter()
                .map(|r| dec("tickets", r.get::<_, &[u8]>(0)))
                .collect::<Result<_, _>>()?;
            // The status column is what the query filtered on; the record decides.
            if sql.contains("NOT IN") {
                out.retain(|t| t.status.is_open());
            }
            Ok(out)
        })
    }

    pub(super) fn count_from_sender(
        &self,
        sender: &str,
        since: Timestamp,
        until: Timestamp,
        limit: u64,
    ) -> Result<u64, StoreError> {
        let sender = text(sender).into_owned();
        self.block(async {
            let c = self.conn().await?;
            let st = c
                .prepare_cached(
                    "SELECT count(*) FROM (SELECT 1 FROM messages
                         WHERE sender = $1 AND received_s > $2 AND received_s <= $3 LIMIT $4) m",
                )
                .await
                .pg("prepare")?;
            let n: i64 = c
                .query_one(
                    &st,
                    &[
                        &sender,
                        &since.as_second(),
                        &until.as_second(),
                        &i64_of(limit),
                    ],
                )
                .await
                .pg("count sender")?
                .get(0);
            Ok(u64_of(n))
        })
    }
}
