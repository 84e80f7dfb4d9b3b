//! Store interface, keyed collections: named, ordered maps from byte keys to byte
//! values, for kinds of stored data that have no record type of their own in the
//! store (portal sign-in links and sessions, bounce blocks, staff accounts, webhook
//! queues, …). Both engines keep them with the same promises:
//!
//! - **Named**: a collection is a name of 1–64 characters `[a-z0-9_]`; its keys are
//!   bytes, ordered bytewise, so a scan by prefix walks them in order (encode numbers
//!   big-endian and times with [`time_key`] to get a useful order).
//! - **Durable**: [`Collection::put`], [`Collection::delete`], [`Collection::take`],
//!   [`Collection::add`] and [`Store::write`] return once the change is durable.
//! - **Atomic**: a [`Writes`] batch is applied all or nothing — alone
//!   ([`Store::write`]), with a ticket change ([`Store::change_ticket_with`]) or with
//!   a filing ([`Filing::writes`](super::Filing), and [`OnFiled`] for writes that need
//!   the filed record: its ticket number, sequence number, decision).
//! - **Expiry**: an entry may carry `expires_at`. Reads that take `now` skip expired
//!   entries; [`Collection::purge_expired`] removes them. `now` is always the caller's
//!   (tests inject clocks), never the store's own.
//! - **Counters and limits**: [`Collection::add`] is an atomic counter (the value is
//!   an `i64`, big-endian); [`Collection::hit`] is a sliding-window rate limit shared
//!   by every node of the store. Keep counters and entries in separate collections.
//!
//! ```no_run
//! use intake::store::{Store, Writes};
//! # fn demo(store: &Store, now: jiff::Timestamp) -> Result<(), intake::store::StoreError> {
//! let blocks = store.collection("bounce_blocks")?;
//! let until = now + jiff::SignedDuration::from_hours(24 * 30);
//! blocks.put_json(b"client@example.com", &"5.1.1 user unknown", Some(until))?;
//! assert!(blocks.get_live(b"client@example.com", now)?.is_some());
//!
//! // Ordered keys: every delivery of one webhook endpoint, oldest first.
//! let mut w = Writes::new();
//! w.put("webhook_queue", [&b"hook1/"[..], &intake::store::time_key(now)].concat(), b"{}".to_vec());
//! w.add("webhook_stats", b"queued", 1);
//! store.write(&w)?;
//! for entry in store.collection("webhook_queue")?.scan_all(b"hook1/", Some(now))? {
//!     println!("{:?}", entry.key);
//! }
//!
//! // Sign-in requests: at most 5 an hour per address, on every node.
//! let hit = store.collection("signin_hits")?.hit(b"client@example.com", 5, std::time::Duration::from_secs(3600), now)?;
//! if !hit.allowed { /* answer 429 */ }
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde::{de::DeserializeOwned, Serialize};

use super::{MessageRecord, Store, StoreError};

/// Longest collection name.
const MAX_NAME: usize = 64;

/// One stored entry of a collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    /// After this instant the entry counts as gone (and may be purged).
    pub expires_at: Option<Timestamp>,
}

impl Entry {
    /// Whether the entry has not expired at `now`.
    pub fn live(&self, now: Timestamp) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }

    /// The value as JSON.
    ///
    /// # Errors
    /// The value is not the JSON of a `T` ([`StoreError::Corrupt`]).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, StoreError> {
        serde_json::from_slice(&self.value).map_err(|e| StoreError::Corrupt {
            tree: "collection",
            message: e.to_string(),
        })
    }

    /// The value as a counter ([`Collection::add`]); 0 when it is not one.
    pub fn counter(&self) -> i64 {
        <[u8; 8]>::try_from(self.value.as_slice()).map_or(0, i64::from_be_bytes)
    }
}

/// One change to a collection, part of a [`Writes`] batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    Put {
        collection: String,
        key: Vec<u8>,
        value: Vec<u8>,
        expires_at: Option<Timestamp>,
    },
    Delete {
        collection: String,
        key: Vec<u8>,
    },
    /// Adds `delta` to the counter under `key` (0 when absent).
    Add {
        collection: String,
        key: Vec<u8>,
        delta: i64,
    },
}

