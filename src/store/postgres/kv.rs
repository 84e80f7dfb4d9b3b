//! PostgreSQL engine, keyed collections: one `kv` table keyed by (collection,
//! key), bytea keys in byte order, so prefix scans page by an index range. Every
//! node sees the same sessions, sign-in links, counters and rate limits.

use std::time::Duration;

use jiff::Timestamp;

use super::{Pg, PgStore};
use crate::store::collections::{hits_from, hits_value, slide, validate_name};
use crate::store::{Entry, RateHit, StoreError, Write, Writes};

/// Advisory lock class of rate-limit keys (the window is read, then written).
const HIT_LOCK: i32 = 0x6b76;

fn entry(key: Vec<u8>, value: Vec<u8>, expires_ms: Option<i64>) -> Result<Entry, StoreError> {
    let expires_at = expires_ms
        .map(|ms| {
            Timestamp::from_millisecond(ms).map_err(|_| StoreError::Corrupt {
                tree: "kv",
                message: "expiry out of range".into(),
            })
        })
        .transpose()?;
    Ok(Entry {
        key,
        value,
        expires_at,
    })
}

/// The smallest byte string greater than every string starting with `prefix`
/// (`None`: no bound, the prefix is all 0xff or empty).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Applies `writes` in order inside `tx` (statements pipelined).
pub(super) async fn apply(
    tx: &deadpool_postgres::Transaction<'_>,
    writes: &Writes,
) -> Result<(), StoreError> {
    if writes.is_empty() {
        return Ok(());
    }
    writes.validate()?;
    let put = tx
        .prepare_cached(
            "INSERT INTO kv (collection, key, value, expires_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (collection, key) DO UPDATE SET value = excluded.value, expires_ms = excluded.expires_ms",
        )
        .await
        .pg("prepare")?;
    let del = tx
        .prepare_cached("DELETE FROM kv WHERE collection = $1 AND key = $2")
        .await
        .pg("prepare")?;
    let add = tx.prepare_cached(ADD).await.pg("prepare")?;
    let mut pending = Vec::with_capacity(writes.len());
    for w in writes.iter() {
        pending.push(async {
            match w {
                Write::Put {
                    collection,
                    key,
                    value,
                    expires_at,
                } => {
                    let ms = expires_at.map(|t| t.as_millisecond());
                    tx.execute(&put, &[collection, key, value, &ms]).await
                }
                Write::Delete { collection, key } => tx.execute(&del, &[collection, key]).await,
                Write::Add {
                    collection,
                    key,
                    delta,
                } => tx
                    .query_one(&add, &[collection, key, delta])
                    .await
                    .map(|_| 1),
            }
        });
    }
    for r in futures_util::future::join_all(pending).await {
        r.pg("write collection")?;
    }
    Ok(())
}

/// Adds to a counter (8 bytes, big-endian; a value that is not one counts as 0),
/// saturating like the sled engine; returns the new value.
const ADD: &str = "INSERT INTO kv (collection, key, value, expires_ms) VALUES ($1, $2, int8send($3::bigint), NULL)
     ON CONFLICT (collection, key) DO UPDATE SET expires_ms = NULL, value = int8send(
         greatest(-9223372036854775808::numeric, least(9223372036854775807::numeric,
             (CASE WHEN length(kv.value) = 8
                   THEN ('x' || encode(kv.value, 'hex'))::bit(64)::bigint ELSE 0 END)::numeric
             + $3::numeric))::bigint)
     RETURNING ('x' || encode(value, 'hex'))::bit(64)::bigint";

impl PgStore {
    pub(super) fn kv_get(&self, collection: &str, key: &[u8]) -> Result<Option<Entry>, StoreError> {
        validate_name(collection)?;
        self.block(async {
            let c = self.conn().await?;
            let st = c
                .prepare_cached(
                    "SELECT value, expires_ms FROM kv WHERE collection = $1 AND key = $2",
                )
                .await
                .pg("prepare")?;
            c.query_opt(&st, &[&collection, &key])
                .await
                .pg("read collection")?
                .map(|r| entry(key.to_vec(), r.get(0), r.get(1)))
                .transpose()
        })
    }

