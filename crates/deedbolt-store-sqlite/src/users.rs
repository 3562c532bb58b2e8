//! Users ([`UserStore`]) on SQLite.

use async_trait::async_trait;
use deedbolt_core::ids::UserId;
use deedbolt_core::ports::{StoreError, UserStore};
use deedbolt_core::user::{Email, Role, User};
use sqlx::sqlite::SqliteRow;

use deedbolt_store_sql::rows::{self, USER_COLUMNS};

use crate::{backend, Cols, SqliteStore};

fn user_from_row(row: &SqliteRow) -> Result<User, StoreError> {
    rows::user(&Cols(row))
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

#[async_trait]
impl UserStore for SqliteStore {
    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn insert_user(&self, user: &User) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, email, name, role, password_hash, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(user.id.as_str())
        .bind(user.email.as_str())
        .bind(user.name.as_deref())
        .bind(user.role.as_str())
        .bind(&user.password_hash)
        .bind(user.created_at.0)
        .execute(&self.pool)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict("a user with this email")
            } else {
                backend(e)
            }
        })?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn find_user(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(user_from_row).transpose()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn find_user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE email = ?"))
            .bind(email.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(user_from_row).transpose()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY created_at, rowid"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(user_from_row).collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn set_role(&self, id: &UserId, role: Role) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE users SET role = ? WHERE id = ?")
            .bind(role.as_str())
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn delete_user(&self, id: &UserId) -> Result<bool, StoreError> {
        // Sessions and consents go with the row (ON DELETE CASCADE).
        let done = sqlx::query("DELETE FROM users WHERE id = ?")
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }
}