impl Write {
    /// The collection this change is to.
    pub fn collection(&self) -> &str {
        match self {
            Write::Put { collection, .. }
            | Write::Delete { collection, .. }
            | Write::Add { collection, .. } => collection,
        }
    }
}

/// Changes to collections applied all or nothing, alone or with a ticket change
/// or a filing (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Writes {
    ops: Vec<Write>,
}

impl Writes {
    pub fn new() -> Writes {
        Writes::default()
    }

    /// Stores `value` under `key` (replacing what was there), with no expiry.
    pub fn put(&mut self, collection: &str, key: impl AsRef<[u8]>, value: Vec<u8>) -> &mut Self {
        self.put_until(collection, key, value, None)
    }

    /// Stores `value` under `key`, gone after `expires_at`.
    pub fn put_until(
        &mut self,
        collection: &str,
        key: impl AsRef<[u8]>,
        value: Vec<u8>,
        expires_at: Option<Timestamp>,
    ) -> &mut Self {
        self.ops.push(Write::Put {
            collection: collection.to_owned(),
            key: key.as_ref().to_vec(),
            value,
            expires_at,
        });
        self
    }

    /// Stores the JSON of `value` under `key`.
    ///
    /// # Errors
    /// `value` has no JSON form (a map with non-string keys).
    pub fn put_json<T: Serialize + ?Sized>(
        &mut self,
        collection: &str,
        key: impl AsRef<[u8]>,
        value: &T,
        expires_at: Option<Timestamp>,
    ) -> Result<&mut Self, StoreError> {
        let json = serde_json::to_vec(value).map_err(|e| StoreError::Corrupt {
            tree: "collection",
            message: e.to_string(),
        })?;
        Ok(self.put_until(collection, key, json, expires_at))
    }

    /// Removes `key` (nothing when absent).
    pub fn delete(&mut self, collection: &str, key: impl AsRef<[u8]>) -> &mut Self {
        self.ops.push(Write::Delete {
            collection: collection.to_owned(),
            key: key.as_ref().to_vec(),
        });
        self
    }

    /// Adds `delta` to the counter under `key`.
    pub fn add(&mut self, collection: &str, key: impl AsRef<[u8]>, delta: i64) -> &mut Self {
        self.ops.push(Write::Add {
            collection: collection.to_owned(),
            key: key.as_ref().to_vec(),
            delta,
        });
        self
    }

    /// Appends every change of `other`.
    pub fn extend(&mut self, other: Writes) {
        self.ops.extend(other.ops);
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// The changes, in order (a later change to a key wins).
    pub fn iter(&self) -> std::slice::Iter<'_, Write> {
        self.ops.iter()
    }

    /// Refuses a batch naming an invalid collection before anything is written.
    ///
    /// # Errors
    /// [`StoreError::InvalidCollection`].
    pub fn validate(&self) -> Result<(), StoreError> {
        self.ops
            .iter()
            .try_for_each(|w| validate_name(w.collection()))
    }
}

/// Writes a filing adds once its record is known: the ticket number and the
/// message's sequence number are given out inside the filing's transaction, and
/// whatever must be written with them (a webhook delivery of the event) is written
/// in that same transaction. The function must be quick and must not touch the
/// store: it runs inside the engine's transaction.
#[derive(Clone)]
pub struct OnFiled(Arc<OnFiledFn>);

type OnFiledFn = dyn Fn(&MessageRecord, &mut Writes) + Send + Sync;

impl OnFiled {
    pub fn new(f: impl Fn(&MessageRecord, &mut Writes) + Send + Sync + 'static) -> OnFiled {
        OnFiled(Arc::new(f))
    }

    /// The writes for a filed record (none for a re-delivery: it was filed before).
    pub fn writes(&self, record: &MessageRecord) -> Writes {
        let mut w = Writes::new();
        (self.0)(record, &mut w);
        w
    }
}

impl std::fmt::Debug for OnFiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnFiled(..)")
    }
}

