//! PostgreSQL engine: any number of `intake` nodes on one database. A
//! [`Filing`](crate::store::Filing) → one transaction (raw bytes, message record,
//! decision, ticket change, queued reply), committed with `synchronous_commit` on
//! before the hook answers; concurrent filings of a node share one transaction
//! (group commit, `commit`).
//!
//! The engine is synchronous like the trait: it runs its own tokio runtime, on
//! which the connections live, and every call waits for its queries on the
//! calling thread ([`PgStore::block`]).
//!
//! Layout: `schema` (embedded migrations, applied at start under an advisory
//! lock), `filing` (the filing transaction), `read` (look-ups), `outbox` (reply
//! queue with leases, `LISTEN/NOTIFY`), `kv` (keyed collections), `commit` (group
//! commit), `engine` (the [`Engine`](crate::store::Engine) implementation).
//!
//! Ticket and message numbers come from one counter row updated in the filing's
//! transaction: gap-free across nodes (a rolled-back filing uses none), and
//! filings of all nodes take turns on that row, so a re-delivery posted to two
//! nodes at once is seen as one (the unique dedup key is the backstop).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};

mod commit;
mod engine;
mod filing;
mod kv;
mod outbox;
mod read;
mod schema;

use crate::store::StoreError;

/// Connections per node.
const POOL_SIZE: usize = 12;
/// Longest wait for a connection (a database that is down answers 503 soon).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Handle on the database; clone freely.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    rt: Option<tokio::runtime::Runtime>,
    pool: Pool,
    first_number: u64,
    /// This node's name in outbox leases.
    node: String,
    /// Woken by `NOTIFY intake_outbox` (another node queued a reply).
    wake: Arc<tokio::sync::Notify>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // May be dropped on an async worker: never block there.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// `Result<T, tokio_postgres::Error>` → the store's error, naming the operation.
pub(super) trait Pg<T> {
    fn pg(self, op: &'static str) -> Result<T, StoreError>;
}

impl<T> Pg<T> for Result<T, tokio_postgres::Error> {
    fn pg(self, op: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Postgres { op, source })
    }
}

fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(source) => StoreError::Postgres {
            op: "connect",
            source,
        },
        other => StoreError::Pool(other.to_string()),
    }
}

/// Text for a PostgreSQL `text` column, which cannot hold NUL: the records
/// themselves are stored exactly (bytea); only the look-up columns are cleaned.
pub(super) fn text(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('\0') {
        std::borrow::Cow::Owned(s.replace('\0', "\u{fffd}"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn u64_of(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl PgStore {
    /// Connects to `url` (a `postgres://` URL; `password` from a file replaces
    /// the URL's), applies the embedded migrations and checks the schema version.
    ///
    /// # Errors
    /// A bad URL, a database that cannot be reached or refuses the role, a
    /// schema newer than this binary.
    pub fn open(
        url: &str,
        password: Option<&str>,
        first_number: u64,
    ) -> Result<PgStore, StoreError> {
        let mut cfg: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| StoreError::Schema(format!("store.url: {e}")))?;
        if let Some(p) = password {
            cfg.password(p.trim_end_matches(['\r', '\n']));
        }
        cfg.connect_timeout(CONNECT_TIMEOUT);
        cfg.application_name("intake");
        cfg.options("-c synchronous_commit=on");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("intake-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Pool(format!("cannot start the runtime: {e}")))?;
        let mgr = Manager::from_config(
            cfg.clone(),
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = {
            let _g = rt.enter();
            Pool::builder(mgr)
                .max_size(POOL_SIZE)
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .wait_timeout(Some(CONNECT_TIMEOUT))
                .create_timeout(Some(CONNECT_TIMEOUT))
                .recycle_timeout(Some(CONNECT_TIMEOUT))
                .build()
                .map_err(|e| StoreError::Pool(e.to_string()))?
        };
        let node = format!(
            "{}:{}:{:08x}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "node".into()),
            std::process::id(),
            rand::random::<u32>()
        );
        let store = PgStore {
            inner: Arc::new(Inner {
                rt: Some(rt),
                pool,
                first_number,
                node,
                wake: Arc::new(tokio::sync::Notify::new()),
            }),
        };
        store.block(schema::migrate(&store.inner.pool, first_number))?;
        outbox::listen(&store, cfg);
        Ok(store)
    }

    /// Runs `f` to completion on the calling thread, inside the engine's runtime
    /// (where the connections are served). Safe on an async worker of another
    /// runtime: it blocks that thread for the call, as a disk read would.
    pub(super) fn block<F: Future>(&self, f: F) -> F::Output {
        let _g = self.rt().enter();
        futures_executor::block_on(f)
    }

    fn rt(&self) -> &tokio::runtime::Runtime {
        // Only taken in Drop.
        self.inner.rt.as_ref().expect("runtime present until drop")
    }

    /// A pooled connection.
    pub(super) async fn conn(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.inner.pool.get().await.map_err(pool_err)
    }

    pub(super) fn first_number(&self) -> u64 {
        self.inner.first_number
    }

    pub(super) fn node(&self) -> &str {
        &self.inner.node
    }

    /// Whether the database answers reads and writes (for `/readyz`).
    pub(super) fn check(&self) -> Result<(), StoreError> {
        self.block(async {
            let c = self.conn().await?;
            c.execute(
                "INSERT INTO probe (node, at_s) VALUES ($1, extract(epoch FROM now())::bigint)
                 ON CONFLICT (node) DO UPDATE SET at_s = excluded.at_s",
                &[&self.node()],
            )
            .await
            .pg("probe")?;
            Ok(())
        })
    }

    /// Rows and bytes per table.
    pub(super) fn usage(&self) -> Result<Vec<crate::store::Usage>, StoreError> {
        const TABLES: [&str; 10] = [
            "messages",
            "tickets",
            "ticket_owners",
            "thread",
            "reply_log",
            "outbox",
            "sent",
            "kv",
            "intake_counters",
            "probe",
        ];
        self.block(async {
            let c = self.conn().await?;
            let mut out = Vec::with_capacity(TABLES.len());
            for name in TABLES {
                let row = c
                    .query_one(
                        &format!(
                            "SELECT count(*)::bigint, coalesce(sum(pg_column_size(t.*)), 0)::bigint FROM {name} t"
                        ),
                        &[],
                    )
                    .await
                    .pg("usage")?;
                out.push(crate::store::Usage {
                    name: name.to_owned(),
                    entries: u64_of(row.get(0)),
                    bytes: u64_of(row.get(1)),
                });
            }
            Ok(out)
        })
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("node", &self.inner.node)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
pub(crate) mod testdb;
