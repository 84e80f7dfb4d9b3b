//! sled engine: the embedded default (one node, zero configuration). A
//! [`Filing`](crate::store::Filing) → sled trees, in one multi-tree transaction per message, made durable by group
//! commit before the hook answers.
//!
//! [`SledStore`] is a cheap `Clone` handle with one typed accessor per tree. Writes go
//! through the group committer (`commit`): one thread applies each filing in its
//! own multi-tree transaction (ticket numbers are allocated inside it, so a failed
//! request never uses one up), another flushes once for everything applied so far,
//! then every waiting request is answered. Reads go straight to sled.
//!
//! The raw message bytes are not kept in sled: they go to an append-only log of
//! their own (`raw/NNNNNN.log`, see `rawlog`), made durable before the filing's
//! transaction is applied, and the message record holds where they are.
//!
//! Layout: `value` (message values), `rawlog` (the raw-message log), `read`
//! (look-ups), `filing` (the filing transaction, ticket changes), `outbox` (reply
//! queue and sent log), `kv` (keyed collections, in one `kv` tree), `commit` (group
//! commit), `engine` (the [`Engine`](crate::store::Engine) implementation).

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use sled::transaction::ConflictableTransactionError;

mod commit;
mod engine;
mod filing;
mod kv;
mod outbox;
mod rawlog;
mod read;
mod value;

use crate::store::codec::{dec, enc};
use crate::store::collections::time_key as ts_key;
use crate::store::StoreError;

fn sled_err(op: &'static str) -> impl FnOnce(sled::Error) -> StoreError {
    move |source| StoreError::Sled { op, source }
}

/// Handle on the sled database; clone freely.
///
/// The trees sit behind a swappable cell: sled poisons itself after an I/O error
/// (a full or read-only disk), so [`SledStore::heal`] drops the poisoned database and
/// opens it again from disk, and every clone of the handle carries on with the new one.
#[derive(Clone)]
pub struct SledStore {
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
    /// sled's log file, opened once to fdatasync it after each flush (see
    /// [`SledStore::flush`]).
    log: std::fs::File,
    /// The raw-message log (reopened with the database).
    rawlog: rawlog::RawLog,
    /// Where versions before the raw-message log kept raw bytes (read only).
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
    /// Keyed collections: `name 0x00 key` → entry (see `kv`).
    kv: sled::Tree,
}

/// Shortest pause between two attempts to reopen a failed store.
const HEAL_INTERVAL: Duration = Duration::from_millis(250);

const NEXT_TICKET: &[u8] = b"next_ticket";
const NEXT_SEQ: &[u8] = b"next_seq";

