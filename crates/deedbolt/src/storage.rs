//! The storage backend, chosen once at start-up: PostgreSQL when a database URL is
//! configured (`--database-url` / `DEEDBOLT_DATABASE_URL`), otherwise the embedded SQLite
//! file in the data directory (the zero-configuration default). Everything after the
//! choice (the server and every CLI command) sees only [`Storage`] (in the core: the
//! union of its storage ports), and never branches on the backend again.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::Context;
use deedbolt_core::ports::Storage;
use deedbolt_store_postgres::PgStore;
use deedbolt_store_sqlite::SqliteStore;

/// The chosen backend, shared by everything that stores.
pub type Store = Arc<dyn Storage>;

/// A PostgreSQL connection URL (`postgres://user:password@host:port/database?…`). It may
/// hold a password, so its `Debug` and `Display` never show one.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

/// Why a database URL was refused.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseUrlError {
    /// Not a URL (the text is not repeated: it may hold a password).
    #[error("the database URL is not a URL")]
    Malformed,
    /// Not a PostgreSQL URL.
    #[error("the database URL must start with postgres:// or postgresql://, not {0}://")]
    Scheme(String),
}

impl FromStr for DatabaseUrl {
    type Err = DatabaseUrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let url = url::Url::parse(s).map_err(|_| DatabaseUrlError::Malformed)?;
        match url.scheme() {
            "postgres" | "postgresql" => Ok(DatabaseUrl(s.to_owned())),
            other => Err(DatabaseUrlError::Scheme(other.to_owned())),
        }
    }
}

/// The config file's `database_url`; a bad value is refused without repeating it.
impl<'de> serde::Deserialize<'de> for DatabaseUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|e| serde::de::Error::custom(format!("invalid database_url: {e}")))
    }
}

impl DatabaseUrl {
    /// The URL as given, password included: only for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DatabaseUrl {
    /// The URL with any password replaced by `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match url::Url::parse(&self.0) {
            Ok(mut url) => {
                if url.password().is_some() {
                    // Cannot fail for a URL that has a password (it has a host).
                    let _ = url.set_password(Some("***"));
                }
                // Passwords can also travel as a query parameter.
                if url.query_pairs().any(|(k, _)| k == "password") {
                    let pairs: Vec<(String, String)> = url
                        .query_pairs()
                        .map(|(k, v)| {
                            let v = if k == "password" {
                                "***".into()
                            } else {
                                v.into_owned()
                            };
                            (k.into_owned(), v)
                        })
                        .collect();
                    url.query_pairs_mut().clear().extend_pairs(pairs);
                }
                f.write_str(url.as_str())
            }
            Err(_) => f.write_str("[unparsable database URL]"),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

/// Where durable state lives.
#[derive(Debug, Clone)]
pub enum Database {
    /// The embedded SQLite file in the data directory.
    Embedded,
    /// A PostgreSQL server, shared by every instance.
    Postgres {
        /// Where it is.
        url: DatabaseUrl,
        /// The most connections this process keeps open to it.
        max_connections: u32,
    },
}

impl Database {
    /// PostgreSQL at `url` with the default pool size.
    pub fn postgres(url: DatabaseUrl) -> Self {
        Database::Postgres {
            url,
            max_connections: deedbolt_store_postgres::DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// The database file inside the data directory.
pub const DB_FILE: &str = "deedbolt.db";

/// Opens the configured backend: PostgreSQL (migrated on connect), or the SQLite file in
/// `data_dir` (creating the directory owner-only on Unix: created 0700, never briefly
/// wider, and an existing one restricted to 0700; the file 0600 with its `-wal` and
/// `-shm` files).
pub async fn open(database: &Database, data_dir: &Path) -> anyhow::Result<Store> {
    match database {
        Database::Postgres {
            url,
            max_connections,
        } => {
            let store = PgStore::connect_pooled(url.expose(), *max_connections)
                .await
                .with_context(|| format!("cannot open the PostgreSQL database {url}"))?;
            Ok(Arc::new(store))
        }
        Database::Embedded => {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder
                .create(data_dir)
                .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))
                    .with_context(|| {
                        format!("cannot restrict permissions of {}", data_dir.display())
                    })?;
            }
            Ok(Arc::new(SqliteStore::open(&data_dir.join(DB_FILE)).await?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_never_displayed() {
        for raw in [
            "postgres://deedbolt:s3cret@db.internal:5432/deedbolt",
            "postgresql://deedbolt@db.internal/deedbolt?password=s3cret&sslmode=require",
        ] {
            let url: DatabaseUrl = raw.parse().unwrap();
            let shown = format!("{url} {url:?}");
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(shown.contains("db.internal"), "{shown}");
            assert_eq!(url.expose(), raw);
        }
    }

    #[test]
    fn only_postgres_urls_are_accepted() {
        assert!("mysql://x@h/db".parse::<DatabaseUrl>().is_err());
        assert!("not a url".parse::<DatabaseUrl>().is_err());
        let err = "postgres://u:s3cret@[bad"
            .parse::<DatabaseUrl>()
            .unwrap_err();
        assert!(!err.to_string().contains("s3cret"));
    }
}
