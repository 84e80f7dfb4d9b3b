//! PostgreSQL engine, the schema: migrations embedded in the binary, applied in
//! order at start inside one transaction holding an advisory lock (two nodes
//! starting together take turns; the second finds nothing left to do). A
//! database whose schema is newer than this binary's is refused with a clear
//! error: an older binary must not write a schema it does not know.

use deadpool_postgres::Pool;

use super::{i64_of, pool_err, Pg};
use crate::store::StoreError;

/// The migrations, in order: schema version N is the first N of them.
pub(super) const MIGRATIONS: [(&str, &str); 2] = [
    ("store", include_str!("migrations/0001_store.sql")),
    (
        "reporting views",
        include_str!("migrations/0002_reporting.sql"),
    ),
];

/// Advisory lock key of the migration step ("intake" in ASCII).
const MIGRATION_LOCK: i64 = 0x696e_7461_6b65;

/// The schema version this binary writes.
pub fn version() -> i32 {
    MIGRATIONS.len() as i32
}

/// Brings the schema up to [`version`] and makes sure the counter row exists.
///
/// # Errors
/// The database cannot be reached; a migration failed (nothing of it is kept);
/// the schema is newer than this binary ([`StoreError::Schema`]).
pub(super) async fn migrate(pool: &Pool, first_number: u64) -> Result<(), StoreError> {
    let mut c = pool.get().await.map_err(pool_err)?;
    let tx = c.transaction().await.pg("begin migration")?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .pg("migration lock")?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS intake_schema (
             version    int PRIMARY KEY,
             name       text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await
    .pg("schema table")?;
    let have: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM intake_schema", &[])
        .await
        .pg("schema version")?
        .get(0);
    if have > version() {
        return Err(StoreError::Schema(format!(
            "the database's store schema is version {have}, newer than this binary's version {}: \
             run an intake at least as new as the one that upgraded it",
            version()
        )));
    }
    for (i, (name, sql)) in MIGRATIONS.iter().enumerate().skip(have as usize) {
        let v = i as i32 + 1;
        tx.batch_execute(sql).await.pg("migration")?;
        tx.execute(
            "INSERT INTO intake_schema (version, name) VALUES ($1, $2)",
            &[&v, name],
        )
        .await
        .pg("record migration")?;
        tracing::info!(version = v, name, "store schema migrated");
    }
    tx.execute(
        "INSERT INTO intake_counters (id, next_ticket, next_seq) VALUES (1, $1, 1)
         ON CONFLICT (id) DO NOTHING",
        &[&i64_of(first_number)],
    )
    .await
    .pg("counters")?;
    tx.commit().await.pg("commit migration")
}
