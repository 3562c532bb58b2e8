//! Stored rows of the authorization-server tables back into domain values. Each function
//! reads the columns its table's `*_COLUMNS` list selects (the same names on both
//! backends).

use deedbolt_core::audit::{AuditKind, AuditRecord};
use deedbolt_core::client::{stored, Client, ClientKind, ClientName};
use deedbolt_core::clock::UnixTime;
use deedbolt_core::ids::{ClientId, UserId};
use deedbolt_core::ports::{StoreError, StoredAlert};
use deedbolt_core::scope::ScopeSet;
use deedbolt_core::secret::SecretHash;
use deedbolt_core::user::{Email, User};

use crate::{corrupt, Columns};

/// The columns [`client`] reads, in table order.
pub const CLIENT_COLUMNS: &str = "id, name, secret_hash, grant_types, scopes, redirect_uris, \
     public, introspection, properties, id_token_alg, metadata, registration_token_hash, \
     created_at, updated_at";

/// The columns [`user`] reads, in table order.
pub const USER_COLUMNS: &str = "id, email, name, role, password_hash, created_at";

/// A `clients` row.
pub fn client(row: &impl Columns) -> Result<Client, StoreError> {
    let id: String = row.get("id")?;
    let name: String = row.get("name")?;
    let hash: Option<Vec<u8>> = row.get("secret_hash")?;
    let grants: String = row.get("grant_types")?;
    let scopes: String = row.get("scopes")?;
    let redirects: String = row.get("redirect_uris")?;
    let secret_hash = match hash {
        Some(bytes) => Some(SecretHash::from_bytes(&bytes).ok_or_else(|| corrupt("secret_hash"))?),
        None => None,
    };
    let grant_types = stored::parse_grant_types(&grants).map_err(|_| corrupt("grant_types"))?;
    let metadata: String = row.get("metadata")?;
    let registration_token_hash = row
        .get::<Option<Vec<u8>>>("registration_token_hash")?
        .map(|bytes| {
            SecretHash::from_bytes(&bytes).ok_or_else(|| corrupt("registration_token_hash"))
        })
        .transpose()?;
    Ok(Client {
        id: ClientId::parse(&id).map_err(|_| corrupt("client id"))?,
        name: ClientName::from_stored(&name).map_err(|_| corrupt("client name"))?,
        secret_hash,
        grant_types,
        scopes: ScopeSet::parse_stored(&scopes).map_err(|_| corrupt("scopes"))?,
        redirect_uris: stored::parse_redirect_uris(&redirects)
            .map_err(|_| corrupt("redirect_uris"))?,
        kind: ClientKind::from_public(row.get("public")?),
        allow_introspection: row.get("introspection")?,
        properties: row
            .get::<Option<String>>("properties")?
            .map(|p| stored::parse_properties(&p).map_err(|_| corrupt("client properties")))
            .transpose()?,
        id_token_alg: row
            .get::<String>("id_token_alg")?
            .parse()
            .map_err(|_| corrupt("client id_token_alg"))?,
        metadata: serde_json::from_str(&metadata).map_err(|_| corrupt("client metadata"))?,
        registration_token_hash,
        created_at: UnixTime(row.get("created_at")?),
        updated_at: UnixTime(row.get("updated_at")?),
    })
}

/// A client's metadata as the JSON document its `metadata` column holds.
pub fn client_metadata(client: &Client) -> Result<String, StoreError> {
    serde_json::to_string(&client.metadata).map_err(StoreError::backend)
}

/// A client's stored registration-token hash, if it has one.
pub fn client_registration_token(client: &Client) -> Option<Vec<u8>> {
    client
        .registration_token_hash
        .as_ref()
        .map(|h| h.as_bytes().to_vec())
}

/// A `users` row.
pub fn user(row: &impl Columns) -> Result<User, StoreError> {
    let id: String = row.get("id")?;
    let email: String = row.get("email")?;
    let role: String = row.get("role")?;
    Ok(User {
        id: UserId::parse(&id).map_err(|_| corrupt("user id"))?,
        email: Email::parse(&email).map_err(|_| corrupt("email"))?,
        name: row.get("name")?,
        role: role.parse().map_err(|_| corrupt("role"))?,
        password_hash: row.get("password_hash")?,
        created_at: UnixTime(row.get("created_at")?),
    })
}

/// An `audit_log` row.
pub fn audit(row: &impl Columns) -> Result<AuditRecord, StoreError> {
    let kind: String = row.get("kind")?;
    Ok(AuditRecord {
        id: row.get("id")?,
        at: UnixTime(row.get("at")?),
        kind: kind
            .parse::<AuditKind>()
            .map_err(|_| corrupt("audit kind"))?,
        success: row.get("success")?,
        client_id: row.get("client_id")?,
        user_id: row.get("user_id")?,
        ip: row.get("ip")?,
        user_agent: row.get("user_agent")?,
        scope: row.get("scope")?,
        error: row.get("error")?,
        session: row.get("session")?,
        detail: row.get("detail")?,
    })
}

/// An `alerts` row.
pub fn alert(row: &impl Columns) -> Result<StoredAlert, StoreError> {
    let text: String = row.get("alert")?;
    Ok(StoredAlert {
        id: row.get("id")?,
        alert: serde_json::from_str(&text).map_err(|_| corrupt("alert"))?,
        delivered_at: row.get::<Option<i64>>("delivered_at")?.map(UnixTime),
        attempts: row.get::<i64>("attempts")?.clamp(0, i64::from(u32::MAX)) as u32,
    })
}

/// The columns [`registration_token`] reads.
pub const REGISTRATION_TOKEN_COLUMNS: &str =
    "id, token_hash, scopes, max_uses, uses, created_at, expires_at, revoked_at";

/// A `registration_tokens` row (an initial access token of RFC 7591 §3).
pub fn registration_token(
    row: &impl Columns,
) -> Result<deedbolt_core::registration::InitialAccessToken, StoreError> {
    let hash: Option<Vec<u8>> = row.get("token_hash")?;
    let hash = hash
        .as_deref()
        .and_then(SecretHash::from_bytes)
        .ok_or_else(|| corrupt("registration token hash"))?;
    let count = |v: i64, what| u32::try_from(v).map_err(|_| corrupt(what));
    Ok(deedbolt_core::registration::InitialAccessToken {
        id: row.get("id")?,
        hash,
        scopes: row
            .get::<Option<String>>("scopes")?
            .map(|s| ScopeSet::parse_stored(&s).map_err(|_| corrupt("registration token scopes")))
            .transpose()?,
        max_uses: row
            .get::<Option<i64>>("max_uses")?
            .map(|n| count(n, "registration token max_uses"))
            .transpose()?,
        uses: count(row.get("uses")?, "registration token uses")?,
        created_at: UnixTime(row.get("created_at")?),
        expires_at: UnixTime(row.get("expires_at")?),
        revoked_at: row.get::<Option<i64>>("revoked_at")?.map(UnixTime),
    })
}
