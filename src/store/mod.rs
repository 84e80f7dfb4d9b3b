//! Stage 5, store: a [`Filing`] (message + decision + ticket change + reply intent)
//! → one durable transaction, before the hook answers; and every later read and
//! change of tickets, replies and keyed collections.
//!
//! One interface, several engines. [`Store`] is a cheap `Clone` handle on an
//! [`Engine`] (the trait every engine implements; the handle derefs to it), and
//! [`Committer`] is the group-commit front that filings go through. Nothing outside
//! this module names an engine:
//!
//! - `sled/` — the embedded default: sled trees and a raw-message log in one
//!   directory, one process.
//! - `postgres/` — PostgreSQL: any number of nodes on one database.
//!
//! Shared here: `records` (the types the pipeline hands in and reads back),
//! `codec` (value encoding and compression), `collections` (named keyed
//! collections for kinds of data without a record type of their own: get, put,
//! delete, ordered scans by prefix, expiry, counters, rate limits, and writes made
//! atomically with a ticket change or a filing — see its docs for an example),
//! `committer` (the group-commit front), `engine` (the trait).

use std::sync::Arc;

use jiff::Timestamp;

mod codec;
mod collections;
mod committer;
mod engine;
mod postgres;
mod records;
mod sled;

pub use codec::PackedRaw;
pub use collections::{
    time_key, validate_name, Collection, Entry, OnFiled, RateHit, Write, Writes,
};
pub use committer::{Committer, InFlight, Job, Reply};
pub use engine::{Engine, TicketChange, Usage};
pub use records::{
    Committed, Filing, MessageRecord, OutboxItem, ReplyIntent, SentRecord, Ticket, TicketEvent,
    Timings,
};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sled error on {op}")]
    Sled {
        op: &'static str,
        #[source]
        source: ::sled::Error,
    },
    #[error("raw-message log: {op} failed on {path}")]
    RawLog {
        op: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("PostgreSQL error on {op}")]
    Postgres {
        op: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("PostgreSQL connection pool: {0}")]
    Pool(String),
    /// The database cannot be used by this binary (bad URL, newer schema).
    #[error("store: {0}")]
    Schema(String),
    #[error("corrupt record in {tree}: {message}")]
    Corrupt { tree: &'static str, message: String },
    #[error("ticket {0} does not exist")]
    NoSuchTicket(u64),
    #[error("the store's committer has stopped")]
    CommitterGone,
    /// Internal to a commit batch: a filing taken for a re-delivery turned out
    /// to be new, and its raw bytes must be logged first.
    #[error("a new message's raw bytes were not logged")]
    NotLogged,
    #[error("the store is being reopened after a fault")]
    Reopening,
    #[error("invalid collection name {0:?} (1-64 characters a-z, 0-9, _)")]
    InvalidCollection(String),
    #[error(transparent)]
    Lifecycle(#[from] crate::lifecycle::LifecycleError),
}

/// Handle on the store; clone freely. Derefs to its [`Engine`].
#[derive(Clone)]
pub struct Store {
    engine: Arc<dyn Engine>,
}

impl std::ops::Deref for Store {
    type Target = dyn Engine;

    fn deref(&self) -> &Self::Target {
        &*self.engine
    }
}

impl Store {
    /// A handle on an engine.
    pub(crate) fn wrap(engine: impl Engine + 'static) -> Store {
        Store {
            engine: Arc::new(engine),
        }
    }

    /// Opens (creating) the embedded store in the directory `path`.
    ///
    /// # Errors
    /// The directory cannot be created or opened (e.g. locked by another process).
    pub fn open(
        path: &std::path::Path,
        first_number: u64,
        cache_bytes: u64,
    ) -> Result<Store, StoreError> {
        sled::SledStore::open(path, first_number, cache_bytes).map(Store::wrap)
    }

    /// Like [`Store::open`], except that a data directory which cannot be written
    /// yet (read-only file system, no space left, quota) gives a closed store:
    /// every call answers [`StoreError::Reopening`] until [`Engine::heal`] opens
    /// it. The service then starts, reports itself not ready, refuses mail with
    /// 503 and recovers by itself once the directory is writable.
    ///
    /// # Errors
    /// As [`Store::open`] for any other failure (locked by another process,
    /// corrupt, not a directory).
    pub fn open_or_closed(
        path: &std::path::Path,
        first_number: u64,
        cache_bytes: u64,
    ) -> Result<Store, StoreError> {
        sled::SledStore::open_or_closed(path, first_number, cache_bytes).map(Store::wrap)
    }

    /// Connects to a PostgreSQL store (`postgres://user@host:port/db`; `password`,
    /// read from `store.password_file`, replaces the URL's), applying the embedded
    /// migrations.
    ///
    /// # Errors
    /// A bad URL, an unreachable database, a refused role, a schema newer than
    /// this binary.
    pub fn open_postgres(
        url: &str,
        password: Option<&str>,
        first_number: u64,
    ) -> Result<Store, StoreError> {
        postgres::PgStore::open(url, password, first_number).map(Store::wrap)
    }

    /// Changes one ticket in a transaction and durably: `change` edits the ticket
    /// and returns the replies to queue (each indexed under its Message-ID, so
    /// answers to it thread back) and a value for the caller.
    ///
    /// # Errors
    /// No such ticket; `change` refused (its error aborts everything); writes failed.
    pub fn change_ticket<T, F>(&self, number: u64, change: F) -> Result<T, StoreError>
    where
        F: Fn(&mut Ticket) -> Result<(T, Vec<OutboxItem>), StoreError>,
    {
        self.change_ticket_with(number, |t, _| change(t))
    }

    /// Like [`Store::change_ticket`], and `change` may add collection writes that
    /// are applied in the same transaction (a webhook delivery of the change).
    ///
    /// # Errors
    /// As [`Store::change_ticket`].
    pub fn change_ticket_with<T, F>(&self, number: u64, change: F) -> Result<T, StoreError>
    where
        F: Fn(&mut Ticket, &mut Writes) -> Result<(T, Vec<OutboxItem>), StoreError>,
    {
        let mut out = None;
        self.engine.change_ticket_dyn(number, &mut |t, w| {
            let (v, items) = change(t, w)?;
            out = Some(v);
            Ok(items)
        })?;
        // The engine returns Ok only after `change` succeeded at least once.
        out.ok_or(StoreError::NoSuchTicket(number))
    }

    /// One keyed collection (see `collections`).
    ///
    /// # Errors
    /// The name is not a valid collection name.
    pub fn collection(&self, name: &str) -> Result<Collection, StoreError> {
        Collection::new(self.clone(), name)
    }

    /// Applies a batch of collection writes atomically and durably.
    ///
    /// # Errors
    /// Write failures; an invalid collection name (nothing is written).
    pub fn write(&self, writes: &Writes) -> Result<(), StoreError> {
        writes.validate()?;
        if writes.is_empty() {
            return Ok(());
        }
        self.engine.kv_write(writes)
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("engine", &self.engine.name())
            .finish_non_exhaustive()
    }
}

/// Position of a reply in the queue: its due time, then its identity.
pub(crate) fn queue_key(due: Timestamp, key: &[u8]) -> Vec<u8> {
    let mut k = time_key(due).to_vec();
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

#[cfg(test)]
pub(crate) mod tests;
