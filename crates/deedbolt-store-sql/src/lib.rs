//! # deedbolt-store-sql
//!
//! The dialect-free half of deedbolt's SQL stores, written once for SQLite and PostgreSQL:
//!
//! - [`Columns`]: a result row read by column name. Each store implements it on its own
//!   row type (it owns the sqlx error mapping and the one column type that differs: a
//!   flag is an `INTEGER` 0/1 on SQLite and a `BOOLEAN` on PostgreSQL).
//! - [`rows`]: stored rows back into domain values (clients, users, audit records,
//!   alerts), with a corrupt value reported as [`StoreError::Corrupt`].
//! - [`crm`]: the PropTech rows, the [`deedbolt_proptech::Viewer`] predicates and keyset
//!   paging, generic over the sqlx [`sqlx::Database`]: the SQL they append is the same on
//!   both backends, so it is written once.
//!
//! Where the dialects differ (upserts, locking, `RETURNING`, placeholders in hand-written
//! statements), each store keeps its own query.
#![forbid(unsafe_code, unused_must_use)]
#![warn(missing_docs)]

pub mod crm;
pub mod rows;

use deedbolt_core::ports::StoreError;

/// A result row read by column name. The store implements the primitive reads (mapping
/// its driver's errors); [`Columns::get`] picks one by the wanted type.
pub trait Columns {
    /// A `TEXT` column.
    fn text(&self, col: &str) -> Result<String, StoreError>;
    /// A nullable `TEXT` column.
    fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError>;
    /// An integer (`BIGINT`) column.
    fn int(&self, col: &str) -> Result<i64, StoreError>;
    /// A nullable integer column.
    fn opt_int(&self, col: &str) -> Result<Option<i64>, StoreError>;
    /// A nullable binary (`BLOB` / `BYTEA`) column.
    fn opt_bytes(&self, col: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// A flag: `INTEGER` 0/1 on SQLite, `BOOLEAN` on PostgreSQL.
    fn flag(&self, col: &str) -> Result<bool, StoreError>;

    /// The column `col` as a `T` (one of the types [`FromColumn`] is implemented for).
    fn get<T: FromColumn>(&self, col: &str) -> Result<T, StoreError>
    where
        Self: Sized,
    {
        T::read(self, col)
    }
}

/// A Rust type a column can be read as, through the matching [`Columns`] method.
pub trait FromColumn: Sized {
    /// Reads column `col` of `row`.
    fn read(row: &impl Columns, col: &str) -> Result<Self, StoreError>;
}

impl FromColumn for String {
    fn read(row: &impl Columns, col: &str) -> Result<Self, StoreError> {
        row.text(col)
    }
}

impl FromColumn for Option<String> {
    fn read(row: &impl Columns, col: &str) -> Result<Self, StoreError> {
        row.opt_text(col)
    }
}

impl FromColumn for i64 {
    fn read(row: &impl Columns, col: &str) -> Result<Self, StoreError> {
        row.int(col)
    }
}

impl FromColumn for Option<i64> {
    fn read(row: &impl Columns, col: &str) -> Result<Self, StoreError> {
        row.opt_int(col)
    }
}

impl FromColumn for Option<Vec<u8>> {
    fn read(row: &impl Columns, col: &str) -> Result<Self, StoreError> {
        row.opt_bytes(col)
    }
}

impl FromColumn for bool {
    fn read(row: &impl Columns, col: &str) -> Result<Self, StoreError> {
        row.flag(col)
    }
}

/// A stored value that does not parse back: [`StoreError::Corrupt`] naming `what`.
pub fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A row of text and integer columns; a missing column is a backend error.
    #[derive(Default)]
    pub(crate) struct FakeRow {
        pub(crate) text: HashMap<&'static str, Option<String>>,
        pub(crate) int: HashMap<&'static str, Option<i64>>,
    }

    fn missing(col: &str) -> StoreError {
        StoreError::Corrupt(format!("missing column {col}"))
    }

    impl Columns for FakeRow {
        fn text(&self, col: &str) -> Result<String, StoreError> {
            self.opt_text(col)?.ok_or_else(|| missing(col))
        }
        fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError> {
            self.text.get(col).cloned().ok_or_else(|| missing(col))
        }
        fn int(&self, col: &str) -> Result<i64, StoreError> {
            self.opt_int(col)?.ok_or_else(|| missing(col))
        }
        fn opt_int(&self, col: &str) -> Result<Option<i64>, StoreError> {
            self.int.get(col).copied().ok_or_else(|| missing(col))
        }
        fn opt_bytes(&self, col: &str) -> Result<Option<Vec<u8>>, StoreError> {
            Err(missing(col))
        }
        fn flag(&self, col: &str) -> Result<bool, StoreError> {
            Ok(self.int(col)? == 1)
        }
    }

    fn user_row(email: &str) -> FakeRow {
        let mut row = FakeRow::default();
        for (col, v) in [
            ("id", "u_1"),
            ("email", email),
            ("role", "tenant"),
            ("password_hash", "$argon2id$x"),
        ] {
            row.text.insert(col, Some(v.to_owned()));
        }
        row.text.insert("name", None);
        row.int.insert("created_at", Some(7));
        row
    }

    #[test]
    fn a_row_maps_back_and_a_corrupt_value_is_named() {
        let user = rows::user(&user_row("ann@example.com")).unwrap();
        assert_eq!(user.email.as_str(), "ann@example.com");
        assert_eq!(user.name, None);
        assert_eq!(user.created_at.0, 7);
        match rows::user(&user_row("not an email")) {
            Err(StoreError::Corrupt(what)) => assert_eq!(what, "email"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_property_with_negative_units_is_corrupt() {
        let mut row = FakeRow::default();
        for (col, v) in [
            ("name", "One"),
            ("address", "1 Quay St"),
            ("kind", "residential"),
            ("created_by", "ops"),
        ] {
            row.text.insert(col, Some(v.to_owned()));
        }
        row.text.insert("manager_id", None);
        row.int.insert("id", Some(1));
        row.int.insert("created_at", Some(1));
        row.int.insert("units", Some(4));
        assert_eq!(crm::property(&row).unwrap().units, 4);
        row.int.insert("units", Some(-1));
        match crm::property(&row) {
            Err(StoreError::Corrupt(what)) => assert_eq!(what, "units"),
            other => panic!("{other:?}"),
        }
    }
}
