//! sled engine, keyed collections: every collection in one `kv` tree, keyed
//! `name 0x00 key` (names cannot hold `0x00`, so collections never overlap and a
//! prefix scan stays inside one), so that collection writes join a filing's or a
//! ticket change's transaction as one more tree.
//!
//! Value: `0x00` + payload, or `0x01` + `i64` BE expiry in milliseconds + payload.

use std::time::Duration;

use jiff::Timestamp;
use sled::transaction::{TransactionError, TransactionalTree};

use super::{abort, sled_err, SledStore, TxResult};
use crate::store::collections::{hits_from, hits_value, slide, validate_name};
use crate::store::{Entry, RateHit, StoreError, Write, Writes};

const NO_EXPIRY: u8 = 0x00;
const EXPIRY: u8 = 0x01;

fn full_key(collection: &str, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(collection.len() + 1 + key.len());
    k.extend_from_slice(collection.as_bytes());
    k.push(0);
    k.extend_from_slice(key);
    k
}

fn encode(value: &[u8], expires_at: Option<Timestamp>) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + value.len());
    match expires_at {
        None => out.push(NO_EXPIRY),
        Some(at) => {
            out.push(EXPIRY);
            out.extend_from_slice(&at.as_millisecond().to_be_bytes());
        }
    }
    out.extend_from_slice(value);
    out
}

fn decode(key: Vec<u8>, stored: &[u8]) -> Result<Entry, StoreError> {
    let corrupt = |m: &str| StoreError::Corrupt {
        tree: "kv",
        message: m.to_owned(),
    };
    match stored.split_first() {
        Some((&NO_EXPIRY, value)) => Ok(Entry {
            key,
            value: value.to_vec(),
            expires_at: None,
        }),
        Some((&EXPIRY, rest)) => {
            let (ms, value) = rest
                .split_first_chunk::<8>()
                .ok_or_else(|| corrupt("truncated expiry"))?;
            let at = Timestamp::from_millisecond(i64::from_be_bytes(*ms))
                .map_err(|_| corrupt("expiry out of range"))?;
            Ok(Entry {
                key,
                value: value.to_vec(),
                expires_at: Some(at),
            })
        }
        _ => Err(corrupt("unknown entry tag")),
    }
}

/// Applies `writes` inside a transaction on the `kv` tree.
pub(super) fn apply(kv: &TransactionalTree, writes: &Writes) -> TxResult<()> {
    for w in writes.iter() {
        if let Err(e) = validate_name(w.collection()) {
            return abort(e);
        }
        match w {
            Write::Put {
                collection,
                key,
                value,
                expires_at,
            } => {
                kv.insert(full_key(collection, key), encode(value, *expires_at))?;
            }
            Write::Delete { collection, key } => {
                kv.remove(full_key(collection, key))?;
            }
            Write::Add {
                collection,
                key,
                delta,
            } => {
                add(kv, collection, key, *delta)?;
            }
        }
    }
    Ok(())
}

fn add(kv: &TransactionalTree, collection: &str, key: &[u8], delta: i64) -> TxResult<i64> {
    let k = full_key(collection, key);
    let now = match kv.get(&k)? {
        Some(v) => decode(key.to_vec(), &v).or_else(abort)?.counter(),
        None => 0,
    };
    let next = now.saturating_add(delta);
    kv.insert(k, encode(&next.to_be_bytes(), None))?;
    Ok(next)
}

fn tx_error(op: &'static str) -> impl FnOnce(TransactionError<StoreError>) -> StoreError {
    move |e| match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(source) => StoreError::Sled { op, source },
    }
}

impl SledStore {
    pub(super) fn kv_get(&self, collection: &str, key: &[u8]) -> Result<Option<Entry>, StoreError> {
        validate_name(collection)?;
        self.t()?
            .kv
            .get(full_key(collection, key))
            .map_err(sled_err("read collection"))?
            .map(|v| decode(key.to_vec(), &v))
            .transpose()
    }

