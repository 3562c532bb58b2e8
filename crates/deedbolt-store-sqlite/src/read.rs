//! The inline read path: the PropTech API's reads (lists and single records of properties,
//! tenants, ledger entries and maintenance requests) run on the calling thread through a few rusqlite
//! connections to the same file, instead of through sqlx.
//!
//! sqlx runs each SQLite connection on a worker thread of its own and hands every query and
//! every row across threads; for a read of a few rows that hand-off, and the wake-ups it
//! causes, cost more than the read (docs/benchmarks.md). A read here is one indexed query
//! on pages that are almost always in memory, and in WAL mode it never waits for a writer,
//! so it runs inline. Both drivers link the same libsqlite3, so SQLite's own bookkeeping of
//! file locks covers both.
//!
//! If SQLite reports the database busy anyway (for a moment, during recovery), the read
//! returns `None` and the store takes the sqlx path, which may wait.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use deedbolt_core::ports::StoreError;
use deedbolt_store_sql::crm::{SqlSink, SqlValue};
use deedbolt_store_sql::Columns;
use rusqlite::{Connection, ErrorCode, OpenFlags};

/// Connections kept between reads (more are opened when more reads run at once, and
/// closed afterwards).
const KEEP: usize = 4;

/// How long a read waits for a lock before the store falls back to sqlx.
const BUSY_WAIT: Duration = Duration::from_millis(10);

/// A query for the inline path: SQL with `?` placeholders and the values bound to them.
#[derive(Debug, Default)]
pub(crate) struct Query {
    sql: String,
    values: Vec<SqlValue>,
}

impl Query {
    /// A query starting with `sql`.
    pub(crate) fn new(sql: &str) -> Self {
        Query {
            sql: sql.to_owned(),
            values: Vec::new(),
        }
    }
}

impl SqlSink for Query {
    fn push_sql(&mut self, sql: &str) {
        self.sql.push_str(sql);
    }

    fn bind(&mut self, value: SqlValue) {
        self.sql.push('?');
        self.values.push(value);
    }
}

/// A rusqlite row, read through the mappings the SQL stores share.
pub(crate) struct Row<'a, 'r>(pub(crate) &'a rusqlite::Row<'r>);

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::backend(e)
}

impl Columns for Row<'_, '_> {
    fn text(&self, col: &str) -> Result<String, StoreError> {
        self.0.get(col).map_err(backend)
    }

    fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError> {
        self.0.get(col).map_err(backend)
    }

    fn int(&self, col: &str) -> Result<i64, StoreError> {
        self.0.get(col).map_err(backend)
    }

    fn opt_int(&self, col: &str) -> Result<Option<i64>, StoreError> {
        self.0.get(col).map_err(backend)
    }

    fn opt_bytes(&self, col: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get(col).map_err(backend)
    }

    /// A flag is an `INTEGER` 0/1 here.
    fn flag(&self, col: &str) -> Result<bool, StoreError> {
        Ok(self.0.get::<_, i64>(col).map_err(backend)? == 1)
    }
}

/// Maps one row of a [`Query`].
pub(crate) type MapRow<T> = fn(&Row<'_, '_>) -> Result<T, StoreError>;

/// The connections of the inline path.
#[derive(Debug)]
pub(crate) struct Reader {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Reader {
    /// Reads the database file at `path` (already opened and migrated by sqlx).
    pub(crate) fn new(path: &Path) -> Self {
        Reader {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::with_capacity(KEEP)),
        }
    }

    /// The database file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        // Read-write (a WAL reader writes its read mark to the -shm file) but refusing
        // every change; never creating the file.
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_WAIT)?;
        conn.pragma_update(None, "query_only", true)?;
        Ok(conn)
    }

    /// The rows of `query`, mapped; `None` if the database was busy.
    pub(crate) fn rows<T>(
        &self,
        query: &Query,
        map: MapRow<T>,
    ) -> Result<Option<Vec<T>>, StoreError> {
        let taken = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match taken {
            Some(c) => c,
            None => self.open().map_err(backend)?,
        };
        let result = run(&conn, query, map);
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < KEEP {
            idle.push(conn);
        }
        match result {
            Ok(rows) => Ok(Some(rows)),
            Err(Failure::Sqlite(rusqlite::Error::SqliteFailure(e, _)))
                if matches!(e.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) =>
            {
                Ok(None)
            }
            Err(Failure::Sqlite(e)) => Err(backend(e)),
            Err(Failure::Map(e)) => Err(e),
        }
    }
}

enum Failure {
    Sqlite(rusqlite::Error),
    Map(StoreError),
}

fn run<T>(conn: &Connection, query: &Query, map: MapRow<T>) -> Result<Vec<T>, Failure> {
    let mut stmt = conn.prepare_cached(&query.sql).map_err(Failure::Sqlite)?;
    let values = query.values.iter().map(|v| match v {
        SqlValue::Int(n) => rusqlite::types::Value::Integer(*n),
        SqlValue::Text(s) => rusqlite::types::Value::Text(s.clone()),
    });
    let mut rows = stmt
        .query(rusqlite::params_from_iter(values))
        .map_err(Failure::Sqlite)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(Failure::Sqlite)? {
        out.push(map(&Row(row)).map_err(Failure::Map)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_binds_each_value_to_one_placeholder() {
        let mut q = Query::new("SELECT 1 FROM t WHERE 1");
        let sink: &mut dyn SqlSink = &mut q;
        sink.push(" AND a = ")
            .push_bind(7)
            .push(" AND b = ")
            .push_bind("x".to_owned());
        assert_eq!(q.sql, "SELECT 1 FROM t WHERE 1 AND a = ? AND b = ?");
        assert_eq!(q.values, vec![SqlValue::Int(7), SqlValue::Text("x".into())]);
    }
}
