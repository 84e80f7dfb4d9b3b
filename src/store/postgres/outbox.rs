//! PostgreSQL engine, the reply queue. [`PgStore::next_due`] claims the reply
//! due first for this node with `FOR UPDATE SKIP LOCKED` and a lease: nodes never
//! take the same reply while its lease runs, and a node that dies mid-send loses
//! its lease, after which another node sends the reply (at least once, with the
//! same Message-ID). Queuing a reply sends `NOTIFY intake_outbox`; every node
//! `LISTEN`s and wakes its outbox ([`PgStore::outbox_wake`]).

use std::time::Duration;

use jiff::Timestamp;

use super::{Pg, PgStore};
use crate::store::codec::{dec, enc};
use crate::store::{OutboxItem, SentRecord, StoreError};

/// How long a claimed reply stays this node's: longer than a send takes (the
/// SMTP timeout), short enough that a dead node's replies go out soon after.
pub(super) const LEASE: Duration = Duration::from_secs(30);

fn now_ms() -> i64 {
    Timestamp::now().as_millisecond()
}

impl PgStore {
    pub(super) fn outbox_items(&self) -> Result<Vec<OutboxItem>, StoreError> {
        self.block(async {
            let c = self.conn().await?;
            c.query("SELECT item FROM outbox ORDER BY next_ms, key", &[])
                .await
                .pg("read outbox")?
                .iter()
                .map(|r| dec("outbox", r.get::<_, &[u8]>(0)))
                .collect()
        })
    }

    /// The reply due first at `now` that no other node holds, claimed for this
    /// node for [`LEASE`].
    pub(super) fn next_due(&self, now: Timestamp) -> Result<Option<OutboxItem>, StoreError> {
        let lease = now_ms() + LEASE.as_millis() as i64;
        self.block(async {
            let c = self.conn().await?;
            let st = c
                .prepare_cached(
                    "UPDATE outbox SET lease_ms = $2, claimed_by = $3
                     WHERE key = (SELECT key FROM outbox
                                  WHERE next_ms <= $1
                                    AND (lease_ms IS NULL OR lease_ms < $4 OR claimed_by = $3)
                                  ORDER BY next_ms, key LIMIT 1
                                  FOR UPDATE SKIP LOCKED)
                     RETURNING item",
                )
                .await
                .pg("prepare")?;
            c.query_opt(
                &st,
                &[&now.as_millisecond(), &lease, &self.node(), &now_ms()],
            )
            .await
            .pg("claim reply")?
            .map(|r| dec("outbox", r.get::<_, &[u8]>(0)))
            .transpose()
        })
    }

    pub(super) fn outbox_len(&self) -> usize {
        self.block(async {
            let c = self.conn().await?;
            let n: i64 = c
                .query_one("SELECT count(*) FROM outbox", &[])
                .await
                .pg("count outbox")?
                .get(0);
            Ok::<_, StoreError>(usize::try_from(n).unwrap_or(0))
        })
        .unwrap_or(0)
    }

    /// Records an attempt, error or new due time; the lease is renewed (an
    /// attempt is starting) unless the reply is now due later (it is released).
    pub(super) fn reschedule(&self, item: &mut OutboxItem) -> Result<(), StoreError> {
        item.queue_key = crate::store::queue_key(item.next_at, &item.key);
        let value = enc(item);
        let next = item.next_at.as_millisecond();
        let lease = now_ms() + LEASE.as_millis() as i64;
        self.block(async {
            let c = self.conn().await?;
            c.execute(
                "UPDATE outbox SET item = $2::bytea, next_ms = $3::bigint,
                     lease_ms = CASE WHEN $3::bigint > $4::bigint THEN NULL ELSE $5::bigint END,
                     claimed_by = CASE WHEN $3::bigint > $4::bigint THEN NULL ELSE $6::text END
                 WHERE key = $1",
                &[&item.key, &value, &next, &now_ms(), &lease, &self.node()],
            )
            .await
            .pg("reschedule")?;
            Ok(())
        })
    }

    pub(super) fn mark_done(
        &self,
        item: &OutboxItem,
        ok: bool,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let rec = enc(&SentRecord {
            item: item.clone(),
            at,
            ok,
        });
        self.block(async {
            let mut c = self.conn().await?;
            let tx = c.transaction().await.pg("begin mark sent")?;
            tx.execute("DELETE FROM outbox WHERE key = $1", &[&item.key])
                .await
                .pg("mark sent")?;
            tx.execute(
                "INSERT INTO sent (key, at_s, ok, record) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (key) DO NOTHING",
                &[&item.key, &at.as_second(), &ok, &rec],
            )
            .await
            .pg("mark sent")?;
            tx.commit().await.pg("commit mark sent")
        })
    }

    pub(super) fn sent_items(&self) -> Result<Vec<SentRecord>, StoreError> {
        self.block(async {
            let c = self.conn().await?;
            c.query("SELECT record FROM sent ORDER BY key", &[])
                .await
                .pg("read sent")?
                .iter()
                .map(|r| dec("sent", r.get::<_, &[u8]>(0)))
                .collect()
        })
    }

    pub(super) fn enqueue(&self, item: &OutboxItem) -> Result<(), StoreError> {
        let value = enc(item);
        self.block(async {
            let c = self.conn().await?;
            c.execute(
                "INSERT INTO outbox (key, next_ms, item) VALUES ($1, $2, $3)
                 ON CONFLICT (key) DO UPDATE SET next_ms = excluded.next_ms, item = excluded.item,
                     lease_ms = NULL, claimed_by = NULL",
                &[&item.key, &item.next_at.as_millisecond(), &value],
            )
            .await
            .pg("enqueue")?;
            c.execute("SELECT pg_notify('intake_outbox', '')", &[])
                .await
                .pg("notify outbox")?;
            Ok(())
        })
    }

    /// Resolves when another node (or this one) queued a reply.
    pub(super) fn outbox_wake(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.inner.wake.clone()
    }
}

/// Keeps one connection listening on `intake_outbox`, reconnecting after a
/// fault, and wakes the outbox on each notification.
pub(super) fn listen(store: &PgStore, cfg: tokio_postgres::Config) {
    let wake = store.inner.wake.clone();
    let weak = std::sync::Arc::downgrade(&store.inner);
    store.rt().spawn(async move {
        use futures_util::StreamExt;
        loop {
            if weak.strong_count() == 0 {
                return;
            }
            match cfg.connect(tokio_postgres::NoTls).await {
                Ok((client, mut conn)) => {
                    let mut messages =
                        futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
                    let listen = client.batch_execute("LISTEN intake_outbox");
                    // The connection must be polled for LISTEN to complete.
                    let mut listen = std::pin::pin!(listen);
                    let mut listening = false;
                    loop {
                        tokio::select! {
                            r = &mut listen, if !listening => {
                                if r.is_err() { break; }
                                listening = true;
                                // Replies queued while not listening.
                                wake.notify_one();
                            }
                            m = messages.next() => match m {
                                Some(Ok(tokio_postgres::AsyncMessage::Notification(_))) => wake.notify_one(),
                                Some(Ok(_)) => {}
                                Some(Err(_)) | None => break,
                            },
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "outbox listener cannot connect"),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
}