    pub(super) fn kv_scan(
        &self,
        collection: &str,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        validate_name(collection)?;
        let base = full_key(collection, prefix);
        let start = match after {
            // The smallest key after `after`: `after` followed by a 0 byte.
            Some(a) if a >= prefix => {
                let mut k = full_key(collection, a);
                k.push(0);
                k
            }
            _ => base.clone(),
        };
        let strip = collection.len() + 1;
        let mut out = Vec::new();
        for item in self.t()?.kv.range(start..) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item.map_err(sled_err("scan collection"))?;
            if !k.starts_with(&base) {
                break;
            }
            out.push(decode(k[strip..].to_vec(), &v)?);
        }
        Ok(out)
    }

    pub(super) fn kv_take(
        &self,
        collection: &str,
        key: &[u8],
    ) -> Result<Option<Entry>, StoreError> {
        validate_name(collection)?;
        let k = full_key(collection, key);
        let t = self.t()?;
        let taken =
            t.kv.transaction(|kv| match kv.remove(k.as_slice())? {
                Some(v) => decode(key.to_vec(), &v).map(Some).or_else(abort),
                None => Ok(None),
            })
            .map_err(tx_error("take from collection"))?;
        if taken.is_some() {
            self.flush()?;
        }
        Ok(taken)
    }

    pub(super) fn kv_write(&self, writes: &Writes) -> Result<(), StoreError> {
        self.t()?
            .kv
            .transaction(|kv| apply(kv, writes))
            .map_err(tx_error("write collection"))?;
        self.flush()
    }

    pub(super) fn kv_add(
        &self,
        collection: &str,
        key: &[u8],
        delta: i64,
    ) -> Result<i64, StoreError> {
        validate_name(collection)?;
        let n = self
            .t()?
            .kv
            .transaction(|kv| add(kv, collection, key, delta))
            .map_err(tx_error("add to counter"))?;
        self.flush()?;
        Ok(n)
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
        let k = full_key(collection, key);
        let expires = now + jiff::SignedDuration::try_from(window).unwrap_or_default();
        self.t()?
            .kv
            .transaction(|kv| {
                let hits = match kv.get(&k)? {
                    Some(v) => hits_from(&decode(key.to_vec(), &v).or_else(abort)?.value),
                    None => Vec::new(),
                };
                let (kept, hit) = slide(&hits, max, window, now);
                if hit.allowed {
                    kv.insert(k.as_slice(), encode(&hits_value(&kept), Some(expires)))?;
                }
                Ok(hit)
            })
            .map_err(tx_error("count a hit"))
    }

    pub(super) fn kv_purge_expired(
        &self,
        collection: &str,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        validate_name(collection)?;
        let base = full_key(collection, &[]);
        let t = self.t()?;
        let mut n = 0;
        for item in t.kv.scan_prefix(&base) {
            let (k, v) = item.map_err(sled_err("scan collection"))?;
            if decode(Vec::new(), &v)?.live(now) {
                continue;
            }
            // Only if nobody replaced it meanwhile.
            if t.kv
                .compare_and_swap(&k, Some(&v), None as Option<&[u8]>)
                .map_err(sled_err("purge collection"))?
                .is_ok()
            {
                n += 1;
            }
        }
        if n > 0 {
            self.flush()?;
        }
        Ok(n)
    }
}

/// Trees in which versions before the keyed collections kept the portal's links
/// and sessions; their entries become the collections of the same names.
const LEGACY_TREES: [&str; 2] = ["portal_links", "portal_sessions"];

/// Moves the entries of [`LEGACY_TREES`] into their collections (with the expiry
/// their JSON names), makes that durable, then drops the trees. Idempotent: a
/// crash before the drop moves the same entries again.
pub(super) fn adopt_legacy_trees(db: &sled::Db, kv: &sled::Tree) -> Result<(), StoreError> {
    let names = db.tree_names();
    for name in LEGACY_TREES {
        if !names.iter().any(|n| n.as_ref() == name.as_bytes()) {
            continue;
        }
        let tree = db.open_tree(name).map_err(sled_err("open legacy tree"))?;
        let mut batch = sled::Batch::default();
        for item in tree.iter() {
            let (k, v) = item.map_err(sled_err("read legacy tree"))?;
            let expires_at = serde_json::from_slice::<serde_json::Value>(&v)
                .ok()
                .and_then(|j| j.get("expires_at")?.as_str()?.parse::<Timestamp>().ok());
            batch.insert(full_key(name, &k), encode(&v, expires_at));
        }
        kv.apply_batch(batch)
            .map_err(sled_err("adopt legacy tree"))?;
        db.flush().map_err(sled_err("flush"))?;
        db.drop_tree(name).map_err(sled_err("drop legacy tree"))?;
        tracing::info!(
            tree = name,
            "portal records moved into the store's collections"
        );
    }
    Ok(())
}
