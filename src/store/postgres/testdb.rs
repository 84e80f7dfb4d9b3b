//! Test databases: each test that needs PostgreSQL gets a database of its own
//! (`CREATE DATABASE` on the server named by `INTAKE_TEST_PG_URL`, which
//! `scripts/test.sh` starts), so such tests run in parallel.
//!
//! With the variable unset the test fails with a message saying so: a suite run
//! without PostgreSQL must not look green. `INTAKE_TEST_PG=skip` (for a local
//! run without a server) makes such tests return early instead, saying so.

/// The URL of a new, empty database; `None` when skipping is asked for.
///
/// # Panics
/// No server is configured (and skipping is not asked for), or it refuses.
pub(crate) fn new_database() -> Option<String> {
    let Ok(admin) = std::env::var("INTAKE_TEST_PG_URL") else {
        if std::env::var("INTAKE_TEST_PG").as_deref() == Ok("skip") {
            eprintln!("SKIPPED: PostgreSQL variant (INTAKE_TEST_PG=skip)");
            return None;
        }
        panic!(
            "INTAKE_TEST_PG_URL is not set: the PostgreSQL variants of the store tests need a \
             server (scripts/test.sh starts a private one); set INTAKE_TEST_PG=skip to skip them \
             in a local run"
        );
    };
    let name = format!("intake_t_{:016x}", rand::random::<u64>());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to INTAKE_TEST_PG_URL {admin}: {e}"));
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    });
    Some(url_of(&admin, &name))
}

/// `admin` with its database replaced by `name`.
pub(crate) fn url_of(admin: &str, name: &str) -> String {
    let (base, query) = admin
        .split_once('?')
        .map_or((admin, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}
