//! Users ([`UserStore`]) on PostgreSQL.

use async_trait::async_trait;
use deedbolt_core::clock::UnixTime;
use deedbolt_core::ids::UserId;
use deedbolt_core::ports::{StoreError, UserStore};
use deedbolt_core::user::{Email, Role, User};
use sqlx::postgres::PgRow;
use sqlx::Row;

use crate::{backend, corrupt, PgStore};

fn user_from_row(row: &PgRow) -> Result<User, StoreError> {
    let id: String = row.try_get("id").map_err(backend)?;
    let email: String = row.try_get("email").map_err(backend)?;
    let role: String = row.try_get("role").map_err(backend)?;
    Ok(User {
        id: UserId::parse(&id).map_err(|_| corrupt("user id"))?,
        email: Email::parse(&email).map_err(|_| corrupt("email"))?,
        name: row.try_get("name").map_err(backend)?,
        role: role.parse().map_err(|_| corrupt("role"))?,
        password_hash: row.try_get("password_hash").map_err(backend)?,
        created_at: UnixTime(row.try_get("created_at").map_err(backend)?),
    })
}

const USER_COLUMNS: &str = "id, email, name, role, password_hash, created_at";

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

#[async_trait]
impl UserStore for PgStore {
    async fn insert_user(&self, user: &User) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, email, name, role, password_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
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

    async fn find_user(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn find_user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE email = $1"
        ))
        .bind(email.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY created_at, seq"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(user_from_row).collect()
    }

    async fn set_role(&self, id: &UserId, role: Role) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
            .bind(role.as_str())
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_user(&self, id: &UserId) -> Result<bool, StoreError> {
        // Sessions and consents go with the row (ON DELETE CASCADE).
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }
}