fn be(n: u64) -> [u8; 8] {
    n.to_be_bytes()
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

/// Whether an error means the disk refuses writes (a fault that can clear by
/// itself), as opposed to a lock, corruption or a wrong path.
fn unwritable(e: &StoreError) -> bool {
    use std::io::ErrorKind as K;
    let io = match e {
        StoreError::Sled {
            source: sled::Error::Io(io),
            ..
        } => io,
        StoreError::RawLog { source, .. } => source,
        _ => return false,
    };
    matches!(
        io.kind(),
        K::ReadOnlyFilesystem | K::StorageFull | K::QuotaExceeded
    )
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
        .map_err(sled_err("open"))?;
    let t = |name: &str| db.open_tree(name).map_err(sled_err("open tree"));
    let log = std::fs::File::open(path.join("db")).map_err(|e| StoreError::Sled {
        op: "open log",
        source: sled::Error::Io(e),
    })?;
    let rawlog = rawlog::RawLog::open(path)?;
    let kv = t("kv")?;
    kv::adopt_legacy_trees(&db, &kv)?;
    Ok(Trees {
        generation,
        log,
        rawlog,
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
        kv,
        db,
    })
}

impl SledStore {
    /// Opens (creating) the database under `path`.
    ///
    /// # Errors
    /// The directory cannot be created or opened (e.g. locked by another process).
    pub fn open(
        path: &std::path::Path,
        first_number: u64,
        cache_bytes: u64,
    ) -> Result<SledStore, StoreError> {
        let trees = open_trees(path, cache_bytes, 0)?;
        Ok(SledStore {
            cell: Arc::new(std::sync::RwLock::new(Some(Arc::new(trees)))),
            path: path.to_owned(),
            cache_bytes,
            last_heal: Arc::default(),
            first_number,
        })
    }

    /// Like [`SledStore::open`], except that a data directory which cannot be written
    /// yet (read-only file system, no space left, quota) gives a closed store:
    /// every call answers [`StoreError::Reopening`] until [`SledStore::heal`] opens
    /// it. The service then starts, reports itself not ready, refuses mail with
    /// 503 and recovers by itself once the directory is writable.
    ///
    /// # Errors
    /// As [`SledStore::open`] for any other failure (locked by another process,
    /// corrupt, not a directory).
    pub fn open_or_closed(
        path: &std::path::Path,
        first_number: u64,
        cache_bytes: u64,
    ) -> Result<SledStore, StoreError> {
        match SledStore::open(path, first_number, cache_bytes) {
            Err(e) if unwritable(&e) => {
                tracing::error!(path = %path.display(), error = %e, cause = %std::error::Error::source(&e).map(ToString::to_string).unwrap_or_default(), "data directory is not writable; refusing mail until it is");
                Ok(SledStore {
                    cell: Arc::new(std::sync::RwLock::new(None)),
                    path: path.to_owned(),
                    cache_bytes,
                    last_heal: Arc::default(),
                    first_number,
                })
            }
            other => other,
        }
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
            // sled syncs its log file when the database is dropped and panics if
            // that fails, unless one of its own writes failed before. A fault the
            // raw-message log met first (a read-only file system) leaves sled
            // unaware of it: make sled write once, so that it meets the fault too.
            if let Some(o) = &old {
                let _ = o.meta.insert(b"ready_probe", &be(0));
                let _ = o.db.flush();
            }
            while let Some(o) = old.take() {
                match Arc::try_unwrap(o) {
                    Ok(trees) => release(trees),
                    Err(shared) if Instant::now() < deadline => {
                        old = Some(shared);
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(shared) => release(shared),
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
    /// [`SledStore::heal`]): writes made on an earlier one were lost with it.
    fn flush_generation(&self) -> Result<u64, StoreError> {
        let t = self.t()?;
        t.db.flush().map_err(sled_err("flush"))?;
        // sled 0.34 makes its log writes stable on Linux with sync_file_range,
        // which commits neither the file's metadata (its new size, the blocks just
        // allocated to it) nor the disk's cache; only its own periodic fsync, once
        // a second, does. An OS crash or a file system error lost mail acknowledged
        // in that second (tests/it/storage.rs). fdatasync on the log file closes it.
        t.log.sync_data().map_err(|e| StoreError::Sled {
            op: "fsync",
            source: sled::Error::Io(e),
        })?;
        Ok(t.generation)
    }

    /// Whether the database answers reads and writes (for `/readyz`).
    ///
    /// The probe is flushed: a full or read-only disk only shows when sled writes.
    /// A failed probe tries to reopen the store (see [`SledStore::heal`]) and probes again.
    pub fn check(&self) -> Result<(), StoreError> {
        let probe = || -> Result<(), StoreError> {
            self.t()?
                .meta
                .insert(b"ready_probe", &be(Timestamp::now().as_second() as u64))
                .map_err(sled_err("probe"))?;
            self.flush()
        };
        probe().or_else(|e| match self.heal() {
            Ok(()) => probe(),
            Err(_) => Err(e),
        })
    }
}

impl SledStore {
    /// Entries and live bytes (keys and values as stored) per tree.
    pub(super) fn usage(&self) -> Result<Vec<crate::store::Usage>, StoreError> {
        let t = self.t()?;
        let trees = [
            ("messages", &t.messages),
            ("raw", &t.raw),
            ("dedup", &t.dedup),
            ("tickets", &t.tickets),
            ("thread", &t.thread),
            ("owners", &t.owners),
            ("senders", &t.senders),
            ("outbox", &t.outbox),
            ("sent", &t.sent),
            ("replies", &t.replies),
            ("meta", &t.meta),
            ("kv", &t.kv),
        ];
        let mut out = Vec::with_capacity(trees.len() + 1);
        for (name, tree) in trees {
            let (mut entries, mut bytes) = (0, 0);
            for item in tree.iter() {
                let (k, v) = item.map_err(sled_err("scan"))?;
                entries += 1;
                bytes += (k.len() + v.len()) as u64;
            }
            out.push(crate::store::Usage {
                name: name.to_owned(),
                entries,
                bytes,
            });
        }
        out.push(t.rawlog.usage()?);
        Ok(out)
    }
}

/// Drops a failed database (or a handle on it); a panic in sled's drop (its final
/// sync failing) must not take the committer's thread with it.
fn release<T>(trees: T) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(trees))).is_err() {
        tracing::error!("closing the failed database panicked; unflushed writes are lost");
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

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