    pub(super) fn kv_scan(
        &self,
        collection: &str,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        validate_name(collection)?;
        let end = prefix_end(prefix);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.block(async {
            let c = self.conn().await?;
            let st = c
                .prepare_cached(
                    "SELECT key, value, expires_ms FROM kv
                     WHERE collection = $1 AND key >= $2 AND ($3::bytea IS NULL OR key < $3)
                       AND ($4::bytea IS NULL OR key > $4)
                     ORDER BY key LIMIT $5",
                )
                .await
                .pg("prepare")?;
            c.query(&st, &[&collection, &prefix, &end, &after, &limit])
                .await
                .pg("scan collection")?
                .into_iter()
                .map(|r| entry(r.get(0), r.get(1), r.get(2)))
                .collect()
        })
    }

    pub(super) fn kv_take(
        &self,
        collection: &str,
        key: &[u8],
    ) -> Result<Option<Entry>, StoreError> {
        validate_name(collection)?;
        self.block(async {
            let c = self.conn().await?;
            c.query_opt(
                "DELETE FROM kv WHERE collection = $1 AND key = $2 RETURNING value, expires_ms",
                &[&collection, &key],
            )
            .await
            .pg("take from collection")?
            .map(|r| entry(key.to_vec(), r.get(0), r.get(1)))
            .transpose()
        })
    }

    pub(super) fn kv_write(&self, writes: &Writes) -> Result<(), StoreError> {
        writes.validate()?;
        self.block(async {
            let mut c = self.conn().await?;
            let tx = c.transaction().await.pg("begin write")?;
            apply(&tx, writes).await?;
            tx.commit().await.pg("commit write")
        })
    }

    pub(super) fn kv_add(
        &self,
        collection: &str,
        key: &[u8],
        delta: i64,
    ) -> Result<i64, StoreError> {
        validate_name(collection)?;
        self.block(async {
            let c = self.conn().await?;
            let st = c.prepare_cached(ADD).await.pg("prepare")?;
            Ok(c.query_one(&st, &[&collection, &key, &delta])
                .await
                .pg("add to counter")?
                .get(0))
        })
    }

    pub(super) fn kv_hit(
        &self,
        collection: &str,
        key: &[u8],
        max: u32,
        window: Duration,
        now: Timestamp,
    ) -> Result<RateHit, StoreError> {
        validate_name(collection)?;
        let expires =
            (now + jiff::SignedDuration::try_from(window).unwrap_or_default()).as_millisecond();
        let mut lock_key = collection.as_bytes().to_vec();
        lock_key.push(0);
        lock_key.extend_from_slice(key);
        let h = blake3::hash(&lock_key);
        let lock = i32::from_be_bytes([
            h.as_bytes()[0],
            h.as_bytes()[1],
            h.as_bytes()[2],
            h.as_bytes()[3],
        ]);
        self.block(async {
            let mut c = self.conn().await?;
            let tx = c.transaction().await.pg("begin hit")?;
            tx.execute("SELECT pg_advisory_xact_lock($1, $2)", &[&HIT_LOCK, &lock])
                .await
                .pg("lock hit")?;
            let hits = tx
                .query_opt(
                    "SELECT value FROM kv WHERE collection = $1 AND key = $2",
                    &[&collection, &key],
                )
                .await
                .pg("read hits")?
                .map(|r| hits_from(r.get::<_, &[u8]>(0)))
                .unwrap_or_default();
            let (kept, hit) = slide(&hits, max, window, now);
            if hit.allowed {
                tx.execute(
                    "INSERT INTO kv (collection, key, value, expires_ms) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (collection, key) DO UPDATE SET value = excluded.value, expires_ms = excluded.expires_ms",
                    &[&collection, &key, &hits_value(&kept), &expires],
                )
                .await
                .pg("count a hit")?;
            }
            tx.commit().await.pg("commit hit")?;
            Ok(hit)
        })
    }

    pub(super) fn kv_purge_expired(
        &self,
        collection: &str,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        validate_name(collection)?;
        self.block(async {
            let c = self.conn().await?;
            c.execute(
                "DELETE FROM kv WHERE collection = $1 AND expires_ms IS NOT NULL AND expires_ms <= $2",
                &[&collection, &now.as_millisecond()],
            )
            .await
            .pg("purge collection")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_ends_bound_every_key_with_the_prefix() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        assert_eq!(prefix_end(b""), None);
    }
}