/// The answer of a rate limit ([`Collection::hit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateHit {
    /// Whether this hit was within the limit (and so counted).
    pub allowed: bool,
    /// Hits counted in the window, this one included when allowed.
    pub count: u32,
}

/// The sliding-window arithmetic both engines use: `hits` are the milliseconds of
/// earlier hits; returns the hits to keep and the answer.
pub(super) fn slide(
    hits: &[i64],
    max: u32,
    window: Duration,
    now: Timestamp,
) -> (Vec<i64>, RateHit) {
    let now_ms = now.as_millisecond();
    let from = now_ms.saturating_sub(i64::try_from(window.as_millis()).unwrap_or(i64::MAX));
    let mut kept: Vec<i64> = hits.iter().copied().filter(|&t| t > from).collect();
    let allowed = kept.len() < max as usize;
    if allowed {
        kept.push(now_ms);
    }
    let count = u32::try_from(kept.len()).unwrap_or(u32::MAX);
    (kept, RateHit { allowed, count })
}

/// Hits of a rate-limit entry ↔ its value (each an `i64` BE millisecond).
pub(super) fn hits_from(value: &[u8]) -> Vec<i64> {
    value
        .chunks_exact(8)
        .filter_map(|c| <[u8; 8]>::try_from(c).ok())
        .map(i64::from_be_bytes)
        .collect()
}

pub(super) fn hits_value(hits: &[i64]) -> Vec<u8> {
    hits.iter().flat_map(|h| h.to_be_bytes()).collect()
}

/// A key part that sorts by time (seconds since 1970, offset so that earlier
/// instants sort first too), for keys ordered by when something happened.
pub fn time_key(t: Timestamp) -> [u8; 8] {
    ((t.as_second() as i128 + (1i128 << 62)) as u64).to_be_bytes()
}

/// Whether `name` may name a collection.
///
/// # Errors
/// [`StoreError::InvalidCollection`].
pub fn validate_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidCollection(name.to_owned()))
    }
}

/// One collection of a store (see the module docs); cheap to make, per use.
#[derive(Clone)]
pub struct Collection {
    store: Store,
    name: String,
}

/// Entries a scan reads per round trip in [`Collection::scan_all`].
const PAGE: usize = 512;

