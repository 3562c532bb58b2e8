//! Test support (feature `testing`): the `DATABASE_URL` convention and a fresh database
//! per test.
//!
//! Tests that need PostgreSQL read `DATABASE_URL` (a server where the role may create
//! databases, e.g. `postgres://deedbolt@127.0.0.1:5432/postgres`). Without it they are
//! skipped with a warning, except under CI (`CI` set), where a missing database is a
//! failure: the suite must never pass silently without running them.
//!
//! Test databases are dropped when a test is done with them ([`release_store`],
//! [`drop_database`]); those a failed test left behind are dropped by the next
//! [`fresh_database`] once they are an hour old (their names carry their creation time).

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::{OpenError, PgStore};

/// The server URL from `DATABASE_URL`; `None` (after a warning) when unset outside CI.
///
/// # Panics
/// When `DATABASE_URL` is unset and `CI` is set.
pub fn database_url() -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("DATABASE_URL is not set, but CI is: the PostgreSQL tests must run in CI")
        }
        _ => {
            eprintln!("SKIPPED: DATABASE_URL not set");
            None
        }
    }
}

/// Why a test database could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TestDbError {
    /// Connecting to the server or creating the database failed.
    #[error("cannot create a test database: {0}")]
    Sql(#[from] sqlx::Error),
    /// The random source failed.
    #[error(transparent)]
    Random(#[from] deedbolt_core::rand::RandomError),
    /// Opening the new database failed.
    #[error(transparent)]
    Open(#[from] OpenError),
}

/// The prefix of every test database's name.
const PREFIX: &str = "deedbolt_test_";

/// Test databases older than this are leftovers of failed tests.
const STALE_AFTER_SECS: u64 = 3600;

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Creates an empty database `deedbolt_test_<unix time>_<random>` on the server of
/// `server_url` and returns the URL of the new database (the same URL with its database
/// replaced). Drops the test databases of earlier runs that are over an hour old.
pub async fn fresh_database(server_url: &str) -> Result<String, TestDbError> {
    let mut bytes = [0u8; 8];
    deedbolt_core::rand::fill(&mut bytes)?;
    let now = unix_now();
    let name = format!(
        "{PREFIX}{now}_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let mut conn = PgConnectOptions::from_str(server_url)?.connect().await?;
    let existing: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE starts_with(datname, $1)")
            .bind(PREFIX)
            .fetch_all(&mut conn)
            .await?;
    for old in existing {
        let created = old[PREFIX.len()..]
            .split('_')
            .next()
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(0);
        if now.saturating_sub(created) > STALE_AFTER_SECS {
            // Best effort: another run may be dropping it at the same time.
            let _ = drop_named(&mut conn, &old).await;
        }
    }
    // The name is ours (digits, hex and `_`), never input: safe to splice. FILE_COPY
    // copies the template's files instead of writing them all to the WAL.
    sqlx::query(&format!(
        "CREATE DATABASE {name} TEMPLATE template0 STRATEGY FILE_COPY"
    ))
    .execute(&mut conn)
    .await?;
    conn.close().await?;
    Ok(with_database(server_url, &name))
}

async fn drop_named(conn: &mut sqlx::PgConnection, name: &str) -> Result<(), sqlx::Error> {
    // Quoted as an identifier; only ever a name read back from pg_database or our own.
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    sqlx::query(&format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Drops the test database at `url` (made by [`fresh_database`]) from the server in
/// `DATABASE_URL`. Anything but a test database is left alone.
pub async fn drop_database(url: &str) -> Result<(), TestDbError> {
    let name = PgConnectOptions::from_str(url)?
        .get_database()
        .unwrap_or_default()
        .to_owned();
    if !name.starts_with(PREFIX) {
        return Ok(());
    }
    let Ok(server) = std::env::var("DATABASE_URL") else {
        return Ok(());
    };
    let mut conn = PgConnectOptions::from_str(&server)?.connect().await?;
    drop_named(&mut conn, &name).await?;
    conn.close().await?;
    Ok(())
}

/// Closes a store made by [`fresh_store`] and drops its database.
///
/// # Panics
/// When the database cannot be dropped.
pub async fn release_store(store: PgStore) {
    let name = store
        .pool
        .connect_options()
        .get_database()
        .unwrap_or_default()
        .to_owned();
    store.close().await;
    if let Ok(server) = std::env::var("DATABASE_URL") {
        drop_database(&with_database(&server, &name))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

/// A migrated store on a fresh database of the `DATABASE_URL` server; `None` when the
/// tests are skipped (see [`database_url`]).
///
/// # Panics
/// When the database cannot be created or opened: a test must not pass without it.
pub async fn fresh_store() -> Option<PgStore> {
    let server = database_url()?;
    let url = fresh_database(&server)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    Some(
        PgStore::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    )
}

/// `url` with its database (the path) replaced by `database`, its query kept.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{database}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_is_replaced_and_the_rest_kept() {
        assert_eq!(
            with_database("postgres://u:p@h:5/postgres?sslmode=disable", "x"),
            "postgres://u:p@h:5/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h:5", "x"), "postgres://u@h:5/x");
    }
}
