//! Changes the CLI and the demo seeding make directly in the store, audited as they
//! happen: creating users (with an argon2id password hash).

use anyhow::bail;
use deedbolt_core::audit::{AuditKind, AuditRecord};
use deedbolt_core::clock::{Clock, SystemClock};
use deedbolt_core::ids::UserId;
use deedbolt_core::ports::StoreError;
use deedbolt_core::user::{Email, Password, PasswordHasher, Role, User};

use crate::storage::Store;

/// Creates a user with an argon2id password hash and audits it.
pub(crate) async fn register_user(
    store: &Store,
    email: Email,
    role: Role,
    name: Option<String>,
    password: String,
) -> anyhow::Result<User> {
    let password = Password::new_for(password, &email)?;
    let hash =
        tokio::task::spawn_blocking(move || PasswordHasher::new()?.hash(&password)).await??;
    let user = User {
        id: UserId::generate()?,
        email,
        name,
        role,
        password_hash: hash,
        created_at: SystemClock.now(),
    };
    match store.insert_user(&user).await {
        Err(StoreError::Conflict(_)) => {
            bail!("a user with email {} already exists", user.email.as_str())
        }
        other => other?,
    }
    audit_cli(
        store,
        AuditRecord::new(AuditKind::UserCreated, true, user.created_at)
            .user(&user.id)
            .detail(format!("role={}", user.role)),
    )
    .await?;
    Ok(user)
}

/// CLI changes are audited directly (there is no running writer in this process).
pub(crate) async fn audit_cli(store: &Store, record: AuditRecord) -> anyhow::Result<()> {
    store.insert_audit(&[record]).await?;
    Ok(())
}