impl Collection {
    pub(super) fn new(store: Store, name: &str) -> Result<Collection, StoreError> {
        validate_name(name)?;
        Ok(Collection {
            store,
            name: name.to_owned(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The entry under `key`, expired or not.
    ///
    /// # Errors
    /// Read failures.
    pub fn get(&self, key: &[u8]) -> Result<Option<Entry>, StoreError> {
        self.store.kv_get(&self.name, key)
    }

    /// The entry under `key` unless it has expired at `now`.
    ///
    /// # Errors
    /// Read failures.
    pub fn get_live(&self, key: &[u8], now: Timestamp) -> Result<Option<Entry>, StoreError> {
        Ok(self.get(key)?.filter(|e| e.live(now)))
    }

    /// The live value under `key` as JSON.
    ///
    /// # Errors
    /// Read failures; a value that is not the JSON of a `T`.
    pub fn get_json<T: DeserializeOwned>(
        &self,
        key: &[u8],
        now: Timestamp,
    ) -> Result<Option<T>, StoreError> {
        self.get_live(key, now)?.map(|e| e.json()).transpose()
    }

    /// Stores `value` under `key`, durably.
    ///
    /// # Errors
    /// Write failures.
    pub fn put(
        &self,
        key: &[u8],
        value: Vec<u8>,
        expires_at: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        let mut w = Writes::new();
        w.put_until(&self.name, key, value, expires_at);
        self.store.write(&w)
    }

    /// Stores the JSON of `value` under `key`, durably.
    ///
    /// # Errors
    /// Write failures; `value` has no JSON form.
    pub fn put_json<T: Serialize + ?Sized>(
        &self,
        key: &[u8],
        value: &T,
        expires_at: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        let mut w = Writes::new();
        w.put_json(&self.name, key, value, expires_at)?;
        self.store.write(&w)
    }

    /// Removes `key`, durably (nothing when absent).
    ///
    /// # Errors
    /// Write failures.
    pub fn delete(&self, key: &[u8]) -> Result<(), StoreError> {
        let mut w = Writes::new();
        w.delete(&self.name, key);
        self.store.write(&w)
    }

    /// Removes `key` and returns what it held, atomically and durably: of two
    /// callers (on any nodes) taking the same key, one gets the entry.
    ///
    /// # Errors
    /// Read/write failures.
    pub fn take(&self, key: &[u8]) -> Result<Option<Entry>, StoreError> {
        self.store.kv_take(&self.name, key)
    }

    /// Up to `limit` entries whose key starts with `prefix`, in key order,
    /// starting after the key `after` (for paging). Expired entries are included
    /// (see [`Entry::live`]).
    ///
    /// # Errors
    /// Read failures.
    pub fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        self.store.kv_scan(&self.name, prefix, after, limit)
    }

    /// Every entry whose key starts with `prefix`, in key order; with `now`, only
    /// those live at `now`.
    ///
    /// # Errors
    /// Read failures.
    pub fn scan_all(
        &self,
        prefix: &[u8],
        now: Option<Timestamp>,
    ) -> Result<Vec<Entry>, StoreError> {
        let mut out = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = self.scan(prefix, after.as_deref(), PAGE)?;
            let full = page.len() == PAGE;
            after = page.last().map(|e| e.key.clone());
            out.extend(page.into_iter().filter(|e| now.is_none_or(|n| e.live(n))));
            if !full {
                return Ok(out);
            }
        }
    }

    /// Adds `delta` to the counter under `key`, durably; returns the new value.
    ///
    /// # Errors
    /// Read/write failures.
    pub fn add(&self, key: &[u8], delta: i64) -> Result<i64, StoreError> {
        self.store.kv_add(&self.name, key, delta)
    }

    /// The counter under `key` (0 when absent).
    ///
    /// # Errors
    /// Read failures.
    pub fn counter(&self, key: &[u8]) -> Result<i64, StoreError> {
        Ok(self.get(key)?.map_or(0, |e| e.counter()))
    }

    /// Counts a hit for `key` against at most `max` hits within `window` before
    /// `now`; a hit over the limit is answered `allowed: false` and not counted.
    /// Atomic across nodes; a crash may forget the hits of its last second.
    ///
    /// # Errors
    /// Read/write failures.
    pub fn hit(
        &self,
        key: &[u8],
        max: u32,
        window: Duration,
        now: Timestamp,
    ) -> Result<RateHit, StoreError> {
        self.store.kv_hit(&self.name, key, max, window, now)
    }

    /// Removes every entry expired at `now`; returns how many.
    ///
    /// # Errors
    /// Read/write failures.
    pub fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.store.kv_purge_expired(&self.name, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(validate_name("portal_sessions").is_ok());
        assert!(validate_name("a1").is_ok());
        for bad in ["", "Portal", "a/b", "a\0b", &"x".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_window_slides() {
        let t0: Timestamp = "2026-11-24T10:00:00Z".parse().unwrap();
        let w = Duration::from_secs(60);
        let (h, r) = slide(&[], 2, w, t0);
        assert_eq!(
            r,
            RateHit {
                allowed: true,
                count: 1
            }
        );
        let (h, r) = slide(&h, 2, w, t0 + jiff::SignedDuration::from_secs(10));
        assert!(r.allowed);
        let (h, r) = slide(&h, 2, w, t0 + jiff::SignedDuration::from_secs(20));
        assert_eq!(
            r,
            RateHit {
                allowed: false,
                count: 2
            }
        );
        // The first hit leaves the window after 60 s.
        let (h, r) = slide(&h, 2, w, t0 + jiff::SignedDuration::from_secs(61));
        assert_eq!(
            r,
            RateHit {
                allowed: true,
                count: 2
            }
        );
        assert_eq!(hits_from(&hits_value(&h)), h);
    }

    #[test]
    fn time_keys_sort_by_time() {
        let a: Timestamp = "1969-12-31T00:00:00Z".parse().unwrap();
        let b: Timestamp = "2026-11-24T10:00:00Z".parse().unwrap();
        assert!(time_key(a) < time_key(b));
    }
}
